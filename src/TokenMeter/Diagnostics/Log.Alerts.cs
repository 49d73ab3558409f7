using Microsoft.Extensions.Logging;

namespace TokenMeter.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 4100, Level = LogLevel.Debug, Message = "Webhook event {EventType} {EventId} not sent: no webhook URL is configured.")]
    public static partial void WebhookNotConfigured(ILogger logger, string eventType, string eventId);

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "Webhook event {EventType} {EventId} dropped: the queue is full.")]
    public static partial void WebhookDropped(ILogger logger, string eventType, string eventId);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Information, Message = "Webhook event {EventType} {EventId} delivered on attempt {Attempt}.")]
    public static partial void WebhookDelivered(ILogger logger, string eventType, string eventId, int attempt);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "Webhook event {EventType} {EventId} rejected on attempt {Attempt} with HTTP {StatusCode}.")]
    public static partial void WebhookRejected(ILogger logger, string eventType, string eventId, int attempt, int statusCode);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "Webhook event {EventType} {EventId} failed on attempt {Attempt}.")]
    public static partial void WebhookFailed(ILogger logger, Exception exception, string eventType, string eventId, int attempt);

    [LoggerMessage(EventId = 4105, Level = LogLevel.Error, Message = "Webhook event {EventType} {EventId} given up after {Attempts} attempts.")]
    public static partial void WebhookGaveUp(ILogger logger, string eventType, string eventId, int attempts);

    [LoggerMessage(EventId = 4106, Level = LogLevel.Error, Message = "Webhook event {EventType} {EventId} was delivered but completing it failed.")]
    public static partial void WebhookCallbackFailed(ILogger logger, Exception exception, string eventType, string eventId);

    [LoggerMessage(EventId = 4110, Level = LogLevel.Warning, Message = "Alert: user {UserId} reached {Percent}% of the monthly cost budget ({SpentUsd} of {LimitUsd} USD).")]
    public static partial void BudgetThresholdCrossed(ILogger logger, string userId, int percent, decimal spentUsd, decimal limitUsd);

    [LoggerMessage(EventId = 4111, Level = LogLevel.Warning, Message = "Alert: the platform's cost today ({Date}) reached {CostUsd} USD (threshold {ThresholdUsd} USD).")]
    public static partial void PlatformDailyCostCrossed(ILogger logger, string date, decimal costUsd, decimal thresholdUsd);

    [LoggerMessage(EventId = 4112, Level = LogLevel.Warning, Message = "Alert evaluation failed; it is retried with the next calls.")]
    public static partial void AlertEvaluationFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4113, Level = LogLevel.Warning, Message = "Alert delivery {DeliveryKind} {Key} was not completed within its lease; claimed again and resent.")]
    public static partial void AlertReclaimed(ILogger logger, string deliveryKind, string key);

    [LoggerMessage(EventId = 4114, Level = LogLevel.Error, Message = "Alert delivery {DeliveryKind} {Key} abandoned: its period ended a day ago without a completed delivery seen by this instance.")]
    public static partial void AlertAbandoned(ILogger logger, string deliveryKind, string key);
}
