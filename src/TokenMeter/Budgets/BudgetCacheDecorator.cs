using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace TokenMeter.Budgets;

/// <summary>Puts the budget store in the slot behind <see cref="CachingBudgetStore"/>, so checks read limits from memory.</summary>
internal sealed class BudgetCacheDecorator : IStoreDecorator<IBudgetStore>
{
    public IBudgetStore Decorate(IBudgetStore inner, IServiceProvider services)
        => new CachingBudgetStore(
            inner,
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<IOptions<BudgetGuardOptions>>().Value.BudgetCacheDuration);
}
