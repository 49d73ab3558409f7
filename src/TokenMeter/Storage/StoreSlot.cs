using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Repricing;

namespace TokenMeter.Storage;

/// <summary>
/// The store's one slot: each store part is a keyed service under <see cref="Key"/> (the in-memory store
/// until a store package puts its own there), and the public interfaces resolve that part through the
/// registered <see cref="IStoreDecorator{TService}"/>s. So neither the order of <c>AddPostgresStore</c>
/// and the features, nor how often either is called, changes what is resolved.
/// </summary>
internal static class StoreSlot
{
    public const string Key = "TokenMeter.Store";

    public static readonly Type[] Parts = [typeof(IUsageStore), typeof(IUsageQueries), typeof(IBudgetStore), typeof(IDeliveryLog), typeof(IUsageRepricingStore)];

    /// <summary>The in-memory store in the slot (unless a store is there already) and the composed public interfaces.</summary>
    public static IServiceCollection AddStoreSlot(this IServiceCollection services)
    {
        services.TryAddSingleton(sp => new InMemoryUsageStore(sp.GetRequiredService<TimeProvider>()));
        AddPart<IUsageStore>(services);
        AddPart<IUsageQueries>(services);
        AddPart<IBudgetStore>(services);
        AddPart<IDeliveryLog>(services);
        AddPart<IUsageRepricingStore>(services);
        return services;
    }

    /// <summary>Puts <paramref name="factory"/> in the slot of <typeparamref name="TService"/>, replacing what was there.</summary>
    public static void Fill<TService>(IServiceCollection services, Func<IServiceProvider, TService> factory)
        where TService : class
    {
        services.RemoveAllKeyed<TService>(Key);
        services.AddKeyedSingleton<TService>(Key, (sp, _) => factory(sp));
    }

    private static void AddPart<TService>(IServiceCollection services)
        where TService : class
    {
        // A part registered directly before AddTokenMeter moves into the slot, so decorators wrap it too.
        var earlier = services.LastOrDefault(d => d.ServiceType == typeof(TService) && !d.IsKeyedService);
        if (earlier is not null && earlier.ImplementationFactory?.Method.Name != nameof(Compose) && earlier.Lifetime == ServiceLifetime.Singleton)
        {
            services.RemoveAll<TService>();
            Fill(services, Adopt<TService>(earlier));
        }

        services.TryAddKeyedSingleton<TService>(Key, (sp, _) => (TService)(object)sp.GetRequiredService<InMemoryUsageStore>());
        services.TryAddSingleton(Compose<TService>);
    }

    private static Func<IServiceProvider, TService> Adopt<TService>(ServiceDescriptor descriptor)
        where TService : class
    {
        if (descriptor.ImplementationInstance is TService instance)
        {
            return _ => instance;
        }

        if (descriptor.ImplementationFactory is { } factory)
        {
            return sp => (TService)factory(sp);
        }

        var type = descriptor.ImplementationType!;
        return sp => (TService)ActivatorUtilities.CreateInstance(sp, type);
    }

    private static TService Compose<TService>(IServiceProvider services)
        where TService : class
    {
        var part = services.GetRequiredKeyedService<TService>(Key);
        foreach (var decorator in services.GetServices<IStoreDecorator<TService>>())
        {
            part = decorator.Decorate(part, services);
        }

        return part;
    }
}
