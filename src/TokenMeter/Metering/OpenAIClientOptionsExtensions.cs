using System.ClientModel.Primitives;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using TokenMeter.Metering;

namespace TokenMeter;

/// <summary>Meters a hand-built OpenAI client.</summary>
public static class OpenAIClientOptionsExtensions
{
    /// <summary>
    /// Adds TokenMeter's metering policy to these options (per call, so a retried call is metered
    /// once). Every client built with them — and every client those make — is metered. Requires
    /// <c>services.AddTokenMeter()</c>.
    /// </summary>
    /// <param name="options">The SDK options, before the client is built.</param>
    /// <param name="services">The application's service provider.</param>
    /// <returns>The same options.</returns>
    /// <example>
    /// <code>
    /// var options = new OpenAIClientOptions().AddTokenMeter(app.Services);
    /// var client = new OpenAIClient(new ApiKeyCredential(key), options);
    /// </code>
    /// </example>
    public static OpenAIClientOptions AddTokenMeter(this OpenAIClientOptions options, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(services);
        var policy = services.GetService<OpenAIMeteringPolicy>()
            ?? throw new InvalidOperationException("TokenMeter is not registered: call services.AddTokenMeter() first.");
        options.AddPolicy(policy, PipelinePosition.PerCall);
        return options;
    }
}
