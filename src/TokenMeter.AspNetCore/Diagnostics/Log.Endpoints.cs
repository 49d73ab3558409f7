using Microsoft.Extensions.Logging;

namespace TokenMeter.AspNetCore.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 4700, Level = LogLevel.Warning, Message = "The usage store cannot be reached; {Path} answered 503.")]
    public static partial void StoreUnavailable(ILogger logger, Exception exception, string path);

    [LoggerMessage(EventId = 4701, Level = LogLevel.Error, Message = "The CSV export {FileName} failed after its first bytes were sent; the connection was aborted so the file is not mistaken for a complete one.")]
    public static partial void ExportFailedMidStream(ILogger logger, Exception exception, string fileName);
}
