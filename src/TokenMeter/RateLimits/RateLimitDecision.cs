namespace TokenMeter.RateLimits;

/// <summary>Which per-minute limit refused a call.</summary>
public enum RateLimitKind
{
    /// <summary>Requests per minute.</summary>
    Requests = 0,

    /// <summary>Tokens per minute.</summary>
    Tokens = 1,

    /// <summary>The limits could not be checked and the limiter fails closed.</summary>
    Unavailable = 2,
}

/// <summary>
/// The outcome of <see cref="UserRateLimiter.CheckAsync"/>. When allowed, the call's token estimate
/// counts in the user's window until this is disposed; dispose it when the call has ended and the
/// tokens it really used replace the estimate. Disposing twice is harmless.
/// </summary>
public sealed class RateLimitDecision : IAsyncDisposable
{
    private Func<ValueTask>? _settle;

    internal RateLimitDecision(RateLimitKind? refusedBy, long limit, TimeSpan retryAfter, long? tokensUsed, Func<ValueTask>? settle, Budgets.BudgetReservation? budget = null)
    {
        RefusedBy = refusedBy;
        Limit = limit;
        RetryAfter = retryAfter;
        TokensUsed = tokensUsed;
        _settle = settle;
        Budget = budget;
    }

    internal static RateLimitDecision Allowed { get; } = new(null, 0, TimeSpan.Zero, null, null);

    /// <summary>Whether the call may go ahead.</summary>
    public bool IsAllowed => RefusedBy is null;

    /// <summary>The limit that refused the call; null when allowed.</summary>
    public RateLimitKind? RefusedBy { get; }

    /// <summary>The refusing limit's value (requests or tokens per minute).</summary>
    public long Limit { get; }

    /// <summary>When refused, how long until the window lets the call in (at least one second); otherwise zero.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>When refused for tokens, the tokens in the user's window.</summary>
    public long? TokensUsed { get; }

    /// <summary>
    /// The budget reservation made in the same step, when the limits were checked together with a
    /// budget (<see cref="UserRateLimiter.CheckWithBudgetAsync(string, string, Budgets.BudgetEstimate, Budgets.BudgetGuard, CancellationToken)"/>)
    /// and the rate limits let the call through; null otherwise. The call may go ahead only when it
    /// is allowed too; dispose it as well.
    /// </summary>
    public Budgets.BudgetReservation? Budget { get; }

    /// <summary>This decision with the budget reservation made after it.</summary>
    internal RateLimitDecision WithBudget(Budgets.BudgetReservation budget) =>
        new(RefusedBy, Limit, RetryAfter, TokensUsed, Interlocked.Exchange(ref _settle, null), budget);

    /// <summary>Settles the call's token reservation to what it used.</summary>
    /// <returns>A task that completes when written.</returns>
    public ValueTask DisposeAsync() => Interlocked.Exchange(ref _settle, null)?.Invoke() ?? ValueTask.CompletedTask;
}
