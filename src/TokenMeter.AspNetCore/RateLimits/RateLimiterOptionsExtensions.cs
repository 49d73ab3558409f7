using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter.RateLimits;

namespace TokenMeter.AspNetCore.RateLimits;

/// <summary>Plugs the per-user requests limit into ASP.NET Core's rate limiting middleware.</summary>
public static class RateLimiterOptionsExtensions
{
    /// <summary>The default policy name.</summary>
    public const string PolicyName = "tokenmeter";

    /// <summary>
    /// Adds a policy (use it with <c>.RequireRateLimiting(name)</c>) that partitions requests by the
    /// signed-in user, else the client address, and takes each request's permit from
    /// <see cref="UserRateLimiter.Requests"/> — in-process, or in PostgreSQL across every instance.
    /// A refused request gets 429 with <c>Retry-After</c> and problem type <see cref="RateLimitProblemTypes.RateLimited"/>.
    /// Needs <c>.AddRateLimits()</c> and <c>app.UseRateLimiter()</c>.
    /// </summary>
    /// <param name="options">The middleware's options.</param>
    /// <param name="policyName">The policy's name.</param>
    /// <returns>The options.</returns>
    public static RateLimiterOptions AddTokenMeterPolicy(this RateLimiterOptions options, string policyName = PolicyName)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(policyName);
        return options.AddPolicy(policyName, new UserPolicy());
    }

    private sealed class UserPolicy : IRateLimiterPolicy<string>
    {
        private static readonly TokenMeterAspNetCoreOptions DefaultOptions = new();

        public Func<OnRejectedContext, CancellationToken, ValueTask>? OnRejected { get; } = (context, _) =>
        {
            var limiter = context.HttpContext.RequestServices.GetRequiredService<UserRateLimiter>();
            var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : UserRateLimiter.Window;
            return new ValueTask(new RateLimitRefusalResult(RateLimitKind.Requests, limiter.Options.RequestsPerMinute, retryAfter, null).ExecuteAsync(context.HttpContext));
        };

        public RateLimitPartition<string> GetPartition(HttpContext httpContext)
        {
            var limiter = httpContext.RequestServices.GetRequiredService<UserRateLimiter>();
            var options = httpContext.RequestServices.GetService<IOptions<TokenMeterAspNetCoreOptions>>()?.Value ?? DefaultOptions;
            var key = RateLimitPartitions.For(options.GetUserId(httpContext.User), httpContext.Connection.RemoteIpAddress);
            return RateLimitPartition.Get(key, k => new PartitionLimiter(limiter.Requests, k));
        }
    }

    /// <summary>One partition of <see cref="UserRateLimiter.Requests"/> as a plain limiter, as the middleware's policies want.</summary>
    private sealed class PartitionLimiter(PartitionedRateLimiter<string> inner, string key) : RateLimiter
    {
        public override TimeSpan? IdleDuration => TimeSpan.Zero;

        public override RateLimiterStatistics? GetStatistics() => inner.GetStatistics(key);

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => inner.AttemptAcquire(key, permitCount);

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
            inner.AcquireAsync(key, permitCount, cancellationToken);
    }
}
