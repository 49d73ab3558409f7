using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.AspNetCore.Attribution;
using TokenMeter.Attribution;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Budgets;

/// <summary>
/// Checks and reserves the charged user's budget before the handler runs; refuses with 429 without
/// running it. The reservation is released once the response (a streamed one included) is done.
/// </summary>
internal sealed class BudgetEnforcementFilter(Func<EndpointFilterInvocationContext, BudgetEstimate?>? estimate) : IEndpointFilter
{
    private static readonly TokenMeterAspNetCoreOptions DefaultOptions = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var guard = http.RequestServices.GetService<BudgetGuard>()
            ?? throw new InvalidOperationException("Budget enforcement needs budgets: services.AddTokenMeter().AddBudgets().");
        var deferred = DeferredRateCheck.Take(http);
        var userId = UsageScope.Current?.Context.UserId
            ?? (http.RequestServices.GetService<IOptions<TokenMeterAspNetCoreOptions>>()?.Value ?? DefaultOptions).GetUserId(http.User);
        if (userId is null)
        {
            if (deferred is not null)
            {
                var rate = deferred.Decision = await deferred.Limiter.CheckAsync(deferred.PartitionKey, deferred.UserId, deferred.Tokens, http.RequestAborted).ConfigureAwait(false);
                if (!rate.IsAllowed)
                {
                    return deferred.Refuse(http, rate);
                }
            }

            return await next(context).ConfigureAwait(false);
        }

        BudgetReservation reservation;
        if (deferred is not null)
        {
            // The rate limits of the filter before this one and the budget, in one step.
            var rate = deferred.Decision = await deferred.Limiter.CheckWithBudgetAsync(deferred.PartitionKey, deferred.UserId, deferred.Tokens, guard, userId, estimate?.Invoke(context), http.RequestAborted).ConfigureAwait(false);
            if (!rate.IsAllowed)
            {
                return deferred.Refuse(http, rate);
            }

            reservation = rate.Budget!;
        }
        else
        {
            reservation = await guard.ReserveAsync(userId, estimate?.Invoke(context), http.RequestAborted).ConfigureAwait(false);
        }

        if (!reservation.IsAllowed)
        {
            return reservation.ToRefusalResult();
        }

        var handedOver = false;
        try
        {
            var result = await next(context).ConfigureAwait(false);
            if (result is IResult inner)
            {
                handedOver = true;
                return new ReservedResult(inner, reservation);
            }

            return result;
        }
        finally
        {
            if (!handedOver)
            {
                await reservation.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}

/// <summary>
/// Runs a result (a streamed reply, for instance), then ends the reservation made for it — before
/// the response completes, so the caller's next request sees the real cost in place of the estimate.
/// </summary>
internal sealed class ReservedResult(IResult inner, IAsyncDisposable reservation) : IResult, INestedHttpResult
{
    public IResult Result => inner;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        try
        {
            await inner.ExecuteAsync(httpContext).ConfigureAwait(false);
        }
        finally
        {
            await reservation.DisposeAsync().ConfigureAwait(false);
        }
    }
}
