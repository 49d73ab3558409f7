using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.Attribution;

namespace TokenMeter.AspNetCore.Attribution;

/// <summary>Opens a <see cref="UsageScope"/> around the handler (and around the result it returns).</summary>
internal sealed class UsageAttributionFilter(Func<UsageAttributionContext, ValueTask>? enrich) : IEndpointFilter
{
    private static readonly TokenMeterAspNetCoreOptions DefaultOptions = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var services = http.RequestServices;
        var options = services.GetService<IOptions<TokenMeterAspNetCoreOptions>>()?.Value ?? DefaultOptions;
        var endpoint = http.GetEndpoint();
        var attribution = new UsageAttributionContext(http, context.Arguments)
        {
            UserId = options.GetUserId(http.User),
            Endpoint = endpoint?.Metadata.GetMetadata<UsageLabelMetadata>()?.Label ?? (endpoint as RouteEndpoint)?.RoutePattern.RawText,
        };

        foreach (var enricher in services.GetServices<IUsageAttributionEnricher>())
        {
            await enricher.EnrichAsync(attribution).ConfigureAwait(false);
        }

        if (enrich is not null)
        {
            await enrich(attribution).ConfigureAwait(false);
        }

        var usage = attribution.ToUsageContext();
        object? result;
        using (UsageScope.Begin(usage))
        {
            result = await next(context).ConfigureAwait(false);
        }

        // A result runs after the filters return (a streamed reply, for instance): keep it attributed.
        return result is IResult inner ? new AfterResult(inner, () => UsageScope.Begin(usage)) : result;
    }
}

/// <summary>Runs a result inside something opened just before it and disposed just after it.</summary>
internal sealed class AfterResult(IResult inner, Func<IDisposable?> around) : IResult, INestedHttpResult
{
    public IResult Result => inner;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        using (around())
        {
            await inner.ExecuteAsync(httpContext).ConfigureAwait(false);
        }
    }
}
