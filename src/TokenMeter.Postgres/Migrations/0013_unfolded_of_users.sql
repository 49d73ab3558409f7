-- TokenMeter 0013: a shared-limit check reads the unfolded batches of all its users in one query.
--
-- A check round trip (the checks of up to 128 calls in one statement) read each budgeted user's stored spend not yet
-- folded through tokenmeter_pending_of(user) (0011): one dynamic query planned and run per user, about 0.25 ms each,
-- 15 ms for a batch of 64 users. tokenmeter_unfolded_of(users) is tokenmeter_unfolded (as of 0012: each unfolded batch
-- read over its own span) for a set of users: the same rows, every user given in one query, planned once per call.
-- STABLE like it: it reads with the snapshot of the statement that calls it (a batch is seen here or in the rollups,
-- never both).
CREATE FUNCTION {schema}.tokenmeter_unfolded_of(p_users text[])
RETURNS TABLE (user_id text, day date, endpoint text, model text, calls bigint, input_tokens bigint, cached_input_tokens bigint,
               output_tokens bigint, reasoning_tokens bigint, total_tokens bigint, cost_usd numeric, cache_write_tokens bigint,
               first_at timestamptz, last_at timestamptz)
LANGUAGE plpgsql STABLE ROWS 100 AS $fn$
DECLARE
    v_from timestamptz;
    v_to   timestamptz;
BEGIN
    IF p_users IS NULL OR cardinality(p_users) = 0 THEN
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
                   AND r.batch_id = b.id AND r.user_id = ANY ($3)
                OFFSET 0) u
          GROUP BY 1, 2, 3, 4'
        USING v_from, v_to, p_users;
END
$fn$;
