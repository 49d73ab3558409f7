using System.Collections.Concurrent;
using TokenMeter;
using TokenMeter.Metering;

namespace HomeworkApi.RateLimits;

/// <summary>
/// The tokens each user has used in the last minute, fed by the metering path: TokenMeter shows
/// every metered record to this observer the moment the call is priced, so the next request of the
/// same user already sees it. A sliding window of 60 one-second buckets per user: adding, checking
/// and sliding are O(1) under a per-user lock; a token leaves the window 59–60 s after its call
/// finished. Users idle for a minute are dropped by a sweep that runs at most once a minute, so
/// memory holds only the users active in the last two minutes.
/// </summary>
internal sealed class UserTokenWindow : IUsageObserver
{
    private const int Seconds = 60;

    private readonly ConcurrentDictionary<string, UserTokens> _users = new(StringComparer.Ordinal);
    private readonly TimeProvider _clock;
    private readonly long _origin;
    private long _nextSweep = Seconds;

    public UserTokenWindow(TimeProvider clock)
    {
        _clock = clock;
        _origin = clock.GetTimestamp();
    }

    /// <summary>Users currently held (for tests and diagnostics).</summary>
    public int TrackedUsers => _users.Count;

    public void OnUsage(UsageRecord record)
    {
        if (record.UserId is not { } user || record.TotalTokens <= 0)
        {
            return;
        }

        var now = Now();
        var second = (long)now.TotalSeconds;
        while (true)
        {
            var window = _users.GetOrAdd(user, static _ => new UserTokens());
            lock (window)
            {
                if (window.Removed)
                {
                    // Swept between the lookup and the lock: add to the new entry instead.
                    continue;
                }

                window.Slide(second);
                window.Add(second, record.TotalTokens);
            }

            break;
        }

        SweepIfDue(second);
    }

    /// <summary>
    /// The tokens <paramref name="user"/> used in the last minute, and — when that is at least
    /// <paramref name="limit"/> — how long until enough of them leave the window to fall below it.
    /// </summary>
    public (long Used, TimeSpan RetryAfter) Check(string user, long limit)
    {
        var now = Now();
        var second = (long)now.TotalSeconds;
        SweepIfDue(second);
        if (!_users.TryGetValue(user, out var window))
        {
            return (0, TimeSpan.Zero);
        }

        lock (window)
        {
            window.Slide(second);
            var used = window.Total;
            if (used < limit)
            {
                return (used, TimeSpan.Zero);
            }

            // Walk from the oldest second: the window falls below the limit when the bucket that
            // brings the total under it leaves, at the start of its second + 60.
            var remaining = used;
            for (var s = second - Seconds + 1; s <= second; s++)
            {
                remaining -= window.At(s);
                if (remaining < limit)
                {
                    return (used, TimeSpan.FromSeconds(s + Seconds) - now);
                }
            }

            return (used, TimeSpan.FromSeconds(Seconds));
        }
    }

    private TimeSpan Now() => _clock.GetElapsedTime(_origin);

    private void SweepIfDue(long second)
    {
        var due = Interlocked.Read(ref _nextSweep);
        if (second < due || Interlocked.CompareExchange(ref _nextSweep, second + Seconds, due) != due)
        {
            return;
        }

        foreach (var (user, window) in _users)
        {
            lock (window)
            {
                window.Slide(second);
                if (window.Total == 0)
                {
                    window.Removed = true;
                    _users.TryRemove(new KeyValuePair<string, UserTokens>(user, window));
                }
            }
        }
    }

    /// <summary>One user's tokens per second of the last minute; guarded by locking the instance.</summary>
    private sealed class UserTokens
    {
        private readonly long[] _buckets = new long[Seconds];
        private long _latest = long.MinValue;

        public long Total { get; private set; }

        public bool Removed { get; set; }

        public long At(long second) => second > _latest - Seconds && second <= _latest ? _buckets[Index(second)] : 0;

        public void Add(long second, long tokens)
        {
            _buckets[Index(second)] += tokens;
            Total += tokens;
        }

        /// <summary>Moves the window's end to <paramref name="second"/>, emptying the buckets that left it.</summary>
        public void Slide(long second)
        {
            if (second <= _latest)
            {
                return;
            }

            if (_latest == long.MinValue || second - _latest >= Seconds)
            {
                Array.Clear(_buckets);
                Total = 0;
            }
            else
            {
                for (var s = _latest + 1; s <= second; s++)
                {
                    Total -= _buckets[Index(s)];
                    _buckets[Index(s)] = 0;
                }
            }

            _latest = second;
        }

        private static int Index(long second) => (int)(((second % Seconds) + Seconds) % Seconds);
    }
}
