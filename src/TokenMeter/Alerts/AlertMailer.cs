using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Delivery;

namespace TokenMeter.Alerts;

/// <summary>
/// Mails alerts to the report recipients (<c>TokenMeter:Alerts:Email</c>) through the app's
/// email sender, in the background, retried with the webhook's back-off (<c>MaxAttempts</c>,
/// <c>InitialRetryDelay</c> doubling, jittered, capped). Never blocks the caller.
/// </summary>
internal sealed class AlertMailer : DeliveryQueue<AlertMailer.AlertMail>
{
    private readonly RecipientMailer _mailer;
    private readonly ILogger _logger;

    public AlertMailer(RecipientMailer mailer, IOptionsMonitor<WebhookOptions> options, TimeProvider time, ILogger<AlertMailer> logger, IMeterFactory meterFactory)
        : base(
            capacity: 1_000,
            maxConcurrent: 2,
            options,
            time,
            TokenMeterInstruments.For(meterFactory).AlertsMailed,
            TokenMeterInstruments.For(meterFactory).AlertMailFailed)
    {
        _mailer = mailer;
        _logger = logger;
    }

    /// <summary>Queues an alert email.</summary>
    /// <param name="eventType">The event type, e.g. <c>budget.threshold</c>; named in the subject.</param>
    /// <param name="id">The alert's id (the same as its webhook's), sent as <c>X-TokenMeter-Alert-Id</c>.</param>
    /// <param name="data">The alert payload.</param>
    /// <param name="onDelivered">Called once the SMTP server accepted the message.</param>
    /// <returns>False when mail is not configured or the queue is full.</returns>
    public bool Enqueue(string eventType, string id, object data, Func<CancellationToken, ValueTask>? onDelivered = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(eventType);
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentNullException.ThrowIfNull(data);
        if (_mailer.RecipientCount == 0)
        {
            Log.AlertMailNotConfigured(_logger, eventType, id);
            return false;
        }

        return TryQueue(new AlertMail(
            eventType,
            id,
            AlertEmailRenderer.Subject(eventType, data),
            AlertEmailRenderer.Html(eventType, id, data),
            AlertEmailRenderer.Text(eventType, id, data),
            onDelivered));
    }

    protected override async Task<DeliveryAttempt> TryDeliverAsync(AlertMail item, WebhookOptions options, int attempt, CancellationToken cancellationToken)
    {
        var headers = new Dictionary<string, string>
        {
            ["X-TokenMeter-Event"] = item.EventType,
            ["X-TokenMeter-Alert-Id"] = item.Id,
        };
        try
        {
            await _mailer.SendAsync(item.Subject, item.Html, item.Text, headers, cancellationToken).ConfigureAwait(false);
            return DeliveryAttempt.Delivered;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.AlertMailFailed(_logger, ex, item.EventType, item.Id, attempt);
            return DeliveryAttempt.Failed();
        }
    }

    protected override void LogDelivered(AlertMail item, int attempt) => Log.AlertMailed(_logger, item.EventType, item.Id, _mailer.RecipientCount);

    protected override void LogGaveUp(AlertMail item, int attempts) => Log.AlertMailGaveUp(_logger, item.EventType, item.Id, attempts);

    protected override void LogDropped(AlertMail item) => Log.AlertMailDropped(_logger, item.EventType, item.Id);

    protected override void LogCallbackFailed(AlertMail item, Exception exception) => Log.AlertMailCallbackFailed(_logger, exception, item.EventType, item.Id);

    internal sealed record AlertMail(string EventType, string Id, string Subject, string Html, string Text, Func<CancellationToken, ValueTask>? OnDelivered)
        : DeliveryItem(EventType, Id, OnDelivered);
}
