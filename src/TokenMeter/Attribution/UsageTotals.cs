namespace TokenMeter.Attribution;

/// <summary>What the calls made inside a <see cref="UsageScope"/> used and cost so far.</summary>
/// <param name="Calls">Number of metered calls.</param>
/// <param name="InputTokens">Input tokens, cached ones included.</param>
/// <param name="CachedInputTokens">Cached input tokens.</param>
/// <param name="OutputTokens">Output tokens, reasoning ones included.</param>
/// <param name="ReasoningTokens">Reasoning tokens.</param>
/// <param name="TotalTokens">Total tokens.</param>
/// <param name="CostUsd">Cost in US dollars of the priced calls.</param>
/// <param name="UnpricedCalls">Calls whose model had no price (not in <paramref name="CostUsd"/>).</param>
/// <param name="Model">The model of the most recent call, if any.</param>
public sealed record UsageTotals(
    int Calls,
    long InputTokens,
    long CachedInputTokens,
    long OutputTokens,
    long ReasoningTokens,
    long TotalTokens,
    decimal CostUsd,
    int UnpricedCalls,
    string? Model)
{
    /// <summary>Input tokens written to the prompt cache (a part of <see cref="InputTokens"/>).</summary>
    public long CacheWriteTokens { get; init; }

    /// <summary>No calls.</summary>
    public static UsageTotals Empty { get; } = new(0, 0, 0, 0, 0, 0, 0m, 0, null);

    /// <summary>These totals with one more record added.</summary>
    /// <param name="record">The record to add.</param>
    /// <returns>The new totals.</returns>
    public UsageTotals Add(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new UsageTotals(
            Calls + 1,
            InputTokens + record.InputTokens,
            CachedInputTokens + record.CachedInputTokens,
            OutputTokens + record.OutputTokens,
            ReasoningTokens + record.ReasoningTokens,
            TotalTokens + record.TotalTokens,
            CostUsd + (record.CostUsd ?? 0m),
            UnpricedCalls + (record.CostUsd is null ? 1 : 0),
            record.Model ?? record.RequestModel ?? Model)
        {
            CacheWriteTokens = CacheWriteTokens + record.CacheWriteTokens,
        };
    }
}
