namespace TokenMeter.RateLimits;

/// <summary>
/// Where rate-limit windows are kept: in-process (<see cref="InMemoryRateLimitStore"/>, one app
/// instance) or shared by every instance (PostgreSQL). Each partition key has an exact sliding
/// window: an entry (a request permit, or a call's reserved tokens) counts from the moment it was
/// taken until one window later.
/// </summary>
public interface IRateLimitStore
{
    /// <summary>Whether <see cref="AcquireAsync"/> always completes synchronously (then a limiter can answer <c>AttemptAcquire</c> itself).</summary>
    bool IsSynchronous { get; }

    /// <summary>Checks the partition's window and, when allowed, adds the entry: one atomic step.</summary>
    /// <param name="request">What to take.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision.</returns>
    ValueTask<RateLimitResult> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default);

    /// <summary>Replaces an entry's amount with what the call really used (0 drops it); the entry keeps its time.</summary>
    /// <param name="key">The partition key.</param>
    /// <param name="id">The entry.</param>
    /// <param name="amount">The real amount.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask SettleAsync(string key, Guid id, long amount, CancellationToken cancellationToken = default);
}

/// <summary>An entry to take from a partition's window.</summary>
/// <param name="Key">The partition key, e.g. <c>requests/user:42</c>.</param>
/// <param name="Id">The entry's id.</param>
/// <param name="Now">The current time.</param>
/// <param name="Window">The window's length.</param>
/// <param name="Limit">The most the window holds.</param>
/// <param name="Amount">The entry's amount (1 for a request; the estimate for tokens).</param>
/// <param name="MustFit">
/// True: allowed only when the window's total plus <paramref name="Amount"/> fits the limit
/// (requests). False: allowed while the total is below the limit, so one entry may pass it by its
/// own amount (tokens, whose amount is an estimate settled later).
/// </param>
public sealed record RateLimitRequest(string Key, Guid Id, DateTimeOffset Now, TimeSpan Window, long Limit, long Amount, bool MustFit);

/// <summary>The outcome of <see cref="IRateLimitStore.AcquireAsync"/>.</summary>
/// <param name="Allowed">Whether the entry was added.</param>
/// <param name="Used">The window's total before this entry.</param>
/// <param name="RetryAfter">When refused, how long until enough of the window frees up; zero otherwise.</param>
public sealed record RateLimitResult(bool Allowed, long Used, TimeSpan RetryAfter);
