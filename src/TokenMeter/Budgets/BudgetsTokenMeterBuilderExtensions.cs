using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.Budgets;
using TokenMeter.Metering;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Writing;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds budgets to TokenMeter.</summary>
public static class BudgetsTokenMeterBuilderExtensions
{
    /// <summary>
    /// Adds monthly budgets: <see cref="BudgetGuard"/> and <see cref="UsageEstimator"/> (singletons) with options bound from
    /// <c>TokenMeter:Budgets</c>, the in-process limit cache, and, in the admin API, the budget routes.
    /// Budgets themselves live in the store (<see cref="IBudgetStore"/>). Idempotent.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddBudgets(this ITokenMeterBuilder builder, Action<BudgetGuardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var first = !builder.Services.Any(d => d.ServiceType == typeof(BudgetGuard));
        var options = builder.Services.AddOptions<BudgetGuardOptions>();
        if (first)
        {
            options.BindConfiguration(BudgetGuardOptions.SectionName);
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton(sp => new BudgetGuard(
            sp.GetRequiredService<IBudgetStore>(),
            sp.GetRequiredService<IUsageQueries>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<BudgetGuardOptions>>(),
            sp.GetRequiredService<ILogger<BudgetGuard>>(),
            sp.GetService<IMeterFactory>(),
            sp.GetService<IBudgetReservationStore>(),
            sp.GetService<IHoldSettleQueue>()));
        builder.Services.TryAddSingleton<UsageEstimator>();

        // The limit cache wraps whichever budget store fills the store slot, before or after this call.
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IStoreDecorator<IBudgetStore>, BudgetCacheDecorator>());

        // Metered calls count at once, not only once the writer has stored them.
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, BudgetUsageObserver>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageStoredObserver, BudgetStoredObserver>());
        return builder;
    }
}
