using Microsoft.Extensions.Logging;

namespace TokenMeter.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Warning, Message = "Budget check could not read budgets or usage; failing {Mode}.")]
    private static partial void BudgetCheckFailedCore(ILogger logger, Exception exception, string mode);

    public static void BudgetCheckFailed(ILogger logger, Exception exception, bool failClosed)
        => BudgetCheckFailedCore(logger, exception, failClosed ? "closed (call refused)" : "open (call allowed)");

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Budget check skipped, the store is not ready yet: {Reason}; failing {Mode}.")]
    private static partial void BudgetCheckStoreNotReadyCore(ILogger logger, string reason, string mode);

    public static void BudgetCheckStoreNotReady(ILogger logger, string reason, bool failClosed)
        => BudgetCheckStoreNotReadyCore(logger, reason, failClosed ? "closed (call refused)" : "open (call allowed)");

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Call for user {UserId} refused: {Reason} reached this month.")]
    public static partial void BudgetRefused(ILogger logger, string userId, string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "{Holds} budget reservation(s) and {Entries} rate-limit entries could not be settled in the shared store; trying again in {DelayMs} ms.")]
    public static partial void LimitSettleRetry(ILogger logger, Exception exception, int holds, int entries, long delayMs);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "{Holds} budget reservation(s) and {Entries} rate-limit entries were not settled in the shared store ({Why}); they lapse with their lease or window.")]
    public static partial void LimitSettleDropped(ILogger logger, int holds, int entries, string why);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Rate-limit check could not reach the store; failing {Mode}.")]
    private static partial void RateLimitCheckFailedCore(ILogger logger, Exception exception, string mode);

    public static void RateLimitCheckFailed(ILogger logger, Exception exception, bool failClosed)
        => RateLimitCheckFailedCore(logger, exception, failClosed ? "closed (call refused)" : "open (call allowed)");
}
