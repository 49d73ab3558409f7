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

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "A budget reservation could not be settled in the shared store; it lapses with its lease.")]
    public static partial void BudgetSettleFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Rate-limit check could not reach the store; failing {Mode}.")]
    private static partial void RateLimitCheckFailedCore(ILogger logger, Exception exception, string mode);

    public static void RateLimitCheckFailed(ILogger logger, Exception exception, bool failClosed)
        => RateLimitCheckFailedCore(logger, exception, failClosed ? "closed (call refused)" : "open (call allowed)");
}
