using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using TokenMeter.Metering;
using TokenMeter.Pricing;
using TokenMeter.Testing;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Writing;

namespace TokenMeter.Tests.Metering;

/// <summary>Collects every record the meter produces and lets a test await them.</summary>
internal sealed class CollectingObserver : IUsageObserver
{
    private readonly ConcurrentQueue<UsageRecord> _records = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private int _taken;

    public IReadOnlyList<UsageRecord> Records => _records.ToArray();

    public void OnUsage(UsageRecord record)
    {
        _records.Enqueue(record);
        _arrived.Release();
    }

    public async Task<UsageRecord> NextAsync()
    {
        if (!await _arrived.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            throw new TimeoutException("No usage record arrived.");
        }

        return _records.ToArray()[Interlocked.Increment(ref _taken) - 1];
    }

    public async Task<IReadOnlyList<UsageRecord>> WaitForAsync(int count)
    {
        await Eventually.ValueAsync(_ => ValueTask.FromResult(_records.Count), arrived => arrived >= count, TimeSpan.FromSeconds(30));
        return Records;
    }
}

/// <summary>A price of $1 per 1,000 input and $2 per 1,000 output tokens for every model but "unpriced-model".</summary>
internal sealed class FlatTestPricer : IUsagePricer
{
    public UsageRecord Price(UsageRecord record) => record.Model == "unpriced-model"
        ? record
        : record with { CostUsd = (record.InputTokens * 1m + record.OutputTokens * 2m) / 1000m, PriceId = "test/flat" };
}

/// <summary>A fake server, a service provider with TokenMeter, and metered / unmetered clients.</summary>
internal sealed class MeteringHarness : IAsyncDisposable
{
    private readonly string _spoolDirectory;

    private MeteringHarness(FakeOpenAIServer server, ServiceProvider services, CollectingObserver observer, string spoolDirectory)
    {
        _spoolDirectory = spoolDirectory;
        Server = server;
        Services = services;
        Observer = observer;
    }

    public FakeOpenAIServer Server { get; }

    public ServiceProvider Services { get; }

    public CollectingObserver Observer { get; }

    public static async Task<MeteringHarness> StartAsync(Action<IServiceCollection>? configure = null, Action<TokenMeterOptions>? options = null, bool observe = true)
    {
        var server = await FakeOpenAIServer.StartAsync();
        var observer = new CollectingObserver();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddTokenMeter(options);

        // A spool of its own: records a failed test left queued must not be replayed into the next test's writer.
        var spool = Directory.CreateTempSubdirectory("tokenmeter-harness-spool-").FullName;
        services.Configure<UsageWriterOptions>(o => o.SpoolDirectory = spool);
        if (observe)
        {
            services.AddSingleton<IUsageObserver>(observer);
        }

        services.AddSingleton<IUsagePricer, FlatTestPricer>();
        configure?.Invoke(services);
        return new MeteringHarness(server, services.BuildServiceProvider(), observer, spool);
    }

    public OpenAIClient Metered(int maxRetries = 0) => new(new ApiKeyCredential("sk-test"), Options(maxRetries).AddTokenMeter(Services));

    public OpenAIClient Unmetered(int maxRetries = 0) => new(new ApiKeyCredential("sk-test"), Options(maxRetries));

    public async ValueTask DisposeAsync()
    {
        await Services.DisposeAsync();
        await Server.DisposeAsync();
        Directory.Delete(_spoolDirectory, recursive: true);
    }

    private OpenAIClientOptions Options(int maxRetries) => new()
    {
        Endpoint = Server.Endpoint,
        RetryPolicy = new ClientRetryPolicy(maxRetries),
    };
}
