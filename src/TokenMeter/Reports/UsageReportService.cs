using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Delivery;
using TokenMeter.Diagnostics;
using TokenMeter.Resilience;
using TokenMeter.Storage;

namespace TokenMeter.Reports;

/// <summary>
/// Sends usage reports in the background: the scheduled ones once per period across instances and
/// restarts (claim in the delivery log, send, complete), and the ones asked for now. A failed send is
/// retried with back-off and logged; nothing here ever blocks a request.
/// </summary>
internal sealed class UsageReportService(
    UsageReportBuilder builder,
    RecipientMailer mailer,
    IDeliveryLog deliveryLog,
    IOptionsMonitor<UsageReportOptions> options,
    TimeProvider timeProvider,
    ILogger<UsageReportService> logger) : BackgroundService
{
    private const int ManualAttempts = 4;

    // Reports asked for now: 2 s, 4 s, 8 s between the attempts (jittered).
    private static readonly RetryBackoff ManualBackoff = new(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(8));

    private readonly Channel<ReportPeriod> _manual = Channel.CreateBounded<ReportPeriod>(
        new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    // Per scheduled period: failed attempts so far and the earliest next try (this instance only).
    private readonly Dictionary<string, (int Attempts, DateTimeOffset NextTry)> _retries = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _checkLock = new(1, 1);

    /// <summary>Queues a report of the period just ended, sent now. False when mail is not configured or the queue is full.</summary>
    public bool TrySendNow(ReportPeriod period)
    {
        if (mailer.RecipientCount == 0)
        {
            var periodName = ReportPeriods.Name(period);
            Log.ReportNotConfigured(logger, periodName);
            return false;
        }

        return _manual.Writer.TryWrite(period);
    }

    /// <summary>Sends every scheduled report that is due and not yet sent by any instance. Runs on each tick; tests call it directly.</summary>
    public async Task CheckScheduledAsync(CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        if (mailer.RecipientCount == 0)
        {
            return;
        }

        await _checkLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = timeProvider.GetUtcNow();
            var today = DateOnly.FromDateTime(now.UtcDateTime);
            foreach (var period in settings.ScheduledPeriods)
            {
                var periodName = ReportPeriods.Name(period);
                var range = ReportPeriods.LastEnded(period, today);
                if (now < ReportPeriods.DueAt(range, settings.SendAfterUtc))
                {
                    continue;
                }

                var kind = ReportPeriods.DeliveryKind(period);
                var key = ReportPeriods.DeliveryKey(period, range);
                var retryKey = kind + "/" + key;
                if (_retries.TryGetValue(retryKey, out var retry) && now < retry.NextTry)
                {
                    continue;
                }

                if (!await deliveryLog.TryClaimAsync(kind, key, settings.ClaimLease, cancellationToken).ConfigureAwait(false))
                {
                    Log.ReportClaimedElsewhere(logger, periodName, key);
                    continue;
                }

                try
                {
                    await SendAsync(period, range, cancellationToken).ConfigureAwait(false);
                    await deliveryLog.CompleteAsync(kind, key, cancellationToken).ConfigureAwait(false);
                    _retries.Remove(retryKey);
                    var recipients = mailer.RecipientCount;
                    Log.ReportSent(logger, periodName, key, recipients);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    // The claim is left to expire, so this instance or another takes it up again after the back-off.
                    var attempts = retry.Attempts + 1;
                    var delay = Backoff(settings, attempts);
                    _retries[retryKey] = (attempts, now + delay);
                    Log.ReportFailed(logger, ex, periodName, key, attempts, delay);
                }
            }
        }
        finally
        {
            _checkLock.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.WhenAll(RunScheduleAsync(stoppingToken), RunManualAsync(stoppingToken)).ConfigureAwait(false);
    }

    private async Task RunScheduleAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.CurrentValue.CheckInterval, timeProvider);
        do
        {
            try
            {
                await CheckScheduledAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                Log.ReportCheckFailed(logger, ex);
            }
        }
        while (await WaitAsync(timer, stoppingToken).ConfigureAwait(false));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task RunManualAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var period in _manual.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                var range = ReportPeriods.LastEnded(period, DateOnly.FromDateTime(timeProvider.GetUtcNow().UtcDateTime));
                var key = ReportPeriods.DeliveryKey(period, range);
                var periodName = ReportPeriods.Name(period);
                for (var attempt = 1; ; attempt++)
                {
                    try
                    {
                        await SendAsync(period, range, stoppingToken).ConfigureAwait(false);
                        var recipients = mailer.RecipientCount;
                        Log.ReportSent(logger, periodName, key, recipients);
                        break;
                    }
                    catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                    {
                        if (attempt >= ManualAttempts)
                        {
                            Log.ReportGivenUp(logger, ex, periodName, key, attempt);
                            break;
                        }

                        var delay = ManualBackoff.DelayAfter(attempt);
                        Log.ReportFailed(logger, ex, periodName, key, attempt, delay);
                        await Task.Delay(delay, timeProvider, stoppingToken).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private async Task SendAsync(ReportPeriod period, ReportRange range, CancellationToken cancellationToken)
    {
        var report = await builder.BuildAsync(period, range, cancellationToken).ConfigureAwait(false);
        var headers = new Dictionary<string, string>
        {
            ["X-TokenMeter-Report"] = ReportPeriods.Name(period) + " " + ReportPeriods.DeliveryKey(period, range),
        };
        await mailer.SendAsync(
            UsageReportRenderer.Subject(report),
            UsageReportRenderer.Html(report),
            UsageReportRenderer.Text(report),
            headers,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The shared back-off from the claim lease up to <c>MaxRetryDelay</c>, never shorter than the lease (the claim holds until then).</summary>
    private static TimeSpan Backoff(UsageReportOptions settings, int attempts)
    {
        var lease = settings.ClaimLease < settings.MaxRetryDelay ? settings.ClaimLease : settings.MaxRetryDelay;
        var delay = new RetryBackoff(lease, settings.MaxRetryDelay).DelayAfter(attempts);
        return delay > lease ? delay : lease;
    }

    public override void Dispose()
    {
        _checkLock.Dispose();
        base.Dispose();
    }
}
