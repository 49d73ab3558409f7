using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.Playwright;

namespace HomeworkApi.Tests;

/// <summary>
/// The portal's trend chart at phone and laptop width in a real Chromium: round ticks whose labels
/// sit on their gridlines, never stretched; tiny costs with significant digits; the tab icon as SVG;
/// Budgets' Edit and Remove on screen at phone width. Screenshots land in TestResults/portal-chart/.
/// </summary>
public sealed class PortalChartBrowserTests(ChromiumFixture chromium) : IClassFixture<ChromiumFixture>
{
    private static readonly double[] Mantissas = [1, 2, 2.5, 5];

    [Theory]
    [InlineData(375)]
    [InlineData(1280)]
    public async Task Chart_RoundTicksOnTheirLines_NotStretched_TinyCostsReadable(int width)
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:RateLimits:RequestsPerMinute"] = "0" });
        var address = ChromiumFixture.StartOnLoopback(app);
        using var http = new HttpClient { BaseAddress = address };
        // Only an admin may name the charged user in the body (an anonymous body userId is refused).
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());
        string? studentId = null;
        for (var i = 0; i < 3; i++)
        {
            var name = $"chart{width}s{i}";
            var created = await http.PostAsJsonAsync("/api/auth/register", new { username = name, email = name + "@example.com", password = "Maple-river-stone-31" });
            studentId = (await created.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
            for (var c = 0; c <= i; c++)
            {
                Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/api/hint", new { problemText = $"What is {i} + {c}?", userId = studentId })).StatusCode);
            }
        }

        await app.WaitForRecordsAsync(_ => true, 6);
        var token = (await (await http.PostAsJsonAsync("/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword })).Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsJsonAsync($"/api/usage/budgets/{studentId}", new { monthlyCostUsd = 0.5m, monthlyTokens = 100000 })).StatusCode);
        var stats = (await http.GetFromJsonAsync<JsonObject>("/api/usage/stats"))!;

        await using var browserPage = await chromium.NewPageAsync(width, 900);
        var page = browserPage.Page;
        await page.GotoAsync(new Uri(address, "/admin").ToString());
        await page.FillAsync("#username", HomeworkApp.AdminUsername);
        await page.FillAsync("#password", HomeworkApp.AdminPassword);
        await page.ClickAsync("#sign-in-button");
        await Assertions.Expect(page.Locator("#chart svg rect.bar")).ToHaveCountAsync(30);

        // The tab icon is an inline SVG, not an emoji a machine without emoji fonts shows as a box.
        await Assertions.Expect(page.Locator("#tab-usage svg")).ToBeVisibleAsync();
        Assert.Equal("API Usage", (await page.Locator("#tab-usage").InnerTextAsync()).Trim());

        // Tiny costs keep two significant digits (the simulated model's calls cost fractions of a cent).
        var totalCost = stats["totalCostUsd"]!.GetValue<decimal>();
        Assert.True(totalCost is > 0m and < 0.01m, $"expected a total under a cent, got {totalCost}");
        await Assertions.Expect(page.Locator("#stat-cost")).ToHaveTextAsync(PortalMoney.Format(totalCost));
        Assert.Matches(@"^\$0\.0*[1-9]\d$", await page.Locator("#stat-cost").InnerTextAsync());

        var chart = JsonDocument.Parse(await page.EvaluateAsync<string>(ChartProbe)).RootElement;
        var artifacts = ChromiumFixture.Artifacts("portal-chart");
        await page.Locator("#chart").ScreenshotAsync(new() { Path = Path.Combine(artifacts, $"chart-{width}.png") });
        await page.ScreenshotAsync(new() { Path = Path.Combine(artifacts, $"usage-{width}.png"), FullPage = true });

        // Not stretched: drawn at the container's width, shown at the viewBox's aspect ratio.
        var viewBoxRatio = chart.GetProperty("viewBoxWidth").GetDouble() / chart.GetProperty("viewBoxHeight").GetDouble();
        var shownRatio = chart.GetProperty("shownWidth").GetDouble() / chart.GetProperty("shownHeight").GetDouble();
        Assert.InRange(shownRatio / viewBoxRatio, 0.99, 1.01);
        Assert.InRange(chart.GetProperty("shownWidth").GetDouble() / chart.GetProperty("viewBoxWidth").GetDouble(), 0.95, 1.05);
        Assert.False(chart.GetProperty("stretched").GetBoolean());

        var gridY = chart.GetProperty("grid").EnumerateArray().Select(g => g.GetDouble()).ToArray();
        foreach (var axis in new[] { "calls", "cost" })
        {
            var ticks = chart.GetProperty(axis).EnumerateArray().ToArray();
            Assert.Equal(gridY.Length, ticks.Length);
            Assert.InRange(ticks.Length, 4, 6);
            var values = ticks.Select(t => decimal.Parse(t.GetProperty("value").GetString()!, CultureInfo.InvariantCulture)).ToArray();
            var step = values[1] - values[0];
            Assert.True(IsRound(step), $"{axis} step {step} is not 1, 2, 2.5 or 5 times a power of ten");
            for (var i = 0; i < ticks.Length; i++)
            {
                Assert.Equal(step * i, values[i]);
                var label = ticks[i].GetProperty("text").GetString()!;
                Assert.Equal(axis == "calls" ? values[i].ToString("N0", CultureInfo.InvariantCulture) : "$" + ticks[i].GetProperty("value").GetString(), label);

                // The label's middle is on its gridline (within a pixel or two), and readable (not squashed).
                Assert.InRange(ticks[i].GetProperty("centerY").GetDouble() - gridY[i], -2.5, 2.5);
                Assert.InRange(ticks[i].GetProperty("heightPx").GetDouble(), 9, 20);
            }
        }

        var calls = chart.GetProperty("calls").EnumerateArray().Select(t => decimal.Parse(t.GetProperty("value").GetString()!, CultureInfo.InvariantCulture)).ToArray();
        Assert.True(calls[^1] >= chart.GetProperty("maxCalls").GetDecimal(), "the calls axis reaches the highest bar");
        Assert.Empty(browserPage.ConsoleErrors);

        if (width == 375)
        {
            // Budgets at phone width: Edit and Remove are on screen without scrolling the table sideways.
            await page.ClickAsync("#tab-budgets");
            var row = page.Locator("#user-budgets-table tbody tr").First;
            await Assertions.Expect(row.Locator("button.remove-budget")).ToBeVisibleAsync();
            await page.ScreenshotAsync(new() { Path = Path.Combine(artifacts, "budgets-375.png"), FullPage = true });
            foreach (var button in new[] { row.Locator("button").First, row.Locator("button.remove-budget") })
            {
                var box = (await button.BoundingBoxAsync())!;
                Assert.InRange(box.X, 0, width);
                Assert.InRange(box.X + box.Width, 0, width);
            }
        }
    }

    private static bool IsRound(decimal step)
    {
        if (step <= 0)
        {
            return false;
        }

        var exp = Math.Pow(10, Math.Floor(Math.Log10((double)step)));
        return Mantissas.Any(m => Math.Abs(((double)step / exp) - m) < 1e-9) || Math.Abs(((double)step / exp) - 10) < 1e-9;
    }

    /// <summary>Reads the chart's geometry in the page: viewBox, shown size, gridlines, ticks and their label boxes.</summary>
    private const string ChartProbe = """
        () => {
          const svg = document.querySelector('#chart svg');
          const vb = svg.viewBox.baseVal;
          const shown = svg.getBoundingClientRect();
          const tick = (t) => {
            const b = t.getBBox();
            return { value: t.getAttribute('data-value'), text: t.textContent, centerY: b.y + b.height / 2, heightPx: t.getBoundingClientRect().height };
          };
          return JSON.stringify({
            viewBoxWidth: vb.width, viewBoxHeight: vb.height, shownWidth: shown.width, shownHeight: shown.height,
            stretched: svg.getAttribute('preserveAspectRatio') === 'none',
            grid: [...svg.querySelectorAll('line.grid')].map((l) => Number(l.getAttribute('y1'))),
            calls: [...svg.querySelectorAll('text.tick-calls')].map(tick),
            cost: [...svg.querySelectorAll('text.tick-cost')].map(tick),
            maxCalls: Math.max(...[...svg.querySelectorAll('rect.bar')].map((r) => Number(r.getAttribute('data-calls')))),
          });
        }
        """;
}

/// <summary>How the portal shows money: four decimals, or two significant digits under a cent.</summary>
internal static class PortalMoney
{
    public static string Format(decimal value)
    {
        if (value == 0m || Math.Abs(value) >= 0.01m)
        {
            return (value < 0 ? "-$" : "$") + Math.Abs(value).ToString("N4", CultureInfo.InvariantCulture);
        }

        var decimals = 1 - (int)Math.Floor(Math.Log10((double)Math.Abs(value)));
        return (value < 0 ? "-$" : "$") + Math.Abs(value).ToString("N" + decimals, CultureInfo.InvariantCulture);
    }

    public static string Format(JsonNode value) => Format(value.GetValue<decimal>());
}
