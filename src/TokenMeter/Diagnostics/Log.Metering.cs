using Microsoft.Extensions.Logging;

namespace TokenMeter.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Warning, Message = "TokenMeter could not meter a call; the call itself was not affected")]
    public static partial void MeteringFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Usage observer {Observer} threw; ignored")]
    public static partial void ObserverFailed(ILogger logger, Exception exception, string observer);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Pricing a call of model {Model} failed; recorded unpriced")]
    public static partial void PricingFailed(ILogger logger, Exception exception, string? model);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Queuing usage record {RecordId} failed")]
    public static partial void EnqueueFailed(ILogger logger, Exception exception, Guid recordId);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Metered {Operation} call of {Model}: {Status}, {InputTokens} input and {OutputTokens} output tokens")]
    public static partial void CallRecorded(ILogger logger, string operation, string? model, UsageStatus status, long inputTokens, long outputTokens);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Debug, Message = "A {Operation} reply of {Model} carried no usage ({Status}); {InputTokens} input and {OutputTokens} output tokens estimated")]
    public static partial void UsageMissing(ILogger logger, string operation, string? model, UsageStatus status, long inputTokens, long outputTokens);
}
