using TokenMeter.Pricing;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

public sealed class IngestTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    private static readonly DateTimeOffset Noon = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task AppendAsync_LogsOneBatchTaggingItsRows_AndAReplayWritesSumsInstead()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 1_000_000);
        var batch = Enumerable.Range(0, 40).Select(i => Records.Make(Noon.AddMinutes((i * 37) % 90 - 45), userId: i % 4 == 0 ? null : "u" + (i % 3))).ToArray();

        Assert.Equal(40, await h.Store.AppendAsync(batch));

        // One batch row spanning exactly its records' times; every raw row carries its id; no pending sums.
        Assert.Equal(
            [FormattableString.Invariant($"40|{batch.Min(r => r.CreatedAt).UtcDateTime:yyyy-MM-dd HH:mm:ss}|{batch.Max(r => r.CreatedAt).UtcDateTime:yyyy-MM-dd HH:mm:ss}")],
            await h.StringsAsync("SELECT count(u.*) || '|' || to_char(b.first_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '|' || to_char(b.last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM {s}.usage_batches b JOIN {s}.user_api_usage u ON u.batch_id = b.id GROUP BY b.id"));
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage WHERE batch_id IS NULL"));
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending_sums"));
        Assert.Equal(40L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_pending"));

        // A batch holding stored records: its COPY (and the batch row written before it) rolls back, and the staging
        // path stores only the new records, as sums, without a batch id.
        Assert.Equal(3, await h.Store.AppendAsync([.. batch[..5], .. Enumerable.Range(0, 3).Select(i => Records.Make(Noon.AddHours(2 + i)))]));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_batches"));
        Assert.Equal(3L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage WHERE batch_id IS NULL"));
        Assert.Equal(3L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_pending_sums"));
        Assert.Equal(43L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_pending"));

        // One user's share (through the user indexes) is the view's rows of that user; and no read of the view plans the
        // raw table's partitions (the unfolded rows are read by a function, planned with the batches' time bounds).
        foreach (var user in (string[])["u0", "u1", "u2"])
        {
            Assert.Equal(
                await h.StringsAsync("SELECT day || '|' || coalesce(endpoint, '-') || '|' || calls || '|' || cost_usd FROM {s}.usage_pending WHERE user_id = $1 ORDER BY 1", user),
                await h.StringsAsync("SELECT day || '|' || coalesce(endpoint, '-') || '|' || calls || '|' || cost_usd FROM {s}.tokenmeter_pending_of($1) ORDER BY 1", user));
        }

        Assert.DoesNotContain("user_api_usage", string.Join('\n', await h.StringsAsync("EXPLAIN SELECT day, sum(calls) FROM {s}.usage_pending GROUP BY day")));

        // The fold takes both, once.
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending"));
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_batches"));
        Assert.Equal(43L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_endpoint_month"));
        Assert.Equal(0L, await h.FoldAsync());
        Assert.Equal(43L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_endpoint_month"));
    }

    [Fact]
    public async Task AppendAsync_BatchReplayedTwice_CountsOnce()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var batch = Enumerable.Range(0, 50).Select(i => Records.Make(Noon.AddSeconds(i), userId: "u" + (i % 5))).ToArray();

        Assert.Equal(50, await h.Store.AppendAsync(batch));
        Assert.Equal(0, await h.Store.AppendAsync(batch));
        Assert.Equal(10, await h.Store.AppendAsync([.. batch.Take(5), .. Enumerable.Range(0, 10).Select(i => Records.Make(Noon.AddMinutes(10 + i)))]));

        var stats = await h.Queries.GetStatsAsync(DateOnly.FromDateTime(Noon.UtcDateTime));
        Assert.Equal(60, stats.Figures.Calls);
        Assert.Equal(60 * 150, stats.Figures.TotalTokens);
        Assert.Equal(0.060m, stats.Figures.CostUsd);
        Assert.Equal(5, stats.ActiveUsers);
        Assert.Equal(60L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage"));
        Assert.Equal(60L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_pending"));
        await h.FoldAsync();
        Assert.Equal(60L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_user_total"));
        Assert.Equal(60L, await h.ScalarAsync<long>("SELECT sum(calls)::bigint FROM {s}.usage_endpoint_month"));
    }

    [Fact]
    public async Task AppendAsync_RecordsCrossingAMonthBoundary_LandInTheirMonthsPartitions()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var lastOfJanuary = new DateTimeOffset(2027, 1, 31, 23, 59, 59, 999, TimeSpan.Zero);
        var firstOfFebruary = new DateTimeOffset(2027, 2, 1, 0, 0, 0, TimeSpan.Zero);
        // An offset other than UTC must still land by its UTC instant (01:30+02:00 is January 31 in UTC).
        var localLate = new DateTimeOffset(2027, 2, 1, 1, 30, 0, TimeSpan.FromHours(2));

        Assert.Equal(3, await h.Store.AppendAsync([Records.Make(lastOfJanuary), Records.Make(firstOfFebruary), Records.Make(localLate)]));

        Assert.Equal(2L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage_y2027m01"));
        Assert.Equal(1L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage_y2027m02"));
        var months = await h.Queries.GetMonthlyUsageAsync(new DateOnly(2027, 1, 1), new DateOnly(2027, 2, 1));
        Assert.Equal([(new DateOnly(2027, 2, 1), 1L), (new DateOnly(2027, 1, 1), 2L)], months.Select(m => (m.Period, m.Figures.Calls)));
        var days = await h.Queries.GetDailyUsageAsync(new DateOnly(2027, 1, 30), new DateOnly(2027, 2, 2));
        Assert.Equal([(new DateOnly(2027, 2, 1), 1L), (new DateOnly(2027, 1, 31), 2L)], days.Select(d => (d.Period, d.Figures.Calls)));
    }

    [Fact]
    public async Task MaintainAsync_Retention_DropsOnlyPartitionsOlderThanTheKeptMonths()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => { o.RetentionMonths = 2; o.PartitionsAhead = 1; }, now: new DateTimeOffset(2026, 11, 15, 0, 0, 0, TimeSpan.Zero));
        foreach (var month in (int[])[7, 8, 9, 10, 11])
        {
            await h.Store.AppendAsync([Records.Make(new DateTimeOffset(2026, month, 10, 0, 0, 0, TimeSpan.Zero))]);
        }

        await h.Context.MaintainAsync(CancellationToken.None);

        var partitions = await PartitionsAsync(h);
        Assert.Equal(["user_api_usage_y2026m09", "user_api_usage_y2026m10", "user_api_usage_y2026m11", "user_api_usage_y2026m12"], partitions);
        Assert.Equal(3L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage"));

        // Rollups keep the dropped months: summaries stay all-time.
        Assert.Equal(5, (await h.Queries.GetStatsAsync(new DateOnly(2026, 11, 15))).Figures.Calls);

        // A late record for a dropped month recreates its partition rather than failing the batch.
        Assert.Equal(1, await h.Store.AppendAsync([Records.Make(new DateTimeOffset(2026, 7, 20, 0, 0, 0, TimeSpan.Zero))]));
    }

    [Fact]
    public async Task AppendAsync_HostileStringsInEveryField_StoredAndReadBackVerbatim()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        string[] hostile =
        [
            "'; DROP TABLE user_api_usage; --",
            "\"); DELETE FROM tokenmeter_budgets; --",
            "Robert'); DROP SCHEMA public CASCADE;--",
            "\\x00\\' OR '1'='1",
            "$1 $$ $tag$ E'\\n' \\\\",
            "=HYPERLINK(\"http://x\")",
            "ünïcödé 日本語 🎉",
        ];
        var records = hostile.Select((text, i) => Records.Make(Noon.AddSeconds(i)) with
        {
            UserId = text,
            Endpoint = text,
            Operation = text,
            RequestModel = text,
            Model = text,
            ServiceTier = text,
            PriceId = text,
            SessionId = text,
            ProblemId = text,
            Tags = new Dictionary<string, string> { [text] = text, ["k"] = text },
        }).ToArray();

        Assert.Equal(records.Length, await h.Store.AppendAsync(records));

        var exported = await h.Queries.ExportAsync(new UsageExportQuery()).ToListAsync();
        Assert.Equal(records.Length, exported.Count);
        for (var i = 0; i < records.Length; i++)
        {
            AssertSameRecord(records[i], exported[i]);
        }

        foreach (var text in hostile)
        {
            var detail = await h.Queries.GetUserUsageAsync(text, DateOnly.FromDateTime(Noon.UtcDateTime));
            Assert.NotNull(detail);
            Assert.Equal(text, detail.Summary.UserId);
            Assert.Equal(text, Assert.Single(detail.ByEndpoint).Endpoint);
            Assert.Single(await h.Queries.ExportAsync(new UsageExportQuery(UserId: text)).ToListAsync());
            await h.Budgets.SetUserBudgetAsync(new TokenMeter.Budgets.UserBudget(text, 1m, null));
            Assert.True(await h.Deliveries.TryClaimAsync(text, text, TimeSpan.FromMinutes(1)));
        }

        Assert.Equal(hostile.Length, (await h.Budgets.GetBudgetsAsync()).Users.Count);
        Assert.Equal(hostile.Length, (await h.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.UserId))).Total);
    }

    [Fact]
    public async Task ExportAsync_EveryFieldRoundTrips_FilteredByInclusiveDaysAndUser()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var full = Records.Make(new DateTimeOffset(2026, 11, 20, 23, 59, 59, 123, TimeSpan.Zero), cached: 7, reasoning: 9) with
        {
            ServiceTier = "flex",
            AudioInputTokens = 3,
            AudioOutputTokens = 4,
            CostUsd = 0.0000012345m,
            DurationMs = 1234.25,
            Status = UsageStatus.HttpError,
            HttpStatus = 503,
            Streaming = true,
            SessionId = "s",
            ProblemId = "p",
            Tags = new Dictionary<string, string> { ["grade"] = "7" },
        };
        var anonymous = Records.Make(new DateTimeOffset(2026, 11, 21, 0, 0, 0, TimeSpan.Zero), userId: null, endpoint: null, model: null, cost: null);
        var later = Records.Make(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));
        await h.Store.AppendAsync([later, anonymous, full]);

        AssertSameRecord(full, Assert.Single(await h.Queries.ExportAsync(new UsageExportQuery(To: new DateOnly(2026, 11, 20))).ToListAsync()));
        Assert.Equal([full.Id, anonymous.Id], (await h.Queries.ExportAsync(new UsageExportQuery(new DateOnly(2026, 11, 20), new DateOnly(2026, 11, 21))).ToListAsync()).Select(r => r.Id));
        Assert.Equal([full.Id, later.Id], (await h.Queries.ExportAsync(new UsageExportQuery(UserId: "u1")).ToListAsync()).Select(r => r.Id));
        AssertSameRecord(anonymous, (await h.Queries.ExportAsync(new UsageExportQuery()).ToListAsync())[1]);
    }

    internal static void AssertSameRecord(UsageRecord expected, UsageRecord actual)
    {
        // A record without a cost is stored as unpriced, whatever it said.
        Assert.Equal(expected with { Tags = null, CostSource = CostSourceNames.Effective(expected) }, actual with { Tags = null });
        Assert.Equal(expected.Tags?.OrderBy(t => t.Key, StringComparer.Ordinal), actual.Tags?.OrderBy(t => t.Key, StringComparer.Ordinal));
    }

    private static async Task<List<string>> PartitionsAsync(PostgresStoreHarness h)
    {
        await using var command = h.DataSource.CreateCommand("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = 'user_api_usage' ORDER BY 1");
        command.Parameters.AddWithValue(h.Context.Schema);
        await using var reader = await command.ExecuteReaderAsync();
        var names = new List<string>();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }
}
