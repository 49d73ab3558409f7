using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Alerts;
using TokenMeter.Delivery;
using TokenMeter.Reports;
using TokenMeter.Testing.Smtp;
using TokenMeter.AspNetCore.Tests.Alerts;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Billing;
using TokenMeter.Budgets;
using TokenMeter.Storage;
using TokenMeter.Testing;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.AspNetCore.Tests.Reports;

/// <summary>
/// Reports, <c>statement.closed</c> webhooks and alerts (webhook and email) go out exactly once per
/// period with two app instances on one PostgreSQL database, across a restart, and when an instance
/// dies holding a claim. The clock is a shared <see cref="FakeTimeProvider"/> moved past 06:00 UTC
/// and past a month end; mail goes to a loopback SMTP server, webhooks to a loopback HTTP receiver.
/// </summary>
public sealed class PostgresDeliveryOnceTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    // Monday 30 November 2026, 05:00 UTC: October's report is due; yesterday's and last week's not until 06:00.
    private static readonly DateTimeOffset MondayFive = new(2026, 11, 30, 5, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset InOctober = new(2026, 10, 14, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset LastSunday = new(2026, 11, 29, 15, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task TwoInstancesAndARestart_OnPostgres_EachReportStatementAndAlertDeliveredOnce()
    {
        var store = await StoreTestBase.PostgresStoreAsync(database);
        var time = new FakeTimeProvider(MondayFive);
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var smtp = LoopbackSmtpServer.Start();
        TestApp? a = await StartInstanceAsync(store, time, smtp.Port, receiver.Url);
        await using var b = await StartInstanceAsync(store, time, smtp.Port, receiver.Url);
        TestApp? c = null;
        try
        {
            await a.SeedAsync(
                TestApp.Record("u1", 0.0125m, 1000, "/api/analyze", "gpt-4o", InOctober),
                TestApp.Record("u2", 1.234567m, 200, "/api/chat", "gpt-4o-mini", InOctober),
                TestApp.Record("u1", 0.4m, 300, "/api/hint", "gpt-4o-mini", LastSunday),
                TestApp.Record("u2", 0.3m, 300, "/api/chat", "gpt-4o-mini", LastSunday));
            await a.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1m, null));

            // 05:00: both instances check at once. October's report and October's statements are due.
            await CheckAllAsync(a, b);
            await WaitForAsync(smtp, receiver, mails: 1, hooks: 2, a, b);

            // Calls today take u1 to 85% and then 105% of the budget, and the platform past $3 today;
            // both instances see every call (as each would through its own metering of shared users).
            foreach (var record in new[]
            {
                TestApp.Record("u1", 0.45m, 100, at: MondayFive.AddHours(-1)),
                TestApp.Record("u1", 0.2m, 100, at: MondayFive.AddHours(-1)),
                TestApp.Record("u2", 2.5m, 100, at: MondayFive.AddHours(-1)),
            })
            {
                await a.SeedAsync(record);
                await Task.WhenAll(EvaluateAsync(a, record), EvaluateAsync(b, record));
            }

            await WaitForAsync(smtp, receiver, mails: 4, hooks: 5, a, b);

            // 06:05: yesterday's and last week's reports are due.
            time.Advance(TimeSpan.FromMinutes(65));
            await CheckAllAsync(a, b);
            await WaitForAsync(smtp, receiver, mails: 6, hooks: 5, a, b);

            // One instance stops; a new one starts on the same database and sees the same calls: nothing is sent again.
            await a.DisposeAsync();
            a = null;
            c = await StartInstanceAsync(store, time, smtp.Port, receiver.Url);
            await EvaluateAsync(c, TestApp.Record("u1", 0.01m, 100, at: MondayFive.AddHours(-1)), TestApp.Record("u2", 0.01m, 100, at: MondayFive.AddHours(-1)));
            await CheckAllAsync(b, c);
            await SettleAsync(b, c);
            Assert.Equal(6, smtp.Received.Count + smtp.Drain());
            Assert.Equal(5, receiver.Deliveries.Count);

            // Tuesday 1 December, 06:05: November has closed — its report, yesterday's report and November's statements.
            time.Advance(TimeSpan.FromDays(1));
            await CheckAllAsync(b, c);
            await WaitForAsync(smtp, receiver, mails: 8, hooks: 7, b, c);

            // Later checks by both instances, after every lease has run out, send nothing more.
            time.Advance(TimeSpan.FromHours(2));
            await CheckAllAsync(b, c);
            await SettleAsync(b, c);
            Assert.Equal(0, smtp.Drain());
        }
        finally
        {
            if (c is not null)
            {
                await c.DisposeAsync();
            }

            if (a is not null)
            {
                await a.DisposeAsync();
            }
        }

        Assert.Equal(
            [
                "TokenMeter alert budget.threshold: user u1 reached 100% of the monthly budget (2026-11)",
                "TokenMeter alert budget.threshold: user u1 reached 80% of the monthly budget (2026-11)",
                "TokenMeter alert platform.daily_cost: platform cost on 2026-11-30 reached $3.15",
                "TokenMeter daily usage report: 2026-11-29",
                "TokenMeter daily usage report: 2026-11-30",
                "TokenMeter monthly usage report: 2026-10-01 to 2026-10-31",
                "TokenMeter monthly usage report: 2026-11-01 to 2026-11-30",
                "TokenMeter weekly usage report: 2026-11-23 to 2026-11-29",
            ],
            smtp.Received.Select(m => m.Subject).Order(StringComparer.Ordinal));
        Assert.Equal(
            [
                "budget.threshold/u1/2026-11/100",
                "budget.threshold/u1/2026-11/80",
                "platform.daily_cost/2026-11-30",
                "statement.closed/u1/2026-10",
                "statement.closed/u1/2026-11",
                "statement.closed/u2/2026-10",
                "statement.closed/u2/2026-11",
            ],
            WebhookIds(receiver));
    }

    [Fact]
    public async Task CrashedInstance_ClaimLeftBehind_DeliveredOnceAfterTheLease_OnPostgres()
    {
        var store = await StoreTestBase.PostgresStoreAsync(database);
        var time = new FakeTimeProvider(MondayFive.AddHours(1.5));
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var smtp = LoopbackSmtpServer.Start();

        // An instance claims yesterday's report, u1's October statement and u1's 80% alert (webhook and
        // email), then dies before delivering any of them.
        await using (var crashed = await TestApp.StartAsync(configure: b => b.Services.AddSingleton<TimeProvider>(time), store: store))
        {
            await crashed.SeedAsync(
                TestApp.Record("u1", 0.0125m, 1000, "/api/analyze", "gpt-4o", InOctober),
                TestApp.Record("u1", 0.85m, 100, at: MondayFive));
            await crashed.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1m, null));
            var log = crashed.Services.GetRequiredService<IDeliveryLog>();
            var lease = TimeSpan.FromMinutes(15);
            Assert.True(await log.TryClaimAsync("report.daily", "2026-11-29", lease));
            Assert.True(await log.TryClaimAsync("statement.closed", "u1/2026-10", lease));
            Assert.True(await log.TryClaimAsync("alert.budget.threshold", "u1/2026-11/80", lease));
            Assert.True(await log.TryClaimAsync("alert-email.budget.threshold", "u1/2026-11/80", lease));
        }

        await using var survivor = await StartInstanceAsync(store, time, smtp.Port, receiver.Url, "daily");
        await EvaluateAsync(survivor, TestApp.Record("u1", 0.01m, 100, at: MondayFive));

        // Within the lease the survivor leaves them alone.
        time.Advance(TimeSpan.FromMinutes(10));
        await CheckAllAsync(survivor);
        await survivor.Services.GetRequiredService<AlertMonitor>().RecheckAsync(CancellationToken.None);
        await SettleAsync(survivor);
        Assert.Equal(0, smtp.Drain());
        Assert.Empty(receiver.Deliveries);

        // Once it has run out, each is delivered exactly once.
        time.Advance(TimeSpan.FromMinutes(6));
        await CheckAllAsync(survivor);
        await survivor.Services.GetRequiredService<AlertMonitor>().RecheckAsync(CancellationToken.None);
        await WaitForAsync(smtp, receiver, mails: 2, hooks: 2, survivor);

        time.Advance(TimeSpan.FromMinutes(30));
        await CheckAllAsync(survivor);
        await survivor.Services.GetRequiredService<AlertMonitor>().RecheckAsync(CancellationToken.None);
        await SettleAsync(survivor);
        Assert.Equal(0, smtp.Drain());
        Assert.Equal(0, survivor.Services.GetRequiredService<AlertMonitor>().PendingCount);

        Assert.Equal(
            ["TokenMeter alert budget.threshold: user u1 reached 80% of the monthly budget (2026-11)", "TokenMeter daily usage report: 2026-11-29"],
            smtp.Received.Select(m => m.Subject).Order(StringComparer.Ordinal));
        Assert.Equal(["budget.threshold/u1/2026-11/80", "statement.closed/u1/2026-10"], WebhookIds(receiver));
    }

    private static Task<TestApp> StartInstanceAsync(Action<ITokenMeterBuilder>? store, FakeTimeProvider time, int smtpPort, Uri hook, params string[] schedule)
        => TestApp.StartAsync(
            configure: b =>
            {
                b.Services.AddSingleton<TimeProvider>(time);
                var settings = AlertEmailSettings.For(smtpPort, hook, ("TokenMeter:Alerts:PlatformDailyCostUsd", "3"));
                var periods = schedule.Length == 0 ? ["daily", "weekly", "monthly"] : schedule;
                for (var i = 0; i < periods.Length; i++)
                {
                    settings[$"TokenMeter:Reports:Schedule:{i}"] = periods[i];
                }

                b.Configuration.AddInMemoryCollection(settings);
            },
            store: store);

    private static Task EvaluateAsync(TestApp app, params UsageRecord[] records)
        => app.Services.GetRequiredService<AlertMonitor>().EvaluateAsync(records, CancellationToken.None);

    /// <summary>What each instance's timer does, run by every instance at once.</summary>
    private static Task CheckAllAsync(params TestApp[] apps) => Task.WhenAll(apps.Select(async app =>
    {
        var reports = app.Services.GetRequiredService<UsageReportService>();
        await reports.CheckScheduledAsync(CancellationToken.None);
        await app.Services.GetRequiredService<StatementClosedNotifier>().CheckAsync(force: true, CancellationToken.None);
    }));

    /// <summary>Waits until nothing is in flight in any instance's webhook sender or alert mailer.</summary>
    private static async Task SettleAsync(params TestApp[] apps)
    {
        foreach (var app in apps)
        {
            await AlertEmailSettings.IdleAsync(app.Services);
        }
    }

    /// <summary>
    /// Waits for the totals so far (10 s at most), then for the senders to settle: a delivery is
    /// completed in the store just after the receiver answered, and moving the clock past the lease
    /// before that would (rightly) let it be claimed and sent again.
    /// </summary>
    private static async Task WaitForAsync(LoopbackSmtpServer smtp, WebhookReceiver receiver, int mails, int hooks, params TestApp[] apps)
    {
        while (smtp.Received.Count < mails)
        {
            await smtp.NextAsync();
        }

        await Eventually.TrueAsync(() => receiver.Deliveries.Count >= hooks);

        await SettleAsync(apps);
        Assert.Equal(mails, smtp.Received.Count + smtp.Drain());
        Assert.Equal(hooks, receiver.Deliveries.Count);
    }

    private static string[] WebhookIds(WebhookReceiver receiver)
        => [.. receiver.Deliveries.Select(d => JsonDocument.Parse(d.Body).RootElement.GetProperty("id").GetString()!).Order(StringComparer.Ordinal)];
}
