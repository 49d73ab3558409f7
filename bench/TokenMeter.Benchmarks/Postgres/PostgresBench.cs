using System.Diagnostics;
using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using TokenMeter.Postgres;
using TokenMeter.Postgres.Querying;
using TokenMeter.Postgres.Schema;
using TokenMeter.Postgres.Storage;
using TokenMeter.Querying;
using TokenMeter.Testing.Postgres;

namespace TokenMeter.Benchmarks.Postgres;

/// <summary>
/// <c>dotnet run -c Release --project bench/TokenMeter.Benchmarks -- postgres [calls=5000000] [ingest=300000]</c>:
/// ingest records/s (row-by-row INSERT; raw binary COPY, the store's full path and its previous path at
/// 1,000, 5,000 and 10,000 records per batch), then (unless calls is 0) every
/// <see cref="IUsageQueries"/> query at the given number of calls beside a plain GROUP BY over the raw table.
/// </summary>
internal static class PostgresBench
{
    private const int Users = 1000;
    private static readonly string[] Endpoints = ["/api/analyze", "/api/verify", "/api/validate-image", "/api/hint", "/api/chat"];
    private static readonly string[] Models = ["gpt-4o", "gpt-4o-mini", "o4-mini"];
    private static readonly decimal[] InputPrice = [2.5m, 0.15m, 1.1m];
    private static readonly decimal[] OutputPrice = [10m, 0.6m, 4.4m];
    private static readonly DateTimeOffset Start = new(2025, 11, 25, 0, 0, 0, TimeSpan.Zero);

    public static async Task<int> RunAsync(string[] args)
    {
        var calls = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5_000_000;
        var ingestCount = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 300_000;
        Console.WriteLine($"PostgreSQL store benchmark: {Environment.ProcessorCount} cores, ingest {ingestCount:N0} records, load {calls:N0} calls");

        // A durable server (fsync and synchronous commit on), unlike the test fixture's defaults.
        await using var server = await PostgresServer.StartAsync(
            ["fsync=on", "synchronous_commit=on", "full_page_writes=on", "shared_buffers=1GB", "work_mem=64MB", "maintenance_work_mem=512MB", "max_wal_size=8GB", "checkpoint_timeout=30min"]);
        var connectionString = await server.CreateDatabaseAsync("bench");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        Console.WriteLine($"server: {await ScalarAsync<string>(dataSource, "SELECT version()")}");
        var backend = await ScalarAsync<int>(dataSource, "SELECT pg_backend_pid()");
        var backendStat = File.ReadAllText($"/proc/{backend}/stat");
        postmasterPid = int.Parse(backendStat[(backendStat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);

        // ---- Ingest ----
        // Same records, same batch sizes for every path; the paths alternate within each batch size.
        var rowByRow = await RowByRowAsync(dataSource, Math.Min(ingestCount / 10, 10_000));
        // A warm-up round first (JIT, connection pool, server caches), not reported.
        Console.WriteLine("warm-up:");
        await RawCopyAsync(dataSource, 20_000, 1000, "warm");
        await StoreIngestAsync(dataSource, 20_000, 1000, "warm");
        await StagingIngestAsync(dataSource, 20_000, 1000, "warm");
        var rows = new List<(string Path, int BatchSize, IngestResult Result, double Copy)>();
        foreach (var batchSize in (int[])[1000, 5000, 10_000])
        {
            var copy = await RawCopyAsync(dataSource, ingestCount, batchSize);
            var staging = await StagingIngestAsync(dataSource, ingestCount, batchSize);
            var store = await StoreIngestAsync(dataSource, ingestCount, batchSize);
            rows.Add(("raw binary COPY into user_api_usage, no rollups", batchSize, copy, copy.PerSecond));
            rows.Add(("store AppendAsync (the batch logged in usage_batches + COPY into user_api_usage tagged with its id, one transaction; every rollup folded from the raw rows in the background; last fold included)", batchSize, store, copy.PerSecond));
            rows.Add(("staging path (temp table created and dropped per batch, INSERT … ON CONFLICT; the replay path, pending left unfolded), for comparison", batchSize, staging, copy.PerSecond));
        }

        // Several app instances write at once: two writers, each its own connection and backend.
        {
            var copy = await RawCopyAsync(dataSource, ingestCount, 5000, writers: 2);
            var store = await StoreIngestAsync(dataSource, ingestCount, 5000, writers: 2);
            rows.Add(("raw binary COPY, 2 concurrent writers", 5000, copy, copy.PerSecond));
            rows.Add(("store AppendAsync, 2 concurrent writers", 5000, store, copy.PerSecond));
        }

        // Where the time goes: the same staging path with subsets of the rollups.
        var copies = 0;
        await IngestGrains.RunAsync(dataSource, ingestCount, 5000, async (ds, n, b) => (await RawCopyAsync(ds, n, b, "grains" + ++copies)).PerSecond);

        Console.WriteLine($"session staging tables alive after the runs (0 = the pool's connection reset dropped them): {await ScalarAsync<long>(dataSource, "SELECT count(*) FROM pg_class WHERE relname LIKE 'tokenmeter_staging_v%' AND relpersistence = 't'")}");
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| ingest path | records/batch | records | records/s | vs raw COPY, same batch size | server CPU µs/record | client CPU µs/record |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        Console.WriteLine($"| row-by-row INSERT (one statement and commit per record) | 1 | {rowByRow.Records:N0} | {rowByRow.PerSecond:N0} | {rowByRow.PerSecond / rows[0].Copy:P0} of 1,000/batch | {rowByRow.ServerMicroseconds:N1} | {rowByRow.ClientMicroseconds:N1} |");
        foreach (var (path, batchSize, result, copyPerSecond) in rows)
        {
            Console.WriteLine($"| {path} | {batchSize:N0} | {result.Records:N0} | {result.PerSecond:N0} | {result.PerSecond / copyPerSecond:P0} | {result.ServerMicroseconds:N1} | {result.ClientMicroseconds:N1} |");
        }

        // ---- Queries at scale ----
        if (calls == 0)
        {
            return 0;
        }

        var (context, load) = await LoadAsync(dataSource, calls);
        Console.WriteLine($"loaded {calls:N0} calls in {load.TotalSeconds:N0} s (one COPY to staging, then the ingest statement per month)");
        await ExecuteAsync(dataSource, $"VACUUM ANALYZE");
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        await QueriesAsync(context, calls);
        Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    /// <summary>
    /// <c>postgres-ingest [records=100000] [rounds=3] [batch sizes=5000,10000] [FoldEveryRecords values=default]</c>: only the
    /// ingest headline, raw binary COPY and the store's full path (every rollup folded, the last fold included; once per
    /// FoldEveryRecords value), side by side round after round; the ratio of each round is taken between adjacent runs, so a
    /// noisy box moves both.
    /// </summary>
    public static async Task<int> RunIngestAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
        var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        var batchSizes = args.Length > 2 ? args[2].Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray() : [5000, 10_000];
        int?[] foldEvery = args.Length > 3 ? [.. args[3].Split(',').Select(f => (int?)int.Parse(f, CultureInfo.InvariantCulture))] : [null];
        Console.WriteLine($"PostgreSQL ingest: {Environment.ProcessorCount} cores, {count:N0} records, {rounds} rounds, load average {File.ReadAllText("/proc/loadavg").Trim()}");
        await using var server = await PostgresServer.StartAsync(
            ["fsync=on", "synchronous_commit=on", "full_page_writes=on", "shared_buffers=1GB", "work_mem=64MB", "maintenance_work_mem=512MB", "max_wal_size=8GB", "checkpoint_timeout=30min"]);
        await using var dataSource = NpgsqlDataSource.Create(await server.CreateDatabaseAsync("bench"));
        SetPostmaster(await ScalarAsync<int>(dataSource, "SELECT pg_backend_pid()"));
        await RawCopyAsync(dataSource, 20_000, 1000, "warm");
        await StoreIngestAsync(dataSource, 20_000, 1000, "warm");
        var results = batchSizes.SelectMany(b => foldEvery.Select(f => (b, f))).ToDictionary(k => k, _ => new List<(IngestResult Copy, IngestResult Store, double CopyWal, double StoreWal)>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var batchSize in batchSizes)
            {
                foreach (var every in foldEvery)
                {
                    var wal = await WalBytesAsync(dataSource);
                    var copy = await RawCopyAsync(dataSource, count, batchSize, "r" + round);
                    var copyWal = await WalBytesAsync(dataSource);
                    var store = await StoreIngestAsync(dataSource, count, batchSize, "r" + round, foldEvery: every);
                    var storeWal = await WalBytesAsync(dataSource);
                    results[(batchSize, every)].Add((copy, store, (double)(copyWal - wal) / count, (double)(storeWal - copyWal) / count));
                }
            }

            Console.WriteLine($"load average after round {round}: {File.ReadAllText("/proc/loadavg").Trim()}");
        }

        Console.WriteLine();
        // CPU per record (server: the postmaster and all its processes; client: this process) moves less with the
        // other load on the box than wall time does, the best of the rounds less than their median, and the WAL
        // written per record (schema creation included) not at all.
        Console.WriteLine("| records/batch | FoldEveryRecords | raw COPY records/s (median) | store records/s (median) | store ÷ raw COPY per round | median ratio | best store ÷ best raw COPY | CPU µs/record raw COPY (server + client) | CPU µs/record store (server + client) | CPU ratio raw ÷ store | WAL bytes/record raw COPY, store |");
        Console.WriteLine("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var ((batchSize, every), list) in results)
        {
            var ratios = list.Select(r => r.Store.PerSecond / r.Copy.PerSecond).ToList();
            var (copyServer, copyClient) = (Median(list.Select(r => r.Copy.ServerMicroseconds).ToList()), Median(list.Select(r => r.Copy.ClientMicroseconds).ToList()));
            var (storeServer, storeClient) = (Median(list.Select(r => r.Store.ServerMicroseconds).ToList()), Median(list.Select(r => r.Store.ClientMicroseconds).ToList()));
            Console.WriteLine(
                $"| {batchSize:N0} | {every?.ToString("N0", CultureInfo.InvariantCulture) ?? "default"} | {Median(list.Select(r => r.Copy.PerSecond).ToList()):N0} | {Median(list.Select(r => r.Store.PerSecond).ToList()):N0} | " +
                $"{string.Join(" / ", ratios.Select(r => r.ToString("N2", CultureInfo.InvariantCulture)))} | {Median(ratios):N2} | {list.Max(r => r.Store.PerSecond) / list.Max(r => r.Copy.PerSecond):N2} | " +
                $"{copyServer + copyClient:N1} ({copyServer:N1} + {copyClient:N1}) | {storeServer + storeClient:N1} ({storeServer:N1} + {storeClient:N1}) | {(copyServer + copyClient) / (storeServer + storeClient):N2} | " +
                $"{Median(list.Select(r => r.CopyWal).ToList()):N0}, {Median(list.Select(r => r.StoreWal).ToList()):N0} |");
        }

        return 0;
    }

    private static Task<long> WalBytesAsync(NpgsqlDataSource dataSource) =>
        ScalarAsync<long>(dataSource, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint");

    private static async Task<IngestResult> RowByRowAsync(NpgsqlDataSource dataSource, int count)
    {
        var schema = await FreshSchemaAsync(dataSource, "rowbyrow");
        var records = Generate(count, Start.AddDays(400), TimeSpan.FromDays(1)).ToList();
        await using var context = NewContext(dataSource, schema);
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), default);
        var placeholders = string.Join(", ", Enumerable.Range(1, 26).Select(i => "$" + i));
        var cpu = CpuNow();
        var watch = Stopwatch.StartNew();
        foreach (var r in records)
        {
            await using var command = dataSource.CreateCommand($"INSERT INTO \"{schema}\".user_api_usage ({PostgresSql.Columns}) VALUES ({placeholders})");
            object?[] values =
            [
                r.Id, r.CreatedAt.UtcDateTime, r.UserId, r.Endpoint, r.Operation, r.RequestModel, r.Model, r.ServiceTier,
                r.InputTokens, r.CachedInputTokens, r.OutputTokens, r.ReasoningTokens, r.AudioInputTokens, r.AudioOutputTokens, r.TotalTokens,
                r.CostUsd, r.PriceId, r.DurationMs, "ok", r.HttpStatus, r.Streaming, r.SessionId, r.ProblemId, null,
                r.CacheWriteTokens, "reported",
            ];
            NpgsqlDbType[] types =
            [
                NpgsqlDbType.Uuid, NpgsqlDbType.TimestampTz, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text,
                NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint, NpgsqlDbType.Bigint,
                NpgsqlDbType.Numeric, NpgsqlDbType.Text, NpgsqlDbType.Double, NpgsqlDbType.Text, NpgsqlDbType.Integer, NpgsqlDbType.Boolean, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Jsonb,
                NpgsqlDbType.Bigint, NpgsqlDbType.Text,
            ];
            for (var i = 0; i < values.Length; i++)
            {
                command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = types[i], Value = values[i] ?? DBNull.Value });
            }

            await command.ExecuteNonQueryAsync();
        }

        return Report("row-by-row INSERT", count, watch.Elapsed, cpu);
    }

    private static async Task<IngestResult> RawCopyAsync(NpgsqlDataSource dataSource, int count, int batchSize, string run = "", int writers = 1)
    {
        var schema = await FreshSchemaAsync(dataSource, "rawcopy" + batchSize + run + (writers > 1 ? "w" + writers : ""));
        var records = Generate(count, Start.AddDays(400), TimeSpan.FromDays(5)).ToList();
        await using var context = NewContext(dataSource, schema);
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), default);
        var cpu = CpuNow();
        var watch = Stopwatch.StartNew();
        await ForEachBatchAsync(records, batchSize, writers, async batch =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var writer = await connection.BeginBinaryImportAsync($"COPY \"{schema}\".user_api_usage ({PostgresSql.Columns}) FROM STDIN (FORMAT BINARY)");
            foreach (var r in batch)
            {
                await PostgresUsageStore.WriteRowAsync(writer, r, default);
            }

            await writer.CompleteAsync();
            return batch.Length;
        });

        return Report($"raw binary COPY ({batchSize}/batch, {writers} writer(s))", count, watch.Elapsed, cpu);
    }

    private static async Task<IngestResult> StoreIngestAsync(NpgsqlDataSource dataSource, int count, int batchSize, string run = "", int writers = 1, int? foldEvery = null)
    {
        var schema = await FreshSchemaAsync(dataSource, "store" + batchSize + run + (writers > 1 ? "w" + writers : "") + (foldEvery is null ? "" : "f" + foldEvery));
        var records = Generate(count, Start.AddDays(400), TimeSpan.FromDays(5)).ToList();
        await using var context = NewContext(dataSource, schema, foldEvery);
        context.MarkReady();
        var store = new PostgresUsageStore(context);
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), default);
        var cpu = CpuNow();
        var watch = Stopwatch.StartNew();
        var stored = await ForEachBatchAsync(records, batchSize, writers, async batch => await store.AppendAsync(batch));
        if (stored != count)
        {
            throw new InvalidOperationException($"stored {stored} of {count}");
        }

        // The writers are done; every rollup is maintained once the pending sums
        // are folded (background folds ran every FoldEveryRecords records meanwhile): the time of the
        // last fold counts.
        var written = watch.Elapsed;
        await context.Fold.WhenIdleAsync();
        var folded = await context.Fold.FoldAsync();
        Console.WriteLine($"  writers done in {written.TotalSeconds:N2} s ({count / written.TotalSeconds:N0} records/s), then the last fold ({folded:N0} pending rows) in {(watch.Elapsed - written).TotalSeconds:N2} s");
        return Report($"store AppendAsync ({batchSize}/batch, {writers} writer(s)), folded", count, watch.Elapsed, cpu);
    }

    /// <summary>Runs the batches on <paramref name="writers"/> concurrent writers (writer i takes batches i, i + writers, ...), like several app instances.</summary>
    private static async Task<int> ForEachBatchAsync(List<UsageRecord> records, int batchSize, int writers, Func<UsageRecord[], Task<int>> write)
    {
        var batches = records.Chunk(batchSize).ToArray();
        var counts = await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var stored = 0;
            for (var i = w; i < batches.Length; i += writers)
            {
                stored += await write(batches[i]);
            }

            return stored;
        })));
        return counts.Sum();
    }

    /// <summary>The previous ingest path, kept here for an interleaved comparison: per batch, a temporary staging table, binary COPY into it, the ingest statement over it, commit.</summary>
    private static async Task<IngestResult> StagingIngestAsync(NpgsqlDataSource dataSource, int count, int batchSize, string run = "")
    {
        var schema = await FreshSchemaAsync(dataSource, "staging" + batchSize + run);
        var records = Generate(count, Start.AddDays(400), TimeSpan.FromDays(5)).ToList();
        await using var context = NewContext(dataSource, schema);
        await context.EnsurePartitionsAsync(records.Select(r => PostgresStoreContext.MonthOf(r.CreatedAt)), default);
        var ingest = PostgresSql.IngestFrom(context.Quoted, "pg_temp.tokenmeter_staging");
        var cpu = CpuNow();
        var watch = Stopwatch.StartNew();
        var stored = 0;
        stored += await IngestThroughStagingAsync(dataSource, records, batchSize, $"CREATE TEMP TABLE tokenmeter_staging (LIKE {context.Quoted}.user_api_usage) ON COMMIT DROP", "pg_temp.tokenmeter_staging", ingest);

        if (stored != count)
        {
            throw new InvalidOperationException($"stored {stored} of {count}");
        }

        return Report($"previous path, temp staging ({batchSize}/batch)", count, watch.Elapsed, cpu);
    }

    /// <summary>
    /// Loads the calls set-wise: one binary COPY into an unlogged staging table, then, month by month,
    /// the store's staging-path statement (insert, pending append) over that month's rows, and a fold.
    /// </summary>
    private static async Task<(PostgresStoreContext Context, TimeSpan Elapsed)> LoadAsync(NpgsqlDataSource dataSource, int calls)
    {
        var schema = await FreshSchemaAsync(dataSource, "load");
        var context = NewContext(dataSource, schema);
        context.MarkReady();
        var watch = Stopwatch.StartNew();
        await ExecuteAsync(dataSource, $"CREATE UNLOGGED TABLE \"{schema}\".load_staging (LIKE \"{schema}\".user_api_usage)");
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            await using var writer = await connection.BeginBinaryImportAsync($"COPY \"{schema}\".load_staging ({PostgresSql.Columns}) FROM STDIN (FORMAT BINARY)");
            foreach (var r in Generate(calls, Start, TimeSpan.FromDays(365)))
            {
                await PostgresUsageStore.WriteRowAsync(writer, r, default);
            }

            await writer.CompleteAsync();
        }

        Console.WriteLine($"  copied {calls:N0} rows to staging in {watch.Elapsed.TotalSeconds:N0} s");
        for (var month = PostgresStoreContext.MonthOf(Start); month <= PostgresStoreContext.MonthOf(Start.AddDays(365)); month = month.AddMonths(1))
        {
            await context.EnsurePartitionsAsync([month], default);
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await using (var stage = new NpgsqlCommand($"CREATE TEMP TABLE tokenmeter_staging ON COMMIT DROP AS SELECT * FROM \"{schema}\".load_staging WHERE created_at >= $1 AND created_at < $2", connection, transaction))
            {
                stage.Parameters.AddWithValue(month.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
                stage.Parameters.AddWithValue(month.AddMonths(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
                await stage.ExecuteNonQueryAsync();
            }

            await using (var ingest = new NpgsqlCommand(PostgresSql.IngestFrom(context.Quoted, "pg_temp.tokenmeter_staging"), connection, transaction) { CommandTimeout = 0 })
            {
                var inserted = (int)(await ingest.ExecuteScalarAsync())!;
                Console.WriteLine($"  {month:yyyy-MM}: {inserted:N0} calls ({watch.Elapsed.TotalSeconds:N0} s)");
            }

            await transaction.CommitAsync();

            // The month's user×endpoint×model sums, folded month by month (one fold of the whole year would be one huge transaction).
            await context.Fold.FoldAsync();
        }

        await ExecuteAsync(dataSource, $"DROP TABLE \"{schema}\".load_staging");
        return (context, watch.Elapsed);
    }

    private static async Task QueriesAsync(PostgresStoreContext context, int calls)
    {
        var q = new PostgresUsageQueries(context);
        var ds = context.DataSource;
        var s = context.Quoted;
        var today = DateOnly.FromDateTime(Start.AddDays(364).UtcDateTime);
        var month = new DateOnly(today.Year, today.Month, 1);
        var lastFullMonth = month.AddMonths(-1);
        var user = "user-0042";
        string Ts(DateOnly d) => $"'{d:yyyy-MM-dd} 00:00:00+00'";

        (string Name, Func<Task> Store, string Raw)[] cases =
        [
            ("GetStatsAsync (ever, today, this month)", async () => await q.GetStatsAsync(today),
                $"SELECT count(*), sum(total_tokens), sum(cost_usd), count(DISTINCT user_id), count(*) FILTER (WHERE created_at >= {Ts(today)}), count(DISTINCT user_id) FILTER (WHERE created_at >= {Ts(today)}), count(*) FILTER (WHERE created_at >= {Ts(month)}), count(DISTINCT user_id) FILTER (WHERE created_at >= {Ts(month)}) FROM {s}.user_api_usage"),
            ("GetUserSummariesAsync (cost desc, 50, offset 100)", async () => await q.GetUserSummariesAsync(new UserSummaryQuery(Offset: 100)),
                $"SELECT user_id, count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd), max(created_at) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY 6 DESC, user_id LIMIT 50 OFFSET 100"),
            ("GetUserSummariesAsync (lastCall asc, 50, offset 900)", async () => await q.GetUserSummariesAsync(new UserSummaryQuery(UserSummarySort.LastCall, SortOrder.Ascending, 50, 900)),
                $"SELECT user_id, count(*), sum(total_tokens), sum(cost_usd), max(created_at) FROM {s}.user_api_usage WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY 5, user_id LIMIT 50 OFFSET 900"),
            ("GetUserUsageAsync (one user: totals, month, by endpoint, 30 days)", async () => await q.GetUserUsageAsync(user, today),
                $"SELECT endpoint, model, count(*), sum(total_tokens), sum(cost_usd), max(created_at), count(*) FILTER (WHERE created_at >= {Ts(month)}) FROM {s}.user_api_usage WHERE user_id = '{user}' GROUP BY 1, 2"),
            ("GetUserTotalsAsync (one user, month to date)", async () => await q.GetUserTotalsAsync(user, month, today),
                $"SELECT count(*), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage WHERE user_id = '{user}' AND created_at >= {Ts(month)} AND created_at < {Ts(today.AddDays(1))}"),
            ("GetEndpointUsageAsync (all time)", async () => await q.GetEndpointUsageAsync(),
                $"SELECT endpoint, model, count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage GROUP BY 1, 2 ORDER BY 7 DESC"),
            ("GetUserEndpointUsageAsync (all users, last full month: statements)", async () => await q.GetUserEndpointUsageAsync(lastFullMonth, month.AddDays(-1)),
                $"SELECT user_id, endpoint, model, count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage WHERE user_id IS NOT NULL AND created_at >= {Ts(lastFullMonth)} AND created_at < {Ts(month)} GROUP BY 1, 2, 3 ORDER BY 1, 9 DESC"),
            ("GetUserEndpointUsageAsync (all users, 45 days across 3 months)", async () => await q.GetUserEndpointUsageAsync(lastFullMonth.AddDays(-7), month.AddDays(6)),
                $"SELECT user_id, endpoint, model, count(*), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage WHERE user_id IS NOT NULL AND created_at >= {Ts(lastFullMonth.AddDays(-7))} AND created_at < {Ts(month.AddDays(7))} GROUP BY 1, 2, 3 ORDER BY 1, 6 DESC"),
            ("GetDailyUsageAsync (90 days)", async () => await q.GetDailyUsageAsync(today.AddDays(-89), today),
                $"SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd), count(DISTINCT user_id) FROM {s}.user_api_usage WHERE created_at >= {Ts(today.AddDays(-89))} GROUP BY 1 ORDER BY 1 DESC"),
            ("GetDailyUsageAsync (366 days)", async () => await q.GetDailyUsageAsync(today.AddDays(-365), today),
                $"SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), sum(total_tokens), sum(cost_usd), count(DISTINCT user_id) FROM {s}.user_api_usage GROUP BY 1 ORDER BY 1 DESC"),
            ("GetMonthlyUsageAsync (12 months)", async () => await q.GetMonthlyUsageAsync(month.AddMonths(-11), month),
                $"SELECT date_trunc('month', created_at AT TIME ZONE 'UTC'), count(*), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd), count(DISTINCT user_id) FROM {s}.user_api_usage GROUP BY 1 ORDER BY 1 DESC"),
            ("GetUserDailyUsageAsync (all users, month to date: forecasts)", async () => await q.GetUserDailyUsageAsync(month, today),
                $"SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, count(*), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage WHERE user_id IS NOT NULL AND created_at >= {Ts(month)} GROUP BY 1, 2 ORDER BY 1, 2"),
            ("GetUserDailyUsageAsync (one user, 90 days)", async () => await q.GetUserDailyUsageAsync(today.AddDays(-89), today, user),
                $"SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), sum(total_tokens), sum(cost_usd) FROM {s}.user_api_usage WHERE user_id = '{user}' AND created_at >= {Ts(today.AddDays(-89))} GROUP BY 1 ORDER BY 1"),
        ];

        Console.WriteLine();
        Console.WriteLine($"| query at {calls:N0} calls | store p50 (ms) | store max (ms) | raw GROUP BY p50 (ms) |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, store, raw) in cases)
        {
            var storeTimes = await TimeAsync(store, warmups: 2, runs: 15);
            var rawTimes = await TimeAsync(() => ExecuteAsync(ds, raw), warmups: 1, runs: 3);
            Console.WriteLine($"| {name} | {Median(storeTimes):N1} | {storeTimes.Max():N1} | {Median(rawTimes):N0} |");
        }

        // Export streams raw rows: rows/s for one user's year and for everyone's last month.
        foreach (var (name, query) in new[] { ("ExportAsync (one user, all time)", new UsageExportQuery(UserId: user)), ("ExportAsync (everyone, last full month)", new UsageExportQuery(lastFullMonth, month.AddDays(-1))) })
        {
            var watch = Stopwatch.StartNew();
            var rows = 0;
            await foreach (var _ in q.ExportAsync(query))
            {
                rows++;
            }

            Console.WriteLine($"| {name}: {rows:N0} rows | {watch.Elapsed.TotalMilliseconds:N0} total | {rows / watch.Elapsed.TotalSeconds:N0} rows/s | |");
        }
    }

    private static async Task<List<double>> TimeAsync(Func<Task> action, int warmups, int runs)
    {
        for (var i = 0; i < warmups; i++)
        {
            await action();
        }

        var times = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            var watch = Stopwatch.StartNew();
            await action();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        return times;
    }

    internal static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Time-ordered calls (as a writer sees them) spread evenly over <paramref name="span"/>.</summary>
    internal static IEnumerable<UsageRecord> Generate(int count, DateTimeOffset from, TimeSpan span)
    {
        var random = new Random(20261125);
        var step = span.Ticks / count;
        for (var i = 0; i < count; i++)
        {
            var at = from.AddTicks(step * i);
            at = at.AddTicks(-(at.Ticks % 10)); // PostgreSQL keeps microseconds
            var m = random.Next(Models.Length);
            var input = random.Next(50, 4000);
            var output = random.Next(20, 1500);
            var cached = random.Next(4) == 0 ? input / 2 : 0;
            yield return new UsageRecord
            {
                Id = Guid.CreateVersion7(at),
                CreatedAt = at,
                UserId = random.Next(20) == 0 ? null : "user-" + random.Next(Users).ToString("D4", CultureInfo.InvariantCulture),
                Endpoint = Endpoints[random.Next(Endpoints.Length)],
                Operation = UsageOperation.Chat,
                RequestModel = Models[m],
                Model = Models[m],
                InputTokens = input,
                CachedInputTokens = cached,
                OutputTokens = output,
                TotalTokens = input + output,
                CostUsd = ((input - cached) * InputPrice[m] + cached * InputPrice[m] / 2 + output * OutputPrice[m]) / 1_000_000m,
                PriceId = Models[m] + "/standard",
                DurationMs = random.Next(200, 9000),
                Status = UsageStatus.Ok,
                HttpStatus = 200,
                SessionId = "s" + random.Next(100_000).ToString(CultureInfo.InvariantCulture),
            };
        }
    }

    private static PostgresStoreContext NewContext(NpgsqlDataSource dataSource, string schema, int? foldEvery = null)
    {
        var options = new PostgresStoreOptions { Schema = schema, CommandTimeoutSeconds = 600 };
        if (foldEvery is int every)
        {
            options.FoldEveryRecords = every;
        }

        return new(dataSource, ownsDataSource: false, options, TimeProvider.System);
    }

    internal static async Task<string> FreshSchemaAsync(NpgsqlDataSource dataSource, string name)
    {
        await PostgresMigrator.MigrateAsync(dataSource, name);
        return name;
    }

    private static IngestResult Report(string name, int count, TimeSpan elapsed, (double Server, double Client) cpuBefore)
    {
        var cpu = CpuNow();
        var result = new IngestResult(count, count / elapsed.TotalSeconds, (cpu.Server - cpuBefore.Server) * 1e6 / count, (cpu.Client - cpuBefore.Client) * 1e6 / count);
        Console.WriteLine($"{name}: {count:N0} records in {elapsed.TotalSeconds:N2} s = {result.PerSecond:N0} records/s; CPU per record: server {result.ServerMicroseconds:N1} µs, client {result.ClientMicroseconds:N1} µs");
        return result;
    }

    private readonly record struct IngestResult(int Records, double PerSecond, double ServerMicroseconds, double ClientMicroseconds);

    private static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 0;
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
        }
    }

    internal static async Task<T> ScalarAsync<T>(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static int postmasterPid;

    /// <summary>Finds the postmaster from one of its backends, for the server CPU figures.</summary>
    internal static void SetPostmaster(int backend)
    {
        var backendStat = File.ReadAllText($"/proc/{backend}/stat");
        postmasterPid = int.Parse(backendStat[(backendStat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
    }

    /// <summary>CPU seconds used so far by the PostgreSQL server (postmaster, its live children, and its reaped children) and by this process.</summary>
    private static (double Server, double Client) CpuNow()
    {
        static long[] Stat(int pid)
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            // fields[0] is field 3 (state): ppid = [1], utime = [11], stime = [12], cutime = [13], cstime = [14]
            return [long.Parse(fields[1], CultureInfo.InvariantCulture), long.Parse(fields[11], CultureInfo.InvariantCulture), long.Parse(fields[12], CultureInfo.InvariantCulture), long.Parse(fields[13], CultureInfo.InvariantCulture), long.Parse(fields[14], CultureInfo.InvariantCulture)];
        }

        long ticks = 0;
        var main = Stat(postmasterPid);
        ticks += main[1] + main[2] + main[3] + main[4];
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && pid != postmasterPid)
            {
                try
                {
                    var child = Stat(pid);
                    if (child[0] == postmasterPid)
                    {
                        ticks += child[1] + child[2];
                    }
                }
                catch (IOException)
                {
                }
            }
        }

        using var self = Process.GetCurrentProcess();
        return (ticks / 100.0, self.TotalProcessorTime.TotalSeconds);
    }

    /// <summary>Writes the records batch by batch: a temp staging table, a binary COPY into it, then the ingest statement; returns the rows stored.</summary>
    internal static async Task<int> IngestThroughStagingAsync(NpgsqlDataSource dataSource, IEnumerable<UsageRecord> records, int batchSize, string createStaging, string staging, string ingest)
    {
        var stored = 0;
        foreach (var batch in records.Chunk(batchSize))
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await using (var create = new NpgsqlCommand(createStaging, connection, transaction))
            {
                await create.ExecuteNonQueryAsync();
            }

            await using (var writer = await connection.BeginBinaryImportAsync($"COPY {staging} ({PostgresSql.Columns}) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var r in batch)
                {
                    await PostgresUsageStore.WriteRowAsync(writer, r, default);
                }

                await writer.CompleteAsync();
            }

            await using (var command = new NpgsqlCommand(ingest, connection, transaction))
            {
                stored += (int)(await command.ExecuteScalarAsync())!;
            }

            await transaction.CommitAsync();
        }

        return stored;
    }
}
