namespace TokenMeter;

/// <summary>
/// The measures every usage row carries: calls, tokens and cost. Each row type of the read model
/// embeds one, so a new measure is added here and every row, store and answer carries it.
/// </summary>
/// <param name="Calls">Number of calls.</param>
/// <param name="InputTokens">Input tokens (cached ones included).</param>
/// <param name="CachedInputTokens">Input tokens served from the prompt cache.</param>
/// <param name="OutputTokens">Output tokens (reasoning ones included).</param>
/// <param name="ReasoningTokens">Reasoning tokens.</param>
/// <param name="TotalTokens">Total tokens.</param>
/// <param name="CostUsd">Cost in US dollars (unpriced calls count as zero).</param>
public readonly record struct UsageFigures(
    long Calls,
    long InputTokens,
    long CachedInputTokens,
    long OutputTokens,
    long ReasoningTokens,
    long TotalTokens,
    decimal CostUsd)
{
    /// <summary>Input tokens written to the prompt cache (a part of <see cref="InputTokens"/>).</summary>
    public long CacheWriteTokens { get; init; }

    /// <summary>No calls.</summary>
    public static UsageFigures Zero => default;

    /// <summary>The figures of one call.</summary>
    /// <param name="record">The call.</param>
    /// <returns>One call with the record's tokens and cost (zero when unpriced).</returns>
    public static UsageFigures Of(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new(
            1,
            record.InputTokens,
            record.CachedInputTokens,
            record.OutputTokens,
            record.ReasoningTokens,
            record.TotalTokens,
            record.CostUsd ?? 0m)
        {
            CacheWriteTokens = record.CacheWriteTokens,
        };
    }

    /// <summary>The sum of the figures of several calls.</summary>
    /// <param name="records">The calls.</param>
    /// <returns>Their figures added up.</returns>
    public static UsageFigures Of(IEnumerable<UsageRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var sum = Zero;
        foreach (var record in records)
        {
            sum += Of(record);
        }

        return sum;
    }

    /// <summary>The sum of several rows' figures.</summary>
    /// <param name="figures">The figures.</param>
    /// <returns>Their sum.</returns>
    public static UsageFigures Sum(IEnumerable<UsageFigures> figures)
    {
        ArgumentNullException.ThrowIfNull(figures);
        var sum = Zero;
        foreach (var f in figures)
        {
            sum += f;
        }

        return sum;
    }

    /// <summary>Adds two sets of figures, measure by measure.</summary>
    /// <param name="other">The figures to add.</param>
    /// <returns>The sum.</returns>
    public UsageFigures Add(UsageFigures other) => new(
        Calls + other.Calls,
        InputTokens + other.InputTokens,
        CachedInputTokens + other.CachedInputTokens,
        OutputTokens + other.OutputTokens,
        ReasoningTokens + other.ReasoningTokens,
        TotalTokens + other.TotalTokens,
        CostUsd + other.CostUsd)
    {
        CacheWriteTokens = CacheWriteTokens + other.CacheWriteTokens,
    };

    /// <summary>Adds two sets of figures, measure by measure.</summary>
    /// <param name="left">The first figures.</param>
    /// <param name="right">The second figures.</param>
    /// <returns>The sum.</returns>
    public static UsageFigures operator +(UsageFigures left, UsageFigures right) => left.Add(right);
}
