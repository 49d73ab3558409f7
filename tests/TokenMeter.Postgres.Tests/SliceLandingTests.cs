using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;
using TokenMeter.Attribution;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.Storage;
using TokenMeter.RateLimits;
using TokenMeter.Testing;
using TokenMeter.Testing.FakeOpenAI;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>
/// A call decided from a budget slice settles in-process: its slice's hold keeps counting its real
/// cost until the transaction that stores its records takes it off, once, whatever path the records
/// take to the store (the usual COPY, a replay, stored before the call ended).
/// </summary>
public sealed class SliceLandingTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    private static readonly TimeSpan Window = UserRateLimiter.Window;

    [Fact]
    public async Task ASliceDecidedCall_SettlesWithoutARoundTrip_AndItsCostLeavesTheHoldInTheTransactionThatStoresIt()
    {
        // The first call claims two calls' worth: one hold of 0.2.
        await using var claimed = await ClaimedAsync();
        var (h, slices, first, now) = claimed;
        Assert.Equal(0.2m, await HeldAsync(h));

        // The call ends having cost 0.03: settled in-process, the hold still counts everything.
        var record = Records.Make(now, "u1", input: 60, output: 20, cost: 0.03m);
        slices.Watch(record);
        var settle = slices.SettleAsync([Settle(first, now, record)], [], default);
        Assert.True(settle.IsCompletedSuccessfully);
        await settle;
        Assert.Equal(0.2m, await HeldAsync(h));
        Assert.Equal(0m, await StoredAsync(h));

        // What the call did not use went back into the slice: the next call is decided from it.
        Assert.True(Allowed(await slices.CheckAsync(Check("u1", now), default)));
        Assert.Equal(0.2m, await HeldAsync(h));

        // Stored: the record's cost leaves the hold in the same transaction, counted once throughout.
        await h.Store.AppendAsync([record]);
        Assert.Equal(0.03m, await StoredAsync(h));
        Assert.Equal(0.17m, await HeldAsync(h));
        Assert.Equal(120L, await h.ScalarAsync<long>("SELECT sum(tokens)::bigint FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.Equal(0, h.Context.Landings.Followed);

        // Written again (a spool replay): stored once, taken off once.
        await h.Store.AppendAsync([record]);
        Assert.Equal(0.03m, await StoredAsync(h));
        Assert.Equal(0.17m, await HeldAsync(h));
    }

    [Fact]
    public async Task ARecordStoredBeforeItsCallEnds_IsCountedTwiceAMoment_NeverNotAtAll()
    {
        await using var claimed = await ClaimedAsync();
        var (h, slices, first, now) = claimed;

        // The writer stores the record while its call is still in flight: the hold keeps counting it.
        var early = Records.Make(now, "u1", input: 60, output: 20, cost: 0.03m);
        slices.Watch(early);
        await h.Store.AppendAsync([early]);
        Assert.Equal(0.03m, await StoredAsync(h));
        Assert.Equal(0.2m, await HeldAsync(h));

        // The call ends: an adjustment takes it off the hold (written with the next sweep or claim).
        await slices.SettleAsync([Settle(first, now, early)], [], default);
        slices.Sweep();
        await Eventually.TrueAsync(async _ => await HeldAsync(h) == 0.17m, TimeSpan.FromSeconds(5));
        Assert.Equal(0, h.Context.Landings.Followed);
    }

    [Fact]
    public async Task AReplay_TakesOffOnlyTheRecordsItStores()
    {
        await using var claimed = await ClaimedAsync();
        var (h, slices, first, now) = claimed;
        var a = Records.Make(now, "u1", input: 30, output: 10, cost: 0.02m);
        var b = Records.Make(now, "u1", input: 30, output: 10, cost: 0.01m);
        slices.Watch(a);
        slices.Watch(b);
        await slices.SettleAsync([Settle(first, now, a, b)], [], default);

        // a is stored by a path that does not take it off the hold (as when a commit's answer was lost).
        await using (var other = h.OtherInstance())
        {
            await other.Store.AppendAsync([a]);
        }

        // The COPY of [a, b] fails on a; the replay stores b alone and takes b alone off the hold (a stays counted twice until the lease, never zero times).
        await h.Store.AppendAsync([a, b]);
        Assert.Equal(0.03m, await StoredAsync(h));
        Assert.Equal(0.19m, await HeldAsync(h));
    }

    [Fact]
    public async Task ACallThatCostMoreThanItsEstimate_GrowsTheHold_AndARecordNotFollowedSettlesAsItsOwnHold()
    {
        await using var claimed = await ClaimedAsync();
        var (h, slices, first, now) = claimed;
        var second = Check("u1", now);
        Assert.True(Allowed(await slices.CheckAsync(second, default)));

        // 0.25 against an estimate of 0.1, the slice used up: the hold grows by what the slice lacks (0.15),
        // so it covers the call in flight (0.1) and the real cost not stored yet (0.25).
        var big = Records.Make(now, "u1", input: 60, output: 20, cost: 0.25m);
        slices.Watch(big);
        await slices.SettleAsync([Settle(first, now, big)], [], default);
        slices.Sweep();
        await Eventually.TrueAsync(async _ => await HeldAsync(h) == 0.35m, TimeSpan.FromSeconds(5));
        await h.Store.AppendAsync([big]);
        Assert.Equal(0.25m, await StoredAsync(h));
        Assert.Equal(0.1m, await HeldAsync(h));

        // Not followed from its pricing on: the call becomes its own hold of its real cost, as an exact hold does.
        var unfollowed = Records.Make(now, "u1", input: 60, output: 20, cost: 0.04m);
        await slices.SettleAsync([Settle(second, now, unfollowed)], [], default);
        Assert.Equal(0.04m, await HeldAsync(h));
        Assert.Equal(1L, await h.ScalarAsync<long>($"SELECT count(*) FROM {{s}}.tokenmeter_budget_holds WHERE id = '{second.Budget!.Id}'"));
    }

    [Fact]
    public async Task ASliceReplacedByItsBackgroundClaim_ItsCallsLeaveItsOwnHold_AndEachCostIsCountedOnce()
    {
        // Calls a and b from a slice of 2, c and d from a slice of 4; d, 9 s later, starts the
        // background claim of the next slice (8 calls' worth), which replaces the slice of 4 (its 2 unused calls given back).
        await using var claimed = await ClaimedAsync();
        var (h, slices, a, now) = claimed;
        var b = Check("u1", now);
        var c = Check("u1", now);
        Assert.True(Allowed(await slices.CheckAsync(b, default)));
        Assert.True(Allowed(await slices.CheckAsync(c, default)));
        h.Time.Advance(TimeSpan.FromSeconds(9));
        var d = Check("u1", h.Time.GetUtcNow());
        Assert.True(Allowed(await slices.CheckAsync(d, default)));
        Assert.Equal(1L, slices.PreClaims);
        await slices.PreClaimsEnded();
        await Eventually.TrueAsync(async _ => await HeldAsync(h) == 0.4m + 0.8m);

        // The four calls end having cost 0.03 each; their records are stored: each cost leaves the hold of
        // the slice that decided it, and the new slice's hold is untouched (0.8: the whole of what is held).
        LimitCheck[] calls = [a, b, c, d];
        var records = calls.Select(_ => Records.Make(now, "u1", input: 60, output: 20, cost: 0.03m)).ToArray();
        foreach (var record in records)
        {
            slices.Watch(record);
        }

        await slices.SettleAsync([.. calls.Select((call, i) => Settle(call, now, records[i]))], [], default);
        slices.Sweep();
        await Eventually.TrueAsync(async _ => await HeldAsync(h) == 0.06m + 0.06m + 0.8m);
        await h.Store.AppendAsync(records);
        Assert.Equal(0.12m, await StoredAsync(h));
        Assert.Equal(0.8m, await HeldAsync(h));
        Assert.Equal(0, h.Context.Landings.Followed);

        // Stopped: the new slice is given back; what enforcement reads is the stored spend alone.
        await slices.DisposeAsync();
        Assert.Equal(0m, await HeldAsync(h));
        Assert.Equal(0.12m, await StoredAsync(h));
    }

    [Fact]
    public async Task ThroughAHost_SliceDecidedCallsWriteNoHoldOfTheirOwn_AndEachCostIsCountedOnce()
    {
        var schema = "ld_" + Guid.NewGuid().ToString("N")[..8];
        await using var model = await FakeOpenAIServer.StartAsync();
        model.DefaultReply = FakeReply.WithUsage(100, 40);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["TokenMeter:Writer:SpoolDirectory"] = Directory.CreateTempSubdirectory("tokenmeter-landings-").FullName,
        });
        builder.Services.AddTokenMeter()
            .AddPostgresStore(database.ConnectionString, o => o.Schema = schema)
            .AddBudgets()
            .AddRateLimits(o =>
            {
                o.RequestsPerMinute = 1_000;
                o.TokensPerMinute = 1_000_000;
            })
            .AddOpenAIClient(o =>
            {
                o.Endpoint = model.Endpoint;
                o.ApiKey = "test-key";
                o.MaxRetries = 0;
            });
        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<PostgresSchemaInstaller>().Installed.WaitAsync(TimeSpan.FromSeconds(20));
        await host.Services.GetRequiredService<IBudgetStore>().SetDefaultBudgetAsync(new BudgetLimit(1_000m, null));
        var limiter = host.Services.GetRequiredService<UserRateLimiter>();
        var guard = host.Services.GetRequiredService<BudgetGuard>();
        var slices = host.Services.GetRequiredService<HeadroomSlices>();
        var chat = host.Services.GetRequiredService<OpenAIClient>().GetChatClient("gpt-4o-mini");
        await limiter.CheckWithBudgetAsync("user:warm-up", "warm-up", new BudgetEstimate(0.01m, 1_000), guard);
        await Eventually.TrueAsync(() => slices.IsLive);

        const int Calls = 20;
        await Parallel.ForAsync(0, Calls, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (_, _) =>
        {
            await using var decision = await limiter.CheckWithBudgetAsync("user:u1", "u1", new BudgetEstimate(0.01m, 1_000), guard);
            Assert.True(decision.IsAllowed && decision.Budget!.IsAllowed);
            await using var budget = decision.Budget;
            using (UsageScope.Begin(new UsageContext { UserId = "u1" }))
            {
                await chat.CompleteChatAsync([new UserChatMessage("hint")]);
            }
        });
        await host.Services.GetRequiredService<SharedLimitSettler>().FlushAsync();

        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        async Task<T> ScalarAsync<T>(string sql)
        {
            await using var command = new Npgsql.NpgsqlCommand(sql.Replace("{s}", "\"" + schema + "\"", StringComparison.Ordinal), connection);
            return (T)(await command.ExecuteScalarAsync())!;
        }

        // No call became a hold of its own (those carry their records' ids): every one settled in-process.
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1' AND record_ids IS NOT NULL"));
        await Eventually.TrueAsync(async _ => await ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage WHERE user_id = 'u1'") == Calls);
        var stored = await ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.user_api_usage WHERE user_id = 'u1'");
        Assert.True(stored > 0m);

        // The process's own ledger forgets the records once the writer reports them stored (checks here never prune it).
        await Eventually.TrueAsync(() => guard.Ledger.For("u1").PendingCount == 0);

        // The writer's transactions took the stored costs off the slices' holds (their landed rows hold minus the costs;
        // a record stored before its call's settle is taken off by an adjustment instead).
        var landed = await ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1' AND cost_usd < 0");
        Assert.InRange(landed, -stored, -0.000001m);

        // Stopped: the slices give back what they did not use; what is left counted by the holds is nothing (each cost is counted by the stored spend alone).
        await host.StopAsync();
        host.Dispose();
        Assert.Equal(0m, await ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'"));
        Assert.Equal(Calls, model.RequestCount);
    }

    private static Task<decimal> HeldAsync(PostgresStoreHarness h) =>
        h.ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'");

    private static Task<decimal> StoredAsync(PostgresStoreHarness h) =>
        h.ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage WHERE user_id = 'u1'");

    private static HoldSettle Settle(LimitCheck check, DateTimeOffset now, params UsageRecord[] records) =>
        new(check.Budget!.Id, records.Sum(r => r.CostUsd ?? 0m), records.Sum(r => r.TotalTokens), [.. records.Select(r => (r.Id, r.CreatedAt))], now.AddMinutes(10), check.Budget.ExpiresAt);

    /// <summary>A store with slices live and user u1's first call decided (it claimed two calls' worth: a hold of 0.2).</summary>
    private async Task<Claimed> ClaimedAsync()
    {
        var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        var slices = await HeadroomSliceTests.LiveAsync(h);
        var first = Check("u1", h.Time.GetUtcNow());
        Assert.True(Allowed(await slices.CheckAsync(first, default)));
        return new Claimed(h, slices, first, h.Time.GetUtcNow());
    }

    private static bool Allowed(LimitCheckResult result) => result.RefusedBy is null && result.Budget is null or { Allowed: true };

    private static LimitCheck Check(string user, DateTimeOffset now) => new(
        new RateLimitRequest(UserRateLimiter.TokensKey(user), Guid.CreateVersion7(), now, Window, 1_000_000, 100, MustFit: false),
        new RateLimitRequest("requests/" + user, Guid.CreateVersion7(), now, Window, 1_000, 1, MustFit: true),
        new BudgetHoldRequest(Guid.CreateVersion7(), user, new DateOnly(now.Year, now.Month, 1), new BudgetEstimate(0.1m, 100), now, now.AddMinutes(5)));
}

/// <summary>A store, its slices and the first call of u1.</summary>
internal sealed record Claimed(PostgresStoreHarness H, HeadroomSlices Slices, LimitCheck First, DateTimeOffset Now) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        await Slices.DisposeAsync();
        await H.DisposeAsync();
    }
}
