using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using TokenMeter.AspNetCore.Reports;
using TokenMeter.Budgets;
using TokenMeter.Storage;

namespace TokenMeter.AspNetCore.Tests.Reports;

public sealed class UsageReportServiceTests
{
    // Wednesday 25 November 2026, 05:00 UTC: yesterday's report is not due until 06:00.
    private static readonly DateTimeOffset BeforeSix = new(2026, 11, 25, 5, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly Yesterday = new(2026, 11, 24);

    private static async Task<InMemoryUsageStore> SeededStoreAsync(FakeTimeProvider time)
    {
        var store = new InMemoryUsageStore(time);
        var at = new DateTimeOffset(Yesterday.ToDateTime(new TimeOnly(15, 0)), TimeSpan.Zero);
        var before = at.AddDays(-1);
        await store.AppendAsync(
        [
            ReportTestHost.Record(at, "7", "/api/analyze", "gpt-4o", 1000, 500, 0.0075m),
            ReportTestHost.Record(at, "7", "/api/hint", "gpt-4o-mini", 200, 100, 0.00009m),
            ReportTestHost.Record(at, "8", "/api/chat", "gpt-4o-mini", 300, 300, 0.000225m),
            ReportTestHost.Record(at, null, "/api/chat", "gpt-4o-mini", 100, 100, 0.000075m),
            ReportTestHost.Record(before, "8", "/api/chat", "gpt-4o-mini", 300, 300, 0.004m),
        ]);
        await store.SetDefaultBudgetAsync(new BudgetLimit(0.009m, null));
        return store;
    }

    [Fact]
    public async Task CheckScheduled_DueDailyReport_ArrivesAndParses_WithTheStoresNumbers()
    {
        var time = new FakeTimeProvider(BeforeSix.AddHours(1.5));
        var store = await SeededStoreAsync(time);
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = ReportTestHost.Create(store, time, smtp.Port, "daily");

        await app.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None);
        var message = await smtp.NextAsync();

        Assert.Equal("TokenMeter daily usage report: 2026-11-24", message.Subject);
        Assert.Equal(["ops@example.test", "finance@example.test"], message.To.Mailboxes.Select(m => m.Address));
        Assert.Equal("daily 2026-11-24", message.Headers["X-TokenMeter-Report"]);
        Assert.NotNull(message.HtmlBody);
        Assert.NotNull(message.TextBody);

        // The figures are the store's: 4 calls, 2,600 tokens, $0.00789 yesterday; 1 call, 600 tokens, $0.004 the day before.
        var days = await store.GetDailyUsageAsync(Yesterday, Yesterday);
        Assert.Equal(4, days[0].Figures.Calls);
        Assert.Contains($"Calls:  4 (previous 1, +300.0%)", message.TextBody, StringComparison.Ordinal);
        Assert.Contains($"Tokens: {days[0].Figures.TotalTokens.ToString("#,0", CultureInfo.InvariantCulture)} (previous 600,", message.TextBody, StringComparison.Ordinal);
        Assert.Contains($"Cost:   ${days[0].Figures.CostUsd.ToString("#,0.00######", CultureInfo.InvariantCulture)} (previous $0.004,", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("#7: 2 calls, 1,800 tokens, $0.00759", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("/api/analyze: 1 calls, 1,500 tokens, $0.0075", message.TextBody, StringComparison.Ordinal);

        // User 7 spent $0.00759 of a $0.009 default budget (84.3%); user 8 only 46.9% ($0.004225).
        Assert.Contains("Users above 80% of their monthly budget: 1", message.TextBody, StringComparison.Ordinal);
        Assert.DoesNotContain("#8: 46.9%", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("#7: 84.3%", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("Forecast for 2026-11:", message.TextBody, StringComparison.Ordinal);

        // The HTML shows the same figures, encoded.
        Assert.Contains("<td style=\"text-align:right;border-bottom:1px solid #f3f4f6;padding:4px 8px\">$0.00789</td>", message.HtmlBody, StringComparison.Ordinal);
        Assert.Contains("/api/analyze", message.HtmlBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckScheduled_BeforeSixUtc_HoldsYesterdaysReport()
    {
        var time = new FakeTimeProvider(BeforeSix);
        var store = await SeededStoreAsync(time);
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = ReportTestHost.Create(store, time, smtp.Port, "daily", "weekly", "monthly");

        await app.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None);

        // Last week's and last month's reports were due on Monday and on the 1st; yesterday's is not yet.
        var subjects = new[] { (await smtp.NextAsync()).Subject, (await smtp.NextAsync()).Subject };
        Assert.DoesNotContain(subjects, s => s!.Contains("daily", StringComparison.Ordinal));
        Assert.Equal(0, smtp.Drain());
        Assert.True(await store.TryClaimAsync("report.daily", "2026-11-24", TimeSpan.FromMinutes(1)), "nothing claimed the report yet");
    }

    [Fact]
    public async Task CheckScheduled_TwoInstancesAndARestart_SendEachPeriodOnce()
    {
        var time = new FakeTimeProvider(BeforeSix.AddHours(2));
        var store = await SeededStoreAsync(time);
        await using var smtp = LoopbackSmtpServer.Start();
        await using var first = ReportTestHost.Create(store, time, smtp.Port, "daily", "weekly", "monthly");
        await using var second = ReportTestHost.Create(store, time, smtp.Port, "daily", "weekly", "monthly");

        // Both instances check at once: one daily, one weekly (16–22 Nov) and one monthly (October) report in all.
        await Task.WhenAll(
            first.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None),
            second.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None));
        var subjects = new[] { (await smtp.NextAsync()).Subject, (await smtp.NextAsync()).Subject, (await smtp.NextAsync()).Subject };
        Assert.Equivalent(
            new[]
            {
                "TokenMeter daily usage report: 2026-11-24",
                "TokenMeter weekly usage report: 2026-11-16 to 2026-11-22",
                "TokenMeter monthly usage report: 2026-10-01 to 2026-10-31",
            },
            subjects);

        // A restarted instance (new services, same store) sends nothing again, even after the leases ran out.
        time.Advance(TimeSpan.FromHours(1));
        await using (var restarted = ReportTestHost.Create(store, time, smtp.Port, "daily", "weekly", "monthly"))
        {
            await restarted.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None);
            await first.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None);
        }

        Assert.Equal(0, smtp.Drain());

        // The next day brings the next daily report only.
        time.Advance(TimeSpan.FromDays(1));
        await second.GetRequiredService<UsageReportService>().CheckScheduledAsync(CancellationToken.None);
        Assert.Equal("TokenMeter daily usage report: 2026-11-25", (await smtp.NextAsync()).Subject);
        Assert.Equal(0, smtp.Drain());
    }

    [Fact]
    public async Task CheckScheduled_SmtpDown_RetriesWithBackoffAndSendsOnce()
    {
        var time = new FakeTimeProvider(BeforeSix.AddHours(2));
        var store = await SeededStoreAsync(time);
        var port = LoopbackSmtpServer.FreePort();
        await using var app = ReportTestHost.Create(store, time, port, "daily");
        var service = app.GetRequiredService<UsageReportService>();

        // Nobody listens: the send fails, the claim is left to expire.
        await service.CheckScheduledAsync(CancellationToken.None);

        await using var smtp = LoopbackSmtpServer.Start(port);

        // Within the back-off (5 minutes) nothing is retried.
        time.Advance(TimeSpan.FromMinutes(2));
        await service.CheckScheduledAsync(CancellationToken.None);
        Assert.Equal(0, smtp.Drain());

        time.Advance(TimeSpan.FromMinutes(4));
        await service.CheckScheduledAsync(CancellationToken.None);
        Assert.Equal("TokenMeter daily usage report: 2026-11-24", (await smtp.NextAsync()).Subject);

        time.Advance(TimeSpan.FromMinutes(30));
        await service.CheckScheduledAsync(CancellationToken.None);
        Assert.Equal(0, smtp.Drain());
    }

    [Fact]
    public async Task HostedService_SendsTheDueReportOnStart_AndSendNowQueuesAnother()
    {
        var time = new FakeTimeProvider(BeforeSix.AddHours(3));
        var store = await SeededStoreAsync(time);
        await using var smtp = LoopbackSmtpServer.Start();
        await using var app = ReportTestHost.Create(store, time, smtp.Port, "daily");
        var hosted = app.GetServices<IHostedService>().OfType<UsageReportService>().Single();

        await hosted.StartAsync(CancellationToken.None);
        try
        {
            Assert.Equal("TokenMeter daily usage report: 2026-11-24", (await smtp.NextAsync()).Subject);

            Assert.True(hosted.TrySendNow(ReportPeriod.Monthly));
            var monthly = await smtp.NextAsync();
            Assert.Equal("TokenMeter monthly usage report: 2026-10-01 to 2026-10-31", monthly.Subject);
        }
        finally
        {
            await hosted.StopAsync(CancellationToken.None);
        }
    }
}
