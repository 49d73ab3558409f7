using Microsoft.Extensions.Time.Testing;
using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Querying;
using TokenMeter.Storage;
using TokenMeter.Testing.Conformance;

namespace TokenMeter.Tests.Forecasting;

public sealed class UsageForecasterTests
{
    [Fact]
    public async Task ForecastAllUsersAsync_RowsNotInUserOrder_EqualTheForecastsFromRowsInOrder()
    {
        var store = new InMemoryUsageStore();
        var random = new Random(5);
        string[] users = ["b", "a", "user-10", "user-9", "Z"];
        var start = new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
        await store.AppendAsync([.. Enumerable.Range(0, 400).Select(_ => UsageStoreConformanceTests.Call(
            users[random.Next(users.Length)], start.AddMinutes(random.Next(0, 60 * 24 * 54)), "/api/chat", "gpt-4o", 100, 50, random.Next(1, 10_000) / 100_000m))]);
        await store.SetDefaultBudgetAsync(new BudgetLimit(0.01m, null));
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

        var want = await new UsageForecaster(store, store, time).ForecastAllUsersAsync();
        Assert.Equal(users.Length, want.Count);

        // The users' rows interleaved (by day, then user id descending): put in user order first, each user's days kept.
        var got = await new UsageForecaster(new InterleavedDays(store), store, time).ForecastAllUsersAsync();
        Assert.Equal(want, got);
    }

    [Fact]
    public void Median_AnyCount_IsTheMiddleOfTheSortedValues()
    {
        var random = new Random(11);
        for (var count = 1; count <= 150; count++)
        {
            var values = Enumerable.Range(0, count).Select(_ => random.Next(4) == 0 ? 0.0 : random.Next(0, 50) / 7.0).ToArray();
            var sorted = values.Order().ToArray();
            var want = count % 2 == 1 ? sorted[count / 2] : (sorted[(count / 2) - 1] + sorted[count / 2]) / 2;
            Assert.Equal(want, CostProjection.Median(values));
        }
    }

    /// <summary>The store's every-user daily rows in another order than user id; every other query as the store answers it.</summary>
    private sealed class InterleavedDays(InMemoryUsageStore store) : IUsageQueries
    {
        public async ValueTask<IReadOnlyList<UserDailyUsage>> GetUserDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default) =>
            [.. (await store.GetUserDailyUsageAsync(firstDay, lastDay, userId, cancellationToken)).OrderBy(r => r.Date).ThenByDescending(r => r.UserId, StringComparer.Ordinal)];

        public ValueTask<UsageStats> GetStatsAsync(DateOnly today, CancellationToken cancellationToken = default) => store.GetStatsAsync(today, cancellationToken);

        public ValueTask<UserSummaryPage> GetUserSummariesAsync(UserSummaryQuery query, CancellationToken cancellationToken = default) => store.GetUserSummariesAsync(query, cancellationToken);

        public ValueTask<UserUsageDetail?> GetUserUsageAsync(string userId, DateOnly today, CancellationToken cancellationToken = default) => store.GetUserUsageAsync(userId, today, cancellationToken);

        public ValueTask<UsageFigures> GetUserTotalsAsync(string userId, DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default) =>
            store.GetUserTotalsAsync(userId, firstDay, lastDay, cancellationToken);

        public ValueTask<IReadOnlyList<EndpointUsage>> GetEndpointUsageAsync(CancellationToken cancellationToken = default) => store.GetEndpointUsageAsync(cancellationToken);

        public ValueTask<IReadOnlyList<UserEndpointUsage>> GetUserEndpointUsageAsync(DateOnly firstDay, DateOnly lastDay, string? userId = null, CancellationToken cancellationToken = default) =>
            store.GetUserEndpointUsageAsync(firstDay, lastDay, userId, cancellationToken);

        public ValueTask<IReadOnlyList<PeriodUsage>> GetDailyUsageAsync(DateOnly firstDay, DateOnly lastDay, CancellationToken cancellationToken = default) => store.GetDailyUsageAsync(firstDay, lastDay, cancellationToken);

        public ValueTask<IReadOnlyList<PeriodUsage>> GetMonthlyUsageAsync(DateOnly fromMonth, DateOnly toMonth, CancellationToken cancellationToken = default) => store.GetMonthlyUsageAsync(fromMonth, toMonth, cancellationToken);

        public IAsyncEnumerable<UsageRecord> ExportAsync(UsageExportQuery query, CancellationToken cancellationToken = default) => store.ExportAsync(query, cancellationToken);
    }
}
