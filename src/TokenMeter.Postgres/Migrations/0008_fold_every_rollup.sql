-- TokenMeter 0008: every rollup is folded asynchronously, and the user×endpoint×model×day grain goes.
--
-- Ingest now writes only the raw rows and the batch's sums per user, day, endpoint and model
-- (usage_pending, both by binary COPY, one transaction): no rollup is upserted per batch. A fold
-- moves the pending rows out (DELETE ... RETURNING) and adds them to every rollup in one
-- transaction, one fold at a time per schema; every query of a rollup (and the budget check, and
-- the views below) adds the rows still pending in the same statement, so answers stay exact the
-- moment a write commits. Rows without a user are pending too (the platform rollups count them).
--
-- usage_user_endpoint_day held about one row per call (a user rarely calls the same endpoint and
-- model twice a day), as large as the raw table and the costliest grain to fold; a range's edge
-- days (the days outside its whole months) are read from user_api_usage instead.

-- The rows pending under 0007 were already counted in every rollup but the user×endpoint×model
-- ones: fold them there first (the old fold, without the day grain that goes below).
LOCK TABLE {schema}.usage_user_endpoint_pending IN ACCESS EXCLUSIVE MODE;
WITH moved AS (
    DELETE FROM {schema}.usage_user_endpoint_pending
    RETURNING user_id, day, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens
),
uem AS (
    INSERT INTO {schema}.usage_user_endpoint_month AS t (user_id, month, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
    SELECT user_id, date_trunc('month', day)::date, endpoint, model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
           sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost_usd), sum(cache_write_tokens)::bigint
    FROM moved GROUP BY 1, 2, 3, 4
    ON CONFLICT (user_id, month, endpoint, model) DO UPDATE SET
        calls = t.calls + excluded.calls, input_tokens = t.input_tokens + excluded.input_tokens, cached_input_tokens = t.cached_input_tokens + excluded.cached_input_tokens,
        output_tokens = t.output_tokens + excluded.output_tokens, reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens, total_tokens = t.total_tokens + excluded.total_tokens,
        cost_usd = t.cost_usd + excluded.cost_usd, cache_write_tokens = t.cache_write_tokens + excluded.cache_write_tokens
)
INSERT INTO {schema}.usage_user_endpoint_total AS t (user_id, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
SELECT user_id, endpoint, model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint,
       sum(output_tokens)::bigint, sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost_usd), sum(cache_write_tokens)::bigint
FROM moved GROUP BY 1, 2, 3
ON CONFLICT (user_id, endpoint, model) DO UPDATE SET
    calls = t.calls + excluded.calls, input_tokens = t.input_tokens + excluded.input_tokens, cached_input_tokens = t.cached_input_tokens + excluded.cached_input_tokens,
    output_tokens = t.output_tokens + excluded.output_tokens, reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens, total_tokens = t.total_tokens + excluded.total_tokens,
    cost_usd = t.cost_usd + excluded.cost_usd, cache_write_tokens = t.cache_write_tokens + excluded.cache_write_tokens;

DROP TABLE {schema}.usage_user_endpoint_day;

-- The pending table now feeds every rollup: rows without a user, and the first and last call of
-- each group (usage_user_total's first_call_at and last_call_at; null on a re-pricing's rows).
ALTER TABLE {schema}.usage_user_endpoint_pending RENAME TO usage_pending;
ALTER INDEX {schema}.usage_user_endpoint_pending_user_idx RENAME TO usage_pending_user_idx;
ALTER TABLE {schema}.usage_pending
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN first_at timestamptz NULL,
    ADD COLUMN last_at  timestamptz NULL;

-- The budget check reads the month's spend from usage_user_month plus the user's pending rows of
-- the month (0005 read the rollup alone); the rest is 0005's function unchanged. A settled hold
-- still stops counting in the same snapshot in which its records appear: the records and their
-- pending sums are written in one transaction.
CREATE OR REPLACE FUNCTION {schema}.tokenmeter_budget_reserve(
    p_id uuid, p_user text, p_month date, p_cost numeric, p_tokens bigint, p_now timestamptz, p_expires timestamptz)
RETURNS TABLE (allowed boolean, limit_cost numeric, limit_tokens bigint, spent_cost numeric, spent_tokens bigint, held_cost numeric, held_tokens bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_limit_cost numeric;
    v_limit_tokens bigint;
BEGIN
    SELECT b.monthly_cost_usd, b.monthly_tokens INTO v_limit_cost, v_limit_tokens
      FROM {schema}.tokenmeter_budgets b
     WHERE (b.kind = 'user' AND b.user_id = p_user) OR (b.kind = 'default' AND b.user_id = '')
     ORDER BY b.kind DESC LIMIT 1;
    IF v_limit_cost IS NULL AND v_limit_tokens IS NULL THEN
        RETURN QUERY SELECT true, NULL::numeric, NULL::bigint, 0::numeric, 0::bigint, 0::numeric, 0::bigint;
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended('tokenmeter.budget/' || p_user, 0));

    -- Lapsed holds and holds whose records have all landed count no more.
    DELETE FROM {schema}.tokenmeter_budget_holds h
     WHERE h.user_id = p_user
       AND (h.expires_at <= p_now
            OR (h.record_ids IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM unnest(h.record_ids, h.record_times) AS r(id, at)
                 WHERE NOT EXISTS (SELECT 1 FROM {schema}.user_api_usage u WHERE u.created_at = r.at AND u.id = r.id))));

    -- One snapshot: a record is either in the rollup (folded or pending) or in its hold, never both.
    RETURN QUERY
    WITH spent AS (
        SELECT coalesce(sum(x.cost_usd), 0) AS cost, coalesce(sum(x.total_tokens), 0)::bigint AS tokens
          FROM (SELECT m.cost_usd, m.total_tokens FROM {schema}.usage_user_month m
                 WHERE m.user_id = p_user AND m.month = p_month
                UNION ALL
                SELECT p.cost_usd, p.total_tokens FROM {schema}.usage_pending p
                 WHERE p.user_id = p_user AND p.day >= p_month AND p.day < (p_month + interval '1 month')::date) x),
    held AS (
        SELECT coalesce(sum(h.cost_usd), 0) AS cost, coalesce(sum(h.tokens), 0)::bigint AS tokens
          FROM {schema}.tokenmeter_budget_holds h
         WHERE h.user_id = p_user AND h.month = p_month AND h.expires_at > p_now
           AND (h.record_ids IS NULL OR EXISTS (
                SELECT 1 FROM unnest(h.record_ids, h.record_times) AS r(id, at)
                 WHERE NOT EXISTS (SELECT 1 FROM {schema}.user_api_usage u WHERE u.created_at = r.at AND u.id = r.id)))),
    decision AS (
        SELECT (v_limit_cost IS NULL OR s.cost + h.cost + p_cost <= v_limit_cost)
           AND (v_limit_tokens IS NULL OR s.tokens + h.tokens + p_tokens <= v_limit_tokens) AS ok,
               s.cost AS s_cost, s.tokens AS s_tokens, h.cost AS h_cost, h.tokens AS h_tokens
          FROM spent s CROSS JOIN held h),
    reserved AS (
        INSERT INTO {schema}.tokenmeter_budget_holds (id, user_id, month, cost_usd, tokens, expires_at)
        SELECT p_id, p_user, p_month, p_cost, p_tokens, p_expires FROM decision WHERE decision.ok
        RETURNING 1)
    SELECT d.ok, v_limit_cost, v_limit_tokens, d.s_cost, d.s_tokens, d.h_cost, d.h_tokens FROM decision d;
END
$fn$;

-- The views add the pending rows too, so they keep agreeing with the API (same columns as 0003).
CREATE OR REPLACE VIEW {schema}.user_usage_summary AS
SELECT user_id,
       sum(calls)::bigint               AS total_calls,
       sum(input_tokens)::bigint        AS input_tokens,
       sum(cached_input_tokens)::bigint AS cached_input_tokens,
       sum(output_tokens)::bigint       AS output_tokens,
       sum(reasoning_tokens)::bigint    AS reasoning_tokens,
       sum(total_tokens)::bigint        AS total_tokens,
       sum(cost_usd)                    AS total_cost_usd,
       min(first_call_at)               AS first_call_at,
       max(last_call_at)                AS last_call_at,
       sum(cache_write_tokens)::bigint  AS cache_write_tokens
FROM (
    SELECT user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_call_at, last_call_at, cache_write_tokens
    FROM {schema}.usage_user_total
    UNION ALL
    SELECT user_id, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, first_at, last_at, cache_write_tokens
    FROM {schema}.usage_pending WHERE user_id IS NOT NULL
) x
GROUP BY user_id;

CREATE OR REPLACE VIEW {schema}.endpoint_usage_summary AS
SELECT endpoint,
       model,
       sum(calls)::bigint                                          AS calls,
       sum(input_tokens)::bigint                                   AS input_tokens,
       sum(cached_input_tokens)::bigint                            AS cached_input_tokens,
       sum(output_tokens)::bigint                                  AS output_tokens,
       sum(total_tokens)::bigint                                   AS total_tokens,
       sum(total_tokens)::numeric / nullif(sum(calls), 0)          AS avg_tokens_per_call,
       sum(cost_usd)                                               AS total_cost_usd,
       sum(cost_usd) / nullif(sum(calls), 0)                       AS avg_cost_per_call,
       sum(cache_write_tokens)::bigint                             AS cache_write_tokens
FROM (
    SELECT endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_endpoint_month
    UNION ALL
    SELECT endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_pending
) x
GROUP BY endpoint, model;

-- Distinct users of a period: the folded count plus the pending users without a folded row for it.
CREATE OR REPLACE VIEW {schema}.daily_usage_summary AS
SELECT d.day                                 AS date,
       sum(d.calls)::bigint                  AS calls,
       sum(d.input_tokens)::bigint           AS input_tokens,
       sum(d.cached_input_tokens)::bigint    AS cached_input_tokens,
       sum(d.output_tokens)::bigint          AS output_tokens,
       sum(d.total_tokens)::bigint           AS total_tokens,
       sum(d.cost_usd)                       AS cost_usd,
       coalesce(max(a.active_users), 0)
         + (SELECT count(DISTINCT p.user_id) FROM {schema}.usage_pending p
             WHERE p.day = d.day AND p.user_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM {schema}.usage_user_day u WHERE u.user_id = p.user_id AND u.day = p.day)) AS active_users,
       sum(d.cache_write_tokens)::bigint     AS cache_write_tokens
FROM (
    SELECT day, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_endpoint_day
    UNION ALL
    SELECT day, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_pending
) d
LEFT JOIN {schema}.usage_active_day a ON a.day = d.day
GROUP BY d.day;

CREATE OR REPLACE VIEW {schema}.monthly_usage_summary AS
SELECT to_char(m.month, 'YYYY-MM')           AS month,
       m.month                               AS month_start,
       sum(m.calls)::bigint                  AS calls,
       sum(m.input_tokens)::bigint           AS input_tokens,
       sum(m.cached_input_tokens)::bigint    AS cached_input_tokens,
       sum(m.output_tokens)::bigint          AS output_tokens,
       sum(m.total_tokens)::bigint           AS total_tokens,
       sum(m.cost_usd)                       AS cost_usd,
       coalesce(max(a.active_users), 0)
         + (SELECT count(DISTINCT p.user_id) FROM {schema}.usage_pending p
             WHERE p.day >= m.month AND p.day < (m.month + interval '1 month')::date AND p.user_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM {schema}.usage_user_month u WHERE u.user_id = p.user_id AND u.month = m.month)) AS active_users,
       sum(m.cache_write_tokens)::bigint     AS cache_write_tokens
FROM (
    SELECT month, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_endpoint_month
    UNION ALL
    SELECT date_trunc('month', day)::date, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_pending
) m
LEFT JOIN {schema}.usage_active_month a ON a.month = m.month
GROUP BY m.month;
