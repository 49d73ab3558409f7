using System.Diagnostics;
using TokenMeter.Postgres.Repricing;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.Repricing;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Postgres.Tests;

public sealed class ConcurrencyTests(PostgresDatabaseFixture database) : IClassFixture<PostgresDatabaseFixture>
{
    [Fact]
    public async Task AppendAsync_FourWritersOnOverlappingKeys_NoDeadlockAndRollupsEqualRawSums()
    {
        // Background folds every 1,000 records run while the writers write.
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString, o => o.FoldEveryRecords = 1000);
        var start = new DateTimeOffset(2026, 10, 30, 0, 0, 0, TimeSpan.Zero);
        var duration = TimeSpan.FromSeconds(5);
        var clock = Stopwatch.StartNew();

        // Every writer touches the same users, endpoints, models, days and both months, in random
        // order within its batches, and replays some of the others' ids: the worst case for locks.
        var stored = await Task.WhenAll(Enumerable.Range(0, 4).Select(writer => Task.Run(async () =>
        {
            var random = new Random(writer);
            var total = 0;
            UsageRecord[]? previous = null;
            while (clock.Elapsed < duration)
            {
                var batch = Enumerable.Range(0, 200).Select(_ => Records.Make(
                    start.AddMinutes(random.Next(0, 60 * 24 * 4)),
                    userId: random.Next(10) == 0 ? null : "u" + random.Next(20),
                    endpoint: random.Next(6) == 0 ? null : "/api/e" + random.Next(3),
                    model: "m" + random.Next(2),
                    input: random.Next(1, 1000),
                    output: random.Next(1, 500),
                    cost: random.Next(8) == 0 ? null : random.Next(1, 100_000) / 10_000_000m)).ToList();
                if (previous is not null)
                {
                    batch.AddRange(previous.Take(20));
                }

                total += await h.Store.AppendAsync(batch);
                previous = [.. batch];
            }

            return total;
        })));

        var raw = await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage");
        Assert.Equal(stored.Sum(), raw);
        Assert.True(raw > 1000, $"only {raw} records in {duration}");
        await h.FoldAsync();
        Assert.Equal(0L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_pending"));

        // Each rollup equals the same GROUP BY over the raw table.
        string[] checks =
        [
            "SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, endpoint, model, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2, 3, 4 EXCEPT SELECT user_id, month, endpoint, model, calls, total_tokens, cost_usd FROM {s}.usage_user_endpoint_month",
            UserEndpointTotalMinusRaw,
            RawMinusUserEndpointTotal,
            "SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2 EXCEPT SELECT user_id, day, calls, total_tokens, cost_usd FROM {s}.usage_user_day",
            "SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2 EXCEPT SELECT user_id, month, calls, total_tokens, cost_usd FROM {s}.usage_user_month",
            "SELECT user_id, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0), min(created_at), max(created_at) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1 EXCEPT SELECT user_id, calls, total_tokens, cost_usd, first_call_at, last_call_at FROM {s}.usage_user_total",
            "SELECT (created_at AT TIME ZONE 'UTC')::date, endpoint, model, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage GROUP BY 1, 2, 3 EXCEPT SELECT day, endpoint, model, calls, total_tokens, cost_usd FROM {s}.usage_endpoint_day",
            "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date, endpoint, model, count(*), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {s}.user_api_usage GROUP BY 1, 2, 3 EXCEPT SELECT month, endpoint, model, calls, total_tokens, cost_usd FROM {s}.usage_endpoint_month",
            "SELECT (created_at AT TIME ZONE 'UTC')::date, count(DISTINCT user_id) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1 EXCEPT SELECT day, active_users FROM {s}.usage_active_day",
            "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date, count(DISTINCT user_id) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1 EXCEPT SELECT month, active_users FROM {s}.usage_active_month",
        ];
        foreach (var check in checks)
        {
            Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM ({check}) x"));
        }

        // And the row counts match too (EXCEPT alone would miss extra rollup rows).
        Assert.Equal(await h.ScalarAsync<long>("SELECT count(*) FROM (SELECT DISTINCT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, endpoint, model FROM {s}.user_api_usage WHERE user_id IS NOT NULL) x"), await h.ScalarAsync<long>("SELECT count(*) FROM {s}.usage_user_endpoint_month"));
        Assert.Equal(raw, (await h.Queries.GetStatsAsync(new DateOnly(2026, 11, 1))).Figures.Calls);
    }

    [Fact]
    public async Task UserEndpointTotal_AfterIngestSpoolReplayAndReprice_EqualsAFreshSumOverRecords()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var random = new Random(3);
        var start = new DateTimeOffset(2026, 7, 20, 0, 0, 0, TimeSpan.Zero);
        var records = Enumerable.Range(0, 1500).Select(_ => Records.Make(
            start.AddMinutes(random.Next(0, 60 * 24 * 120)),
            userId: random.Next(10) == 0 ? null : "u" + random.Next(12),
            endpoint: random.Next(6) == 0 ? null : "/api/e" + random.Next(3),
            model: random.Next(7) == 0 ? null : "m" + random.Next(2),
            input: random.Next(1, 1000),
            output: random.Next(1, 500),
            cost: random.Next(8) == 0 ? null : random.Next(1, 100_000) / 10_000_000m,
            cached: random.Next(0, 50))).ToArray();

        // Ingest in batches, then the spool replays: a batch resent whole, and overlapping ones mixed with new records.
        Assert.Equal(1000, await h.Store.AppendAsync(records[..1000]));
        await AssertUserEndpointTotalEqualsRawAsync(h);
        Assert.Equal(0, await h.Store.AppendAsync(records[..1000]));
        Assert.Equal(500, await h.Store.AppendAsync([.. records[800..1200], .. records[1000..], .. records[..100]]));
        await AssertUserEndpointTotalEqualsRawAsync(h);
        Assert.Equal(1500L, await h.ScalarAsync<long>("SELECT count(*) FROM {s}.user_api_usage"));

        // A re-pricing that changes every record of the open months (and prices the unpriced ones).
        var repricing = new PostgresRepricingStore(h.Context);
        var plan = new RepricingPlan(
            new RepricingRequest(new DateOnly(2026, 7, 1), new DateOnly(2026, 12, 31), OnlyUnpriced: false, DryRun: false),
            Guid.CreateVersion7(),
            h.Time.GetUtcNow(),
            new DateOnly(2026, 9, 1),
            r => r with { CostUsd = ((r.CostUsd ?? 0m) * 3) + (r.InputTokens / 1_000_000m), PriceId = "test/reprice" });
        var result = await repricing.RepriceAsync(plan);
        Assert.True(result.Records > 500, $"only {result.Records} records re-priced");
        Assert.NotEmpty(result.ClosedMonths);
        await AssertUserEndpointTotalEqualsRawAsync(h);

        // And the user detail reads exactly those rows.
        foreach (var user in records.Where(r => r.UserId is not null).Select(r => r.UserId!).Distinct())
        {
            var detail = await h.Queries.GetUserUsageAsync(user, new DateOnly(2026, 11, 24));
            Assert.Equal(detail!.Summary.Figures, UsageFigures.Sum(detail.ByEndpoint.Select(e => e.Figures)));
        }
    }

    private const string RawUserEndpointSums =
        "SELECT user_id, endpoint, model, count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), coalesce(sum(cost_usd), 0), sum(cache_write_tokens) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2, 3";

    // All-time per user, endpoint and model: derived from the month rollup (migration 0010 dropped the all-time table).
    private const string MonthsUserEndpointSums =
        "SELECT user_id, endpoint, model, sum(calls), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), sum(cost_usd), sum(cache_write_tokens) FROM {s}.usage_user_endpoint_month GROUP BY 1, 2, 3";

    private const string UserEndpointTotalMinusRaw = $"{MonthsUserEndpointSums} EXCEPT {RawUserEndpointSums}";

    private const string RawMinusUserEndpointTotal = $"{RawUserEndpointSums} EXCEPT {MonthsUserEndpointSums}";

    /// <summary>
    /// Each user's all-time by-endpoint list (the user detail) equals the raw rows' sums per endpoint and model, with
    /// the rows still pending; then, folded, the month rollup summed over the months holds exactly those sums.
    /// </summary>
    private static async Task AssertUserEndpointTotalEqualsRawAsync(PostgresStoreHarness h)
    {
        var users = await h.ScalarAsync<long>("SELECT count(DISTINCT user_id) FROM {s}.user_api_usage");
        var checkedUsers = 0;
        foreach (var user in await h.StringsAsync("SELECT DISTINCT user_id FROM {s}.user_api_usage WHERE user_id IS NOT NULL"))
        {
            var detail = await h.Queries.GetUserUsageAsync(user, new DateOnly(2026, 11, 24));
            var raw = await h.StringsAsync(
                "SELECT coalesce(endpoint, '-') || '|' || coalesce(model, '-') || '|' || count(*) || ',' || sum(input_tokens) || ',' || sum(total_tokens) || ',' || coalesce(sum(cost_usd), 0)::numeric(20, 10) FROM {s}.user_api_usage WHERE user_id = $1 GROUP BY endpoint, model",
                user);
            var read = detail!.ByEndpoint.Select(e => FormattableString.Invariant($"{e.Endpoint ?? "-"}|{e.Model ?? "-"}|{e.Figures.Calls},{e.Figures.InputTokens},{e.Figures.TotalTokens},{decimal.Round(e.Figures.CostUsd, 10):0.0000000000}"));
            Assert.Equal(raw.Order(StringComparer.Ordinal), read.Order(StringComparer.Ordinal));
            checkedUsers++;
        }

        Assert.Equal(users, checkedUsers);
        await h.FoldAsync();
        Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM ({UserEndpointTotalMinusRaw}) x"));
        Assert.Equal(0L, await h.ScalarAsync<long>($"SELECT count(*) FROM ({RawMinusUserEndpointTotal}) x"));
        Assert.Equal(await h.ScalarAsync<long>($"SELECT count(*) FROM ({RawUserEndpointSums}) x"), await h.ScalarAsync<long>($"SELECT count(*) FROM ({MonthsUserEndpointSums}) x"));
    }

    [Fact]
    public async Task Views_AgreeWithTheQueryApi()
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var random = new Random(7);
        var start = new DateTimeOffset(2026, 9, 25, 0, 0, 0, TimeSpan.Zero);
        var records = Enumerable.Range(0, 600).Select(_ => Records.Make(
            start.AddMinutes(random.Next(0, 60 * 24 * 40)),
            userId: random.Next(8) == 0 ? null : "u" + random.Next(15),
            endpoint: "/api/e" + random.Next(3),
            model: "m" + random.Next(2),
            input: random.Next(1, 1000),
            output: random.Next(1, 500),
            cost: random.Next(1, 100_000) / 10_000_000m)).ToArray();
        await h.Store.AppendAsync(records);

        var users = await h.Queries.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.UserId, SortOrder.Ascending, 500));
        var userView = await RowsAsync(h, "SELECT user_id, total_calls, total_tokens, total_cost_usd, last_call_at FROM {s}.user_usage_summary ORDER BY user_id COLLATE \"C\"");
        Assert.Equal(users.Items.Select(u => FormattableString.Invariant($"{u.UserId}|{u.Figures.Calls}|{u.Figures.TotalTokens}|{u.Figures.CostUsd}|{u.LastCallAt:O}")), userView);

        var endpoints = await h.Queries.GetEndpointUsageAsync();
        var endpointView = await RowsAsync(h, "SELECT endpoint, model, calls, total_tokens, total_cost_usd FROM {s}.endpoint_usage_summary ORDER BY total_cost_usd DESC, endpoint, model");
        Assert.Equal(endpoints.Select(e => FormattableString.Invariant($"{e.Endpoint}|{e.Model}|{e.Figures.Calls}|{e.Figures.TotalTokens}|{e.Figures.CostUsd}")), endpointView);

        var daily = await h.Queries.GetDailyUsageAsync(new DateOnly(2026, 1, 1), new DateOnly(2026, 12, 31));
        var dailyView = await RowsAsync(h, "SELECT date, calls, input_tokens, output_tokens, total_tokens, cost_usd, active_users FROM {s}.daily_usage_summary ORDER BY date DESC");
        Assert.Equal(daily.Select(d => FormattableString.Invariant($"{d.Period:yyyy-MM-dd}|{d.Figures.Calls}|{d.Figures.InputTokens}|{d.Figures.OutputTokens}|{d.Figures.TotalTokens}|{d.Figures.CostUsd}|{d.ActiveUsers}")), dailyView);

        var monthly = await h.Queries.GetMonthlyUsageAsync(new DateOnly(2026, 1, 1), new DateOnly(2026, 12, 1));
        var monthlyView = await RowsAsync(h, "SELECT month, calls, input_tokens, output_tokens, total_tokens, cost_usd, active_users FROM {s}.monthly_usage_summary ORDER BY month DESC");
        Assert.Equal(monthly.Select(m => FormattableString.Invariant($"{m.Period:yyyy-MM}|{m.Figures.Calls}|{m.Figures.InputTokens}|{m.Figures.OutputTokens}|{m.Figures.TotalTokens}|{m.Figures.CostUsd}|{m.ActiveUsers}")), monthlyView);
        Assert.Equal(3, monthly.Count);
        Assert.Equal(600, monthly.Sum(m => m.Figures.Calls));
    }

    [Theory]
    [InlineData("2026-10-01", "2026-10-31")] // one whole month: read straight from the monthly rollup
    [InlineData("2026-10-05", "2026-10-20")] // inside one month: daily rollup only
    [InlineData("2026-09-28", "2026-11-02")] // edges around a whole month
    [InlineData("2026-09-01", "2026-11-30")] // three whole months
    public async Task GetUserEndpointUsageAsync_AnyRange_EqualsAGroupByOverRawRows(string first, string last)
    {
        await using var h = await PostgresStoreHarness.CreateAsync(database.ConnectionString);
        var random = new Random(11);
        var start = new DateTimeOffset(2026, 9, 20, 0, 0, 0, TimeSpan.Zero);
        await h.Store.AppendAsync([.. Enumerable.Range(0, 800).Select(_ => Records.Make(
            start.AddMinutes(random.Next(0, 60 * 24 * 50)),
            userId: random.Next(8) == 0 ? null : "u" + random.Next(6),
            endpoint: random.Next(5) == 0 ? null : "/api/e" + random.Next(3),
            model: "m" + random.Next(2),
            input: random.Next(1, 1000),
            output: random.Next(1, 500),
            cost: random.Next(1, 100_000) / 10_000_000m))]);
        var (from, to) = (DateOnly.Parse(first, System.Globalization.CultureInfo.InvariantCulture), DateOnly.Parse(last, System.Globalization.CultureInfo.InvariantCulture));

        var api = await h.Queries.GetUserEndpointUsageAsync(from, to);
        var raw = await RowsAsync(h, $"SELECT user_id, endpoint, model, count(*), sum(input_tokens), sum(total_tokens), coalesce(sum(cost_usd), 0) FROM {{s}}.user_api_usage WHERE user_id IS NOT NULL AND created_at >= '{from:yyyy-MM-dd}T00:00:00Z' AND created_at < '{to.AddDays(1):yyyy-MM-dd}T00:00:00Z' GROUP BY 1, 2, 3 ORDER BY user_id COLLATE \"C\", 7 DESC, endpoint COLLATE \"C\" NULLS FIRST, model COLLATE \"C\" NULLS FIRST");

        Assert.NotEmpty(raw);
        Assert.Equal(raw, api.Select(e => FormattableString.Invariant($"{e.UserId}|{e.Endpoint}|{e.Model}|{e.Figures.Calls}|{e.Figures.InputTokens}|{e.Figures.TotalTokens}|{e.Figures.CostUsd}")));
        var oneUser = await h.Queries.GetUserEndpointUsageAsync(from, to, "u3");
        Assert.Equal(api.Where(e => e.UserId == "u3"), oneUser);

        // The same answers once the pending sums are folded into the rollups.
        Assert.True(await h.FoldAsync() > 0);
        Assert.Equal(api, await h.Queries.GetUserEndpointUsageAsync(from, to));
        Assert.Equal(oneUser, await h.Queries.GetUserEndpointUsageAsync(from, to, "u3"));
    }

    private static async Task<List<string>> RowsAsync(PostgresStoreHarness h, string sql)
    {
        await using var command = h.DataSource.CreateCommand(sql.Replace("{s}", h.S, StringComparison.Ordinal));
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            var cells = new string[reader.FieldCount];
            for (var i = 0; i < cells.Length; i++)
            {
                cells[i] = reader.IsDBNull(i) ? string.Empty : reader.GetValue(i) switch
                {
                    DateOnly d => d.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
                    DateTime t when reader.GetDataTypeName(i) == "date" => DateOnly.FromDateTime(t).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
                    DateTime t => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)).ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                    IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
                    var v => v.ToString()!,
                };
            }

            rows.Add(string.Join('|', cells));
        }

        return rows;
    }
}
