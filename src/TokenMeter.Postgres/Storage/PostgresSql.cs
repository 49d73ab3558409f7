namespace TokenMeter.Postgres.Storage;

/// <summary>The store's SQL for one schema, rendered once.</summary>
internal sealed class PostgresSql
{
    /// <summary>The columns of <c>user_api_usage</c> in COPY order.</summary>
    public const string Columns =
        "id, created_at, user_id, endpoint, operation, request_model, model, service_tier, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, audio_input_tokens, audio_output_tokens, total_tokens, cost_usd, price_id, duration_ms, status, http_status, streaming, session_id, problem_id, metadata, cache_write_tokens, cost_source";

    private const string Sums = "calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens";
    private const string AddSums =
        "calls = t.calls + excluded.calls, input_tokens = t.input_tokens + excluded.input_tokens, cached_input_tokens = t.cached_input_tokens + excluded.cached_input_tokens, output_tokens = t.output_tokens + excluded.output_tokens, reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens, total_tokens = t.total_tokens + excluded.total_tokens, cost_usd = t.cost_usd + excluded.cost_usd, cache_write_tokens = t.cache_write_tokens + excluded.cache_write_tokens";

    /// <summary>The columns of <c>usage_pending_sums</c> (and of the <c>usage_pending</c> view).</summary>
    public const string PendingColumns = $"user_id, day, endpoint, model, {Sums}, first_at, last_at";

    public PostgresSql(string quoted)
    {
        // The staging table lives as long as the session: created once per physical connection
        // (IF NOT EXISTS), emptied by every commit. Creating and dropping it per batch churned the
        // system catalogs. Its name carries the schema version, so a session that outlives an
        // upgrade never copies into a stale shape.
        var version = Schema.PostgresMigration.Latest;
        var staging = $"tokenmeter_staging_v{version}";
        CreateStaging = $"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {quoted}.user_api_usage) ON COMMIT DELETE ROWS";
        CopyStaging = $"COPY pg_temp.{staging} ({Columns}) FROM STDIN (FORMAT BINARY)";
        CopyRaw = $"COPY {quoted}.user_api_usage ({Columns}, batch_id) FROM STDIN (FORMAT BINARY)";
        OpenBatch = $"INSERT INTO {quoted}.usage_batches (first_at, last_at) VALUES ($1, $2) RETURNING id";

        // A batch holding replays: through the staging table, inserting only the rows not yet stored.
        Ingest = IngestFrom(quoted, $"pg_temp.{staging}");

        // A batch's records of calls decided from budget slices, in the batch's transaction: minus their cost added to
        // their slices' landed rows (one per slice, a hold with the slice's user, month and lease; written only by the
        // writer of the instance holding the slice, so no lock is waited on). $9: only the records not stored yet (a
        // replay, run before it inserts them; the usual COPY stores every record of its batch or fails whole).
        LandSliceRecords = $"""
            INSERT INTO {quoted}.tokenmeter_budget_holds AS h (id, user_id, month, cost_usd, tokens, expires_at)
            SELECT x.id, min(x.u), min(x.month), -sum(x.cost), -sum(x.tokens)::bigint, min(x.exp)
              FROM unnest($1::uuid[], $2::text[], $3::date[], $4::numeric[], $5::bigint[], $6::timestamptz[], $7::uuid[], $8::timestamptz[])
                   AS x(id, u, month, cost, tokens, exp, rid, rat)
             WHERE NOT $9 OR NOT EXISTS (SELECT 1 FROM {quoted}.user_api_usage r WHERE r.created_at = x.rat AND r.id = x.rid)
             GROUP BY x.id
            ON CONFLICT (id) DO UPDATE SET cost_usd = h.cost_usd + excluded.cost_usd, tokens = h.tokens + excluded.tokens
            """;

        // Every rollup from the unfolded batches' raw rows and the pending sums, both deleted in the same statement (one
        // snapshot: what is deleted is what is summed). The raw rows are read through the primary key between the earliest and
        // latest time of the batches (a batch of old records widens that to everything stored since; reading batch by batch
        // instead, as readers do, took twice the server CPU per record here: a sort-based aggregate over a loop). One
        // hash aggregate with three grouping sets sums every record once into the three finest grains (user×endpoint×model
        // by month, user by day, endpoint×model by day); the coarser ones are summed from those few rows (user by month,
        // then all-time, from the user-days; endpoint×model by month and all-time from their days). Before, the records were first
        // grouped by user, day, endpoint and model (about one group per record in a live mix) and each grain was summed
        // again from those groups. The token sums are tokenmeter_sum (migration 0012: a bigint running sum; sum(bigint)
        // keeps a numeric accumulator per group and column). GROUPING() tells the sets apart (a null user or endpoint is
        // a value in a set that groups it). The fold is the only writer of the rollups (one fold at a time, under its
        // advisory lock), so the upserts need no particular order. A re-pricing's pending rows carry no call times (null
        // first_at/last_at): a user's total row exists by then, and least/greatest with ±infinity keep its times (NOT NULL
        // is checked before the conflict). Months are cut from the UTC timestamp or the date as a timestamp without time
        // zone, so the session's time zone plays no part. A user's line of a month names the transaction that last wrote it
        // (written_by, migration 0015: the default on insert, set here on update), so readers re-read only the lines changed.
        // The all-time endpoint×model rows (usage_endpoint_total, migration 0016) are added here too; the fold's lock marks its
        // transaction (tokenmeter.folds_endpoint_total), so the trigger that carries every other write of the months to them
        // leaves these to the fold: run this statement only after PostgresPendingFold.LockAsync.
        var sum = $"{quoted}.tokenmeter_sum";
        var sumOfSums =
            $"{sum}(calls) AS calls, {sum}(input_tokens) AS input_tokens, {sum}(cached_input_tokens) AS cached_input_tokens, {sum}(output_tokens) AS output_tokens, {sum}(reasoning_tokens) AS reasoning_tokens, {sum}(total_tokens) AS total_tokens, sum(cost_usd) AS cost_usd, {sum}(cache_write_tokens) AS cache_write_tokens";
        Fold = $"""
            WITH batches AS (
                DELETE FROM {quoted}.usage_batches RETURNING id, first_at, last_at
            ),
            sums AS (
                DELETE FROM {quoted}.usage_pending_sums RETURNING {PendingColumns}
            ),
            unfolded AS (
                SELECT user_id, (created_at AT TIME ZONE 'UTC')::date AS day, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month,
                       endpoint COLLATE "C" AS endpoint, model COLLATE "C" AS model, 1::bigint AS calls, input_tokens, cached_input_tokens, output_tokens,
                       reasoning_tokens, total_tokens, coalesce(cost_usd, 0) AS cost_usd, cache_write_tokens, created_at AS first_at, created_at AS last_at
                FROM {quoted}.user_api_usage
                WHERE created_at >= (SELECT min(first_at) FROM batches) AND created_at <= (SELECT max(last_at) FROM batches)
                  AND batch_id IN (SELECT id FROM batches)
                UNION ALL
                SELECT user_id, day, date_trunc('month', day::timestamp)::date, endpoint, model, {Sums}, first_at, last_at FROM sums
            ),
            -- grain 8: user×endpoint×model by month (day not grouped); 7: user by day; 4: endpoint×model by day.
            g AS MATERIALIZED (
                SELECT GROUPING(day, month, endpoint, model) AS grain, user_id, day, month, endpoint, model, {sumOfSums},
                       min(first_at) AS first_at, max(last_at) AS last_at, count(*) AS folded
                FROM unfolded
                GROUP BY GROUPING SETS ((user_id, month, endpoint, model), (user_id, day), (day, endpoint, model))
            ),
            uem AS (
                INSERT INTO {quoted}.usage_user_endpoint_month AS t (user_id, month, endpoint, model, {Sums})
                SELECT user_id, month, endpoint, model, {Sums} FROM g WHERE grain = 8 AND user_id IS NOT NULL
                ON CONFLICT (user_id, month, endpoint, model) DO UPDATE SET {AddSums}, written_by = pg_current_xact_id()
            ),
            ud AS (
                INSERT INTO {quoted}.usage_user_day AS t (user_id, day, {Sums})
                SELECT user_id, day, {Sums} FROM g WHERE grain = 7 AND user_id IS NOT NULL
                ON CONFLICT (user_id, day) DO UPDATE SET {AddSums}
                RETURNING t.day, (t.xmax = 0) AS inserted
            ),
            um_g AS (
                SELECT user_id, date_trunc('month', day::timestamp)::date AS month, {sumOfSums}, min(first_at) AS first_at, max(last_at) AS last_at
                FROM g WHERE grain = 7 AND user_id IS NOT NULL GROUP BY 1, 2
            ),
            um AS (
                INSERT INTO {quoted}.usage_user_month AS t (user_id, month, {Sums})
                SELECT user_id, month, {Sums} FROM um_g
                ON CONFLICT (user_id, month) DO UPDATE SET {AddSums}
                RETURNING t.month, (t.xmax = 0) AS inserted
            ),
            ut AS (
                INSERT INTO {quoted}.usage_user_total AS t (user_id, {Sums}, first_call_at, last_call_at)
                SELECT user_id, {sumOfSums}, coalesce(min(first_at), 'infinity'), coalesce(max(last_at), '-infinity') FROM um_g GROUP BY 1
                ON CONFLICT (user_id) DO UPDATE SET {AddSums},
                    first_call_at = least(t.first_call_at, excluded.first_call_at), last_call_at = greatest(t.last_call_at, excluded.last_call_at)
            ),
            ed AS (
                INSERT INTO {quoted}.usage_endpoint_day AS t (day, endpoint, model, {Sums})
                SELECT day, endpoint, model, {Sums} FROM g WHERE grain = 4
                ON CONFLICT (day, endpoint, model) DO UPDATE SET {AddSums}
            ),
            em AS (
                INSERT INTO {quoted}.usage_endpoint_month AS t (month, endpoint, model, {Sums})
                SELECT date_trunc('month', day::timestamp)::date AS month, endpoint, model, {sumOfSums} FROM g WHERE grain = 4 GROUP BY 1, 2, 3
                ON CONFLICT (month, endpoint, model) DO UPDATE SET {AddSums}
            ),
            et AS (
                INSERT INTO {quoted}.usage_endpoint_total AS t (endpoint, model, {Sums})
                SELECT endpoint, model, {sumOfSums} FROM g WHERE grain = 4 GROUP BY 1, 2
                ON CONFLICT (endpoint, model) DO UPDATE SET {AddSums}
            ),
            ad AS (
                INSERT INTO {quoted}.usage_active_day AS t (day, active_users)
                SELECT day, count(*) FROM ud WHERE inserted GROUP BY 1
                ON CONFLICT (day) DO UPDATE SET active_users = t.active_users + excluded.active_users
            ),
            am AS (
                INSERT INTO {quoted}.usage_active_month AS t (month, active_users)
                SELECT month, count(*) FROM um WHERE inserted GROUP BY 1
                ON CONFLICT (month) DO UPDATE SET active_users = t.active_users + excluded.active_users
            )
            SELECT coalesce(sum(folded), 0)::bigint FROM g WHERE grain = 4
            """;
    }

    /// <summary>Creates the session's staging table unless it exists.</summary>
    public string CreateStaging { get; }

    /// <summary>Binary COPY into the staging table, <see cref="Columns"/> in order.</summary>
    public string CopyStaging { get; }

    /// <summary>Logs a batch ($1, $2: the first and last created_at of its records); it returns the batch id its raw rows carry.</summary>
    public string OpenBatch { get; }

    /// <summary>Binary COPY straight into <c>user_api_usage</c>, <see cref="Columns"/> in order, then <c>batch_id</c>.</summary>
    public string CopyRaw { get; }

    /// <summary>The ingest statement over the staging table; it returns the number of rows inserted.</summary>
    public string Ingest { get; }

    /// <summary>Takes a batch's records of slice-decided calls off their slices' holds (see <see cref="SliceLandings"/>).</summary>
    public string LandSliceRecords { get; }

    /// <summary>Moves every unfolded batch and every pending sum into every rollup; it returns the number of rows folded (raw records and pending sums).</summary>
    public string Fold { get; }

    /// <summary>The ingest statement reading its rows from <paramref name="source"/> (a relation with <see cref="Columns"/>, in that order).</summary>
    /// <param name="quoted">The quoted schema.</param>
    /// <param name="source">A set-returning expression or a relation.</param>
    /// <returns>The statement; it returns the number of rows inserted.</returns>
    /// <remarks>
    /// Insert the new rows in primary-key order (created_at, id) (replays skipped by the key), then
    /// append what was actually inserted, grouped by user, day, endpoint and model, to the pending sums (the rows carry
    /// no batch id: the fold takes them from the sums).
    /// </remarks>
    public static string IngestFrom(string quoted, string source) => $"""
            WITH ins AS (
                INSERT INTO {quoted}.user_api_usage ({Columns})
                SELECT {Columns} FROM {source} AS s ({Columns})
                ORDER BY created_at, id
                ON CONFLICT DO NOTHING
                RETURNING created_at, user_id, endpoint, model, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, coalesce(cost_usd, 0) AS cost_usd, cache_write_tokens
            ),
            pend AS (
                INSERT INTO {quoted}.usage_pending_sums ({PendingColumns})
                SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, endpoint, model,
                       count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(total_tokens),
                       sum(cost_usd), sum(cache_write_tokens), min(created_at), max(created_at)
                FROM ins
                GROUP BY 1, 2, 3, 4
                RETURNING calls
            )
            SELECT coalesce(sum(calls), 0)::integer FROM pend
            """;
}
