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

    // Ids whose order differs between ordinal, case-insensitive and numeric sorts (bulk reads are ordered in the app).
    private static readonly string[] MixedUsers = ["u0", "u1", "u2", "u3", "u4", "B", "a", "user-10", "user-9", "Émile", "zoë"];

    /// <summary>
    /// <paramref name="count"/> records at random minutes of <paramref name="days"/> days from <paramref name="start"/>: a mix of
    /// users (a ninth anonymous), endpoints and models (some null), tokens and costs (an eighth unpriced).
    /// </summary>
    public static UsageRecord[] Mixed(Random random, int count, DateTimeOffset start, int days) =>
        [.. Enumerable.Range(0, count).Select(_ => Make(
            start.AddMinutes(random.Next(0, 60 * 24 * days)),
            userId: random.Next(9) == 0 ? null : MixedUsers[random.Next(MixedUsers.Length)],
            endpoint: random.Next(6) == 0 ? null : "/api/e" + random.Next(3),
            model: random.Next(7) == 0 ? null : "m" + random.Next(2),
            input: random.Next(1, 1000),
            output: random.Next(1, 500),
            cost: random.Next(8) == 0 ? null : random.Next(1, 100_000) / 10_000_000m,
            cached: random.Next(0, 50)))];
}
