namespace HomeworkApi.Diagnostics;

/// <summary>The sample's log messages (one partial class; event ids 100–199 start-up, 200–299 accounts, 300–399 homework).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Simulated model mode: neither OpenAI:ApiKey nor OpenAI:Endpoint is set, so an in-process OpenAI-compatible model answers with deterministic text and real token counts.")]
    public static partial void SimulatedModel(ILogger logger);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Model endpoint: {Endpoint}.")]
    public static partial void ModelEndpoint(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "No ConnectionStrings:TokenMeter: usage and accounts are kept in memory and are NOT kept when the app stops.")]
    public static partial void InMemoryStorage(ILogger logger);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Usage and accounts are stored in PostgreSQL ({Database} on {Host}).")]
    public static partial void PostgresStorage(ILogger logger, string? database, string? host);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "No Jwt:SigningKey of at least 32 bytes: using an ephemeral key for this run (Development only); tokens stop working when the app restarts.")]
    public static partial void EphemeralSigningKey(ILogger logger);

    [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "Admin portal: {AdminUrl} (admin sign-in); students' page: {UsageUrl}")]
    public static partial void PortalUrls(ILogger logger, string adminUrl, string usageUrl);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "PostgreSQL cannot be reached; {Path} answered 503.")]
    public static partial void StoreUnavailable(ILogger logger, Exception exception, string path);
}
