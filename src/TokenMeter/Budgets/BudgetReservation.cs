namespace TokenMeter.Budgets;

/// <summary>
/// The outcome of <see cref="BudgetGuard.ReserveAsync"/>. When <see cref="IsAllowed"/>, the estimate
/// counts against the user's budget until this is disposed; dispose it when the call has ended
/// (its real cost then counts through the metering path). With a shared store the real cost replaces
/// the estimate there shortly after, written in the background with the settles of other calls
/// (until then the estimate, a worst case, keeps counting). Disposing twice is harmless.
/// </summary>
public sealed class BudgetReservation : IDisposable, IAsyncDisposable
{
    private Func<ValueTask>? _release;

    internal BudgetReservation(BudgetRefusalReason reason, BudgetStatus? status, TimeSpan retryAfter, Func<ValueTask>? release)
    {
        Reason = reason;
        Status = status;
        RetryAfter = retryAfter;
        _release = release;
    }

    /// <summary>Whether the call may go ahead.</summary>
    public bool IsAllowed => Reason == BudgetRefusalReason.None;

    /// <summary>Why the call was refused; <see cref="BudgetRefusalReason.None"/> when allowed.</summary>
    public BudgetRefusalReason Reason { get; }

    /// <summary>The user's limits and spend at the check; null when no limit applies or the store could not be read.</summary>
    public BudgetStatus? Status { get; }

    /// <summary>When refused, how long until the budget resets (the next UTC month); otherwise zero.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Ends the reservation.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _release, null) is { } release)
        {
            // The release never throws and completes at once (a shared store's write is queued).
            _ = release().AsTask();
        }
    }

    /// <summary>Ends the reservation: the real cost of the call replaces the estimate (or the estimate is dropped when the call used nothing).</summary>
    /// <returns>A task that completes when that is counted in-process and queued for a shared store.</returns>
    public ValueTask DisposeAsync() => Interlocked.Exchange(ref _release, null)?.Invoke() ?? ValueTask.CompletedTask;
}
