using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenMeter;
using TokenMeter.AI;
using TokenMeter.Metering;

namespace Microsoft.Extensions.AI;

/// <summary>Adds TokenMeter to a Microsoft.Extensions.AI chat client pipeline.</summary>
public static class TokenMeterChatClientBuilderExtensions
{
    /// <summary>
    /// Meters every call of the chat client from the usage it reports (estimated with the o200k
    /// tokenizer when it reports none), attributed to the current <c>UsageScope</c>. A call that a
    /// metered OpenAI SDK pipeline underneath already recorded is not recorded again.
    /// Requires <c>services.AddTokenMeter()</c> in the builder's service provider.
    /// </summary>
    /// <param name="builder">The chat client builder.</param>
    /// <returns>The builder.</returns>
    public static ChatClientBuilder UseTokenMeter(this ChatClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Use((inner, services) =>
        {
            var meter = services.GetService<UsageMeter>()
                ?? throw new InvalidOperationException("TokenMeter is not registered: call services.AddTokenMeter() before UseTokenMeter().");
            var options = services.GetRequiredService<IOptions<TokenMeterOptions>>().Value;
            return new TokenMeterChatClient(inner, meter, options.EstimateMissingUsage);
        });
    }
}
