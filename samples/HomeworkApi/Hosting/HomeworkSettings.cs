using System.Security.Cryptography;
using System.Text;

namespace HomeworkApi.Hosting;

/// <summary>The sample's configuration (CONTRACT §1), read once at start-up.</summary>
internal sealed class HomeworkSettings
{
    public const int MinSigningKeyBytes = 32;

    public string? ConnectionString { get; init; }

    public string? OpenAIApiKey { get; init; }

    public Uri? OpenAIEndpoint { get; init; }

    public int OpenAIMaxRetries { get; init; } = 2;

    public TimeSpan OpenAITimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>True when neither an API key nor an endpoint is configured: the in-process model answers.</summary>
    public bool SimulatedModel => string.IsNullOrEmpty(OpenAIApiKey) && OpenAIEndpoint is null;

    public bool UsesPostgres => !string.IsNullOrEmpty(ConnectionString);

    public required byte[] SigningKey { get; init; }

    public bool SigningKeyIsEphemeral { get; init; }

    public string JwtIssuer { get; init; } = "HomeworkApi";

    public string JwtAudience { get; init; } = "HomeworkApi";

    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(8);

    public required HomeworkModels Models { get; init; }

    public int LoginAttemptsPerMinute { get; init; } = 10;

    /// <summary>Sign-in attempts per account name per minute, from all addresses together.</summary>
    public int LoginAttemptsPerAccountPerMinute { get; init; } = 10;

    /// <summary>How long an account's role is trusted before the account store is read again (at most 60 s).</summary>
    public TimeSpan RoleCacheDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Origins of the app's own frontend allowed to call the homework and account routes.</summary>
    public IReadOnlyList<string> CorsAllowedOrigins { get; init; } = [];

    /// <summary>Accounts created per client address per hour.</summary>
    public int RegistrationsPerHour { get; init; } = 10;

    public TimeSpan SimulatedChunkDelay { get; init; } = TimeSpan.FromMilliseconds(15);

    /// <summary>Homework requests per minute per charged user, per client address when anonymous; 0 turns the limit off.</summary>
    public int RequestsPerMinute { get; init; } = 30;

    /// <summary>Metered tokens per minute per user, checked before each homework call; 0 turns the limit off.</summary>
    public long TokensPerMinute { get; init; }

    /// <summary>Reads and checks the configuration; throws with a message naming the key when it is unusable.</summary>
    public static HomeworkSettings Load(IConfiguration configuration, IHostEnvironment environment)
    {
        var apiKey = FirstNonEmpty(configuration["OpenAI:ApiKey"], configuration["OPENAI_API_KEY"]);
        var endpointText = FirstNonEmpty(configuration["OpenAI:Endpoint"], configuration["OPENAI_BASE_URL"]);
        Uri? endpoint = null;
        if (endpointText is not null && (!Uri.TryCreate(endpointText, UriKind.Absolute, out endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps)))
        {
            throw new InvalidOperationException($"OpenAI:Endpoint (or OPENAI_BASE_URL) must be an absolute http or https URL such as http://127.0.0.1:9000/v1; got '{endpointText}'.");
        }

        var keyText = configuration["Jwt:SigningKey"];
        byte[] signingKey;
        var ephemeral = false;
        if (string.IsNullOrEmpty(keyText) || Encoding.UTF8.GetByteCount(keyText) < MinSigningKeyBytes)
        {
            if (!environment.IsDevelopment())
            {
                throw new InvalidOperationException(string.IsNullOrEmpty(keyText)
                    ? $"Jwt:SigningKey (environment variable Jwt__SigningKey) is required outside Development: set it to a random secret of at least {MinSigningKeyBytes} bytes, e.g. the output of `openssl rand -base64 48`."
                    : $"Jwt:SigningKey (environment variable Jwt__SigningKey) is too short: it must be at least {MinSigningKeyBytes} bytes, e.g. the output of `openssl rand -base64 48`.");
            }

            signingKey = RandomNumberGenerator.GetBytes(64);
            ephemeral = true;
        }
        else
        {
            signingKey = Encoding.UTF8.GetBytes(keyText);
        }

        var models = configuration.GetSection("Homework:Models");
        return new HomeworkSettings
        {
            ConnectionString = FirstNonEmpty(configuration.GetConnectionString("TokenMeter")),
            OpenAIApiKey = apiKey,
            OpenAIEndpoint = endpoint,
            OpenAIMaxRetries = configuration.GetValue("OpenAI:MaxRetries", 2),
            OpenAITimeout = TimeSpan.FromSeconds(Math.Max(1, configuration.GetValue("OpenAI:TimeoutSeconds", 60.0))),
            SigningKey = signingKey,
            SigningKeyIsEphemeral = ephemeral,
            JwtIssuer = FirstNonEmpty(configuration["Jwt:Issuer"]) ?? "HomeworkApi",
            JwtAudience = FirstNonEmpty(configuration["Jwt:Audience"]) ?? "HomeworkApi",
            TokenLifetime = TimeSpan.FromMinutes(Math.Clamp(configuration.GetValue("Jwt:LifetimeMinutes", 480), 1, 60 * 24 * 30)),
            Models = new HomeworkModels
            {
                Analyze = FirstNonEmpty(models["Analyze"]) ?? "gpt-4o",
                Verify = FirstNonEmpty(models["Verify"]) ?? "gpt-4o",
                ValidateImage = FirstNonEmpty(models["ValidateImage"]) ?? "gpt-4o-mini",
                Hint = FirstNonEmpty(models["Hint"]) ?? "gpt-4o-mini",
                Chat = FirstNonEmpty(models["Chat"]) ?? "gpt-4o-mini",
            },
            LoginAttemptsPerMinute = configuration.GetValue("Homework:LoginAttemptsPerMinute", 10),
            LoginAttemptsPerAccountPerMinute = configuration.GetValue("Homework:LoginAttemptsPerAccountPerMinute", 10),
            RegistrationsPerHour = configuration.GetValue("Homework:RegistrationsPerHour", 10),
            RoleCacheDuration = TimeSpan.FromSeconds(Math.Clamp(configuration.GetValue("Homework:Auth:RoleCacheSeconds", 30), 0, 60)),
            CorsAllowedOrigins = CorsOrigins(configuration),
            SimulatedChunkDelay = TimeSpan.FromMilliseconds(Math.Max(0, configuration.GetValue("Homework:Simulation:ChunkDelayMs", 15))),
            RequestsPerMinute = (int)PerMinuteLimit(configuration, "Homework:RateLimits:RequestsPerMinute", "requests", 30, int.MaxValue),
            TokensPerMinute = PerMinuteLimit(configuration, "Homework:RateLimits:TokensPerMinute", "tokens", 0, long.MaxValue),
        };
    }

    /// <summary>A per-minute limit: a whole number from 0 (off) to <paramref name="max"/>; anything else stops start-up with a message naming the key.</summary>
    private static long PerMinuteLimit(IConfiguration configuration, string key, string unit, long defaultValue, long max)
    {
        var text = FirstNonEmpty(configuration[key]);
        if (text is null)
        {
            return defaultValue;
        }

        if (!long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < 0 || value > max)
        {
            throw new InvalidOperationException($"{key} (environment variable {key.Replace(":", "__", StringComparison.Ordinal)}) must be a whole number of {unit} per minute, or 0 to turn the limit off; got '{text}'.");
        }

        return value;
    }

    /// <summary>
    /// <c>Homework:Cors:AllowedOrigins</c>: absolute http(s) origins (scheme, host, optional port; no
    /// path, no wildcard). Anything else stops start-up with a message naming the key.
    /// </summary>
    private static string[] CorsOrigins(IConfiguration configuration)
    {
        var origins = new List<string>();
        foreach (var child in configuration.GetSection("Homework:Cors:AllowedOrigins").GetChildren())
        {
            var text = child.Value?.Trim();
            if (string.IsNullOrEmpty(text))
            {
                continue;
            }

            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.PathAndQuery != "/" || text.Contains('*', StringComparison.Ordinal) || text.EndsWith('/'))
            {
                throw new InvalidOperationException($"{child.Path} (environment variable {child.Path.Replace(":", "__", StringComparison.Ordinal)}) must be an origin such as https://app.example.com (scheme, host and optional port; no path, no wildcard); got '{text}'.");
            }

            origins.Add(uri.GetLeftPart(UriPartial.Authority));
        }

        return [.. origins.Distinct(StringComparer.OrdinalIgnoreCase)];
    }

    private static string? FirstNonEmpty(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v))?.Trim();
}

/// <summary>The model each homework endpoint asks for (<c>Homework:Models:&lt;Endpoint&gt;</c>).</summary>
internal sealed class HomeworkModels
{
    public required string Analyze { get; init; }

    public required string Verify { get; init; }

    public required string ValidateImage { get; init; }

    public required string Hint { get; init; }

    public required string Chat { get; init; }
}
