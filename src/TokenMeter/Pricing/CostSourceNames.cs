namespace TokenMeter.Pricing;

/// <summary>The wire and column names of <see cref="CostSource"/>: <c>reported</c>, <c>estimated</c>, <c>unpriced</c>.</summary>
public static class CostSourceNames
{
    /// <summary>The name of <see cref="CostSource.Reported"/>.</summary>
    public const string Reported = "reported";

    /// <summary>The name of <see cref="CostSource.Estimated"/>.</summary>
    public const string Estimated = "estimated";

    /// <summary>The name of <see cref="CostSource.Unpriced"/>.</summary>
    public const string Unpriced = "unpriced";

    /// <summary>The name of a cost source.</summary>
    /// <param name="source">The source.</param>
    /// <returns><c>reported</c>, <c>estimated</c> or <c>unpriced</c>.</returns>
    public static string Of(CostSource source) => source switch
    {
        CostSource.Estimated => Estimated,
        CostSource.Unpriced => Unpriced,
        _ => Reported,
    };

    /// <summary>Parses a name written by <see cref="Of"/>; null or unknown gives null.</summary>
    /// <param name="name">The name.</param>
    /// <returns>The source, or null.</returns>
    public static CostSource? Parse(string? name) => name switch
    {
        Reported => CostSource.Reported,
        Estimated => CostSource.Estimated,
        Unpriced => CostSource.Unpriced,
        _ => null,
    };

    /// <summary>
    /// The source of a record as stored: <see cref="CostSource.Unpriced"/> whenever the cost is
    /// null, whatever the record says (records written before cost sources existed say nothing).
    /// </summary>
    /// <param name="record">The record.</param>
    /// <returns>The source.</returns>
    public static CostSource Effective(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.CostUsd is null)
        {
            return CostSource.Unpriced;
        }

        return record.CostSource == CostSource.Unpriced ? (BillingTags.IsEstimated(record) ? CostSource.Estimated : CostSource.Reported) : record.CostSource;
    }
}
