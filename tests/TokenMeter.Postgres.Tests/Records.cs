using TokenMeter.Testing.Conformance;

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
        long reasoning = 0) =>
        UsageStoreConformanceTests.Call(userId, at, endpoint, model, input, output, cost, cached, reasoning) with
        {
            DurationMs = 123.5,
            HttpStatus = 200,
        };
}
