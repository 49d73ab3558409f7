using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Diagnostics;
using TokenMeter.AspNetCore.Reports;

namespace TokenMeter.AspNetCore.Alerts;

/// <summary>
/// Mails alerts to the report recipients (<c>TokenMeter:Alerts:Email</c>) over the reports' SMTP
/// settings, in the background, retried with the webhook's back-off (<c>MaxAttempts</c>,
/// <c>InitialRetryDelay</c> doubling). Never blocks the caller.
/// </summary>
internal sealed class AlertMailer : BackgroundService
{
    private const int MaxConcurrentSends = 2;

    private readonly Channel<AlertMail> _queue = Channel.CreateBounded<AlertMail>(new BoundedChannelOptions(1_000) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly IReportMailer _mailer;
    private readonly IOptionsMonitor<TokenMeterAlertOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _sent;
    private readonly Counter<long> _failed;
    private readonly WorkTracker _work = new();

    public AlertMailer(IReportMailer mailer, IOptionsMonitor<TokenMeterAlertOptions> options, TimeProvider time, ILogger<AlertMailer> logger, IMeterFactory meterFactory)
    {
        _mailer = mailer;
        _options = options;
        _time = time;
        _logger = logger;
        var meter = meterFactory.Create("TokenMeter");
        _sent = meter.CreateCounter<long>("tokenmeter.alerts.mailed", "{alert}", "Alert emails the SMTP server accepted.");
        _failed = meter.CreateCounter<long>("tokenmeter.alerts.mail_failed", "{alert}", "Alert emails given up after every attempt, or dropped.");
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

        _work.Begin();
        if (!_queue.Writer.TryWrite(new AlertMail(eventType, id, data, onDelivered)))
        {
            _work.End();
            _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", eventType));
            Log.AlertMailDropped(_logger, eventType, id);
            return false;
        }

        return true;
    }

    /// <summary>Completes when every queued email has been sent or given up (tests await it).</summary>
    internal Task WhenIdleAsync() => _work.WhenIdleAsync();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var slots = new SemaphoreSlim(MaxConcurrentSends);
        var running = new List<Task>();
        try
        {
            await foreach (var mail in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(SendAsync(mail, slots, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task SendAsync(AlertMail mail, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        try
        {
            var options = _options.CurrentValue;
            var attempts = Math.Max(1, options.MaxAttempts);
            var delay = options.InitialRetryDelay;
            var headers = new Dictionary<string, string>
            {
                ["X-TokenMeter-Event"] = mail.EventType,
                ["X-TokenMeter-Alert-Id"] = mail.Id,
            };
            var subject = AlertEmailRenderer.Subject(mail.EventType, mail.Data);
            var html = AlertEmailRenderer.Html(mail.EventType, mail.Id, mail.Data);
            var text = AlertEmailRenderer.Text(mail.EventType, mail.Id, mail.Data);
            for (var attempt = 1; attempt <= attempts; attempt++)
            {
                try
                {
                    await _mailer.SendAsync(subject, html, text, headers, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.AlertMailFailed(_logger, ex, mail.EventType, mail.Id, attempt);
                    if (attempt < attempts)
                    {
                        await Task.Delay(delay, _time, stoppingToken).ConfigureAwait(false);
                        delay *= 2;
                    }

                    continue;
                }

                _sent.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", mail.EventType));
                Log.AlertMailed(_logger, mail.EventType, mail.Id, _mailer.RecipientCount);
                if (mail.OnDelivered is not null)
                {
                    await mail.OnDelivered(stoppingToken).ConfigureAwait(false);
                }

                return;
            }

            _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", mail.EventType));
            Log.AlertMailGaveUp(_logger, mail.EventType, mail.Id, attempts);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.AlertMailCallbackFailed(_logger, ex, mail.EventType, mail.Id);
        }
        finally
        {
            slots.Release();
            _work.End();
        }
    }

    private sealed record AlertMail(string EventType, string Id, object Data, Func<CancellationToken, ValueTask>? OnDelivered);
}
