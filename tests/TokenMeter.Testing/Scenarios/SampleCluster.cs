using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Testing.Scenarios;

/// <summary>
/// Several instances of the real sample (child processes) sharing one PostgreSQL database and one
/// fake model, as a load balancer would run them. Each instance has its own spool folder.
/// </summary>
public sealed class SampleCluster : IAsyncDisposable
{
    /// <summary>
    /// Usage the fake model reports per call: 100 input and 400 output tokens of gpt-4o-mini — the
    /// hint's full output cap and fewer input tokens than its prompt has, so no call costs more than
    /// the worst case the sample reserves for it.
    /// </summary>
    public static readonly FakeUsage Usage = new() { PromptTokens = 100, CompletionTokens = 400 };

    /// <summary>gpt-4o-mini at 0.15 / 0.60 USD per million tokens.</summary>
    public const decimal CostPerCallUsd = (100 * 0.15m / 1_000_000) + (400 * 0.60m / 1_000_000);

    private readonly Dictionary<string, string?> _settings;
    private readonly List<string> _spools = [];

    private SampleCluster(string connectionString, FakeOpenAIServer model, Dictionary<string, string?> settings)
    {
        ConnectionString = connectionString;
        Model = model;
        _settings = settings;
    }

    public string ConnectionString { get; }

    public FakeOpenAIServer Model { get; }

    public List<SampleProcess> Instances { get; } = [];

    /// <summary>Model calls delayed by this much (set before calls start).</summary>
    public TimeSpan ModelDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Starts <paramref name="instances"/> samples on a new database of <paramref name="server"/>,
    /// with <paramref name="settings"/> (environment variables) on top of the load-test defaults.
    /// </summary>
    public static async Task<SampleCluster> StartAsync(PostgresServer server, int instances, IDictionary<string, string?> settings, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        var connectionString = await server.CreateDatabaseAsync("multi").ConfigureAwait(false);
        var model = await FakeOpenAIServer.StartAsync().ConfigureAwait(false);
        var environment = SampleProcess.Settings(connectionString, model.Endpoint, "unused", TimeSpan.FromMilliseconds(200));
        foreach (var (key, value) in settings)
        {
            environment[key] = value;
        }

        var cluster = new SampleCluster(connectionString, model, environment);
        model.Responder = request => HomeworkModel.Reply(request, cluster.ModelDelay) with { Usage = Usage };
        try
        {
            // The first installs the schema; the others then start side by side.
            cluster.Instances.Add(await cluster.StartInstanceAsync(0).ConfigureAwait(false));
            var rest = await Task.WhenAll(Enumerable.Range(1, instances - 1).Select(cluster.StartInstanceAsync)).ConfigureAwait(false);
            cluster.Instances.AddRange(rest);
            log?.Invoke($"{instances} instances: {string.Join(", ", cluster.Instances.Select(i => $"pid {i.Pid} on {i.BaseAddress}"))}");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts instance <paramref name="index"/> again (after it was killed), on its own spool folder.</summary>
    public async Task<SampleProcess> RestartAsync(int index)
    {
        await Instances[index].DisposeAsync().ConfigureAwait(false);
        var started = await StartInstanceAsync(index).ConfigureAwait(false);
        Instances[index] = started;
        return started;
    }

    /// <summary>Registers a student (through instance 0) and signs them in; returns the id and a client per instance.</summary>
    public async Task<Student> RegisterAsync()
    {
        using var anonymous = SampleClient.Create(Instances[0].BaseAddress, 4);
        var username = "s" + Guid.NewGuid().ToString("N")[..10];
        string userId;
        using (var created = await anonymous.PostAsJsonAsync("/api/auth/register", new { username, email = username + "@example.com", password = "Load-harness-pupil-2026" }).ConfigureAwait(false))
        {
            created.EnsureSuccessStatusCode();
            userId = (await created.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false))!["id"]!.GetValue<string>();
        }

        var token = await SampleClient.LoginAsync(anonymous, username, "Load-harness-pupil-2026").ConfigureAwait(false);
        return new Student(userId, [.. Instances.Select(i =>
        {
            var http = SampleClient.Create(i.BaseAddress, 128);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return http;
        })]);
    }

    /// <summary>An admin client on instance <paramref name="index"/>.</summary>
    public async Task<HttpClient> AdminAsync(int index)
    {
        using var anonymous = SampleClient.Create(Instances[index].BaseAddress, 4);
        var token = await SampleClient.LoginAsync(anonymous, SampleProcess.AdminUsername, SampleProcess.AdminPassword).ConfigureAwait(false);
        return SampleClient.WithToken(Instances[index].BaseAddress, token);
    }

    /// <summary>Sets a user's monthly cost budget through instance <paramref name="index"/>.</summary>
    public async Task SetBudgetAsync(int index, string userId, decimal monthlyCostUsd)
    {
        using var admin = await AdminAsync(index).ConfigureAwait(false);
        using var put = await admin.PutAsJsonAsync($"/api/usage/budgets/{userId}", new { monthlyCostUsd }).ConfigureAwait(false);
        put.EnsureSuccessStatusCode();
    }

    /// <summary>Stored records and spend of a user (straight from the database).</summary>
    public async Task<(long Rows, long DistinctIds, decimal SpendUsd, long Tokens)> StoredAsync(string userId)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*), count(DISTINCT id), coalesce(sum(cost_usd), 0), coalesce(sum(total_tokens), 0)::bigint FROM user_api_usage WHERE user_id = @u", connection);
        command.Parameters.AddWithValue("u", userId);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        await reader.ReadAsync().ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2), reader.GetInt64(3));
    }

    /// <summary>Budget reservations in force for a user (calls in flight, or settled and not yet stored).</summary>
    public async Task<long> HoldsAsync(string userId)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync().ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*) FROM tokenmeter_budget_holds WHERE user_id = @u AND expires_at > now()", connection);
        command.Parameters.AddWithValue("u", userId);
        return (long)(await command.ExecuteScalarAsync().ConfigureAwait(false))!;
    }

    /// <summary>Polls until the user has <paramref name="expected"/> stored records (or 20 s pass); returns what is stored.</summary>
    public async Task<(long Rows, long DistinctIds, decimal SpendUsd, long Tokens)> WaitForStoredAsync(string userId, long expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var stored = await StoredAsync(userId).ConfigureAwait(false);
            if (stored.Rows >= expected || DateTime.UtcNow > deadline)
            {
                return stored;
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var instance in Instances)
        {
            await instance.DisposeAsync().ConfigureAwait(false);
        }

        await Model.DisposeAsync().ConfigureAwait(false);
        foreach (var spool in _spools)
        {
            FaultScenarios.DeleteFolder(spool);
        }
    }

    private async Task<SampleProcess> StartInstanceAsync(int index)
    {
        var environment = new Dictionary<string, string?>(_settings);
        var spool = Path.Combine(Path.GetTempPath(), $"tokenmeter-multi-{Environment.ProcessId}-{GetHashCode():x}-{index}");
        Directory.CreateDirectory(spool);
        lock (_spools)
        {
            if (!_spools.Contains(spool))
            {
                _spools.Add(spool);
            }
        }

        environment["TokenMeter__Writer__SpoolDirectory"] = spool;
        return await SampleProcess.StartAsync(environment).ConfigureAwait(false);
    }

    /// <summary>A signed-in student with one client per instance.</summary>
    public sealed record Student(string UserId, IReadOnlyList<HttpClient> Clients) : IDisposable
    {
        /// <summary>POST /api/hint through instance <paramref name="index"/>; the status and the body.</summary>
        public async Task<(HttpStatusCode Status, string Body)> HintAsync(int index)
        {
            using var content = new StringContent(SampleClient.HintBody, Encoding.UTF8, "application/json");
            using var response = await Clients[index % Clients.Count].PostAsync("/api/hint", content).ConfigureAwait(false);
            return (response.StatusCode, await response.Content.ReadAsStringAsync().ConfigureAwait(false));
        }

        public void Dispose()
        {
            foreach (var client in Clients)
            {
                client.Dispose();
            }
        }
    }
}

/// <summary>A real HTTP server on 127.0.0.1 that records the webhook POSTs it gets (event type and time).</summary>
public sealed class WebhookSink : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WebhookSink(WebApplication app) => _app = app;

    public ConcurrentQueue<(string Event, string Body, DateTimeOffset At)> Received { get; } = new();

    public Uri Url { get; private set; } = null!;

    public static async Task<WebhookSink> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var sink = new WebhookSink(app);
        app.MapPost("/hook", async (HttpContext http) =>
        {
            using var reader = new StreamReader(http.Request.Body);
            var body = await reader.ReadToEndAsync().ConfigureAwait(false);
            sink.Received.Enqueue((http.Request.Headers["X-TokenMeter-Event"].ToString(), body, DateTimeOffset.UtcNow));
            return Results.Ok();
        });
        await app.StartAsync().ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        sink.Url = new Uri(address + "/hook");
        return sink;
    }

    public int Count(string eventType) => Received.Count(r => r.Event == eventType);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Settings of the sample for the cluster scenarios.</summary>
public static class ClusterSettings
{
    public static Dictionary<string, string?> With(int requestsPerMinute = 0, long tokensPerMinute = 0, TimeSpan? lease = null, Uri? webhook = null, decimal? platformDailyCostUsd = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Homework__RateLimits__RequestsPerMinute"] = requestsPerMinute.ToString(CultureInfo.InvariantCulture),
            ["Homework__RateLimits__TokensPerMinute"] = tokensPerMinute.ToString(CultureInfo.InvariantCulture),
            ["TokenMeter__Budgets__ReservationLease"] = (lease ?? TimeSpan.FromMinutes(5)).ToString("c", CultureInfo.InvariantCulture),
        };
        if (webhook is not null)
        {
            settings["TokenMeter__Alerts__WebhookUrl"] = webhook.ToString();
            settings["TokenMeter__Alerts__WebhookSecret"] = "cluster-webhook-secret-0123456789";
            settings["Logging__LogLevel__TokenMeter.Alerts"] = "Debug";
        }

        if (platformDailyCostUsd is { } cost)
        {
            settings["TokenMeter__Alerts__PlatformDailyCostUsd"] = cost.ToString(CultureInfo.InvariantCulture);
        }

        return settings;
    }
}
