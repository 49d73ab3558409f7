using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter.Diagnostics;

namespace TokenMeter.Metering;

internal static class MeteringServiceCollectionExtensions
{
    /// <summary>Registers the metering pipeline policy, the usage meter, the manual recorder and the metrics.</summary>
    public static IServiceCollection AddTokenMeterMetering(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<TokenMeterMetrics>();
        services.TryAddSingleton<UsageMeter>();
        services.TryAddSingleton<OpenAIMeteringPolicy>();
        services.TryAddSingleton<IUsageRecorder, UsageRecorder>();
        return services;
    }
}
