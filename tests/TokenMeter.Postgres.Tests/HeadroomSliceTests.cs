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

        // Claimed at 0 s (2 permits of 8), the second used at 8 s (before the slice's last eighth:
        // nothing is claimed in the background), the slice ends (lifetime 10 s) at 10 s.
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        h.Time.Advance(TimeSpan.FromSeconds(8));
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        Assert.Equal(0, a.PreClaims);
        h.Time.Advance(TimeSpan.FromSeconds(2));
        a.Sweep();
        Assert.Equal(0, a.OpenSlices);

        // At 8 s + 59 s, the window (7 s, 67 s] holds the use at 8 s.
        h.Time.Advance(TimeSpan.FromSeconds(57));
        Assert.Equal(2L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);

        // Once the window has passed the slice's end, nothing of it counts (only the permit just taken at 68 s).
        h.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(1L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);
        Assert.True(h.Time.GetUtcNow() - start > Window + TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ABusyUsersNextSlice_IsClaimedOnceInTheBackground_AndCallsAfterTheSliceEndsDoNotWait()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("u1", 1_000m, null));
        await using var slices = await LiveAsync(h);
        var (claims, waits) = (slices.Claims, slices.Waits);
        LimitCheck Call() => Check("u1", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000, tokensLimit: 1_000_000);
        async Task<long> RequestsAsync() => await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/u1'");
        async Task<decimal> HeldAsync() => await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'u1'");

        // 14 calls: claims of 2, 4 and 8 calls' worth; the 14th leaves the slice of 8 fewer than an
        // eighth of its calls, and the next slice (16) is claimed in the background.
        for (var i = 0; i < 14; i++)
        {
            Assert.True(Allowed(await slices.CheckAsync(Call(), default)));
        }

        Assert.Equal((claims + 3, waits + 3, 1L), (slices.Claims, slices.Waits, slices.PreClaims));

        // The 15th does not fit the used-up slice: it waits for that claim, and claims nothing itself.
        Assert.True(Allowed(await slices.CheckAsync(Call(), default)));
        Assert.Equal((claims + 3, waits + 4, 1L), (slices.Claims, slices.Waits, slices.PreClaims));
        await slices.PreClaimsEnded();
        await Eventually.TrueAsync(async _ => await RequestsAsync() == 2 + 4 + 8 + 16);
        await Eventually.TrueAsync(async _ => await HeldAsync() == 3.0m);

        // 9 s later, a call leaves the slice of 16 less than an eighth of its lifetime: one background
        // claim (of 16 again: the slice ends mostly unused), which replaces it and gives back its 14 unused calls.
        h.Time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(Allowed(await slices.CheckAsync(Call(), default)));
        Assert.Equal(2L, slices.PreClaims);
        await slices.PreClaimsEnded();
        await Eventually.TrueAsync(async _ => await RequestsAsync() == 14 + 2 + 16);
        await Eventually.TrueAsync(async _ => await HeldAsync() == 1.6m + 1.6m);

        // After the old slice's end, the user's calls are decided from the new one: no call waits, nothing is claimed.
        h.Time.Advance(TimeSpan.FromSeconds(2));
        slices.Sweep();
        for (var i = 0; i < 5; i++)
        {
            Assert.True(Allowed(await slices.CheckAsync(Call(), default)));
        }

        Assert.Equal((claims + 3, waits + 4, 2L), (slices.Claims, slices.Waits, slices.PreClaims));
        Assert.Equal(3, slices.OpenSlices);
        Assert.Equal(32L, await RequestsAsync());
        Assert.Equal(3.2m, await HeldAsync());
    }

    [Fact]
    public async Task ASliceReplacedByItsBackgroundClaim_CountsInEveryWindowThatContainsAUseOfIt()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await using var a = await LiveAsync(h);
        var exact = new Postgres.RateLimits.PostgresRateLimitStore(h.Context);
        var start = Slot(h.Time.GetUtcNow());
        async Task<long> CountedAsync(long slot) =>
            await h.ScalarAsync<long>($"SELECT coalesce(sum(amount), 0)::bigint FROM {{s}}.tokenmeter_rate_slots WHERE key = 'requests/u1' AND slot = {slot}");

        // Claimed at 0 s (2 permits of 8, counted in second 10), the second used at 9 s: the next
        // slice is claimed then, decided against both (2 + 3 <= 8: granted 2, counted in second 19).
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        h.Time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        Assert.Equal(1L, a.PreClaims);
        await a.PreClaimsEnded();

        // The old slice ended at 9 s: its 2 uses moved to second 9; the new slice counts whole in its last second.
        await Eventually.TrueAsync(async _ => await CountedAsync(start + 10) == 0);
        Assert.Equal((2L, 2L), (await CountedAsync(start + 9), await CountedAsync(start + 19)));
        Assert.Equal(1, a.OpenSlices);

        // Used at 11 s without waiting; at 19 s the new slice ends, its one use staying in second 19.
        var waits = a.Waits;
        h.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(Allowed(await a.CheckAsync(Requests("u1", h.Time.GetUtcNow(), 8), default)));
        Assert.Equal(waits, a.Waits);
        h.Time.Advance(TimeSpan.FromSeconds(8));
        a.Sweep();
        Assert.Equal(0, a.OpenSlices);
        await Eventually.TrueAsync(async _ => await CountedAsync(start + 19) == 1);

        // At 9 s + 59 s, the window (8 s, 68 s] holds the uses at 9 s and 11 s.
        h.Time.Advance(TimeSpan.FromSeconds(49));
        Assert.Equal(3L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);

        // At 72 s the uses at 9 s are out; the one at 11 s still counts (in second 19, until 79 s), with the permit taken at 68 s.
        h.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(2L, (await exact.AcquireAsync(new RateLimitRequest("requests/u1", Guid.CreateVersion7(), h.Time.GetUtcNow(), Window, 8, 1, MustFit: true))).Used);
    }

    [Fact]
    public async Task ABudgetChangeWhileTheNextSliceIsClaimed_GivesItBackAtOnce()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("pc-drop", 1_000m, null));
        await using var a = await LiveAsync(h);
        await using var other = h.OtherInstance();
        await ThreeCallsThenNineSecondsAsync(h, a, "pc-drop");

        // The next slice's claim waits in the database (another transaction holds the user's budget lock)...
        await using (await BlockBudgetAsync("pc-drop"))
        {
            Assert.True(Allowed(await a.CheckAsync(Check("pc-drop", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000), default)));
            Assert.Equal(1L, a.PreClaims);

            // ... while the budget is changed through the other instance: the budget slice is dropped at once.
            await other.Budgets.SetUserBudgetAsync(new UserBudget("pc-drop", 500m, null));
            await Eventually.TrueAsync(() => a.OpenSlices == 2);
        }

        // Granted once the lock is released, and given back: only the 4 calls' estimates stay held, the old rate slices go on.
        await a.PreClaimsEnded();
        Assert.Equal(2, a.OpenSlices);
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'pc-drop'") == 0.4m);
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/pc-drop'") == 6);

        // The next call claims a budget slice under the new budget as usual.
        var claims = a.Claims;
        var next = await a.CheckAsync(Check("pc-drop", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000), default);
        Assert.Equal(new BudgetLimit(500m, null), next.Budget!.Limit);
        Assert.Equal(claims + 1, a.Claims);
    }

    [Fact]
    public async Task ANextSliceClaimedAfterTheUserStopped_OrWhileTheInstanceStops_IsGivenBack()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("pc-stop", 1_000m, null));
        await h.Budgets.SetUserBudgetAsync(new UserBudget("pc-dispose", 1_000m, null));
        var a = await LiveAsync(h);
        await ThreeCallsThenNineSecondsAsync(h, a, "pc-stop");

        // The user's last call starts the next slice's claim, which answers only after the slice's lifetime is over.
        await using (await BlockBudgetAsync("pc-stop"))
        {
            Assert.True(Allowed(await a.CheckAsync(Check("pc-stop", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000), default)));
            h.Time.Advance(TimeSpan.FromSeconds(2));
            a.Sweep();
            Assert.Equal(0, a.OpenSlices);
        }

        await a.PreClaimsEnded();
        Assert.Equal(0, a.OpenSlices);
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'pc-stop'") == 0.4m);
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/pc-stop'") == 4);

        // The instance stops while a next slice is being claimed: shutdown waits for it and gives it back with the rest.
        await ThreeCallsThenNineSecondsAsync(h, a, "pc-dispose");
        var blocked = await BlockBudgetAsync("pc-dispose");
        Assert.True(Allowed(await a.CheckAsync(Check("pc-dispose", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000), default)));
        Assert.Equal(2L, a.PreClaims);
        var stopping = a.DisposeAsync().AsTask();
        await blocked.DisposeAsync();
        await stopping;
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'pc-dispose'") == 0.4m);
        await Eventually.TrueAsync(async _ => await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/pc-dispose'") == 4);
    }

    [Fact]
    public async Task ABackgroundClaimTheBudgetRefuses_ChangesNothing_AndTheNextCallClaimsAsUsual()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("pc-refused", 1.0m, null));
        await using var a = await LiveAsync(h);
        LimitCheck Call() => Check("pc-refused", h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000);
        async Task<long> RequestsAsync() => await h.ScalarAsync<long>("SELECT sum(amount)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/pc-refused'");

        // A slice of 2 (0.2 held), then 0.75 spent elsewhere: 0.75 + 0.2 held + 0.1 is past the budget of 1.
        Assert.True(Allowed(await a.CheckAsync(Call(), default)));
        await h.Store.AppendAsync([Records.Make(h.Time.GetUtcNow(), "pc-refused", cost: 0.75m)]);

        // 9 s later the slice's last call starts a background claim: the budget refuses it; the
        // requests permits the database kept for it are given back, the current slices go on.
        h.Time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(Allowed(await a.CheckAsync(Call(), default)));
        Assert.Equal(1L, a.PreClaims);
        await a.PreClaimsEnded();
        Assert.Equal(3, a.OpenSlices);
        await Eventually.TrueAsync(async _ => await RequestsAsync() == 2);
        Assert.Equal(0.2m, await h.ScalarAsync<decimal>("SELECT sum(cost_usd) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'pc-refused'"));

        // The next call does not fit the used-up slices: it claims as usual, and the budget refuses it.
        var claims = a.Claims;
        Assert.False((await a.CheckAsync(Call(), default)).Budget!.Allowed);
        Assert.Equal(claims + 1, a.Claims);
    }

    [Theory]
    [InlineData(5.0, 1_000)]
    [InlineData(1_000.0, 40)]
    public async Task BackgroundClaimsOnThreeInstances_NeverHoldMoreThanTheHeadroom(double budget, long requestsLimit)
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await h.Budgets.SetUserBudgetAsync(new UserBudget("pc-burst", (decimal)budget, null));
        await using var a = await LiveAsync(h);
        await using var b = await LiveAsync(h.OtherInstance());
        await using var c = await LiveAsync(h.OtherInstance());
        HeadroomSlices[] instances = [a, b, c];
        async Task<decimal> HeldAsync() => await h.ScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM {s}.tokenmeter_budget_holds WHERE user_id = 'pc-burst'");
        async Task<long> RequestsAsync() => await h.ScalarAsync<long>("SELECT coalesce(sum(amount), 0)::bigint FROM {s}.tokenmeter_rate_slots WHERE key = 'requests/pc-burst'");
        LimitCheck Call() => Check("pc-burst", h.Time.GetUtcNow(), tokens: 10, cost: 0.1m, requestsLimit: requestsLimit);

        // Each instance claims 2, then 4 calls' worth; 9 s later each one's first call starts a background claim.
        var allowed = 0;
        foreach (var instance in instances)
        {
            for (var i = 0; i < 3; i++)
            {
                allowed += Allowed(await instance.CheckAsync(Call(), default)) ? 1 : 0;
            }
        }

        h.Time.Advance(TimeSpan.FromSeconds(9));
        using var stop = new CancellationTokenSource();
        var (maxHeld, maxRequests) = (0m, 0L);
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                maxHeld = Math.Max(maxHeld, await HeldAsync());
                maxRequests = Math.Max(maxRequests, await RequestsAsync());
            }
        });
        var results = await Task.WhenAll(Enumerable.Range(0, 150).Select(i => instances[i % 3].CheckAsync(Call(), default).AsTask()));
        await Task.WhenAll(instances.Select(i => i.PreClaimsEnded()));
        await stop.CancelAsync();
        await sampler;
        allowed += results.Count(Allowed);

        // The slices of all three, old and new together, never held more than the headroom: at most 50 calls of 0.1, or 40 requests.
        Assert.True(instances.Sum(i => i.PreClaims) >= 3);
        Assert.InRange(allowed, 1, Math.Min((long)((decimal)budget / 0.1m), requestsLimit));
        Assert.True(Math.Max(maxHeld, await HeldAsync()) <= (decimal)budget);
        Assert.True(Math.Max(maxRequests, await RequestsAsync()) <= requestsLimit);
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

    /// <summary>Three calls of <paramref name="user"/> (claims of 2 and 4 calls' worth: 3 left), then 9 s on: the next call starts a background claim.</summary>
    private static async Task ThreeCallsThenNineSecondsAsync(PostgresStoreHarness h, HeadroomSlices slices, string user)
    {
        var claims = slices.Claims;
        for (var i = 0; i < 3; i++)
        {
            Assert.True(Allowed(await slices.CheckAsync(Check(user, h.Time.GetUtcNow(), tokens: 100, cost: 0.1m, requestsLimit: 1_000), default)));
        }

        Assert.Equal(claims + 2, slices.Claims);
        h.Time.Advance(TimeSpan.FromSeconds(9));
    }

    /// <summary>Holds the transaction lock of a user's budget, as another instance's check does, until disposed: that user's claims wait in the database meanwhile.</summary>
    private async Task<IAsyncDisposable> BlockBudgetAsync(string user)
    {
        var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction);
        command.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = "tokenmeter.budget/" + user });
        await command.ExecuteNonQueryAsync();
        return new Blocked(connection, transaction);
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

    /// <summary>A budget lock held by <see cref="BlockBudgetAsync"/>: released (rolled back) when disposed.</summary>
    private sealed class Blocked(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await transaction.RollbackAsync();
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}
