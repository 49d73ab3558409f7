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
        await StoreAndReadAsync(h, seed: 3, 300, new DateTimeOffset(2026, 10, 20, 0, 0, 0, TimeSpan.Zero), days: 30);
        Assert.Equal(30L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_day_versions"));

        // Every rollup emptied by hand (as a rebuild would): the versions go with the per-day rollup, so a kept day is
        // never taken for what it was, and the reads agree with an empty store.
        await h.ExecuteAsync("TRUNCATE {s}.usage_endpoint_day, {s}.usage_endpoint_month, {s}.usage_endpoint_total, {s}.usage_user_endpoint_month, {s}.usage_user_day, {s}.usage_user_month, {s}.usage_user_total, {s}.usage_active_day, {s}.usage_active_month");
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_day_versions"));
        await AssertExactAsync(h, h.Queries, []);
    }

    [Fact]
    public async Task StatementsOfTheMonthInProgress_ReadOnlyTheLinesWrittenSince_AndEqualAFreshRead()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var records = await StoreAndReadAsync(h, seed: 29, 1200, new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero), days: 54);
        var kept = h.Queries;
        var linesRead = kept.MonthLinesRead;
        Assert.True(linesRead > 0);

        // A record landing today for a user with lines (on a line of its own) and one for a new user: pending (added to the
        // kept lines, none read), then folded: the two lines the fold wrote are read, and only those.
        UsageRecord[] today =
        [
            Records.Make(new DateTimeOffset(2026, 11, 24, 11, 0, 0, TimeSpan.Zero), userId: "u2", endpoint: "/api/today", model: "m1", input: 10, output: 5, cost: 0.25m),
            Records.Make(new DateTimeOffset(2026, 11, 24, 11, 30, 0, TimeSpan.Zero), userId: "new-user", endpoint: "/api/e0", model: "m0", input: 20, output: 2, cost: 0.5m),
        ];
        await h.Store.AppendAsync(today);
        records.AddRange(today);
        await AssertExactAsync(h, kept, records);
        Assert.Equal(linesRead, kept.MonthLinesRead);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records);
        Assert.Equal(linesRead + 2, kept.MonthLinesRead);

        // A late record for an earlier day of the month, on a line the month has: that line alone is read again.
        var line = records.First(r => r.UserId == "u3" && Day(r) >= November);
        var late = Records.Make(new DateTimeOffset(2026, 11, 2, 8, 0, 0, TimeSpan.Zero), userId: "u3", endpoint: line.Endpoint, model: line.Model, input: 7, output: 3, cost: 0.01m);
        await h.Store.AppendAsync([late]);
        records.Add(late);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records);
        Assert.Equal(linesRead + 3, kept.MonthLinesRead);

        // A re-pricing of a past day of each month: its differences pending, then folded (the lines of that day's calls).
        var day = new DateOnly(2026, 11, 10);
        static UsageRecord Reprice(UsageRecord r) => r with { CostUsd = ((r.CostUsd ?? 0m) * 2) + 0.001m, PriceId = "test/reprice" };
        await new PostgresRepricingStore(h.Context).RepriceAsync(new RepricingPlan(
            new RepricingRequest(day, day, OnlyUnpriced: false, DryRun: false), Guid.CreateVersion7(), h.Time.GetUtcNow(), November, Reprice));
        records = [.. records.Select(r => Day(r) == day ? Reprice(r) : r)];
        await AssertExactAsync(h, kept, records);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records);
        var repriced = records.Where(r => Day(r) == day && r.UserId is not null).Select(r => (r.UserId, r.Endpoint, r.Model)).Distinct().Count();
        Assert.Equal(linesRead + 3 + repriced, kept.MonthLinesRead);
    }

    [Fact]
    public async Task StatementsOfTheMonthInProgress_AfterLinesChangedOrDeletedByHand_EqualAFreshRead()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        await StoreAndReadAsync(h, seed: 31, 600, new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), days: 24);
        var kept = h.Queries;

        // An update that does not set written_by (an older instance's fold, a correction by hand) gets it from the trigger,
        // and is read once a day of the month moves (as the fold's updates of the month's days do); a line deleted by hand
        // (never by the store) counts a removal: the month is read whole, whether or not a day moved.
        string[] edits =
        [
            "UPDATE {s}.usage_user_endpoint_month SET cost_usd = cost_usd + 1, calls = calls + 1 WHERE user_id = 'u1' AND month = '2026-11-01';"
            + " UPDATE {s}.usage_endpoint_day SET calls = calls WHERE day = '2026-11-05'",
            "DELETE FROM {s}.usage_user_endpoint_month WHERE user_id = 'u2' AND month = '2026-11-01'",
            "TRUNCATE {s}.usage_user_endpoint_month",
        ];
        foreach (var edit in edits)
        {
            await h.ExecuteAsync(edit);
            var fresh = await new StatementCalculator(new PostgresUsageQueries(h.Context)).GetMonthlyStatementAsync(November, 0m);
            var got = await new StatementCalculator(kept).GetMonthlyStatementAsync(November, 0m);
            Assert.Equal(Lines(fresh), Lines(got));
        }

        static List<object> Lines(MonthlyStatement s) => [.. s.Items.SelectMany(i => i.Lines.Select(l => (object)(i.UserId, i.CostUsd, l.Endpoint, l.Model, l.Figures)))];
    }

    [Fact]
    public async Task ForecastsAndStatements_AcrossAMonthBoundary_EqualAFreshReadAndTheInMemoryStore()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, now: new DateTimeOffset(2026, 11, 30, 23, 30, 0, TimeSpan.Zero));
        DateOnly[] months = [November, new(2026, 12, 1)];
        var records = await StoreAndReadAsync(h, seed: 37, 800, new DateTimeOffset(2026, 10, 20, 0, 0, 0, TimeSpan.Zero), days: 41, months);
        var kept = h.Queries;

        // The last instant of November and the first of December, folded together; then the clock moves into December.
        UsageRecord[] edge =
        [
            Records.Make(new DateTimeOffset(2026, 11, 30, 23, 59, 59, TimeSpan.Zero).AddTicks(9_999_990), userId: "u1", endpoint: "/api/e1", model: "m1", cost: 0.3m),
            Records.Make(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero), userId: "u1", endpoint: "/api/e1", model: "m1", cost: 0.7m),
        ];
        await h.Store.AppendAsync(edge);
        records.AddRange(edge);
        await AssertExactAsync(h, kept, records, months: months);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records, months: months);
        h.Time.SetUtcNow(new DateTimeOffset(2026, 12, 1, 0, 30, 0, TimeSpan.Zero));
        await AssertExactAsync(h, kept, records, months: months);

        var december = Records.Make(new DateTimeOffset(2026, 12, 1, 0, 10, 0, TimeSpan.Zero), userId: "u4", endpoint: null, model: "m0", cost: 0.2m);
        await h.Store.AppendAsync([december]);
        records.Add(december);
        await h.FoldAsync();
        await AssertExactAsync(h, kept, records, months: months);
    }

    private static DateOnly Day(UsageRecord r) => DateOnly.FromDateTime(r.CreatedAt.UtcDateTime);

    /// <summary>
    /// Stores <paramref name="count"/> mixed records from <paramref name="start"/> over <paramref name="days"/> days, folds
    /// them, and checks the first reads through the harness's store (which fill its memory); returns the records.
    /// </summary>
    private static async Task<List<UsageRecord>> StoreAndReadAsync(PostgresStoreHarness h, int seed, int count, DateTimeOffset start, int days, DateOnly[]? months = null)
    {
        var records = Make(new Random(seed), count, start, days).ToList();
        await h.Store.AppendAsync([.. records]);
        await h.FoldAsync();
        await AssertExactAsync(h, h.Queries, records, months: months);
        return records;
    }

    private static UsageRecord[] Make(Random random, int count, DateTimeOffset start, int days) => Records.Mixed(random, count, start, days);

    /// <summary>
    /// The forecasts (every user's, and the platform's) and the statements of October and November through
    /// <paramref name="kept"/> equal those through a fresh store (nothing in memory), one that keeps nothing, and the
    /// in-memory store over <paramref name="records"/>.
    /// </summary>
    private static async Task AssertExactAsync(PostgresStoreHarness h, PostgresUsageQueries kept, List<UsageRecord> records, PostgresUsageQueries? alsoKept = null, DateOnly[]? months = null)
    {
        months ??= [October, November];
        var reference = new InMemoryUsageStore();
        await reference.AppendAsync([.. records]);
        await reference.SetDefaultBudgetAsync(new BudgetLimit(0.0001m, null));
        IUsageQueries[] others = [new PostgresUsageQueries(h.Context), new PostgresUsageQueries(h.Context) { KeepFinishedDays = false }, reference, .. alsoKept is null ? [] : new[] { alsoKept }];
        var want = await ReadAsync(kept, reference, h.Time, months);
        foreach (var queries in others)
        {
            var got = await ReadAsync(queries, reference, h.Time, months);
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
        IUsageQueries queries, IBudgetStore budgets, TimeProvider time, DateOnly[] months)
    {
        var forecaster = new UsageForecaster(queries, budgets, time);
        var statements = new List<object>();
        foreach (var month in months)
        {
            var statement = await new StatementCalculator(queries).GetMonthlyStatementAsync(month, 12.5m);
            statements.Add((statement.Month, statement.TotalCostUsd, statement.TotalAmountUsd));
            statements.AddRange(statement.Items.SelectMany(i => i.Lines.Select(l => (object)(i.UserId, i.CostUsd, i.AmountUsd, l.Endpoint, l.Model, l.Figures))));
        }

        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        return (
            await queries.GetUserDailyUsageAsync(today.AddDays(-60), today),
            await forecaster.ForecastAllUsersAsync(),
            await forecaster.ForecastMonthAsync(),
            statements);
    }
}
