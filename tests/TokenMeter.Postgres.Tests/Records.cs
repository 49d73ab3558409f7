namespace TokenMeter.Postgres.Tests;

/// <summary>Builds usage records for tests.</summary>
internal static class Records
{
    public static UsageRecord Make(
        DateTimeOffset at,
        string? userId = "u1",
        string? endpoint = "/api/analyze",
        string? model = "gpt-4o",
        long input = 100,
        long output = 50,
        decimal? cost = 0.001m,
        long cached = 0,
        long reasoning = 0) => new()
        {
            Id = Guid.CreateVersion7(at),
            CreatedAt = at,
            UserId = userId,
            Endpoint = endpoint,
            Operation = UsageOperation.Chat,
            RequestModel = model,
            Model = model,
            InputTokens = input,
            CachedInputTokens = cached,
            OutputTokens = output,
            ReasoningTokens = reasoning,
            TotalTokens = input + output,
            CostUsd = cost,
            PriceId = cost is null ? null : model + "/standard/2024-08-06",
            DurationMs = 123.5,
            Status = UsageStatus.Ok,
            HttpStatus = 200,
        };
}
