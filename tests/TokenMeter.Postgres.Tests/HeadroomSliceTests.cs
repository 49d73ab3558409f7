using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;
using TokenMeter.Testing;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>
/// Headroom slices: an instance claims some calls' worth of a user's headroom in one round trip and
/// decides the next calls in-process; slices grow while the user keeps calling, shrink to one call
/// near a limit, are dropped on every instance when a budget changes, are given back when they end
/// or the instance stops, and stay counted in every window that contains a use of them.
/// </summary>
public sealed class HeadroomSliceTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    private static readonly TimeSpan Window = UserRateLimiter.Window;

    [Fact]
    public async Task Slices_GrowWhileAUserKeepsCalling_AndDecideInProcessBetweenClaims()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        // Set before the slices listen: its notification does not drop the slices below.
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        await using var slices = await LiveAsync(h);
        var now = h.Time.GetUtcNow();

        // First claim: 2 calls' worth of each limit, counted in the slice's last second.
        Assert.True(Allowed(await slices.CheckAsync(Check("u1", now, tokens: 100, cost: 0.1m, requestsLimit: 1_000, tokensLimit: 1_000_000), default)));
        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        Assert.Equal(200L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));
        Assert.Equal(0.2m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.Equal(Slot(now) + 10, await h.ScalarAsync<long>("SELECT max(slot) FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));

        // The second call comes from the slice: the database does not see it.
        Assert.True(Allowed(await slices.CheckAsync(Check("u1", now, tokens: 100, cost: 0.1m, requestsLimit: 1_000, tokensLimit: 1_000_000), default)));
        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));

        // Used up: the next claim asks for twice as much (4), and so on (8 more after that).
        for (var i = 0; i < 5; i++)
        {
            Assert.True(Allowed(await slices.CheckAsync(Check("u1", now, tokens: 100, cost: 0.1m, requestsLimit: 1_000, tokensLimit: 1_000_000), default)));
        }

        Assert.Equal(14L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        Assert.Equal(1.4m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.Equal(3, slices.OpenSlices);
    }

    [Fact]
    public async Task NearALimit_ASliceIsOneCall_AndTheLimitIsNeverPassed()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        // 0.25 USD at 0.1 a call: after the first call a quarter of what is left is less than a call.
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 0.25m, null));
        await using var slices = await LiveAsync(h);
        var now = h.Time.GetUtcNow();
        Assert.True(Allowed(await slices.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default)));
        Assert.Equal(0.1m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.True(Allowed(await slices.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default)));
        var third = await slices.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default);
        Assert.False(third.Budget!.Allowed);
        Assert.Equal(0.2m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));

        // Three instances, 90 parallel calls of one user at 30 requests a minute, and a budget of 6 calls: never past either.
        await using var b = await LiveAsync(h.OtherInstance());
        await using var c = await LiveAsync(h.OtherInstance());
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u2", 0.6m, null));
        HeadroomSlices[] instances = [slices, b, c];
        var results = await Task.WhenAll(Enumerable.Range(0, 90).Select(i =>
            instances[i % 3].CheckAsync(Check("u2", now, tokens: 10, cost: 0.1m, requestsLimit: 30), default).AsTask()));
        var allowed = results.Count(Allowed);
        Assert.InRange(allowed, 1, 6);
        Assert.True(await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u2'") <= 0.6m);
        Assert.True(await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u2'") <= 30);

        await h.Budgets.SetUserBudgetAsync(new UserBudget("u3", 1_000m, null));
        results = await Task.WhenAll(Enumerable.Range(0, 90).Select(i =>
            instances[i % 3].CheckAsync(Check("u3", now, tokens: 10, cost: 0.1m, requestsLimit: 30), default).AsTask()));
        Assert.InRange(results.Count(Allowed), 1, 30);
        Assert.Equal(90 - results.Count(Allowed), results.Count(r => r.RefusedBy == RateLimitKind.Requests));
        Assert.True(await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u3'") <= 30);
    }

    [Fact]
    public async Task ABudgetChangedOnAnotherInstance_DropsTheSlices_AndGivesTheUnusedPartBack()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        await using var a = await LiveAsync(h);
        var other = h.OtherInstance();
        var now = h.Time.GetUtcNow();
        var first = Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000);
        Assert.True(Allowed(await a.CheckAsync(first, default)));
        Assert.Equal(0.2m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));

        // Lowered through the other instance: within a second the slice is gone and only the call in flight is held.
        await other.Budgets.SetUserBudgetAsync(new UserBudget("u1", 0.15m, null));
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'") == 0.1m, TimeSpan.FromSeconds(1));
        var next = await a.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default);
        Assert.False(next.Budget!.Allowed);
        Assert.Equal(new BudgetLimit(0.15m, null), next.Budget.Limit);

        // The call's settle: its own hold of the real cost replaces its estimate in the slice's hold.
        await a.SettleAsync([new HoldSettle(first.Budget!.Id, 0.03m, 5, [(Guid.CreateVersion7(), now)], now.AddMinutes(10), first.Budget.ExpiresAt)], [new EntrySettle(first.Tokens!.Key, first.Tokens.Id, 5, now + Window)], default);
        Assert.Equal(0.03m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        await other.DisposeAsync();
    }

    [Fact]
    public async Task OnDispose_TheUnusedPartOfEverySliceGoesBack_WhatWasUsedStays()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        var a = await LiveAsync(h);
        var now = h.Time.GetUtcNow();
        for (var i = 0; i < 3; i++)
        {
            Assert.True(Allowed(await a.CheckAsync(Check("u1", now, tokens: 100, cost: 0.1m, requestsLimit: 1_000, tokensLimit: 1_000_000), default)));
        }

        // Claimed 2 + 4 calls' worth, used 3.
        Assert.Equal(6L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        await a.DisposeAsync();
        Assert.Equal(3L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        Assert.Equal(300L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));
        Assert.Equal(0.3m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));

        // What was used counts from the second the slices ended, not the slices' last second.
        Assert.Equal(Slot(now), await h.ScalarAsync<long>("SELECT max(slot) FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1' AND amount > 0"));
    }

    [Fact]
    public async Task ASliceCounts_InEveryWindowThatContainsAUseOfIt()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await using var a = await LiveAsync(h);
        var exact = new Postgres.RateLimits.PostgresRateLimitStore(h.Context);
        var start = h.Time.GetUtcNow();

        // Claimed at 0 s (2 permits of 8), the second used at 9 s, the slice ends (lifetime 10 s) at 10 s.
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        h.Time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        a.Sweep();
        Assert.Equal(0, a.OpenSlices);

        // At 9 s + 59 s, the window (8 s, 68 s] holds the use at 9 s.
        h.Time.Advance(TimeSpan.FromSeconds(58));
        Assert.Equal(2L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);

        // Once the window has passed the slice's end, nothing of it counts (only the permit just taken at 68 s).
        h.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(1L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);
        Assert.True(h.Time.GetUtcNow() - start > Window + TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task SlicesOff_EveryCheckIsExact()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.LocalSlices = false);
        await using var a = new HeadroomSlices(h.Context);
        var now = h.Time.GetUtcNow();
        Assert.True(Allowed(await a.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default)));
        Assert.True(Allowed(await a.CheckAsync(Check("u1", now, tokens: 10, cost: 0.1m, requestsLimit: 1_000), default)));
        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        Assert.Equal(Slot(now), await h.ScalarAsync<long>("SELECT max(slot) FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));
        Assert.False(a.IsLive);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AddPostgresStore_SlicesOnByDefault_OffByOption_AndGivenBackWhenTheHostStops(bool slices)
    {
        var schema = "sl_" + Guid.NewGuid().ToString("N")[..8];
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddTokenMeter()
            .AddPostgresStore(database.ConnectionString, o =>
            {
                o.Schema = schema;
                if (!slices)
                {
                    o.LocalSlices = false;
                }
            })
            .AddBudgets()
            .AddRateLimits(o =>
            {
                o.RequestsPerMinute = 1_000;
                o.TokensPerMinute = 1_000_000;
            });
        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));
        await host.Services.GetRequiredService<IBudgetStore>().SetDefaultBudgetAsync(new BudgetLimit(1_000m, null));
        var limiter = host.Services.GetRequiredService<UserRateLimiter>();
        var guard = host.Services.GetRequiredService<BudgetGuard>();
        var sliced = host.Services.GetRequiredService<HeadroomSlices>();
        Assert.Equal(slices, sliced.Enabled);
        if (slices)
        {
            await limiter.CheckWithBudgetAsync("user:warm-up", "warm-up", new BudgetEstimate(0.01m, 100), guard);
            await Eventually.TrueAsync(() => sliced.IsLive);
        }

        for (var i = 0; i < 3; i++)
        {
            await using var decision = await limiter.CheckWithBudgetAsync("user:u1", "u1", new BudgetEstimate(0.01m, 100), guard);
            Assert.True(decision.IsAllowed && decision.Budget!.IsAllowed);
            await decision.Budget.DisposeAsync();
        }

        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        async Task<long> RequestsCountedAsync()
        {
            await using var command = new Npgsql.NpgsqlCommand($"SELECT coalesce(sum(amount), 0)::bigint FROM \"{schema}\".tokenmeter_rate_slots WHERE key = 'requests/user:u1'", connection);
            return (long)(await command.ExecuteScalarAsync())!;
        }

        // Sliced: claimed 2 + 4 calls' worth for 3 calls; exact: one permit a call.
        Assert.Equal(slices ? 6L : 3L, await RequestsCountedAsync());
        Assert.Equal(slices ? 3 : 0, sliced.OpenSlices);
        await host.StopAsync();
        host.Dispose();

        // Stopped: what the slices did not use is given back.
        Assert.Equal(3L, await RequestsCountedAsync());
    }

    /// <summary>Slices on a store, once they listen for changes (until then every check is exact).</summary>
    internal static async Task<HeadroomSlices> LiveAsync(PostgresStoreHarness h)
    {
        var slices = new HeadroomSlices(h.Context);
        await slices.CheckAsync(new LimitCheck(null, new RateLimitRequest("requests/warm-up", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 1_000_000, 1, MustFit: true), null), default);
        await Eventually.TrueAsync(() => slices.IsLive);
        return slices;
    }

    private static bool Allowed(LimitCheckResult result) => result.RefusedBy is null && result.Budget is null or { Allowed: true };

    private static long Slot(DateTimeOffset at) => at.ToUnixTimeSeconds();

    private static LimitCheck Requests(string user, DateTimeOffset now, long limit) =>
        new(null, new RateLimitRequest("requests/" + user, Guid.CreateVersion7(), now, Window, limit, 1, MustFit: true), null);

    private static LimitCheck Check(string user, DateTimeOffset now, long tokens, decimal cost, long requestsLimit, long tokensLimit = 100_000) => new(
        new RateLimitRequest(UserRateLimiter.TokensKey(user), Guid.CreateVersion7(), now, Window, tokensLimit, tokens, MustFit: false),
        new RateLimitRequest("requests/" + user, Guid.CreateVersion7(), now, Window, requestsLimit, 1, MustFit: true),
        new BudgetHoldRequest(Guid.CreateVersion7(), user, new DateOnly(now.Year, now.Month, 1), new BudgetEstimate(cost, tokens), now, now.AddMinutes(5)));
}
