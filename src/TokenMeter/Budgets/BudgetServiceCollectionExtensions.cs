using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TokenMeter.Metering;

namespace TokenMeter.Budgets;

/// <summary>Registers budget enforcement.</summary>
public static class BudgetServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="BudgetGuard"/> and <see cref="UsageEstimator"/> (singletons) with options bound from <c>TokenMeter:Budgets</c>.
    /// Budgets themselves live in the store (<see cref="IBudgetStore"/>). Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddBudgetGuard(this ITokenMeterBuilder builder, Action<BudgetGuardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<BudgetGuardOptions>().BindConfiguration(BudgetGuardOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<BudgetGuard>();
        builder.Services.TryAddSingleton<UsageEstimator>();
        CacheBudgetStore(builder.Services);

        // Metered calls count at once, not only once the writer has stored them.
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, BudgetUsageObserver>());
        return builder;
    }

    /// <summary>
    /// Wraps the budget store registered so far in <see cref="CachingBudgetStore"/>, so budget checks
    /// read limits from memory and every change made through the container's store clears them.
    /// </summary>
    private static void CacheBudgetStore(IServiceCollection services)
    {
        var index = -1;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ServiceType == typeof(IBudgetStore))
            {
                index = i;
                break;
            }
        }

        if (index < 0)
        {
            return;
        }

        var inner = services[index];
        if (inner.Lifetime != ServiceLifetime.Singleton || inner.IsKeyedService || inner.ImplementationFactory?.Target is CachedBudgetStoreFactory)
        {
            return;
        }

        services[index] = ServiceDescriptor.Singleton<IBudgetStore>(new CachedBudgetStoreFactory(inner).Create);
    }

    private sealed class CachedBudgetStoreFactory(ServiceDescriptor inner)
    {
        public CachingBudgetStore Create(IServiceProvider services)
        {
            var store = inner.ImplementationInstance as IBudgetStore
                ?? inner.ImplementationFactory?.Invoke(services) as IBudgetStore
                ?? (IBudgetStore)ActivatorUtilities.CreateInstance(services, inner.ImplementationType!);
            var duration = services.GetRequiredService<IOptions<BudgetGuardOptions>>().Value.BudgetCacheDuration;
            return new CachingBudgetStore(store, services.GetRequiredService<TimeProvider>(), duration);
        }
    }
}
