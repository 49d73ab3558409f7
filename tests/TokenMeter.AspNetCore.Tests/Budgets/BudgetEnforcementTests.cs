using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.AspNetCore.Attribution;
using TokenMeter.AspNetCore.Budgets;
using TokenMeter.AspNetCore.Tests.Hosting;
using TokenMeter.Attribution;
using TokenMeter.Budgets;
using TokenMeter.RateLimits;
using TokenMeter.Testing.FakeOpenAI;

namespace TokenMeter.AspNetCore.Tests.Budgets;

public abstract class BudgetEnforcementTestsBase : StoreTestBase
{
    /// <summary>Handler calls that got past the filter (the "model" was called).</summary>
    private int _modelCalls;

    [Fact]
    public async Task OverBudget_429WithRetryAfterAndProblemType_HandlerNotRun()
    {
        await using var app = await StartAppAsync();
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 1m, null));
        await app.SeedAsync(TestApp.Record("s1", 1m));

        using var response = await app.As("s1", "student").PostAsync("/work", null);
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        // 2026-11-25T06:30Z to 2026-12-01T00:00Z.
        Assert.Equal(TimeSpan.FromDays(5) + TimeSpan.FromHours(17.5), response.Headers.RetryAfter?.Delta);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(BudgetProblemTypes.Exceeded, problem.RootElement.GetProperty("type").GetString());
        Assert.Equal(0, _modelCalls);
    }

    [Fact]
    public async Task TokenLimit_Refuses_DefaultBudgetApplies_OverrideLifts()
    {
        await using var app = await StartAppAsync();
        await app.Budgets.SetDefaultBudgetAsync(new BudgetLimit(null, 1000));
        await app.SeedAsync(TestApp.Record("s1", 0.01m, 1000), TestApp.Record("s2", 0.01m, 1000));
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s2", null, null));

        using var s1 = await app.As("s1", "student").PostAsync("/work", null);
        Assert.Equal(HttpStatusCode.TooManyRequests, s1.StatusCode);
        Assert.Contains("token", await s1.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        using var s2 = await app.As("s2", "student").PostAsync("/work", null);
        Assert.Equal(HttpStatusCode.OK, s2.StatusCode);
    }

    [Fact]
    public async Task UnderBudget_Allowed_LastMonthDoesNotCount_AnonymousPasses()
    {
        await using var app = await StartAppAsync();
        await app.Budgets.SetDefaultBudgetAsync(new BudgetLimit(1m, null));
        await app.SeedAsync(TestApp.Record("s1", 0.98m), TestApp.Record("s1", 5m, at: TestApp.Now.AddMonths(-1)));

        using var allowed = await app.As("s1", "student").PostAsync("/work", null);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        using var anonymous = await app.As(null).PostAsync("/work-anonymous", null);
        Assert.Equal(HttpStatusCode.OK, anonymous.StatusCode);
    }

    [Fact]
    public async Task Burst_FiftyParallelCallsAtTheLimit_SpendNoMoreThanOneCallPastIt()
    {
        await using var app = await StartAppAsync();
        const decimal costPerCall = 0.01m;
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 0.10m, null));
        await app.SeedAsync(TestApp.Record("s1", 0.05m));

        var client = app.As("s1", "student");
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => client.PostAsync("/work", null)));
        var ok = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        var refused = responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.Equal(50, ok + refused);

        var spent = (await app.Services.GetRequiredService<BudgetGuard>().GetStatusAsync("s1")).CostUsd;
        Assert.True(spent <= 0.10m + costPerCall, $"spent {spent}");
        // Reservations are released as calls end, so the limit is reached, not undershot.
        Assert.True(spent >= 0.10m - costPerCall, $"spent {spent}");
        Assert.Equal(ok, _modelCalls);
        foreach (var r in responses)
        {
            r.Dispose();
        }
    }

    [Fact]
    public async Task Burst_ThroughRealMeteringAndFakeOpenAI_ModelNotCalledWhenRefused_LimitHeld()
    {
        await using var server = await FakeOpenAIServer.StartAsync();
        server.DefaultReply = FakeReply.WithUsage(10_000, 10_000) with { Delay = TimeSpan.FromMilliseconds(20) };
        const decimal costPerCall = 10_000 * 0.15m / 1_000_000 + 10_000 * 0.60m / 1_000_000; // gpt-4o-mini
        await using var app = await StartAsync(
            b =>
            {
                b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["TokenMeter:OpenAI:Endpoint"] = server.Endpoint.ToString(),
                    ["TokenMeter:OpenAI:ApiKey"] = "sk-test",
                    ["TokenMeter:OpenAI:MaxRetries"] = "0",
                });
                b.Services.AddTokenMeter().AddOpenAIClient();
            },
            a => a.MapPost("/chat", async (OpenAIClient client) =>
            {
                await client.GetChatClient("gpt-4o-mini").CompleteChatAsync([new UserChatMessage("help")]);
                return Results.Ok();
            }).WithUsageAttribution().WithBudgetEnforcement());
        await app.Budgets.SetUserBudgetAsync(new UserBudget("s1", 0.05m, null));
        var guard = app.Services.GetRequiredService<BudgetGuard>();
        var client = app.As("s1", "student");

        var burst = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => client.PostAsync("/chat", null)));
        var ok = burst.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.Equal(50, ok + burst.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests && r.Headers.RetryAfter?.Delta > TimeSpan.Zero));
        Assert.Equal(ok, server.RequestCount);
        Assert.True((await guard.GetStatusAsync("s1")).CostUsd <= 0.05m + costPerCall);

        // Then one at a time until refused: refused once the reservation (the default 0.01 USD) no longer fits.
        for (var i = 0; i < 20; i++)
        {
            // With a shared store a settle still queued counts the call's estimate (a worst case, which
            // can refuse a call early): let the last call's settle land so the refusal point is exact.
            if (app.Services.GetService<SharedLimitSettler>() is { } settler)
            {
                await settler.FlushAsync();
            }

            using var response = await client.PostAsync("/chat", null);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                break;
            }

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var spent = (await guard.GetStatusAsync("s1")).CostUsd;
        Assert.InRange(spent, 0.05m - 0.01m, 0.05m + costPerCall);
        Assert.Equal(spent, server.RequestCount * costPerCall);
        foreach (var r in burst)
        {
            r.Dispose();
        }
    }

    [Fact]
    public async Task Attribution_UserFromHook_LabelFromRouteOrMetadata()
    {
        UsageContext? seen = null;
        UsageContext? labelled = null;
        await using var app = await StartAsync(map: a =>
        {
            a.MapPost("/api/things/{id}", (string id) =>
            {
                seen = UsageScope.Current?.Context;
                return Results.Ok();
            }).WithUsageAttribution(ctx =>
            {
                ctx.UserId ??= ctx.HttpContext.Request.Headers["X-Body-User"];
                ctx.SessionId = "sess-1";
                ctx.ProblemId = ctx.GetArgument<string>();
                ctx.Tags["grade"] = "7";
                return ValueTask.CompletedTask;
            });
            a.MapPost("/labelled", () =>
            {
                labelled = UsageScope.Current?.Context;
                return Results.Ok();
            }).WithUsageAttribution().WithUsageLabel("/api/custom");
        });

        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/things/p9");
        request.Headers.Add("X-Body-User", "77");
        using (await app.As(null).SendAsync(request))
        {
        }

        Assert.NotNull(seen);
        Assert.Equal("77", seen.UserId);
        Assert.Equal("/api/things/{id}", seen.Endpoint);
        Assert.Equal("sess-1", seen.SessionId);
        Assert.Equal("p9", seen.ProblemId);
        Assert.Equal("7", seen.Tags!["grade"]);

        using (await app.As("s5", "student").PostAsync("/labelled", null))
        {
        }

        Assert.Equal("s5", labelled?.UserId);
        Assert.Equal("/api/custom", labelled?.Endpoint);
    }

    [Fact]
    public async Task StoreUnreadable_FailsOpenByDefault_ClosedByOption()
    {
        await using (var open = await StartAppAsync(b =>
        {
            b.Services.AddSingleton<IBudgetStore>(new BrokenBudgetStore());
            b.Services.AddSingleton<IBudgetReservationStore>(new BrokenBudgetStore());
        }))
        {
            using var response = await open.As("s1", "student").PostAsync("/work", null);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await using var closed = await StartAppAsync(b =>
        {
            b.Services.AddSingleton<IBudgetStore>(new BrokenBudgetStore());
            b.Services.AddSingleton<IBudgetReservationStore>(new BrokenBudgetStore());
            b.Services.Configure<BudgetGuardOptions>(o => o.FailClosed = true);
        });
        using var refused = await closed.As("s1", "student").PostAsync("/work", null);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal(BudgetProblemTypes.Unavailable, problem.RootElement.GetProperty("type").GetString());
    }

    private Task<TestApp> StartAppAsync(Action<WebApplicationBuilder>? configure = null) => StartAsync(configure, a =>
    {
        a.MapPost("/work", async (HttpContext http) =>
        {
            Interlocked.Increment(ref _modelCalls);
            var guard = http.RequestServices.GetRequiredService<BudgetGuard>();
            var store = http.RequestServices.GetRequiredService<TokenMeter.Storage.IUsageStore>();
            await Task.Yield();

            // What the metering path does after a priced call: observed at once, stored by the writer later.
            var record = TestApp.Record(UsageScope.Current!.Context.UserId, 0.01m, 10, endpoint: UsageScope.Current.Context.Endpoint);
            guard.Observe(record);
            await store.AppendAsync([record]);
            return Results.Ok(new { id = record.Id.ToString("N", CultureInfo.InvariantCulture) });
        }).WithUsageAttribution().WithBudgetEnforcement();
        a.MapPost("/work-anonymous", () => Results.Ok()).WithUsageAttribution().WithBudgetEnforcement();
    });

    /// <summary>A store that cannot be reached: budgets and (shared) reservations alike.</summary>
    private sealed class BrokenBudgetStore : IBudgetStore, IBudgetReservationStore
    {
        public ValueTask<BudgetHoldResult> TryReserveAsync(BudgetHoldRequest request, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask SettleAsync(Guid id, decimal costUsd, long tokens, IReadOnlyList<(Guid Id, DateTimeOffset CreatedAt)> records, DateTimeOffset keepUntil, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask ReleaseAsync(Guid id, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default) => throw new IOException("store down");

        public ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default) => throw new IOException("store down");
    }
}

public sealed class BudgetEnforcementTests : BudgetEnforcementTestsBase;
