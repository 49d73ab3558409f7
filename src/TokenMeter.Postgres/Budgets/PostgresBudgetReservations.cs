using TokenMeter.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.Budgets;

/// <summary>
/// Budget reservations shared by every app instance, in <c>tokenmeter_budget_holds</c>:
/// check-and-reserve is one round trip of <see cref="PostgresSharedLimits"/> (with the call's
/// rate-limit checks when there are any), settles are batched into one statement. Both commit
/// without waiting for the disk: these rows are bounded by their lease, not part of the ledger.
/// With <see cref="HeadroomSlices"/> most checks are decided in-process from a slice of the budget's
/// headroom claimed earlier (one hold for several calls).
/// </summary>
internal sealed class PostgresBudgetReservations(PostgresStoreContext context, HeadroomSlices? slices = null) : IBudgetReservationStore, ISharedLimitStore, IHeldRecordWatch
{
    public object SharedTarget => context;

    public async ValueTask<BudgetHoldResult> TryReserveAsync(BudgetHoldRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var result = await CheckAsync(new LimitCheck(null, null, request), cancellationToken).ConfigureAwait(false);
        return result.Budget!;
    }

    public ValueTask SettleAsync(Guid id, decimal costUsd, long tokens, IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records, DateTimeOffset keepUntil, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        return SettleAsync([new HoldSettle(id, costUsd, tokens, records, keepUntil, keepUntil)], [], cancellationToken);
    }

    public ValueTask ReleaseAsync(Guid id, CancellationToken cancellationToken = default) =>
        SettleAsync([new HoldSettle(id, 0m, 0, [], DateTimeOffset.MaxValue, DateTimeOffset.MaxValue)], [], cancellationToken);

    public void Watch(UsageRecord record) => slices?.Watch(record);

    public ValueTask<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken) =>
        slices is null ? new(PostgresSharedLimits.CheckAsync(context, check, cancellationToken)) : slices.CheckAsync(check, cancellationToken);

    public ValueTask SettleAsync(IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken) =>
        slices is null ? PostgresSharedLimits.SettleAsync(context, holds, entries, cancellationToken) : slices.SettleAsync(holds, entries, cancellationToken);
}
