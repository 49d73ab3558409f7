-- TokenMeter 0013: the unfolded batches are read with the bigint running sum of 0012.
--
-- Every read of usage_pending (the dashboards' queries, the summary views) and every budget check sums the raw rows of
-- the batches not folded yet through tokenmeter_unfolded_of (0011), grouped by user, day, endpoint and model: up to
-- FoldEveryRecords rows per writing instance while ingest runs. Its token sums were sum(bigint)::bigint, a numeric
-- accumulator per group and column; they are now tokenmeter_sum, as in the fold (about a fifth less server CPU for a
-- read of 50,000 unfolded records, measured with psql). The function is otherwise 0011's, unchanged: same arguments,
-- same columns and types, same plan.
CREATE OR REPLACE FUNCTION {schema}.tokenmeter_unfolded_of(p_users text[])
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
        'SELECT u.user_id, (u.created_at AT TIME ZONE ''UTC'')::date, u.endpoint COLLATE "C", u.model COLLATE "C", count(*),
                {schema}.tokenmeter_sum(u.input_tokens), {schema}.tokenmeter_sum(u.cached_input_tokens), {schema}.tokenmeter_sum(u.output_tokens), {schema}.tokenmeter_sum(u.reasoning_tokens),
                {schema}.tokenmeter_sum(u.total_tokens), coalesce(sum(u.cost_usd), 0), {schema}.tokenmeter_sum(u.cache_write_tokens), min(u.created_at), max(u.created_at)
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
