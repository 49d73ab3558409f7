namespace TokenMeter.Attribution;

/// <summary>What the calls made inside a <see cref="UsageScope"/> used and cost so far.</summary>
/// <param name="Figures">Calls, tokens and cost (unpriced calls count as zero cost).</param>
/// <param name="UnpricedCalls">Calls whose model had no price (not in the cost).</param>
/// <param name="Model">The model of the most recent call, if any.</param>
public sealed record UsageTotals(UsageFigures Figures, int UnpricedCalls, string? Model)
{
    /// <summary>No calls.</summary>
    public static UsageTotals Empty { get; } = new(UsageFigures.Zero, 0, null);

    /// <summary>These totals with one more record added.</summary>
    /// <param name="record">The record to add.</param>
    /// <returns>The new totals.</returns>
    public UsageTotals Add(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new UsageTotals(
            Figures + UsageFigures.Of(record),
            UnpricedCalls + (record.CostUsd is null ? 1 : 0),
            record.Model ?? record.RequestModel ?? Model);
    }
}
