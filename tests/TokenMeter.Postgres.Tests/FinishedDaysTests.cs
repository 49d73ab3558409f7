using TokenMeter.Billing;
using TokenMeter.Budgets;
using TokenMeter.Forecasting;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Repricing;
using TokenMeter.Querying;
using TokenMeter.Repricing;
using TokenMeter.Storage;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>
/// The bulk reads over every user keep the folded rows of finished days (and months) in memory, read again only what
/// changed (migration 0014's day versions): the forecasts and the statements stay exact after a late record for a
/// finished day, a re-pricing, and another instance writing, against a fresh read and the in-memory store.
/// </summary>
public sealed class FinishedDaysTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    // The harness's clock: 2026-11-24 12:00 UTC.
    private static readonly DateOnly Today = new(2026, 11, 24);
    private static readonly DateOnly October = new(2026, 10, 1);
    private static readonly DateOnly November = new(2026, 11, 1);

    [Fact]
    public async Task ForecastsAndStatements_AfterLateRecordsRepricingAndAnotherInstance_EqualAFreshReadAndTheInMemoryStore()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await using var other = h.OtherInstance();
        var random = new Random(17);
        var records = Make(random, 1500, new DateTimeOffset(2026, 9, 20, 0, 0, 0, TimeSpan.Zero), days: 65).ToList();
        Assert.Equal(1500, await h.Store.AppendAsync([.. records]));
        await h.FoldAsync();

        // The store under test keeps finished days; the first reads fill it (every day of the range is read). A second
        // one may hold only 150 rows (a few days, no month): it drops days and months as it goes, and stays exact.
        var kept = h.Queries;
        var small = new PostgresUsageQueries(h.Context) { KeptRowsBudget = 150 };
        await AssertExactAsync(h, kept, records, small);
        var daysRead = kept.FinishedDaysRead;
        Assert.True(daysRead >= 50, $"{daysRead} days read");

        // Nothing changed: no day is read again.
        await AssertExactAsync(h, kept, records, small);
        Assert.Equal(daysRead, kept.FinishedDaysRead);

        // A late record for a finished day of each month (a spool replayed after an outage): pending, then folded.
        UsageRecord[] late =
        [
            Records.Make(new DateTimeOffset(2026, 10, 15, 9, 30, 0, TimeSpan.Zero), userId: "u1", endpoint: "/api/e1", model: "m0", input: 500, output: 80, cost: 0.0123m),
            Records.Make(new DateTimeOffset(2026, 11, 3, 23, 59, 0, TimeSpan.Zero), userId: "late-user", endpoint: null, model: "m1", input: 40, output: 4, cost: 0.5m),
        ];
        Assert.Equal(2, await h.Store.AppendAsync(late));
        records.AddRange(late);
        await AssertExactAsync(h, kept, records, small);
        daysRead = kept.FinishedDaysRead;
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records, small);

        // Only the two days the fold changed were read again: by the first read of a range, which finds their versions
        // moved and so holds them by version only (a day that changes between reads is not kept), and once more by the
        // second, which finds those versions again and keeps the rows.
        Assert.Equal(daysRead + 4, kept.FinishedDaysRead);

        // A re-pricing of finished days in both months: before and after the fold that adds its differences.
        static UsageRecord Reprice(UsageRecord r) => r with { CostUsd = ((r.CostUsd ?? 0m) * 3) + (r.OutputTokens / 1_000_000m), PriceId = "test/reprice" };
        var (from, to) = (new DateOnly(2026, 10, 25), new DateOnly(2026, 11, 10));
        var result = await new PostgresRepricingStore(h.Context).RepriceAsync(new RepricingPlan(
            new RepricingRequest(from, to, OnlyUnpriced: false, DryRun: false), Guid.CreateVersion7(), h.Time.GetUtcNow(), October, Reprice));
        records = [.. records.Select(r => Day(r) >= from && Day(r) <= to ? Reprice(r) : r)];
        Assert.Equal(records.Count(r => Day(r) >= from && Day(r) <= to), result.Records);
        await AssertExactAsync(h, kept, records, small);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records, small);

        // Another app instance writes late records (finished days) and today's, and folds them itself.
        var more = Make(random, 200, new DateTimeOffset(2026, 10, 28, 0, 0, 0, TimeSpan.Zero), days: 28);
        Assert.Equal(200, await other.Store.AppendAsync(more));
        records.AddRange(more);
        await AssertExactAsync(h, kept, records, small);
        await other.FoldAsync();
        await AssertExactAsync(h, kept, records, small);
    }

    [Fact]
    public async Task EmptyingTheDailyRollup_DropsEveryVersion_SoNothingIsTakenFromMemory()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var records = Make(new Random(3), 300, new DateTimeOffset(2026, 10, 20, 0, 0, 0, TimeSpan.Zero), days: 30);
        await h.Store.AppendAsync(records);
        await h.FoldAsync();
        Assert.Equal(30L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_day_versions"));
        await AssertExactAsync(h, h.Queries, [.. records]);

        // Every rollup emptied by hand (as a rebuild would): the versions go with the per-day rollup, so a kept day is
        // never taken for what it was, and the reads agree with an empty store.
        await h.ExecuteAsync("TRUNCATE {s}.usage_endpoint_day, {s}.usage_endpoint_month, {s}.usage_user_endpoint_month, {s}.usage_user_day, {s}.usage_user_month, {s}.usage_user_total, {s}.usage_active_day, {s}.usage_active_month");
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_day_versions"));
        await AssertExactAsync(h, h.Queries, []);
    }

    private static DateOnly Day(UsageRecord r) => DateOnly.FromDateTime(r.CreatedAt.UtcDateTime);

    private static UsageRecord[] Make(Random random, int count, DateTimeOffset start, int days) => Records.Mixed(random, count, start, days);

    /// <summary>
    /// The forecasts (every user's, and the platform's) and the statements of October and November through
    /// <paramref name="kept"/> equal those through a fresh store (nothing in memory), one that keeps nothing, and the
    /// in-memory store over <paramref name="records"/>.
    /// </summary>
    private static async Task AssertExactAsync(PostgresStoreHarness h, PostgresUsageQueries kept, List<UsageRecord> records, PostgresUsageQueries? alsoKept = null)
    {
        var reference = new InMemoryUsageStore();
        await reference.AppendAsync([.. records]);
        await reference.SetDefaultBudgetAsync(new BudgetLimit(0.0001m, null));
        IUsageQueries[] others = [new PostgresUsageQueries(h.Context), new PostgresUsageQueries(h.Context) { KeepFinishedDays = false }, reference, .. alsoKept is null ? [] : new[] { alsoKept }];
        var want = await ReadAsync(kept, reference, h.Time);
        foreach (var queries in others)
        {
            var got = await ReadAsync(queries, reference, h.Time);
            Assert.Equal(want.Days, got.Days);
            Assert.Equal(want.Users, got.Users);
            Assert.Equal(want.Platform, got.Platform);
            Assert.Equal(want.Statements, got.Statements);
        }

        if (alsoKept is not null)
        {
            Assert.InRange(alsoKept.KeptRows, 1, 150);
        }
    }

    private static async Task<(IReadOnlyList<UserDailyUsage> Days, IReadOnlyList<UserCostForecast> Users, CostForecast Platform, List<object> Statements)> ReadAsync(
        IUsageQueries queries, IBudgetStore budgets, TimeProvider time)
    {
        var forecaster = new UsageForecaster(queries, budgets, time);
        var statements = new List<object>();
        foreach (var month in new[] { October, November })
        {
            var statement = await new StatementCalculator(queries).GetMonthlyStatementAsync(month, 12.5m);
            statements.Add((statement.Month, statement.TotalCostUsd, statement.TotalAmountUsd));
            statements.AddRange(statement.Items.SelectMany(i => i.Lines.Select(l => (object)(i.UserId, i.CostUsd, i.AmountUsd, l.Endpoint, l.Model, l.Figures))));
        }

        return (
            await queries.GetUserDailyUsageAsync(Today.AddDays(-60), Today),
            await forecaster.ForecastAllUsersAsync(),
            await forecaster.ForecastMonthAsync(),
            statements);
    }
}
