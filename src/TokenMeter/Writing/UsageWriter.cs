using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Storage;

namespace TokenMeter.Writing;

/// <summary>
/// Queues records in a bounded channel and stores them in batches from a background loop, retrying
/// with back-off while the store fails. Enqueue never blocks and never throws.
/// </summary>
internal sealed class UsageWriter : IUsageSink, IHostedService, IAsyncDisposable
{
    private readonly Channel<UsageRecord> _channel;
    private readonly ConcurrentQueue<UsageRecord> _overflow = new();
    private readonly IUsageStore _store;
    private readonly UsageWriterOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _abort = new();
    private Task? _loop;
    private int _disposed;

    public UsageWriter(IUsageStore store, IOptions<UsageWriterOptions> options, TimeProvider timeProvider, ILogger<UsageWriter>? logger = null)
    {
        _store = store;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _channel = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public void Enqueue(UsageRecord record)
    {
        if (record is null)
        {
            return;
        }

        if (!_channel.Writer.TryWrite(record))
        {
            _overflow.Enqueue(record);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop ??= Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _channel.Writer.TryComplete();
        if (_loop is null)
        {
            return;
        }

        using var registration = cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _abort);
        await _loop.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        // The container may dispose this twice: once as the writer, once as the hosted service.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _channel.Writer.TryComplete();
        await _abort.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _abort.Dispose();
    }

    private async Task RunAsync()
    {
        var batch = new List<UsageRecord>(_options.BatchSize);
        while (true)
        {
            try
            {
                if (!await ReadBatchAsync(batch).ConfigureAwait(false))
                {
                    return;
                }

                await StoreAsync(batch).ConfigureAwait(false);
                batch.Clear();
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The loop must survive anything; it logs and carries on.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.WriterLoopFailed(_logger, ex);
            }
        }
    }

    /// <summary>Fills the batch up to its size, or with what arrives within the flush interval. False when the queue is completed and empty.</summary>
    private async Task<bool> ReadBatchAsync(List<UsageRecord> batch)
    {
        var reader = _channel.Reader;
        if (batch.Count == 0 && _overflow.IsEmpty && !await reader.WaitToReadAsync(_abort.Token).ConfigureAwait(false))
        {
            // Completed: whatever overflowed is still stored.
            Take(batch);
            return batch.Count > 0;
        }

        var deadline = _timeProvider.GetUtcNow() + _options.FlushInterval;
        while (true)
        {
            Take(batch);
            if (batch.Count >= _options.BatchSize || reader.Completion.IsCompleted)
            {
                return true;
            }

            var remaining = deadline - _timeProvider.GetUtcNow();
            if (remaining <= TimeSpan.Zero)
            {
                return true;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(_abort.Token);
            var more = reader.WaitToReadAsync(wait.Token).AsTask();
            var timeout = Task.Delay(remaining, _timeProvider, wait.Token);
            var first = await Task.WhenAny(more, timeout).ConfigureAwait(false);
            await wait.CancelAsync().ConfigureAwait(false);
            _abort.Token.ThrowIfCancellationRequested();
            if (first == timeout || !await more.ConfigureAwait(false))
            {
                Take(batch);
                return true;
            }
        }
    }

    private void Take(List<UsageRecord> batch)
    {
        while (batch.Count < _options.BatchSize && _channel.Reader.TryRead(out var record))
        {
            batch.Add(record);
        }

        while (batch.Count < _options.BatchSize && _overflow.TryDequeue(out var record))
        {
            batch.Add(record);
        }
    }

    private async Task StoreAsync(List<UsageRecord> batch)
    {
        var delay = _options.InitialRetryDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _store.AppendAsync(batch.ToArray(), _abort.Token).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (!_abort.IsCancellationRequested)
            {
                Log.StoreWriteFailed(_logger, ex, batch.Count, attempt, delay);
                await Task.Delay(delay, _timeProvider, _abort.Token).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(Math.Max(delay.Ticks * 2, 1), _options.MaxRetryDelay.Ticks));
            }
        }
    }
}
