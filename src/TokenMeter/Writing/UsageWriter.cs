using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TokenMeter.Attribution;
using TokenMeter.Diagnostics;
using TokenMeter.Metering;
using TokenMeter.Resilience;
using TokenMeter.Storage;

namespace TokenMeter.Writing;

/// <summary>
/// The background writer. <see cref="Enqueue(UsageRecord)"/> puts a record (or, through
/// <see cref="Enqueue(MeteredCall)"/>, a finished call whose record it builds when it takes it) in a bounded channel and returns at
/// once (a full channel spills to an overflow queue that the writer moves to the spool, so nothing
/// is dropped and the caller never waits or does I/O). One loop stores batches by size or time,
/// retries a failing store with the shared back-off (<see cref="RetryBackoff"/>), spills batches to the durable spool once
/// the store keeps failing, keeps spooling while it is down, and replays the spool in order when it
/// recovers (and at start, for whatever a crash left). Stopping drains the queue to the store, or
/// to the spool when the store is down or the host's shutdown timeout runs out.
/// </summary>
internal sealed class UsageWriter : IUsageSink, IHostedService, IAsyncDisposable
{
    // Each entry is a UsageRecord, or a finished MeteredCall whose record is built when the loop takes it.
    private readonly Channel<object> _channel;
    private readonly ConcurrentQueue<object> _overflow = new();
    private readonly List<UsageRecord> _held = [];
    private readonly HashSet<UsageScope> _scopesToFold = new(ReferenceEqualityComparer.Instance);
    private readonly IUsageStore _store;
    private readonly UsageWriterOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly TokenMeterInstruments? _metrics;
    private readonly UsageSpool _spool;
    private readonly RetryBackoff _backoff;
    private readonly IUsageStoredObserver[] _storedObservers;

    // Stopping: no more waiting for batches to fill or between retries. Abort: the host's shutdown
    // timeout ran out, so in-flight store calls are cancelled and the rest goes to the spool.
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abort = new();

    // Set by the loop while it waits for a batch to fill; Enqueue completes it once enough records
    // are queued. The loop thus wakes once a batch (or at the flush interval), not once a record.
    private TaskCompletionSource? _batchFilled;
    private int _batchNeeds;

    // Entries in the channel, kept here because the bounded channel's Count takes its lock: Enqueue
    // reads it on every metered call (backlog and batch checks). Raised after a write, lowered after a read.
    private int _queued;

    private Task? _loop;
    private int _disposed;
    private long _flushDueTicks;
    private int _queueFullLogged;
    private bool _storeUp = true;
    private bool _spoolPending;
    private DateTimeOffset _nextProbe;
    private long _lastWriteTicks;
    private long _startedTicks;
    private int _notReadyLogged;

    // Failed probes of a down store in a row: the next probe waits the back-off after that many.
    private int _downProbes;

    public UsageWriter(
        IUsageStore store,
        IOptions<UsageWriterOptions> options,
        TimeProvider timeProvider,
        TokenMeterInstruments? metrics = null,
        ILogger<UsageWriter>? logger = null,
        IEnumerable<IUsageStoredObserver>? storedObservers = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _store = store;
        _options = options.Value;
        _timeProvider = timeProvider;
        _metrics = metrics;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _storedObservers = storedObservers?.ToArray() ?? [];
        _spool = new UsageSpool(_options.ResolveSpoolDirectory(), timeProvider, _logger);
        // At least 1 ms, so probes of a down store back off even when retries are set to be immediate.
        var initialDelay = TimeSpan.FromTicks(Math.Max(_options.InitialRetryDelay.Ticks, TimeSpan.TicksPerMillisecond));
        _backoff = new RetryBackoff(initialDelay, initialDelay > _options.MaxRetryDelay ? initialDelay : _options.MaxRetryDelay);
        _channel = Channel.CreateBounded<object>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _metrics?.ObserveWriterQueue(() => _channel.Reader.Count + _overflow.Count);
    }

    /// <summary>The spool folder in use.</summary>
    public string SpoolDirectory => _spool.Directory;

    public bool IsBacklogged => Volatile.Read(ref _queued) > 2 * _options.BatchSize || !_overflow.IsEmpty;

    /// <summary>Records waiting in memory.</summary>
    public int QueueLength => _channel.Reader.Count + _overflow.Count;

    /// <summary>Most records the in-memory queue holds before it spills to the spool.</summary>
    public int QueueCapacity => _options.QueueCapacity;

    /// <summary>Whether the last write to the store succeeded (false while the store is failing).</summary>
    public bool StoreAvailable => Volatile.Read(ref _storeUp);

    /// <summary>Complete spool files waiting to be replayed into the store.</summary>
    public int SpooledFiles => _spool.Files().Count;

    /// <summary>When a batch was last stored (from the queue or the spool), or null if none was yet.</summary>
    public DateTimeOffset? LastSuccessfulWrite => Interlocked.Read(ref _lastWriteTicks) is var t and > 0 ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    /// <summary>When the writer started, or null before it did.</summary>
    public DateTimeOffset? Started => Interlocked.Read(ref _startedTicks) is var t and > 0 ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    /// <summary>
    /// When the partial batch the loop holds is due to be stored (on the writer's clock), or null when
    /// it holds none. Tests read it as the writer's idle signal: parked, and until when.
    /// </summary>
    internal DateTimeOffset? FlushDue
    {
        get
        {
            var ticks = Volatile.Read(ref _flushDueTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    public void Enqueue(UsageRecord record)
    {
        if (record is not null)
        {
            EnqueueEntry(record);
        }
    }

    public void Enqueue(MeteredCall usage)
    {
        if (usage is not null)
        {
            EnqueueEntry(usage);
        }
    }

    private void EnqueueEntry(object entry)
    {
        try
        {
            if (!_channel.Writer.TryWrite(entry))
            {
                _overflow.Enqueue(entry);
                if (Interlocked.Exchange(ref _queueFullLogged, 1) == 0)
                {
                    Log.QueueFull(_logger, _options.QueueCapacity);
                }
            }
            else if (Interlocked.Increment(ref _queued) is var queued && Volatile.Read(ref _batchFilled) is { } filled && queued >= Volatile.Read(ref _batchNeeds))
            {
                // The increment is a full fence, paired with the loop's publishing of the signal
                // before it counts: either the loop sees this record, or this sees the signal.
                filled.TrySetResult();
            }

            _metrics?.WriterQueued.Add(1);
        }
#pragma warning disable CA1031 // Enqueue must never throw into a metered call.
        catch (Exception)
#pragma warning restore CA1031
        {
            _overflow.Enqueue(entry);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_loop is null)
        {
            Interlocked.Exchange(ref _startedTicks, _timeProvider.GetUtcNow().UtcTicks);
            Log.WriterStarted(_logger, _spool.Directory);
        }

        _loop ??= Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // A host torn down after its container (WebApplicationFactory does this) stops a disposed
        // writer; its loop has already drained, so there is nothing left to do.
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        _channel.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is null)
        {
            return;
        }

        using (cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _abort))
        {
            await _loop.ConfigureAwait(false);
        }

        // Records that raced with the stop: spool them rather than lose them.
        if (!_overflow.IsEmpty)
        {
            await SpillOverflowAsync().ConfigureAwait(false);
            if (!_overflow.IsEmpty)
            {
                Log.RecordsLostAfterStop(_logger, _overflow.Count);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // The container may dispose this twice: once as the writer, once as the hosted service.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _channel.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _abort.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        // _stopping and _abort are not disposed: they own no timer, and a host stopping this writer while its container
        // disposes it (WebApplicationFactory tears both down) may still cancel them after this point.
    }

    private async Task RunAsync()
    {
        try
        {
            _spool.DeleteIncompleteFiles();
            _spoolPending = _spool.Files().Count > 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SpoolReplayFailed(_logger, ex, _spool.Directory);
        }

        _nextProbe = _timeProvider.GetUtcNow();
        var batch = new List<UsageRecord>(_options.BatchSize);
        while (true)
        {
            try
            {
                await SpillOverflowAsync().ConfigureAwait(false);

                if (_spoolPending && !_stopping.IsCancellationRequested && (_storeUp || _timeProvider.GetUtcNow() >= _nextProbe))
                {
                    await ReplayOneFileAsync().ConfigureAwait(false);
                }

                if (!await ReadBatchAsync(batch).ConfigureAwait(false))
                {
                    if (_overflow.IsEmpty)
                    {
                        break;
                    }

                    continue;
                }

                if (batch.Count > 0)
                {
                    await StoreOrSpoolAsync(batch).ConfigureAwait(false);
                    batch.Clear();
                }
            }
#pragma warning disable CA1031 // The loop must outlive any failure; it logs and carries on.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.WriterLoopFailed(_logger, ex);
                _held.AddRange(batch);
                batch.Clear();
                if (_abort.IsCancellationRequested)
                {
                    break;
                }
            }
        }

        if (_held.Count > 0)
        {
            Log.RecordsLostAfterStop(_logger, _held.Count);
        }
    }

    /// <summary>
    /// Fills <paramref name="batch"/> up to the batch size, waiting at most the flush interval once
    /// it has a record. Returns false when the queue is completed and empty.
    /// </summary>
    private async Task<bool> ReadBatchAsync(List<UsageRecord> batch)
    {
        Take(batch);
        if (batch.Count == 0)
        {
            if (_channel.Reader.Completion.IsCompleted)
            {
                return false;
            }

            // Nothing queued: wait for a record, or until the spool should be retried.
            TimeSpan? wait = null;
            if (_spoolPending)
            {
                // Never negative: the probe time may pass while the loop gets here, and a negative
                // timer throws.
                wait = _storeUp ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Max(0, (_nextProbe - _timeProvider.GetUtcNow()).Ticks));
            }

            await WaitForDataAsync(wait).ConfigureAwait(false);
            Take(batch);
            if (batch.Count == 0)
            {
                return !_channel.Reader.Completion.IsCompleted;
            }
        }

        var deadline = _timeProvider.GetUtcNow() + _options.FlushInterval;
        Volatile.Write(ref _flushDueTicks, deadline.UtcTicks);
        while (batch.Count < _options.BatchSize && !_stopping.IsCancellationRequested)
        {
            var remaining = deadline - _timeProvider.GetUtcNow();
            if (remaining <= TimeSpan.Zero || !await WaitForBatchAsync(_options.BatchSize - batch.Count, remaining).ConfigureAwait(false))
            {
                break;
            }

            Take(batch);
        }

        Volatile.Write(ref _flushDueTicks, 0);

        Take(batch);
        return true;
    }

    /// <summary>Waits for a queued record; false on time-out, on stop, or when the queue is completed.</summary>
    private async Task<bool> WaitForDataAsync(TimeSpan? timeout)
    {
        if (_stopping.IsCancellationRequested || timeout <= TimeSpan.Zero)
        {
            return _channel.Reader.TryPeek(out _);
        }

        if (timeout is null)
        {
            try
            {
                return await _channel.Reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return _channel.Reader.TryPeek(out _);
            }
        }

        using var timer = new CancellationTokenSource(timeout.Value, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, timer.Token);
        try
        {
            return await _channel.Reader.WaitToReadAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return _channel.Reader.TryPeek(out _);
        }
    }

    /// <summary>
    /// Waits until <paramref name="needed"/> records are queued (or the queue is full); false on
    /// time-out or stop. Records arriving meanwhile do not wake the loop one by one.
    /// </summary>
    private async Task<bool> WaitForBatchAsync(int needed, TimeSpan timeout)
    {
        needed = Math.Min(needed, _options.QueueCapacity);
        if (Volatile.Read(ref _queued) >= needed)
        {
            return true;
        }

        var filled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _batchNeeds, needed);
        Interlocked.Exchange(ref _batchFilled, filled);
        try
        {
            // A record queued before the signal was up did not see it: count again.
            if (Volatile.Read(ref _queued) >= needed)
            {
                return true;
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var delay = Task.Delay(timeout, _timeProvider, stop.Token);
            await Task.WhenAny(filled.Task, delay).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            return filled.Task.IsCompleted;
        }
        finally
        {
            Interlocked.Exchange(ref _batchFilled, null);
        }
    }

    private void Take(List<UsageRecord> batch)
    {
        if (_held.Count > 0)
        {
            var n = Math.Min(_held.Count, _options.BatchSize - batch.Count);
            if (n > 0)
            {
                batch.AddRange(_held.GetRange(0, n));
                _held.RemoveRange(0, n);
            }
        }

        while (batch.Count < _options.BatchSize && _channel.Reader.TryRead(out var entry))
        {
            Interlocked.Decrement(ref _queued);
            if (RecordOf(entry) is { } record)
            {
                batch.Add(record);
            }

            // Each scope (and enclosing scope) of the built calls once: see FoldScopes.
            if (entry is MeteredCall { Scope: { } scope })
            {
                for (var s = scope; s is not null && _scopesToFold.Add(s); s = s.Parent)
                {
                }
            }
        }

        FoldScopes();
    }

    // The calls just built are added to their scopes' totals here, off the callers' threads (see UsageScope.FoldResolved).
    private void FoldScopes()
    {
        if (_scopesToFold.Count == 0)
        {
            return;
        }

        foreach (var scope in _scopesToFold)
        {
            try
            {
                scope.FoldResolved();
            }
            catch (Exception ex)
            {
                Log.MeteringFailed(_logger, ex);
            }
        }

        _scopesToFold.Clear();
    }

    // A deferred call is built (and priced, counted, logged) here, on the writer's thread.
    private static UsageRecord? RecordOf(object entry) => entry as UsageRecord ?? ((MeteredCall)entry).Resolve();

    private async Task StoreOrSpoolAsync(List<UsageRecord> batch)
    {
        if (!_spoolPending)
        {
            // Nothing waits in the spool, so there is nothing to keep in order: try the store.
            _storeUp = true;
        }

        if (_storeUp && !_abort.IsCancellationRequested)
        {
            var attempts = _stopping.IsCancellationRequested ? 1 : _options.MaxAttemptsBeforeSpool;
            var records = batch.ToArray();
            for (var attempt = 1; attempt <= attempts; attempt++)
            {
                try
                {
                    await _store.AppendAsync(records, _abort.Token).ConfigureAwait(false);
                    _metrics?.WriterWritten.Add(records.Length);
                    MarkWritten();
                    _downProbes = 0;
                    NotifyStored(records);
                    return;
                }
                catch (OperationCanceledException) when (_abort.IsCancellationRequested)
                {
                    break;
                }
                catch (UsageStoreNotReadyException ex)
                {
                    // Expected while the store installs itself at start-up: one quiet line, no
                    // retries and no stack trace; the batch waits in the spool until it is ready.
                    _metrics?.WriterFailed.Add(1);
                    if (Interlocked.Exchange(ref _notReadyLogged, 1) == 0)
                    {
                        Log.StoreNotReady(_logger, ex.Message, _spool.Directory);
                    }

                    break;
                }
#pragma warning disable CA1031 // Any store failure is retried, then spooled.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    _metrics?.WriterFailed.Add(1);
                    if (attempt == attempts)
                    {
                        Log.StoreWriteFailed(_logger, ex, records.Length, attempt, TimeSpan.Zero);
                        break;
                    }

                    var delay = _backoff.DelayAfter(attempt);
                    Log.StoreWriteFailed(_logger, ex, records.Length, attempt, delay);
                    if (!await DelayAsync(delay, _stopping.Token).ConfigureAwait(false))
                    {
                        break;
                    }
                }
            }

            MarkStoreDown();
        }

        await SpoolAsync(batch).ConfigureAwait(false);
    }

    private async Task SpoolAsync(List<UsageRecord> records)
    {
        try
        {
            var path = await _spool.WriteAsync(records, CancellationToken.None).ConfigureAwait(false);
            _spoolPending = true;
            _metrics?.WriterSpooled.Add(records.Count);
            if (Volatile.Read(ref _notReadyLogged) == 0)
            {
                Log.BatchSpooled(_logger, records.Count, path);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            // Keep them in memory and try again later; a full disk must not lose records either.
            Log.SpoolWriteFailed(_logger, ex, records.Count, _spool.Directory);
            _held.AddRange(records);
            await DelayAsync(_backoff.DelayAfter(1), _abort.Token).ConfigureAwait(false);
        }
    }

    private async Task SpillOverflowAsync()
    {
        while (!_overflow.IsEmpty)
        {
            var chunk = new List<UsageRecord>(_options.BatchSize);
            while (chunk.Count < _options.BatchSize && _overflow.TryDequeue(out var entry))
            {
                if (RecordOf(entry) is { } record)
                {
                    chunk.Add(record);
                }
            }

            if (chunk.Count == 0)
            {
                return;
            }

            await SpoolAsync(chunk).ConfigureAwait(false);
            if (_held.Count > 0 && _abort.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task ReplayOneFileAsync()
    {
        var files = _spool.Files();
        if (files.Count == 0)
        {
            _spoolPending = false;
            return;
        }

        var path = files[0];
        try
        {
            var records = await _spool.ReadAsync(path, _abort.Token).ConfigureAwait(false);
            for (var i = 0; i < records.Count; i += _options.BatchSize)
            {
                var chunk = records.GetRange(i, Math.Min(_options.BatchSize, records.Count - i));
                await _store.AppendAsync(chunk, _abort.Token).ConfigureAwait(false);
                NotifyStored(chunk);
            }

            // Only now that every record of the file is stored may the file go.
            UsageSpool.Delete(path);
            _metrics?.WriterReplayed.Add(records.Count);
            var wasInstalling = Volatile.Read(ref _notReadyLogged) != 0;
            MarkWritten();
            Log.SpoolFileReplayed(_logger, records.Count, path);
            if (!_storeUp && !wasInstalling)
            {
                Log.StoreRecovered(_logger);
            }

            _storeUp = true;
            _downProbes = 0;
            _spoolPending = files.Count > 1;
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            // Shutting down: the file stays for the next start.
        }
        catch (UsageStoreNotReadyException)
        {
            // Still installing: the file stays; try again after the back-off, quietly.
            _metrics?.WriterFailed.Add(1);
            MarkStoreDown();
        }
#pragma warning disable CA1031 // A failed replay leaves the file in place and retries later.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _metrics?.WriterFailed.Add(1);
            Log.SpoolReplayFailed(_logger, ex, path);
            MarkStoreDown();
        }
    }

    private void MarkWritten()
    {
        Interlocked.Exchange(ref _lastWriteTicks, _timeProvider.GetUtcNow().UtcTicks);

        // The store is ready now: a later outage is reported in full again.
        Volatile.Write(ref _notReadyLogged, 0);
    }

    private void NotifyStored(IReadOnlyList<UsageRecord> records)
    {
        foreach (var observer in _storedObservers)
        {
            try
            {
                observer.OnStored(records);
            }
#pragma warning disable CA1031 // An observer's failure must not stop the writer.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.WriterLoopFailed(_logger, ex);
            }
        }
    }

    private void MarkStoreDown()
    {
        _storeUp = false;
        _downProbes++;
        _nextProbe = _timeProvider.GetUtcNow() + _backoff.DelayAfter(_downProbes);
    }

    private async Task<bool> DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
