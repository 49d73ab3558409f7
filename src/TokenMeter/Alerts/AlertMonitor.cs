using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Budgets;
using TokenMeter.Delivery;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.Alerts;

/// <summary>
/// Watches finished calls in the background and fires each alert crossing once per period:
/// <c>budget.threshold</c> (a user's month-to-date cost reaching a percentage of the cost budget)
/// and <c>platform.daily_cost</c> (the platform's cost today reaching the configured amount).
/// Each alert goes out on its channels — the webhook (claimed as <c>alert.&lt;event&gt;</c>, also when
/// no URL is set: then logging and counting it is its delivery) and, with <c>TokenMeter:Alerts:Email</c>,
/// an email (claimed separately as <c>alert-email.&lt;event&gt;</c>) — each once across instances and
/// restarts through <see cref="IDeliveryLog"/>. A claim whose delivery does not complete (a crashed
/// instance, a receiver down for longer than the retries) is asked for again once its lease has run out.
/// </summary>
internal sealed class AlertMonitor : BackgroundService
{
    public const string BudgetThresholdEvent = "budget.threshold";
    public const string PlatformDailyCostEvent = "platform.daily_cost";

    /// <summary>Delivery-log kind prefix of an alert's webhook (and of the alert itself).</summary>
    public const string WebhookKindPrefix = "alert.";

    /// <summary>Delivery-log kind prefix of an alert's email.</summary>
    public const string EmailKindPrefix = "alert-email.";

    private static readonly TimeSpan RecheckInterval = TimeSpan.FromMinutes(1);

    private readonly Channel<UsageRecord> _records = Channel.CreateBounded<UsageRecord>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    // Deliveries this process already claimed or saw claimed: not asked for again on every call.
    private readonly ConcurrentDictionary<string, byte> _settled = new(StringComparer.Ordinal);

    // Deliveries not known to be complete: claimed here and in flight, or claimed by another instance.
    // Asked for again after the lease, so a claim left by a crashed sender is taken up.
    private readonly Dictionary<string, PendingDelivery> _pending = new(StringComparer.Ordinal);
    private readonly Lock _pendingGate = new();
    private readonly SemaphoreSlim _recheckLock = new(1, 1);
    private readonly BudgetGuard? _guard;
    private readonly IUsageQueries _queries;
    private readonly IDeliveryLog _deliveryLog;
    private readonly IWebhookSender _sender;
    private readonly AlertMailer _mailer;
    private readonly IOptionsMonitor<TokenMeterAlertOptions> _options;
    private readonly IOptionsMonitor<WebhookOptions> _delivery;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _alerts;

    // Calls the writer has stored since the last evaluation after a flush, one per user (the
    // platform's day is evaluated with any of them), and the signal that there are some.
    private readonly Lock _storedGate = new();
    private readonly Dictionary<string, UsageRecord> _stored = new(StringComparer.Ordinal);
    private readonly Channel<bool> _storedSignal = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    public AlertMonitor(
        IServiceProvider services,
        IUsageQueries queries,
        IDeliveryLog deliveryLog,
        IWebhookSender sender,
        AlertMailer mailer,
        IOptionsMonitor<TokenMeterAlertOptions> options,
        IOptionsMonitor<WebhookOptions> delivery,
        TimeProvider time,
        ILogger<AlertMonitor> logger,
        IMeterFactory meterFactory)
    {
        _guard = services.GetService<BudgetGuard>();
        _queries = queries;
        _deliveryLog = deliveryLog;
        _sender = sender;
        _mailer = mailer;
        _options = options;
        _delivery = delivery;
        _time = time;
        _logger = logger;
        _alerts = TokenMeterInstruments.For(meterFactory).Alerts;
    }

    /// <summary>Notes a finished call; evaluated in the background, never blocking the caller.</summary>
    public void Observe(UsageRecord record) => _records.Writer.TryWrite(record);

    /// <summary>
    /// Notes a batch the writer has just stored: its users and the platform's day are evaluated
    /// again in the background. The evaluation made when a call was metered may have read the store
    /// before that call (or another instance's) was in it; this one reads it after, so a crossing
    /// made by the last calls before a silence is seen by whichever instance stores last.
    /// </summary>
    public void Stored(IReadOnlyList<UsageRecord> records)
    {
        var any = false;
        lock (_storedGate)
        {
            foreach (var record in records)
            {
                if (record.CostUsd > 0)
                {
                    _stored[record.UserId ?? string.Empty] = record;
                    any = true;
                }
            }
        }

        if (any)
        {
            _storedSignal.Writer.TryWrite(true);
        }
    }

    /// <summary>Evaluates one batch of calls (the background loop's body; tests call it directly).</summary>
    internal async Task EvaluateAsync(IReadOnlyCollection<UsageRecord> batch, CancellationToken cancellationToken)
    {
        var options = _options.CurrentValue;
        var now = _time.GetUtcNow();
        var month = now.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var monthStart = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var monthEnd = monthStart.AddMonths(1);

        // Budget thresholds need the budgets feature; without it only the platform's daily cost is watched.
        var users = _guard is null ? Enumerable.Empty<string>() : batch.Where(r => r.UserId is not null && r.CostUsd > 0).Select(r => r.UserId!).Distinct(StringComparer.Ordinal);
        foreach (var userId in users)
        {
            // Users without a cost limit have no threshold to cross: skip the spend reads.
            if ((await _guard!.GetLimitAsync(userId, cancellationToken).ConfigureAwait(false))?.MonthlyCostUsd is not > 0m)
            {
                continue;
            }

            var status = await _guard!.GetStatusAsync(userId, cancellationToken).ConfigureAwait(false);
            if (status.Limit?.MonthlyCostUsd is not { } limit || limit <= 0)
            {
                continue;
            }

            foreach (var percent in options.EffectiveThresholds.Where(p => p > 0).Distinct().Order())
            {
                if (status.CostUsd < limit * percent / 100m)
                {
                    break;
                }

                var key = $"{userId}/{month}/{percent}";
                var spent = status.CostUsd;
                await FireOnceAsync(BudgetThresholdEvent, key, options, monthEnd, new BudgetThresholdAlert(userId, month, percent, limit, spent), () =>
                    Log.BudgetThresholdCrossed(_logger, userId, percent, spent, limit), cancellationToken).ConfigureAwait(false);
            }
        }

        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var date = today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        if (options.PlatformDailyCostUsd is { } threshold && batch.Any(r => r.CostUsd > 0) && !IsSettled(PlatformDailyCostEvent, date, options))
        {
            var stats = await _queries.GetStatsAsync(today, cancellationToken).ConfigureAwait(false);
            var cost = stats.Today.Figures.CostUsd;
            if (cost >= threshold)
            {
                var dayEnd = new DateTimeOffset(today.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
                await FireOnceAsync(PlatformDailyCostEvent, date, options, dayEnd, new PlatformDailyCostAlert(date, threshold, cost), () =>
                    Log.PlatformDailyCostCrossed(_logger, date, cost, threshold), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
        => Task.WhenAll(EvaluateLoopAsync(stoppingToken), EvaluateStoredLoopAsync(stoppingToken), RecheckLoopAsync(stoppingToken));

    private async Task EvaluateLoopAsync(CancellationToken stoppingToken)
    {
        var batch = new List<UsageRecord>();
        try
        {
            while (await _records.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < 1_000 && _records.Reader.TryRead(out var record))
                {
                    batch.Add(record);
                }

                try
                {
                    await EvaluateAsync(batch, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.AlertEvaluationFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Evaluates the calls the writer has stored (see <see cref="Stored"/>), everything stored meanwhile in one go.</summary>
    private async Task EvaluateStoredLoopAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _storedSignal.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                _storedSignal.Reader.TryRead(out _);
                List<UsageRecord> stored;
                lock (_storedGate)
                {
                    stored = [.. _stored.Values];
                    _stored.Clear();
                }

                try
                {
                    await EvaluateAsync(stored, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.AlertEvaluationFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RecheckLoopAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(RecheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await RecheckAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.AlertEvaluationFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Asks again for the deliveries whose lease has run out without this process seeing them complete:
    /// a won claim is delivered (again); a lost one means another instance completed or took it up.
    /// Runs every minute; tests call it directly.
    /// </summary>
    internal async Task RecheckAsync(CancellationToken cancellationToken)
    {
        await _recheckLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            PendingDelivery[] due;
            lock (_pendingGate)
            {
                foreach (var expired in _pending.Values.Where(p => now >= p.GiveUpAt).ToArray())
                {
                    _pending.Remove(expired.SettledKey);
                    Log.AlertAbandoned(_logger, expired.DeliveryKind, expired.Key);
                }

                due = _pending.Values.Where(p => now >= p.RecheckAt).ToArray();
            }

            var options = _delivery.CurrentValue;
            foreach (var pending in due)
            {
                if (await _deliveryLog.TryClaimAsync(pending.DeliveryKind, pending.Key, options.ClaimLease, cancellationToken).ConfigureAwait(false))
                {
                    Log.AlertReclaimed(_logger, pending.DeliveryKind, pending.Key);
                    SetPending(pending with { RecheckAt = now + options.ClaimLease });
                    await DispatchAsync(pending, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    lock (_pendingGate)
                    {
                        _pending.Remove(pending.SettledKey);
                    }
                }
            }
        }
        finally
        {
            _recheckLock.Release();
        }
    }

    /// <summary>How many deliveries this process is watching (tests).</summary>
    internal int PendingCount
    {
        get
        {
            lock (_pendingGate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Whether every channel of this crossing was already claimed or seen claimed here (nothing left to read the store for).</summary>
    private bool IsSettled(string kind, string key, TokenMeterAlertOptions options) =>
        _settled.ContainsKey(WebhookKindPrefix + kind + "|" + key) && (!options.Email || _settled.ContainsKey(EmailKindPrefix + kind + "|" + key));

    private async Task FireOnceAsync(
        string kind, string key, TokenMeterAlertOptions options, DateTimeOffset periodEnd, object data, Action logCrossing, CancellationToken cancellationToken)
    {
        AlertChannel[] channels = options.Email ? [AlertChannel.Webhook, AlertChannel.Email] : [AlertChannel.Webhook];
        foreach (var channel in channels)
        {
            var deliveryKind = (channel == AlertChannel.Email ? EmailKindPrefix : WebhookKindPrefix) + kind;
            var settledKey = deliveryKind + "|" + key;
            if (_settled.ContainsKey(settledKey))
            {
                continue;
            }

            var lease = _delivery.CurrentValue.ClaimLease;
            var claimed = await _deliveryLog.TryClaimAsync(deliveryKind, key, lease, cancellationToken).ConfigureAwait(false);
            if (!_settled.TryAdd(settledKey, 0) && !claimed)
            {
                // Another evaluation in this process got here first and watches the outcome.
                continue;
            }

            // Watched until known complete; a day after the alert's period it is dropped.
            var pending = new PendingDelivery(channel, kind, deliveryKind, key, data, _time.GetUtcNow() + lease, periodEnd.AddDays(1));
            SetPending(pending);
            if (!claimed)
            {
                continue;
            }

            if (channel == AlertChannel.Webhook)
            {
                logCrossing();
                _alerts.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", kind));
            }

            await DispatchAsync(pending, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DispatchAsync(PendingDelivery pending, CancellationToken cancellationToken)
    {
        var id = pending.Kind + "/" + pending.Key;
        var deliveryLog = _deliveryLog;
        async ValueTask Complete(CancellationToken ct)
        {
            await deliveryLog.CompleteAsync(pending.DeliveryKind, pending.Key, ct).ConfigureAwait(false);
            lock (_pendingGate)
            {
                _pending.Remove(pending.SettledKey);
            }
        }

        if (pending.Channel == AlertChannel.Email)
        {
            // Not queued (mail not configured, queue full): the claim expires and the recheck tries again.
            _mailer.Enqueue(pending.Kind, id, pending.Data, Complete);
            return;
        }

        if (!_sender.Enqueue(pending.Kind, id, pending.Data, Complete))
        {
            // No webhook configured: the alert was logged and counted; that is its delivery.
            await Complete(cancellationToken).ConfigureAwait(false);
        }
    }

    private void SetPending(PendingDelivery pending)
    {
        lock (_pendingGate)
        {
            _pending[pending.SettledKey] = pending;
        }
    }

    public override void Dispose()
    {
        _recheckLock.Dispose();
        base.Dispose();
    }

    private enum AlertChannel
    {
        Webhook,
        Email,
    }

    private sealed record PendingDelivery(AlertChannel Channel, string Kind, string DeliveryKind, string Key, object Data, DateTimeOffset RecheckAt, DateTimeOffset GiveUpAt)
    {
        public string SettledKey => DeliveryKind + "|" + Key;
    }
}

/// <summary>Payload of <c>budget.threshold</c>.</summary>
internal sealed record BudgetThresholdAlert(string UserId, string Month, int ThresholdPercent, decimal MonthlyCostUsd, decimal MonthToDateCostUsd);

/// <summary>Payload of <c>platform.daily_cost</c>.</summary>
internal sealed record PlatformDailyCostAlert(string Date, decimal ThresholdUsd, decimal CostUsd);
