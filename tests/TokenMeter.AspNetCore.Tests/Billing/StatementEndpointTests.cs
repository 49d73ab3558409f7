using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using CsvHelper;
using Microsoft.Extensions.Configuration;
using TokenMeter.AspNetCore.Tests.Hosting;

namespace TokenMeter.AspNetCore.Tests.Billing;

public sealed class StatementEndpointTests
{
    private static readonly DateTimeOffset InOctober = new(2026, 10, 14, 9, 0, 0, TimeSpan.Zero);

    private static async Task<TestApp> StartWithOctoberAsync(decimal markupPercent)
    {
        var app = await TestApp.StartAsync(configure: b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Billing:MarkupPercent"] = markupPercent.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }));
        await app.SeedAsync(
            TestApp.Record("u1", 0.0125m, 1000, "/api/analyze", "gpt-4o", InOctober),
            TestApp.Record("u1", 0.0025m, 1000, "/api/analyze", "gpt-4o", InOctober.AddDays(3)),
            TestApp.Record("u1", 0.00375m, 400, "/api/hint", "gpt-4o-mini", InOctober),
            TestApp.Record("u2", 1.234567m, 200, "=HYPERLINK(\"x\")", "gpt-4o-mini", InOctober),
            TestApp.Record("u2", null, 200, "/api/chat", "unknown-model", InOctober), // unpriced: counts as zero
            TestApp.Record("u1", 9m, 100, "/api/hint", "gpt-4o-mini", InOctober.AddMonths(1))); // November: not in October's statement
        return app;
    }

    [Fact]
    public async Task Statements_SumToTheMonthlyApi_WithMarkupRoundedHalfToEven()
    {
        await using var app = await StartWithOctoberAsync(20m);

        var body = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/statements?month=2026-10");

        Assert.Equal("2026-10", body.GetProperty("month").GetString());
        Assert.Equal("USD", body.GetProperty("currency").GetString());
        Assert.Equal(20m, body.GetProperty("markupPercent").GetDecimal());
        var items = body.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(["u1", "u2"], items.Select(i => i.GetProperty("userId").GetString()));

        var u1 = items[0];
        var lines = u1.GetProperty("lines").EnumerateArray().ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal("/api/analyze", lines[0].GetProperty("endpoint").GetString());
        Assert.Equal("gpt-4o", lines[0].GetProperty("model").GetString());
        Assert.Equal(2, lines[0].GetProperty("calls").GetInt64());
        Assert.Equal(1500, lines[0].GetProperty("inputTokens").GetInt64());
        Assert.Equal(200, lines[0].GetProperty("cachedInputTokens").GetInt64());
        Assert.Equal(500, lines[0].GetProperty("outputTokens").GetInt64());
        Assert.Equal(0.015m, lines[0].GetProperty("costUsd").GetDecimal());
        Assert.Equal(0.01875m, u1.GetProperty("costUsd").GetDecimal());
        Assert.Equal(0.02m, u1.GetProperty("amountUsd").GetDecimal()); // 0.0225 to the even cent
        Assert.Equal(1.234567m, items[1].GetProperty("costUsd").GetDecimal());
        Assert.Equal(1.48m, items[1].GetProperty("amountUsd").GetDecimal()); // 1.4814804

        // The statements' cost is the month's cost in the monthly API (no anonymous calls here).
        var monthly = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/monthly?months=3");
        var october = monthly.GetProperty("items").EnumerateArray().Single(m => m.GetProperty("month").GetString() == "2026-10");
        Assert.Equal(october.GetProperty("costUsd").GetDecimal(), body.GetProperty("totalCostUsd").GetDecimal());
        Assert.Equal(october.GetProperty("calls").GetInt64(), items.Sum(i => i.GetProperty("lines").EnumerateArray().Sum(l => l.GetProperty("calls").GetInt64())));
        Assert.Equal(1.50m, body.GetProperty("totalAmountUsd").GetDecimal());
    }

    [Fact]
    public async Task Statements_NoMonth_IsThisMonth_AndEmptyMonthIsEmpty()
    {
        await using var app = await StartWithOctoberAsync(0m);

        var current = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/statements");
        Assert.Equal("2026-11", current.GetProperty("month").GetString());
        Assert.Equal(9m, current.GetProperty("totalAmountUsd").GetDecimal());

        var empty = await app.Admin().GetFromJsonAsync<JsonElement>("/api/usage/statements?month=2025-01");
        Assert.Empty(empty.GetProperty("items").EnumerateArray());
        Assert.Equal(0m, empty.GetProperty("totalCostUsd").GetDecimal());
    }

    [Theory]
    [InlineData("/api/usage/statements?month=2026-13")]
    [InlineData("/api/usage/statements?month=2026-1")]
    [InlineData("/api/usage/statements?month=2026-10-01")]
    [InlineData("/api/usage/statements?month=october")]
    [InlineData("/api/usage/statements?month=2026-10&month=2026-11")]
    [InlineData("/api/usage/statements/export?month=26-10")]
    public async Task Statements_BadMonth_400ProblemDetails(string path)
    {
        await using var app = await TestApp.StartAsync();

        using var response = await app.Admin().GetAsync(path);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("month", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Export_OneRowPerLineItem_FilenameAndFormulaEscaping()
    {
        await using var app = await StartWithOctoberAsync(20m);

        using var response = await app.Admin().GetAsync("/api/usage/statements/export?month=2026-10");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("usage_statement_2026-10.csv", response.Content.Headers.ContentDisposition?.FileName);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"'=HYPERLINK(\"\"x\"\")\"", text, StringComparison.Ordinal);

        string[] columns =
        [
            "month", "userId", "username", "email", "endpoint", "model", "calls", "inputTokens", "cachedInputTokens", "cacheWriteTokens",
            "outputTokens", "totalTokens", "costUsd", "userCostUsd", "userAmountUsd", "markupPercent", "currency",
        ];
        var rows = TokenMeter.AspNetCore.Tests.Endpoints.ExportTestsBase.ReadCsv(text, columns);
        Assert.Equal(4, rows.Count); // u1's two lines and u2's two lines
        Assert.Equal(1.234567m, rows.Where(r => r["userId"] == "u2").Sum(r => decimal.Parse(r["costUsd"], System.Globalization.CultureInfo.InvariantCulture)));
        var analyze = rows.Single(r => r["endpoint"] == "/api/analyze");
        Assert.Equal("2026-10", analyze["month"]);
        Assert.Equal("u1", analyze["userId"]);
        Assert.Equal("2", analyze["calls"]);
        Assert.Equal(0.015m, decimal.Parse(analyze["costUsd"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0.01875m, decimal.Parse(analyze["userCostUsd"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0.02m, decimal.Parse(analyze["userAmountUsd"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("20", analyze["markupPercent"]);
        Assert.Equal("USD", analyze["currency"]);
    }
}
