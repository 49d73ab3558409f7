using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TokenMeter.AspNetCore.Tests.Hosting;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>One app for every validation case: bad input never changes anything.</summary>
public sealed class ValidationAppFixture : IAsyncLifetime
{
    internal TestApp App { get; private set; } = null!;

    public async Task InitializeAsync() => App = await TestApp.StartAsync();

    public async Task DisposeAsync() => await App.DisposeAsync();
}

public sealed class ValidationTests(ValidationAppFixture fixture) : IClassFixture<ValidationAppFixture>
{
    public static TheoryData<string, string> BadQueries => new()
    {
        { "/api/usage/summary?limit=0", "limit" },
        { "/api/usage/summary?limit=501", "limit" },
        { "/api/usage/summary?limit=abc", "limit" },
        { "/api/usage/summary?limit=1.5", "limit" },
        { "/api/usage/summary?limit=", "limit" },
        { "/api/usage/summary?limit=10&limit=20", "limit" },
        { "/api/usage/summary?offset=-1", "offset" },
        { "/api/usage/summary?offset=x", "offset" },
        { "/api/usage/summary?offset=99999999999", "offset" },
        { "/api/usage/summary?sort=email", "sort" },
        { "/api/usage/summary?sort=cost;drop", "sort" },
        { "/api/usage/summary?sort=", "sort" },
        { "/api/usage/summary?order=up", "order" },
        { "/api/usage/summary?order=", "order" },
        { "/api/usage/daily?days=0", "days" },
        { "/api/usage/daily?days=367", "days" },
        { "/api/usage/daily?days=ten", "days" },
        { "/api/usage/monthly?months=0", "months" },
        { "/api/usage/monthly?months=121", "months" },
        { "/api/usage/monthly?months=-3", "months" },
        { "/api/usage/export?from=2026-13-01", "from" },
        { "/api/usage/export?from=25/11/2026", "from" },
        { "/api/usage/export?to=2026-11-31", "to" },
        { "/api/usage/export?to=2026-1-5", "to" },
        { "/api/usage/export?from=2026-11-20&to=2026-11-10", "from" },
        { "/api/usage/user/%20", "userId" },
    };

    [Theory]
    [MemberData(nameof(BadQueries))]
    public async Task BadParameter_400ProblemNamingIt(string url, string parameter)
    {
        var app = fixture.App;
        using var response = await app.Admin().GetAsync(url);
        await AssertProblemAsync(response, parameter);
    }

    public static TheoryData<string, string, string> BadBudgetBodies => new()
    {
        { "/api/usage/budgets/default", "{\"monthlyCostUsd\": -1}", "monthlyCostUsd" },
        { "/api/usage/budgets/default", "{\"monthlyCostUsd\": \"ten\"}", "monthlyCostUsd" },
        { "/api/usage/budgets/u1", "{\"monthlyTokens\": 1.5}", "monthlyTokens" },
        { "/api/usage/budgets/u1", "{\"monthlyTokens\": -10}", "monthlyTokens" },
        { "/api/usage/budgets/u1", "[1,2]", "body" },
        { "/api/usage/budgets/u1", "{not json", "body" },
        { "/api/usage/budgets/u1", "", "body" },
    };

    [Theory]
    [MemberData(nameof(BadBudgetBodies))]
    public async Task BadBudgetBody_400ProblemNamingField(string url, string body, string parameter)
    {
        var app = fixture.App;
        using var response = await app.Admin().PutAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));
        await AssertProblemAsync(response, parameter);
        Assert.Null((await app.Budgets.GetBudgetsAsync()).Default);
        Assert.Empty((await app.Budgets.GetBudgetsAsync()).Users);
    }

    [Theory]
    [InlineData("/api/usage/summary?limit=1&offset=0&sort=cost&order=desc")]
    [InlineData("/api/usage/summary?limit=500&sort=lastCall&order=asc")]
    [InlineData("/api/usage/summary?sort=userId")]
    [InlineData("/api/usage/summary?sort=tokens")]
    [InlineData("/api/usage/summary?sort=calls")]
    [InlineData("/api/usage/daily?days=1")]
    [InlineData("/api/usage/daily?days=366")]
    [InlineData("/api/usage/monthly?months=1")]
    [InlineData("/api/usage/monthly?months=120")]
    [InlineData("/api/usage/export?from=2026-11-01&to=2026-11-01&userId=")]
    [InlineData("/api/usage/export?from=2024-02-29")]
    public async Task Boundaries_Accepted(string url)
    {
        var app = fixture.App;
        using var response = await app.Admin().GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task UnknownUser_404Problem()
    {
        var app = fixture.App;
        using var response = await app.Admin().GetAsync("/api/usage/user/nobody");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task DeleteMissingBudget_404()
    {
        var app = fixture.App;
        using var response = await app.Admin().DeleteAsync("/api/usage/budgets/nobody");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, string parameter)
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(400, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Contains($"'{parameter}'", problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
