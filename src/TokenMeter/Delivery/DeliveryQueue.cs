using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.Resilience;

namespace TokenMeter.Delivery;

/// <summary>How one attempt went; a failed one may carry the wait the receiver asked for (<c>Retry-After</c>).</summary>
internal readonly record struct DeliveryAttempt(bool IsDelivered, TimeSpan? RetryAfter)
{
    public static DeliveryAttempt Delivered => new(true, null);

    public static DeliveryAttempt Failed(TimeSpan? retryAfter = null) => new(false, retryAfter);
}

/// <summary>One queued delivery: the event it carries, its id, and what to do once it was delivered.</summary>
internal abstract record DeliveryItem(string EventType, string Id, Func<CancellationToken, ValueTask>? OnDelivered);

/// <summary>
/// The background half shared by the webhook sender and the alert mailer: a bounded queue (a full
/// queue drops, it never blocks the caller), a few deliveries at once, each retried with the shared
/// <see cref="RetryBackoff"/> (<c>MaxAttempts</c> tries, <c>InitialRetryDelay</c> doubling, jittered,
/// capped at <see cref="MaxRetryDelay"/>, a receiver's <c>Retry-After</c> waited out), and a tracker
/// tests await until nothing is left. Subclasses say how one attempt is made and what is logged.
/// </summary>
internal abstract class DeliveryQueue<TItem> : BackgroundService
    where TItem : DeliveryItem
{
    /// <summary>The longest wait between two attempts, a receiver's <c>Retry-After</c> included.</summary>
    internal static readonly TimeSpan MaxRetryDelay = TimeSpan.FromMinutes(5);

    private readonly Channel<TItem> _queue;
    private readonly int _maxConcurrent;
    private readonly WorkTracker _work = new();
    private readonly Counter<long> _delivered;
    private readonly Counter<long> _failed;

    protected DeliveryQueue(
        int capacity, int maxConcurrent, IOptionsMonitor<WebhookOptions> options, TimeProvider time, Counter<long> delivered, Counter<long> failed)
    {
        _queue = Channel.CreateBounded<TItem>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropWrite });
        _maxConcurrent = maxConcurrent;
        Options = options;
        Time = time;
        _delivered = delivered;
        _failed = failed;
    }

    protected IOptionsMonitor<WebhookOptions> Options { get; }

    protected TimeProvider Time { get; }

    /// <summary>Completes when every queued item has been delivered or given up (tests await it).</summary>
    internal Task WhenIdleAsync() => _work.WhenIdleAsync();

    /// <summary>Queues an item; false (counted as failed, and <see cref="LogDropped"/>) when the queue is full.</summary>
    protected bool TryQueue(TItem item)
    {
        _work.Begin();
        if (_queue.Writer.TryWrite(item))
        {
            return true;
        }

        _work.End();
        _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", item.EventType));
        LogDropped(item);
        return false;
    }

    /// <summary>One attempt; true when the receiver accepted it. Failures are logged here, not thrown.</summary>
    protected abstract Task<DeliveryAttempt> TryDeliverAsync(TItem item, WebhookOptions options, int attempt, CancellationToken cancellationToken);

    protected abstract void LogDelivered(TItem item, int attempt);

    protected abstract void LogGaveUp(TItem item, int attempts);

    protected abstract void LogDropped(TItem item);

    protected abstract void LogCallbackFailed(TItem item, Exception exception);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var slots = new SemaphoreSlim(_maxConcurrent);
        var running = new List<Task>();
        try
        {
            await foreach (var item in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(DeliverAsync(item, slots, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task DeliverAsync(TItem item, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        try
        {
            var options = Options.CurrentValue;
            var attempts = Math.Max(1, options.MaxAttempts);
            var initial = options.InitialRetryDelay < MaxRetryDelay ? options.InitialRetryDelay : MaxRetryDelay;
            var backoff = new RetryBackoff(initial, MaxRetryDelay);
            for (var attempt = 1; attempt <= attempts; attempt++)
            {
                var result = await TryDeliverAsync(item, options, attempt, stoppingToken).ConfigureAwait(false);
                if (result.IsDelivered)
                {
                    _delivered.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", item.EventType));
                    LogDelivered(item, attempt);
                    if (item.OnDelivered is not null)
                    {
                        await item.OnDelivered(stoppingToken).ConfigureAwait(false);
                    }

                    return;
                }

                if (attempt < attempts)
                {
                    await Task.Delay(backoff.DelayAfter(attempt, result.RetryAfter), Time, stoppingToken).ConfigureAwait(false);
                }
            }

            _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", item.EventType));
            LogGaveUp(item, attempts);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            LogCallbackFailed(item, ex);
        }
        finally
        {
            slots.Release();
            _work.End();
        }
    }
}
