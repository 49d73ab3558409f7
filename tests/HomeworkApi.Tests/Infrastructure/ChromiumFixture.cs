using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace HomeworkApi.Tests.Infrastructure;

/// <summary>
/// One headless Chromium (Debian's at /usr/bin/chromium, never a downloaded one) shared by the
/// browser tests of a class; each test opens its own context, so pages share nothing.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Chromium), "Chromium is not installed at /usr/bin/chromium (apt-get install chromium).");
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    /// <summary>A new page in a fresh context, collecting console errors and uncaught exceptions.</summary>
    public async Task<BrowserPage> NewPageAsync(int width = 1366, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { AcceptDownloads = true, ViewportSize = new ViewportSize { Width = width, Height = height }, Locale = "en-US" });
        var page = await context.NewPageAsync();
        var result = new BrowserPage(context, page);
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                result.ConsoleErrors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => result.ConsoleErrors.Add(error);
        return result;
    }

    /// <summary>Where a test's screenshots and downloads go: the test output folder's TestResults/<paramref name="name"/>.</summary>
    public static string Artifacts(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestResults", name);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Starts <paramref name="app"/> on a real loopback port (the browser needs one) and returns its address.</summary>
    public static Uri StartOnLoopback(HomeworkApp app)
    {
        app.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        app.StartServer();
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    /// <summary>
    /// The page was served with a Content-Security-Policy, nothing on it broke the policy, and the policy
    /// is in force: an injected inline script does not run. Call it last (the probe's own refusal is
    /// logged as a console error).
    /// </summary>
    public static async Task AssertCspInForceAsync(IPage page, IResponse? document)
    {
        Assert.NotNull(document);
        Assert.Contains("script-src 'self'", await document.HeaderValueAsync("content-security-policy") ?? string.Empty, StringComparison.Ordinal);
        var ran = await page.EvaluateAsync<bool>("""
            () => new Promise(resolve => {
                document.addEventListener('securitypolicyviolation', () => resolve(window.__cspProbe === true), { once: true });
                setTimeout(() => resolve(window.__cspProbe === true), 5000);
                const probe = document.createElement('script');
                probe.textContent = 'window.__cspProbe = true';
                document.head.appendChild(probe);
            })
            """);
        Assert.False(ran, "An inline script ran: the Content-Security-Policy is not in force.");
    }

    /// <summary>Whether the page scrolls sideways (anything wider than the viewport outside a scrollable box).</summary>
    public static Task<bool> OverflowsAsync(IPage page)
        => page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth > window.innerWidth + 1");

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }
}

/// <summary>A page with its own browser context and the console errors seen so far.</summary>
public sealed class BrowserPage(IBrowserContext context, IPage page) : IAsyncDisposable
{
    public IPage Page { get; } = page;

    public List<string> ConsoleErrors { get; } = [];

    /// <summary>
    /// Chromium logs every 4xx answer of fetch() as a console error. Removes those for the statuses a
    /// step expects (the page shows them as messages) and fails on anything else logged.
    /// </summary>
    public void ForgetExpectedHttpErrors(params int[] statuses)
    {
        ConsoleErrors.RemoveAll(e => statuses.Any(s => e.Contains($"status of {s} ", StringComparison.Ordinal)));
    }

    public ValueTask DisposeAsync() => context.DisposeAsync();
}
