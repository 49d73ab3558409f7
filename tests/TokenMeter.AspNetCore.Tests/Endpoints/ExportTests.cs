using System.Globalization;
using System.Net;
using System.Text.Json;
using CsvHelper;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.AspNetCore.Tests.Hosting;

namespace TokenMeter.AspNetCore.Tests.Endpoints;

public abstract class ExportTestsBase : StoreTestBase
{
    private static readonly string[] DetailedColumns =
        ["id", "createdAt", "userId", "username", "email", "endpoint", "model", "inputTokens", "cachedInputTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens", "totalTokens", "costUsd", "status", "sessionId", "problemId", "metadata"];

    private static readonly string[] SummaryColumns =
        ["userId", "username", "email", "totalCalls", "inputTokens", "outputTokens", "totalTokens", "totalCostUsd", "lastCallAt"];

    [Fact]
    public async Task Detailed_HeadersCountsAndSumsAgreeWithJson()
    {
        await using var app = await StartAsync(configure: b => b.Services.AddSingleton<IUserDirectory>(new RecordingDirectory()));
        var records = Enumerable.Range(0, 1234)
            .Select(i => TestApp.Record((i % 7).ToString(CultureInfo.InvariantCulture), 0.000123456m * (i + 1), 10 + i, at: TestApp.Now.AddMinutes(-i)))
            .Append(TestApp.Record(null, 0.5m, 5))
            .ToArray();
        await app.SeedAsync(records);

        using var response = await app.Admin().GetAsync("/api/usage/export");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("usage_detailed_2026-11-25.csv", response.Content.Headers.ContentDisposition?.FileName);
        Assert.Equal("attachment", response.Content.Headers.ContentDisposition?.DispositionType);

        var rows = ReadCsv(await response.Content.ReadAsStringAsync(), DetailedColumns);
        Assert.Equal(1235, rows.Count);
        using var stats = await UsageApiTestsBase.GetJsonAsync(app, "/api/usage/stats");
        Assert.Equal(stats.RootElement.GetProperty("totalCalls").GetInt64(), rows.Count);
        Assert.Equal(stats.RootElement.GetProperty("totalTokens").GetInt64(), rows.Sum(r => long.Parse(r["totalTokens"], CultureInfo.InvariantCulture)));
        Assert.Equal(stats.RootElement.GetProperty("totalCostUsd").GetDecimal(), rows.Sum(r => decimal.Parse(r["costUsd"], CultureInfo.InvariantCulture)));
        Assert.Equal(rows.Count, rows.Select(r => r["id"]).Distinct().Count());
        var row = rows.First(r => r["userId"] == "3");
        Assert.Equal("user3", row["username"]);
        Assert.Equal("user3@example.com", row["email"]);
        Assert.Equal("ok", row["status"]);
        Assert.True(DateTimeOffset.TryParse(row["createdAt"], CultureInfo.InvariantCulture, DateTimeStyles.None, out _));
    }

    [Fact]
    public async Task Detailed_FiltersByInclusiveRangeAndUser()
    {
        await using var app = await StartAsync();
        await app.SeedAsync(
            TestApp.Record("1", 1m, at: new DateTimeOffset(2026, 11, 10, 0, 0, 0, TimeSpan.Zero)),
            TestApp.Record("1", 1m, at: new DateTimeOffset(2026, 11, 12, 23, 59, 59, TimeSpan.Zero)),
            TestApp.Record("2", 1m, at: new DateTimeOffset(2026, 11, 11, 12, 0, 0, TimeSpan.Zero)),
            TestApp.Record("1", 1m, at: new DateTimeOffset(2026, 11, 13, 0, 0, 0, TimeSpan.Zero)),
            TestApp.Record("1", 1m, at: new DateTimeOffset(2026, 11, 9, 23, 59, 59, TimeSpan.Zero)));

        using var all = await app.Admin().GetAsync("/api/usage/export?from=2026-11-10&to=2026-11-12");
        Assert.Equal(3, ReadCsv(await all.Content.ReadAsStringAsync(), DetailedColumns).Count);
        using var one = await app.Admin().GetAsync("/api/usage/export?from=2026-11-10&to=2026-11-12&userId=1");
        var rows = ReadCsv(await one.Content.ReadAsStringAsync(), DetailedColumns);
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal("1", r["userId"]));
    }

    [Fact]
    public async Task Detailed_FormulaLookingTextIsNeutralized_NumbersAreNot()
    {
        await using var app = await StartAsync();
        var evil = TestApp.Record("=HYPERLINK(\"http://x\")", -0.5m, 10, endpoint: "+cmd|' /C calc'!A0", model: "-2+3",
            sessionId: "@SUM(A1:A2)", problemId: "\tTAB", tags: new Dictionary<string, string> { ["k"] = "v" });
        await app.SeedAsync(evil, TestApp.Record("\rCR", 0.25m, 10, endpoint: "normal, with \"quotes\""));

        using var response = await app.Admin().GetAsync("/api/usage/export");
        var text = await response.Content.ReadAsStringAsync();
        var rows = ReadCsv(text, DetailedColumns);
        var row = rows.Single(r => r["userId"].Contains("HYPERLINK", StringComparison.Ordinal));
        Assert.Equal("'=HYPERLINK(\"http://x\")", row["userId"]);
        Assert.Equal("'+cmd|' /C calc'!A0", row["endpoint"]);
        Assert.Equal("'-2+3", row["model"]);
        Assert.Equal("'@SUM(A1:A2)", row["sessionId"]);
        Assert.Equal("'\tTAB", row["problemId"]);
        Assert.Equal("-0.5", row["costUsd"]);
        Assert.Equal("{\"k\":\"v\"}", row["metadata"]);
        var other = rows.Single(r => r["costUsd"] == "0.25");
        Assert.Equal("'\rCR", other["userId"]);
        Assert.Equal("normal, with \"quotes\"", other["endpoint"]);
        foreach (var line in text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            Assert.False(line.StartsWith('='), line);
        }
    }

    [Fact]
    public async Task Summary_HeadersAndSumsAgreeWithJson()
    {
        await using var app = await StartAsync();
        var records = Enumerable.Range(0, 1100)
            .Select(i => TestApp.Record($"u{i:D4}", 0.01m + (i % 3), 100 + i))
            .ToArray();
        await app.SeedAsync(records);

        using var response = await app.Admin().GetAsync("/api/usage/export/summary");
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("usage_summary_2026-11-25.csv", response.Content.Headers.ContentDisposition?.FileName);
        var rows = ReadCsv(await response.Content.ReadAsStringAsync(), SummaryColumns);
        Assert.Equal(1100, rows.Count);
        Assert.Equal(1100, rows.Select(r => r["userId"]).Distinct().Count());

        using var page = await UsageApiTestsBase.GetJsonAsync(app, "/api/usage/summary?limit=1");
        Assert.Equal(page.RootElement.GetProperty("total").GetInt64(), rows.Count);
        using var stats = await UsageApiTestsBase.GetJsonAsync(app, "/api/usage/stats");
        Assert.Equal(stats.RootElement.GetProperty("totalCostUsd").GetDecimal(), rows.Sum(r => decimal.Parse(r["totalCostUsd"], CultureInfo.InvariantCulture)));
        Assert.Equal(stats.RootElement.GetProperty("totalTokens").GetInt64(), rows.Sum(r => long.Parse(r["totalTokens"], CultureInfo.InvariantCulture)));
    }

    internal static List<Dictionary<string, string>> ReadCsv(string text, string[] requiredColumns)
    {
        using var reader = CsvReader.FromText(text);
        var rows = new List<Dictionary<string, string>>();
        reader.ReadHeader();
        var headers = reader.Headers.ToArray();
        foreach (var column in requiredColumns)
        {
            Assert.Contains(column, headers);
        }

        Assert.Equal(requiredColumns, headers.Take(requiredColumns.Length));
        while (reader.Read())
        {
            var row = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < headers.Length; i++)
            {
                row[headers[i]] = reader.GetString(i);
            }

            rows.Add(row);
        }

        return rows;
    }
}

public sealed class ExportTests : ExportTestsBase;
