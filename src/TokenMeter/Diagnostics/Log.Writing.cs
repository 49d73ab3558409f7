using Microsoft.Extensions.Logging;

namespace TokenMeter.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 2000, Level = LogLevel.Warning, Message = "No price for model '{Model}' on service tier '{ServiceTier}'; its calls are recorded unpriced (never at another tier's price) and can be re-priced later")]
    public static partial void ModelUnpriced(ILogger logger, string model, string serviceTier);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Storing {Count} usage records failed (attempt {Attempt}); retrying in {Delay}")]
    public static partial void StoreWriteFailed(ILogger logger, Exception exception, int count, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "The usage store is unavailable; {Count} usage records spooled to {Path}")]
    public static partial void BatchSpooled(ILogger logger, int count, string path);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "Replayed {Count} spooled usage records from {Path}")]
    public static partial void SpoolFileReplayed(ILogger logger, int count, string path);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "Replaying spooled usage records from {Path} failed; will retry")]
    public static partial void SpoolReplayFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Error, Message = "Spooling {Count} usage records to {Directory} failed; they stay in memory and are retried")]
    public static partial void SpoolWriteFailed(ILogger logger, Exception exception, int count, string directory);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Skipped an unreadable line {Line} in spool file {Path}")]
    public static partial void SpoolLineUnreadable(ILogger logger, Exception exception, int line, string path);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "The usage queue is full ({Capacity} records); further records are spilled to the spool")]
    public static partial void QueueFull(ILogger logger, int capacity);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Error, Message = "{Count} usage records arrived after the writer stopped and could not be stored")]
    public static partial void RecordsLostAfterStop(ILogger logger, int count);

    [LoggerMessage(EventId = 2009, Level = LogLevel.Information, Message = "The usage store is available again; replaying the spool")]
    public static partial void StoreRecovered(ILogger logger);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Error, Message = "The usage writer failed unexpectedly; restarting its loop")]
    public static partial void WriterLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Information, Message = "Usage writer stopped: {Written} records stored and {Spooled} spooled while draining")]
    public static partial void WriterDrained(ILogger logger, long written, long spooled);

    [LoggerMessage(EventId = 2012, Level = LogLevel.Information, Message = "Usage writer started; durable spool at {Directory} (set TokenMeter:Writer:SpoolDirectory to a persistent volume in a container)")]
    public static partial void WriterStarted(ILogger logger, string directory);

    [LoggerMessage(EventId = 2013, Level = LogLevel.Information, Message = "The usage store is not ready yet: {Reason}. Records wait in the spool at {Directory} until it is")]
    public static partial void StoreNotReady(ILogger logger, string reason, string directory);
}
