using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Metering;
using TokenMeter.Querying;

namespace TokenMeter.Budgets;

/// <summary>
/// Enforces monthly budgets before a model is called, without ASP.NET Core. A call is allowed when
/// the user's spend this calendar month (UTC) — stored calls, calls not yet stored, and the
/// estimates reserved by calls still in flight — plus the call's own estimate fits within every
/// limit; otherwise it is refused. With a shared store (<see cref="IBudgetReservationStore"/>,
/// registered by PostgreSQL) check-and-reserve is one atomic step across every app instance;
/// without one, checks of one user are serialised in-process.
/// </summary>
/// <example>
/// <code>
/// using var reservation = await guard.ReserveAsync("42");
/// if (!reservation.IsAllowed) { /* 429, retry after reservation.RetryAfter */ }
/// var reply = await chatClient.CompleteChatAsync(messages);
/// </code>
/// </example>
public sealed class BudgetGuard
{
    private readonly IBudgetStore _budgets;
    private readonly IBudgetReservationStore? _shared;
    private readonly IHoldSettleQueue? _settler;
    private readonly IUsageQueries _queries;
    private readonly TimeProvider _time;
    private readonly BudgetGuardOptions _options;
    private readonly ILogger _logger;
    private readonly Counter<long>? _refusals;
    private readonly Counter<long>? _checkFailures;

    /// <summary>Creates the guard.</summary>
    /// <param name="budgets">Where budgets are kept.</param>
    /// <param name="queries">Where stored usage is read.</param>
    /// <param name="time">The clock.</param>
    /// <param name="options">Reservation defaults and failure behaviour.</param>
    /// <param name="logger">The logger.</param>
    /// <param name="meterFactory">Creates the <c>TokenMeter</c> meter, when metrics are set up.</param>
    /// <param name="shared">The reservation store shared by every app instance, when there is one.</param>
    /// <param name="settler">Writes the shared store's settles after the responses; without one they are written as each call ends.</param>
    internal BudgetGuard(
        IBudgetStore budgets,
        IUsageQueries queries,
        TimeProvider time,
        IOptions<BudgetGuardOptions> options,
        ILogger<BudgetGuard> logger,
        IMeterFactory? meterFactory = null,
        IBudgetReservationStore? shared = null,
        IHoldSettleQueue? settler = null)
    {
        ArgumentNullException.ThrowIfNull(budgets);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _budgets = budgets;
        _shared = shared;
        _settler = settler;
        _queries = queries;
        _time = time;
        _options = options.Value;
        _logger = logger;
        if (meterFactory is not null)
        {
            var instruments = TokenMeterInstruments.For(meterFactory);
            _refusals = instruments.BudgetRefusals;
            _checkFailures = instruments.BudgetCheckFailures;
        }
    }

    internal BudgetLedger Ledger { get; } = new();

    /// <summary>The estimate reserved when a caller gives none.</summary>
    public BudgetEstimate DefaultEstimate => new(_options.DefaultReservationCostUsd, _options.DefaultReservationTokens);

    /// <summary>
    /// Checks the user's budget and, when the call may go ahead, reserves <paramref name="estimate"/>
    /// until the returned reservation is disposed.
    /// </summary>
    /// <param name="userId">The user the call is charged to.</param>
    /// <param name="estimate">What the call may use at most; null for <see cref="DefaultEstimate"/>.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision; dispose it when the call has ended.</returns>
    public async ValueTask<BudgetReservation> ReserveAsync(string userId, BudgetEstimate? estimate = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        estimate ??= DefaultEstimate;
        if (_shared is not null)
        {
            return await ReserveSharedAsync(_shared, userId, estimate, cancellationToken).ConfigureAwait(false);
        }

        var user = Ledger.For(userId);
        await user.CheckGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            BudgetStatus? status;
            try
            {
                status = await ReadStatusAsync(userId, user, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return CheckFailed(ex);
            }

            if (status is null)
            {
                return new BudgetReservation(BudgetRefusalReason.None, null, TimeSpan.Zero, null);
            }

            var reason = Exceeded(status, estimate);
            if (reason != BudgetRefusalReason.None)
            {
                return Refuse(userId, reason, status);
            }

            user.Reserve(estimate);
            return new BudgetReservation(BudgetRefusalReason.None, status, TimeSpan.Zero, () =>
            {
                user.Release(estimate);
                return ValueTask.CompletedTask;
            });
        }
        finally
        {
            user.CheckGate.Release();
        }
    }

    /// <summary>The limits that apply to the user (read through the in-process budget cache), or null when none apply.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The limits, or null.</returns>
    public async ValueTask<BudgetLimit?> GetLimitAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        var limit = await _budgets.GetEffectiveBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        return limit is { HasLimit: true } ? limit : null;
    }

    /// <summary>The user's limits and spend this month; <see cref="BudgetStatus.Limit"/> is null when no limit applies.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the reads.</param>
    /// <returns>The status.</returns>
    public async ValueTask<BudgetStatus> GetStatusAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        var limit = await _budgets.GetEffectiveBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        var (cost, tokens) = await ReadSpendAsync(userId, Ledger.For(userId), cancellationToken).ConfigureAwait(false);
        var reserved = Ledger.For(userId).Reserved;
        return new BudgetStatus(limit is { HasLimit: true } ? limit : null, cost, tokens, reserved.Cost, reserved.Tokens);
    }

    /// <summary>
    /// Counts a finished, priced call at once, before the background writer stores it. The metering
    /// path calls this for every call; call it yourself for usage recorded by other means.
    /// </summary>
    /// <param name="record">The record.</param>
    internal void Observe(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (Ledger.Observe(record, _time.GetUtcNow(), _options.PendingRetention) && _shared is IHeldRecordWatch watch)
        {
            // Before the record is queued for the writer: the shared store follows it until it is stored.
            watch.Watch(record);
        }
    }

    /// <summary>Time until the first instant of the next UTC month.</summary>
    /// <returns>The wait, rounded up to whole seconds.</returns>
    public TimeSpan UntilNextMonth()
    {
        var now = _time.GetUtcNow();
        var next = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
        return TimeSpan.FromSeconds(Math.Ceiling((next - now).TotalSeconds));
    }

    /// <summary>Which limit the call's estimate does not fit in, on top of what is spent and reserved.</summary>
    private static BudgetRefusalReason Exceeded(BudgetStatus status, BudgetEstimate estimate)
    {
        var limit = status.Limit!;
        if (limit.MonthlyCostUsd is { } maxCost && status.CostUsd + status.ReservedCostUsd + estimate.CostUsd > maxCost)
        {
            return BudgetRefusalReason.CostLimit;
        }

        if (limit.MonthlyTokens is { } maxTokens && status.Tokens + status.ReservedTokens + estimate.Tokens > maxTokens)
        {
            return BudgetRefusalReason.TokenLimit;
        }

        return BudgetRefusalReason.None;
    }

    /// <summary>The answer when budgets or usage cannot be read: allowed (logged, counted), or refused with <see cref="BudgetGuardOptions.FailClosed"/>.</summary>
    internal BudgetReservation CheckFailed(Exception ex)
    {
        _checkFailures?.Add(1);
        if (ex is UsageStoreNotReadyException)
        {
            Log.BudgetCheckStoreNotReady(_logger, ex.Message, _options.FailClosed);
        }
        else
        {
            Log.BudgetCheckFailed(_logger, ex, _options.FailClosed);
        }

        return _options.FailClosed
            ? new BudgetReservation(BudgetRefusalReason.Unavailable, null, TimeSpan.FromSeconds(30), null)
            : new BudgetReservation(BudgetRefusalReason.None, null, TimeSpan.Zero, null);
    }

    private BudgetReservation Refuse(string userId, BudgetRefusalReason reason, BudgetStatus status)
    {
        _refusals?.Add(1);
        Log.BudgetRefused(_logger, userId, reason == BudgetRefusalReason.TokenLimit ? nameof(BudgetRefusalReason.TokenLimit) : nameof(BudgetRefusalReason.CostLimit));
        return new BudgetReservation(reason, status, UntilNextMonth(), null);
    }

    /// <summary>The store shared by every app instance, when there is one.</summary>
    internal IBudgetReservationStore? SharedStore => _shared;

    /// <summary>One atomic check-and-reserve in the shared store; the hold is settled or released when the call ends.</summary>
    private async ValueTask<BudgetReservation> ReserveSharedAsync(IBudgetReservationStore shared, string userId, BudgetEstimate estimate, CancellationToken cancellationToken)
    {
        var request = CreateHoldRequest(userId, estimate);
        BudgetHoldResult result;
        try
        {
            result = await shared.TryReserveAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return CheckFailed(ex);
        }

        return Complete(request, result);
    }

    /// <summary>The hold a call of <paramref name="userId"/> asks the shared store for.</summary>
    internal BudgetHoldRequest CreateHoldRequest(string userId, BudgetEstimate? estimate)
    {
        var now = _time.GetUtcNow();
        return new BudgetHoldRequest(UsageIds.NewVersion7(now), userId, new DateOnly(now.Year, now.Month, 1), estimate ?? DefaultEstimate, now, now + _options.ReservationLease);
    }

    /// <summary>The reservation for the shared store's answer: a refusal, or the hold, settled or released when the call ends.</summary>
    internal BudgetReservation Complete(BudgetHoldRequest request, BudgetHoldResult result)
    {
        if (result.Limit is null)
        {
            return new BudgetReservation(BudgetRefusalReason.None, null, TimeSpan.Zero, null);
        }

        var status = new BudgetStatus(result.Limit, result.SpentCostUsd, result.SpentTokens, result.ReservedCostUsd, result.ReservedTokens);
        if (!result.Allowed)
        {
            var reason = Exceeded(status, request.Estimate);
            return Refuse(request.UserId, reason == BudgetRefusalReason.None ? BudgetRefusalReason.CostLimit : reason, status);
        }

        var user = Ledger.For(request.UserId);
        var hold = new OpenHold(this, user, request);
        user.Open(hold);
        return new BudgetReservation(BudgetRefusalReason.None, status, TimeSpan.Zero, hold.ReleaseAsync);
    }

    /// <summary>
    /// Ends a call's shared hold: the call's records are taken now; the settle is written after the
    /// response, with whatever else is queued (until it lands the hold counts its estimate, a worst case).
    /// </summary>
    private ValueTask ReleaseAsync(BudgetLedger.UserLedger user, BudgetLedger.SharedHold hold, DateTimeOffset expiresAt)
    {
        var (cost, tokens, records) = user.Close(hold);
        var settle = new HoldSettle(hold.Id, cost, tokens, records, _time.GetUtcNow() + _options.PendingRetention, expiresAt);
        if (_settler is null)
        {
            return SettleNowAsync(settle);
        }

        _settler.Enqueue(settle);
        return ValueTask.CompletedTask;
    }

    /// <summary>A call's hold in the shared store, open in its user's ledger until <see cref="ReleaseAsync()"/>.</summary>
    private sealed class OpenHold(BudgetGuard guard, BudgetLedger.UserLedger user, BudgetHoldRequest request) : BudgetLedger.SharedHold(request.Id)
    {
        public ValueTask ReleaseAsync() => guard.ReleaseAsync(user, this, request.ExpiresAt);
    }

    /// <summary>Settles a hold in the shared store at once (no settle queue registered). Never throws: a hold not written lapses with its lease.</summary>
    private async ValueTask SettleNowAsync(HoldSettle settle)
    {
        try
        {
            if (settle.Records.Count == 0)
            {
                await _shared!.ReleaseAsync(settle.Id).ConfigureAwait(false);
            }
            else
            {
                await _shared!.SettleAsync(settle.Id, settle.CostUsd, settle.Tokens, settle.Records, settle.KeepUntil).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            _checkFailures?.Add(1);
            Log.LimitSettleDropped(_logger, 1, 0, ex.Message);
        }
    }

    private async ValueTask<BudgetStatus?> ReadStatusAsync(string userId, BudgetLedger.UserLedger user, CancellationToken cancellationToken)
    {
        var limit = await _budgets.GetEffectiveBudgetAsync(userId, cancellationToken).ConfigureAwait(false);
        if (limit is not { HasLimit: true })
        {
            return null;
        }

        var (cost, tokens) = await ReadSpendAsync(userId, user, cancellationToken).ConfigureAwait(false);
        var reserved = user.Reserved;
        return new BudgetStatus(limit, cost, tokens, reserved.Cost, reserved.Tokens);
    }

    private async ValueTask<(decimal Cost, long Tokens)> ReadSpendAsync(string userId, BudgetLedger.UserLedger user, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var monthStart = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var today = DateOnly.FromDateTime(now.UtcDateTime);

        // Forget pending records the store already holds; this read comes before the totals so a
        // record flushed in between is counted twice (safe), never missed.
        if (user.Prune(monthStart, now - _options.PendingRetention) is { } oldest)
        {
            var pendingIds = user.PendingIds().ToHashSet();
            var stored = new HashSet<Guid>();
            var query = new UsageExportQuery(DateOnly.FromDateTime(oldest.UtcDateTime), null, userId);
            await foreach (var record in _queries.ExportAsync(query, cancellationToken).ConfigureAwait(false))
            {
                if (pendingIds.Contains(record.Id))
                {
                    stored.Add(record.Id);
                }
            }

            if (stored.Count > 0)
            {
                user.RemoveStored(stored);
            }
        }

        // The ledger before the store: the writer forgets a record in the ledger once it is stored (see
        // BudgetLedger.Stored), so one stored between the two reads is counted twice (safe), never missed.
        var pending = user.PendingSince(monthStart);
        var totals = await _queries.GetUserTotalsAsync(userId, DateOnly.FromDateTime(monthStart.UtcDateTime), today, cancellationToken).ConfigureAwait(false);
        return (totals.CostUsd + pending.Cost, totals.TotalTokens + pending.Tokens);
    }
}
