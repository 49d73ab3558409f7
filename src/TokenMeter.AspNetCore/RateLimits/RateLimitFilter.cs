using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Budgets;
using TokenMeter.AspNetCore.Diagnostics;
using TokenMeter.Attribution;
using TokenMeter.Budgets;
using TokenMeter.RateLimits;

namespace TokenMeter.AspNetCore.RateLimits;

/// <summary>Checks the limits, then runs the handler and its result inside the call's token reservation.</summary>
internal sealed class RateLimitFilter(Func<HttpContext, string?>? chargedUser, Func<EndpointFilterInvocationContext, BudgetEstimate?>? estimate) : IEndpointFilter
{
    private static readonly TokenMeterAspNetCoreOptions DefaultOptions = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var limiter = http.RequestServices.GetService<UserRateLimiter>()
            ?? throw new InvalidOperationException("Rate limits need services.AddTokenMeter().AddRateLimits().");
        if (!limiter.Enabled)
        {
            return await next(context).ConfigureAwait(false);
        }

        var userId = chargedUser is not null
            ? chargedUser(http)
            : UsageScope.Current?.Context.UserId ?? (http.RequestServices.GetService<IOptions<TokenMeterAspNetCoreOptions>>()?.Value ?? DefaultOptions).GetUserId(http.User);
        var tokens = limiter.Options.TokensPerMinute > 0 && userId is not null
            ? estimate?.Invoke(context)?.Tokens ?? (http.RequestServices.GetService<IOptions<BudgetGuardOptions>>()?.Value.DefaultReservationTokens ?? 2_000)
            : 0;
        var partition = RateLimitPartitions.For(userId, http.Connection.RemoteIpAddress);
        RateLimitDecision? decision = null;
        DeferredRateCheck? deferred = null;
        if (http.GetEndpoint()?.Metadata.GetMetadata<BudgetEnforcementMetadata>() is not null
            && !DeferredRateCheck.BudgetChecked(http)
            && http.RequestServices.GetService<BudgetGuard>() is { } guard
            && limiter.SharesStoreWith(guard))
        {
            // The budget filter further on checks both in one step.
            deferred = new DeferredRateCheck(limiter, partition, userId, tokens, (h, d) => Refuse(h, d, userId));
            deferred.HandTo(http);
        }
        else
        {
            decision = await limiter.CheckAsync(partition, userId, tokens, http.RequestAborted).ConfigureAwait(false);
            if (!decision.IsAllowed)
            {
                return Refuse(http, decision, userId);
            }
        }

        var handedOver = false;
        try
        {
            var result = await next(context).ConfigureAwait(false);
            decision ??= deferred!.Decision;
            if (decision is not null && result is IResult inner)
            {
                handedOver = true;
                return new ReservedResult(inner, decision);
            }

            return result;
        }
        finally
        {
            if (!handedOver && (decision ?? deferred?.Decision) is { } made)
            {
                await made.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The 429 for a refused decision, logged.</summary>
    private static RateLimitRefusalResult Refuse(HttpContext http, RateLimitDecision decision, string? userId)
    {
        var refusal = RateLimitRefusalResult.From(decision);
        var logger = http.RequestServices.GetService<ILoggerFactory>()?.CreateLogger("TokenMeter.AspNetCore.RateLimits");
        if (logger is not null)
        {
            Log.RateLimited(logger, http.Request.Path.Value ?? string.Empty, userId ?? "(anonymous)", decision.RefusedBy == RateLimitKind.Tokens ? "tokens" : "requests", refusal.RetryAfterSeconds);
        }

        return refusal;
    }
}
