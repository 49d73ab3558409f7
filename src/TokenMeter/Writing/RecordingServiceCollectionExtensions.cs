using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using TokenMeter.Configuration;
using TokenMeter.Diagnostics;
using TokenMeter.Metering;
using TokenMeter.Pricing;
using TokenMeter.Repricing;
using TokenMeter.Storage;

namespace TokenMeter.Writing;

internal static class RecordingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the price table, the background writer and the store slot (the in-memory store
    /// until a store package puts its own there with <c>UseStore</c>, before or after).
    /// </summary>
    public static IServiceCollection AddTokenMeterRecording(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);

        // Pricing: built-in prices extended by TokenMeter:Pricing.
        services.AddValidatedOptions<PricingOptions, PricingOptionsValidator>(PricingOptions.SectionName);
        services.TryAddSingleton(sp => UsagePricer.CreateTable(sp.GetRequiredService<IOptions<PricingOptions>>().Value));
        services.TryAddSingleton<IPriceSource>(sp => sp.GetRequiredService<PriceTable>());
        services.TryAddSingleton<IUsagePricer, UsagePricer>();

        // The store slot, holding the in-memory store until a store package fills it (Storage/StoreSlot).
        services.AddStoreSlot();
        services.TryAddSingleton<UsageRepricer>();

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
