using System.Net;
using HomeworkApi.Tests.Infrastructure;

namespace HomeworkApi.Tests;

/// <summary>Security headers on the portal pages, the API and its errors; HSTS outside Development.</summary>
public sealed class SecurityHeadersTests
{
    [Theory]
    [InlineData("/admin")]
    [InlineData("/usage")]
    [InlineData("/shared/portal.js")]
    [InlineData("/api/info")]
    [InlineData("/api/usage/stats")]
    [InlineData("/api/no-such-route")]
    public async Task EveryAnswer_CarriesCsp_NoSniff_NoFraming_NoReferrer(string path)
    {
        await using var app = new HomeworkApp();
        using var client = app.CreateClient();

        using var response = await client.GetAsync(path);

        var csp = Assert.Single(response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-eval", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
    }

    [Theory]
    [InlineData("Production", true)]
    [InlineData("Development", false)]
    public async Task Hsts_OverHttps_OutsideDevelopmentOnly(string environment, bool expected)
    {
        await using var app = new HomeworkApp(environment: environment);
        app.ClientOptions.BaseAddress = new Uri("https://homework.example");
        using var client = app.CreateClient();

        using var response = await client.GetAsync("/api/info");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Headers.Contains("Strict-Transport-Security"));
    }
}
