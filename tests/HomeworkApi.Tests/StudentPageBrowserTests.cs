using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text.Json.Nodes;
using HomeworkApi.Hosting;
using HomeworkApi.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace HomeworkApi.Tests;

/// <summary>
/// CONTRACT §9: the students' own page at /usage in a real Chromium (Debian's, one for the class)
/// against the app (simulated model) on a real loopback port.
/// </summary>
public sealed class StudentPageBrowserTests(ChromiumFixture chromium, ITestOutputHelper output) : IClassFixture<ChromiumFixture>
{
    private const string Password = "Maple-river-stone-31";

    [Fact]
    public async Task UsagePage_StudentSeesOwnMonthBudgetTrendAndFeatures_NeverAnotherStudents()
    {
        await using var app = new HomeworkApp(new Dictionary<string, string?> { ["Homework:RateLimits:RequestsPerMinute"] = "0" });
        var address = ChromiumFixture.StartOnLoopback(app);
        using var http = new HttpClient { BaseAddress = address };

        // Bob uses the tutor chat and the answer check; Ada will never use either.
        var (bobId, bobToken) = await app.RegisterAsync("bob", Password);
        await CallAsync(http, bobToken, "/api/chat", new { messages = new[] { new { role = "user", content = "Why is the sky blue?" } } });
        await CallAsync(http, bobToken, "/api/verify", new { problemText = "2 + 2", answer = "4" });
        await app.WaitForRecordsAsync(r => r.UserId == bobId, 2);

        var artifacts = ChromiumFixture.Artifacts("usage");
        await using var browserPage = await chromium.NewPageAsync();
        var page = browserPage.Page;
        var apiCalls = new List<string>();
        page.Request += (_, request) =>
        {
            var path = new Uri(request.Url).AbsolutePath;
            if (path.StartsWith("/api/", StringComparison.Ordinal))
            {
                apiCalls.Add(request.Method + " " + path);
            }
        };

        // Ada creates her account on the page and lands on an empty month.
        var document = await page.GotoAsync(new Uri(address, "/usage").ToString());
        await Assertions.Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        await page.ClickAsync("#show-register");
        await page.FillAsync("#register-username", "ada");
        await page.FillAsync("#register-email", "ada@example.com");
        await page.FillAsync("#register-password", Password);
        await page.ClickAsync("#register-button");
        await Assertions.Expect(page.Locator("#app")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#whoami-name")).ToHaveTextAsync("ada");
        await Assertions.Expect(page.Locator("#me-calls")).ToHaveTextAsync("0");
        await Assertions.Expect(page.Locator("#me-remaining")).ToHaveTextAsync("No limit");
        await Assertions.Expect(page.Locator("#features-table tbody td.empty")).ToBeVisibleAsync();

        // Ada asks for two hints and an explanation; the admin gives her a budget of $5 a month.
        var adaToken = await app.LoginAsync("ada", Password);
        var adaId = (await JsonWithToken(http, "/api/auth/me", adaToken))["id"]!.GetValue<string>();
        await CallAsync(http, adaToken, "/api/hint", new { problemText = "Solve 2x + 3 = 7" });
        await CallAsync(http, adaToken, "/api/hint", new { problemText = "Solve 2x + 3 = 7", previousHints = new[] { "Subtract 3." } });
        await CallAsync(http, adaToken, "/api/analyze", new { problemText = "Solve 2x + 3 = 7" });
        await app.WaitForRecordsAsync(r => r.UserId == adaId, 3);
        using (var admin = new HttpClient { BaseAddress = address })
        {
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await app.AdminTokenAsync());
            Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/usage/budgets/" + adaId, new { monthlyCostUsd = 5m })).StatusCode);
        }

        // After a refresh the page shows exactly what /api/usage/me says about her.
        var response = await page.RunAndWaitForResponseAsync(() => page.ClickAsync("#refresh"), r => new Uri(r.Url).AbsolutePath == "/api/usage/me");
        var shown = JsonNode.Parse(await response.TextAsync())!.AsObject();
        var me = await JsonWithToken(http, "/api/usage/me", adaToken);
        Assert.True(JsonNode.DeepEquals(me, shown), "The page got other figures than /api/usage/me gives Ada.");
        Assert.Equal(3, me["thisMonth"]!["calls"]!.GetValue<long>());

        await Assertions.Expect(page.Locator("#me-calls")).ToHaveTextAsync(Int(me["thisMonth"]!["calls"]!));
        await Assertions.Expect(page.Locator("#me-tokens")).ToHaveTextAsync(Int(me["thisMonth"]!["tokens"]!));
        await Assertions.Expect(page.Locator("#me-cost")).ToHaveTextAsync(Money(me["thisMonth"]!["costUsd"]!));
        await Assertions.Expect(page.Locator("#me-calls-total")).ToHaveTextAsync(Int(me["totalCalls"]!));
        await Assertions.Expect(page.Locator("#me-tokens-total")).ToHaveTextAsync(Int(me["totalTokens"]!));
        await Assertions.Expect(page.Locator("#me-cost-total")).ToHaveTextAsync(Money(me["totalCostUsd"]!));
        await Assertions.Expect(page.Locator("#me-remaining")).ToHaveTextAsync(Money(me["budget"]!["remainingUsd"]!));
        await Assertions.Expect(page.Locator("#me-budget")).ToHaveTextAsync("left of $5.00 this month");
        await Assertions.Expect(page.Locator("#card-budget [role=progressbar]")).ToBeVisibleAsync();

        // The daily trend: 30 days of bars, today's with her three calls.
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var daily = Assert.Single(me["daily"]!.AsArray());
        Assert.Equal(today, daily!["date"]!.GetValue<string>());
        await Assertions.Expect(page.Locator("#chart svg rect.bar")).ToHaveCountAsync(30);
        await Assertions.Expect(page.Locator($"#chart svg rect.bar[data-date='{today}']")).ToHaveAttributeAsync("data-calls", "3");

        // By feature: one row per endpoint of hers, in the API's order, with its figures.
        var features = me["byEndpoint"]!.AsArray();
        Assert.Equal(new[] { "/api/analyze", "/api/hint" }, features.Select(f => f!["endpoint"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        var rows = page.Locator("#features-table tbody tr");
        await Assertions.Expect(rows).ToHaveCountAsync(features.Count);
        for (var i = 0; i < features.Count; i++)
        {
            var row = rows.Nth(i).Locator("td");
            await Assertions.Expect(row.Nth(0).Locator(".feature-endpoint")).ToHaveTextAsync(features[i]!["endpoint"]!.GetValue<string>());
            await Assertions.Expect(row.Nth(1)).ToHaveTextAsync(Int(features[i]!["calls"]!));
            await Assertions.Expect(row.Nth(2)).ToHaveTextAsync(Int(features[i]!["totalTokens"]!));
            await Assertions.Expect(row.Nth(3)).ToHaveTextAsync(Money(features[i]!["totalCostUsd"]!));
        }

        // Nothing of Bob's: not his features, not his name; the page asked for nobody's usage but Ada's own.
        var text = await page.Locator("body").InnerTextAsync();
        Assert.DoesNotContain("Tutor chat", text, StringComparison.Ordinal);
        Assert.DoesNotContain("/api/chat", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Answer check", text, StringComparison.Ordinal);
        Assert.DoesNotContain("bob", text, StringComparison.OrdinalIgnoreCase);
        Assert.All(apiCalls, call => Assert.Contains(call, new[] { "POST /api/auth/register", "POST /api/auth/login", "GET /api/usage/me" }));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "usage-laptop.png"), FullPage = true });

        // Phone width (375 px): readable, nothing scrolls sideways.
        await page.SetViewportSizeAsync(375, 812);
        await Assertions.Expect(page.Locator("#me-cost")).ToBeVisibleAsync();
        Assert.False(await ChromiumFixture.OverflowsAsync(page), "The usage page scrolls sideways at phone width.");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "usage-phone.png"), FullPage = true });

        // Sign out: the token is gone and Ada's figures with it; Bob signs in and sees only his.
        await page.ClickAsync("#sign-out");
        await Assertions.Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('homework-usage-token')"));
        await Assertions.Expect(page.Locator("#me-calls")).ToHaveTextAsync("–");
        await page.FillAsync("#username", "bob");
        await page.FillAsync("#password", Password);
        await page.ClickAsync("#sign-in-button");
        var bobMe = await JsonWithToken(http, "/api/usage/me", bobToken);
        await Assertions.Expect(page.Locator("#whoami-name")).ToHaveTextAsync("bob");
        await Assertions.Expect(page.Locator("#me-calls")).ToHaveTextAsync(Int(bobMe["thisMonth"]!["calls"]!));
        await Assertions.Expect(page.Locator("#me-cost")).ToHaveTextAsync(Money(bobMe["thisMonth"]!["costUsd"]!));
        await Assertions.Expect(page.Locator("#me-remaining")).ToHaveTextAsync("No limit");
        await Assertions.Expect(page.Locator("#features-table tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(page.Locator("#features-table")).ToContainTextAsync("Tutor chat");
        await Assertions.Expect(page.Locator("#features-table")).Not.ToContainTextAsync("Hints");

        // An expired token (as the app would have issued it, an hour past its end): back to sign-in, with a message.
        await page.EvaluateAsync("t => sessionStorage.setItem('homework-usage-token', t)", ExpiredToken(app, bobId));
        await page.ReloadAsync();
        await Assertions.Expect(page.Locator("#sign-in")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#sign-in-error")).ToHaveTextAsync("Your session has ended; please sign in again.");
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('homework-usage-token')"));
        browserPage.ForgetExpectedHttpErrors(401);

        output.WriteLine("Screenshots: " + artifacts);
        Assert.Empty(browserPage.ConsoleErrors);
        await ChromiumFixture.AssertCspInForceAsync(page, document);
    }

    private static async Task CallAsync(HttpClient http, string token, string route, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, route) { Content = HomeworkApp.Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task<JsonObject> JsonWithToken(HttpClient http, string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await HomeworkApp.JsonAsync(response);
    }

    /// <summary>A token signed with the app's key for <paramref name="userId"/> that expired an hour ago.</summary>
    private static string ExpiredToken(HomeworkApp app, string userId)
    {
        var settings = app.Services.GetRequiredService<HomeworkSettings>();
        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = settings.JwtIssuer,
            Audience = settings.JwtAudience,
            IssuedAt = now.AddHours(-9),
            NotBefore = now.AddHours(-9),
            Expires = now.AddHours(-1),
            Subject = new ClaimsIdentity([new Claim(JwtRegisteredClaimNames.Sub, userId), new Claim(JwtRegisteredClaimNames.UniqueName, "bob"), new Claim("role", "student")]),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(settings.SigningKey), SecurityAlgorithms.HmacSha256),
        });
    }

    private static string Int(JsonNode value) => value.GetValue<long>().ToString("N0", CultureInfo.InvariantCulture);

    private static string Money(JsonNode value) => PortalMoney.Format(value);
}
