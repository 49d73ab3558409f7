using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.Diagnostics;
using TokenMeter.Resilience;

namespace TokenMeter.Delivery;

/// <summary>Background webhook delivery with signed bodies and the shared back-off (honouring <c>Retry-After</c>).</summary>
internal sealed class WebhookSender : DeliveryQueue<WebhookSender.Delivery>, IWebhookSender
{
    public const string HttpClientName = "TokenMeter.Webhooks";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly IHttpClientFactory _httpClients;
    private readonly ILogger _logger;

    public WebhookSender(
        IHttpClientFactory httpClients, IOptionsMonitor<WebhookOptions> options, TimeProvider time, ILogger<WebhookSender> logger, IMeterFactory meterFactory)
        : base(
            capacity: 10_000,
            maxConcurrent: 4,
            options,
            time,
            TokenMeterInstruments.For(meterFactory).WebhooksSent,
            TokenMeterInstruments.For(meterFactory).WebhooksFailed)
    {
        _httpClients = httpClients;
        _logger = logger;
    }

    public bool Enqueue<TData>(string eventType, string id, TData data, Func<CancellationToken, ValueTask>? onDelivered = null)
        where TData : notnull
    {
        ArgumentException.ThrowIfNullOrEmpty(eventType);
        ArgumentException.ThrowIfNullOrEmpty(id);
        ArgumentNullException.ThrowIfNull(data);
        if (Options.CurrentValue.WebhookUrl is null)
        {
            Log.WebhookNotConfigured(_logger, eventType, id);
            return false;
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(new WebhookEnvelope<TData>(id, eventType, Time.GetUtcNow(), data), Json);
        return TryQueue(new Delivery(eventType, id, body, onDelivered));
    }

    /// <summary>The signature header value of a body: <c>sha256=</c> and the lowercase hex HMAC-SHA256.</summary>
    public static string Sign(ReadOnlySpan<byte> body, string secret)
        => "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    protected override async Task<DeliveryAttempt> TryDeliverAsync(Delivery delivery, WebhookOptions options, int attempt, CancellationToken cancellationToken)
    {
        if (options.WebhookUrl is not { } url)
        {
            return DeliveryAttempt.Failed();
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
                return DeliveryAttempt.Delivered;
            }

            Log.WebhookRejected(_logger, delivery.EventType, delivery.Id, attempt, (int)response.StatusCode);

            // A receiver that says when to come back (429, 503) is waited out, up to the back-off's cap.
            return DeliveryAttempt.Failed(RetryBackoff.RetryAfter(response.Headers, Time));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            Log.WebhookFailed(_logger, ex, delivery.EventType, delivery.Id, attempt);
            return DeliveryAttempt.Failed();
        }
    }

    protected override void LogDelivered(Delivery item, int attempt) => Log.WebhookDelivered(_logger, item.EventType, item.Id, attempt);

    protected override void LogGaveUp(Delivery item, int attempts) => Log.WebhookGaveUp(_logger, item.EventType, item.Id, attempts);

    protected override void LogDropped(Delivery item) => Log.WebhookDropped(_logger, item.EventType, item.Id);

    protected override void LogCallbackFailed(Delivery item, Exception exception) => Log.WebhookCallbackFailed(_logger, exception, item.EventType, item.Id);

    internal sealed record Delivery(string EventType, string Id, byte[] Body, Func<CancellationToken, ValueTask>? OnDelivered)
        : DeliveryItem(EventType, Id, OnDelivered);

    private sealed record WebhookEnvelope<TData>(string Id, string Type, DateTimeOffset CreatedAt, TData Data);
}
