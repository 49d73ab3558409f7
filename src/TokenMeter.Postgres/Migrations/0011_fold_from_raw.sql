-- TokenMeter 0011: a batch COPYed into user_api_usage is folded from its raw rows; it writes no pending sums.
--
-- Until 0010 each batch also COPYed its sums per user, day, endpoint and model into usage_pending, which the fold
-- deleted again: in a live mix that is nearly one pending row per record, written, indexed and deleted, a second
-- COPY's worth of work per batch. Now a batch writes one row into usage_batches (its id and the first and last
-- created_at of its records) and tags its raw rows with that id (batch_id); the fold deletes the batch rows and sums
-- the raw rows they name (a primary-key range scan over each batch's time span), in one transaction under the fold
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

-- The unfolded batches' raw rows, read through the primary key (created_at) between the earliest and latest of their
-- times, or through (user_id, created_at) when the reader names a user. Unpriced records count 0, as in the rollups.
-- "IN (...) IS TRUE" keeps the batch test a hashed subplan (one probe per row): as a plain IN the planner turns it into
-- a join, and its estimates for a table emptied by every fold made that a nested loop over every batch.
CREATE VIEW {schema}.usage_pending AS
SELECT user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
       cost_usd, cache_write_tokens, first_at, last_at
FROM {schema}.usage_pending_sums
UNION ALL
SELECT u.user_id, (u.created_at AT TIME ZONE 'UTC')::date, u.endpoint COLLATE "C", u.model COLLATE "C", 1::bigint, u.input_tokens,
       u.cached_input_tokens, u.output_tokens, u.reasoning_tokens, u.total_tokens, coalesce(u.cost_usd, 0), u.cache_write_tokens,
       u.created_at, u.created_at
FROM {schema}.user_api_usage u
WHERE u.created_at >= (SELECT min(b.first_at) FROM {schema}.usage_batches b)
  AND u.created_at <= (SELECT max(b.last_at) FROM {schema}.usage_batches b)
  AND (u.batch_id IN (SELECT b.id FROM {schema}.usage_batches b)) IS TRUE;

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
