using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TokenMeter;
using TokenMeter.Querying;
using TokenMeter.Testing;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>
/// The real sample host (its Program, every service and middleware) with test configuration:
/// a model endpoint (the fake OpenAI server) or the simulated model, in-memory or PostgreSQL storage.
/// </summary>
public sealed class HomeworkApp : WebApplicationFactory<Program>
{
    public const string AdminUsername = "admin";
    public const string AdminPassword = "Quiet-harbour-lamp-9";
    public const string SigningKey = "test-signing-key-that-is-long-enough-0123456789";

    private readonly Dictionary<string, string?> _settings;

    public HomeworkApp(IDictionary<string, string?>? settings = null, string environment = "Development")
    {
        Environment = environment;
        _settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Admin:Username"] = AdminUsername,
            ["Admin:Password"] = AdminPassword,
            ["Admin:Email"] = "admin@example.com",
            ["Jwt:SigningKey"] = SigningKey,
            ["Homework:LoginAttemptsPerMinute"] = "10000",
            ["Homework:LoginAttemptsPerAccountPerMinute"] = "10000",
            ["Homework:RegistrationsPerHour"] = "10000",
            // Most tests make many calls per user from one (null) client address; RateLimitTests turn it on.
            ["Homework:RateLimits:RequestsPerMinute"] = "0",
            ["Homework:Simulation:ChunkDelayMs"] = "0",
            ["OpenAI:MaxRetries"] = "0",
            ["TokenMeter:Writer:FlushInterval"] = "00:00:00.020",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }
    }

    public string Environment { get; }

    /// <summary>Replaces services of the app (set before the first use of <c>Server</c>), e.g. a fake clock.</summary>
    public Action<IServiceCollection>? TestServices { get; set; }

    /// <summary>The app talking to <paramref name="endpoint"/> (the fake server).</summary>
    public static HomeworkApp WithModelEndpoint(Uri endpoint, IDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["OpenAI:Endpoint"] = endpoint.ToString(),
            ["OpenAI:ApiKey"] = "test-key",
            ["OpenAI:TimeoutSeconds"] = "15",
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return new HomeworkApp(settings);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment(Environment);
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        if (TestServices is { } configure)
        {
            builder.ConfigureTestServices(configure);
        }
    }

    /// <summary>Every usage record the store holds, oldest first.</summary>
    public async Task<List<UsageRecord>> RecordsAsync(Func<UsageRecord, bool>? where = null)
    {
        var queries = Services.GetRequiredService<IUsageQueries>();
        var records = new List<UsageRecord>();
        await foreach (var record in queries.ExportAsync(new UsageExportQuery()))
        {
            if (where is null || where(record))
            {
                records.Add(record);
            }
        }

        return records;
    }

    /// <summary>Waits until the background writer has stored <paramref name="count"/> records matching <paramref name="where"/>.</summary>
    public async Task<List<UsageRecord>> WaitForRecordsAsync(Func<UsageRecord, bool> where, int count = 1)
    {
        var records = await Eventually.ValueAsync(async _ => await RecordsAsync(where), records => records.Count >= count, what: $"{count} stored usage records");
        Assert.Equal(count, records.Count);
        return records;
    }

    public async Task<(string Id, string Token)> RegisterAsync(string? username = null, string password = "Maple-river-stone-31")
    {
        username ??= "u" + Guid.NewGuid().ToString("N")[..10];
        using var client = CreateClient();
        var created = await client.PostAsJsonAsync("/api/auth/register", new { username, email = username + "@example.com", password });
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        var user = await created.Content.ReadFromJsonAsync<JsonObject>();
        var token = await LoginAsync(username, password);
        return (user!["id"]!.GetValue<string>(), token);
    }

    public async Task<string> LoginAsync(string username, string password)
    {
        using var client = CreateClient();
        var response = await client.PostAsJsonAsync("/api/auth/login", new { username, password });
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonObject>();
        return body!["token"]!.GetValue<string>();
    }

    public Task<string> AdminTokenAsync() => LoginAsync(AdminUsername, AdminPassword);

    public HttpClient ClientWithToken(string? token)
    {
        var client = CreateClient();
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    public static async Task<JsonObject> JsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonNode.Parse(text) as JsonObject ?? throw new InvalidOperationException("Not a JSON object: " + text);
    }

    public static StringContent Json(object body) => new(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");

    public static StringContent RawJson(string json) => new(json, System.Text.Encoding.UTF8, "application/json");
}
