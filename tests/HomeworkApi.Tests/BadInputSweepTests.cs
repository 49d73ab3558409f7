using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Testing.FakeOpenAI;
using Xunit.Abstractions;

namespace HomeworkApi.Tests;

/// <summary>
/// Bad input against every route the sample maps, enumerated from its <see cref="EndpointDataSource"/>
/// (so a new route is swept without touching this file), on a real Kestrel server in Production:
/// wrong types, bodies over the limits, out-of-range and injection strings in route values, query
/// strings and bodies, and missing or invalid credentials. Every answer must be a 4xx with problem
/// details (or a 2xx/3xx for harmless input), never a 5xx; no model call is made and nothing is recorded.
/// </summary>
public sealed partial class BadInputSweepTests : IClassFixture<BadInputSweepTests.SweepFixture>
{
    private static readonly string[] Strange =
    [
        "'; DROP TABLE user_api_usage; --",
        "\" OR 1=1 --",
        "<script>alert(1)</script>",
        "../../../../etc/passwd",
        "${jndi:ldap://127.0.0.1/x}",
        "=HYPERLINK(\"http://x\")",
        "{{7*7}}",
        "\u0000nul",
        "\u202Eevil💥",
        "-1",
        "0",
        "99999999999999999999999",
        "1e309",
        "NaN",
        "2026-13-45",
        "abc",
        new string('a', 3000),
    ];

    /// <summary>Query names handlers commonly read by hand, on top of the ones their parameters declare.</summary>
    private static readonly string[] CommonQueryNames = ["limit", "offset", "sort", "order", "from", "to", "days", "months", "month", "year", "search", "userId", "format", "endpoint", "model"];

    private static readonly Lazy<byte[]> HugeBody = new(() => Encoding.UTF8.GetBytes("{\"problemText\":\"" + new string('x', 31 * 1024 * 1024) + "\"}"));

    private readonly SweepFixture _fixture;
    private readonly ITestOutputHelper _output;
    private readonly Dictionary<int, int> _statuses = [];
    private int _swallowed;

    public BadInputSweepTests(SweepFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _output = output;
    }

    [Fact]
    public async Task EveryRoute_MissingOrInvalidCredentials_NeverA5xx_ProblemDetails_NoModelCall()
    {
        var failures = new List<string>();
        var badTokens = new (string Name, AuthenticationHeaderValue? Header)[]
        {
            ("no credentials", null),
            ("a bearer token that is not a JWT", new("Bearer", "not-a-jwt")),
            ("a JWT signed with another key", new("Bearer", Jwt("another-signing-key-that-is-long-enough-0123456789", DateTimeOffset.UtcNow.AddHours(1)))),
            ("an expired JWT", new("Bearer", Jwt(HomeworkApp.SigningKey, DateTimeOffset.UtcNow.AddHours(-2)))),
            ("a JWT with alg none", new("Bearer", UnsignedJwt())),
            ("Basic credentials", new("Basic", Convert.ToBase64String("admin:Quiet-harbour-lamp-9"u8))),
        };

        foreach (var route in _fixture.Routes)
        {
            foreach (var (name, header) in badTokens)
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path(_ => "1"));
                request.Headers.Authorization = header;
                if (route.Method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                }

                await SendAsync(request, route, name, failures);
            }
        }

        await AssertCleanAsync(failures);
    }

    [Fact]
    public async Task EveryRoute_AsAdmin_StrangeRouteValuesQueryStringsAndBodies_NeverA5xx_ProblemDetails_NoModelCall() =>
        await SweepInputsAsync(_fixture.AdminToken, hugeBodies: true);

    [Fact]
    public async Task EveryRoute_AsStudent_StrangeRouteValuesQueryStringsAndBodies_NeverA5xx_ProblemDetails_NoModelCall() =>
        await SweepInputsAsync(_fixture.StudentToken, hugeBodies: false);

    [Fact]
    public async Task EveryRoute_DateAndMonthExtremes_InMemory_NeverA5xx_NeverATruncated200()
    {
        var failures = await DateExtremes.SweepAsync(_fixture.Client, _fixture.AdminToken, _fixture.Routes, _output.WriteLine);
        Assert.True(failures.Count == 0, $"{failures.Count} bad answers:\n" + string.Join('\n', failures.Take(40)));
    }

    [Fact]
    public void TheSweepSeesTheSamplesRoutes()
    {
        // The enumeration itself must work: the known routes are among those swept.
        var paths = _fixture.Routes.Select(r => r.Method + " " + r.Pattern).ToHashSet();
        Assert.Contains("POST /api/hint", paths);
        Assert.Contains("POST /api/chat", paths);
        Assert.Contains("POST /api/auth/login", paths);
        Assert.Contains("GET /api/usage/stats", paths);
        Assert.Contains("PUT /api/usage/budgets/{userId}", paths);
        Assert.Contains("GET /api/users", paths);
    }

    private async Task SweepInputsAsync(string token, bool hugeBodies)
    {
        var failures = new List<string>();
        foreach (var route in _fixture.Routes)
        {
            // Route values and every query parameter set to each strange value.
            foreach (var value in Strange)
            {
                // A long value goes into one query parameter only, to stay under Kestrel's 8 KB request line.
                var names = value.Length > 100 ? route.QueryNames.Take(1) : route.QueryNames;
                var query = string.Join('&', names.Select(n => n + "=" + Uri.EscapeDataString(value)));
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path(_ => value) + (query.Length > 0 ? "?" + query : string.Empty));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                if (route.Method is "POST" or "PUT" or "PATCH")
                {
                    request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                }

                await SendAsync(request, route, $"route values and query = '{Shorten(value)}'", failures);
            }

            if (route.Method is not ("POST" or "PUT" or "PATCH"))
            {
                continue;
            }

            foreach (var (name, content) in Bodies(hugeBodies))
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path(_ => "1"));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                request.Content = content();

                // Waits for the server's go-ahead before sending a body: a body over the limit is then
                // answered (and the answer seen) without uploading it.
                request.Headers.ExpectContinue = request.Content?.Headers.ContentLength > 1_000_000;
                await SendAsync(request, route, name, failures);
            }
        }

        await AssertCleanAsync(failures);
    }

    /// <summary>Bodies no route may accept as a model call: wrong types, missing fields, over the limits, malformed.</summary>
    private static IEnumerable<(string Name, Func<HttpContent?> Content)> Bodies(bool huge)
    {
        static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");
        yield return ("no body", () => null);
        yield return ("text/plain body", () => new StringContent("hello", Encoding.UTF8, "text/plain"));
        yield return ("form body", () => new FormUrlEncodedContent([new("problemText", "x")]));
        yield return ("malformed JSON", () => Json("{\"problemText\": "));
        yield return ("JSON array", () => Json("[]"));
        yield return ("JSON string", () => Json("\"x\""));
        yield return ("JSON number", () => Json("42"));
        yield return ("JSON null", () => Json("null"));
        yield return ("deeply nested JSON", () => Json(new string('[', 100_000) + new string(']', 100_000)));
        yield return ("every field with a wrong type", () => Json("""
            {"problemText":123,"answer":[],"messages":"x","imageBase64":5,"imageUrl":{},"previousHints":"x","problemContext":false,
             "userId":{},"gradeLevel":[],"subject":1,"sessionId":{},"problemId":[],"stream":"yes","metadata":[],
             "username":1,"password":[],"email":{},"monthlyCostUsd":"lots","monthlyTokens":"many","markupPercent":"x","to":7}
            """));
        yield return ("out-of-range numbers", () => Json("""
            {"problemText":"   ","monthlyCostUsd":-1,"monthlyTokens":-5,"userId":1.5,"limit":-1,"previousHints":[1,2,3]}
            """));
        yield return ("numbers past their type", () => Json("""
            {"monthlyCostUsd":1e400,"monthlyTokens":99999999999999999999999999,"userId":99999999999999999999999}
            """));
        yield return ("injection strings in every field, required fields missing", () => Json(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["userId"] = Strange[0],
            ["subject"] = Strange[2],
            ["gradeLevel"] = Strange[1],
            ["sessionId"] = Strange[4],
            ["metadata"] = new Dictionary<string, string> { [Strange[0]] = Strange[5] },
            ["username"] = Strange[0],
            ["email"] = Strange[2],
            ["monthlyCostUsd"] = Strange[0],
        })));
        yield return ("a student naming a user that does not exist", () => Json("""
            {"problemText":"Solve 2x + 3 = 7.","answer":"x = 2","userId":"'; DROP TABLE homework_users; --","messages":[{"role":"user","content":"hi"}],"imageUrl":"javascript:alert(1)"}
            """));
        yield return ("text over the length limits", () => Json(JsonSerializer.Serialize(new
        {
            problemText = new string('x', 25_000),
            answer = new string('y', 25_000),
            messages = Enumerable.Range(0, 60).Select(_ => new { role = "user", content = "hi" }),
            previousHints = Enumerable.Range(0, 30).Select(_ => "hint"),
            imageBase64 = new string('A', 1_000),
            username = new string('u', 5_000),
            password = new string('p', 5_000),
            email = new string('e', 5_000) + "@example.com",
        })));
        if (huge)
        {
            // Over Kestrel's 30 MB request body limit.
            yield return ("a 31 MB body", () => new ByteArrayContent(HugeBody.Value) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } });
        }
    }

    private async Task SendAsync(HttpRequestMessage request, SweptRoute route, string input, List<string> failures)
    {
        var what = $"{route.Method} {route.Pattern} with {input} ({request.RequestUri?.ToString().Length} chars of URL)";
        HttpResponseMessage response;
        try
        {
            response = await _fixture.Client.SendAsync(request);
        }
        catch (HttpRequestException) when (request.Content?.Headers.ContentLength > 30_000_000)
        {
            // Kestrel may close the connection on a body over its limit before the client is done sending.
            _swallowed++;
            return;
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            _statuses[status] = _statuses.GetValueOrDefault(status) + 1;
            var body = await response.Content.ReadAsStringAsync();
            if (status >= 500)
            {
                failures.Add($"{what}: {status} {Shorten(body)}");
                return;
            }

            // Kestrel's own rejections of a malformed request (before any middleware runs: a bad
            // request target, a request line or headers too long) are empty and close the connection.
            var rejectedByKestrel = status >= 400 && body.Length == 0 && response.Headers.ConnectionClose == true;
            if (rejectedByKestrel)
            {
                _fixture.KestrelRejections++;
            }
            else if (status >= 400)
            {
                var type = response.Content.Headers.ContentType?.MediaType;
                if (type != "application/problem+json")
                {
                    failures.Add($"{what}: {status} with content type '{type}', not problem details: {Shorten(body)}");
                    return;
                }

                try
                {
                    using var problem = JsonDocument.Parse(body);
                    if (!problem.RootElement.TryGetProperty("status", out var s) || s.GetInt32() != status)
                    {
                        failures.Add($"{what}: {status} problem details without a matching status: {Shorten(body)}");
                    }
                }
                catch (JsonException)
                {
                    failures.Add($"{what}: {status} problem details that are not JSON: {Shorten(body)}");
                }
            }

            if (_fixture.Model.RequestCount > 0)
            {
                failures.Add($"{what}: {status} and the model was called");
                _fixture.Model.Reset();
            }
        }
    }

    private async Task AssertCleanAsync(List<string> failures)
    {
        var records = await _fixture.App.RecordsAsync();
        if (records.Count > 0)
        {
            failures.Add($"{records.Count} usage records were stored: {string.Join(", ", records.Select(r => r.Endpoint).Distinct())}");
        }

        _output.WriteLine($"{_fixture.Routes.Count} routes; {_statuses.Values.Sum()} answers: {string.Join(", ", _statuses.OrderBy(p => p.Key).Select(p => $"{p.Key} x{p.Value}"))}; " +
            $"{_fixture.KestrelRejections} refused by Kestrel itself, {_swallowed} connections closed on a body over the limit");
        using var health = await _fixture.Client.GetAsync("/health");
        if (health.StatusCode != HttpStatusCode.OK)
        {
            failures.Add($"/health answered {(int)health.StatusCode} after the sweep");
        }

        Assert.True(failures.Count == 0, $"{failures.Count} bad answers:\n" + string.Join('\n', failures.Take(40)));
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "…";

    private static string Base64Url(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Jwt(string key, DateTimeOffset expires)
    {
        var header = Base64Url("""{"alg":"HS256","typ":"JWT"}"""u8);
        var payload = Base64Url(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["sub"] = "1",
            ["unique_name"] = "admin",
            ["role"] = "admin",
            ["iss"] = "HomeworkApi",
            ["aud"] = "HomeworkApi",
            ["nbf"] = expires.AddHours(-8).ToUnixTimeSeconds(),
            ["exp"] = expires.ToUnixTimeSeconds(),
        })));
        var signature = HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.ASCII.GetBytes(header + "." + payload));
        return header + "." + payload + "." + Base64Url(signature);
    }

    private static string UnsignedJwt()
    {
        var header = Base64Url("""{"alg":"none","typ":"JWT"}"""u8);
        var payload = Base64Url(Encoding.UTF8.GetBytes($$"""{"sub":"1","role":"admin","iss":"HomeworkApi","aud":"HomeworkApi","exp":{{DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds()}}}"""));
        return header + "." + payload + ".";
    }

    [GeneratedRegex(@"\{\**([^}:=?*]+)[^}]*\}")]
    private static partial Regex RouteParameter();

    /// <summary>One method and route pattern of the app, with the query names its handler declares.</summary>
    public sealed record SweptRoute(string Method, string Pattern, IReadOnlyList<string> QueryNames)
    {
        /// <summary>The path with every route parameter replaced by <paramref name="value"/> (escaped).</summary>
        public string Path(Func<string, string> value) => RouteParameter().Replace(Pattern, m => Uri.EscapeDataString(value(m.Groups[1].Value)));
    }

    /// <summary>The sample on Kestrel (Production), a fake model that must never be called, an admin and a student.</summary>
    public sealed class SweepFixture : IAsyncLifetime
    {
        public FakeOpenAIServer Model { get; private set; } = null!;

        public HomeworkApp App { get; private set; } = null!;

        public HttpClient Client { get; private set; } = null!;

        public IReadOnlyList<SweptRoute> Routes { get; private set; } = [];

        public string AdminToken { get; private set; } = null!;

        public string StudentToken { get; private set; } = null!;

        /// <summary>Requests Kestrel itself refused as malformed (no application code ran).</summary>
        public int KestrelRejections { get; set; }

        public async Task InitializeAsync()
        {
            Model = await FakeOpenAIServer.StartAsync();
            Model.Responder = r => FakeModelReplies.For(r);
            App = new HomeworkApp(
                new Dictionary<string, string?>
                {
                    ["OpenAI:Endpoint"] = Model.Endpoint.ToString(),
                    ["OpenAI:ApiKey"] = "test-key",
                    ["OpenAI:TimeoutSeconds"] = "15",
                    ["TokenMeter:Writer:SpoolDirectory"] = Path.Combine(Path.GetTempPath(), "tokenmeter-sweep-" + Guid.NewGuid().ToString("N")),
                },
                environment: "Production");
            App.UseKestrel(0);
            App.StartServer();
            Client = App.CreateClient();
            Client.Timeout = TimeSpan.FromSeconds(60);
            AdminToken = await App.AdminTokenAsync();
            StudentToken = (await App.RegisterAsync()).Token;
            Routes = Enumerate(App.Services.GetRequiredService<EndpointDataSource>());
        }

        public async Task DisposeAsync()
        {
            Client.Dispose();
            await App.DisposeAsync();
            await Model.DisposeAsync();
        }

        internal static List<SweptRoute> Enumerate(EndpointDataSource source)
        {
            var routes = new List<SweptRoute>();
            foreach (var endpoint in source.Endpoints.OfType<RouteEndpoint>())
            {
                var pattern = "/" + (endpoint.RoutePattern.RawText ?? string.Empty).TrimStart('/');
                var routeNames = endpoint.RoutePattern.Parameters.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
                var declared = endpoint.Metadata.OfType<IParameterBindingMetadata>()
                    .Where(p => IsSimple(p.ParameterInfo.ParameterType) && !routeNames.Contains(p.Name))
                    .Select(p => p.Name);
                var queryNames = declared.Concat(CommonQueryNames).Where(n => !routeNames.Contains(n)).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
                var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
                foreach (var method in methods)
                {
                    routes.Add(new SweptRoute(method, pattern, queryNames));
                }
            }

            return routes;
        }

        private static bool IsSimple(Type type)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(DateOnly) || type == typeof(DateTime)
                || type == typeof(DateTimeOffset) || type == typeof(Guid) || type == typeof(TimeSpan)
                || (type.IsArray && IsSimple(type.GetElementType()!));
        }
    }
}

/// <summary>The date extremes on PostgreSQL, where far dates also meet the database's own ranges.</summary>
public sealed class PostgresDateExtremesSweepTests(PostgresModelFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresModelFixture>
{
    [Fact]
    public async Task EveryRoute_DateAndMonthExtremes_OnPostgres_NeverA5xx_NeverATruncated200()
    {
        fixture.Reset();
        var (_, student) = await fixture.App.RegisterAsync();
        using (var client = fixture.App.ClientWithToken(student))
        {
            // A few rows, so an export that failed after its header would show as cut short.
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/hint", HomeworkApp.Json(new { problemText = $"{i} + 1" }))).StatusCode);
            }
        }

        await fixture.App.WaitForRecordsAsync(_ => true, 3);
        var routes = BadInputSweepTests.SweepFixture.Enumerate(fixture.App.Services.GetRequiredService<EndpointDataSource>());
        using var http = fixture.App.CreateClient();
        var failures = await DateExtremes.SweepAsync(http, await fixture.App.AdminTokenAsync(), routes, output.WriteLine);
        Assert.True(failures.Count == 0, $"{failures.Count} bad answers:\n" + string.Join('\n', failures.Take(40)));
    }
}

/// <summary>
/// 0001-01-01, 9999-12-31 and 9999-12 (and 0001-01) in every date or month parameter — query
/// strings and JSON bodies — of every route, as an admin: never a 5xx, and a 200 body always
/// arrives complete (a CSV cut short by an aborted connection fails the read).
/// </summary>
internal static class DateExtremes
{
    private static readonly string[] Values = ["0001-01-01", "9999-12-31", "9999-12", "0001-01", "2199-12-31", "2000-01-01"];

    private static readonly string[] Names = ["from", "to", "month", "date", "day", "since", "until"];

    public static async Task<List<string>> SweepAsync(HttpClient client, string adminToken, IReadOnlyList<BadInputSweepTests.SweptRoute> routes, Action<string> log)
    {
        var failures = new List<string>();
        var statuses = new Dictionary<int, int>();
        foreach (var route in routes)
        {
            foreach (var value in Values)
            {
                foreach (var name in Names)
                {
                    using var request = new HttpRequestMessage(new HttpMethod(route.Method), route.Path(p => p == "documentName" ? "v1" : "1") + "?" + name + "=" + value);
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
                    if (route.Method is "POST" or "PUT" or "PATCH")
                    {
                        // Body dates too (e.g. a re-pricing range), with the other fields of a valid call.
                        request.Content = new StringContent(
                            JsonSerializer.Serialize(new Dictionary<string, object> { [name] = value, ["from"] = value, ["to"] = value, ["dryRun"] = true }),
                            Encoding.UTF8,
                            "application/json");
                    }

                    var what = $"{route.Method} {route.Pattern} with {name}={value}";
                    HttpResponseMessage response;
                    try
                    {
                        response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    }
                    catch (HttpRequestException ex)
                    {
                        failures.Add($"{what}: connection failed before an answer ({ex.Message})");
                        continue;
                    }

                    using (response)
                    {
                        var status = (int)response.StatusCode;
                        statuses[status] = statuses.GetValueOrDefault(status) + 1;
                        string body;
                        try
                        {
                            body = await response.Content.ReadAsStringAsync();
                        }
                        catch (Exception ex) when (ex is HttpRequestException or IOException)
                        {
                            failures.Add($"{what}: {status} and then the body was cut short ({ex.GetType().Name})");
                            continue;
                        }

                        if (status >= 500)
                        {
                            failures.Add($"{what}: {status} {(body.Length > 200 ? body[..200] : body)}");
                        }
                        else if (status >= 400 && response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                        {
                            failures.Add($"{what}: {status} without problem details");
                        }
                    }
                }
            }
        }

        log($"{routes.Count} routes; answers: {string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key} x{p.Value}"))}");
        return failures;
    }
}
