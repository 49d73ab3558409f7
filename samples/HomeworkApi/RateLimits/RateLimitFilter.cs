using HomeworkApi.Diagnostics;
using HomeworkApi.Homework;

namespace HomeworkApi.RateLimits;

/// <summary>
/// Applies <see cref="HomeworkRateLimiter"/> to a homework route. An endpoint filter rather than a
/// policy of the rate limiting middleware, because the partition is the <em>charged</em> user, known
/// only once <see cref="HomeworkRequestFilter"/> has read the body (<c>userId</c>: an admin or an
/// anonymous caller may charge a named student); it runs right after that filter, before usage
/// attribution and the budget check, so a refused request never reaches the model and is not metered.
/// </summary>
internal sealed class RateLimitFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var limiter = http.RequestServices.GetRequiredService<HomeworkRateLimiter>();
        if (limiter.Enabled)
        {
            var request = HomeworkRequestFilter.Get(http);
            if (limiter.Check(request.ChargedUserId, http.Connection.RemoteIpAddress) is { } refusal)
            {
                var logger = http.RequestServices.GetRequiredService<ILogger<RateLimitFilter>>();
                Log.RateLimited(logger, http.Request.Path.Value ?? string.Empty, request.ChargedUserId ?? "(anonymous)", refusal.Kind == RateLimitKind.Tokens ? "tokens" : "requests", refusal.RetryAfterSeconds);
                return refusal;
            }
        }

        return await next(context);
    }
}
