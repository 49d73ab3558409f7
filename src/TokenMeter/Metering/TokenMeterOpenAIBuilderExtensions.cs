using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenAI;
using TokenMeter;
using TokenMeter.Configuration;
using TokenMeter.Metering;

namespace Microsoft.Extensions.DependencyInjection;

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

        // Like the SDK: an unset key or endpoint falls back to OPENAI_API_KEY / OPENAI_BASE_URL
        // (read from configuration, which includes the environment, else from the environment).
        options.PostConfigure<IServiceProvider>((o, sp) => ApplyEnvironmentFallback(o, sp.GetService<IConfiguration>()));

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

    internal static void ApplyEnvironmentFallback(TokenMeterOpenAIOptions options, IConfiguration? configuration)
    {
        if (string.IsNullOrEmpty(options.ApiKey))
        {
            options.ApiKey = Read(configuration, "OPENAI_API_KEY");
        }

        if (options.Endpoint is null && Read(configuration, "OPENAI_BASE_URL") is { } baseUrl)
        {
            if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
            {
                throw new OptionsValidationException(TokenMeterOpenAIOptions.SectionName, typeof(TokenMeterOpenAIOptions), [
                    $"OPENAI_BASE_URL must be an absolute http or https URL such as http://127.0.0.1:9000/v1 (TokenMeter:OpenAI:Endpoint takes precedence when set); got '{baseUrl}'."]);
            }

            options.Endpoint = endpoint;
        }
    }

    private static string? Read(IConfiguration? configuration, string key)
    {
        var value = configuration?[key];
        if (string.IsNullOrWhiteSpace(value))
        {
            value = Environment.GetEnvironmentVariable(key);
        }

        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }
}
