using Microsoft.Extensions.Logging;

namespace TokenMeter.AspNetCore.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 4600, Level = LogLevel.Debug, Message = "Refused {Path} for user {UserId}: the {Limit} per minute limit is reached; retry after {RetryAfterSeconds} s.")]
    public static partial void RateLimited(ILogger logger, string path, string userId, string limit, long retryAfterSeconds);
}
