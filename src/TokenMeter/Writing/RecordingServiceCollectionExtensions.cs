using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.Budgets;
using TokenMeter.Configuration;
using TokenMeter.Diagnostics;
using TokenMeter.Pricing;
using TokenMeter.Querying;
using TokenMeter.Storage;

namespace TokenMeter.Writing;

internal static class RecordingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the price table, the background writer and the in-memory store. Every
    /// registration is a TryAdd, so a durable store registered earlier wins, and one registered
    /// later replaces these with <c>Replace</c>/<c>RemoveAll</c>.
    /// </summary>
    public static IServiceCollection AddTokenMeterRecording(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);

        // Pricing: built-in prices extended by TokenMeter:Pricing.
        services.AddValidatedOptions<PricingOptions, PricingOptionsValidator>(PricingOptions.SectionName);
        services.TryAddSingleton(sp => UsagePricer.CreateTable(sp.GetRequiredService<IOptions<PricingOptions>>().Value));
        services.TryAddSingleton<IUsagePricer, UsagePricer>();

        // The default store: one in-memory instance behind every store interface.
        services.TryAddSingleton(sp => new InMemoryUsageStore(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<IUsageStore>(sp => sp.GetRequiredService<InMemoryUsageStore>());
        services.TryAddSingleton<IUsageQueries>(sp => sp.GetRequiredService<InMemoryUsageStore>());
        services.TryAddSingleton<IBudgetStore>(sp => sp.GetRequiredService<InMemoryUsageStore>());
        services.TryAddSingleton<IDeliveryLog>(sp => sp.GetRequiredService<InMemoryUsageStore>());

        // The writer: the sink metering enqueues into, run as a hosted service.
        services.AddValidatedOptions<UsageWriterOptions, UsageWriterOptionsValidator>(UsageWriterOptions.SectionName);
        services.AddMetrics();
        services.TryAddSingleton(sp => TokenMeterInstruments.For(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton<UsageWriter>();
        services.TryAddSingleton<IUsageSink>(sp => sp.GetRequiredService<UsageWriter>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<UsageWriter>());
        return services;
    }
}
