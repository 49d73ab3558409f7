using TokenMeter.Budgets;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;

namespace TokenMeter.Postgres.RateLimits;

/// <summary>
/// Rate-limit windows shared by every app instance, in <c>tokenmeter_rate_entries</c>: one row per
/// permit or token reservation of the last window (an exact sliding window). A check is one call of
/// <c>tokenmeter_check_limits</c> (migration 0006, with the call's budget check when there is one),
/// which holds a per-key transaction lock (0005) for the length of that statement; settles are
/// batched into one call of <c>tokenmeter_settle_limits</c>. Both commit without waiting for the
/// disk: an entry lives a minute and is not part of the ledger.
/// </summary>
internal sealed class PostgresRateLimitStore(PostgresStoreContext context) : IRateLimitStore, ISharedLimitStore
{
    public bool IsSynchronous => false;

    public object SharedTarget => context;

    public async ValueTask<RateLimitResult> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var check = request.MustFit ? new LimitCheck(null, request, null) : new LimitCheck(request, null, null);
        var result = await PostgresSharedLimits.CheckAsync(context, check, cancellationToken).ConfigureAwait(false);
        return result.Rate ?? new RateLimitResult(true, 0, TimeSpan.Zero);
    }

    public ValueTask SettleAsync(string key, Guid id, long amount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return PostgresSharedLimits.SettleAsync(context, [], [new EntrySettle(key, id, amount, DateTimeOffset.MaxValue)], cancellationToken);
    }

    public ValueTask<LimitCheckResult> CheckAsync(LimitCheck check, CancellationToken cancellationToken) =>
        PostgresSharedLimits.CheckAsync(context, check, cancellationToken);

    public ValueTask SettleAsync(IReadOnlyList<HoldSettle> holds, IReadOnlyList<EntrySettle> entries, CancellationToken cancellationToken) =>
        PostgresSharedLimits.SettleAsync(context, holds, entries, cancellationToken);
}
