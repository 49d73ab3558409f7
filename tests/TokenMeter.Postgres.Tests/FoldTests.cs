using Npgsql;
using TokenMeter.Postgres.Repricing;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.Repricing;
using TokenMeter.Storage;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

/// <summary>
/// Every rollup is folded from a pending table (migrations 0007 and 0008): every read is exact before
/// and after a fold, a fold counts each pending row once whoever runs it, and nothing appended is
/// lost when a fold dies.
/// </summary>
public sealed class FoldTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    /// <summary>Runs a fold lock statement in a fresh transaction: its result, then each setting as the transaction sees it.</summary>
    private static async Task<string[]> SettingsUnderAsync(PostgresStoreHarness h, string lockSql, params string[] settings)
    {
        await using var connection = await h.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand(lockSql, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = h.Context.Schema });
        var seen = new List<string> { Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)! };
        foreach (var setting in settings)
        {
            command.CommandText = "SELECT current_setting($1)";
            command.Parameters[0] = new NpgsqlParameter<string> { TypedValue = setting };
            seen.Add((string)(await command.ExecuteScalarAsync())!);
        }

        return [.. seen];
    }

    private static readonly DateOnly Today = new(2026, 11, 24);

    [Fact]
    public async Task Queries_BeforeAndAfterAFold_EqualSumsOverTheRecords()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var records = Make(new Random(21), 900, new DateTimeOffset(2026, 9, 20, 0, 0, 0, TimeSpan.Zero), days: 66);
        Assert.Equal(600, await h.Store.AppendAsync(records[..600]));
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(300, await h.Store.AppendAsync(records[600..]));

        // Part folded, part pending: every read sees both.
        Assert.True(await PendingAsync(h) > 0);
        await AssertExactAsync(h, records);

        // All folded: the same answers, nothing left pending, and the rollup tables equal the records.
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(0L, await PendingAsync(h));
        await AssertExactAsync(h, records);
        await AssertRollupsEqualRawAsync(h);
        Assert.Equal(0L, await h.FoldAsync());
    }

    [Fact]
    public async Task FoldAsync_TwoInstancesFoldingWhileBothWrite_CountEachRecordOnce()
    {
        await using var a = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 150);
        await using var b = a.OtherInstance(o => o.FoldEveryRecords = 150);
        var random = new Random(5);
        var records = Make(random, 4000, new DateTimeOffset(2026, 10, 28, 0, 0, 0, TimeSpan.Zero), days: 6);

        // Each instance writes its half in batches of 100 (so each starts a background fold every
        // 150 records), and between batches both fold by hand at the same moment.
        var folds = new List<long?[]>();
        for (var i = 0; i < records.Length; i += 200)
        {
            var appended = await Task.WhenAll(
                Task.Run(async () => await a.Store.AppendAsync(records[i..(i + 100)])),
                Task.Run(async () => await b.Store.AppendAsync(records[(i + 100)..(i + 200)])));
            Assert.Equal([100, 100], appended);
            folds.Add(await Task.WhenAll(a.Context.Fold.FoldAsync(), b.Context.Fold.FoldAsync()));
        }

        await b.Context.Fold.WhenIdleAsync();
        await a.FoldAsync();
        Assert.Equal(0L, await PendingAsync(a));
        await AssertRollupsEqualRawAsync(a);
        await AssertExactAsync(b, records);

        // While one instance holds the fold lock, the other's fold steps aside (null) and folds nothing.
        // (The rows come from a third instance that never folds on its own: b's count since its last
        // fold could otherwise reach 150 with them and fold them in the background first.)
        await using (var c = a.OtherInstance(o => o.FoldEveryRecords = 1_000_000))
        {
            await c.Store.AppendAsync(Make(random, 50, new DateTimeOffset(2026, 11, 2, 0, 0, 0, TimeSpan.Zero), days: 1));
        }

        await using (var holder = await a.DataSource.OpenConnectionAsync())
        await using (var transaction = await holder.BeginTransactionAsync())
        {
            await using (var take = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('tokenmeter.fold.' || $1))", holder, transaction))
            {
                take.Parameters.AddWithValue(a.Context.Schema);
                await take.ExecuteNonQueryAsync();
            }

            Assert.Null(await b.Context.Fold.FoldAsync());
            Assert.True(await PendingAsync(a) > 0);
        }

        Assert.True(await b.FoldAsync() > 0);
        await AssertRollupsEqualRawAsync(a);

        // Two folds started together after the same appends: one folds, the other finds the lock
        // taken (null) or nothing left (0); never both.
        Assert.All(folds, pair => Assert.True(pair.Count(f => f > 0) <= 1, $"both folded: {pair[0]}, {pair[1]}"));
    }

    [Fact]
    public async Task Crash_BetweenAppendAndFold_AndDuringAFold_LosesNothing()
    {
        var records = Make(new Random(8), 700, new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), days: 20);
        var first = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        Assert.Equal(700, await first.Store.AppendAsync(records));

        // The instance goes away before any fold: the pending rows are committed with the records.
        await using var second = first.OtherInstance();
        await first.DisposeAsync();
        Assert.True(await PendingAsync(second) > 0);
        await AssertExactAsync(second, records);

        // A fold whose backend dies before its commit (the DELETE and the rollup upserts done) rolls back whole.
        await using (var dying = await second.DataSource.OpenConnectionAsync())
        {
            var pid = dying.ProcessID;
            await using var transaction = await dying.BeginTransactionAsync();
            await using (var fold = new NpgsqlCommand(second.Context.Sql.Fold, dying, transaction))
            {
                Assert.True((long)(await fold.ExecuteScalarAsync())! > 0);
            }

            await second.ExecuteAsync($"SELECT pg_terminate_backend({pid})");
            await Assert.ThrowsAnyAsync<Exception>(async () => await transaction.CommitAsync());
        }

        Assert.Equal(0L, await second.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_user_endpoint_month"));
        await AssertExactAsync(second, records);
        Assert.True(await second.FoldAsync() > 0);
        await AssertExactAsync(second, records);
        await AssertRollupsEqualRawAsync(second);
    }

    [Fact]
    public async Task FoldAsync_CommitsWithoutWaitingForTheFlush_OnlyForItsOwnTransaction()
    {
        // One pooled connection, so the fold's and the next writer's are the same session; synchronous commit on for it
        // (the test server runs with it off).
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString + ";Maximum Pool Size=1;Options=-c synchronous_commit=on");
        var records = Make(new Random(5), 300, new DateTimeOffset(2026, 11, 2, 0, 0, 0, TimeSpan.Zero), days: 20);
        Assert.Equal(300, await h.Store.AppendAsync(records));
        Assert.True(await h.FoldAsync() > 0);

        // The setting was local to the fold's transaction: the session (and so the writers' commits) still waits for the flush.
        Assert.Equal("on", await h.ScalarAsync<string>("SHOW synchronous_commit"));
        // The fold's own statement: the lock is free, its transaction commits asynchronously, and without JIT (planned over
        // every partition, the fold would be compiled on every run). Re-pricing's and retention's waiting lock turns JIT off too.
        // Both tell the trigger on the months that the transaction's fold adds to the all-time rows itself (migration 0016).
        Assert.Equal(["True", "off", "off", "on"], await SettingsUnderAsync(h, PostgresPendingFold.LockSql, "synchronous_commit", "jit", "tokenmeter.folds_endpoint_total"));
        Assert.Equal(["True", "off", "on"], await SettingsUnderAsync(h, PostgresPendingFold.WaitLockSql, "jit", "tokenmeter.folds_endpoint_total"));

        Assert.Equal("on", await h.ScalarAsync<string>("SHOW synchronous_commit"));
        Assert.Equal("on", await h.ScalarAsync<string>("SHOW jit"));
        Assert.Equal(string.Empty, await h.ScalarAsync<string>("SELECT current_setting('tokenmeter.folds_endpoint_total')"));
        await AssertExactAsync(h, records);
        await AssertRollupsEqualRawAsync(h);
    }

    [Fact]
    public async Task RepriceAsync_WithPendingRows_AdjustsWhatTheFoldAddsAndEveryReadAgrees()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var records = Make(new Random(13), 800, new DateTimeOffset(2026, 10, 10, 0, 0, 0, TimeSpan.Zero), days: 40);
        Assert.Equal(500, await h.Store.AppendAsync(records[..500]));
        await h.FoldAsync();
        Assert.Equal(300, await h.Store.AppendAsync(records[500..]));

        // Re-price every record: some counted in the folded rollups, some still pending.
        Func<UsageRecord, UsageRecord> reprice = r => r with { CostUsd = ((r.CostUsd ?? 0m) * 2) + (r.OutputTokens / 1_000_000m), PriceId = "test/reprice" };
        var result = await new PostgresRepricingStore(h.Context).RepriceAsync(new RepricingPlan(
            new RepricingRequest(new DateOnly(2026, 10, 1), new DateOnly(2026, 12, 31), OnlyUnpriced: false, DryRun: false),
            Guid.CreateVersion7(),
            h.Time.GetUtcNow(),
            new DateOnly(2026, 10, 1),
            reprice));
        Assert.Equal(800, result.Records);

        await AssertExactBeforeAndAfterAFoldAsync(h, records.Select(reprice).ToArray());
    }

    [Fact]
    public async Task RepriceAsync_HoldsTheFoldLock_FoldsWaitAndEachBatchIsRepricedOnce()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 1_000_000);
        var records = Make(new Random(21), 600, new DateTimeOffset(2026, 10, 10, 0, 0, 0, TimeSpan.Zero), days: 30);

        // A folded batch, a batch not folded yet, and a batch holding replays (stored through the staging path, as sums).
        Assert.Equal(200, await h.Store.AppendAsync(records[..200]));
        await h.FoldAsync();
        Assert.Equal(200, await h.Store.AppendAsync(records[200..400]));
        Assert.Equal(100, await h.Store.AppendAsync([.. records[..10], .. records[400..500]]));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_batches"));

        static UsageRecord Reprice(UsageRecord r) => r with { CostUsd = ((r.CostUsd ?? 0m) * 3) + (r.InputTokens / 1_000_000m), PriceId = "test/reprice" };
        using var pricing = new SemaphoreSlim(0);
        using var resume = new SemaphoreSlim(0);
        var calls = 0;
        var repricing = Task.Run(async () => await new PostgresRepricingStore(h.Context).RepriceAsync(new RepricingPlan(
            new RepricingRequest(new DateOnly(2026, 10, 1), new DateOnly(2026, 12, 31), OnlyUnpriced: false, DryRun: false),
            Guid.CreateVersion7(),
            h.Time.GetUtcNow(),
            new DateOnly(2026, 10, 1),
            r =>
            {
                if (Interlocked.Increment(ref calls) == 1)
                {
                    pricing.Release();
                    resume.Wait();
                }

                return Reprice(r);
            })));

        // While the re-pricing runs (it has read its records): no fold can start, and a batch stored now is outside it.
        Assert.True(await pricing.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Null(await h.Context.Fold.FoldAsync());
        Assert.Equal(100, await h.Store.AppendAsync(records[500..]));
        resume.Release();
        Assert.Equal(500, (await repricing).Records);

        await AssertExactBeforeAndAfterAFoldAsync(h, [.. records[..500].Select(Reprice), .. records[500..]]);
    }

    [Fact]
    public async Task FoldAndReads_AnOldBatchBesideALiveOne_CountEachOnce()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 1_000_000);
        var start = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
        var between = Make(new Random(31), 300, start, days: 20);
        Assert.Equal(300, await h.Store.AppendAsync(between));
        await h.FoldAsync();

        // A replayed batch of three old records and a live batch of five, nineteen days and 300 folded records apart.
        UsageRecord[] old = [.. Enumerable.Range(0, 3).Select(i => Records.Make(start.AddMinutes(i), userId: "u1"))];
        UsageRecord[] live = [.. Enumerable.Range(0, 5).Select(i => Records.Make(start.AddDays(20).AddSeconds(i), userId: i == 0 ? "u1" : "u2"))];
        Assert.Equal(3, await h.Store.AppendAsync(old));
        Assert.Equal(5, await h.Store.AppendAsync(live));

        // The reads see them all the same: one user's share through the user index, everyone's through the view.
        Assert.Equal(4L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.tokenmeter_pending_of('u1')"));
        Assert.Equal(8L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_pending"));
        await AssertExactBeforeAndAfterAFoldAsync(h, [.. between, .. old, .. live]);
    }

    [Fact]
    public async Task Fold_RandomBatchesAcrossMonths_FoldedWhileTwoInstancesWrite_EveryGrainEqualsAGroupByOverTheRawRows()
    {
        // Two instances folding in the background every 97 records and by hand at random moments, while both write batches
        // of random sizes over a month boundary, some of them holding replays (stored through the staging path as sums).
        await using var a = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 97);
        await using var b = a.OtherInstance(o => o.FoldEveryRecords = 97);
        var random = new Random(2026);
        var records = Make(random, 3000, new DateTimeOffset(2026, 10, 20, 0, 0, 0, TimeSpan.Zero), days: 25);

        // A few records beyond any 32-bit sum: the token sums stay exact bigints.
        for (var i = 0; i < records.Length; i += 500)
        {
            records[i] = records[i] with { InputTokens = 3_000_000_000L + i, TotalTokens = 3_000_000_000L + i + records[i].OutputTokens };
        }

        for (var next = 0; next < records.Length;)
        {
            // Each round: a batch per instance, the two written at once; a replayed record is one stored in an earlier round.
            var (storedBefore, batches) = (next, new List<UsageRecord[]>());
            for (var writer = 0; writer < 2 && next < records.Length; writer++)
            {
                var size = Math.Min(random.Next(1, 260), records.Length - next);
                var batch = records[next..(next + size)];
                next += size;
                batches.Add(storedBefore > 0 && random.Next(5) == 0 ? [.. batch, records[random.Next(storedBefore)]] : batch);
            }

            var writes = batches.Select((batch, i) => Task.Run(async () => await (i == 0 ? a : b).Store.AppendAsync(batch))).ToArray();
            var folder = random.Next(3) == 0 ? (random.Next(2) == 0 ? a : b) : null;
            var fold = folder is null ? Task.FromResult<long?>(null) : Task.Run(async () => await folder.Context.Fold.FoldAsync());
            Assert.Equal(next - storedBefore, (await Task.WhenAll(writes)).Sum());
            await fold;
        }

        await b.Context.Fold.WhenIdleAsync();
        await a.FoldAsync();
        Assert.Equal(0L, await PendingAsync(a));
        Assert.Equal(records.Length, await a.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage"));
        await AssertRollupsEqualRawAsync(a);
        await AssertExactAsync(b, records);
    }

    [Fact]
    public async Task FoldAsync_ReturnsTheRowsItFolded_AndCutsDaysAndMonthsInUtcWhateverTheSessionTimeZone()
    {
        // A session 14 hours ahead of UTC: its local day and month differ from UTC's around midnight UTC.
        await using var h = await PostgresStoreHarness.CreateAsync(
            database.ConnectionString + ";Options=-c TimeZone=Pacific/Kiritimati", o => o.FoldEveryRecords = 1_000_000);
        var monthEnd = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
        UsageRecord[] records =
        [
            .. Enumerable.Range(0, 40).Select(i => Records.Make(
                monthEnd.AddHours(-20).AddMinutes(i * 47), userId: i % 5 == 0 ? null : "u" + (i % 3), endpoint: i % 4 == 0 ? null : "/api/e", input: i % 9 == 1 ? 5_000_000_000L : 100))
        ];
        Assert.Equal(25, await h.Store.AppendAsync(records[..25]));
        Assert.Equal(15, await h.Store.AppendAsync(records[25..]));

        // Read unfolded (sums beyond 32 bits included), then folded: every raw record of the two batches, once.
        await AssertExactAsync(h, records);
        Assert.Equal(40L, await h.FoldAsync());
        Assert.Equal(0L, await h.FoldAsync());
        Assert.Equal("2026-10-31,2026-11-01", await h.ScalarAsync<string>("SELECT string_agg(DISTINCT day::text, ',') FROM {s}.usage_endpoint_day"));
        await AssertRollupsEqualRawAsync(h);
        await AssertExactAsync(h, records);
    }

    private static UsageRecord[] Make(Random random, int count, DateTimeOffset start, int days) => Records.Mixed(random, count, start, days);

    /// <summary>Every read equals the sums over <paramref name="records"/> before a fold and after it, when nothing is left pending and the rollups equal the raw rows.</summary>
    private static async Task AssertExactBeforeAndAfterAFoldAsync(PostgresStoreHarness h, UsageRecord[] records)
    {
        await AssertExactAsync(h, records);
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(0L, await PendingAsync(h));
        await AssertExactAsync(h, records);
        await AssertRollupsEqualRawAsync(h);
    }

    private static Task<long> PendingAsync(PostgresStoreHarness h) => h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending");

    /// <summary>Each read of the user×endpoint×model rollups equals the same sums over <paramref name="records"/>.</summary>
    private static async Task AssertExactAsync(PostgresStoreHarness h, UsageRecord[] records)
    {
        var withUser = records.Where(r => r.UserId is not null).ToArray();
        foreach (var user in withUser.Select(r => r.UserId!).Distinct())
        {
            var detail = await h.Queries.GetUserUsageAsync(user, Today);
            var expected = withUser.Where(r => r.UserId == user)
                .GroupBy(r => (r.Endpoint, r.Model))
                .ToDictionary(g => g.Key, g => UsageFigures.Sum(g.Select(UsageFigures.Of)));
            Assert.Equal(expected, detail!.ByEndpoint.ToDictionary(e => (e.Endpoint, e.Model), e => e.Figures));
            Assert.Equal(detail.Summary.Figures, UsageFigures.Sum(detail.ByEndpoint.Select(e => e.Figures)));
        }

        // Every other read equals the in-memory store's over the same records (folded and pending rows mixed).
        var reference = new InMemoryUsageStore();
        await reference.AppendAsync(records);
        Assert.Equal(await reference.GetStatsAsync(Today), await h.Queries.GetStatsAsync(Today));
        foreach (var sort in Enum.GetValues<UserSummarySort>())
        {
            var query = new UserSummaryQuery(sort, SortOrder.Descending, 500, 0);
            var (want, got) = (await reference.GetUserSummariesAsync(query), await h.Queries.GetUserSummariesAsync(query));
            Assert.Equal(want.Total, got.Total);
            Assert.Equal(want.Items, got.Items);
        }

        Assert.Equal(await reference.GetEndpointUsageAsync(), await h.Queries.GetEndpointUsageAsync());
        Assert.Equal(await reference.GetDailyUsageAsync(Today.AddDays(-120), Today), await h.Queries.GetDailyUsageAsync(Today.AddDays(-120), Today));
        Assert.Equal(await reference.GetMonthlyUsageAsync(Today.AddMonths(-6), Today), await h.Queries.GetMonthlyUsageAsync(Today.AddMonths(-6), Today));
        Assert.Equal(await reference.GetUserDailyUsageAsync(Today.AddDays(-120), Today), await h.Queries.GetUserDailyUsageAsync(Today.AddDays(-120), Today));
        foreach (var user in withUser.Select(r => r.UserId!).Distinct())
        {
            Assert.Equal(await reference.GetUserTotalsAsync(user, Today.AddDays(-40), Today), await h.Queries.GetUserTotalsAsync(user, Today.AddDays(-40), Today));
            Assert.Equal(await reference.GetUserDailyUsageAsync(Today.AddDays(-120), Today, user), await h.Queries.GetUserDailyUsageAsync(Today.AddDays(-120), Today, user));
        }

        // Whole months, a range with edge days, one user, one day.
        var first = DateOnly.FromDateTime(records.Min(r => r.CreatedAt).UtcDateTime);
        var last = DateOnly.FromDateTime(records.Max(r => r.CreatedAt).UtcDateTime);
        var month = new DateOnly(first.Year, first.Month, 1);
        (DateOnly From, DateOnly To, string? User)[] ranges =
        [
            (month, month.AddMonths(1).AddDays(-1), null),
            (first.AddDays(3), last.AddDays(-2), null),
            (first, last, "u2"),
            (first.AddDays(5), first.AddDays(5), null),
        ];
        foreach (var (from, to, user) in ranges)
        {
            var expected = withUser
                .Where(r => DateOnly.FromDateTime(r.CreatedAt.UtcDateTime) is var day && day >= from && day <= to && (user is null || r.UserId == user))
                .GroupBy(r => (r.UserId!, r.Endpoint, r.Model))
                .ToDictionary(g => g.Key, g => UsageFigures.Sum(g.Select(UsageFigures.Of)));
            var rows = await h.Queries.GetUserEndpointUsageAsync(from, to, user);
            Assert.Equal(expected, rows.ToDictionary(e => (e.UserId, e.Endpoint, e.Model), e => e.Figures));

            // In the same order too: user id (ordinal), then cost descending, endpoint and model.
            Assert.Equal(await reference.GetUserEndpointUsageAsync(from, to, user), rows);
        }
    }

    private const string Sums = "calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens";

    private const string RawSums = "count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), coalesce(sum(cost_usd), 0), sum(cache_write_tokens)";

    /// <summary>After a fold, every rollup table holds exactly one row per group of the raw records, with their sums.</summary>
    private static async Task AssertRollupsEqualRawAsync(PostgresStoreHarness h)
    {
        const string Day = "(created_at AT TIME ZONE 'UTC')::date";
        const string Month = "date_trunc('month', created_at AT TIME ZONE 'UTC')::date";
        (string Table, string Key, string RawKey, string Where)[] grains =
        [
            ("usage_user_endpoint_month", "user_id, month, endpoint, model", $"user_id, {Month}, endpoint, model", "WHERE user_id IS NOT NULL"),
            ("usage_user_day", "user_id, day", $"user_id, {Day}", "WHERE user_id IS NOT NULL"),
            ("usage_user_month", "user_id, month", $"user_id, {Month}", "WHERE user_id IS NOT NULL"),
            ("usage_user_total", "user_id", "user_id", "WHERE user_id IS NOT NULL"),
            ("usage_endpoint_day", "day, endpoint, model", $"{Day}, endpoint, model", string.Empty),
            ("usage_endpoint_month", "month, endpoint, model", $"{Month}, endpoint, model", string.Empty),
            ("usage_endpoint_total", "endpoint, model", "endpoint, model", string.Empty),
        ];
        foreach (var (table, key, rawKey, where) in grains)
        {
            var raw = $"SELECT {rawKey}, {RawSums} FROM {{s}}.user_api_usage {where} GROUP BY {rawKey}";
            var rollup = $"SELECT {key}, {Sums} FROM {{s}}.{table}";
            Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM ({raw} EXCEPT {rollup}) x"));
            Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM ({rollup} EXCEPT {raw}) x"));
            Assert.Equal(await h.ScalarAsync<long>($"SELECT count(*) FROM ({raw}) x"), await h.ScalarAsync<long>($"SELECT count(*) FROM {{s}}.{table}"));
        }

        (string Table, string Key, string RawKey)[] active =
        [
            ("usage_active_day", "day", Day),
            ("usage_active_month", "month", Month),
        ];
        foreach (var (table, key, rawKey) in active)
        {
            var raw = $"SELECT {rawKey}, count(DISTINCT user_id) FROM {{s}}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1";
            var rollup = $"SELECT {key}, active_users FROM {{s}}.{table}";
            Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM (({raw} EXCEPT {rollup}) UNION ALL ({rollup} EXCEPT {raw})) x"));
        }

        Assert.Equal(0L, await h.ScalarAsync<long>(
            "SELECT count(*) FROM (SELECT user_id, min(created_at), max(created_at) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1 EXCEPT SELECT user_id, first_call_at, last_call_at FROM {s}.usage_user_total) x"));
    }
}
