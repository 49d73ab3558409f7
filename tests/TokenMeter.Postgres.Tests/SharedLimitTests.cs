using Microsoft.Extensions.DependencyInjection;
using TokenMeter.Budgets;
using TokenMeter.Postgres.Budgets;
using TokenMeter.Postgres.RateLimits;
using TokenMeter.RateLimits;
using TokenMeter.Testing;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>
/// Migration 0009: every check of a call in one round trip (all or nothing for the call), concurrent
/// checks in one statement (in arrival order, never past a limit), settles batched into one statement
/// that counts nothing twice when written twice, counters that give the headroom fully back, and the
/// settler that writes the settles after the responses.
/// </summary>
public sealed class SharedLimitTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    private static readonly TimeSpan Window = UserRateLimiter.Window;

    [Fact]
    public async Task CheckLimits_TokensRequestsAndBudgetInOneStatement_ARefusedCallKeepsNoTokensEntryAndNoHold()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var store = new PostgresRateLimitStore(h.Context);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1.0m, null));
        var now = h.Time.GetUtcNow();

        // Allowed: a tokens entry, a request permit and a hold, all from one statement.
        var first = await store.CheckAsync(Check("u1", "requests/a", now, tokens: 50, cost: 0.4m), default);
        Assert.Null(first.RefusedBy);
        Assert.True(first.Budget!.Allowed);
        Assert.Equal(new BudgetLimit(1.0m, null), first.Budget.Limit);
        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_rate_slots"));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));

        // Refused by the requests window (one a minute): its tokens entry is gone too, no hold made.
        var second = await store.CheckAsync(Check("u1", "requests/a", now, tokens: 50, cost: 0.4m), default);
        Assert.Equal(RateLimitKind.Requests, second.RefusedBy);
        Assert.False(second.Rate!.Allowed);
        Assert.True(second.Rate.RetryAfter > TimeSpan.Zero);
        Assert.Equal(50L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));

        // Refused by the budget (0.4 held + 0.7 > 1.0): the request permit stays taken, the tokens entry does not.
        var third = await store.CheckAsync(Check("u1", "requests/b", now, tokens: 50, cost: 0.7m), default);
        Assert.Null(third.RefusedBy);
        Assert.False(third.Budget!.Allowed);
        Assert.Equal(0.4m, third.Budget.ReservedCostUsd);
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/b'"));
        Assert.Equal(50L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));

        // The single-limit paths of the public interfaces go through the same statement.
        var reservations = new PostgresBudgetReservations(h.Context);
        var hold = await reservations.TryReserveAsync(new BudgetHoldRequest(Guid.CreateVersion7(), "u1", Month(now), new BudgetEstimate(0.5m, 10), now, now.AddMinutes(5)));
        Assert.True(hold.Allowed);
        var permit = await store.AcquireAsync(new RateLimitRequest("requests/c", Guid.CreateVersion7(), now, Window, 1, 1, MustFit: true));
        Assert.True(permit.Allowed);
        Assert.False((await store.AcquireAsync(new RateLimitRequest("requests/c", Guid.CreateVersion7(), now, Window, 1, 1, MustFit: true))).Allowed);
    }

    [Fact]
    public async Task SettleLimits_ManyHoldsAndEntriesInOneStatement_WrittenTwice_CountsNothingTwice()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var reservations = new PostgresBudgetReservations(h.Context);
        var store = new PostgresRateLimitStore(h.Context);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1.0m, null));
        var now = h.Time.GetUtcNow();
        var used = Check("u1", "requests/u1", now, tokens: 500, cost: 0.3m);
        var unused = Check("u1", "requests/u1-2", now, tokens: 500, cost: 0.3m);
        Assert.True((await store.CheckAsync(used, default)).Budget!.Allowed);
        Assert.True((await store.CheckAsync(unused, default)).Budget!.Allowed);

        // The used call made two records costing 0.1 in all; the other used nothing.
        var records = new[] { Records.Make(now, cost: 0.06m), Records.Make(now.AddMilliseconds(1), cost: 0.04m) };
        HoldSettle[] holds =
        [
            new(used.Budget!.Id, 0.1m, 300, [.. records.Select(r => (r.Id, r.CreatedAt))], now.AddMinutes(10), used.Budget.ExpiresAt),
            new(unused.Budget!.Id, 0m, 0, [], now.AddMinutes(10), unused.Budget.ExpiresAt),
        ];
        EntrySettle[] entries =
        [
            new(used.Tokens!.Key, used.Tokens.Id, 300, now + Window),
            new(unused.Tokens!.Key, unused.Tokens.Id, 0, now + Window),
        ];
        await reservations.SettleAsync(holds, entries, default);
        await reservations.SettleAsync(holds, entries, default);

        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(0.1m, await h.ScalarAsync<decimal>("SELECT cost_usd FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(2, await h.ScalarAsync<int>("SELECT cardinality(record_ids) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(300L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));

        // Before the records land the hold counts their cost; after, the rollup does instead: once either way.
        var probe = new BudgetHoldRequest(Guid.CreateVersion7(), "u1", Month(now), new BudgetEstimate(0.9m, 0), now, now.AddMinutes(5));
        var before = await reservations.TryReserveAsync(probe);
        Assert.True(before.Allowed);
        Assert.Equal((0m, 0.1m), (before.SpentCostUsd, before.ReservedCostUsd));
        await reservations.ReleaseAsync(probe.Id);
        await h.Store.AppendAsync(records);
        await reservations.SettleAsync(holds, entries, default);
        var after = await reservations.TryReserveAsync(new BudgetHoldRequest(Guid.CreateVersion7(), "u1", Month(now), new BudgetEstimate(0.9m, 0), now, now.AddMinutes(5)));
        Assert.True(after.Allowed);
        Assert.Equal((0.1m, 0m), (after.SpentCostUsd, after.ReservedCostUsd));
    }

    [Fact]
    public async Task Settler_WritesWhatIsQueuedAfterTheResponses_InBatches_AndDrainsOnDispose()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var reservations = new PostgresBudgetReservations(h.Context);
        var store = new PostgresRateLimitStore(h.Context);
        var services = new ServiceCollection()
            .AddSingleton<IBudgetReservationStore>(reservations)
            .AddSingleton<IRateLimitStore>(store)
            .AddSingleton<TimeProvider>(h.Time)
            .BuildServiceProvider();
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        var now = h.Time.GetUtcNow();
        var checks = Enumerable.Range(0, 200).Select(i => Check("u1", "requests/u1", now, tokens: 100, cost: 1m, requestsLimit: 1_000)).ToList();
        foreach (var check in checks)
        {
            Assert.True((await store.CheckAsync(check, default)).Budget!.Allowed);
        }

        var settler = new SharedLimitSettler(services);
        foreach (var (check, i) in checks.Select((c, i) => (c, i)))
        {
            settler.Enqueue(new HoldSettle(check.Budget!.Id, i % 2 == 0 ? 0m : 0.01m, 10, i % 2 == 0 ? [] : [(Guid.CreateVersion7(), now)], now.AddMinutes(10), check.Budget.ExpiresAt));
            settler.Enqueue(new EntrySettle(check.Tokens!.Key, check.Tokens.Id, i % 2 == 0 ? 0 : 10, now + Window));
        }

        await settler.FlushAsync();
        Assert.Equal(100L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(1.00m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(1_000L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));

        // Queued just before shutdown: written before the settler lets go of the store.
        foreach (var check in checks.Where((_, i) => i % 2 == 1))
        {
            settler.Enqueue(new HoldSettle(check.Budget!.Id, 0m, 0, [], now.AddMinutes(10), check.Budget.ExpiresAt));
        }

        await settler.DisposeAsync();
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));
    }

    [Fact]
    public async Task CheckBatch_ChecksOfOneUserInOneStatement_InArrivalOrder_NeverPastAnyLimit()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1.0m, null));
        var now = h.Time.GetUtcNow();

        // Tokens 1,000 a minute (100 each: the 10 first pass), requests 30, budget 1.0 (0.15 each: 6 fit).
        var checks = Enumerable.Range(0, 40).Select(_ => Check("u1", "requests/u1", now, tokens: 100, cost: 0.15m, requestsLimit: 30, tokensLimit: 1_000)).ToList();
        var results = await PostgresSharedLimits.CheckBatchAsync(h.Context, checks, default);

        Assert.All(results.Take(6), r => Assert.True(r.RefusedBy is null && r.Budget!.Allowed));
        Assert.All(results.Skip(6).Take(4), r => Assert.False(r.Budget!.Allowed));
        Assert.All(results.Skip(10), r => Assert.Equal(RateLimitKind.Tokens, r.RefusedBy));
        Assert.Equal(0.75m, results[5].Budget!.ReservedCostUsd);
        Assert.Equal(6L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(0.90m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds"));
        Assert.Equal(600L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'tokens/u1'"));
        Assert.Equal(10L, await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'"));

        // Many checks at once through the store (coalesced while one is in flight): still within every limit.
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u2", 1.0m, null));
        var store = new PostgresRateLimitStore(h.Context);
        var burst = await Task.WhenAll(Enumerable.Range(0, 60).Select(i =>
            store.CheckAsync(Check("u2", "requests/u2", now, tokens: 10, cost: 0.09m, requestsLimit: 8), default).AsTask()));
        var allowed = burst.Count(r => r.RefusedBy is null && r.Budget!.Allowed);
        Assert.InRange(allowed, 1, 8);
        Assert.True(await h.ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u2'") <= 1.0m);
        Assert.Equal((long)allowed, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u2'"));
        Assert.True(await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u2'") <= 8);
    }

    [Fact]
    public async Task Counters_AfterSettlesAndLapsedLeases_TheHeadroomIsFullyBack()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var store = new PostgresRateLimitStore(h.Context);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1.0m, null));
        var now = h.Time.GetUtcNow();
        var checks = Enumerable.Range(0, 5).Select(_ => Check("u1", "requests/u1", now, tokens: 200, cost: 0.2m, requestsLimit: 100, tokensLimit: 1_000)).ToList();
        foreach (var check in checks)
        {
            Assert.True((await store.CheckAsync(check, default)).Budget!.Allowed);
        }

        var full = await store.CheckAsync(Check("u1", "requests/u1", now, tokens: 1, cost: 0.2m, requestsLimit: 100, tokensLimit: 1_000), default);
        Assert.Equal(RateLimitKind.Tokens, full.RefusedBy);

        // Three calls used nothing: their holds and token estimates are gone; two are left in flight.
        await store.SettleAsync(
            [.. checks.Take(3).Select(c => new HoldSettle(c.Budget!.Id, 0m, 0, [], now.AddMinutes(10), c.Budget.ExpiresAt))],
            [.. checks.Take(3).Select(c => new EntrySettle(c.Tokens!.Key, c.Tokens.Id, 0, now + Window))],
            default);
        var partly = await store.CheckAsync(Check("u1", "requests/u1", now, tokens: 1, cost: 0.5m, requestsLimit: 100, tokensLimit: 1_000), default);
        Assert.True(partly.Budget!.Allowed);
        Assert.Equal(0.4m, partly.Budget.ReservedCostUsd);

        // The leases lapse and the window passes: nothing is left counted.
        h.Time.Advance(TimeSpan.FromMinutes(6));
        var later = h.Time.GetUtcNow();
        var fresh = await store.CheckAsync(Check("u1", "requests/u1", later, tokens: 999, cost: 1.0m, requestsLimit: 1, tokensLimit: 1_000), default);
        Assert.Null(fresh.RefusedBy);
        Assert.True(fresh.Budget!.Allowed);
        Assert.Equal((0m, 0m), (fresh.Budget.SpentCostUsd, fresh.Budget.ReservedCostUsd));
        Assert.Equal(0L, fresh.Rate!.Used);
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds"));
    }

    [Fact]
    public async Task LapsedHolds_OfUsersWhoNeverComeBack_AreSweptByOtherUsersChecks()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var store = new PostgresRateLimitStore(h.Context);
        await h.Budgets.SetDefaultBudgetAsync(new BudgetLimit(1.0m, null));
        var now = h.Time.GetUtcNow();
        Assert.True((await store.CheckAsync(Check("ghost", "requests/ghost", now, tokens: 10, cost: 0.1m, requestsLimit: 100), default)).Budget!.Allowed);

        // The ghost's hold lapses and the ghost never checks again: another user's checks delete it (their sweep runs every 10 s per process).
        h.Time.Advance(TimeSpan.FromMinutes(6));
        await Eventually.TrueAsync(async _ =>
        {
            h.Time.Advance(TimeSpan.FromSeconds(11));
            Assert.True((await store.CheckAsync(Check("alive", "requests/alive", h.Time.GetUtcNow(), tokens: 10, cost: 0.1m, requestsLimit: 100), default)).Budget!.Allowed);
            return await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'ghost'") == 0;
        });

        // Holds in force stay.
        Assert.True(await h.ScalarAsync<long>("SELECT count(*) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'alive'") >= 1);
    }

    private static LimitCheck Check(string user, string requestsKey, DateTimeOffset now, long tokens, decimal cost, long requestsLimit = 1, long tokensLimit = 100_000) => new(
        new RateLimitRequest(UserRateLimiter.TokensKey(user), Guid.CreateVersion7(), now, Window, tokensLimit, tokens, MustFit: false),
        new RateLimitRequest(requestsKey, Guid.CreateVersion7(), now, Window, requestsLimit, 1, MustFit: true),
        new BudgetHoldRequest(Guid.CreateVersion7(), user, Month(now), new BudgetEstimate(cost, tokens), now, now.AddMinutes(5)));

    private static DateOnly Month(DateTimeOffset now) => new(now.Year, now.Month, 1);
}
