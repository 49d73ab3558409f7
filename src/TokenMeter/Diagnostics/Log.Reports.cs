using Microsoft.Extensions.Logging;

namespace TokenMeter.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 4500, Level = LogLevel.Information, Message = "Usage report {Period} for {Key} sent to {Recipients} recipient(s).")]
    public static partial void ReportSent(ILogger logger, string period, string key, int recipients);

    [LoggerMessage(EventId = 4501, Level = LogLevel.Warning, Message = "Usage report {Period} for {Key} failed on attempt {Attempt}; retrying in {RetryIn}.")]
    public static partial void ReportFailed(ILogger logger, Exception exception, string period, string key, int attempt, TimeSpan retryIn);

    [LoggerMessage(EventId = 4502, Level = LogLevel.Error, Message = "Usage report {Period} for {Key} given up after {Attempts} attempts.")]
    public static partial void ReportGivenUp(ILogger logger, Exception exception, string period, string key, int attempts);

    [LoggerMessage(EventId = 4503, Level = LogLevel.Debug, Message = "Usage report {Period} for {Key} is being sent, or was sent, by another instance.")]
    public static partial void ReportClaimedElsewhere(ILogger logger, string period, string key);

    [LoggerMessage(EventId = 4504, Level = LogLevel.Warning, Message = "Usage report {Period} not sent: TokenMeter:Reports:Smtp:Host and TokenMeter:Reports:To are not configured.")]
    public static partial void ReportNotConfigured(ILogger logger, string period);

    [LoggerMessage(EventId = 4505, Level = LogLevel.Error, Message = "Usage report scheduler check failed; it runs again at the next check.")]
    public static partial void ReportCheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4510, Level = LogLevel.Information, Message = "Statement for user {UserId} and month {Month} queued as a statement.closed webhook.")]
    public static partial void StatementClosedQueued(ILogger logger, string userId, string month);

    [LoggerMessage(EventId = 4511, Level = LogLevel.Warning, Message = "statement.closed for month {Month} not queued: {Reason}.")]
    public static partial void StatementClosedNotQueued(ILogger logger, string month, string reason);

    [LoggerMessage(EventId = 4512, Level = LogLevel.Error, Message = "statement.closed check failed; it runs again at the next check.")]
    public static partial void StatementCheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4520, Level = LogLevel.Information, Message = "Alert {EventType} {EventId} mailed to {Recipients} recipient(s).")]
    public static partial void AlertMailed(ILogger logger, string eventType, string eventId, int recipients);

    [LoggerMessage(EventId = 4521, Level = LogLevel.Warning, Message = "Alert {EventType} {EventId} could not be mailed on attempt {Attempt}.")]
    public static partial void AlertMailFailed(ILogger logger, Exception exception, string eventType, string eventId, int attempt);

    [LoggerMessage(EventId = 4522, Level = LogLevel.Error, Message = "Alert {EventType} {EventId} could not be mailed; given up after {Attempts} attempts (it is tried again when its claim expires).")]
    public static partial void AlertMailGaveUp(ILogger logger, string eventType, string eventId, int attempts);

    [LoggerMessage(EventId = 4523, Level = LogLevel.Warning, Message = "Alert {EventType} {EventId} not mailed: TokenMeter:Reports:Smtp:Host and TokenMeter:Reports:To are not configured.")]
    public static partial void AlertMailNotConfigured(ILogger logger, string eventType, string eventId);

    [LoggerMessage(EventId = 4524, Level = LogLevel.Warning, Message = "Alert {EventType} {EventId} not mailed: the queue is full.")]
    public static partial void AlertMailDropped(ILogger logger, string eventType, string eventId);

    [LoggerMessage(EventId = 4525, Level = LogLevel.Error, Message = "Alert {EventType} {EventId} was mailed but completing it failed.")]
    public static partial void AlertMailCallbackFailed(ILogger logger, Exception exception, string eventType, string eventId);
}
