using TokenMeter.Budgets;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.RateLimits;

/// <summary>
/// Rate-limit windows shared by every app instance, as per-second counters per partition key in
/// <c>tokenmeter_rate_slots</c> (migration 0009; token reservations awaiting their settle in
/// <c>tokenmeter_rate_open</c>). A check is one round trip of <see cref="PostgresSharedLimits"/>
/// (with the call's budget check when there is one) under a per-key transaction lock; settles are
/// batched into one statement. Both commit without waiting for the disk: a counter lives two minutes
/// and is not part of the ledger. With <see cref="HeadroomSlices"/> most checks are decided in-process
/// from a slice of the window claimed earlier.
/// </summary>
internal sealed class PostgresRateLimitStore(PostgresStoreContext context, HeadroomSlices? slices = null) : IRateLimitStore, ISharedLimitStore
{
    public bool IsSynchronous => false;

    public object SharedTarget => context;

    public async ValueTask<RateLimitResult> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var check = request.MustFit ? new LimitCheck(null, request, null) : new LimitCheck(request, null, null);
        var result = await CheckAsync(check, cancellationToken).ConfigureAwait(false);
        return result.Rate ?? new RateLimitResult(true, 0, TimeSpan.Zero);
    }

    public ValueTask SettleAsync(string key, Guid id, long amount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return SettleAsync([], [new EntrySettle(key, id, amount, DateTimeOffset.MaxValue)], cancellationToken);
    }

    public ValueTask<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken) =>
        slices is null ? new(PostgresSharedLimits.CheckAsync(context, check, cancellationToken)) : slices.CheckAsync(check, cancellationToken);

    public ValueTask SettleAsync(IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken) =>
        slices is null ? PostgresSharedLimits.SettleAsync(context, holds, entries, cancellationToken) : slices.SettleAsync(holds, entries, cancellationToken);
}
