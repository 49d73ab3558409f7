using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Diagnostics;

namespace TokenMeter.AspNetCore.Alerts;

/// <summary>Background webhook delivery with signed bodies and exponential back-off.</summary>
internal sealed class WebhookSender : BackgroundService, IWebhookSender
{
    public const string HttpClientName = "TokenMeter.Webhooks";
    private const int MaxConcurrentDeliveries = 4;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly Channel<Delivery> _queue = Channel.CreateBounded<Delivery>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly IHttpClientFactory _httpClients;
    private readonly IOptionsMonitor<TokenMeterAlertOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _sent;
    private readonly Counter<long> _failed;
    private readonly WorkTracker _work = new();

    public WebhookSender(
        IHttpClientFactory httpClients, IOptionsMonitor<TokenMeterAlertOptions> options, TimeProvider time, ILogger<WebhookSender> logger, IMeterFactory meterFactory)
    {
        _httpClients = httpClients;
        _options = options;
        _time = time;
        _logger = logger;
        var meter = meterFactory.Create("TokenMeter");
        _sent = meter.CreateCounter<long>("tokenmeter.webhooks.sent", "{event}", "Webhook events the receiver accepted.");
        _failed = meter.CreateCounter<long>("tokenmeter.webhooks.failed", "{event}", "Webhook events given up after every attempt, or dropped.");
    }

    public bool Enqueue(string eventType, string id, object data, Func<CancellationToken, ValueTask>? onDelivered = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(eventType);
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentNullException.ThrowIfNull(data);
        if (_options.CurrentValue.WebhookUrl is null)
        {
            Log.WebhookNotConfigured(_logger, eventType, id);
            return false;
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(new WebhookEnvelope(id, eventType, _time.GetUtcNow(), data), Json);
        _work.Begin();
        if (!_queue.Writer.TryWrite(new Delivery(eventType, id, body, onDelivered)))
        {
            _work.End();
            _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", eventType));
            Log.WebhookDropped(_logger, eventType, id);
            return false;
        }

        return true;
    }

    /// <summary>The signature header value of a body: <c>sha256=</c> and the lowercase hex HMAC-SHA256.</summary>
    public static string Sign(ReadOnlySpan<byte> body, string secret)
        => "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var slots = new SemaphoreSlim(MaxConcurrentDeliveries);
        var running = new List<Task>();
        try
        {
            await foreach (var delivery in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(DeliverAsync(delivery, slots, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task DeliverAsync(Delivery delivery, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        try
        {
            var options = _options.CurrentValue;
            var delay = options.InitialRetryDelay;
            for (var attempt = 1; attempt <= Math.Max(1, options.MaxAttempts); attempt++)
            {
                if (await TrySendAsync(delivery, options, attempt, stoppingToken).ConfigureAwait(false))
                {
                    _sent.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", delivery.EventType));
                    Log.WebhookDelivered(_logger, delivery.EventType, delivery.Id, attempt);
                    if (delivery.OnDelivered is not null)
                    {
                        await delivery.OnDelivered(stoppingToken).ConfigureAwait(false);
                    }

                    return;
                }

                if (attempt < options.MaxAttempts)
                {
                    await Task.Delay(delay, _time, stoppingToken).ConfigureAwait(false);
                    delay *= 2;
                }
            }

            _failed.Add(1, new KeyValuePair<string, object?>("tokenmeter.event", delivery.EventType));
            Log.WebhookGaveUp(_logger, delivery.EventType, delivery.Id, options.MaxAttempts);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.WebhookCallbackFailed(_logger, ex, delivery.EventType, delivery.Id);
        }
        finally
        {
            slots.Release();
            _work.End();
        }
    }

    private async Task<bool> TrySendAsync(Delivery delivery, TokenMeterAlertOptions options, int attempt, CancellationToken cancellationToken)
    {
        if (options.WebhookUrl is not { } url)
        {
            return false;
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url);
            request.Content = new ByteArrayContent(delivery.Body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Add("X-TokenMeter-Event", delivery.EventType);
            request.Headers.Add("X-TokenMeter-Delivery", delivery.Id);
            if (!string.IsNullOrEmpty(options.WebhookSecret))
            {
                request.Headers.Add("X-TokenMeter-Signature", Sign(delivery.Body, options.WebhookSecret));
            }

            using var response = await _httpClients.CreateClient(HttpClientName).SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return true;
            }

            Log.WebhookRejected(_logger, delivery.EventType, delivery.Id, attempt, (int)response.StatusCode);
            return false;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            Log.WebhookFailed(_logger, ex, delivery.EventType, delivery.Id, attempt);
            return false;
        }
    }

    /// <summary>Completes when every queued event has been delivered or given up (tests await it).</summary>
    internal Task WhenIdleAsync() => _work.WhenIdleAsync();

    private sealed record Delivery(string EventType, string Id, byte[] Body, Func<CancellationToken, ValueTask>? OnDelivered);

    private sealed record WebhookEnvelope(string Id, string Type, DateTimeOffset CreatedAt, object Data);
}
