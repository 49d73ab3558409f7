using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Diagnostics;
using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.AspNetCore.Alerts;

/// <summary>
/// Watches finished calls in the background and fires each alert crossing once per period:
/// <c>budget.threshold</c> (a user's month-to-date cost reaching a percentage of the cost budget)
/// and <c>platform.daily_cost</c> (the platform's cost today reaching the configured amount).
/// Once-ness holds across instances and restarts through <see cref="IDeliveryLog"/>.
/// </summary>
internal sealed class AlertMonitor : BackgroundService
{
    public const string BudgetThresholdEvent = "budget.threshold";
    public const string PlatformDailyCostEvent = "platform.daily_cost";

    private readonly Channel<UsageRecord> _records = Channel.CreateBounded<UsageRecord>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    // Alerts this process already claimed or saw claimed: no need to ask the delivery log again.
    private readonly ConcurrentDictionary<string, byte> _settled = new(StringComparer.Ordinal);
    private readonly BudgetGuard _guard;
    private readonly IUsageQueries _queries;
    private readonly IDeliveryLog _deliveryLog;
    private readonly IWebhookSender _sender;
    private readonly IOptionsMonitor<TokenMeterAlertOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _alerts;

    public AlertMonitor(
        BudgetGuard guard,
        IUsageQueries queries,
        IDeliveryLog deliveryLog,
        IWebhookSender sender,
        IOptionsMonitor<TokenMeterAlertOptions> options,
        TimeProvider time,
        ILogger<AlertMonitor> logger,
        IMeterFactory meterFactory)
    {
        _guard = guard;
        _queries = queries;
        _deliveryLog = deliveryLog;
        _sender = sender;
        _options = options;
        _time = time;
        _logger = logger;
        _alerts = meterFactory.Create("TokenMeter").CreateCounter<long>("tokenmeter.alerts", "{alert}", "Alert crossings fired.");
    }

    /// <summary>Notes a finished call; evaluated in the background, never blocking the caller.</summary>
    public void Observe(UsageRecord record) => _records.Writer.TryWrite(record);

    /// <summary>Evaluates one batch of calls (the background loop's body; tests call it directly).</summary>
    internal async Task EvaluateAsync(IReadOnlyCollection<UsageRecord> batch, CancellationToken cancellationToken)
    {
        var options = _options.CurrentValue;
        var now = _time.GetUtcNow();
        var month = now.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        foreach (var userId in batch.Where(r => r.UserId is not null && r.CostUsd > 0).Select(r => r.UserId!).Distinct(StringComparer.Ordinal))
        {
            var status = await _guard.GetStatusAsync(userId, cancellationToken).ConfigureAwait(false);
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
                await FireOnceAsync(BudgetThresholdEvent, key, options, () =>
                {
                    Log.BudgetThresholdCrossed(_logger, userId, percent, status.CostUsd, limit);
                    return new BudgetThresholdAlert(userId, month, percent, limit, status.CostUsd);
                }, cancellationToken).ConfigureAwait(false);
            }
        }

        if (options.PlatformDailyCostUsd is { } threshold && batch.Any(r => r.CostUsd > 0))
        {
            var today = DateOnly.FromDateTime(now.UtcDateTime);
            var stats = await _queries.GetStatsAsync(today, cancellationToken).ConfigureAwait(false);
            var date = today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            var cost = stats.Today.CostUsd;
            if (cost >= threshold)
            {
                await FireOnceAsync(PlatformDailyCostEvent, date, options, () =>
                {
                    Log.PlatformDailyCostCrossed(_logger, date, cost, threshold);
                    return new PlatformDailyCostAlert(date, threshold, cost);
                }, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
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

    private async Task FireOnceAsync(string kind, string key, TokenMeterAlertOptions options, Func<object> describe, CancellationToken cancellationToken)
    {
        var settledKey = kind + "|" + key;
        if (_settled.ContainsKey(settledKey))
        {
            return;
        }

        var claimed = await _deliveryLog.TryClaimAsync("alert." + kind, key, options.ClaimLease, cancellationToken).ConfigureAwait(false);
        _settled.TryAdd(settledKey, 0);
        if (!claimed)
        {
            return;
        }

        _alerts.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", kind));
        var data = describe();
        var deliveryLog = _deliveryLog;
        if (!_sender.Enqueue(kind, kind + "/" + key, data, ct => deliveryLog.CompleteAsync("alert." + kind, key, ct)))
        {
            // No webhook configured: the alert was logged and counted; that is its delivery.
            await _deliveryLog.CompleteAsync("alert." + kind, key, cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>Payload of <c>budget.threshold</c>.</summary>
internal sealed record BudgetThresholdAlert(string UserId, string Month, int ThresholdPercent, decimal MonthlyCostUsd, decimal MonthToDateCostUsd);

/// <summary>Payload of <c>platform.daily_cost</c>.</summary>
internal sealed record PlatformDailyCostAlert(string Date, decimal ThresholdUsd, decimal CostUsd);
