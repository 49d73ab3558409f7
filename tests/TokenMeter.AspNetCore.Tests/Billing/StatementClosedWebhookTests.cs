using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenMeter.Billing;
using TokenMeter.Delivery;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Budgets;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Testing;

namespace TokenMeter.AspNetCore.Tests.Billing;

public sealed class StatementClosedWebhookTests
{
    private static readonly DateTimeOffset InOctober = new(2026, 10, 14, 9, 0, 0, TimeSpan.Zero);

    private static Task<TestApp> StartInstanceAsync(InMemoryUsageStore shared, Uri hook) => TestApp.StartAsync(
        configure: b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Alerts:WebhookUrl"] = hook.ToString(),
            ["TokenMeter:Alerts:WebhookSecret"] = "statement-secret",
            ["TokenMeter:Alerts:InitialRetryDelay"] = "00:00:00.010",
            ["TokenMeter:Billing:MarkupPercent"] = "10",
        }),
        store: tm =>
        {
            tm.Services.Replace(ServiceDescriptor.Singleton(shared));
            tm.UseStore<IUsageStore>(_ => shared).UseStore<IUsageQueries>(_ => shared).UseStore<IBudgetStore>(_ => shared).UseStore<IDeliveryLog>(_ => shared);
        });

    /// <summary>The senders' own idle signal: every webhook queued so far was delivered or given up.</summary>
    private static async Task SentAsync(params TestApp[] apps)
    {
        foreach (var app in apps)
        {
            await Eventually.CompletesAsync(app.Services.GetRequiredService<WebhookSender>().WhenIdleAsync(), what: "the webhook sender to go idle");
        }
    }

    [Fact]
    public async Task StatementClosed_TwoInstancesAndARestart_OnePerUserAndMonth()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var shared = new InMemoryUsageStore(TimeProvider.System);
        await shared.AppendAsync(
        [
            TestApp.Record("u1", 0.0125m, 1000, "/api/analyze", "gpt-4o", InOctober),
            TestApp.Record("u1", 0.00375m, 400, "/api/hint", "gpt-4o-mini", InOctober),
            TestApp.Record("u2", 1.234567m, 200, "/api/chat", "gpt-4o-mini", InOctober),
            TestApp.Record(null, 5m, 200, "/api/chat", "gpt-4o-mini", InOctober), // anonymous: billed to nobody
            TestApp.Record("u3", 2m, 100, "/api/chat", "gpt-4o-mini", InOctober.AddMonths(1)), // November is still open
        ]);

        await using (var first = await StartInstanceAsync(shared, receiver.Url))
        await using (var second = await StartInstanceAsync(shared, receiver.Url))
        {
            var a = first.Services.GetRequiredService<StatementClosedNotifier>();
            var b = second.Services.GetRequiredService<StatementClosedNotifier>();
            await Task.WhenAll(a.CheckAsync(force: true, CancellationToken.None), b.CheckAsync(force: true, CancellationToken.None));
            await Eventually.TrueAsync(() => receiver.Deliveries.Count >= 2);

            // Once delivered and completed (both senders idle), neither instance sends them again.
            await SentAsync(first, second);
            await a.CheckAsync(force: true, CancellationToken.None);
            await b.CheckAsync(force: true, CancellationToken.None);
            await SentAsync(first, second);
        }

        await using (var restarted = await StartInstanceAsync(shared, receiver.Url))
        {
            await restarted.Services.GetRequiredService<StatementClosedNotifier>().CheckAsync(force: true, CancellationToken.None);
            await SentAsync(restarted);
        }

        var events = receiver.Deliveries.ToArray();
        Assert.Equal(2, events.Length);
        Assert.All(events, e => Assert.Equal("statement.closed", e.Event));
        Assert.All(events, e => Assert.StartsWith("sha256=", e.Signature, StringComparison.Ordinal));
        var bodies = events.Select(e => JsonDocument.Parse(e.Body).RootElement).OrderBy(e => e.GetProperty("id").GetString()).ToArray();
        Assert.Equal(["statement.closed/u1/2026-10", "statement.closed/u2/2026-10"], bodies.Select(e => e.GetProperty("id").GetString()));
        var u1 = bodies[0].GetProperty("data");
        Assert.Equal("u1", u1.GetProperty("userId").GetString());
        Assert.Equal("2026-10", u1.GetProperty("month").GetString());
        Assert.Equal(0.01625m, u1.GetProperty("costUsd").GetDecimal());
        Assert.Equal(0.02m, u1.GetProperty("amountUsd").GetDecimal());
        Assert.Equal(2, u1.GetProperty("lines").GetArrayLength());
        Assert.Equal(
            ["endpoint", "model", "calls", "inputTokens", "cachedInputTokens", "cacheWriteTokens", "outputTokens", "totalTokens", "costUsd"],
            u1.GetProperty("lines")[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(1.36m, bodies[1].GetProperty("data").GetProperty("amountUsd").GetDecimal()); // 1.3580237
    }
}
