using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using TokenMeter.AspNetCore.RateLimits;
using TokenMeter.Budgets;
using TokenMeter.RateLimits;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Applies the per-user rate limits of <c>.AddRateLimits()</c> to endpoints.</summary>
public static class RateLimitEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Before the handler runs, checks the charged user's requests- and tokens-per-minute limits
    /// (<see cref="UserRateLimiter"/>): a refused call gets 429 with <c>Retry-After</c> and problem
    /// type <see cref="RateLimitProblemTypes.RateLimited"/> and the handler is not run. Tokens: the
    /// call's estimate is reserved and settled to the tokens it used once the response is done.
    /// An endpoint filter rather than the rate limiting middleware's policy, so the charged user can
    /// come from the request body (see <see cref="RateLimiterOptionsExtensions.AddTokenMeterPolicy"/> for the middleware).
    /// </summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">An endpoint or a route group.</param>
    /// <param name="chargedUser">The user charged for the request; null reads the attribution scope, else the signed-in user. Anonymous calls are partitioned by client address.</param>
    /// <param name="estimate">The call's worst case (see <see cref="UsageEstimator"/>); null, or a null return, reserves <see cref="BudgetGuardOptions.DefaultReservationTokens"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithRateLimits<TBuilder>(this TBuilder builder, Func<HttpContext, string?>? chargedUser = null, Func<EndpointFilterInvocationContext, BudgetEstimate?>? estimate = null)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddEndpointFilter(new RateLimitFilter(chargedUser, estimate));
        builder.WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status429TooManyRequests, typeof(ProblemDetails), ["application/problem+json"]));
        return builder;
    }
}
