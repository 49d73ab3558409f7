using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter;
using TokenMeter.Metering;
using TokenMeter.Writing;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers TokenMeter in a service collection.</summary>
public static class TokenMeterServiceCollectionExtensions
{
    /// <summary>
    /// Adds TokenMeter: attribution, pricing, the background writer and the in-memory store
    /// (replace it with a durable one, e.g. <c>.AddPostgresStore(...)</c>). Idempotent.
    /// Options bind from the <c>TokenMeter</c> configuration section.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>A builder for further TokenMeter registrations.</returns>
    public static ITokenMeterBuilder AddTokenMeter(this IServiceCollection services, Action<TokenMeterOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);

        var options = services.AddOptions<TokenMeterOptions>().BindConfiguration(TokenMeterOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(TokenMeterMarker)))
        {
            return new TokenMeterBuilder(services);
        }

        services.AddSingleton<TokenMeterMarker>();
        services.TryAddSingleton(TimeProvider.System);

        // Pricing, the writer and the default store (Pricing/, Writing/, Storage/).
        services.AddTokenMeterRecording();

        // Metering of OpenAI calls and metrics (Metering/, Diagnostics/).
        services.AddTokenMeterMetering();

        return new TokenMeterBuilder(services);
    }

    private sealed class TokenMeterMarker;
}
