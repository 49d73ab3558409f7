using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Alerts;
using TokenMeter.Delivery;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Budgets;
using TokenMeter.Testing;

namespace TokenMeter.AspNetCore.Tests.Alerts;

public abstract class AlertTestsBase : StoreTestBase
{
    private const string Secret = "test-webhook-secret";

    [Fact]
    public async Task BudgetThresholds_EachCrossingDeliveredOnce_Signed()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = await StartAlertAppAsync(receiver.Url);
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 1m, null));
        var monitor = app.Services.GetRequiredService<AlertMonitor>();
        var sender = app.Services.GetRequiredService<WebhookSender>();

        // 0.5 (nothing), 0.85 (80%), 0.9 (nothing new), 1.0 (100%), 1.2 (nothing new).
        foreach (var cost in new[] { 0.5m, 0.35m, 0.05m, 0.1m, 0.2m })
        {
            var record = TestApp.Record("s1", cost);
            await app.SeedAsync(record);
            await monitor.EvaluateAsync([record], CancellationToken.None);
            await Eventually.CompletesAsync(sender.WhenIdleAsync());
        }

        // A second instance sharing the store (same delivery log) fires nothing again.
        await monitor.EvaluateAsync([TestApp.Record("s1", 0.01m)], CancellationToken.None);
        await Eventually.CompletesAsync(sender.WhenIdleAsync());

        var deliveries = receiver.Deliveries.ToArray();
        Assert.Equal(2, deliveries.Length);
        var percents = new List<int>();
        foreach (var delivery in deliveries)
        {
            Assert.Equal("budget.threshold", delivery.Event);
            Assert.Equal("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), delivery.Body)), delivery.Signature);
            using var body = JsonDocument.Parse(delivery.Body);
            Assert.Equal("budget.threshold", body.RootElement.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("id").GetString()));
            var data = body.RootElement.GetProperty("data");
            Assert.Equal("s1", data.GetProperty("userId").GetString());
            Assert.Equal("2026-11", data.GetProperty("month").GetString());
            percents.Add(data.GetProperty("thresholdPercent").GetInt32());
        }

        Assert.Equal([80, 100], percents.Order());
        Assert.Equal(2, deliveries.Select(d => JsonDocument.Parse(d.Body).RootElement.GetProperty("id").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task PlatformDailyCost_FiresOncePerDay_ThroughBackgroundLoop()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = await StartAlertAppAsync(receiver.Url, ("TokenMeter:Alerts:PlatformDailyCostUsd", "2"));
        var monitor = app.Services.GetRequiredService<AlertMonitor>();
        var sender = app.Services.GetRequiredService<WebhookSender>();

        var first = TestApp.Record(null, 1.5m);
        await app.SeedAsync(first);
        await monitor.EvaluateAsync([first], CancellationToken.None);
        var second = TestApp.Record("s1", 1m);
        await app.SeedAsync(second);
        monitor.Observe(second);
        monitor.Observe(TestApp.Record("s1", 0.01m));

        var delivery = await WaitForDeliveryAsync(receiver);
        await Eventually.CompletesAsync(sender.WhenIdleAsync());
        await monitor.EvaluateAsync([TestApp.Record("s1", 0.01m)], CancellationToken.None);
        await Eventually.CompletesAsync(sender.WhenIdleAsync());
        Assert.Equal("platform.daily_cost", delivery.Event);
        using var body = JsonDocument.Parse(delivery.Body);
        Assert.Equal("2026-11-25", body.RootElement.GetProperty("data").GetProperty("date").GetString());
        Assert.Equal(2.5m, body.RootElement.GetProperty("data").GetProperty("costUsd").GetDecimal());
        Assert.Single(receiver.Deliveries);
    }

    [Fact]
    public async Task Webhook_RetriedWithBackoff_SameIdDeliveredOnce()
    {
        await using var receiver = await WebhookReceiver.StartAsync(failFirst: 2);
        await using var app = await StartAlertAppAsync(receiver.Url);
        var sender = app.Services.GetRequiredService<IWebhookSender>();
        Assert.True(sender.Enqueue("statement.closed", "statement.closed/7/2026-10", new { userId = "7", month = "2026-10" }));

        // Back-off waits run on the app's (fake) clock: move it on until the sender is done.
        await Eventually.CompletesAsync(app.Services.GetRequiredService<WebhookSender>().WhenIdleAsync(), advance: app.Time, step: TimeSpan.FromSeconds(1));
        Assert.Equal(3, receiver.Attempts);
        var delivery = Assert.Single(receiver.Deliveries);
        using var body = JsonDocument.Parse(delivery.Body);
        Assert.Equal("statement.closed/7/2026-10", body.RootElement.GetProperty("id").GetString());
    }

    [Fact]
    public async Task Webhook_ReceiverAsksToRetryAfter_WaitedOutBeforeTheNextAttempt()
    {
        // The back-off alone would retry after 10 ms; the receiver asks for two minutes.
        await using var receiver = await WebhookReceiver.StartAsync(failFirst: 1, retryAfterSeconds: 120);
        await using var app = await StartAlertAppAsync(receiver.Url);
        receiver.Clock = app.Time.GetUtcNow;
        var sender = app.Services.GetRequiredService<IWebhookSender>();
        Assert.True(sender.Enqueue("statement.closed", "statement.closed/8/2026-10", new { userId = "8", month = "2026-10" }));

        await Eventually.CompletesAsync(app.Services.GetRequiredService<WebhookSender>().WhenIdleAsync(), advance: app.Time, step: TimeSpan.FromSeconds(5));
        Assert.Single(receiver.Deliveries);
        var times = receiver.AttemptTimes.ToArray();
        Assert.Equal(2, times.Length);
        Assert.True(times[1] - times[0] >= TimeSpan.FromSeconds(120), $"retried after {times[1] - times[0]}, before the receiver's Retry-After of 120 s");
    }

    private static async Task<WebhookReceiver.Received> WaitForDeliveryAsync(WebhookReceiver receiver) =>
        (await Eventually.ValueAsync(_ => ValueTask.FromResult(receiver.Deliveries.TryPeek(out var first) ? first : null), first => first is not null, what: "a webhook delivery"))!;

    private Task<TestApp> StartAlertAppAsync(Uri url, params (string Key, string Value)[] settings) => StartAsync(configure: b =>
    {
        b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Alerts:WebhookUrl"] = url.ToString(),
            ["TokenMeter:Alerts:WebhookSecret"] = Secret,
            ["TokenMeter:Alerts:InitialRetryDelay"] = "00:00:00.010",
        }.Concat(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))));
    });
}

public sealed class AlertTests : AlertTestsBase;
