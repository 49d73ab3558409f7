using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.AspNetCore.Endpoints;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

/// <summary>
/// The admin API's JSON, byte for byte: every figure-bearing answer on a fixed data set. The wire is the
/// contract, so a change to the read model (a new measure, a renamed property) must not move a name,
/// a field's place or a number's form here unless the contract changes too.
/// </summary>
public sealed class WireShapeTests
{
    private static async Task<TestApp> StartSeededAsync()
    {
        var app = await TestApp.StartAsync(configure: b => b.Services.AddSingleton<IUserDirectory>(new RecordingDirectory()));
        await app.SeedAsync(
            TestApp.Record("7", 0.5m, 100, "/api/hint", "gpt-4o-mini"),
            TestApp.Record("7", 0.25m, 40, "/api/chat", "gpt-4o", TestApp.Now.AddDays(-2)),
            TestApp.Record("7", 1.125m, 10, "/api/chat", "gpt-4o", TestApp.Now.AddMonths(-1)),
            TestApp.Record("s1", 0.0625m, 200, "/api/hint", "gpt-4o-mini", TestApp.Now.AddDays(-1)),
            TestApp.Record(null, 0.03125m, 20, null, "gpt-4o-mini"));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 0.1m, 5000));
        return app;
    }

    [Theory]
    [InlineData("/api/usage/stats",
        """{"totalCalls":5,"totalTokens":370,"totalCostUsd":1.96875,"activeUsers":2,"today":{"calls":2,"tokens":120,"costUsd":0.53125,"activeUsers":1},"thisMonth":{"calls":4,"tokens":360,"costUsd":0.84375,"activeUsers":2}}""")]
    [InlineData("/api/usage/summary?sort=userId&order=asc",
        """{"items":[{"userId":"7","username":"user7","email":"user7@example.com","totalCalls":3,"inputTokens":112,"cachedInputTokens":15,"cacheWriteTokens":0,"outputTokens":38,"reasoningTokens":7,"totalTokens":150,"totalCostUsd":1.875,"lastCallAt":"2026-11-25T06:25:00+00:00"},{"userId":"s1","username":null,"email":null,"totalCalls":1,"inputTokens":150,"cachedInputTokens":20,"cacheWriteTokens":0,"outputTokens":50,"reasoningTokens":10,"totalTokens":200,"totalCostUsd":0.0625,"lastCallAt":"2026-11-24T06:30:00+00:00"}],"total":2,"limit":50,"offset":0}""")]
    [InlineData("/api/usage/user/7",
        """{"userId":"7","username":"user7","email":"user7@example.com","totalCalls":3,"inputTokens":112,"cachedInputTokens":15,"cacheWriteTokens":0,"outputTokens":38,"reasoningTokens":7,"totalTokens":150,"totalCostUsd":1.875,"lastCallAt":"2026-11-25T06:25:00+00:00","thisMonth":{"calls":2,"tokens":140,"costUsd":0.75},"byEndpoint":[{"endpoint":"/api/chat","model":"gpt-4o","calls":2,"totalTokens":50,"totalCostUsd":1.375},{"endpoint":"/api/hint","model":"gpt-4o-mini","calls":1,"totalTokens":100,"totalCostUsd":0.5}],"daily":[{"date":"2026-11-25","calls":1,"tokens":100,"costUsd":0.5},{"date":"2026-11-23","calls":1,"tokens":40,"costUsd":0.25}],"thisMonthByCostSource":[{"costSource":"reported","calls":2,"costUsd":0.75}]}""")]
    [InlineData("/api/usage/user/5",
        """{"userId":"5","username":"user5","email":"user5@example.com","totalCalls":0,"inputTokens":0,"cachedInputTokens":0,"cacheWriteTokens":0,"outputTokens":0,"reasoningTokens":0,"totalTokens":0,"totalCostUsd":0,"lastCallAt":null,"thisMonth":{"calls":0,"tokens":0,"costUsd":0},"byEndpoint":[],"daily":[],"thisMonthByCostSource":[]}""")]
    [InlineData("/api/usage/endpoint",
        """{"items":[{"endpoint":"/api/chat","model":"gpt-4o","calls":2,"totalTokens":50,"avgTokensPerCall":25,"totalCostUsd":1.375,"avgCostPerCall":0.6875},{"endpoint":"/api/hint","model":"gpt-4o-mini","calls":2,"totalTokens":300,"avgTokensPerCall":150,"totalCostUsd":0.5625,"avgCostPerCall":0.28125},{"endpoint":null,"model":"gpt-4o-mini","calls":1,"totalTokens":20,"avgTokensPerCall":20,"totalCostUsd":0.03125,"avgCostPerCall":0.03125}]}""")]
    [InlineData("/api/usage/daily?days=3",
        """{"items":[{"date":"2026-11-25","calls":2,"inputTokens":90,"outputTokens":30,"totalTokens":120,"costUsd":0.53125,"activeUsers":1},{"date":"2026-11-24","calls":1,"inputTokens":150,"outputTokens":50,"totalTokens":200,"costUsd":0.0625,"activeUsers":1},{"date":"2026-11-23","calls":1,"inputTokens":30,"outputTokens":10,"totalTokens":40,"costUsd":0.25,"activeUsers":1}]}""")]
    [InlineData("/api/usage/monthly?months=2",
        """{"items":[{"month":"2026-11","calls":4,"inputTokens":270,"outputTokens":90,"totalTokens":360,"costUsd":0.84375,"activeUsers":2},{"month":"2026-10","calls":1,"inputTokens":7,"outputTokens":3,"totalTokens":10,"costUsd":1.125,"activeUsers":1}]}""")]
    [InlineData("/api/usage/statements?month=2026-11",
        """{"month":"2026-11","currency":"USD","markupPercent":0,"items":[{"userId":"7","username":"user7","email":"user7@example.com","lines":[{"endpoint":"/api/hint","model":"gpt-4o-mini","calls":1,"inputTokens":75,"cachedInputTokens":10,"cacheWriteTokens":0,"outputTokens":25,"totalTokens":100,"costUsd":0.5},{"endpoint":"/api/chat","model":"gpt-4o","calls":1,"inputTokens":30,"cachedInputTokens":4,"cacheWriteTokens":0,"outputTokens":10,"totalTokens":40,"costUsd":0.25}],"costUsd":0.75,"amountUsd":0.75},{"userId":"s1","username":null,"email":null,"lines":[{"endpoint":"/api/hint","model":"gpt-4o-mini","calls":1,"inputTokens":150,"cachedInputTokens":20,"cacheWriteTokens":0,"outputTokens":50,"totalTokens":200,"costUsd":0.0625}],"costUsd":0.0625,"amountUsd":0.06}],"totalCostUsd":0.8125,"totalAmountUsd":0.81}""")]
    [InlineData("/api/usage/budgets",
        """{"default":null,"users":[{"userId":"s1","monthlyCostUsd":0.1,"monthlyTokens":5000}]}""")]
    public async Task AdminAnswer_IsTheContractsJson(string url, string expected)
    {
        await using var app = await StartSeededAsync();
        using var response = await app.Admin().GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Me_IsTheContractsJson()
    {
        await using var app = await StartSeededAsync();
        using var response = await app.As("s1", "student").GetAsync("/api/usage/me");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"totalCalls":1,"totalTokens":200,"totalCostUsd":0.0625,"thisMonth":{"calls":1,"tokens":200,"costUsd":0.0625},"budget":{"monthlyCostUsd":0.1,"remainingUsd":0.0375,"monthlyTokens":5000},"daily":[{"date":"2026-11-24","calls":1,"tokens":200,"costUsd":0.0625}],"byEndpoint":[{"endpoint":"/api/hint","calls":1,"totalTokens":200,"totalCostUsd":0.0625}]}""",
            await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task EveryAdminAnswer_IsWrittenByTheSourceGeneratedContext()
    {
        await using var app = await TestApp.StartAsync();
        var answers = app.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api/usage", StringComparison.Ordinal) == true)
            .SelectMany(e => e.Metadata.OfType<IProducesResponseTypeMetadata>())
            .Where(m => m.Type is not null && m.Type != typeof(void) && m.ContentTypes.Contains("application/json"))
            .Select(m => m.Type!)
            .Distinct()
            .ToList();

        Assert.NotEmpty(answers);
        Assert.All(answers, type => Assert.True(
            AdminJsonContext.Default.GetTypeInfo(type) is not null,
            $"{type.Name} is not in AdminJsonContext: add [JsonSerializable(typeof({type.Name}))] there."));
    }

    [Theory]
    [InlineData("/api/usage/stats", "totalCalls,totalTokens,totalCostUsd,activeUsers,today,thisMonth")]
    [InlineData("/api/usage/user/{userId}", "userId,username,email,totalCalls,inputTokens,cachedInputTokens,cacheWriteTokens,outputTokens,reasoningTokens,totalTokens,totalCostUsd,lastCallAt,thisMonth,byEndpoint,daily,thisMonthByCostSource")]
    [InlineData("/api/usage/me", "totalCalls,totalTokens,totalCostUsd,thisMonth,budget,daily,byEndpoint")]
    public async Task OpenApi_DescribesTheWireNames(string path, string properties)
    {
        await using var app = await TestApp.StartAsync();
        using var doc = JsonDocument.Parse(await app.Client.GetStringAsync("/openapi/v1.json"));
        var schema = doc.RootElement.GetProperty("paths").GetProperty(path).GetProperty("get").GetProperty("responses")
            .GetProperty("200").GetProperty("content").GetProperty("application/json").GetProperty("schema");
        if (schema.TryGetProperty("$ref", out var reference))
        {
            schema = doc.RootElement.GetProperty("components").GetProperty("schemas").GetProperty(reference.GetString()!.Split('/')[^1]);
        }

        Assert.Equal(properties.Split(','), schema.GetProperty("properties").EnumerateObject().Select(p => p.Name));
    }
}
