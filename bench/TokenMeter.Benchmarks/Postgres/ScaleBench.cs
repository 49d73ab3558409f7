using System.Diagnostics;
using System.Globalization;
using Npgsql;
using TokenMeter.Postgres;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Benchmarks.Postgres;

/// <summary>
/// How query and ingest costs grow with the data:
/// <c>dotnet run -c Release --project bench/TokenMeter.Benchmarks -- postgres-scale [small=5000000] [large=20000000] [ingest=100000] [batch=5000]</c> (ingest 0: the queries only).
/// <list type="number">
/// <item>Loads <c>small</c> calls server-side (<c>generate_series</c> straight into <c>user_api_usage</c>,
/// 13,699 calls a day ending today, 1,000 users, 5 endpoints, 3 models: the shape of the
/// <c>postgres</c> benchmark), then builds every rollup from the raw rows with one GROUP BY per rollup.</item>
/// <item>Times the store query behind every admin read route (p50 of 15 after 2 warm-ups).</item>
/// <item>Adds older calls at the same daily rate until the table holds <c>large</c> (more history,
/// the same users), rebuilds the rollups, and times the same queries again: the ratio is large ÷ small.</item>
/// <item>Ingest through the store's <c>AppendAsync</c> into that full table and into an empty schema,
/// interleaved (empty, full, full, empty), the same records (dated after the loaded data) and batch size.</item>
/// </list>
/// </summary>
internal static class ScaleBench
{
    private const int CallsPerDay = 13_699;

    // The rollups' figure columns, their sums over raw rows, and their sums over a finer rollup's rows.
    private const string Cols = "calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens";
    private const string Sums = "count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), coalesce(sum(cost_usd), 0), sum(cache_write_tokens)";
    private const string Resum = "sum(calls), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), sum(cost_usd), sum(cache_write_tokens)";

    private static string Over20(IEnumerable<(string Name, double Small, double Large)> queries)
    {
        var names = queries.Select(q => q.Name).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    public static async Task<int> RunAsync(string[] args)
    {
        // --existing <connection string>: the two schemas were loaded by an earlier run whose server
        // is still up; only the queries and the ingest comparison run (e.g. again on a quieter machine).
        // --into <connection string>: load into a server started by hand (kept after the run, for a later --existing).
        string? existing = null;
        var load = true;
        if (args.Length > 1 && args[0] is "--existing" or "--into")
        {
            existing = args[1];
            load = args[0] == "--into";
            args = args[2..];
        }

        var small = args.Length > 0 ? long.Parse(args[0], CultureInfo.InvariantCulture) : 5_000_000;
        var large = args.Length > 1 ? long.Parse(args[1], CultureInfo.InvariantCulture) : 20_000_000;
        var ingestCount = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 100_000;
        var batchSize = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 5_000;
        Print($"postgres-scale: {small:N0} then {large:N0} calls, ingest {ingestCount:N0} records at {batchSize:N0}/batch; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}{(load ? string.Empty : " (schemas loaded by an earlier run)")}");

        await using var server = existing is null
            ? await PostgresServer.StartAsync(["fsync=on", "synchronous_commit=on", "full_page_writes=on", "shared_buffers=1GB", "work_mem=64MB", "maintenance_work_mem=512MB", "max_wal_size=8GB", "checkpoint_timeout=30min"])
            : null;
        var connectionString = existing ?? await server!.CreateDatabaseAsync("scale");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        PostgresBench.SetPostmaster(await PostgresBench.ScalarAsync<int>(dataSource, "SELECT pg_backend_pid()"));

        // A fixed mid-month day, so month-to-date queries (budgets, forecasts) read 20 days whatever the date of the run.
        var today = new DateOnly(2026, 11, 20);
        var smallContext = await NewSchemaAsync(dataSource, "scale_small");
        var context = await NewSchemaAsync(dataSource, "scale_large");
        if (load)
        {
            await LoadAsync(smallContext, 0, small, today);
            await LoadAsync(context, 0, large, today);
        }
        else
        {
            // Earlier runs' ingest comparisons may have left their records behind (runs before this clean-up existed).
            await RemoveIngestedAsync(smallContext, today);
            await RemoveIngestedAsync(context, today);
            Print($"  rows (planner estimates): {await PostgresBench.ScalarAsync<float>(dataSource, "SELECT sum(c.reltuples)::real FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = 'scale_small' AND p.relname = 'user_api_usage'"):N0} and {await PostgresBench.ScalarAsync<float>(dataSource, "SELECT sum(c.reltuples)::real FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = 'scale_large' AND p.relname = 'user_api_usage'"):N0}");
        }

        // Both tables stay: each query alternates between them (A B B A ...), so the machine's load hits both alike.
        var results = await QueriesAsync(smallContext, context, today);
        results.AddRange(await RoutesAsync(smallContext, context, small, large, today));
        Print("");
        Print($"| admin route: store query | p50 at {small:N0} (ms) | p50 at {large:N0} (ms) | ratio |");
        Print("|---|---:|---:|---:|");
        var worst = 0.0;
        foreach (var (name, a, b) in results)
        {
            // The export streams rows: its cost grows with the rows a user has, by design; not a dashboard query.
            if (!name.StartsWith("GET /export", StringComparison.Ordinal))
            {
                worst = Math.Max(worst, b / a);
            }

            Print($"| {name} | {a:N2} | {b:N2} | {b / a:N2} |");
        }

        Print($"worst ratio of the dashboard queries (export left out) {worst:N2} (goal <= 1.5: {(worst <= 1.5 ? "PASS" : "MISSED")}); over 20 ms p50 at {small:N0}: {Over20(results.Where(q => q.Small > 20))}, at {large:N0}: {Over20(results.Where(q => q.Large > 20))}; load average {LoadAverage()}");

        if (ingestCount == 0)
        {
            return 0;
        }

        // Ingest into the full table vs an empty schema, interleaved.
        var fresh = await PostgresBench.FreshSchemaAsync(dataSource, existing is null ? "empty" : "empty_" + DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture));
        var emptyContext = new PostgresStoreContext(dataSource, ownsDataSource: false, new PostgresStoreOptions { Schema = fresh, CommandTimeoutSeconds = 600 }, TimeProvider.System);
        emptyContext.MarkReady();
        // One untimed batch into each first (the rollups' pages of the period being written come into
        // cache, as on a live store that ingests all day), then A B B A A B B A, the median of each side.
        var warmCount = Math.Max(batchSize, ingestCount / 4);
        var order = new[] { "empty", "full", "full", "empty", "empty", "full", "full", "empty" };
        var records = PostgresBench.Generate((ingestCount * order.Length) + (warmCount * 2), new DateTimeOffset(today.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero), TimeSpan.FromHours(4)).ToList();
        var rates = new Dictionary<string, List<double>> { ["empty"] = [], ["full"] = [] };
        var next = 0;
        foreach (var (name, target) in new[] { ("empty", emptyContext), ("full", context) })
        {
            var seconds = await IngestAsync(target, records.GetRange(next, warmCount), batchSize);
            next += warmCount;
            Print($"  warm-up, untimed: {warmCount:N0} records into the {name} table in {seconds:N2} s");
        }

        for (var i = 0; i < order.Length; i++)
        {
            var seconds = await IngestAsync(order[i] == "empty" ? emptyContext : context, records.GetRange(next, ingestCount), batchSize);
            next += ingestCount;
            var rate = ingestCount / seconds;
            rates[order[i]].Add(rate);
            Print($"  ingest into the {order[i]} table: {ingestCount:N0} records in {seconds:N2} s = {rate:N0} records/s; load average {LoadAverage()}");
        }

        // The full table goes back to the calls it was loaded with, so the next run (--existing) measures the same data.
        await RemoveIngestedAsync(context, today);
        await ExecuteAsync(dataSource, $"DROP SCHEMA \"{fresh}\" CASCADE");

        var emptyRate = PostgresBench.Median(rates["empty"]);
        var fullRate = PostgresBench.Median(rates["full"]);
        Print($"ingest into a table holding {large:N0} calls ÷ into an empty one, median of {rates["full"].Count} batches each: {fullRate:N0} / {emptyRate:N0} = {fullRate / emptyRate:N2} (goal >= 0.9: {(fullRate / emptyRate >= 0.9 ? "PASS" : "MISSED")}); per batch full {string.Join(" / ", rates["full"].Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))}, empty {string.Join(" / ", rates["empty"].Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))}");
        return 0;
    }

    /// <summary>Stores <paramref name="part"/> through the store's writer path and folds every rollup; returns the seconds taken.</summary>
    private static async Task<double> IngestAsync(PostgresStoreContext target, List<UsageRecord> part, int batchSize)
    {
        var store = new PostgresUsageStore(target);
        await target.EnsurePartitionsAsync(part.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)).Distinct(), default);
        var watch = Stopwatch.StartNew();
        foreach (var batch in part.Chunk(batchSize))
        {
            await store.AppendAsync(batch);
        }

        // Every rollup maintained: the pending sums folded too.
        await target.Fold.WhenIdleAsync();
        await target.Fold.FoldAsync();
        return watch.Elapsed.TotalSeconds;
    }

    private static async Task<PostgresStoreContext> NewSchemaAsync(NpgsqlDataSource dataSource, string schema)
    {
        await PostgresMigrator.MigrateAsync(dataSource, schema);
        var context = new PostgresStoreContext(dataSource, ownsDataSource: false, new PostgresStoreOptions { Schema = schema, CommandTimeoutSeconds = 3600 }, TimeProvider.System);
        context.MarkReady();
        return context;
    }

    /// <summary>Adds calls number <paramref name="from"/> to <paramref name="to"/> (counting back from today), then rebuilds every rollup.</summary>
    private static async Task LoadAsync(PostgresStoreContext context, long from, long to, DateOnly today)
    {
        var watch = Stopwatch.StartNew();
        var s = context.Quoted;
        var end = today.ToDateTime(TimeOnly.MinValue);
        var firstDay = today.AddDays(-(int)Math.Ceiling((double)to / CallsPerDay));
        await context.EnsurePartitionsAsync(Months(firstDay, today), default);

        // One statement per month keeps each transaction a manageable size.
        var stepMicros = 86_400_000_000L / CallsPerDay;
        var chunk = CallsPerDay * 30L;
        for (var start = from; start < to; start += chunk)
        {
            var stop = Math.Min(to, start + chunk);
            await ExecuteAsync(context.DataSource, $"""
                INSERT INTO {s}.user_api_usage (id, created_at, user_id, endpoint, operation, request_model, model, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id)
                SELECT gen_random_uuid(), at, CASE WHEN u < 1000 THEN NULL ELSE 'user-' || lpad((u % 1000)::text, 4, '0') END,
                       (ARRAY['/api/analyze', '/api/verify', '/api/validate-image', '/api/hint', '/api/chat'])[1 + (h % 5)], 'chat', model, model,
                       input, cached, output, input + output,
                       ((input - cached) * (ARRAY[2.5, 0.15, 1.1])[mi] + cached * (ARRAY[2.5, 0.15, 1.1])[mi] / 2 + output * (ARRAY[10, 0.6, 4.4])[mi]) / 1000000,
                       model || '/standard', 200 + (h % 8800), 'ok', 200, false, 's' || (h % 100000)
                FROM (
                    SELECT timestamptz '{end:yyyy-MM-dd} 00:00:00+00' - make_interval(secs => (i + 1) * {stepMicros} / 1e6) AS at,
                           (hashint8(i)::bigint & 2147483647) % 20000 AS u, (hashint8(i * 31 + 7)::bigint & 2147483647) AS h, 1 + (hashint8(i * 17 + 3)::bigint & 2147483647) % 3 AS mi,
                           50 + (hashint8(i * 13 + 1)::bigint & 2147483647) % 3950 AS input, 20 + (hashint8(i * 11 + 5)::bigint & 2147483647) % 1480 AS output
                    FROM generate_series({start}::bigint, {stop - 1}::bigint) AS i
                ) g,
                LATERAL (SELECT (ARRAY['gpt-4o', 'gpt-4o-mini', 'o4-mini'])[mi] AS model, CASE WHEN h % 4 = 0 THEN input / 2 ELSE 0 END AS cached) x
                """);
        }

        Print($"  raw rows {from:N0}..{to:N0} inserted in {watch.Elapsed.TotalSeconds:N0} s; load average {LoadAverage()}");
        var rollups = Stopwatch.StartNew();
        foreach (var statement in RollupRebuild(s))
        {
            await ExecuteAsync(context.DataSource, statement);
        }

        await ExecuteAsync(context.DataSource, "VACUUM ANALYZE");
        Print($"  rollups rebuilt and VACUUM ANALYZE in {rollups.Elapsed.TotalSeconds:N0} s (total {watch.Elapsed.TotalSeconds:N0} s); rows now {await PostgresBench.ScalarAsync<long>(context.DataSource, $"SELECT count(*) FROM {s}.user_api_usage"):N0}");
    }

    /// <summary>
    /// Removes the ingest comparison's records (dated after <paramref name="today"/>; the loaded calls all end before it) and
    /// puts the rollups back to the loaded calls' sums: the days after today dropped, the current month's rows rebuilt from
    /// the raw rows, the all-time rows from the months (per endpoint and model by the trigger of migration 0016, which carries the
    /// months' delete and insert below). Cheap: one month of raw rows is read, not the whole table.
    /// </summary>
    private static async Task RemoveIngestedAsync(PostgresStoreContext context, DateOnly today)
    {
        var s = context.Quoted;
        var after = today.AddDays(1);
        var month = new DateOnly(today.Year, today.Month, 1);
        await context.Fold.WhenIdleAsync();
        await context.Fold.FoldAsync();
        var removed = await PostgresBench.ScalarAsync<long>(context.DataSource, $"SELECT count(*) FROM {s}.user_api_usage WHERE created_at >= '{after:yyyy-MM-dd}'");
        if (removed == 0)
        {
            return;
        }

        var watch = Stopwatch.StartNew();
        string[] statements =
        [
            $"DELETE FROM {s}.user_api_usage WHERE created_at >= '{after:yyyy-MM-dd}'",
            $"DELETE FROM {s}.usage_endpoint_day WHERE day >= '{after:yyyy-MM-dd}'",
            $"DELETE FROM {s}.usage_user_day WHERE day >= '{after:yyyy-MM-dd}'",
            $"DELETE FROM {s}.usage_active_day WHERE day >= '{after:yyyy-MM-dd}'",
            $"DELETE FROM {s}.usage_endpoint_month WHERE month >= '{month:yyyy-MM-dd}'",
            $"INSERT INTO {s}.usage_endpoint_month (month, endpoint, model, {Cols}) SELECT date_trunc('month', day)::date, endpoint, model, {Resum} FROM {s}.usage_endpoint_day WHERE day >= '{month:yyyy-MM-dd}' GROUP BY 1, 2, 3",
            $"DELETE FROM {s}.usage_user_endpoint_month WHERE month >= '{month:yyyy-MM-dd}'",
            $"INSERT INTO {s}.usage_user_endpoint_month (user_id, month, endpoint, model, {Cols}) SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, endpoint, model, {Sums} FROM {s}.user_api_usage WHERE created_at >= '{month:yyyy-MM-dd}' AND user_id IS NOT NULL GROUP BY 1, 2, 3, 4",
            $"DELETE FROM {s}.usage_user_month WHERE month >= '{month:yyyy-MM-dd}'",
            $"INSERT INTO {s}.usage_user_month (user_id, month, {Cols}) SELECT user_id, date_trunc('month', day)::date, {Resum} FROM {s}.usage_user_day WHERE day >= '{month:yyyy-MM-dd}' GROUP BY 1, 2",
            $"DELETE FROM {s}.usage_active_month WHERE month >= '{month:yyyy-MM-dd}'",
            $"INSERT INTO {s}.usage_active_month (month, active_users) SELECT month, count(*) FROM {s}.usage_user_month WHERE month >= '{month:yyyy-MM-dd}' GROUP BY 1",
            // All-time per user: sums from the months; the last call from this month's raw rows (the first is never an ingested one).
            $"""
            UPDATE {s}.usage_user_total t SET calls = m.calls, input_tokens = m.input_tokens, cached_input_tokens = m.cached_input_tokens, output_tokens = m.output_tokens,
                   reasoning_tokens = m.reasoning_tokens, total_tokens = m.total_tokens, cost_usd = m.cost_usd, cache_write_tokens = m.cache_write_tokens,
                   last_call_at = coalesce(l.last_call_at, (SELECT max(created_at) FROM {s}.user_api_usage r WHERE r.user_id = t.user_id))
            FROM (SELECT user_id, {Resum} FROM {s}.usage_user_month GROUP BY 1) AS m (user_id, {Cols})
            LEFT JOIN (SELECT user_id, max(created_at) FROM {s}.user_api_usage WHERE created_at >= '{month:yyyy-MM-dd}' AND user_id IS NOT NULL GROUP BY 1) AS l (user_id, last_call_at) ON l.user_id = m.user_id
            WHERE t.user_id = m.user_id
            """,
            $"DELETE FROM {s}.usage_user_total t WHERE NOT EXISTS (SELECT 1 FROM {s}.usage_user_month m WHERE m.user_id = t.user_id)",
            $"VACUUM ANALYZE {s}.user_api_usage",
        ];
        foreach (var statement in statements)
        {
            await ExecuteAsync(context.DataSource, statement);
        }

        Print($"  removed {removed:N0} ingested records from {context.Options.Schema} and put its rollups back in {watch.Elapsed.TotalSeconds:N1} s");
    }

    /// <summary>Every rollup rebuilt from the raw rows (the same sums the store's ingest keeps).</summary>
    private static IEnumerable<string> RollupRebuild(string s)
    {
        const string Day = "(created_at AT TIME ZONE 'UTC')::date";
        const string Month = "date_trunc('month', created_at AT TIME ZONE 'UTC')::date";
        yield return $"TRUNCATE {s}.usage_endpoint_day, {s}.usage_endpoint_month, {s}.usage_endpoint_total, {s}.usage_user_endpoint_month, {s}.usage_pending_sums, {s}.usage_batches, {s}.usage_user_day, {s}.usage_user_month, {s}.usage_user_total, {s}.usage_active_day, {s}.usage_active_month";
        // The per-day and per-user-month rollups are written in period order, as the store's folds write them (a
        // fold adds a new day's or month's rows after the older ones): a hash aggregate's order would scatter each
        // period's rows over the whole table, so a range of recent days would read one page per row, more pages the
        // longer the history.
        yield return $"INSERT INTO {s}.usage_endpoint_day (day, endpoint, model, {Cols}) SELECT {Day}, endpoint, model, {Sums} FROM {s}.user_api_usage GROUP BY 1, 2, 3 ORDER BY 1";
        // The all-time rows per endpoint and model (usage_endpoint_total) are filled from these month rows by the trigger of
        // migration 0016, which carries every write of the months not made by a fold.
        yield return $"INSERT INTO {s}.usage_endpoint_month (month, endpoint, model, {Cols}) SELECT month, endpoint, model, {Resum} FROM (SELECT date_trunc('month', day)::date AS month, * FROM {s}.usage_endpoint_day) d GROUP BY 1, 2, 3";
        yield return $"INSERT INTO {s}.usage_user_endpoint_month (user_id, month, endpoint, model, {Cols}) SELECT user_id, {Month}, endpoint, model, {Sums} FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 2";
        yield return $"INSERT INTO {s}.usage_user_day (user_id, day, {Cols}) SELECT user_id, {Day}, {Sums} FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1, 2 ORDER BY 2";
        yield return $"INSERT INTO {s}.usage_user_month (user_id, month, {Cols}) SELECT user_id, date_trunc('month', day)::date, {Resum} FROM {s}.usage_user_day GROUP BY 1, 2";
        yield return $"INSERT INTO {s}.usage_user_total (user_id, {Cols}, first_call_at, last_call_at) SELECT user_id, {Sums}, min(created_at), max(created_at) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY 1";
        yield return $"INSERT INTO {s}.usage_active_day (day, active_users) SELECT day, count(*) FROM {s}.usage_user_day GROUP BY 1 ORDER BY 1";
        yield return $"INSERT INTO {s}.usage_active_month (month, active_users) SELECT month, count(*) FROM {s}.usage_user_month GROUP BY 1";
    }

    /// <summary>The store query behind every admin read route at both sizes, p50 of 15 runs after 2 warm-ups, interleaved.</summary>
    private static async Task<List<(string Name, double Small, double Large)>> QueriesAsync(PostgresStoreContext smallContext, PostgresStoreContext largeContext, DateOnly today)
    {
        var results = new List<(string, double, double)>();
        Print($"queries (load average {LoadAverage()}):");
        var small = Cases(new PostgresUsageQueries(smallContext), today);
        var large = Cases(new PostgresUsageQueries(largeContext), today);
        for (var c = 0; c < small.Length; c++)
        {
            var times = (Small: new List<double>(), Large: new List<double>());
            for (var i = 0; i < 17; i++)
            {
                // Two warm-ups each, then A B B A ...
                var smallFirst = (i & 1) == 0;
                var first = await TimeAsync(smallFirst ? small[c].Query : large[c].Query);
                var second = await TimeAsync(smallFirst ? large[c].Query : small[c].Query);
                if (i >= 2)
                {
                    times.Small.Add(smallFirst ? first : second);
                    times.Large.Add(smallFirst ? second : first);
                }
            }

            times.Small.Sort();
            times.Large.Sort();
            results.Add((small[c].Name, times.Small[times.Small.Count / 2], times.Large[times.Large.Count / 2]));
            Print($"  {small[c].Name}: p50 {times.Small[times.Small.Count / 2]:N2} / {times.Large[times.Large.Count / 2]:N2} ms, max {times.Small[^1]:N2} / {times.Large[^1]:N2} ms");
        }

        return results;
    }

    /// <summary>
    /// The two bulk routes as the admin HTTP route runs them (the forecaster and the statement calculator over the store's
    /// queries, as constructed per request), each size with the store keeping finished days (B, the default) and reading
    /// everything every time (A), on fresh query objects: the first request of each (a cold store, as after start) is
    /// printed, then, after 20 untimed requests of each (the tiered JIT's full optimization, as in a running app), p50 of
    /// 15 after 2 warm-ups, A B B A ... The kept figure is the route's row at each size. Before each
    /// request a fold is simulated (<see cref="SimulatedFold"/>: rows updated in place, no change to their sums): under
    /// ingest every fold moves today's version, so a kept store reads today's rows again on every request, and this
    /// month's statement lines the fold wrote.
    /// </summary>
    private static async Task<List<(string Name, double Small, double Large)>> RoutesAsync(
        PostgresStoreContext smallContext, PostgresStoreContext largeContext, long small, long large, DateOnly today)
    {
        var results = new List<(string, double, double)>();
        Print($"routes, the store keeping finished days (kept) vs reading everything (read) (load average {LoadAverage()}):");

        // Every user has the same monthly cost budget (read from memory, as the route's cached budget store does), low
        // enough that every user's projection reaches it: every user is projected, the route returns the first 50.
        var budgets = new TokenMeter.Storage.InMemoryUsageStore();
        await budgets.SetDefaultBudgetAsync(new TokenMeter.Budgets.BudgetLimit(0.01m, null));
        var clock = new FixedClock(new DateTimeOffset(today.ToDateTime(new TimeOnly(12, 0)), TimeSpan.Zero));
        var lastFullMonth = new DateOnly(today.Year, today.Month, 1).AddMonths(-1);
        (string Name, Func<PostgresUsageQueries, Task> Route)[] routes =
        [
            ("GET /forecast/users: UsageForecaster.ForecastUsersAsync(50) (every user with a budget)", async q => await new TokenMeter.Forecasting.UsageForecaster(q, budgets, clock).ForecastUsersAsync(50)),
            ("GET /forecast: UsageForecaster.ForecastMonthAsync", async q => await new TokenMeter.Forecasting.UsageForecaster(q, budgets, clock).ForecastMonthAsync()),
            ("GET /statements?month: StatementCalculator (last full month)", async q => await new TokenMeter.Billing.StatementCalculator(q).GetMonthlyStatementAsync(lastFullMonth, 0m)),
            ("GET /statements?month: StatementCalculator (this month)", async q => await new TokenMeter.Billing.StatementCalculator(q).GetMonthlyStatementAsync(today, 0m)),
        ];
        foreach (var (name, route) in routes)
        {
            var p50 = new double[2];
            foreach (var (size, context, at) in new[] { (small, smallContext, 0), (large, largeContext, 1) })
            {
                var read = new PostgresUsageQueries(context) { KeepFinishedDays = false };
                var kept = new PostgresUsageQueries(context);

                // Before every request (untimed), a fold is simulated (see SimulatedFold): every fold moves today's version,
                // so a kept store reads that day's rows again on every request, and this month's lines written since its
                // last read. (The loaded calls end the day before the benchmark's today.)
                // Each request's CPU in this process (all threads: a load-independent view of the route's own work, where
                // wall time on a busy box is stretched by every other process) is kept beside its time.
                var cpu = (Read: new List<double>(), Kept: new List<double>());
                var allocated = (Read: new List<double>(), Kept: new List<double>());
                var folds = 0;
                async Task<double> RequestAsync(PostgresUsageQueries q)
                {
                    await ExecuteAsync(context.DataSource, SimulatedFold(context.Quoted, folds++));
                    var before = Environment.CpuUsage.TotalTime;
                    var bytes = GC.GetTotalAllocatedBytes();
                    var elapsed = await TimeAsync(() => route(q));
                    (q == read ? cpu.Read : cpu.Kept).Add((Environment.CpuUsage.TotalTime - before).TotalMilliseconds);
                    (q == read ? allocated.Read : allocated.Kept).Add((GC.GetTotalAllocatedBytes() - bytes) / 1048576.0);
                    return elapsed;
                }

                var firstRead = await RequestAsync(read);
                var firstKept = await RequestAsync(kept);

                // A server answers many requests: the route's code is compiled at full optimization after ~30 calls and a
                // pause in new compilation (tiered JIT). Warm both variants up that far before timing, as a running app is.
                for (var i = 0; i < 20; i++)
                {
                    await route(read);
                    await route(kept);
                }

                await Task.Delay(500);
                cpu.Read.Clear();
                cpu.Kept.Clear();
                allocated.Read.Clear();
                allocated.Kept.Clear();
                var times = (Read: new List<double>(), Kept: new List<double>());
                for (var i = 0; i < 17; i++)
                {
                    var readFirst = (i & 1) == 0;
                    var first = await RequestAsync(readFirst ? read : kept);
                    var second = await RequestAsync(readFirst ? kept : read);
                    if (i >= 2)
                    {
                        times.Read.Add(readFirst ? first : second);
                        times.Kept.Add(readFirst ? second : first);
                    }
                }

                times.Read.Sort();
                times.Kept.Sort();
                var (r, k) = (times.Read[times.Read.Count / 2], times.Kept[times.Kept.Count / 2]);
                p50[at] = k;
                cpu.Read.Sort();
                cpu.Kept.Sort();
                Print($"  {name} at {size:N0}: first request read {firstRead:N2} ms, kept {firstKept:N2} ms (cold); p50 read {r:N2} ms, kept {k:N2} ms = {k / r:N2}x, max {times.Read[^1]:N2} / {times.Kept[^1]:N2} ms; this process's CPU per request p50 read {cpu.Read[cpu.Read.Count / 2]:N2} ms, kept {cpu.Kept[cpu.Kept.Count / 2]:N2} ms, allocated {allocated.Read.Average():N1} / {allocated.Kept.Average():N1} MiB; load average {LoadAverage()}");
            }

            results.Add((name + " (kept)", p50[0], p50[1]));
        }

        return results;
    }

    /// <summary>
    /// What a fold of a few seconds of ingest writes, rewritten in place (no sum changes): the latest day's per-day rollup
    /// rows (its version moves), and the latest day's rows and that month's lines of 50 of the 1,000 users (a different 50
    /// each time, <paramref name="fold"/>: more users than the benchmark's call rate, 13,699 a day, folds in a minute), in
    /// one statement (one transaction) as a fold. The month lines' update leaves <c>written_by</c> to the trigger of
    /// migration 0015 (the store's fold sets it itself).
    /// </summary>
    private static string SimulatedFold(string s, int fold)
    {
        var first = fold * 50 % 1000;
        var users = $"user_id >= 'user-{first:D4}' AND user_id < 'user-{first + 50:D4}'";
        return $"""
            WITH latest AS (SELECT max(day) AS day FROM {s}.usage_endpoint_day),
            ed AS (UPDATE {s}.usage_endpoint_day SET calls = calls WHERE day = (SELECT day FROM latest)),
            ud AS (UPDATE {s}.usage_user_day SET calls = calls WHERE day = (SELECT day FROM latest) AND {users})
            UPDATE {s}.usage_user_endpoint_month SET calls = calls WHERE month = (SELECT date_trunc('month', day)::date FROM latest) AND {users}
            """;
    }

    private static async Task<double> TimeAsync(Func<Task> query)
    {
        var watch = Stopwatch.StartNew();
        await query();
        return watch.Elapsed.TotalMilliseconds;
    }

    private static (string Name, Func<Task> Query)[] Cases(PostgresUsageQueries q, DateOnly today)
    {
        var month = new DateOnly(today.Year, today.Month, 1);
        var lastFullMonth = month.AddMonths(-1);
        const string user = "user-0042";
        (string Name, Func<Task> Query)[] cases =
        [
            ("GET /stats: GetStatsAsync", async () => await q.GetStatsAsync(today)),
            ("GET /summary?sort=cost: GetUserSummariesAsync (cost desc, 50, offset 100)", async () => await q.GetUserSummariesAsync(new UserSummaryQuery(Offset: 100))),
            ("GET /summary?sort=lastCall: GetUserSummariesAsync (lastCall asc, 50, offset 900)", async () => await q.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.LastCall, SortOrder.Ascending, 50, 900))),
            ("GET /user/{id}: GetUserUsageAsync", async () => await q.GetUserUsageAsync(user, today)),
            ("GET /me, budget check: GetUserTotalsAsync (month to date)", async () => await q.GetUserTotalsAsync(user, month, today)),
            ("GET /endpoint: GetEndpointUsageAsync", async () => await q.GetEndpointUsageAsync()),
            ("GET /daily?days=90: GetDailyUsageAsync", async () => await q.GetDailyUsageAsync(today.AddDays(-89), today)),
            ("GET /daily?days=366: GetDailyUsageAsync", async () => await q.GetDailyUsageAsync(today.AddDays(-365), today)),
            ("GET /monthly?months=12: GetMonthlyUsageAsync", async () => await q.GetMonthlyUsageAsync(month.AddMonths(-11), month)),
            ("GET /forecast/users: GetUserDailyUsageAsync (all users, the forecasts' 50 days)", async () => await q.GetUserDailyUsageAsync(today.AddDays(-49), today)),
            ("GET /me daily: GetUserDailyUsageAsync (one user, 30 days)", async () => await q.GetUserDailyUsageAsync(today.AddDays(-29), today, user)),
            ("GET /statements?month: GetUserEndpointUsageAsync (all users, last full month)", async () => await q.GetUserEndpointUsageAsync(lastFullMonth, month.AddDays(-1))),
            ("GET /me byEndpoint: GetUserEndpointUsageAsync (one user, this month)", async () => await q.GetUserEndpointUsageAsync(month, today, user)),
            ("GET /export?userId (first 1,000 rows)", async () =>
            {
                var n = 0;
                await foreach (var _ in q.ExportAsync(new UsageExportQuery(UserId: user)))
                {
                    if (++n == 1000)
                    {
                        break;
                    }
                }
            }),
        ];

        return cases;
    }

    private static IEnumerable<DateOnly> Months(DateOnly from, DateOnly to)
    {
        for (var m = new DateOnly(from.Year, from.Month, 1); m <= to; m = m.AddMonths(1))
        {
            yield return m;
        }
    }

    private static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync();
    }

    private static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    private static void Print(string line) => Console.WriteLine(line);

    /// <summary>A clock stopped at one instant (the routes' "now": noon of the benchmark's fixed day).</summary>
    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
