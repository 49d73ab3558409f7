using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Diagnostics;
using TokenMeter.Storage;
using TokenMeter.Testing;
using TokenMeter.Writing;

namespace TokenMeter.Tests.Writing;

/// <summary>The writer's start-up line, its quiet handling of a store still installing, and its health check.</summary>
public sealed class WriterStartupAndHealthTests : IDisposable
{
    private readonly string _spoolDirectory = Path.Combine(Path.GetTempPath(), "tokenmeter-tests", "spool-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeLogger<UsageWriter> _logger = new();

    public void Dispose()
    {
        if (Directory.Exists(_spoolDirectory))
        {
            Directory.Delete(_spoolDirectory, recursive: true);
        }
    }

    private UsageWriter NewWriter(IUsageStore store, int queueCapacity = 100) => new(
        store,
        Options.Create(new UsageWriterOptions
        {
            BatchSize = 5,
            FlushInterval = TimeSpan.FromSeconds(1),
            InitialRetryDelay = TimeSpan.FromMilliseconds(100),
            MaxRetryDelay = TimeSpan.FromSeconds(1),
            QueueCapacity = queueCapacity,
            SpoolDirectory = _spoolDirectory,
        }),
        _time,
        logger: _logger);

    private static UsageRecord NewRecord(int i) => new()
    {
        Id = Guid.CreateVersion7(),
        CreatedAt = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(i),
        UserId = "u" + i,
        Model = "gpt-4o",
        InputTokens = i,
        TotalTokens = i,
    };

    private Task<HealthCheckResult> CheckAsync(UsageWriter writer) =>
        new UsageWriterHealthCheck(writer, _time).CheckHealthAsync(new HealthCheckContext());

    [Fact]
    public async Task Start_LogsTheSpoolFolderOnce()
    {
        await using var writer = NewWriter(new InMemoryUsageStore());
        await writer.StartAsync(default);
        await writer.StartAsync(default);

        var line = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Id.Id == 2012);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Contains(_spoolDirectory, line.Message, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Writer:SpoolDirectory", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreNotReady_OneQuietLineNoWarningNoStackTrace_ThenReplayedWhenReady()
    {
        var store = new InstallingStore();
        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        for (var i = 0; i < 15; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await Eventually.TrueAsync(() => writer.QueueLength == 0 && writer.SpooledFiles == 3, advance: _time);
        _time.Advance(TimeSpan.FromSeconds(5)); // replays are attempted, and refused, meanwhile
        await Eventually.TrueAsync(() => store.Attempts >= 5, advance: _time);

        var logs = _logger.Collector.GetSnapshot();
        Assert.DoesNotContain(logs, r => r.Level >= LogLevel.Warning);
        Assert.DoesNotContain(logs, r => r.Exception is not null);
        var notReady = Assert.Single(logs, r => r.Id.Id == 2013);
        Assert.Equal(LogLevel.Information, notReady.Level);
        Assert.Contains("schema is installing (test)", notReady.Message, StringComparison.Ordinal);

        store.Ready = true;
        await Eventually.TrueAsync(() => store.Inner.Count == 15 && writer.SpooledFiles == 0, advance: _time, step: TimeSpan.FromSeconds(1));
        Assert.DoesNotContain(_logger.Collector.GetSnapshot(), r => r.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Health_HealthyThenDegradedWhileSpooledThenUnhealthyAfterAMinuteThenHealthyAgain()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store);
        await writer.StartAsync(default);

        var healthy = await CheckAsync(writer);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal("never", healthy.Data["lastSuccessfulWrite"]);

        for (var i = 0; i < 5; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await Eventually.TrueAsync(() => store.StoredCount == 5, advance: _time);
        var written = await CheckAsync(writer);
        Assert.Equal(HealthStatus.Healthy, written.Status);
        Assert.True(DateTimeOffset.Parse((string)written.Data["lastSuccessfulWrite"], System.Globalization.CultureInfo.InvariantCulture) <= _time.GetUtcNow());

        store.Down = true;
        for (var i = 5; i < 10; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        await Eventually.TrueAsync(() => writer.SpooledFiles == 1, advance: _time);
        var degraded = await CheckAsync(writer);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        Assert.Equal(1, degraded.Data["spooledFiles"]);
        Assert.Equal(false, degraded.Data["storeAvailable"]);

        _time.Advance(UsageWriterHealthCheck.UnhealthyAfter + TimeSpan.FromSeconds(1));
        var unhealthy = await CheckAsync(writer);
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Contains("refused writes", unhealthy.Description, StringComparison.Ordinal);

        store.Down = false;
        await Eventually.TrueAsync(() => store.StoredCount == 10 && writer.SpooledFiles == 0 && CheckAsync(writer).Result.Status == HealthStatus.Healthy, advance: _time, step: TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Health_QueueMoreThanHalfFull_Degraded()
    {
        var store = new FlakyUsageStore();
        await using var writer = NewWriter(store, queueCapacity: 10);

        // Not started: nothing drains the queue.
        for (var i = 0; i < 6; i++)
        {
            writer.Enqueue(NewRecord(i));
        }

        var result = await CheckAsync(writer);
        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Equal(6, result.Data["queueLength"]);
        Assert.Equal(10, result.Data["queueCapacity"]);
    }

    [Fact]
    public async Task AddHealthChecks_AddTokenMeter_RegistersWriterAndStoreChecksInEitherOrder()
    {
        foreach (var healthFirst in new[] { true, false })
        {
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build());
            services.Configure<UsageWriterOptions>(o => o.SpoolDirectory = _spoolDirectory);
            if (healthFirst)
            {
                services.AddHealthChecks().AddTokenMeter();
                services.AddTokenMeter();
            }
            else
            {
                services.AddTokenMeter();
                services.AddHealthChecks().AddTokenMeter();
            }

            await using var sp = services.BuildServiceProvider();
            var report = await sp.GetRequiredService<HealthCheckService>().CheckHealthAsync();

            Assert.Equal(HealthStatus.Healthy, report.Status);
            Assert.Equal(
                [TokenMeterHealthChecks.StoreCheckName, TokenMeterHealthChecks.WriterCheckName],
                report.Entries.Keys.Order(StringComparer.Ordinal));
            Assert.Contains("In-memory", report.Entries[TokenMeterHealthChecks.StoreCheckName].Description, StringComparison.Ordinal);
        }
    }

    /// <summary>A store whose schema is still installing until told it is ready.</summary>
    private sealed class InstallingStore : IUsageStore
    {
        private int _attempts;
        private volatile bool _ready;

        public InMemoryUsageStore Inner { get; } = new();

        public bool Ready
        {
            get => _ready;
            set => _ready = value;
        }

        public int Attempts => Volatile.Read(ref _attempts);

        public ValueTask<int> AppendAsync(IReadOnlyList<UsageRecord> records, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _attempts);
            return Ready ? Inner.AppendAsync(records, cancellationToken) : throw new UsageStoreNotReadyException("the schema is installing (test)");
        }
    }
}
