using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Querying;

namespace TokenMeter.Budgets;

/// <summary>
/// Enforces monthly budgets before a model is called, without ASP.NET Core. A call is refused when
/// the user's spend this calendar month (UTC) — stored calls, calls seen in this process and not yet
/// stored, and the estimates reserved by calls still in flight — has reached a limit. Checks of one
/// user are serialised in-process, so a burst of parallel calls cannot all pass on the same reading.
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
    internal BudgetGuard(
        IBudgetStore budgets,
        IUsageQueries queries,
        TimeProvider time,
        IOptions<BudgetGuardOptions> options,
        ILogger<BudgetGuard> logger,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(budgets);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _budgets = budgets;
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

            if (status is null)
            {
                return new BudgetReservation(BudgetRefusalReason.None, null, TimeSpan.Zero, null);
            }

            var reason = Exceeded(status);
            if (reason != BudgetRefusalReason.None)
            {
                _refusals?.Add(1);
                Log.BudgetRefused(_logger, userId, reason == BudgetRefusalReason.TokenLimit ? nameof(BudgetRefusalReason.TokenLimit) : nameof(BudgetRefusalReason.CostLimit));
                return new BudgetReservation(reason, status, UntilNextMonth(), null);
            }

            user.Reserve(estimate);
            return new BudgetReservation(BudgetRefusalReason.None, status, TimeSpan.Zero, () => user.Release(estimate));
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
        Ledger.Observe(record, _time.GetUtcNow());
    }

    /// <summary>Time until the first instant of the next UTC month.</summary>
    /// <returns>The wait, rounded up to whole seconds.</returns>
    public TimeSpan UntilNextMonth()
    {
        var now = _time.GetUtcNow();
        var next = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
        return TimeSpan.FromSeconds(Math.Ceiling((next - now).TotalSeconds));
    }

    private static BudgetRefusalReason Exceeded(BudgetStatus status)
    {
        var limit = status.Limit!;
        if (limit.MonthlyCostUsd is { } maxCost && status.CostUsd + status.ReservedCostUsd >= maxCost)
        {
            return BudgetRefusalReason.CostLimit;
        }

        if (limit.MonthlyTokens is { } maxTokens && status.Tokens + status.ReservedTokens >= maxTokens)
        {
            return BudgetRefusalReason.TokenLimit;
        }

        return BudgetRefusalReason.None;
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

        var totals = await _queries.GetUserTotalsAsync(userId, DateOnly.FromDateTime(monthStart.UtcDateTime), today, cancellationToken).ConfigureAwait(false);
        var pending = user.PendingSince(monthStart);
        return (totals.CostUsd + pending.Cost, totals.TotalTokens + pending.Tokens);
    }
}
