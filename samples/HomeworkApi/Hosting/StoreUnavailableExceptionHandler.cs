using HomeworkApi.Diagnostics;
using Microsoft.AspNetCore.Diagnostics;
using TokenMeter.AspNetCore;

namespace HomeworkApi.Hosting;

/// <summary>
/// Any route that fails because PostgreSQL cannot be reached (sign-in, registration, the account
/// lookups of a bearer token or a body <c>userId</c>) answers 503 problem details with
/// <c>Retry-After</c> instead of a bare 500.
/// </summary>
internal sealed class StoreUnavailableExceptionHandler(ILogger<StoreUnavailableExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!StoreUnavailableProblem.IsStoreUnavailable(exception) || httpContext.Response.HasStarted)
        {
            return false;
        }

        Log.StoreUnavailable(logger, exception, httpContext.Request.Path);
        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        await StoreUnavailableProblem.ToResult().ExecuteAsync(httpContext);
        return true;
    }
}
