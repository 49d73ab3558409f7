using Microsoft.AspNetCore.Http;
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
            Log.StoreUnavailable(StoreUnavailableProblem.Logger(context.HttpContext), ex, context.HttpContext.Request.Path);
            return StoreUnavailableProblem.ToResult();
        }
    }
}
