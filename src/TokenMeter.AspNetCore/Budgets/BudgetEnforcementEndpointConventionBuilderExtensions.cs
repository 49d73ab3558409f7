using Microsoft.AspNetCore.Http;
using TokenMeter.AspNetCore.Budgets;
using TokenMeter.Budgets;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Refuses calls of users over budget before the model is called.</summary>
public static class BudgetEnforcementEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Before the handler runs, checks the charged user's monthly budget (the user set by
    /// <c>WithUsageAttribution</c>, else the signed-in user) and reserves an estimate of the call;
    /// a user at a limit gets 429 with <c>Retry-After</c> and problem type
    /// <see cref="BudgetProblemTypes.Exceeded"/>, and the handler is not run. Anonymous requests pass.
    /// </summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">An endpoint or a route group.</param>
    /// <param name="estimate">
    /// What a request may cost at most (e.g. prompt tokens + max output tokens, priced); null, or
    /// a null return, reserves <see cref="BudgetGuardOptions.DefaultReservationCostUsd"/> and
    /// <see cref="BudgetGuardOptions.DefaultReservationTokens"/>.
    /// </param>
    /// <returns>The builder.</returns>
    public static TBuilder WithBudgetEnforcement<TBuilder>(this TBuilder builder, Func<EndpointFilterInvocationContext, BudgetEstimate?>? estimate = null)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddEndpointFilter(new BudgetEnforcementFilter(estimate));
        builder.WithMetadata(BudgetEnforcementMetadata.Instance);
        builder.WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status429TooManyRequests, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]));
        return builder;
    }
}
