using TokenMeter;
using TokenMeter.Storage;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Puts a store in TokenMeter's one store slot (for store packages such as TokenMeter.Postgres).</summary>
public static class StoreTokenMeterBuilderExtensions
{
    /// <summary>
    /// Makes <paramref name="factory"/> the store part <typeparamref name="TService"/> resolves to, replacing
    /// the in-memory store (or an earlier store). Features that wrap a store part (the budget limit cache
    /// of <c>AddBudgets()</c>) wrap this one, whatever the order of the calls.
    /// </summary>
    /// <typeparam name="TService">
    /// <see cref="TokenMeter.Storage.IUsageStore"/>, <see cref="TokenMeter.Querying.IUsageQueries"/>, <see cref="TokenMeter.Budgets.IBudgetStore"/>, <see cref="TokenMeter.Storage.IDeliveryLog"/> or <see cref="TokenMeter.Repricing.IUsageRepricingStore"/>.
    /// </typeparam>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="factory">Creates the part (called once; the container owns the result only if it created it).</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder UseStore<TService>(this ITokenMeterBuilder builder, Func<IServiceProvider, TService> factory)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        if (!StoreSlot.Parts.Contains(typeof(TService)))
        {
            throw new ArgumentException($"{typeof(TService).Name} is not a store part; use IUsageStore, IUsageQueries, IBudgetStore, IDeliveryLog or IUsageRepricingStore.", nameof(TService));
        }

        StoreSlot.Fill(builder.Services, factory);
        return builder;
    }
}
