using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TokenMeter.Diagnostics;
using TokenMeter.Budgets;

namespace TokenMeter.RateLimits;

/// <summary>A rate-limit window entry to settle to what its call used (0: drop it).</summary>
/// <param name="Key">The partition key.</param>
/// <param name="Id">The entry.</param>
/// <param name="Amount">The real amount.</param>
/// <param name="Deadline">When the entry leaves its window anyway: a settle not written by then is moot.</param>
internal sealed record EntrySettle(string Key, Guid Id, long Amount, DateTimeOffset Deadline);

/// <summary>
/// Every check a call needs in one step: the tokens window, then the requests window, then the
/// budget hold (each null when not checked). All or nothing for the call: refused by one, it keeps
/// no tokens entry and no hold (a request permit taken before a budget refusal stays taken).
/// </summary>
/// <param name="Tokens">The tokens window entry to take, or null.</param>
/// <param name="Requests">The requests window permit to take, or null.</param>
/// <param name="Budget">The budget hold to make, or null.</param>
internal sealed record LimitCheck(RateLimitRequest? Tokens, RateLimitRequest? Requests, BudgetHoldRequest? Budget);

/// <summary>The outcome of a <see cref="LimitCheck"/>.</summary>
/// <param name="RefusedBy">The window that refused the call, or null (then the budget may still have refused it).</param>
/// <param name="Rate">The windows' answer when any was checked: the refusing one's, or allowed with the last one's total before the call.</param>
/// <param name="Budget">The budget's answer, when the budget was checked (refused when not <see cref="BudgetHoldResult.Allowed"/>).</param>
internal sealed record LimitCheckResult(RateLimitKind? RefusedBy, RateLimitResult? Rate, BudgetHoldResult? Budget);

/// <summary>
/// A shared store (PostgreSQL) that checks every limit of a call in one step and settles any
/// number of holds and window entries in one write.
/// </summary>
internal interface ISharedLimitStore
{
    /// <summary>The database written to: holds and entries of stores with the same target are checked and settled together.</summary>
    object SharedTarget { get; }

    /// <summary>Runs the checks of one call in one step.</summary>
    /// <param name="check">The checks.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The outcome.</returns>
    ValueTask<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken);

    /// <summary>Settles every hold and entry given, in one write; writing the same batch twice counts nothing twice.</summary>
    /// <param name="holds">The holds.</param>
    /// <param name="entries">The window entries.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask SettleAsync(IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken);
}

/// <summary>
/// Writes the settles of shared budget holds and rate-limit entries after the responses, off the
/// request path: whatever is queued goes in one write (one statement with PostgreSQL), in the order
/// the calls ended. A failed write is tried again until it succeeds or its holds and entries have
/// lapsed by themselves (lease, window); on shutdown the queue is written before the store closes.
/// Until its settle lands a hold or entry counts its estimate, a worst case: a call may be refused
/// a little sooner, never let through past a limit.
/// </summary>
internal sealed class SharedLimitSettler : IHoldSettleQueue, IAsyncDisposable
{
    private const int MaxBatch = 1_000;
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(5);

    private readonly Channel<object> _queue = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly IBudgetReservationStore? _holds;
    private readonly IRateLimitStore? _entries;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long>? _failures;
    private readonly Lock _gate = new();
    private Task? _loop;

    public SharedLimitSettler(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        _holds = services.GetService<IBudgetReservationStore>();
        _entries = services.GetService<IRateLimitStore>();
        _time = services.GetService<TimeProvider>() ?? TimeProvider.System;
        _logger = services.GetService<ILogger<SharedLimitSettler>>() ?? (ILogger)NullLogger.Instance;
        if (services.GetService<IMeterFactory>() is { } meters)
        {
            _failures = TokenMeterInstruments.For(meters).BudgetCheckFailures;
        }
    }

    /// <summary>Queues a hold's settle.</summary>
    public void Enqueue(HoldSettle settle) => Write(settle);

    /// <summary>Queues a window entry's settle.</summary>
    public void Enqueue(EntrySettle settle) => Write(settle);

    /// <summary>Completes when everything queued before the call has been written (or given up); for tests and shutdown.</summary>
    /// <returns>A task.</returns>
    public async Task FlushAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(done))
        {
            return;
        }

        Start();
        await done.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered as itself and as IHoldSettleQueue: the container disposes it once per registration.
        if (!_queue.Writer.TryComplete())
        {
            return;
        }

        Task? loop;
        lock (_gate)
        {
            loop = _loop;
        }

        if (loop is not null)
        {
            _stopping.CancelAfter(ShutdownGrace);
            await loop.ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    private void Write(object settle)
    {
        if (!_queue.Writer.TryWrite(settle))
        {
            // Shut down: the hold or entry lapses with its lease or window.
            Log.LimitSettleDropped(_logger, settle is HoldSettle ? 1 : 0, settle is EntrySettle ? 1 : 0, "the app is stopping");
            return;
        }

        Start();
    }

    private void Start()
    {
        if (Volatile.Read(ref _loop) is not null)
        {
            return;
        }

        lock (_gate)
        {
            _loop ??= Task.Run(RunAsync);
        }
    }

    private async Task RunAsync()
    {
        var holds = new List<HoldSettle>();
        var entries = new List<EntrySettle>();
        var flushed = new List<TaskCompletionSource>();
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (holds.Count + entries.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                switch (item)
                {
                    case HoldSettle hold:
                        holds.Add(hold);
                        break;
                    case EntrySettle entry:
                        entries.Add(entry);
                        break;
                    case TaskCompletionSource flush:
                        flushed.Add(flush);
                        break;
                }
            }

            if (holds.Count + entries.Count > 0)
            {
                await WriteWithRetriesAsync(holds, entries).ConfigureAwait(false);
                holds.Clear();
                entries.Clear();
            }

            foreach (var flush in flushed)
            {
                flush.TrySetResult();
            }

            flushed.Clear();
        }
    }

    private async Task WriteWithRetriesAsync(List<HoldSettle> holds, List<EntrySettle> entries)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await WriteAsync(holds, entries, _stopping.Token).ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                _failures?.Add(1);
                var now = _time.GetUtcNow();
                var lapsed = holds.RemoveAll(h => h.Deadline <= now) + entries.RemoveAll(e => e.Deadline <= now);
                if (lapsed > 0)
                {
                    Log.LimitSettleDropped(_logger, lapsed, 0, "lapsed while the store could not be written");
                }

                if (_stopping.IsCancellationRequested)
                {
                    Log.LimitSettleDropped(_logger, holds.Count, entries.Count, "the app stopped before the store could be written");
                    return;
                }

                if (holds.Count + entries.Count == 0)
                {
                    return;
                }

                Log.LimitSettleRetry(_logger, ex, holds.Count, entries.Count, (long)delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, _time, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping: one last attempt.
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    private async ValueTask WriteAsync(List<HoldSettle> holds, List<EntrySettle> entries, CancellationToken cancellationToken)
    {
        var holdBatch = _holds as ISharedLimitStore;
        var entryBatch = _entries as ISharedLimitStore;
        if (holdBatch is not null && entryBatch is not null && ReferenceEquals(holdBatch.SharedTarget, entryBatch.SharedTarget))
        {
            await holdBatch.SettleAsync(holds, entries, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (holds.Count > 0)
        {
            if (holdBatch is not null)
            {
                await holdBatch.SettleAsync(holds, [], cancellationToken).ConfigureAwait(false);
            }
            else if (_holds is not null)
            {
                foreach (var hold in holds)
                {
                    if (hold.Records.Count == 0)
                    {
                        await _holds.ReleaseAsync(hold.Id, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await _holds.SettleAsync(hold.Id, hold.CostUsd, hold.Tokens, hold.Records, hold.KeepUntil, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }

        if (entries.Count > 0)
        {
            if (entryBatch is not null)
            {
                await entryBatch.SettleAsync([], entries, cancellationToken).ConfigureAwait(false);
            }
            else if (_entries is not null)
            {
                foreach (var entry in entries)
                {
                    await _entries.SettleAsync(entry.Key, entry.Id, entry.Amount, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }
}
