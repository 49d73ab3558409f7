using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using System.Diagnostics.Metrics;
using TokenMeter.Metering;
using TokenMeter.Diagnostics;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Testing;
using TokenMeter.Writing;

namespace TokenMeter.Tests.Writing;

public sealed class UsageWriterTests : IDisposable
{
    private readonly string _spoolDirectory = Path.Combine(Path.GetTempPath(), "tokenmeter-tests", "spool-" + Guid.NewGuid().ToString("N"));
    private readonly ServiceProvider _metricsServices = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        _metricsServices.Dispose();
        if (Directory.Exists(_spoolDirectory))
        {
            Directory.Delete(_spoolDirectory, recursive: true);
        }
    }

    private IMeterFactory MeterFactory => _metricsServices.GetRequiredService<IMeterFactory>();

    private static UsageRecord NewRecord(int i) => new()
    {
        Id = Guid.CreateVersion7(),
        CreatedAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(i),
        UserId = "u" + (i % 7),
        Model = "gpt-4o",
        InputTokens = i,
        TotalTokens = i,
        CostUsd = i / 1000m,
        Tags = new Dictionary<string, string> { ["n"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) },
    };

    private UsageWriter NewWriter(IUsageStore store, Action<UsageWriterOptions>? configure = null, TokenMeterInstruments? metrics = null)
    {
        var options = new UsageWriterOptions
        {
            BatchSize = 10,
            FlushInterval = TimeSpan.FromSeconds(1),
            InitialRetryDelay = TimeSpan.FromMilliseconds(100),
            MaxRetryDelay = TimeSpan.FromSeconds(1),
            MaxAttemptsBeforeSpool = 3,
            SpoolDirectory = _spoolDirectory,
        };
        configure?.Invoke(options);
        return new UsageWriter(store, Options.Create(options), _time, metrics);
    }

    private int SpoolFileCount() => Directory.Exists(_spoolDirectory) ? Directory.GetFiles(_spoolDirectory, "*.jsonl").Length : 0;

    private static async Task AssertStoredExactlyOnceAsync(FlakyUsageStore store, IEnumerable<UsageRecord> expected)
    {
        var stored = new List<UsageRecord>();
        await foreach (var r in store.Inner.ExportAsync(new UsageExportQuery()))
        {
            stored.Add(r);
        }

        Assert.Equal(expected.Select(r => r.Id).Order(), stored.Select(r => r.Id).Order());
    }

    [Fact]
    public async Task Enqueue_FullBatches_StoredWithoutWaitingForTheClock()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        for (var i = 0; i < 30; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await Eventually.TrueAsync(() => store.StoredCount == 30);
        Assert.True(store.AppendCalls <= 3 + 1);
    }

    [Fact]
    public async Task Enqueue_BatchFillsWhileTheLoopWaits_StoredInOneAppendWithoutTheClock()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store, o => o.FlushInterval = TimeSpan.FromHours(1));
        await writer.StartAsync(default);

        // The loop takes the first record and then waits for the batch to fill.
        writer.Enqueue(NewRecord(0));
        await Eventually.TrueAsync(() => writer.QueueLength == 0);
        for (var i = 1; i < 9; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        Assert.Equal(0, store.AppendCalls);

        // The tenth record fills the batch: it is stored at once, the fake clock never moves.
        writer.Enqueue(NewRecord(9));
        await Eventually.TrueAsync(() => store.StoredCount == 10);
        Assert.Equal(1, store.AppendCalls);
    }

    [Fact]
    public async Task Enqueue_ManyThreadsAtOnce_EveryBatchFillsAndIsStoredWithoutTheClock()
    {
        // Every batch waits for its last record; a lost wake-up would leave one waiting for an
        // hour that the fake clock never reaches.
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store, o =>
        {
            o.BatchSize = 100;
            o.FlushInterval = TimeSpan.FromHours(1);
        });
        await writer.StartAsync(default);

        var records = Enumerable.Range(0, 8000).Select(NewRecord).ToArray();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (var i = t; i < records.Length; i += 4)
            {
                writer.Enqueue(records[i]);
            }
        })));

        await Eventually.TrueAsync(() => store.StoredCount == records.Length, timeout: TimeSpan.FromSeconds(30));
        await AssertStoredExactlyOnceAsync(store, records);
        Assert.Equal(records.Length / 100, store.AppendCalls);
    }

    [Fact]
    public async Task Enqueue_PartialBatch_StoredOnlyAfterFlushInterval()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store, o => o.FlushInterval = TimeSpan.FromMinutes(1));
        await writer.StartAsync(default);

        writer.Enqueue(NewRecord(1));
        writer.Enqueue(NewRecord(2));

        // The writer's idle signal: it holds a partial batch and is parked until exactly one flush
        // interval after the first record; nothing is stored before the fake clock gets there.
        var due = await Eventually.ValueAsync(_ => ValueTask.FromResult(writer.FlushDue), d => d is not null);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromMinutes(1), due);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(0, store.StoredCount);

        await Eventually.TrueAsync(() => store.StoredCount == 2, advance: _time, step: TimeSpan.FromSeconds(10));
        Assert.Equal(1, store.AppendCalls);
    }

    [Fact]
    public async Task StoreFailingBriefly_RetriedWithBackoff_NothingLostNothingDoubledNothingSpooled()
    {
        var store = new FlakyUsageStore();
        store.FailNext(2);
        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        var records = Enumerable.Range(0, 25).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);

        await Eventually.TrueAsync(() => store.StoredCount == 25, advance: _time);
        await AssertStoredExactlyOnceAsync(store, records);
        Assert.Equal(0, SpoolFileCount());
    }

    [Fact]
    public async Task StoreDown_BatchesSpooled_ThenReplayedInOrderWhenItRecovers()
    {
        var store = new FlakyUsageStore { Down = true };
        var collector = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.spooled");
        var replayedCollector = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.replayed");
        await using var writer = NewWriter(store, metrics: TokenMeterInstruments.For(MeterFactory));
        await writer.StartAsync(default);

        var first = Enumerable.Range(0, 10).Select(NewRecord).ToList();
        first.ForEach(writer.Enqueue);
        await Eventually.TrueAsync(() => SpoolFileCount() == 1, advance: _time);

        // While the store is down the queue keeps draining into the spool.
        var more = Enumerable.Range(10, 35).Select(NewRecord).ToList();
        more.ForEach(writer.Enqueue);
        await Eventually.TrueAsync(() => writer.QueueLength == 0 && SpoolFileCount() >= 2, advance: _time);
        Assert.Equal(0, store.StoredCount);

        store.Down = false;
        // The counter moves just after the last file is deleted, so wait for it too.
        await Eventually.TrueAsync(
            () => store.StoredCount == 45 && SpoolFileCount() == 0 && replayedCollector.GetMeasurementSnapshot().EvaluateAsCounter() == 45,
            advance: _time,
            step: TimeSpan.FromSeconds(1));

        await AssertStoredExactlyOnceAsync(store, first.Concat(more));
        Assert.Equal(45, collector.GetMeasurementSnapshot().EvaluateAsCounter());
        Assert.Equal(45, replayedCollector.GetMeasurementSnapshot().EvaluateAsCounter());
    }

    [Fact]
    public async Task Crash_SpoolLeftBehind_ReplayedByTheNextWriterOnTheSameFolder()
    {
        var records = Enumerable.Range(0, 23).Select(NewRecord).ToList();
        var downStore = new FlakyUsageStore { Down = true };
        var crashed = NewWriter(downStore);
        await crashed.StartAsync(default);
        records.ForEach(crashed.Enqueue);
        await Eventually.TrueAsync(() => SpoolFileCount() == 3, advance: _time);

        // The process "dies": the writer is never stopped; only the spool folder survives. A
        // half-written file from the crash is ignored and removed.
        await File.WriteAllTextAsync(Path.Combine(_spoolDirectory, "0000000000000000000-9999999999-x.tmp"), "{\"id\":");

        var store = new FlakyUsageStore();
        await using var restarted = NewWriter(store);
        await restarted.StartAsync(default);

        await Eventually.TrueAsync(() => store.StoredCount == 23 && SpoolFileCount() == 0, advance: _time);
        await AssertStoredExactlyOnceAsync(store, records);
        Assert.Empty(Directory.GetFiles(_spoolDirectory, "*.tmp"));
        await crashed.DisposeAsync();
    }

    [Fact]
    public async Task Replay_TwiceOfTheSameFile_NeverCountsTwice()
    {
        var records = Enumerable.Range(0, 10).Select(NewRecord).ToList();
        var store = new FlakyUsageStore();
        await store.Inner.AppendAsync(records[..4]);

        // A spool file whose first records were already stored (a replay cut short by a crash).
        var spool = new UsageSpool(_spoolDirectory, _time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await spool.WriteAsync(records, default);

        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        await Eventually.TrueAsync(() => SpoolFileCount() == 0);
        await AssertStoredExactlyOnceAsync(store, records);
    }

    [Fact]
    public async Task Spool_UnreadableLine_SkippedOthersReplayed()
    {
        var records = Enumerable.Range(0, 3).Select(NewRecord).ToList();
        var spool = new UsageSpool(_spoolDirectory, _time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var path = await spool.WriteAsync(records, default);
        await File.AppendAllTextAsync(path, "not json\n");

        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        await Eventually.TrueAsync(() => SpoolFileCount() == 0);
        await AssertStoredExactlyOnceAsync(store, records);
    }

    [Fact]
    public async Task Spool_RoundTripsEveryField()
    {
        var record = NewRecord(5) with
        {
            Endpoint = "/api/chat",
            Operation = UsageOperation.Responses,
            RequestModel = "gpt-4o",
            ServiceTier = "flex",
            CachedInputTokens = 1,
            OutputTokens = 2,
            ReasoningTokens = 1,
            AudioInputTokens = 3,
            AudioOutputTokens = 4,
            PriceId = "gpt-4o/flex/2025-01-01",
            DurationMs = 12.5,
            Status = UsageStatus.Cancelled,
            HttpStatus = 499,
            Streaming = true,
            SessionId = "s",
            ProblemId = "p",
        };
        var spool = new UsageSpool(_spoolDirectory, _time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        var back = Assert.Single(await spool.ReadAsync(await spool.WriteAsync([record], default), default));

        Assert.Equal(record with { Tags = null }, back with { Tags = null });
        Assert.Equal(record.Tags, back.Tags);
    }

    [Fact]
    public async Task FullQueue_SpillsToSpoolInsteadOfDroppingOrBlocking()
    {
        var store = new FlakyUsageStore();
        var metrics = TokenMeterInstruments.For(MeterFactory);
        var queued = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.queued");
        var length = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.queue.length");
        await using var writer = NewWriter(store, o => o.QueueCapacity = 10, metrics);

        // Not started yet: the channel fills at 10 and the rest overflows, with no waiting.
        var records = Enumerable.Range(0, 100).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);
        Assert.Equal(100, writer.QueueLength);
        length.RecordObservableInstruments();
        Assert.Equal(100, length.LastMeasurement?.Value);
        Assert.Equal(100, queued.GetMeasurementSnapshot().EvaluateAsCounter());

        await writer.StartAsync(default);

        await Eventually.TrueAsync(() => store.StoredCount == 100 && SpoolFileCount() == 0, advance: _time);
        await AssertStoredExactlyOnceAsync(store, records);
        length.RecordObservableInstruments();
        Assert.Equal(0, length.LastMeasurement?.Value);
    }

    [Fact]
    public async Task Enqueue_NeverThrows_EvenAfterStop()
    {
        var store = new FlakyUsageStore();
        var writer = NewWriter(store);
        await writer.StartAsync(default);
        await writer.StopAsync(default);

        writer.Enqueue((UsageRecord)null!);
        writer.Enqueue(NewRecord(1));

        await writer.DisposeAsync();
    }

    [Fact]
    public async Task StopAsync_DrainsTheQueueToTheStore()
    {
        var store = new FlakyUsageStore();
        var written = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.written");
        var writer = NewWriter(store, o => o.FlushInterval = TimeSpan.FromHours(1), TokenMeterInstruments.For(MeterFactory));
        await writer.StartAsync(default);
        var records = Enumerable.Range(0, 1234).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);

        await writer.StopAsync(CancellationToken.None);

        await AssertStoredExactlyOnceAsync(store, records);
        Assert.Equal(1234, written.GetMeasurementSnapshot().EvaluateAsCounter());
        Assert.Equal(0, SpoolFileCount());
        await writer.DisposeAsync();
    }

    [Fact]
    public async Task StopAsync_StoreDown_DrainsTheQueueToTheSpool()
    {
        var store = new FlakyUsageStore { Down = true };
        var failed = new MetricCollector<long>(MeterFactory, TokenMeterDiagnostics.MeterName, "tokenmeter.writer.failed");
        var writer = NewWriter(store, o => o.FlushInterval = TimeSpan.FromHours(1), TokenMeterInstruments.For(MeterFactory));
        await writer.StartAsync(default);
        var records = Enumerable.Range(0, 95).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);

        // The fake clock never moves: stopping must not wait on retry back-off.
        await writer.StopAsync(CancellationToken.None);
        await writer.DisposeAsync();

        Assert.Equal(0, store.StoredCount);
        Assert.True(failed.GetMeasurementSnapshot().EvaluateAsCounter() >= 1);
        var spool = new UsageSpool(_spoolDirectory, _time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var spooled = new List<UsageRecord>();
        foreach (var file in spool.Files())
        {
            spooled.AddRange(await spool.ReadAsync(file, default));
        }

        Assert.Equal(records.Select(r => r.Id).Order(), spooled.Select(r => r.Id).Order());
    }

    [Fact]
    public async Task StopAsync_ShutdownTimeoutExpires_InFlightWriteCancelledAndBatchSpooled()
    {
        var store = new HangingUsageStore();
        var writer = NewWriter(store);
        await writer.StartAsync(default);
        var records = Enumerable.Range(0, 10).Select(NewRecord).ToList();
        records.ForEach(writer.Enqueue);
        await store.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        using var timeout = new CancellationTokenSource();
        var stop = writer.StopAsync(timeout.Token);
        await timeout.CancelAsync();
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
        await writer.DisposeAsync();

        Assert.Equal(1, SpoolFileCount());
    }

    [Fact]
    public async Task AddTokenMeter_HostedWriterStoresIntoInMemoryStore_AndDrainsOnStop()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Writer:SpoolDirectory"] = _spoolDirectory,
            ["TokenMeter:Writer:FlushInterval"] = "00:10:00",
        });
        builder.Services.AddTokenMeter();
        using var host = builder.Build();
        await host.StartAsync();

        var sink = host.Services.GetRequiredService<IUsageSink>();
        sink.Enqueue(NewRecord(1));
        sink.Enqueue(NewRecord(2));
        await host.StopAsync();

        var queries = host.Services.GetRequiredService<IUsageQueries>();
        var stats = await queries.GetStatsAsync(new DateOnly(2026, 1, 1));
        Assert.Equal(2, stats.Figures.Calls);
        Assert.Same(host.Services.GetRequiredService<IUsageStore>(), queries);
        Assert.Equal(_spoolDirectory, host.Services.GetRequiredService<UsageWriter>().SpoolDirectory);
    }

    [Theory]
    [InlineData("BatchSize", "0")]
    [InlineData("QueueCapacity", "0")]
    [InlineData("MaxAttemptsBeforeSpool", "0")]
    [InlineData("FlushInterval", "00:00:00")]
    public async Task Options_Invalid_HostFailsAtStartNamingTheKey(string key, string value)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TokenMeter:Writer:" + key] = value });
        builder.Services.AddTokenMeter();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("TokenMeter:Writer:" + key, ex.Message, StringComparison.Ordinal);
    }

    private sealed class HangingUsageStore : IUsageStore
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
        {
            Entered.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }
    }
}
