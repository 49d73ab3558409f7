using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace HomeworkApi.Tests;

/// <summary>
/// CONTRACT §8 and §9: the admin portal in a real Chromium (Debian's, never a downloaded one, one for
/// the class) against the app listening on a real loopback port.
/// </summary>
public sealed class PortalBrowserTests(ChromiumFixture chromium, ITestOutputHelper output) : IClassFixture<ChromiumFixture>
{
    private const int Students = 12;

    [Fact]
    public async Task Portal_SignIn_UsageCardsTablesPagingAndCsvDownloads_WithoutConsoleErrors()
    {
        await using var app = new HomeworkApp(NoRequestRateLimit);
        var address = ChromiumFixture.StartOnLoopback(app);
        using var http = new HttpClient { BaseAddress = address };
        using var asAdmin = new HttpClient { BaseAddress = address };
        asAdmin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());

        // Twelve students with usage (two pages of ten in the portal; the admin charges each in turn), one anonymous call.
        for (var i = 0; i < Students; i++)
        {
            var name = $"student{i:00}";
            var created = await http.PostAsJsonAsync("/api/auth/register", new { username = name, email = name + "@example.com", password = "Maple-river-stone-31" });
            var id = (await created.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
            var route = (i % 3) switch { 0 => "/api/hint", 1 => "/api/verify", _ => "/api/analyze" };
            var reply = await asAdmin.PostAsJsonAsync(route, new { problemText = $"What is {i} + {i}?", answer = $"{2 * i}", userId = id });
            Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/api/chat", new { messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
        await app.WaitForRecordsAsync(_ => true, Students + 1);

        var token = (await (await http.PostAsJsonAsync("/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword })).Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var stats = (await http.GetFromJsonAsync<JsonObject>("/api/usage/stats"))!;
        var endpoints = (await http.GetFromJsonAsync<JsonObject>("/api/usage/endpoint"))!["items"]!.AsArray();

        var artifacts = ChromiumFixture.Artifacts("portal");
        await using var browserPage = await chromium.NewPageAsync();
        var page = browserPage.Page;

        var document = await page.GotoAsync(new Uri(address, "/admin").ToString());
        await Assertions.Expect(page.Locator("#simulated-banner")).ToBeVisibleAsync();
        await page.FillAsync("#username", HomeworkApp.AdminUsername);
        await page.FillAsync("#password", HomeworkApp.AdminPassword);
        await page.ClickAsync("#sign-in-button");

        // The API Usage tab opens with the API's numbers, formatted for people.
        await Assertions.Expect(page.Locator("#tab-usage")).ToHaveAttributeAsync("aria-selected", "true");
        await Assertions.Expect(page.Locator("#stat-calls")).ToHaveTextAsync(Int(stats["totalCalls"]!));
        await Assertions.Expect(page.Locator("#stat-calls-today")).ToHaveTextAsync(Int(stats["today"]!["calls"]!));
        await Assertions.Expect(page.Locator("#stat-tokens")).ToHaveTextAsync(Int(stats["totalTokens"]!));
        await Assertions.Expect(page.Locator("#stat-tokens-today")).ToHaveTextAsync(Int(stats["today"]!["tokens"]!));
        await Assertions.Expect(page.Locator("#stat-cost")).ToHaveTextAsync(Money(stats["totalCostUsd"]!));
        await Assertions.Expect(page.Locator("#stat-cost-today")).ToHaveTextAsync(Money(stats["today"]!["costUsd"]!));
        await Assertions.Expect(page.Locator("#stat-users")).ToHaveTextAsync(Int(stats["activeUsers"]!));
        await Assertions.Expect(page.Locator("#stat-users-month")).ToHaveTextAsync(Int(stats["thisMonth"]!["activeUsers"]!));
        Assert.Contains(",", await page.Locator("#stat-tokens").TextContentAsync(), StringComparison.Ordinal);

        // The endpoint table shows each endpoint's row as the API does.
        await Assertions.Expect(page.Locator("#endpoint-table tbody tr")).ToHaveCountAsync(endpoints.Count);
        var firstEndpoint = endpoints[0]!;
        var firstRow = page.Locator("#endpoint-table tbody tr").First;
        await Assertions.Expect(firstRow.Locator("td").Nth(0)).ToHaveTextAsync(firstEndpoint["endpoint"]!.GetValue<string>());
        await Assertions.Expect(firstRow.Locator("td").Nth(2)).ToHaveTextAsync(Int(firstEndpoint["calls"]!));
        await Assertions.Expect(firstRow.Locator("td").Nth(5)).ToHaveTextAsync(Money(firstEndpoint["totalCostUsd"]!));

        // The chart is drawn: one bar per day.
        await Assertions.Expect(page.Locator("#chart svg rect.bar")).ToHaveCountAsync(30);
        await page.ClickAsync("#days-90");
        await Assertions.Expect(page.Locator("#chart svg rect.bar")).ToHaveCountAsync(90);

        // The user table pages: ten, then the other two.
        await Assertions.Expect(page.Locator("#user-usage-table tbody tr")).ToHaveCountAsync(10);
        await Assertions.Expect(page.Locator("#user-usage-page")).ToContainTextAsync("Page 1 of 2");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "api-usage-laptop.png"), FullPage = true });
        await page.ClickAsync("#user-usage-next");
        await Assertions.Expect(page.Locator("#user-usage-page")).ToContainTextAsync("Page 2 of 2");
        await Assertions.Expect(page.Locator("#user-usage-table tbody tr")).ToHaveCountAsync(Students - 10);
        await Assertions.Expect(page.Locator("#user-usage-next")).ToBeDisabledAsync();

        // Both CSV exports download with the contract's file names and the API's rows.
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var detailed = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#export-detailed"));
        Assert.Equal($"usage_detailed_{today}.csv", detailed.SuggestedFilename);
        var detailedPath = Path.Combine(artifacts, detailed.SuggestedFilename);
        await detailed.SaveAsAsync(detailedPath);
        var detailedLines = (await File.ReadAllLinesAsync(detailedPath)).Where(l => l.Length > 0).ToList();
        Assert.StartsWith("id,createdAt,userId,username,email,endpoint,model", detailedLines[0].TrimStart('\uFEFF'), StringComparison.Ordinal);
        Assert.Equal(Students + 1 + 1, detailedLines.Count);

        var summary = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#export-summary"));
        Assert.Equal($"usage_summary_{today}.csv", summary.SuggestedFilename);
        var summaryPath = Path.Combine(artifacts, summary.SuggestedFilename);
        await summary.SaveAsAsync(summaryPath);
        var summaryLines = (await File.ReadAllLinesAsync(summaryPath)).Where(l => l.Length > 0).ToList();
        Assert.Contains("userId,username,email,totalCalls", summaryLines[0], StringComparison.Ordinal);
        Assert.Equal(Students + 1, summaryLines.Count);

        // A refresh after more usage shows the new numbers.
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/api/hint", new { problemText = "1 + 1" })).StatusCode);
        await app.WaitForRecordsAsync(_ => true, Students + 2);
        await page.ClickAsync("#refresh");
        await Assertions.Expect(page.Locator("#stat-calls")).ToHaveTextAsync(Int(JsonValue.Create(stats["totalCalls"]!.GetValue<long>() + 1)));

        // The Users tab lists the accounts.
        await page.ClickAsync("#tab-users");
        await Assertions.Expect(page.Locator("#accounts-table tbody tr")).ToHaveCountAsync(Students + 1);

        // Phone width: still readable, nothing wider than the screen but the scrollable tables.
        await page.ClickAsync("#tab-usage");
        await page.SetViewportSizeAsync(390, 844);
        await Assertions.Expect(page.Locator("#stat-calls")).ToBeVisibleAsync();
        Assert.False(await ChromiumFixture.OverflowsAsync(page), "The page scrolls sideways at phone width.");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "api-usage-phone.png"), FullPage = true });

        output.WriteLine("Screenshots and downloads: " + artifacts);
        Assert.Empty(browserPage.ConsoleErrors);
        await ChromiumFixture.AssertCspInForceAsync(page, document);
    }

    [Fact]
    public async Task Portal_BudgetsTab_SetsAndLiftsLimits_ShowsNearestWithProgressBars_AndForecastCardEqualsApi()
    {
        await using var app = new HomeworkApp(NoRequestRateLimit);
        var address = ChromiumFixture.StartOnLoopback(app);
        using var http = new HttpClient { BaseAddress = address };

        // Three students: ada with two calls, the others with one each (the admin names each in the body's userId).
        using var asAdmin = new HttpClient { BaseAddress = address };
        asAdmin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());
        var ids = new Dictionary<string, string>();
        foreach (var (name, calls) in new[] { ("ada", 2), ("ben", 1), ("cleo", 1) })
        {
            var created = await http.PostAsJsonAsync("/api/auth/register", new { username = name, email = name + "@example.com", password = "Maple-river-stone-31" });
            ids[name] = (await created.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
            for (var i = 0; i < calls; i++)
            {
                var reply = await asAdmin.PostAsJsonAsync("/api/hint", new { problemText = $"What is {i} + {name.Length}?", userId = ids[name] });
                Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
            }
        }

        await app.WaitForRecordsAsync(_ => true, 4);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());
        var adaMonthCost = (await http.GetFromJsonAsync<JsonObject>("/api/usage/user/" + ids["ada"]))!["thisMonth"]!["costUsd"]!.GetValue<decimal>();
        Assert.True(adaMonthCost > 0);
        var monthCost = (await http.GetFromJsonAsync<JsonObject>("/api/usage/stats"))!["thisMonth"]!["costUsd"]!.GetValue<decimal>();

        var artifacts = ChromiumFixture.Artifacts("portal");
        await using var browserPage = await chromium.NewPageAsync();
        var page = browserPage.Page;
        var document = await page.GotoAsync(new Uri(address, "/admin").ToString());
        await page.FillAsync("#username", HomeworkApp.AdminUsername);
        await page.FillAsync("#password", HomeworkApp.AdminPassword);

        // The forecast card shows exactly what /api/usage/forecast answered the page (the projection
        // moves with the clock, so the page's own answer is the reference), and its month to date is the month's cost.
        var forecastResponse = await page.RunAndWaitForResponseAsync(
            () => page.ClickAsync("#sign-in-button"),
            r => new Uri(r.Url).AbsolutePath == "/api/usage/forecast");
        Assert.Equal(200, forecastResponse.Status);
        var forecast = JsonNode.Parse(await forecastResponse.TextAsync())!.AsObject();
        Assert.Equal(monthCost, forecast["monthToDateCostUsd"]!.GetValue<decimal>());
        await Assertions.Expect(page.Locator("#forecast-projected")).ToHaveTextAsync(Money(forecast["projectedMonthCostUsd"]!));
        await Assertions.Expect(page.Locator("#forecast-low")).ToHaveTextAsync(Money(forecast["projectedLowUsd"]!));
        await Assertions.Expect(page.Locator("#forecast-high")).ToHaveTextAsync(Money(forecast["projectedHighUsd"]!));
        await Assertions.Expect(page.Locator("#forecast-mtd")).ToHaveTextAsync(Money(forecast["monthToDateCostUsd"]!));
        await Assertions.Expect(page.Locator("#forecast-month")).ToHaveTextAsync(forecast["month"]!.GetValue<string>());
        await Assertions.Expect(page.Locator("#forecast-method")).ToHaveTextAsync("Method: " + forecast["method"]!.GetValue<string>());

        await page.ClickAsync("#tab-budgets");
        await Assertions.Expect(page.Locator("#default-budget-current")).ToHaveTextAsync("Now: no limit");
        await Assertions.Expect(page.Locator("#nearest-table tbody td.empty")).ToBeVisibleAsync();

        // A negative cost is refused in the page: nothing is sent.
        await page.FillAsync("#default-cost", "-5");
        await page.ClickAsync("#default-save");
        await Assertions.Expect(page.Locator("#default-budget-message")).ToContainTextAsync("no minus sign");
        await Assertions.Expect(page.Locator("#default-cost")).ToHaveAttributeAsync("aria-invalid", "true");
        Assert.Null((await Budgets(http))["default"]);

        // Set the default, then ada's own limit at twice her month's spend: she is at 50%.
        await page.FillAsync("#default-cost", "1.5");
        await page.FillAsync("#default-tokens", "");
        await page.ClickAsync("#default-save");
        await Assertions.Expect(page.Locator("#default-budget-message")).ToHaveTextAsync("Saved: the default is now $1.50 a month.");
        var budgets = await Budgets(http);
        Assert.Equal(1.5m, budgets["default"]!["monthlyCostUsd"]!.GetValue<decimal>());
        Assert.Null(budgets["default"]!["monthlyTokens"]);

        var adaLimit = 2 * adaMonthCost;
        await page.FillAsync("#budget-user", ids["ada"]);
        await page.FillAsync("#budget-cost", adaLimit.ToString(CultureInfo.InvariantCulture));
        await page.FillAsync("#budget-tokens", "100000");
        await page.ClickAsync("#budget-save");
        await Assertions.Expect(page.Locator("#user-budget-message")).ToContainTextAsync($"Saved: user {ids["ada"]} now has");
        var own = Assert.Single((await Budgets(http))["users"]!.AsArray());
        Assert.Equal(ids["ada"], own!["userId"]!.GetValue<string>());
        Assert.Equal(adaLimit, own["monthlyCostUsd"]!.GetValue<decimal>());
        Assert.Equal(100000, own["monthlyTokens"]!.GetValue<long>());

        var overrideRow = page.Locator("#user-budgets-table tbody tr");
        await Assertions.Expect(overrideRow).ToHaveCountAsync(1);
        await Assertions.Expect(overrideRow.Locator("td").Nth(1)).ToHaveTextAsync("ada");
        await Assertions.Expect(overrideRow.Locator("td").Nth(2)).ToHaveTextAsync(Limit(adaLimit));

        // Nearest their limit: all three have one (ada her own, the others the default), ada first at 50%.
        var nearest = page.Locator("#nearest-table tbody tr");
        await Assertions.Expect(nearest).ToHaveCountAsync(3);
        await Assertions.Expect(page.Locator("#nearest-table [role=progressbar]")).ToHaveCountAsync(3);
        await Assertions.Expect(nearest.First.Locator("td").First).ToHaveTextAsync($"ada ({ids["ada"]})");
        await Assertions.Expect(nearest.First.Locator("[role=progressbar]")).ToHaveAttributeAsync("aria-valuenow", "50");
        await Assertions.Expect(nearest.First.Locator(".used-label")).ToHaveTextAsync($"50% of {Limit(adaLimit)} and 100,000 tokens a month");
        await Assertions.Expect(nearest.First.Locator("td").Nth(2)).ToHaveTextAsync(Money(JsonValue.Create(adaMonthCost)));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "budgets-laptop.png"), FullPage = true });

        // Errors come back as the API's problem detail: a cost beyond what the API can hold, an unknown user.
        await page.FillAsync("#budget-user", ids["ben"]);
        await page.FillAsync("#budget-cost", "1" + new string('0', 30));
        await page.FillAsync("#budget-tokens", "");
        await page.ClickAsync("#budget-save");
        await Assertions.Expect(page.Locator("#user-budget-message")).ToHaveTextAsync("Not saved: 'monthlyCostUsd' must be a non-negative number or null.");
        await page.FillAsync("#budget-user", "no-such-user");
        await page.FillAsync("#budget-cost", "1");
        await page.ClickAsync("#budget-save");
        await Assertions.Expect(page.Locator("#user-budget-message")).ToHaveTextAsync("Not saved: no account or usage has the user id 'no-such-user'.");
        Assert.Single((await Budgets(http))["users"]!.AsArray());
        browserPage.ForgetExpectedHttpErrors(400, 404);

        // Phone width: the tab stays readable and does not scroll sideways.
        await page.SetViewportSizeAsync(375, 812);
        await Assertions.Expect(page.Locator("#nearest-table")).ToBeVisibleAsync();
        Assert.False(await ChromiumFixture.OverflowsAsync(page), "The Budgets tab scrolls sideways at phone width.");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "budgets-phone.png"), FullPage = true });
        await page.SetViewportSizeAsync(1366, 900);

        // Lifting: remove ada's own limit (the default applies to her again), then the default.
        await overrideRow.Locator("button.remove-budget").ClickAsync();
        await Assertions.Expect(page.Locator("#user-budget-message")).ToHaveTextAsync($"Removed: the default applies to user {ids["ada"]} again.");
        Assert.Empty((await Budgets(http))["users"]!.AsArray());
        await Assertions.Expect(page.Locator("#user-budgets-table tbody td.empty")).ToBeVisibleAsync();

        await page.ClickAsync("#default-lift");
        await Assertions.Expect(page.Locator("#default-budget-message")).ToHaveTextAsync("Saved: no default limit.");
        Assert.Null((await Budgets(http))["default"]);
        await Assertions.Expect(page.Locator("#default-budget-current")).ToHaveTextAsync("Now: no limit");
        await Assertions.Expect(page.Locator("#nearest-table tbody td.empty")).ToBeVisibleAsync();

        output.WriteLine("Screenshots: " + artifacts);
        Assert.Empty(browserPage.ConsoleErrors);
        await ChromiumFixture.AssertCspInForceAsync(page, document);
    }

    /// <summary>Lets a test make more homework calls than the per-user requests-per-minute limit allows.</summary>
    [Fact]
    public async Task Portal_UsersTab_ChangesARole_AndDeletesAnAccount_UnderTheCsp()
    {
        await using var app = new HomeworkApp(NoRequestRateLimit);
        var address = ChromiumFixture.StartOnLoopback(app);
        var (keptId, _) = await app.RegisterAsync("keeper");
        var (goneId, goneToken) = await app.RegisterAsync("leaver");
        using var http = new HttpClient { BaseAddress = address };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());

        await using var browserPage = await chromium.NewPageAsync();
        var page = browserPage.Page;
        var document = await page.GotoAsync(new Uri(address, "/admin").ToString());
        await page.FillAsync("#username", HomeworkApp.AdminUsername);
        await page.FillAsync("#password", HomeworkApp.AdminPassword);
        await page.ClickAsync("#sign-in-button");
        await page.ClickAsync("#tab-users");
        await Assertions.Expect(page.Locator("#accounts-table tbody tr")).ToHaveCountAsync(3);

        // Promote "keeper": the role select applies at once.
        await page.SelectOptionAsync("#role-" + keptId, "admin");
        await Assertions.Expect(page.Locator("#account-message")).ToContainTextAsync("keeper is now an admin");
        var kept = (await http.GetFromJsonAsync<JsonObject>("/api/users?search=keeper"))!["items"]![0]!;
        Assert.Equal("admin", kept["role"]!.GetValue<string>());

        // Delete "leaver": the button asks once more, then the row goes and the token stops working.
        await page.ClickAsync("#delete-" + goneId);
        await Assertions.Expect(page.Locator("#delete-" + goneId)).ToHaveTextAsync("Really delete?");
        await page.ClickAsync("#delete-" + goneId);
        await Assertions.Expect(page.Locator("#accounts-table tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(page.Locator("#account-message")).ToContainTextAsync("Deleted leaver");
        using var gone = new HttpClient { BaseAddress = address };
        gone.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", goneToken);
        Assert.Equal(HttpStatusCode.Unauthorized, (await gone.GetAsync("/api/auth/me")).StatusCode);

        Assert.Empty(browserPage.ConsoleErrors);
        await ChromiumFixture.AssertCspInForceAsync(page, document);
    }

    [Fact]
    public async Task Portal_LinksTheApiReference_WhichShowsTheRoutes_UnderItsCsp()
    {
        await using var app = new HomeworkApp(NoRequestRateLimit, environment: "Production");
        var address = ChromiumFixture.StartOnLoopback(app);
        await using var browserPage = await chromium.NewPageAsync();
        var page = browserPage.Page;
        await page.GotoAsync(new Uri(address, "/admin").ToString());
        await page.FillAsync("#username", HomeworkApp.AdminUsername);
        await page.FillAsync("#password", HomeworkApp.AdminPassword);
        await page.ClickAsync("#sign-in-button");

        // The portal's link opens the reference in the same tab, which keeps the admin's token for the document.
        var failed = new List<string>();
        page.Response += (_, r) => { if (r.Status >= 400) failed.Add(r.Status + " " + r.Url); };
        var navigation = page.WaitForResponseAsync(r => r.Url.EndsWith("/admin/api-reference/", StringComparison.Ordinal));
        await page.ClickAsync("#api-reference-link");
        var reference = await navigation;

        Assert.Contains("'nonce-", await reference.HeaderValueAsync("content-security-policy") ?? string.Empty, StringComparison.Ordinal);
        // The document came with the admin's token: its operations and TokenMeter's group are listed.
        await Assertions.Expect(page.GetByText("Sets an account's role").First).ToBeVisibleAsync(new() { Timeout = 60_000 });
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "TokenMeter usage" })).ToBeVisibleAsync();
        Assert.True(browserPage.ConsoleErrors.Count == 0, string.Join("\n", browserPage.ConsoleErrors.Concat(failed)));
    }

    private static Dictionary<string, string?> NoRequestRateLimit => new() { ["Homework:RateLimits:RequestsPerMinute"] = "0" };

    private static async Task<JsonObject> Budgets(HttpClient admin) => (await admin.GetFromJsonAsync<JsonObject>("/api/usage/budgets"))!;

    private static string Int(JsonNode value) => value.GetValue<long>().ToString("N0", CultureInfo.InvariantCulture);

    private static string Money(JsonNode value) => PortalMoney.Format(value);

    /// <summary>A limit as the Budgets tab shows it: cents at least, up to 8 decimals.</summary>
    private static string Limit(decimal value) => "$" + value.ToString("#,##0.00######", CultureInfo.InvariantCulture);
}
