using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;
using Xunit.Abstractions;

namespace HomeworkApi.Tests;

/// <summary>
/// PostgreSQL stopped under the running sample: every route that needs it answers 503 problem details
/// with <c>Retry-After</c> (never a bare 500), and the app answers normally again once it is back.
/// Uses a cluster of its own, since it stops it.
/// </summary>
public sealed class StoreDownTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>
    /// Routes that answer without PostgreSQL: pages, the app's self-description, the report trigger
    /// (it needs mail settings, not the store), and the homework routes (usage is spooled to disk
    /// and budgets fail open while the store is down).
    /// </summary>
    private static readonly HashSet<string> NeedNoStore =
    [
        "GET /", "GET /admin", "GET /usage", "GET /api/info", "GET /openapi/v1.json", "POST /api/usage/reports/send", "GET /favicon.ico",
        "GET /admin/api-reference/{documentName?}", "GET /admin/api-reference/scalar.js", "GET /admin/api-reference/scalar.aspnetcore.js", "GET /admin/api-reference/favicon.svg",
        "POST /api/validate-image", "POST /api/analyze", "POST /api/hint", "POST /api/verify", "POST /api/chat",
    ];

    private PostgresServer _server = null!;
    private FakeOpenAIServer _model = null!;
    private HomeworkApp _app = null!;

    public async Task InitializeAsync()
    {
        _server = await PostgresServer.StartAsync();
        var connectionString = await _server.CreateDatabaseAsync("storedown");
        _model = await FakeOpenAIServer.StartAsync();
        _model.Responder = r => FakeModelReplies.For(r);
        _app = HomeworkApp.WithModelEndpoint(_model.Endpoint, new Dictionary<string, string?>
        {
            ["ConnectionStrings:TokenMeter"] = connectionString + ";Timeout=3",
            ["TokenMeter:Writer:SpoolDirectory"] = Path.Combine(Path.GetTempPath(), "tokenmeter-storedown-" + Guid.NewGuid().ToString("N")),
        });
        _ = _app.Server;
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _model.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task PostgresStopped_EveryRouteThatNeedsIt_Answers503ProblemWithRetryAfter_ThenRecovers()
    {
        var adminToken = await _app.AdminTokenAsync();
        var (studentId, _) = await _app.RegisterAsync();
        using var admin = _app.ClientWithToken(adminToken);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/usage/stats")).StatusCode);
        var routes = BadInputSweepTests.SweepFixture.Enumerate(_app.Services.GetRequiredService<EndpointDataSource>());
        var failures = new List<string>();
        var answered503 = 0;

        await _server.StopAsync();
        try
        {
            foreach (var route in routes)
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path(name => name == "documentName" ? "v1" : studentId));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
                if (route.Method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new StringContent(Body(), Encoding.UTF8, "application/json");
                }

                using var response = await admin.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                var what = $"{route.Method} {route.Pattern}";
                output.WriteLine($"{what}: {(int)response.StatusCode}");
                if (NeedNoStore.Contains(what))
                {
                    if ((int)response.StatusCode >= 500)
                    {
                        failures.Add($"{what} needs no store but answered {(int)response.StatusCode}");
                    }

                    continue;
                }

                if (route.Pattern == "/health")
                {
                    // The health check says the database is down, as health checks do (plain text, 503).
                    if (response.StatusCode != HttpStatusCode.ServiceUnavailable)
                    {
                        failures.Add($"{what}: {(int)response.StatusCode}, expected 503 Unhealthy");
                    }

                    continue;
                }

                if (response.StatusCode != HttpStatusCode.ServiceUnavailable
                    || response.Content.Headers.ContentType?.MediaType != "application/problem+json"
                    || response.Headers.RetryAfter?.Delta is not { } retry || retry <= TimeSpan.Zero)
                {
                    failures.Add($"{what}: {(int)response.StatusCode} {response.Content.Headers.ContentType?.MediaType} Retry-After={response.Headers.RetryAfter}: {(body.Length > 200 ? body[..200] : body)}");
                    continue;
                }

                using var problem = JsonDocument.Parse(body);
                foreach (var field in new[] { "type", "title", "status", "detail" })
                {
                    if (!problem.RootElement.TryGetProperty(field, out _))
                    {
                        failures.Add($"{what}: 503 without '{field}': {body}");
                    }
                }

                answered503++;
            }
        }
        finally
        {
            await _server.StartAgainAsync();
        }

        output.WriteLine($"{routes.Count} routes, {answered503} answered 503");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        Assert.True(answered503 >= 20, $"only {answered503} routes answered 503");
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/usage/stats")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/users")).StatusCode);
    }

    [Fact]
    public async Task PostgresStopped_ATokenWhoseRoleWasNeverRead_Is503_NotA401()
    {
        // Signing in reads no role: the first request with this token needs the account store.
        var (_, token) = await _app.RegisterAsync();
        using var student = _app.ClientWithToken(token);

        await _server.StopAsync();
        try
        {
            foreach (var (method, path) in new[] { ("GET", "/api/usage/me"), ("POST", "/api/hint"), ("GET", "/api/auth/me") })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path);
                if (method == "POST")
                {
                    request.Content = new StringContent("""{"problemText":"1 + 1"}""", Encoding.UTF8, "application/json");
                }

                using var response = await student.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{method} {path}: {(int)response.StatusCode} {body}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"{method} {path}: no Retry-After");
            }
        }
        finally
        {
            await _server.StartAgainAsync();
        }

        using var after = await student.GetAsync("/api/usage/me");
        Assert.True(after.StatusCode == HttpStatusCode.OK, $"after the restart: {(int)after.StatusCode} {await after.Content.ReadAsStringAsync()}");
    }

    private static string Body() => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["username"] = "storedown" + Guid.NewGuid().ToString("N")[..8],
        ["email"] = "storedown" + Guid.NewGuid().ToString("N")[..8] + "@example.com",
        ["password"] = "quiet-harbour-lamp-47",
        ["problemText"] = "Solve 2x + 3 = 7.",
        ["answer"] = "x = 2",
        ["messages"] = new[] { new { role = "user", content = "How do I start?" } },
        ["imageUrl"] = "https://example.com/page.png",
        ["monthlyCostUsd"] = 5,
        ["period"] = "daily",
        ["role"] = "student",
        ["from"] = "2026-01-01",
        ["to"] = "2026-01-31",
        ["dryRun"] = true,
    });
}
