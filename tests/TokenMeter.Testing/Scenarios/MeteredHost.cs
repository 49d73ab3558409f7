using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;

namespace TokenMeter.Testing.Scenarios;

/// <summary>
/// A generic host with <c>AddTokenMeter().AddPostgresStore(...).AddOpenAIClient(...)</c> (or the
/// in-memory store when no connection string is given), exactly as an application registers it,
/// plus a listener on the writer's metrics (queue length, written, spooled, replayed, failed).
/// </summary>
public sealed class MeteredHost : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly MeterListener _listener = new();
    private long _queueLength;
    private long _written;
    private long _spooled;
    private long _replayed;
    private long _failedBatches;
    private int _stopped;
    private readonly MeteringErrorCounter _errors;

    private MeteredHost(IHost host, string spoolDirectory, MeteringErrorCounter errors)
    {
        _host = host;
        _errors = errors;
        SpoolDirectory = spoolDirectory;
        Client = host.Services.GetRequiredService<OpenAIClient>();
        Chat = Client.GetChatClient("gpt-4o-mini");
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == TokenMeterDiagnostics.MeterName && instrument.Name.StartsWith("tokenmeter.writer.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            switch (instrument.Name)
            {
                case "tokenmeter.writer.queue.length": Volatile.Write(ref _queueLength, value); break;
                case "tokenmeter.writer.written": Interlocked.Add(ref _written, value); break;
                case "tokenmeter.writer.spooled": Interlocked.Add(ref _spooled, value); break;
                case "tokenmeter.writer.replayed": Interlocked.Add(ref _replayed, value); break;
                case "tokenmeter.writer.failed": Interlocked.Add(ref _failedBatches, value); break;
            }
        });
        _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) =>
        {
            if (instrument.Name == "tokenmeter.writer.queue.length")
            {
                Volatile.Write(ref _queueLength, value);
            }
        });
        _listener.Start();
    }

    public OpenAIClient Client { get; }

    public ChatClient Chat { get; }

    public string SpoolDirectory { get; }

    public IServiceProvider Services => _host.Services;

    public long Written => Interlocked.Read(ref _written);

    public long Spooled => Interlocked.Read(ref _spooled);

    public long Replayed => Interlocked.Read(ref _replayed);

    public long FailedBatches => Interlocked.Read(ref _failedBatches);

    /// <summary>Warnings and errors the metering path logged about itself (event ids 1000–1003: metering, observer, pricing, queuing failed).</summary>
    public int MeteringErrors => _errors.Count;

    /// <summary>The first warnings and errors TokenMeter logged (a failed batch's reason, for one).</summary>
    public IReadOnlyCollection<string> Warnings => _errors.First;

    /// <summary>Records waiting in memory now (the writer's queue-length gauge).</summary>
    public long QueueLength()
    {
        _listener.RecordObservableInstruments();
        return Volatile.Read(ref _queueLength);
    }

    public static async Task<MeteredHost> StartAsync(Uri modelEndpoint, string? connectionString, string spoolDirectory, TimeSpan flushInterval, int batchSize = 500)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        var errors = new MeteringErrorCounter();
        builder.Logging.AddProvider(errors);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Writer:SpoolDirectory"] = spoolDirectory,
            ["TokenMeter:Writer:FlushInterval"] = flushInterval.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
            ["TokenMeter:Writer:BatchSize"] = batchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TokenMeter:Writer:InitialRetryDelay"] = "00:00:00.100",
            ["TokenMeter:Writer:MaxRetryDelay"] = "00:00:01",
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        var tokenMeter = builder.Services.AddTokenMeter();
        if (connectionString is not null)
        {
            tokenMeter.AddPostgresStore(connectionString);
        }

        tokenMeter.AddOpenAIClient(o =>
        {
            o.Endpoint = modelEndpoint;
            o.ApiKey = "load-test-key";
            o.MaxRetries = 0;
        });
        var host = builder.Build();
        await host.StartAsync().ConfigureAwait(false);
        return new MeteredHost(host, spoolDirectory, errors);
    }

    /// <summary>Stops the host: the writer drains its queue to the store (or the spool).</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            await _host.StopAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_host is IAsyncDisposable d)
        {
            await d.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            _host.Dispose();
        }
    }
}

/// <summary>Counts the metering path's own failure logs (TokenMeter event ids 1000–1003).</summary>
internal sealed class MeteringErrorCounter : ILoggerProvider, ILogger
{
    /// <summary>Warnings and errors kept word for word (the first few: enough to say why a batch failed).</summary>
    private const int Kept = 5;

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _first = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    /// <summary>The first warnings and errors TokenMeter logged, with their exception's type and message.</summary>
    public IReadOnlyCollection<string> First => _first;

    public ILogger CreateLogger(string categoryName) => categoryName.StartsWith("TokenMeter", StringComparison.Ordinal) ? this : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id is >= 1000 and <= 1003)
        {
            Interlocked.Increment(ref _count);
        }

        if (logLevel >= LogLevel.Warning && _first.Count < Kept)
        {
            _first.Enqueue($"{logLevel} [{eventId.Id}] {formatter(state, exception)}{(exception is null ? string.Empty : $" ({exception.GetType().Name}: {exception.Message})")}");
        }
    }

    public void Dispose()
    {
    }
}
