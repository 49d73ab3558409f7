using System.Threading.RateLimiting;

namespace HomeworkApi.RateLimits;

/// <summary>
/// At most <c>permitLimit</c> permits in any <c>window</c> (an exact sliding window): remembers
/// when each of the last <c>permitLimit</c> permits was granted, and a permit frees up exactly
/// <c>window</c> after it was granted. A refusal carries <see cref="MetadataName.RetryAfter"/>: the
/// time until the oldest permit in the window frees up. No queueing: a refusal is immediate.
/// </summary>
/// <remarks>
/// Why not the built-in limiters: <see cref="SlidingWindowRateLimiter"/> gives a refusal no
/// Retry-After, and both it and <see cref="TokenBucketRateLimiter"/> read the stopwatch rather than a
/// <see cref="TimeProvider"/>. Why a sliding window rather than a token bucket: "N requests per
/// minute" then means at most N in any 60 seconds, whereas a bucket of N that refills at N a minute
/// lets up to 2N through in the first minute). The cost is one timestamp per permit in the window
/// (the log grows as needed, up to the limit).
/// </remarks>
internal sealed class SlidingLogRateLimiter : RateLimiter
{
    private readonly TimeProvider _clock;
    private readonly long _windowTicks;
    private readonly TimeSpan _window;
    private readonly int _limit;
    private long[] _granted;
    private readonly Lock _lock = new();
    private int _oldest;
    private int _count;
    private long _lastGranted;
    private long _successful;
    private long _failed;

    public SlidingLogRateLimiter(int permitLimit, TimeSpan window, TimeProvider clock)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(permitLimit);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        _clock = clock;
        _window = window;
        _windowTicks = (long)(window.TotalSeconds * clock.TimestampFrequency);
        _limit = permitLimit;
        _granted = new long[Math.Min(permitLimit, 16)];
        _lastGranted = clock.GetTimestamp() - _windowTicks;
    }

    /// <summary>Null while a permit is in the window; otherwise how long the limiter has had all its permits free.</summary>
    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var now = _clock.GetTimestamp();
                Expire(now);
                return _count > 0 ? null : _clock.GetElapsedTime(_lastGranted + _windowTicks, now);
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            Expire(_clock.GetTimestamp());
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = _limit - _count,
                CurrentQueuedCount = 0,
                TotalSuccessfulLeases = _successful,
                TotalFailedLeases = _failed,
            };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permitCount, _limit);
        lock (_lock)
        {
            var now = _clock.GetTimestamp();
            Expire(now);
            var free = _limit - _count;
            if (permitCount == 0 ? free > 0 : free >= permitCount)
            {
                for (var i = 0; i < permitCount; i++)
                {
                    if (_count == _granted.Length)
                    {
                        Grow();
                    }

                    _granted[(_oldest + _count) % _granted.Length] = now;
                    _count++;
                }

                if (permitCount > 0)
                {
                    _lastGranted = now;
                    _successful++;
                }

                return Lease.Acquired;
            }

            // The permits needed free up when the (needed - free)-th oldest grant leaves the window.
            var needed = Math.Max(1, permitCount) - free;
            var freedAt = _granted[(_oldest + needed - 1) % _granted.Length] + _windowTicks;
            _failed++;
            var wait = _clock.GetElapsedTime(now, freedAt);
            return new Lease(false, wait > _window ? _window : wait);
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    /// <summary>Doubles the log (up to the limit), oldest grant first.</summary>
    private void Grow()
    {
        var grown = new long[Math.Min(_limit, _granted.Length * 2)];
        for (var i = 0; i < _count; i++)
        {
            grown[i] = _granted[(_oldest + i) % _granted.Length];
        }

        _granted = grown;
        _oldest = 0;
    }

    private void Expire(long now)
    {
        while (_count > 0 && now - _granted[_oldest] >= _windowTicks)
        {
            _oldest = (_oldest + 1) % _granted.Length;
            _count--;
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public static readonly Lease Acquired = new(true, null);

        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } wait && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = wait;
                return true;
            }

            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            // Permits of a window are not returned on release: they free up when they leave the window.
        }
    }
}
