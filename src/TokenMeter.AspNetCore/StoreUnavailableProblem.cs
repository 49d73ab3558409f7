using System.Data.Common;
using System.Globalization;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace TokenMeter.AspNetCore;

/// <summary>
/// The answer when the store cannot be reached: 503 problem details with <c>Retry-After</c>. The
/// admin endpoints answer it themselves; an app can use it for its own routes (for example from an
/// <c>IExceptionHandler</c>).
/// </summary>
public static class StoreUnavailableProblem
{
    /// <summary>The problem <c>type</c> of the 503.</summary>
    public const string Type = "https://tokenmeter.dev/problems/store-unavailable";

    /// <summary>The <c>Retry-After</c> of the 503.</summary>
    public static TimeSpan RetryAfter { get; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether <paramref name="exception"/> (or one of its inner exceptions) says the store could not be
    /// reached: a transient <see cref="DbException"/> (a refused or broken connection, a server shutting
    /// down, an exhausted pool), a <see cref="SocketException"/>, a <see cref="TimeoutException"/>, or a
    /// <see cref="UsageStoreNotReadyException"/> (its schema not installed yet).
    /// Errors in a query itself are not.
    /// </summary>
    /// <param name="exception">The exception thrown by a store call.</param>
    /// <returns>True when a retry later may succeed.</returns>
    public static bool IsStoreUnavailable(Exception? exception) => IsUnavailable(exception, 0);

    private static bool IsUnavailable(Exception? exception, int depth) => exception switch
    {
        null => false,
        _ when depth > 8 => false,
        DbException { IsTransient: true } or SocketException or TimeoutException or UsageStoreNotReadyException => true,
        AggregateException aggregate => aggregate.InnerExceptions.Any(inner => IsUnavailable(inner, depth + 1)),
        _ => IsUnavailable(exception.InnerException, depth + 1),
    };

    /// <summary>The 503 problem details result, with <c>Retry-After</c>.</summary>
    /// <returns>The result to return from an endpoint or write from an exception handler.</returns>
    public static IResult ToResult() => new Result();

    /// <summary>The admin API's logger, for the store-unavailable and export failure lines.</summary>
    internal static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetService<ILoggerFactory>()?.CreateLogger("TokenMeter.AspNetCore.Endpoints") ?? NullLogger.Instance;

    private sealed class Result : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            ArgumentNullException.ThrowIfNull(httpContext);
            httpContext.Response.Headers[HeaderNames.RetryAfter] = ((int)RetryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
            return TypedResults.Problem(
                detail: "The usage store cannot be reached right now; nothing was changed. Try again shortly.",
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "Store unavailable",
                type: Type).ExecuteAsync(httpContext);
        }
    }
}
