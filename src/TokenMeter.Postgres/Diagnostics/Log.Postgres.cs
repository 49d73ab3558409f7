using Microsoft.Extensions.Logging;

namespace TokenMeter.Postgres.Diagnostics;

/// <summary>Log messages of the PostgreSQL store (event ids 2500–2599).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2500, Level = LogLevel.Error, Message = "TokenMeter could not install its PostgreSQL schema \"{Schema}\" ({Reason}). Usage records are kept in the writer's spool until the database is reachable; retrying in the background every {RetryDelay}.")]
    public static partial void SchemaInstallFailed(ILogger logger, string schema, string reason, TimeSpan retryDelay, Exception exception);

    [LoggerMessage(EventId = 2501, Level = LogLevel.Debug, Message = "TokenMeter PostgreSQL schema install attempt {Attempt} failed; retrying.")]
    public static partial void SchemaInstallRetryFailed(ILogger logger, int attempt, Exception exception);

    [LoggerMessage(EventId = 2502, Level = LogLevel.Information, Message = "TokenMeter PostgreSQL schema \"{Schema}\" is ready ({Applied} migration(s) applied now).")]
    public static partial void SchemaReady(ILogger logger, string schema, int applied);

    [LoggerMessage(EventId = 2503, Level = LogLevel.Information, Message = "TokenMeter applied PostgreSQL migration {Version} ({Name}) to schema \"{Schema}\".")]
    public static partial void MigrationApplied(ILogger logger, int version, string name, string schema);

    [LoggerMessage(EventId = 2504, Level = LogLevel.Information, Message = "TokenMeter created partition for {Month:yyyy-MM} of \"{Schema}\".user_api_usage.")]
    public static partial void PartitionCreated(ILogger logger, DateOnly month, string schema);

    [LoggerMessage(EventId = 2505, Level = LogLevel.Information, Message = "TokenMeter retention dropped partition {Partition} of \"{Schema}\".user_api_usage.")]
    public static partial void PartitionDropped(ILogger logger, string partition, string schema);

    [LoggerMessage(EventId = 2506, Level = LogLevel.Warning, Message = "TokenMeter PostgreSQL maintenance (partitions ahead, retention) failed; it runs again later.")]
    public static partial void MaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2507, Level = LogLevel.Warning, Message = "TokenMeter could not fold the pending user/endpoint/model sums of schema \"{Schema}\" into their rollups; they stay pending (queries still count them) and the next fold takes them.")]
    public static partial void FoldFailed(ILogger logger, string schema, Exception exception);

    [LoggerMessage(EventId = 2508, Level = LogLevel.Warning, Message = "TokenMeter could not write {Count} headroom-slice adjustment(s) (unused headroom given back); the budget slices' holds lapse with their lease and the window counters leave their window, so nothing is let through past a limit meanwhile.")]
    public static partial void SliceAdjustmentsLost(ILogger logger, Exception exception, int count);

    [LoggerMessage(EventId = 2509, Level = LogLevel.Warning, Message = "TokenMeter lost its PostgreSQL LISTEN connection for limit changes; every call is checked in the database until it is back (retrying in {RetryDelay}).")]
    public static partial void LimitListenerLost(ILogger logger, Exception exception, TimeSpan retryDelay);

    [LoggerMessage(EventId = 2510, Level = LogLevel.Debug, Message = "TokenMeter listens for limit changes on channel {Channel}; headroom slices are on.")]
    public static partial void LimitListenerReady(ILogger logger, string channel);

    [LoggerMessage(EventId = 2511, Level = LogLevel.Debug, Message = "TokenMeter's background claim of a user's next headroom slice failed; the current slice keeps deciding calls, and once it ends the next call claims as usual.")]
    public static partial void PreClaimFailed(ILogger logger, Exception exception);
}
