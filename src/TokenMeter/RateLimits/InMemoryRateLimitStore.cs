using System.Collections.Concurrent;

namespace TokenMeter.RateLimits;

/// <summary>
/// Rate-limit windows in this process: one app instance. Each partition keeps its entries of the
/// last window in time order, under a per-partition lock; a sweep at most once a window drops
/// partitions with nothing left, so memory follows the partitions active in the last two windows.
/// </summary>
public sealed class InMemoryRateLimitStore : IRateLimitStore
{
    private readonly ConcurrentDictionary<string, Partition> _partitions = new(StringComparer.Ordinal);
    private long _nextSweepTicks = long.MinValue;

    /// <summary>Partitions held now (tests and diagnostics).</summary>
    public int PartitionCount => _partitions.Count;

    /// <inheritdoc />
    public bool IsSynchronous => true;

    /// <inheritdoc />
    public ValueTask<RateLimitResult> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        SweepIfDue(request.Now, request.Window);
        while (true)
        {
            var partition = _partitions.GetOrAdd(request.Key, static _ => new Partition());
            lock (partition)
            {
                if (partition.Removed)
                {
                    continue;
                }

                return ValueTask.FromResult(partition.Acquire(request));
            }
        }
    }

    /// <inheritdoc />
    public ValueTask SettleAsync(string key, Guid id, long amount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_partitions.TryGetValue(key, out var partition))
        {
            lock (partition)
            {
                partition.Settle(id, amount);
            }
        }

        return ValueTask.CompletedTask;
    }

    private void SweepIfDue(DateTimeOffset now, TimeSpan window)
    {
        var due = Interlocked.Read(ref _nextSweepTicks);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _nextSweepTicks, now.UtcTicks + window.Ticks, due) != due)
        {
            return;
        }

        foreach (var (key, partition) in _partitions)
        {
            lock (partition)
            {
                partition.Expire(now, window);
                if (partition.IsEmpty)
                {
                    partition.Removed = true;
                    _partitions.TryRemove(new KeyValuePair<string, Partition>(key, partition));
                }
            }
        }
    }

    /// <summary>One partition's entries of the last window, oldest first; guarded by locking the instance.</summary>
    private sealed class Partition
    {
        private readonly List<Entry> _entries = [];
        private long _total;

        public bool Removed { get; set; }

        public bool IsEmpty => _entries.Count == 0;

        public RateLimitResult Acquire(RateLimitRequest request)
        {
            Expire(request.Now, request.Window);
            var used = _total;
            var allowed = request.MustFit ? used + request.Amount <= request.Limit : used < request.Limit;
            if (allowed)
            {
                _entries.Add(new Entry(request.Id, request.Now, request.Amount));
                _total += request.Amount;
                return new RateLimitResult(true, used, TimeSpan.Zero);
            }

            // The window frees enough once the entries up to the one that brings it there have left.
            var need = request.MustFit ? used + request.Amount - request.Limit : used - request.Limit + 1;
            long freed = 0;
            foreach (var entry in _entries)
            {
                freed += entry.Amount;
                if (freed >= need)
                {
                    var wait = entry.At + request.Window - request.Now;
                    return new RateLimitResult(false, used, wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
                }
            }

            return new RateLimitResult(false, used, request.Window);
        }

        public void Settle(Guid id, long amount)
        {
            var index = _entries.FindIndex(e => e.Id == id);
            if (index < 0)
            {
                return;
            }

            _total += amount - _entries[index].Amount;
            if (amount == 0)
            {
                _entries.RemoveAt(index);
            }
            else
            {
                _entries[index] = _entries[index] with { Amount = amount };
            }
        }

        public void Expire(DateTimeOffset now, TimeSpan window)
        {
            var gone = 0;
            while (gone < _entries.Count && now - _entries[gone].At >= window)
            {
                _total -= _entries[gone].Amount;
                gone++;
            }

            if (gone > 0)
            {
                _entries.RemoveRange(0, gone);
            }
        }
    }

    private readonly record struct Entry(Guid Id, DateTimeOffset At, long Amount);
}
