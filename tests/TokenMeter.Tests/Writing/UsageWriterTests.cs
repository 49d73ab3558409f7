using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Writing;

namespace TokenMeter.Tests.Writing;

public sealed class UsageWriterTests
{
    private static UsageRecord NewRecord(int i) => new()
    {
        Id = Guid.CreateVersion7(),
        CreatedAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(i),
        UserId = "u" + (i % 7),
        Model = "gpt-4o",
        InputTokens = i,
        TotalTokens = i,
    };

    private static UsageWriter NewWriter(IUsageStore store, TimeProvider time, Action<UsageWriterOptions>? configure = null)
    {
        var options = new UsageWriterOptions { BatchSize = 10, FlushInterval = TimeSpan.FromSeconds(1), InitialRetryDelay = TimeSpan.FromMilliseconds(100), MaxRetryDelay = TimeSpan.FromSeconds(1) };
        configure?.Invoke(options);
        return new UsageWriter(store, Options.Create(options), time);
    }

    [Fact]
    public async Task Enqueue_FullBatches_StoredWithoutWaitingForTheClock()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store, new FakeTimeProvider());
        await writer.StartAsync(default);

        for (var i = 0; i < 30; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await Eventually.TrueAsync(() => store.StoredCount == 30);
    }

    [Fact]
    public async Task Enqueue_PartialBatch_StoredAfterFlushInterval()
    {
        var store = new FlakyUsageStore();
        var time = new FakeTimeProvider();
        await using var writer = NewWriter(store, time);
        await writer.StartAsync(default);

        writer.Enqueue(NewRecord(1));
        writer.Enqueue(NewRecord(2));

        await Eventually.TrueAsync(() => store.StoredCount == 2, advance: time);
    }

    [Fact]
    public async Task StopAsync_DrainsTheQueue()
    {
        var store = new FlakyUsageStore();
        var writer = NewWriter(store, new FakeTimeProvider());
        await writer.StartAsync(default);
        for (var i = 0; i < 1234; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await writer.StopAsync(CancellationToken.None);

        Assert.Equal(1234, store.StoredCount);
        await writer.DisposeAsync();
    }

    [Fact]
    public async Task StoreFailingThenRecovering_NothingLostNothingDoubled()
    {
        var store = new FlakyUsageStore();
        store.FailNext(2);
        var time = new FakeTimeProvider();
        await using var writer = NewWriter(store, time);
        await writer.StartAsync(default);

        var records = Enumerable.Range(0, 25).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);

        await Eventually.TrueAsync(() => store.StoredCount == 25, advance: time);
        var exported = await store.Inner.ExportAsync(new UsageExportQuery()).ToListAsync();
        Assert.Equal(records.Select(r => r.Id).Order(), exported.Select(r => r.Id).Order());
    }

    [Fact]
    public async Task AddTokenMeter_HostedWriterStoresIntoInMemoryStore()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTokenMeter();
        using var host = builder.Build();
        await host.StartAsync();

        var sink = host.Services.GetRequiredService<IUsageSink>();
        sink.Enqueue(NewRecord(1));
        sink.Enqueue(NewRecord(2));
        await host.StopAsync();

        var queries = host.Services.GetRequiredService<IUsageQueries>();
        var stats = await queries.GetStatsAsync(new DateOnly(2026, 1, 1));
        Assert.Equal(2, stats.TotalCalls);
        Assert.Same(host.Services.GetRequiredService<IUsageStore>(), queries);
    }
}
