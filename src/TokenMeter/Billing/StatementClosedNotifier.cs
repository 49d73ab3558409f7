using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Delivery;
using TokenMeter.Diagnostics;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.Billing;

/// <summary>
/// When a month has closed, queues one <c>statement.closed</c> webhook per user with usage in it,
/// delivered once across instances and restarts: each (user, month) is claimed in the delivery log,
/// and completed only once the receiver accepted it; an undelivered claim expires and is taken up again.
/// Runs on its own timer (every minute, reading the store at most every 15 minutes).
/// </summary>
internal sealed class StatementClosedNotifier(
    IUsageQueries queries,
    IDeliveryLog deliveryLog,
    IWebhookSender webhooks,
    IOptionsMonitor<WebhookOptions> webhookOptions,
    IOptionsMonitor<BillingOptions> billingOptions,
    TimeProvider timeProvider,
    ILogger<StatementClosedNotifier> logger) : BackgroundService
{
    public const string EventType = "statement.closed";

    /// <summary>How long after midnight a month counts as closed (late records from the writer are in by then).</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromMinutes(30);

    private static readonly TimeSpan TickInterval = TimeSpan.FromMinutes(1);

    private DateTimeOffset _nextCheck = DateTimeOffset.MinValue;

    /// <summary>Queues what is due; checks the store at most every 15 minutes unless <paramref name="force"/>.</summary>
    public async Task CheckAsync(bool force, CancellationToken cancellationToken)
    {
        var alerts = webhookOptions.CurrentValue;
        if (alerts.WebhookUrl is null)
        {
            return;
        }

        var now = timeProvider.GetUtcNow();
        if (!force && now < _nextCheck)
        {
            return;
        }

        _nextCheck = now + TimeSpan.FromMinutes(15);
        var today = DateOnly.FromDateTime((now - Grace).UtcDateTime);
        var month = new DateOnly(today.Year, today.Month, 1).AddMonths(-1);
        var monthText = month.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var billing = billingOptions.CurrentValue;
        var statement = await new StatementCalculator(queries)
            .GetMonthlyStatementAsync(month, billing.MarkupPercent, billing.Currency, null, cancellationToken)
            .ConfigureAwait(false);

        foreach (var item in statement.Items)
        {
            var key = item.UserId + "/" + monthText;
            if (!await deliveryLog.TryClaimAsync(EventType, key, alerts.ClaimLease, cancellationToken).ConfigureAwait(false))
            {
                continue;
            }

            var data = new StatementClosedEvent(
                item.UserId,
                monthText,
                statement.Currency,
                statement.MarkupPercent,
                item.Lines.Select(l => new StatementClosedLine(l.Endpoint, l.Model, l.Figures.Calls, l.Figures.InputTokens, l.Figures.CachedInputTokens, l.Figures.CacheWriteTokens, l.Figures.OutputTokens, l.Figures.TotalTokens, l.Figures.CostUsd)).ToList(),
                item.Lines.Sum(l => l.Figures.Calls),
                item.Lines.Sum(l => l.Figures.TotalTokens),
                item.CostUsd,
                item.AmountUsd);
            var queued = webhooks.Enqueue(
                EventType,
                EventType + "/" + key,
                data,
                ct => deliveryLog.CompleteAsync(EventType, key, ct));
            if (!queued)
            {
                // The claim expires and the next check tries again.
                Log.StatementClosedNotQueued(logger, monthText, "the webhook queue is full or no URL is configured");
                return;
            }

            Log.StatementClosedQueued(logger, item.UserId, monthText);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TickInterval, timeProvider);
        try
        {
            do
            {
                try
                {
                    await CheckAsync(force: false, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.StatementCheckFailed(logger, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }
}

/// <summary>The <c>data</c> of a <c>statement.closed</c> event.</summary>
internal sealed record StatementClosedEvent(
    string UserId,
    string Month,
    string Currency,
    decimal MarkupPercent,
    IReadOnlyList<StatementClosedLine> Lines,
    long Calls,
    long TotalTokens,
    decimal CostUsd,
    decimal AmountUsd);

internal sealed record StatementClosedLine(string? Endpoint, string? Model, long Calls, long InputTokens, long CachedInputTokens, long CacheWriteTokens, long OutputTokens, long TotalTokens, decimal CostUsd);
