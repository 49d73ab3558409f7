namespace TokenMeter.Budgets;

/// <summary>Options of <see cref="BudgetGuard"/>, bound from <c>TokenMeter:Budgets</c>.</summary>
public sealed class BudgetGuardOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:Budgets";

    /// <summary>
    /// Cost reserved for a call when the caller gives no estimate, and for a model without a price
    /// (see <see cref="UsageEstimator"/>). Default 0.01 USD.
    /// </summary>
    public decimal DefaultReservationCostUsd { get; set; } = 0.01m;

    /// <summary>Tokens reserved for a call when the caller gives no estimate. Default 2,000.</summary>
    public long DefaultReservationTokens { get; set; } = 2_000;

    /// <summary>
    /// When true, a call is refused while budgets or usage cannot be read. Default false: the call
    /// proceeds (logged and counted as <c>tokenmeter.budget.check_failures</c>).
    /// </summary>
    public bool FailClosed { get; set; }

    /// <summary>
    /// How long a record seen in-process but not yet found in the store keeps counting towards the
    /// user's spend. Default 10 minutes, well beyond any writer flush interval.
    /// </summary>
    public TimeSpan PendingRetention { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long a user's effective limits are kept in-process before the store is read again.
    /// Changes made through this instance (its <see cref="IBudgetStore"/> or the budget API) apply
    /// at once; changes made by other instances apply within this time. Default 5 seconds;
    /// <see cref="TimeSpan.Zero"/> reads the store on every check.
    /// </summary>
    public TimeSpan BudgetCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a reservation in a shared store holds when its call never ends (the instance died
    /// mid-call): set it to the longest call a deployment allows. Default 5 minutes.
    /// </summary>
    public TimeSpan ReservationLease { get; set; } = TimeSpan.FromMinutes(5);
}
