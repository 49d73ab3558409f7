using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TokenMeter.AspNetCore.Diagnostics;

namespace TokenMeter.AspNetCore.Endpoints;

/// <summary>Answers 503 with <c>Retry-After</c> when a handler of the admin API fails because the store cannot be reached.</summary>
internal sealed class StoreUnavailableFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (Exception ex) when (!context.HttpContext.RequestAborted.IsCancellationRequested && StoreUnavailableProblem.IsStoreUnavailable(ex))
        {
            Log.StoreUnavailable(Logger(context.HttpContext), ex, context.HttpContext.Request.Path);
            return StoreUnavailableProblem.ToResult();
        }
    }

    internal static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetService<ILoggerFactory>()?.CreateLogger("TokenMeter.AspNetCore.Endpoints") ?? NullLogger.Instance;
}
