using TokenMeter.Attribution;

namespace HomeworkApi.Homework;

/// <summary>The <c>usage</c> object of every successful homework response (CONTRACT §3), from the request's scope totals.</summary>
internal sealed record UsageDto(long InputTokens, long CachedInputTokens, long CacheWriteTokens, long OutputTokens, long ReasoningTokens, long TotalTokens, decimal CostUsd, string? Model)
{
    public static UsageDto From(UsageTotals totals) => new(
        totals.Figures.InputTokens,
        totals.Figures.CachedInputTokens,
        totals.Figures.CacheWriteTokens,
        totals.Figures.OutputTokens,
        totals.Figures.ReasoningTokens,
        totals.Figures.TotalTokens,
        totals.Figures.CostUsd,
        totals.Model);
}
