// TEMPORARY: stands in for TokenMeter.AspNetCore until it lands on main (own namespace, so nothing clashes); deleted then.
using TokenMeter;
using TokenMeter.Attribution;

namespace HomeworkApi.Shims
{
    internal interface IUserDirectory
    {
        ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default);

        ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default);
    }

    internal sealed record UserDirectoryEntry(string UserId, string? Username, string? Email);

    internal static class ShimExtensions
    {
        public static ITokenMeterBuilder AddTokenMeterAspNetCore(this ITokenMeterBuilder builder) => builder;

        public static RouteGroupBuilder MapTokenMeterAdmin(this IEndpointRouteBuilder endpoints, string prefix) => endpoints.MapGroup(prefix);
    }
}

namespace HomeworkApi.Shims.Attribution
{
    internal sealed class UsageAttributionContext(HttpContext httpContext)
    {
        public HttpContext HttpContext { get; } = httpContext;

        public string? UserId { get; set; }

        public string? SessionId { get; set; }

        public string? ProblemId { get; set; }

        public IDictionary<string, string> Tags { get; } = new Dictionary<string, string>(StringComparer.Ordinal);
    }

    internal static class ShimAttribution
    {
        public static TBuilder WithUsageAttribution<TBuilder>(this TBuilder builder, Func<UsageAttributionContext, ValueTask> enrich)
            where TBuilder : IEndpointConventionBuilder
        {
            builder.AddEndpointFilter(async (context, next) =>
            {
                var attribution = new UsageAttributionContext(context.HttpContext);
                await enrich(attribution);
                using (UsageScope.Begin(new UsageContext
                {
                    UserId = attribution.UserId,
                    Endpoint = (context.HttpContext.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText,
                    SessionId = attribution.SessionId,
                    ProblemId = attribution.ProblemId,
                    Tags = attribution.Tags.Count == 0 ? null : new Dictionary<string, string>(attribution.Tags),
                }))
                {
                    return await next(context);
                }
            });
            return builder;
        }
    }
}

namespace HomeworkApi.Shims.Budgets
{
    internal static class ShimBudgets
    {
        public static TBuilder WithBudgetEnforcement<TBuilder>(this TBuilder builder)
            where TBuilder : IEndpointConventionBuilder => builder;
    }
}
