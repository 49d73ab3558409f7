using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace HomeworkApi.Tests;

/// <summary>
/// CONTRACT §8: the admin portal in a real Chromium (Debian's, never a downloaded one) against the
/// app listening on a real loopback port.
/// </summary>
public sealed class PortalBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";
    private const int Students = 12;

    [Fact]
    public async Task Portal_SignIn_UsageCardsTablesPagingAndCsvDownloads_WithoutConsoleErrors()
    {
        Assert.True(File.Exists(Chromium), "Chromium is not installed at /usr/bin/chromium (apt-get install chromium).");
        await using var app = new HomeworkApp();
        app.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        app.StartServer();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        using var http = new HttpClient { BaseAddress = address };

        // Twelve students with usage (two pages of ten in the portal), one anonymous call.
        for (var i = 0; i < Students; i++)
        {
            var name = $"student{i:00}";
            var created = await http.PostAsJsonAsync("/api/auth/register", new { username = name, email = name + "@example.com", password = "Passw0rd!" });
            var id = (await created.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
            var route = (i % 3) switch { 0 => "/api/hint", 1 => "/api/verify", _ => "/api/analyze" };
            var reply = await http.PostAsJsonAsync(route, new { problemText = $"What is {i} + {i}?", answer = $"{2 * i}", userId = id });
            Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/api/chat", new { messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
        await app.WaitForRecordsAsync(_ => true, Students + 1);

        var token = (await (await http.PostAsJsonAsync("/api/auth/login", new { username = HomeworkApp.AdminUsername, password = HomeworkApp.AdminPassword })).Content.ReadFromJsonAsync<JsonObject>())!["token"]!.GetValue<string>();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var stats = (await http.GetFromJsonAsync<JsonObject>("/api/usage/stats"))!;
        var endpoints = (await http.GetFromJsonAsync<JsonObject>("/api/usage/endpoint"))!["items"]!.AsArray();

        var artifacts = Path.Combine(AppContext.BaseDirectory, "TestResults", "portal");
        Directory.CreateDirectory(artifacts);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        await using var context = await browser.NewContextAsync(new BrowserNewContextOptions { AcceptDownloads = true, ViewportSize = new ViewportSize { Width = 1366, Height = 900 }, Locale = "en-US" });
        var page = await context.NewPageAsync();
        var consoleErrors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                consoleErrors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => consoleErrors.Add(error);

        await page.GotoAsync(new Uri(address, "/admin").ToString());
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
        var overflow = await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth > window.innerWidth + 1");
        Assert.False(overflow, "The page scrolls sideways at phone width.");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "api-usage-phone.png"), FullPage = true });

        output.WriteLine("Screenshots and downloads: " + artifacts);
        Assert.Empty(consoleErrors);
    }

    private static string Int(JsonNode value) => value.GetValue<long>().ToString("N0", CultureInfo.InvariantCulture);

    private static string Money(JsonNode value) => "$" + value.GetValue<decimal>().ToString("N4", CultureInfo.InvariantCulture);
}
