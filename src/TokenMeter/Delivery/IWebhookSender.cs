namespace TokenMeter.Delivery;

/// <summary>
/// Sends TokenMeter webhook events in the background: a JSON POST of <c>{id, type, createdAt, data}</c>
/// to <see cref="WebhookOptions.WebhookUrl"/>, with headers <c>X-TokenMeter-Event</c> and
/// <c>X-TokenMeter-Signature: sha256=&lt;hex HMAC-SHA256 of the body&gt;</c>, retried with back-off.
/// Never blocks the caller.
/// </summary>
internal interface IWebhookSender
{
    /// <summary>Queues an event.</summary>
    /// <param name="eventType">The event type, e.g. <c>budget.threshold</c>.</param>
    /// <param name="id">A unique id of the event, stable across retries, so receivers can drop duplicates.</param>
    /// <typeparam name="TData">The payload's type.</typeparam>
    /// <param name="data">The event payload (serialized as camelCase JSON).</param>
    /// <param name="onDelivered">Called once the receiver accepted the event (2xx), e.g. to complete a delivery-log claim.</param>
    /// <returns>False when no webhook URL is configured or the queue is full (the event is dropped and logged).</returns>
    bool Enqueue<TData>(string eventType, string id, TData data, Func<CancellationToken, ValueTask>? onDelivered = null)
        where TData : notnull;
}
