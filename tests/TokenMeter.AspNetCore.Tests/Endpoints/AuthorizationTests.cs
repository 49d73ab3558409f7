using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Net.Http.Json;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

public abstract class AuthorizationTestsBase : StoreTestBase
{
    public static TheoryData<string, string> AdminRoutes => new()
    {
        { "GET", "/api/usage/stats" },
        { "GET", "/api/usage/summary" },
        { "GET", "/api/usage/user/u1" },
        { "GET", "/api/usage/endpoint" },
        { "GET", "/api/usage/daily" },
        { "GET", "/api/usage/monthly" },
        { "GET", "/api/usage/export" },
        { "GET", "/api/usage/export/summary" },
        { "GET", "/api/usage/budgets" },
        { "PUT", "/api/usage/budgets/default" },
        { "PUT", "/api/usage/budgets/u1" },
        { "DELETE", "/api/usage/budgets/u1" },
        { "POST", "/api/usage/reprice" },
        { "GET", "/api/usage/repricings" },
    };

    [Fact]
    public async Task EveryAdminRoute_NoToken401_WrongRole403_Admin2xx()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(TestApp.Record("u1", 0.5m));
        foreach (var route in AdminRoutes)
        {
            var (method, path) = ((string)route[0], (string)route[1]);
            await app.Budgets.SetUserBudgetAsync(new UserBudget("u1", 5m, null));

            using var anonymous = await SendAsync(app.As(null), method, path);
            Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path}: {anonymous.StatusCode}");

            using var student = await SendAsync(app.As("s1", "student"), method, path);
            Assert.True(student.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {student.StatusCode}");

            using var admin = await SendAsync(app.Admin(), method, path);
            var expected = method == "DELETE" ? HttpStatusCode.NoContent : HttpStatusCode.OK;
            Assert.True(admin.StatusCode == expected, $"{method} {path}: {admin.StatusCode}");
        }
    }

    [Fact]
    public async Task Me_NoToken401_AnySignedInUser200()
    {
        await using var app = await StartAsync();
        using var anonymous = await app.As(null).GetAsync("/api/usage/me");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);

        using var student = await app.As("s1", "student").GetAsync("/api/usage/me");
        Assert.Equal(HttpStatusCode.OK, student.StatusCode);

        using var admin = await app.Admin().GetAsync("/api/usage/me");
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
    }

    [Fact]
    public async Task AdminPolicy_Configured_ReplacesRoleCheck()
    {
        await using var app = await StartAsync(configure: b =>
        {
            b.Services.AddAuthorizationBuilder().AddPolicy("auditors", p => p.RequireRole("auditor"));
            b.Services.Configure<TokenMeterAspNetCoreOptions>(o => o.AdminPolicy = "auditors");
        });

        using var admin = await app.Admin().GetAsync("/api/usage/stats");
        Assert.Equal(HttpStatusCode.Forbidden, admin.StatusCode);
        using var auditor = await app.As("a1", "auditor").GetAsync("/api/usage/stats");
        Assert.Equal(HttpStatusCode.OK, auditor.StatusCode);
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "PUT")
        {
            request.Content = JsonContent.Create(new { monthlyCostUsd = 10m, monthlyTokens = (long?)null });
        }
        else if (method == "POST")
        {
            request.Content = JsonContent.Create(new { from = "2026-11-01", to = "2026-11-30", dryRun = true });
        }

        return client.SendAsync(request);
    }
}

public sealed class AuthorizationTests : AuthorizationTestsBase;
