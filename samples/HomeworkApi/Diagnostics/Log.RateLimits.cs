namespace HomeworkApi.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 310, Level = LogLevel.Debug, Message = "Refused {Path} for user {UserId}: the {Limit} per minute limit is reached; retry after {RetryAfterSeconds} s.")]
    public static partial void RateLimited(ILogger logger, string path, string userId, string limit, long retryAfterSeconds);
}
