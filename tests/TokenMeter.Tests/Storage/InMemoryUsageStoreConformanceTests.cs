using TokenMeter.Storage;
using TokenMeter.Testing.Conformance;

namespace TokenMeter.Tests.Storage;

/// <summary>Runs the store conformance suite against the in-memory store.</summary>
public sealed class InMemoryUsageStoreConformanceTests : UsageStoreConformanceTests
{
    protected override ValueTask<ConformanceStore> CreateStoreAsync(TimeProvider timeProvider) =>
        ValueTask.FromResult(ConformanceStore.Of(new InMemoryUsageStore(timeProvider)));
}

public sealed class InMemoryUsageStoreTests
{
    [Fact]
    public async Task HundredThousandRecords_AppendAndQueryQuickly()
    {
        var store = new InMemoryUsageStore();
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var records = Enumerable.Range(0, 100_000).Select(i => new UsageRecord
        {
            Id = Guid.CreateVersion7(),
            CreatedAt = start.AddMinutes(i),
            UserId = i % 10 == 0 ? null : "user-" + (i % 1000),
            Endpoint = "/api/e" + (i % 5),
            Model = "gpt-4o",
            InputTokens = 10,
            OutputTokens = 5,
            TotalTokens = 15,
            CostUsd = 0.0001m,
        }).ToList();
        var watch = System.Diagnostics.Stopwatch.StartNew();

        for (var i = 0; i < records.Count; i += 500)
        {
            await store.AppendAsync(records.GetRange(i, 500));
        }

        var stats = await store.GetStatsAsync(new DateOnly(2026, 2, 1));
        var page = await store.GetUserSummariesAsync(new TokenMeter.Querying.UserSummaryQuery(Limit: 500));
        var daily = await store.GetDailyUsageAsync(new DateOnly(2026, 1, 1), new DateOnly(2026, 12, 31));
        var exported = 0;
        await foreach (var _ in store.ExportAsync(new TokenMeter.Querying.UsageExportQuery(UserId: "user-1")))
        {
            exported++;
        }

        Assert.Equal(100_000, stats.Figures.Calls);
        Assert.Equal(10m, stats.Figures.CostUsd);
        Assert.Equal(900, stats.ActiveUsers);
        Assert.Equal(900, page.Total);
        Assert.Equal(70, daily.Count);
        Assert.Equal(100, exported);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }
}
