-- TokenMeter 0012: the unfolded rows are read batch by batch, each through its own time span.
--
-- 0011 read every raw row between the earliest and the latest time of all unfolded batches and kept those of an
-- unfolded batch. A batch of old records (a spool replayed after an outage) next to the live ones widened that span
-- to the whole time in between, and every read of usage_pending, until the next fold, read all of it. Now each batch
-- reads its own span (the batch id test then keeps its rows among those of batches written at the same time); the
-- query is still planned with the overall span, over the partitions it covers only (see 0011); OFFSET 0 keeps the
-- per-batch read a nested loop (a join could scan the whole span once again). Same results.
CREATE OR REPLACE FUNCTION {schema}.tokenmeter_unfolded(p_user text)
RETURNS TABLE (user_id text, day date, endpoint text, model text, calls bigint, input_tokens bigint, cached_input_tokens bigint,
               output_tokens bigint, reasoning_tokens bigint, total_tokens bigint, cost_usd numeric, cache_write_tokens bigint,
               first_at timestamptz, last_at timestamptz)
LANGUAGE plpgsql STABLE ROWS 100 AS $fn$
DECLARE
    v_from timestamptz;
    v_to   timestamptz;
BEGIN
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
                   AND r.batch_id = b.id' || CASE WHEN p_user IS NULL THEN '' ELSE ' AND r.user_id = $3' END || '
                OFFSET 0) u
          GROUP BY 1, 2, 3, 4'
        USING v_from, v_to, p_user;
END
$fn$;
