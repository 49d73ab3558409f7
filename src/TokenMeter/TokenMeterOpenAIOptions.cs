using System.ComponentModel.DataAnnotations;
using OpenAI;

namespace TokenMeter;

/// <summary>
/// How the metered <see cref="OpenAIClient"/> registered by
/// <see cref="Microsoft.Extensions.DependencyInjection.TokenMeterOpenAIBuilderExtensions.AddOpenAIClient"/> reaches the model. Bound from
/// the <c>TokenMeter:OpenAI</c> configuration section; the registration's delegate runs after.
/// </summary>
public sealed class TokenMeterOpenAIOptions
{
    /// <summary>The configuration section these options bind from.</summary>
    public const string SectionName = "TokenMeter:OpenAI";

    /// <summary>
    /// Name of the <see cref="HttpClient"/> (from <c>IHttpClientFactory</c>) the client sends its
    /// requests through. Apps can add handlers to it, e.g.
    /// <c>services.AddHttpClient(TokenMeterOpenAIOptions.HttpClientName).ConfigurePrimaryHttpMessageHandler(...)</c>.
    /// </summary>
    public const string HttpClientName = "TokenMeter.OpenAI";

    /// <summary>
    /// Base address of the OpenAI-compatible API, e.g. <c>http://127.0.0.1:9000/v1</c>. When unset,
    /// the <c>OPENAI_BASE_URL</c> environment variable (or configuration key), else OpenAI's.
    /// </summary>
    public Uri? Endpoint { get; set; }

    /// <summary>The API key. Required; when unset, the <c>OPENAI_API_KEY</c> environment variable (or configuration key), as the SDK does. Never logged.</summary>
    [Required(ErrorMessage = "TokenMeter:OpenAI:ApiKey is required: set it in configuration, in the OPENAI_API_KEY environment variable, or in AddOpenAIClient(o => o.ApiKey = ...).")]
    public string? ApiKey { get; set; }

    /// <summary>Optional OpenAI organization id.</summary>
    public string? OrganizationId { get; set; }

    /// <summary>Optional OpenAI project id.</summary>
    public string? ProjectId { get; set; }

    /// <summary>How many times a failed request (429, 5xx, transport error) is retried. Default 2; 0 disables retries.</summary>
    [Range(0, 10, ErrorMessage = "TokenMeter:OpenAI:MaxRetries must be between 0 and 10.")]
    public int MaxRetries { get; set; } = 2;

    /// <summary>Timeout of one network attempt; null keeps the SDK's default.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "TokenMeter:OpenAI:NetworkTimeout must be between 00:00:01 and 01:00:00.")]
    public TimeSpan? NetworkTimeout { get; set; }

    /// <summary>Last changes to the SDK options (retry policy, extra policies, ...) before the client is built.</summary>
    public Action<OpenAIClientOptions>? ConfigureClientOptions { get; set; }
}
