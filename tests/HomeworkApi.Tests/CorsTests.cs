using System.Net;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

/// <summary>CORS: exactly the configured frontend origins, on the homework and account routes only.</summary>
public sealed class CorsTests
{
    private const string Frontend = "https://app.example.com";

    [Theory]
    [InlineData("/api/hint")]
    [InlineData("/api/auth/login")]
    public async Task ConfiguredOrigin_PreflightAndCall_AreAllowed_WithoutCredentials(string route)
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:Cors:AllowedOrigins:0"] = Frontend });
        using var client = app.CreateClient();

        using var preflight = Preflight(route, Frontend);
        using var answer = await client.SendAsync(preflight);
        using var call = new HttpRequestMessage(HttpMethod.Post, route) { Content = HomeworkApp.Json(new { problemText = "2+2", username = "x", password = "y" }) };
        call.Headers.Add("Origin", Frontend);
        using var called = await client.SendAsync(call);

        Assert.True(answer.IsSuccessStatusCode, $"preflight answered {(int)answer.StatusCode}");
        Assert.Equal(Frontend, Assert.Single(answer.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Contains("POST", string.Join(',', answer.Headers.GetValues("Access-Control-Allow-Methods")), StringComparison.Ordinal);
        Assert.Contains("authorization", string.Join(',', answer.Headers.GetValues("Access-Control-Allow-Headers")), StringComparison.OrdinalIgnoreCase);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Credentials"));
        Assert.Equal(Frontend, Assert.Single(called.Headers.GetValues("Access-Control-Allow-Origin")));
    }

    [Theory]
    [InlineData("/api/hint", "https://evil.example")]
    [InlineData("/api/hint", "https://app.example.com.evil.example")]
    [InlineData("/api/hint", "null")]
    [InlineData("/api/usage/stats", Frontend)]
    [InlineData("/api/users", Frontend)]
    [InlineData("/api/usage/budgets/default", Frontend)]
    public async Task OtherOrigins_AndTheAdminApi_GetNoCorsHeaders(string route, string origin)
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:Cors:AllowedOrigins:0"] = Frontend });
        using var client = app.CreateClient();

        using var preflight = Preflight(route, origin);
        using var answer = await client.SendAsync(preflight);
        using var call = new HttpRequestMessage(HttpMethod.Get, route);
        call.Headers.Add("Origin", origin);
        using var called = await client.SendAsync(call);

        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"), $"preflight of {route} from {origin} was allowed");
        Assert.False(called.Headers.Contains("Access-Control-Allow-Origin"), $"call of {route} from {origin} was allowed");
    }

    [Fact]
    public async Task ByDefault_NoOriginIsAllowed()
    {
        await using var app = new HomeworkApp();
        using var client = app.CreateClient();

        using var answer = await client.SendAsync(Preflight("/api/hint", Frontend));

        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Theory]
    [InlineData("*")]
    [InlineData("https://app.example.com/path")]
    [InlineData("not a url")]
    public async Task AWildcardOrAPath_StopsStartUp_NamingTheKey(string origin)
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:Cors:AllowedOrigins:0"] = origin });

        var error = Assert.ThrowsAny<Exception>(() => app.Server);

        Assert.Contains("Homework:Cors:AllowedOrigins:0", error.ToString(), StringComparison.Ordinal);
    }

    private static HttpRequestMessage Preflight(string route, string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, route);
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        return request;
    }
}
