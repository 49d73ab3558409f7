using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using MimeKit;
using TokenMeter.Alerts;
using TokenMeter.Delivery;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Testing.Smtp;
using TokenMeter.Budgets;
using TokenMeter.Storage;
using TokenMeter.Testing;

namespace TokenMeter.AspNetCore.Tests.Alerts;

/// <summary><c>TokenMeter:Alerts:Email</c>: every alert is also mailed to the report recipients, once per alert id.</summary>
public abstract class AlertEmailTestsBase : StoreTestBase
{
    [Fact]
    public async Task AlertEmail_EachAlertMailedOnceBesideItsWebhook_PlainAndHtml()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = await StartAsync(configure: b => b.Configuration.AddInMemoryCollection(
            AlertEmailSettings.For(smtp.Port, receiver.Url, ("TokenMeter:Alerts:PlatformDailyCostUsd", "2"))));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 1m, null));
        var monitor = app.Services.GetRequiredService<AlertMonitor>();

        // 0.85 (80%), then 1.05 (100%), then the platform's 2.05 today (platform.daily_cost); each batch evaluated twice.
        foreach (var (user, cost) in new[] { ("s1", 0.85m), ("s1", 0.2m), ("s2", 1m) })
        {
            var record = TestApp.Record(user, cost);
            await app.SeedAsync(record);
            await monitor.EvaluateAsync([record], CancellationToken.None);
            await monitor.EvaluateAsync([record], CancellationToken.None);
        }

        await AlertEmailSettings.IdleAsync(app.Services);
        var mails = await AlertEmailSettings.ReceiveAsync(smtp, 3);
        Assert.Equal(0, smtp.Drain());

        var webhookIds = receiver.Deliveries.Select(d => JsonDocument.Parse(d.Body).RootElement.GetProperty("id").GetString()!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["budget.threshold/s1/2026-11/100", "budget.threshold/s1/2026-11/80", "platform.daily_cost/2026-11-25"], webhookIds);
        Assert.Equal(webhookIds, mails.Select(m => m.Headers["X-TokenMeter-Alert-Id"]).Order(StringComparer.Ordinal).ToArray());

        var eighty = mails.Single(m => m.Headers["X-TokenMeter-Alert-Id"] == "budget.threshold/s1/2026-11/80");
        Assert.Equal("TokenMeter alert budget.threshold: user s1 reached 80% of the monthly budget (2026-11)", eighty.Subject);
        Assert.Equal("budget.threshold", eighty.Headers["X-TokenMeter-Event"]);
        Assert.Equal(["ops@example.test", "finance@example.test"], eighty.To.Mailboxes.Select(m => m.Address));
        Assert.Contains("Spent this month: $0.85", eighty.TextBody, StringComparison.Ordinal);
        Assert.Contains("Monthly budget: $1.00", eighty.TextBody, StringComparison.Ordinal);
        Assert.Contains("<td style=\"padding:4px 0\">$0.85</td>", eighty.HtmlBody, StringComparison.Ordinal);

        var platform = mails.Single(m => m.Headers["X-TokenMeter-Event"] == "platform.daily_cost");
        Assert.Equal("TokenMeter alert platform.daily_cost: platform cost on 2026-11-25 reached $2.05", platform.Subject);
        Assert.Contains("Threshold: $2.00", platform.TextBody, StringComparison.Ordinal);
        Assert.Contains("Alert id: platform.daily_cost/2026-11-25", platform.TextBody, StringComparison.Ordinal);

        // Email and webhook are separate deliveries, each completed: neither is claimable again.
        var log = app.Services.GetRequiredService<IDeliveryLog>();
        app.Time.Advance(TimeSpan.FromHours(1));
        Assert.False(await log.TryClaimAsync("alert.budget.threshold", "s1/2026-11/80", TimeSpan.FromMinutes(1)));
        Assert.False(await log.TryClaimAsync("alert-email.budget.threshold", "s1/2026-11/80", TimeSpan.FromMinutes(1)));
        Assert.False(await log.TryClaimAsync("alert-email.platform.daily_cost", "2026-11-25", TimeSpan.FromMinutes(1)));
        await monitor.RecheckAsync(CancellationToken.None);
        Assert.Equal(0, monitor.PendingCount);
    }

    [Fact]
    public async Task AlertEmail_SmtpDown_RetriedWithBackoff_MailedOnce()
    {
        var port = LoopbackSmtpServer.FreePort();
        var logs = new FakeLogCollector();
        await using var app = await StartAsync(configure: b =>
        {
            b.Configuration.AddInMemoryCollection(AlertEmailSettings.For(port, webhook: null, ("TokenMeter:Alerts:InitialRetryDelay", "00:00:01")));
            b.Logging.AddProvider(new FakeLoggerProvider(logs));
        });
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 1m, null));
        var record = TestApp.Record("s1", 1m);
        await app.SeedAsync(record);
        await app.Services.GetRequiredService<AlertMonitor>().EvaluateAsync([record], CancellationToken.None);

        // Nobody listens yet: wait for the first failed attempt (event 4521), then start the server.
        await Eventually.TrueAsync(() => logs.GetSnapshot().Any(r => r.Id.Id == 4521));

        await using var smtp = LoopbackSmtpServer.Start(port);
        await Eventually.CompletesAsync(app.Services.GetRequiredService<AlertMailer>().WhenIdleAsync(), advance: app.Time, step: TimeSpan.FromSeconds(1));
        var mails = await AlertEmailSettings.ReceiveAsync(smtp, 2);
        Assert.Equal(["budget.threshold/s1/2026-11/100", "budget.threshold/s1/2026-11/80"], mails.Select(m => m.Headers["X-TokenMeter-Alert-Id"]).Order());
        Assert.Equal(0, smtp.Drain());
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 4520);
        Assert.DoesNotContain(logs.GetSnapshot(), r => (r.Message + r.Exception).Contains("secret-password", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AlertEmail_OnWithoutSmtp_FailsStartNamingTheKeys()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(configure: b =>
            b.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TokenMeter:Alerts:Email"] = "true" })));
        Assert.Contains("TokenMeter:Alerts:Email", error.Message, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Reports:Smtp:Host", error.Message, StringComparison.Ordinal);
        Assert.Contains("TokenMeter:Reports:To", error.Message, StringComparison.Ordinal);
    }
}

public sealed class AlertEmailTests : AlertEmailTestsBase;

/// <summary>Configuration of a host that mails alerts to the loopback SMTP server.</summary>
internal static class AlertEmailSettings
{
    public static Dictionary<string, string?> For(int smtpPort, Uri? webhook, params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["TokenMeter:Reports:Smtp:Host"] = "127.0.0.1",
            ["TokenMeter:Reports:Smtp:Port"] = smtpPort.ToString(CultureInfo.InvariantCulture),
            ["TokenMeter:Reports:Smtp:UseTls"] = "false",
            ["TokenMeter:Reports:Smtp:Password"] = "secret-password",
            ["TokenMeter:Reports:Smtp:From"] = "TokenMeter <alerts@example.test>",
            ["TokenMeter:Reports:To:0"] = "ops@example.test",
            ["TokenMeter:Reports:To:1"] = "finance@example.test",
            ["TokenMeter:Alerts:Email"] = "true",
            ["TokenMeter:Alerts:WebhookSecret"] = "alert-secret",
            ["TokenMeter:Alerts:InitialRetryDelay"] = "00:00:00.010",
        };
        if (webhook is not null)
        {
            settings["TokenMeter:Alerts:WebhookUrl"] = webhook.ToString();
        }

        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>Waits until the host's webhook sender and alert mailer have nothing left in flight.</summary>
    public static async Task IdleAsync(IServiceProvider services)
    {
        await Eventually.CompletesAsync(services.GetRequiredService<WebhookSender>().WhenIdleAsync(), what: "the webhook sender to go idle");
        await Eventually.CompletesAsync(services.GetRequiredService<AlertMailer>().WhenIdleAsync(), what: "the alert mailer to go idle");
    }

    /// <summary>Takes exactly <paramref name="count"/> messages (waiting up to 10 s for each).</summary>
    public static async Task<MimeMessage[]> ReceiveAsync(LoopbackSmtpServer smtp, int count)
    {
        var messages = new MimeMessage[count];
        for (var i = 0; i < count; i++)
        {
            messages[i] = await smtp.NextAsync();
        }

        return messages;
    }
}

public sealed class PostgresAlertEmailTests(TokenMeter.Testing.Postgres.PostgresDatabaseFixture database)
    : AlertEmailTestsBase, IClassFixture<TokenMeter.Testing.Postgres.PostgresDatabaseFixture>
{
    internal override Task<Action<ITokenMeterBuilder>?> PrepareStoreAsync() => PostgresStoreAsync(database);
}
