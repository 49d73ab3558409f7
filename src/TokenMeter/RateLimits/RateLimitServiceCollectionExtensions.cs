using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter;
using TokenMeter.Metering;
using TokenMeter.RateLimits;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers per-user rate limits.</summary>
public static class RateLimitServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="UserRateLimiter"/> with options bound from <c>TokenMeter:RateLimits</c>. The
    /// windows are kept in-process unless a shared store is registered (<c>.AddPostgresStore(...)</c>
    /// keeps them in PostgreSQL, so the limits hold across every app instance). Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddRateLimits(this ITokenMeterBuilder builder, Action<RateLimitOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName)
            .Validate(o => o.RequestsPerMinute >= 0, "TokenMeter:RateLimits:RequestsPerMinute must be 0 (off) or more.")
            .Validate(o => o.TokensPerMinute >= 0, "TokenMeter:RateLimits:TokensPerMinute must be 0 (off) or more.")
            .ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<IRateLimitStore, InMemoryRateLimitStore>();
        builder.Services.TryAddSingleton<UserRateLimiter>();
        AddSharedLimitSettler(builder.Services);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, RateLimitUsageObserver>());
        return builder;
    }

    /// <summary>Registers the queue that writes shared budget and rate-limit settles after the responses (a shared store calls this too).</summary>
    internal static void AddSharedLimitSettler(IServiceCollection services)
    {
        services.TryAddSingleton(sp => new SharedLimitSettler(sp));
        services.TryAddSingleton<TokenMeter.Budgets.IHoldSettleQueue>(sp => sp.GetRequiredService<SharedLimitSettler>());
    }
}

/// <summary>Settles each metered call's tokens against its user's open reservation the moment it is priced.</summary>
internal sealed class RateLimitUsageObserver(UserRateLimiter limiter) : IUsageObserver
{
    public void OnUsage(UsageRecord record) => limiter.Observe(record);
}
