using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Budgets;

namespace TokenMeter.AspNetCore.Tests.Forecasting;

public sealed class ForecastEndpointTests
{
    // TestApp.Now is Wednesday 25 November 2026, 06:30 UTC: 24 complete days, 27.1% of today gone, 5 more days.
    private static readonly DateOnly Today = DateOnly.FromDateTime(TestApp.Now.UtcDateTime);
    private static readonly decimal RestOfToday = 1m - (6.5m / 24m);

    private static UsageRecord[] Daily(string userId, int days, Func<DateOnly, decimal> cost)
        => Enumerable.Range(1, days)
            .Select(i => Today.AddDays(-i))
            .Where(d => cost(d) > 0)
            .Select(d => TestApp.Record(userId, cost(d), at: new DateTimeOffset(d.ToDateTime(new TimeOnly(14, 0)), TimeSpan.Zero)))
            .ToArray();

    private static bool IsWeekend(DateOnly d) => d.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday;

    [Fact]
    public async Task Forecast_FlatHistory_ProjectsFlat()
    {
        await using var app = await TestApp.StartAsync();
        await app.SeedAsync(Daily("u1", 45, _ => 10m));

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast");

        Assert.Equal("2026-11", body.GetProperty("month").GetString());
        Assert.Equal(TestApp.Now, body.GetProperty("asOf").GetDateTimeOffset());
        Assert.Equal(240m, body.GetProperty("monthToDateCostUsd").GetDecimal());
        var expected = 240m + (10m * RestOfToday) + 50m;
        Assert.Equal((double)expected, (double)body.GetProperty("projectedMonthCostUsd").GetDecimal(), 6);
        Assert.True(body.GetProperty("projectedLowUsd").GetDecimal() <= expected);
        Assert.True(body.GetProperty("projectedHighUsd").GetDecimal() >= expected);
        Assert.Contains("weekday/weekend", body.GetProperty("method").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forecast_WeekdayOnlyHistory_ProjectsWeekdaysOnly()
    {
        await using var app = await TestApp.StartAsync();
        await app.SeedAsync(Daily("u1", 45, d => IsWeekend(d) ? 0m : 20m));

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast");

        var monthToDate = Enumerable.Range(1, 24).Select(d => new DateOnly(2026, 11, d)).Count(d => !IsWeekend(d)) * 20m;
        // Rest of Wednesday, then Thursday, Friday and Monday; the weekend adds nothing.
        var expected = monthToDate + (20m * RestOfToday) + (3 * 20m);
        Assert.Equal(monthToDate, body.GetProperty("monthToDateCostUsd").GetDecimal());
        Assert.Equal((double)expected, (double)body.GetProperty("projectedMonthCostUsd").GetDecimal(), 6);
    }

    [Fact]
    public async Task Forecast_NoUsage_IsZeroAndSaysSo()
    {
        await using var app = await TestApp.StartAsync();

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast");

        Assert.Equal(0m, body.GetProperty("projectedMonthCostUsd").GetDecimal());
        Assert.Contains("no usage", body.GetProperty("method").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forecast_ShortHistory_SaysSoInMethod()
    {
        await using var app = await TestApp.StartAsync();
        await app.SeedAsync(Daily("u1", 3, _ => 10m));

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast");

        Assert.Contains("fewer than 7 days of history", body.GetProperty("method").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ForecastUsers_ListsUsersReachingTheirBudget_SoonestFirst()
    {
        await using var app = await TestApp.StartAsync();
        await app.SeedAsync(Daily("u1", 45, _ => 12m));
        await app.SeedAsync(Daily("u2", 45, _ => 20m));
        await app.SeedAsync(Daily("u3", 45, _ => 1m));
        await app.SeedAsync(Daily("u4", 45, _ => 50m));
        await app.Budgets.SetDefaultBudgetAsync(new BudgetLimit(1000m, null));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("u1", 300m, null));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("u2", 400m, null));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("u4", null, 1_000_000)); // cost limit lifted

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast/users");
        var items = body.GetProperty("items").EnumerateArray().ToArray();

        Assert.Equal(["u2", "u1"], items.Select(i => i.GetProperty("userId").GetString()));
        // u2 spent 20 a day: 400 reached on the 20th. u1: 288 by the 24th, 12 a day more: 300 on the 26th.
        Assert.Equal("2026-11-20", items[0].GetProperty("projectedExhaustionDate").GetString());
        Assert.Equal(400m, items[0].GetProperty("monthlyCostUsd").GetDecimal());
        Assert.Equal(480m, items[0].GetProperty("monthToDateCostUsd").GetDecimal());
        Assert.Equal("2026-11-26", items[1].GetProperty("projectedExhaustionDate").GetString());
        Assert.Equal(288m, items[1].GetProperty("monthToDateCostUsd").GetDecimal());
        Assert.Equal((double)(288m + (12m * RestOfToday) + 60m), (double)items[1].GetProperty("projectedMonthCostUsd").GetDecimal(), 6);
        Assert.True(items[1].TryGetProperty("username", out _));

        var one = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/forecast/users?limit=1");
        Assert.Equal("u2", Assert.Single(one.GetProperty("items").EnumerateArray()).GetProperty("userId").GetString());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("501")]
    [InlineData("ten")]
    [InlineData("1&limit=2")]
    public async Task ForecastUsers_BadLimit_400ProblemDetails(string limit)
    {
        await using var app = await TestApp.StartAsync();

        using var response = await app.Admin().GetAsync($"/api/usage/forecast/users?limit={limit}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("limit", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
