using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter.Metering;

namespace TokenMeter.Budgets;

/// <summary>Registers budget enforcement.</summary>
public static class BudgetServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="BudgetGuard"/> (a singleton) with options bound from <c>TokenMeter:Budgets</c>.
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

        // Metered calls count at once, not only once the writer has stored them.
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IUsageObserver, BudgetUsageObserver>());
        return builder;
    }
}
