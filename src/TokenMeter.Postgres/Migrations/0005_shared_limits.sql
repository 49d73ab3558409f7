-- TokenMeter 0005: budgets and rate limits shared by every app instance.
--
-- Budget reservations ("holds"): one row per call in flight, reserved against the user's month
-- before the call and settled with its real cost after it. Enforcement reads the spend from the
-- usage_user_month rollup (the figure the usage API reports) plus the holds in force; a settled
-- hold stops counting in the same snapshot in which its records appear in user_api_usage (the
-- rollup is written in the same transaction), so a call is never counted twice or missed. A hold
-- lapses at expires_at: the lease of a call in flight, or how long a settled call may wait for
-- the writer.
CREATE TABLE {schema}.tokenmeter_budget_holds (
    id           uuid        NOT NULL,
    user_id      text COLLATE "C" NOT NULL,
    month        date        NOT NULL,
    cost_usd     numeric     NOT NULL,
    tokens       bigint      NOT NULL,
    expires_at   timestamptz NOT NULL,
    record_ids   uuid[],
    record_times timestamptz[],
    CONSTRAINT tokenmeter_budget_holds_pkey PRIMARY KEY (id)
);
CREATE INDEX tokenmeter_budget_holds_user_idx ON {schema}.tokenmeter_budget_holds (user_id, month);

-- Check-and-reserve in one statement: reads the user's limits (so a change applies to the next
-- check on every instance), takes a per-user transaction lock (checks of one user queue; the lock
-- ends with the statement), and reserves only when spent + holds + estimate fit every limit.
CREATE FUNCTION {schema}.tokenmeter_budget_reserve(
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

    -- One snapshot: a record is either in the rollup or in its hold, never both.
    RETURN QUERY
    WITH spent AS (
        SELECT coalesce(sum(m.cost_usd), 0) AS cost, coalesce(sum(m.total_tokens), 0)::bigint AS tokens
          FROM {schema}.usage_user_month m
         WHERE m.user_id = p_user AND m.month = p_month),
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

-- Rate limits: one row per permit or token reservation in the last window, per partition key
-- (an exact sliding window, the same as the in-process limiter).
CREATE TABLE {schema}.tokenmeter_rate_entries (
    key    text COLLATE "C" NOT NULL,
    id     uuid        NOT NULL,
    at     timestamptz NOT NULL,
    amount bigint      NOT NULL,
    CONSTRAINT tokenmeter_rate_entries_pkey PRIMARY KEY (key, id)
);
CREATE INDEX tokenmeter_rate_entries_key_at_idx ON {schema}.tokenmeter_rate_entries (key, at);

-- Acquire in one statement. p_fit: admit only when used + amount fits the limit (requests);
-- otherwise admit while used is below the limit (tokens: a call may pass it by its own estimate).
-- Refused: retry_after_ms is when enough of the oldest entries leave the window.
CREATE FUNCTION {schema}.tokenmeter_rate_acquire(
    p_key text, p_id uuid, p_now timestamptz, p_window interval, p_limit bigint, p_amount bigint, p_fit boolean)
RETURNS TABLE (allowed boolean, used bigint, retry_after_ms bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_used bigint;
    v_need bigint;
    v_at timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('tokenmeter.rate/' || p_key, 0));
    DELETE FROM {schema}.tokenmeter_rate_entries e WHERE e.key = p_key AND e.at <= p_now - p_window;
    IF random() < 0.001 THEN
        -- Now and then, the entries of partitions idle for a while.
        DELETE FROM {schema}.tokenmeter_rate_entries e WHERE e.at <= p_now - p_window - interval '10 minutes';
    END IF;

    SELECT coalesce(sum(e.amount), 0)::bigint INTO v_used FROM {schema}.tokenmeter_rate_entries e WHERE e.key = p_key;
    IF (p_fit AND v_used + p_amount <= p_limit) OR (NOT p_fit AND v_used < p_limit) THEN
        INSERT INTO {schema}.tokenmeter_rate_entries (key, id, at, amount) VALUES (p_key, p_id, p_now, p_amount);
        RETURN QUERY SELECT true, v_used, 0::bigint;
        RETURN;
    END IF;

    v_need := CASE WHEN p_fit THEN v_used + p_amount - p_limit ELSE v_used - p_limit + 1 END;
    SELECT w.at INTO v_at
      FROM (SELECT e.at, sum(e.amount) OVER (ORDER BY e.at, e.id) AS freed
              FROM {schema}.tokenmeter_rate_entries e WHERE e.key = p_key) w
     WHERE w.freed >= v_need
     ORDER BY w.at LIMIT 1;
    RETURN QUERY SELECT false, v_used,
        greatest(0, ceil(extract(epoch FROM (coalesce(v_at, p_now) + p_window - p_now)) * 1000))::bigint;
END
$fn$;
