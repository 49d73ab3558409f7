using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenAI;
using TokenMeter.Configuration;
using TokenMeter.Metering;

namespace TokenMeter;

/// <summary>Registers a metered <see cref="OpenAIClient"/>.</summary>
public static class TokenMeterOpenAIBuilderExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="OpenAIClient"/> whose every call (chat, responses,
    /// embeddings, images, audio, and the clients it makes) is metered. Endpoint and key bind from
    /// the <c>TokenMeter:OpenAI</c> configuration section, then <paramref name="configure"/> runs;
    /// requests go through the named <see cref="HttpClient"/> <see cref="TokenMeterOpenAIOptions.HttpClientName"/>.
    /// The options are validated at start-up.
    /// </summary>
    /// <param name="builder">The TokenMeter builder.</param>
    /// <param name="configure">Optional changes to the options after configuration is bound.</param>
    /// <returns>The builder.</returns>
    public static ITokenMeterBuilder AddOpenAIClient(this ITokenMeterBuilder builder, Action<TokenMeterOpenAIOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddValidatedOptions<TokenMeterOpenAIOptions, TokenMeterOpenAIOptionsValidator>(TokenMeterOpenAIOptions.SectionName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        // The SDK applies its own per-try network timeout; the HttpClient must not cut streams short.
        services.AddHttpClient(TokenMeterOpenAIOptions.HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) });

        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<TokenMeterOpenAIOptions>>().Value;
            var httpClient = sp.GetRequiredService<IHttpClientFactory>().CreateClient(TokenMeterOpenAIOptions.HttpClientName);
            var clientOptions = new OpenAIClientOptions
            {
                Transport = new HttpClientPipelineTransport(httpClient),
                RetryPolicy = new ClientRetryPolicy(o.MaxRetries),
            };
            if (o.Endpoint is not null)
            {
                clientOptions.Endpoint = o.Endpoint;
            }

            if (o.NetworkTimeout is { } timeout)
            {
                clientOptions.NetworkTimeout = timeout;
            }

            if (!string.IsNullOrEmpty(o.OrganizationId))
            {
                clientOptions.OrganizationId = o.OrganizationId;
            }

            if (!string.IsNullOrEmpty(o.ProjectId))
            {
                clientOptions.ProjectId = o.ProjectId;
            }

            clientOptions.AddTokenMeter(sp);
            o.ConfigureClientOptions?.Invoke(clientOptions);
            return new OpenAIClient(new ApiKeyCredential(o.ApiKey ?? string.Empty), clientOptions);
        });

        return builder;
    }
}
