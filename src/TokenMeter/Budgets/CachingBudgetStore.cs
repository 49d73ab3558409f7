using System.Collections.Concurrent;

namespace TokenMeter.Budgets;

/// <summary>
/// Keeps each user's effective limits in-process for <see cref="BudgetGuardOptions.BudgetCacheDuration"/>,
/// so a budget check does not read the store on every call. Every change made through this instance
/// clears the cache at once; changes made by other instances show within the cache duration.
/// </summary>
internal sealed class CachingBudgetStore(IBudgetStore inner, TimeProvider time, TimeSpan duration) : IBudgetStore
{
    /// <summary>Most users kept; past it the cache starts over, so memory stays bounded however many users call.</summary>
    internal const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, Entry> _limits = new(StringComparer.Ordinal);
    private long _generation;

    internal IBudgetStore Inner => inner;

    /// <summary>Users whose limits are held now (tests).</summary>
    internal int CachedUsers => _limits.Count;

    public ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default) => inner.GetBudgetsAsync(cancellationToken);

    public ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        if (duration <= TimeSpan.Zero)
        {
            return inner.GetEffectiveBudgetAsync(userId, cancellationToken);
        }

        var now = time.GetTimestamp();
        if (_limits.TryGetValue(userId, out var entry) && entry.Generation == Volatile.Read(ref _generation) && time.GetElapsedTime(entry.ReadAt, now) < duration)
        {
            return ValueTask.FromResult(entry.Limit);
        }

        return ReadAsync(userId, cancellationToken);
    }

    public async ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default)
    {
        try
        {
            await inner.SetDefaultBudgetAsync(limit, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Invalidate();
        }
    }

    public async ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default)
    {
        try
        {
            await inner.SetUserBudgetAsync(budget, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Invalidate();
        }
    }

    public async ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default)
    {
        try
        {
            return await inner.DeleteUserBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Invalidate();
        }
    }

    /// <summary>Forgets every cached limit; reads already under way are not cached.</summary>
    internal void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _limits.Clear();
    }

    private async ValueTask<BudgetLimit?> ReadAsync(string userId, CancellationToken cancellationToken)
    {
        // A change made while this read is under way bumps the generation, so the read (which may
        // predate the change) is returned but not cached.
        var generation = Volatile.Read(ref _generation);
        var readAt = time.GetTimestamp();
        var limit = await inner.GetEffectiveBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        if (generation == Volatile.Read(ref _generation))
        {
            // Only on a miss, which read the store anyway; Count is cheap next to that round trip.
            if (_limits.Count >= MaxEntries)
            {
                _limits.Clear();
            }

            _limits[userId] = new Entry(limit, readAt, generation);
        }

        return limit;
    }

    private sealed record Entry(BudgetLimit? Limit, long ReadAt, long Generation);
}
