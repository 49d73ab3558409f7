using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TokenMeter.Budgets;
using TokenMeter.Storage;

namespace TokenMeter.Tests.Budgets;

public sealed class BudgetCacheTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 25, 6, 30, 0, TimeSpan.Zero));

    [Fact]
    public async Task LimitSetThroughTheStore_RefusesAtOnce_AndLiftingItAllowsAtOnce()
    {
        await using var sp = Build();
        var guard = sp.GetRequiredService<BudgetGuard>();
        var budgets = sp.GetRequiredService<IBudgetStore>();
        await sp.GetRequiredService<InMemoryUsageStore>().AppendAsync([Record("u1", 1m)]);

        using (var first = await guard.ReserveAsync("u1"))
        {
            Assert.True(first.IsAllowed); // No budget yet; "none" is now cached.
        }

        await budgets.SetUserBudgetAsync(new UserBudget("u1", 1m, null));
        using (var refused = await guard.ReserveAsync("u1"))
        {
            Assert.Equal(BudgetRefusalReason.CostLimit, refused.Reason);
        }

        Assert.True(await budgets.DeleteUserBudgetAsync("u1"));
        using (var lifted = await guard.ReserveAsync("u1"))
        {
            Assert.True(lifted.IsAllowed);
        }

        await budgets.SetDefaultBudgetAsync(new BudgetLimit(0.5m, null));
        using var byDefault = await guard.ReserveAsync("u1");
        Assert.Equal(BudgetRefusalReason.CostLimit, byDefault.Reason);
    }

    [Fact]
    public async Task ChangeByAnotherInstance_AppliesWithinTheCacheDuration()
    {
        await using var sp = Build();
        var guard = sp.GetRequiredService<BudgetGuard>();
        var shared = sp.GetRequiredService<InMemoryUsageStore>(); // What another instance writes to.
        await shared.AppendAsync([Record("u1", 1m)]);

        using (var first = await guard.ReserveAsync("u1"))
        {
            Assert.True(first.IsAllowed);
        }

        await shared.SetUserBudgetAsync(new UserBudget("u1", 1m, null));
        _time.Advance(TimeSpan.FromSeconds(4));
        using (var stale = await guard.ReserveAsync("u1"))
        {
            Assert.True(stale.IsAllowed); // Within the 5 s bound this instance may not know yet.
        }

        _time.Advance(TimeSpan.FromSeconds(1));
        using var fresh = await guard.ReserveAsync("u1");
        Assert.Equal(BudgetRefusalReason.CostLimit, fresh.Reason);
    }

    [Fact]
    public async Task RepeatedChecks_ReadTheStoreOncePerCacheDuration_ZeroDurationReadsEveryTime()
    {
        var counting = new CountingBudgetStore(new InMemoryUsageStore(_time));
        await using (var sp = Build(s => s.AddSingleton<IBudgetStore>(counting)))
        {
            var guard = sp.GetRequiredService<BudgetGuard>();
            for (var i = 0; i < 50; i++)
            {
                using var reservation = await guard.ReserveAsync("u1");
                Assert.True(reservation.IsAllowed);
            }

            Assert.Equal(1, counting.Reads);
            _time.Advance(TimeSpan.FromSeconds(5));
            using (await guard.ReserveAsync("u1"))
            {
            }

            Assert.Equal(2, counting.Reads);
        }

        var uncached = new CountingBudgetStore(new InMemoryUsageStore(_time));
        await using (var sp = Build(s => s.AddSingleton<IBudgetStore>(uncached), o => o.BudgetCacheDuration = TimeSpan.Zero))
        {
            var guard = sp.GetRequiredService<BudgetGuard>();
            for (var i = 0; i < 10; i++)
            {
                using var reservation = await guard.ReserveAsync("u1");
            }

            Assert.Equal(10, uncached.Reads);
        }
    }

    [Fact]
    public async Task FailedRead_IsNotCached()
    {
        var flaky = new CountingBudgetStore(new InMemoryUsageStore(_time)) { Fail = true };
        await using var sp = Build(s => s.AddSingleton<IBudgetStore>(flaky));
        var guard = sp.GetRequiredService<BudgetGuard>();
        await flaky.Inner.SetUserBudgetAsync(new UserBudget("u1", 0m, null));

        using (var failOpen = await guard.ReserveAsync("u1"))
        {
            Assert.True(failOpen.IsAllowed);
        }

        flaky.Fail = false;
        using var refused = await guard.ReserveAsync("u1");
        Assert.Equal(BudgetRefusalReason.CostLimit, refused.Reason);
    }

    [Fact]
    public async Task ManyUsers_KeepTheCacheBounded_AndLimitsStayCorrect()
    {
        var store = new CountingBudgetStore(new InMemoryUsageStore(_time));
        await store.Inner.SetUserBudgetAsync(new UserBudget("limited", 1m, null));
        var cache = new CachingBudgetStore(store, _time, TimeSpan.FromMinutes(1));

        for (var i = 0; i < CachingBudgetStore.MaxEntries + 10; i++)
        {
            Assert.Null(await cache.GetEffectiveBudgetAsync("u" + i));
        }

        Assert.Equal(CachingBudgetStore.MaxEntries + 10, store.Reads);
        Assert.Equal(1m, (await cache.GetEffectiveBudgetAsync("limited"))!.MonthlyCostUsd);
        Assert.Equal(1m, (await cache.GetEffectiveBudgetAsync("limited"))!.MonthlyCostUsd);
        Assert.Equal(CachingBudgetStore.MaxEntries + 11, store.Reads); // The second lookup was served from the cache.
        Assert.True(cache.CachedUsers <= CachingBudgetStore.MaxEntries);
    }

    private ServiceProvider Build(Action<IServiceCollection>? before = null, Action<BudgetGuardOptions>? options = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddSingleton<TimeProvider>(_time);
        before?.Invoke(services);
        services.AddTokenMeter().AddBudgets(options);
        return services.BuildServiceProvider();
    }

    private UsageRecord Record(string userId, decimal cost) => new()
    {
        Id = Guid.NewGuid(),
        CreatedAt = _time.GetUtcNow(),
        UserId = userId,
        Model = "gpt-4o-mini",
        Operation = UsageOperation.Chat,
        CostUsd = cost,
        TotalTokens = 10,
    };

    private sealed class CountingBudgetStore(InMemoryUsageStore inner) : IBudgetStore
    {
        private int _reads;

        public InMemoryUsageStore Inner => inner;

        public bool Fail { get; set; }

        public int Reads => Volatile.Read(ref _reads);

        public ValueTask<BudgetSettings> GetBudgetsAsync(CancellationToken cancellationToken = default) => inner.GetBudgetsAsync(cancellationToken);

        public ValueTask<BudgetLimit?> GetEffectiveBudgetAsync(string userId, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _reads);
            return Fail ? throw new IOException("store down") : inner.GetEffectiveBudgetAsync(userId, cancellationToken);
        }

        public ValueTask SetDefaultBudgetAsync(BudgetLimit? limit, CancellationToken cancellationToken = default) => inner.SetDefaultBudgetAsync(limit, cancellationToken);

        public ValueTask SetUserBudgetAsync(UserBudget budget, CancellationToken cancellationToken = default) => inner.SetUserBudgetAsync(budget, cancellationToken);

        public ValueTask<bool> DeleteUserBudgetAsync(string userId, CancellationToken cancellationToken = default) => inner.DeleteUserBudgetAsync(userId, cancellationToken);
    }
}
