using HomeworkApi.Hosting;
using TokenMeter.Metering;

namespace HomeworkApi.RateLimits;

/// <summary>Registers the per-user rate limits of the homework routes.</summary>
internal static class RateLimitServiceCollectionExtensions
{
    public static IServiceCollection AddHomeworkRateLimits(this IServiceCollection services, HomeworkSettings settings)
    {
        // The limits read their own clock (the app's by default), so a test can move rate-limit time
        // without moving the usage writer's flush timer.
        services.AddKeyedSingleton(HomeworkRateLimiter.ClockKey, (sp, _) => sp.GetRequiredService<TimeProvider>());
        if (settings.TokensPerMinute > 0)
        {
            // Fed by the metering path: TokenMeter shows every priced record to its observers.
            services.AddSingleton(sp => new UserTokenWindow(sp.GetRequiredKeyedService<TimeProvider>(HomeworkRateLimiter.ClockKey)));
            services.AddSingleton<IUsageObserver>(sp => sp.GetRequiredService<UserTokenWindow>());
        }

        services.AddSingleton<HomeworkRateLimiter>();
        return services;
    }
}
