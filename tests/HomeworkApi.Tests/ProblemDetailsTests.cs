using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

/// <summary>Every 4xx and 5xx is problem details with type, title, status and a detail sentence (the framework's own 401/403/404 included).</summary>
public sealed class ProblemDetailsTests : IClassFixture<FakeModelFixture>
{
    private readonly FakeModelFixture _fixture;

    public ProblemDetailsTests(FakeModelFixture fixture) => _fixture = fixture;

    private HomeworkApp App => _fixture.App;

    public static TheoryData<string> UsageRoutes => new() { "/api/usage/stats", "/api/usage/summary", "/api/usage/budgets", "/api/usage/export", "/api/users" };

    [Theory]
    [MemberData(nameof(UsageRoutes))]
    public async Task NoToken401_AndStudent403_AreCompleteProblemDetails(string route)
    {
        var (_, token) = await App.RegisterAsync();
        using var anonymous = App.CreateClient();
        using var student = App.ClientWithToken(token);

        await AssertCompleteProblemAsync(await anonymous.GetAsync(route), HttpStatusCode.Unauthorized);
        await AssertCompleteProblemAsync(await student.GetAsync(route), HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task UnknownRoute404_And_WrongMethod405_AreCompleteProblemDetails()
    {
        using var client = App.CreateClient();

        await AssertCompleteProblemAsync(await client.GetAsync("/api/no-such-route"), HttpStatusCode.NotFound);
        await AssertCompleteProblemAsync(await client.DeleteAsync("/api/hint"), HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task SignIn429_HasTheRateLimitedType()
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:LoginAttemptsPerMinute"] = "1" });
        using var client = app.CreateClient();
        await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "wrong-password-1" });

        var refused = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "wrong-password-1" });

        var problem = await AssertCompleteProblemAsync(refused, HttpStatusCode.TooManyRequests);
        Assert.EndsWith("rate-limited", problem["type"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
    }

    [Theory]
    [InlineData("/api/usage/user/%00", HttpStatusCode.BadRequest)]
    [InlineData("/api/hint%00", HttpStatusCode.BadRequest)]
    [InlineData("/api/usage/stats", HttpStatusCode.RequestHeaderFieldsTooLarge)]
    public async Task RequestsKestrelRefusesBeforeTheApp_AreCompleteProblemDetails_WithTheSecurityHeaders(string path, HttpStatusCode status)
    {
        // Only a real Kestrel refuses these (TestServer hands them to the app): the sample on a loopback port.
        await using var app = new HomeworkApp();
        var address = ChromiumFixture.StartOnLoopback(app);
        using var client = new HttpClient { BaseAddress = address };
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (status == HttpStatusCode.RequestHeaderFieldsTooLarge)
        {
            request.Headers.Add("X-Padding", new string('x', 40 * 1024));
        }

        using var response = await client.SendAsync(request);

        await AssertCompleteProblemAsync(response, status);
        Assert.Equal("nosniff", string.Join(',', response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Contains("frame-ancestors 'none'", string.Join(',', response.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);

        // The same port still answers ordinary requests untouched.
        using var fine = await client.GetAsync("/api/info");
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
    }

    /// <summary>Asserts <paramref name="response"/> is complete problem details with <paramref name="status"/>; returns its body.</summary>
    internal static async Task<JsonObject> AssertCompleteProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.RequestMessage?.RequestUri}: expected {(int)status}, got {(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = (JsonObject)JsonNode.Parse(text)!;
        Assert.False(string.IsNullOrWhiteSpace(problem["type"]?.GetValue<string>()), "type missing: " + text);
        Assert.False(string.IsNullOrWhiteSpace(problem["title"]?.GetValue<string>()), "title missing: " + text);
        Assert.Equal((int)status, problem["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()), "detail missing: " + text);
        return problem;
    }
}
