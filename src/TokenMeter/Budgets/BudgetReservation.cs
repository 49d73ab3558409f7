namespace TokenMeter.Budgets;

/// <summary>
/// The outcome of <see cref="BudgetGuard.ReserveAsync"/>. When <see cref="IsAllowed"/>, the estimate
/// counts against the user's budget until this is disposed; dispose it when the call has ended
/// (its real cost then counts through the metering path). Disposing twice is harmless.
/// </summary>
public sealed class BudgetReservation : IDisposable
{
    private Action? _release;

    internal BudgetReservation(BudgetRefusalReason reason, BudgetStatus? status, TimeSpan retryAfter, Action? release)
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

    /// <summary>Releases the reservation.</summary>
    public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
}
