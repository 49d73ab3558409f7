namespace HomeworkApi.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Admin account '{Username}': {What} from configuration.")]
    public static partial void AdminSeeded(ILogger logger, string username, string what);

    // The one password ever logged: generated for a fresh install with no Admin:Password, shown once so the portal can be opened.
    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Created admin account '{Username}' with the generated password '{Password}' (shown once; set Admin:Password to choose it).")]
    public static partial void AdminPasswordGenerated(ILogger logger, string username, string password);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Could not read the role of account {AccountId} again in the background; the cached role serves until it expires.")]
    public static partial void RoleRefreshFailed(ILogger logger, Exception exception, long accountId);

    [LoggerMessage(EventId = 203, Level = LogLevel.Error, Message = "PostgreSQL cannot be reached at start-up: the account table and the admin account '{Username}' are set up as soon as it answers (trying every {Seconds} s); until then sign-in and the routes that need the database answer 503.")]
    public static partial void AdminSeedDeferred(ILogger logger, Exception exception, string username, int seconds);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "Could not set up the admin account '{Username}' once PostgreSQL answered; it is not retried.")]
    public static partial void AdminSeedFailed(ILogger logger, Exception exception, string username);
}
