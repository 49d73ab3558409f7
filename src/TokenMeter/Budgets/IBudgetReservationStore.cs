namespace TokenMeter.Budgets;

/// <summary>
/// A budget check shared by every app instance: check-and-reserve is one atomic step against the
/// user's spend this month as the store holds it (the same figure the usage queries report) plus
/// the reservations of every instance still in force. Registered by a shared store (PostgreSQL);
/// without one, <see cref="BudgetGuard"/> reserves in-process.
/// </summary>
public interface IBudgetReservationStore
{
    /// <summary>
    /// Reserves the estimate for the user's month when stored spend + reservations in
    /// force + the estimate fit within every limit; refuses otherwise. Reads the limits itself, so a
    /// change made through any instance applies to the next check.
    /// </summary>
    /// <param name="request">What to reserve.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision, with the limits and spend it was made on.</returns>
    ValueTask<BudgetHoldResult> TryReserveAsync(BudgetHoldRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces a reservation's estimate with what the call really used. It keeps counting until
    /// every record in <paramref name="records"/> is in the store (then the stored figure counts
    /// instead, never both), or until <paramref name="keepUntil"/>.
    /// </summary>
    /// <param name="id">The reservation.</param>
    /// <param name="costUsd">The real cost.</param>
    /// <param name="tokens">The real total tokens.</param>
    /// <param name="records">The records of the call: id and creation time.</param>
    /// <param name="keepUntil">When the reservation lapses if its records never arrive.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask SettleAsync(Guid id, decimal costUsd, long tokens, IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records, DateTimeOffset keepUntil, CancellationToken cancellationToken = default);

    /// <summary>Drops a reservation whose call used nothing (it failed, or was refused further on).</summary>
    /// <param name="id">The reservation.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>A task that completes when written.</returns>
    ValueTask ReleaseAsync(Guid id, CancellationToken cancellationToken = default);
}

/// <summary>A reservation to make.</summary>
/// <param name="Id">The reservation's id.</param>
/// <param name="UserId">The user charged.</param>
/// <param name="Month">The first day of the UTC month charged.</param>
/// <param name="Estimate">What the call may use at most.</param>
/// <param name="Now">The current time.</param>
/// <param name="ExpiresAt">When the reservation lapses unless settled (the lease: the longest a call may take).</param>
public sealed record BudgetHoldRequest(Guid Id, string UserId, DateOnly Month, BudgetEstimate Estimate, DateTimeOffset Now, DateTimeOffset ExpiresAt);

/// <summary>The outcome of <see cref="IBudgetReservationStore.TryReserveAsync"/>.</summary>
/// <param name="Allowed">Whether the reservation was made (always true when no limit applies).</param>
/// <param name="Limit">The limits that apply, or null for none (nothing was reserved).</param>
/// <param name="SpentCostUsd">Stored spend this month.</param>
/// <param name="SpentTokens">Stored tokens this month.</param>
/// <param name="ReservedCostUsd">Reservations in force before this one.</param>
/// <param name="ReservedTokens">Reserved tokens before this one.</param>
public sealed record BudgetHoldResult(bool Allowed, BudgetLimit? Limit, decimal SpentCostUsd, long SpentTokens, decimal ReservedCostUsd, long ReservedTokens);
