using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Pricing;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests.Repricing;

public abstract class RepricingEndpointTestsBase : StoreTestBase
{
    private static readonly DateTimeOffset November = TestApp.Now.AddDays(-2);
    private static readonly DateTimeOffset October = new(2026, 10, 20, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Reprice_DryRunEqualsApply_ThenEveryRouteAndBothCsvsAgreeWithTheRecords()
    {
        await using var app = await StartAsync(configure: HousePrice);

        // Priced under an old price (0.5 a call), one unpriced model, and a closed month (October).
        await app.SeedAsync(
            TestApp.Record("u1", 0.5m, 1000, at: November),
            TestApp.Record("u1", 0.5m, 2000, endpoint: "/api/chat", at: November.AddHours(1)),
            TestApp.Record("u2", null, 4000, model: "house-model", at: November.AddHours(2)),
            TestApp.Record(null, 0.25m, 400, at: November.AddHours(3)),
            TestApp.Record("u2", 0.5m, 1000, at: October));
        var admin = app.Admin();
        var body = new { from = "2026-10-01", to = "2026-11-30", onlyUnpriced = false, dryRun = true };

        var dry = await PostAsync(admin, body);
        var applied = await PostAsync(admin, body with { dryRun = false });

        Assert.True(dry.GetProperty("dryRun").GetBoolean());
        Assert.Equal(JsonValueKind.Null, dry.GetProperty("id").ValueKind);
        Assert.Equal(4, applied.GetProperty("records").GetInt64());
        foreach (var name in (string[])["records", "oldCostUsd", "newCostUsd"])
        {
            Assert.Equal(dry.GetProperty(name).GetDecimal(), applied.GetProperty(name).GetDecimal());
        }

        Assert.Equal(dry.GetProperty("byModel").GetRawText(), applied.GetProperty("byModel").GetRawText());
        Assert.Equal(1.25m, applied.GetProperty("oldCostUsd").GetDecimal());

        // gpt-4o-mini 0.15 / 0.075 cached / 0.60 per million; house-model 1.00 / 2.00.
        static decimal Mini(long tokens) => ((((tokens * 3 / 4) - (tokens / 10)) * 0.15m) + ((tokens / 10) * 0.075m) + ((tokens - (tokens * 3 / 4)) * 0.60m)) / 1_000_000m;
        var house = (((4000 * 3 / 4) - (4000 / 10)) * 1.00m + ((4000 / 10) * 1.00m) + (1000 * 2.00m)) / 1_000_000m;
        Assert.Equal(Mini(1000) + Mini(2000) + Mini(400) + house, applied.GetProperty("newCostUsd").GetDecimal());
        var closed = Assert.Single(applied.GetProperty("closedMonths").EnumerateArray());
        Assert.Equal("2026-10", closed.GetProperty("month").GetString());
        Assert.Equal(Mini(1000) - 0.5m, closed.GetProperty("differenceUsd").GetDecimal());

        await AssertEveryRouteAgreesWithRecordsAsync(app);
        var october = await admin.GetFromJsonAsync<JsonElement>("/api/usage/statements?month=2026-10");
        Assert.Equal(0.5m, october.GetProperty("totalCostUsd").GetDecimal());

        // A second apply changes nothing; both applies are listed, newest first.
        app.Time.Advance(TimeSpan.FromMinutes(1));
        var again = await PostAsync(admin, body with { dryRun = false });
        Assert.Equal(0, again.GetProperty("records").GetInt64());
        var list = (await admin.GetFromJsonAsync<JsonElement>("/api/usage/repricings")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([again.GetProperty("id").GetString(), applied.GetProperty("id").GetString()], list.Select(i => i.GetProperty("id").GetString()));
        Assert.Equal("admin-1", list[1].GetProperty("by").GetString());
        Assert.Equal("2026-10-01", list[1].GetProperty("from").GetString());
        Assert.Equal(4, list[1].GetProperty("records").GetInt64());
        await AssertEveryRouteAgreesWithRecordsAsync(app);
    }

    [Theory]
    [InlineData("{\"from\":\"2026-11-30\",\"to\":\"2026-11-01\"}", "from")]
    [InlineData("{\"from\":\"1999-12-31\",\"to\":\"2026-11-01\"}", "from")]
    [InlineData("{\"from\":\"2026-11-01\",\"to\":\"2200-01-01\"}", "to")]
    [InlineData("{\"from\":\"2026-11-01\"}", "to")]
    [InlineData("{\"from\":\"2026-11-01\",\"to\":\"2026-11-30\",\"dryRun\":\"no\"}", "dryRun")]
    [InlineData("[1]", "body")]
    public async Task Reprice_BadBody_400NamingTheField(string json, string parameter)
    {
        await using var app = await StartAsync();

        using var response = await app.Admin().PostAsync("/api/usage/reprice", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(parameter, problem.GetProperty("parameter").GetString());
    }

    private static void HousePrice(WebApplicationBuilder builder) => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["TokenMeter:Pricing:Models:0:Model"] = "house-model",
        ["TokenMeter:Pricing:Models:0:InputPerMillion"] = "1.00",
        ["TokenMeter:Pricing:Models:0:OutputPerMillion"] = "2.00",
    });

    private static async Task<JsonElement> PostAsync(HttpClient admin, object body)
    {
        using var response = await admin.PostAsJsonAsync("/api/usage/reprice", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Stats, summaries, user detail, endpoints, daily, monthly, statements and both CSVs against a fresh sum over the records.</summary>
    private static async Task AssertEveryRouteAgreesWithRecordsAsync(TestApp app)
    {
        var records = new List<UsageRecord>();
        await foreach (var r in app.Queries.ExportAsync(new UsageExportQuery()))
        {
            records.Add(r);
        }

        static decimal Sum(IEnumerable<UsageRecord> rs) => rs.Sum(r => r.CostUsd ?? 0m);
        var admin = app.Admin();
        var total = Sum(records);

        Assert.Equal(total, (await admin.GetFromJsonAsync<JsonElement>("/api/usage/stats")).GetProperty("totalCostUsd").GetDecimal());
        var summary = (await admin.GetFromJsonAsync<JsonElement>("/api/usage/summary?limit=500")).GetProperty("items").EnumerateArray().ToList();
        foreach (var user in records.Where(r => r.UserId is not null).GroupBy(r => r.UserId!))
        {
            Assert.Equal(Sum(user), summary.Single(i => i.GetProperty("userId").GetString() == user.Key).GetProperty("totalCostUsd").GetDecimal());
            var detail = await admin.GetFromJsonAsync<JsonElement>("/api/usage/user/" + user.Key);
            Assert.Equal(Sum(user), detail.GetProperty("totalCostUsd").GetDecimal());

            // This month by cost source: each record under its source, after re-pricing too.
            var thisMonth = user.Where(r => r.CreatedAt.Year == TestApp.Now.Year && r.CreatedAt.Month == TestApp.Now.Month).ToList();
            Assert.Equal(
                thisMonth.GroupBy(r => r.CostSource).OrderBy(g => g.Key).Select(g => (CostSourceNames.Of(g.Key), g.LongCount(), Sum(g))),
                detail.GetProperty("thisMonthByCostSource").EnumerateArray().Select(i => (i.GetProperty("costSource").GetString()!, i.GetProperty("calls").GetInt64(), i.GetProperty("costUsd").GetDecimal())));
        }

        Assert.Equal(total, (await admin.GetFromJsonAsync<JsonElement>("/api/usage/endpoint")).GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("totalCostUsd").GetDecimal()));
        Assert.Equal(total, (await admin.GetFromJsonAsync<JsonElement>("/api/usage/daily?days=366")).GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("costUsd").GetDecimal()));
        Assert.Equal(total, (await admin.GetFromJsonAsync<JsonElement>("/api/usage/monthly?months=120")).GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("costUsd").GetDecimal()));
        var novemberUsers = Sum(records.Where(r => r.UserId is not null && r.CreatedAt.Month == 11));
        Assert.Equal(novemberUsers, (await admin.GetFromJsonAsync<JsonElement>("/api/usage/statements?month=2026-11")).GetProperty("totalCostUsd").GetDecimal());

        var detailed = Endpoints.ExportTestsBase.ReadCsv(await admin.GetStringAsync("/api/usage/export"), ["id"]);
        Assert.Equal(total, detailed.Sum(row => string.IsNullOrEmpty(row["costUsd"]) ? 0m : decimal.Parse(row["costUsd"], CultureInfo.InvariantCulture)));
        Assert.All(detailed, row => Assert.Contains(row["costSource"], (string[])["reported", "estimated", "unpriced"]));
        var byUser = Endpoints.ExportTestsBase.ReadCsv(await admin.GetStringAsync("/api/usage/export/summary"), ["userId"]);
        Assert.Equal(Sum(records.Where(r => r.UserId is not null)), byUser.Sum(row => decimal.Parse(row["totalCostUsd"], CultureInfo.InvariantCulture)));
    }
}

public sealed class RepricingEndpointTests : RepricingEndpointTestsBase;

public sealed class PostgresRepricingEndpointTests(PostgresDatabaseFixture database) : RepricingEndpointTestsBase, IClassFixture<PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}
