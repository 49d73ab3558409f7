using TokenMeter.Budgets;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.AspNetCore.Tests.Hosting;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

public abstract class UsageApiTestsBase : StoreTestBase
{
    [Fact]
    public async Task Stats_ShapeAndFigures()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(
            TestApp.Record("u1", 0.25m, 100),
            TestApp.Record("u2", 0.5m, 200, at: TestApp.Now.AddDays(-3)),
            TestApp.Record("u3", 1.125m, 300, at: TestApp.Now.AddMonths(-2)),
            TestApp.Record(null, 0.0625m, 50));

        using var doc = await GetJsonAsync(app, "/api/usage/stats");
        var root = doc.RootElement;
        Assert.Equal(4, root.GetProperty("totalCalls").GetInt64());
        Assert.Equal(650, root.GetProperty("totalTokens").GetInt64());
        Assert.Equal(1.9375m, root.GetProperty("totalCostUsd").GetDecimal());
        Assert.Equal(3, root.GetProperty("activeUsers").GetInt64());
        Assert.Equal(2, root.GetProperty("today").GetProperty("calls").GetInt64());
        Assert.Equal(0.3125m, root.GetProperty("today").GetProperty("costUsd").GetDecimal());
        Assert.Equal(1, root.GetProperty("today").GetProperty("activeUsers").GetInt64());
        Assert.Equal(3, root.GetProperty("thisMonth").GetProperty("calls").GetInt64());
        Assert.Equal(350, root.GetProperty("thisMonth").GetProperty("tokens").GetInt64());
        Assert.Equal(2, root.GetProperty("thisMonth").GetProperty("activeUsers").GetInt64());
    }

    [Theory]
    [InlineData("cost", "desc")]
    [InlineData("cost", "asc")]
    [InlineData("tokens", "desc")]
    [InlineData("calls", "asc")]
    [InlineData("lastCall", "desc")]
    [InlineData("userId", "asc")]
    public async Task Summary_PagesCoverAllUsersWithoutOverlap(string sort, string order)
    {
        await using var app = await StartAsync();
        var records = new List<UsageRecord>();
        for (var i = 0; i < 37; i++)
        {
            // Many ties on cost, tokens and calls, so the user-id tie-break decides the order.
            records.Add(TestApp.Record($"user-{i:D2}", 0.01m * (i % 4), 100 + (i % 3), at: TestApp.Now.AddMinutes(-(i % 5))));
        }

        await app.SeedAsync([.. records]);
        var seen = new List<string>();
        long total = -1;
        for (var offset = 0; ; offset += 10)
        {
            using var page = await GetJsonAsync(app, $"/api/usage/summary?limit=10&offset={offset}&sort={sort}&order={order}");
            total = page.RootElement.GetProperty("total").GetInt64();
            Assert.Equal(10, page.RootElement.GetProperty("limit").GetInt32());
            Assert.Equal(offset, page.RootElement.GetProperty("offset").GetInt32());
            var items = page.RootElement.GetProperty("items").EnumerateArray().ToList();
            seen.AddRange(items.Select(i => i.GetProperty("userId").GetString()!));
            if (items.Count < 10)
            {
                break;
            }
        }

        Assert.Equal(37, total);
        Assert.Equal(37, seen.Count);
        Assert.Equal(37, seen.Distinct().Count());
    }

    [Fact]
    public async Task Summary_ItemShape_UserIdsAreStrings_DirectoryFieldsNullWithoutDirectory()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(TestApp.Record("42", 0.123456789m, 1000));
        using var doc = await GetJsonAsync(app, "/api/usage/summary");
        var item = doc.RootElement.GetProperty("items")[0];
        Assert.Equal(JsonValueKind.String, item.GetProperty("userId").ValueKind);
        Assert.Equal("42", item.GetProperty("userId").GetString());
        Assert.Equal(JsonValueKind.Null, item.GetProperty("username").ValueKind);
        Assert.Equal(JsonValueKind.Null, item.GetProperty("email").ValueKind);
        Assert.Equal(0.123456789m, item.GetProperty("totalCostUsd").GetDecimal());
        foreach (var name in new[] { "totalCalls", "inputTokens", "cachedInputTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens", "totalTokens" })
        {
            Assert.Equal(JsonValueKind.Number, item.GetProperty(name).ValueKind);
        }

        Assert.EndsWith("+00:00", item.GetProperty("lastCallAt").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Summary_WithDirectory_ResolvesPageInOneLookup()
    {
        var directory = new RecordingDirectory();
        await using var app = await StartAsync(configure: b => b.Services.AddSingleton<IUserDirectory>(directory));
        await app.SeedAsync(TestApp.Record("1", 1m), TestApp.Record("2", 2m), TestApp.Record("3", 3m));
        using var doc = await GetJsonAsync(app, "/api/usage/summary?sort=userId&order=asc");
        var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal("user1", items[0].GetProperty("username").GetString());
        Assert.Equal("user3@example.com", items[2].GetProperty("email").GetString());
        Assert.Equal(1, directory.Lookups);
    }

    [Fact]
    public async Task User_Detail_Shape()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(
            TestApp.Record("7", 0.5m, 100, endpoint: "/api/hint"),
            TestApp.Record("7", 0.25m, 50, endpoint: "/api/chat", at: TestApp.Now.AddDays(-2)),
            TestApp.Record("7", 1m, 10, endpoint: "/api/chat", at: TestApp.Now.AddDays(-40)),
            TestApp.Record("8", 9m, 10));
        using var doc = await GetJsonAsync(app, "/api/usage/user/7");
        var root = doc.RootElement;
        Assert.Equal("7", root.GetProperty("userId").GetString());
        Assert.Equal(3, root.GetProperty("totalCalls").GetInt64());
        Assert.Equal(1.75m, root.GetProperty("totalCostUsd").GetDecimal());
        Assert.Equal(2, root.GetProperty("thisMonth").GetProperty("calls").GetInt64());
        Assert.Equal(0.75m, root.GetProperty("thisMonth").GetProperty("costUsd").GetDecimal());
        var byEndpoint = root.GetProperty("byEndpoint").EnumerateArray().ToList();
        Assert.Equal(2, byEndpoint.Count);
        Assert.Equal("/api/chat", byEndpoint[0].GetProperty("endpoint").GetString());
        Assert.Equal(1.25m, byEndpoint[0].GetProperty("totalCostUsd").GetDecimal());
        var daily = root.GetProperty("daily").EnumerateArray().ToList();
        Assert.Equal(2, daily.Count);
        Assert.Equal("2026-11-25", daily[0].GetProperty("date").GetString());
        Assert.Equal("2026-11-23", daily[1].GetProperty("date").GetString());
    }

    [Fact]
    public async Task User_WithAccountButNoUsage_200Zeros_UnknownTo404()
    {
        await using var app = await StartAsync(configure: b => b.Services.AddSingleton<IUserDirectory>(new RecordingDirectory()));
        using var known = await app.Admin().GetAsync("/api/usage/user/5");
        Assert.Equal(HttpStatusCode.OK, known.StatusCode);
        using var doc = JsonDocument.Parse(await known.Content.ReadAsStringAsync());
        Assert.Equal(0, doc.RootElement.GetProperty("totalCalls").GetInt64());
        Assert.Equal("user5", doc.RootElement.GetProperty("username").GetString());

        using var unknown = await app.Admin().GetAsync("/api/usage/user/no-such-user");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Endpoint_Daily_Monthly_ShapesAndOrder()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(
            TestApp.Record("1", 0.3m, 300, endpoint: "/api/analyze", model: "gpt-4o"),
            TestApp.Record("2", 0.1m, 100, endpoint: "/api/analyze", model: "gpt-4o"),
            TestApp.Record("1", 0.05m, 50, endpoint: "/api/hint", at: TestApp.Now.AddDays(-1)),
            TestApp.Record("3", 0.7m, 70, endpoint: "/api/chat", at: TestApp.Now.AddMonths(-1)));

        using var endpoints = await GetJsonAsync(app, "/api/usage/endpoint");
        var items = endpoints.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["/api/chat", "/api/analyze", "/api/hint"], items.Select(i => i.GetProperty("endpoint").GetString()));
        var analyze = items[1];
        Assert.Equal(2, analyze.GetProperty("calls").GetInt64());
        Assert.Equal(200m, analyze.GetProperty("avgTokensPerCall").GetDecimal());
        Assert.Equal(0.2m, analyze.GetProperty("avgCostPerCall").GetDecimal());
        Assert.Equal("gpt-4o", analyze.GetProperty("model").GetString());

        using var daily = await GetJsonAsync(app, "/api/usage/daily?days=2");
        var days = daily.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["2026-11-25", "2026-11-24"], days.Select(d => d.GetProperty("date").GetString()));
        Assert.Equal(2, days[0].GetProperty("activeUsers").GetInt64());
        Assert.Equal(0.4m, days[0].GetProperty("costUsd").GetDecimal());
        foreach (var name in new[] { "calls", "inputTokens", "outputTokens", "totalTokens" })
        {
            Assert.Equal(JsonValueKind.Number, days[0].GetProperty(name).ValueKind);
        }

        using var monthly = await GetJsonAsync(app, "/api/usage/monthly?months=2");
        var months = monthly.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["2026-11", "2026-10"], months.Select(m => m.GetProperty("month").GetString()));
        Assert.Equal(0.7m, months[1].GetProperty("costUsd").GetDecimal());

        using var oneMonth = await GetJsonAsync(app, "/api/usage/monthly?months=1");
        Assert.Single(oneMonth.RootElement.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task Me_SeesOnlyOwnUsageAndBudget()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(
            TestApp.Record("s1", 0.25m, 100, endpoint: "/api/hint"),
            TestApp.Record("s1", 0.5m, 200, endpoint: "/api/chat", at: TestApp.Now.AddMonths(-1)),
            TestApp.Record("s2", 9m, 900));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 2m, null));

        using var response = await app.As("s1", "student").GetAsync("/api/usage/me");
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal(2, root.GetProperty("totalCalls").GetInt64());
        Assert.Equal(300, root.GetProperty("totalTokens").GetInt64());
        Assert.Equal(0.75m, root.GetProperty("totalCostUsd").GetDecimal());
        Assert.Equal(1, root.GetProperty("thisMonth").GetProperty("calls").GetInt64());
        Assert.Equal(0.25m, root.GetProperty("thisMonth").GetProperty("costUsd").GetDecimal());
        Assert.Equal(2m, root.GetProperty("budget").GetProperty("monthlyCostUsd").GetDecimal());
        Assert.Equal(1.75m, root.GetProperty("budget").GetProperty("remainingUsd").GetDecimal());
        Assert.DoesNotContain("s2", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var other = await app.As("s3", "student").GetAsync("/api/usage/me");
        using var empty = JsonDocument.Parse(await other.Content.ReadAsStringAsync());
        Assert.Equal(0, empty.RootElement.GetProperty("totalCalls").GetInt64());
        Assert.Equal(JsonValueKind.Null, empty.RootElement.GetProperty("budget").ValueKind);
    }

    [Fact]
    public async Task Budgets_PutGetDelete_RoundTripThroughStore()
    {
        await using var app = await StartAsync();
        var admin = app.Admin();
        using (var put = await admin.PutAsJsonAsync("/api/usage/budgets/default", new { monthlyCostUsd = 5.5m, monthlyTokens = 100000 }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using (var put = await admin.PutAsJsonAsync("/api/usage/budgets/42", new { monthlyCostUsd = (decimal?)null, monthlyTokens = 5000 }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using (var doc = await GetJsonAsync(app, "/api/usage/budgets"))
        {
            Assert.Equal(5.5m, doc.RootElement.GetProperty("default").GetProperty("monthlyCostUsd").GetDecimal());
            Assert.Equal(100000, doc.RootElement.GetProperty("default").GetProperty("monthlyTokens").GetInt64());
            var user = Assert.Single(doc.RootElement.GetProperty("users").EnumerateArray());
            Assert.Equal("42", user.GetProperty("userId").GetString());
            Assert.Equal(JsonValueKind.Null, user.GetProperty("monthlyCostUsd").ValueKind);
            Assert.Equal(5000, user.GetProperty("monthlyTokens").GetInt64());
        }

        var effective = await app.Budgets.GetEffectiveBudgetAsync("42");
        Assert.Equal(5000, effective?.MonthlyTokens);

        using (var delete = await admin.DeleteAsync("/api/usage/budgets/42"))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        using (var put = await admin.PutAsJsonAsync("/api/usage/budgets/default", new { monthlyCostUsd = (decimal?)null }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using (var doc = await GetJsonAsync(app, "/api/usage/budgets"))
        {
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("default").ValueKind);
            Assert.Empty(doc.RootElement.GetProperty("users").EnumerateArray());
        }
    }

    [Fact]
    public async Task OpenApi_ListsEveryRouteWithResponseTypes()
    {
        await using var app = await StartAsync();
        using var doc = JsonDocument.Parse(await app.Client.GetStringAsync("/openapi/v1.json"));
        var paths = doc.RootElement.GetProperty("paths");
        foreach (var path in new[]
        {
            "/api/usage/stats", "/api/usage/summary", "/api/usage/user/{userId}", "/api/usage/endpoint", "/api/usage/daily",
            "/api/usage/monthly", "/api/usage/export", "/api/usage/export/summary", "/api/usage/me", "/api/usage/budgets",
            "/api/usage/budgets/default", "/api/usage/budgets/{userId}",
        })
        {
            Assert.True(paths.TryGetProperty(path, out _), path);
        }

        var stats = paths.GetProperty("/api/usage/stats").GetProperty("get");
        Assert.Equal("TokenMeterGetStats", stats.GetProperty("operationId").GetString());
        Assert.True(stats.GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("application/json", out _));
        Assert.True(stats.GetProperty("responses").TryGetProperty("401", out _));
    }

    internal static async Task<JsonDocument> GetJsonAsync(TestApp app, string url)
    {
        using var response = await app.Admin().GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }
}

public sealed class UsageApiTests : UsageApiTestsBase;

/// <summary>A directory where every numeric id is an account named user&lt;id&gt;; counts its bulk lookups.</summary>
internal sealed class RecordingDirectory : IUserDirectory
{
    private int _lookups;

    public int Lookups => _lookups;

    public ValueTask<IReadOnlyDictionary<string, UserDirectoryEntry>> GetUsersAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _lookups);
        IReadOnlyDictionary<string, UserDirectoryEntry> found = userIds
            .Where(id => id.All(char.IsAsciiDigit))
            .ToDictionary(id => id, id => new UserDirectoryEntry(id, "user" + id, $"user{id}@example.com"));
        return ValueTask.FromResult(found);
    }

    public ValueTask<bool> ExistsAsync(string userId, CancellationToken cancellationToken = default)
        => ValueTask.FromResult(userId.All(char.IsAsciiDigit));
}
