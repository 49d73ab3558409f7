using Microsoft.AspNetCore.Http;
using TokenMeter.AspNetCore.Attribution;
using TokenMeter.Attribution;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Attributes the OpenAI calls of endpoints to their user and route.</summary>
public static class UsageAttributionEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Opens a <see cref="UsageScope"/> for every request of these endpoints: endpoint label = the
    /// route pattern (or <see cref="WithUsageLabel{TBuilder}"/>), user = the signed-in user's id
    /// claim, then every registered <see cref="IUsageAttributionEnricher"/>, then <paramref name="enrich"/>.
    /// Add it before <c>WithBudgetEnforcement</c>, which charges the user it sets.
    /// </summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">An endpoint or a route group.</param>
    /// <param name="enrich">Optional per-request changes, e.g. the user named in the body.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithUsageAttribution<TBuilder>(this TBuilder builder, Func<UsageAttributionContext, ValueTask>? enrich = null)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddEndpointFilter(new UsageAttributionFilter(enrich));
        return builder;
    }

    /// <summary>Records the calls of these endpoints under <paramref name="label"/> instead of the route pattern.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">An endpoint or a route group.</param>
    /// <param name="label">The endpoint label.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithUsageLabel<TBuilder>(this TBuilder builder, string label)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(label);
        builder.WithMetadata(new UsageLabelMetadata(label));
        return builder;
    }
}
