-- TokenMeter 0011: a batch COPYed into user_api_usage is folded from its raw rows; it writes no pending sums.
--
-- Until 0010 each batch also COPYed its sums per user, day, endpoint and model into usage_pending, which the fold
-- deleted again: in a live mix that is nearly one pending row per record, written, indexed and deleted, a second
-- COPY's worth of work per batch. Now a batch writes one row into usage_batches (its id and the first and last
-- created_at of its records) and tags its raw rows with that id (batch_id); the fold deletes the batch rows and sums
-- the raw rows they name (a primary-key range scan over the batches' time span), in one transaction under the fold
-- lock, so a batch is folded exactly once: before the commit it is unfolded, after it folded, and a crash rolls the
-- fold back whole.
--
-- The pending sums stay for what is not a COPYed batch: the staging path (a batch holding replays) and re-pricing
-- differences. The table is renamed usage_pending_sums; usage_pending becomes a view of those sums plus the raw rows
-- of the unfolded batches at the same grain, so every reader of usage_pending (queries, the budget check, the
-- summary views) still adds exactly what the rollups do not hold yet. Rows pending at the upgrade stay in the
-- renamed table and are folded by the next fold. Every step here is a catalog change: no table is rewritten or
-- scanned (the new column has no default).
ALTER TABLE {schema}.user_api_usage ADD COLUMN batch_id bigint NULL;

CREATE TABLE {schema}.usage_batches (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL
);

ALTER TABLE {schema}.usage_pending RENAME TO usage_pending_sums;
ALTER INDEX {schema}.usage_pending_user_idx RENAME TO usage_pending_sums_user_idx;

-- The unfolded batches' raw rows at the pending grain: everyone's (p_users null, anonymous calls included) or those of
-- the users given (one user's share, or a shared-limit check's batch of users in one query; an empty array: none).
-- A function rather than a view branch: a query naming user_api_usage is planned over every partition of it (the time
-- bounds below are only known when it runs), milliseconds per reference on a table with a few dozen months, paid by
-- every read of usage_pending. Here the bounds are read first and the query is planned with them, over the partitions
-- they cover only. Each batch is read over its own time span (a batch of old records, a spool replayed after an outage,
-- beside the live ones would otherwise make every read cover all the time in between), through the primary key, or
-- through (user_id, created_at) for given users; OFFSET 0 keeps the per-batch read a nested loop. STABLE: it reads with
-- the snapshot of the statement that calls it, so a reader sees a batch either here or in the rollups, never both.
CREATE FUNCTION {schema}.tokenmeter_unfolded_of(p_users text[])
RETURNS TABLE (user_id text, day date, endpoint text, model text, calls bigint, input_tokens bigint, cached_input_tokens bigint,
               output_tokens bigint, reasoning_tokens bigint, total_tokens bigint, cost_usd numeric, cache_write_tokens bigint,
               first_at timestamptz, last_at timestamptz)
LANGUAGE plpgsql STABLE ROWS 100 AS $fn$
DECLARE
    v_from timestamptz;
    v_to   timestamptz;
BEGIN
    IF cardinality(p_users) = 0 THEN
        RETURN;
    END IF;
    SELECT min(b.first_at), max(b.last_at) INTO v_from, v_to FROM {schema}.usage_batches b;
    IF v_from IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT u.user_id, (u.created_at AT TIME ZONE ''UTC'')::date, u.endpoint COLLATE "C", u.model COLLATE "C", count(*)::bigint,
                sum(u.input_tokens)::bigint, sum(u.cached_input_tokens)::bigint, sum(u.output_tokens)::bigint, sum(u.reasoning_tokens)::bigint,
                sum(u.total_tokens)::bigint, coalesce(sum(u.cost_usd), 0), sum(u.cache_write_tokens)::bigint, min(u.created_at), max(u.created_at)
           FROM {schema}.usage_batches b
           CROSS JOIN LATERAL (
                SELECT * FROM {schema}.user_api_usage r
                 WHERE r.created_at >= $1 AND r.created_at <= $2 AND r.created_at >= b.first_at AND r.created_at <= b.last_at
                   AND r.batch_id = b.id' || CASE WHEN p_users IS NULL THEN '' ELSE ' AND r.user_id = ANY ($3)' END || '
                OFFSET 0) u
          GROUP BY 1, 2, 3, 4'
        USING v_from, v_to, p_users;
END
$fn$;

-- Everything the rollups do not hold yet: the pending sums and the unfolded batches.
CREATE VIEW {schema}.usage_pending AS
SELECT user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
       cost_usd, cache_write_tokens, first_at, last_at
FROM {schema}.usage_pending_sums
UNION ALL
SELECT * FROM {schema}.tokenmeter_unfolded_of(NULL);

-- The same for one user (the pending sums through their user index, the batches through the raw rows' user index).
CREATE FUNCTION {schema}.tokenmeter_pending_of(p_user text)
RETURNS SETOF {schema}.usage_pending
LANGUAGE sql STABLE AS $fn$
SELECT user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
       cost_usd, cache_write_tokens, first_at, last_at
FROM {schema}.usage_pending_sums WHERE user_id = p_user
UNION ALL
SELECT * FROM {schema}.tokenmeter_unfolded_of(ARRAY[p_user])
$fn$;

-- The summary views were bound to the table renamed above: point them at the view (their text is otherwise unchanged).
DO $do$
DECLARE
    v_view text;
BEGIN
    FOREACH v_view IN ARRAY ARRAY['user_usage_summary', 'endpoint_usage_summary', 'daily_usage_summary', 'monthly_usage_summary'] LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %I.%I AS %s', {schema_name}, v_view,
            replace(pg_get_viewdef(format('%I.%I', {schema_name}, v_view)::regclass), 'usage_pending_sums', 'usage_pending'));
    END LOOP;
END
$do$;
