-- TokenMeter 0006: one round trip per checked call, commits that do not wait for the disk, settles in batches.
--
-- 0005 gave each check its own statement (a tokens window, a requests window, a budget hold) and
-- each settle its own, and every one of those commits waited for its WAL flush. Here:
--   * tokenmeter_check_limits runs every check a call needs in one statement (tokens window, then
--     requests window, then the budget hold, each under its own 0005 lock, always in that order),
--     all or nothing for the call: a call refused by one check leaves no tokens entry and no hold.
--   * tokenmeter_settle_limits settles any number of holds and window entries in one statement
--     (the app instance batches them after the responses).
--   * both set synchronous_commit = off for their own transaction only. These rows are short-lived
--     working state, not the ledger: a hold lapses with its lease, a window entry after a minute,
--     and the records themselves are written with the server's own setting. A PostgreSQL crash can
--     forget the checks and settles of its last few hundred milliseconds (wal_writer_delay, up to
--     three times that under load): at worst those calls are not counted against the limits right
--     after the crash; nothing is corrupted and no record is lost.

-- p_tokens_key NULL: no tokens limit; p_requests_key NULL: no requests limit; p_user NULL: no budget.
-- p_now is the rate limits' clock, p_budget_now the budget's (an app may run them on different clocks).
-- refused_by: NULL (allowed), 'tokens', 'requests' or 'budget'; rate_used: the last window's total
-- before this call. The budget columns are those of tokenmeter_budget_reserve when budget_checked.
CREATE FUNCTION {schema}.tokenmeter_check_limits(
    p_now timestamptz, p_window interval,
    p_tokens_key text, p_tokens_id uuid, p_tokens_limit bigint, p_tokens_amount bigint,
    p_requests_key text, p_requests_id uuid, p_requests_limit bigint,
    p_user text, p_hold_id uuid, p_month date, p_cost numeric, p_hold_tokens bigint, p_budget_now timestamptz, p_expires timestamptz)
RETURNS TABLE (refused_by text, rate_used bigint, retry_after_ms bigint, budget_checked boolean,
               limit_cost numeric, limit_tokens bigint, spent_cost numeric, spent_tokens bigint, held_cost numeric, held_tokens bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_allowed boolean;
    v_used bigint;
    v_retry bigint;
    v_budget record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    IF p_tokens_key IS NOT NULL THEN
        SELECT a.allowed, a.used, a.retry_after_ms INTO v_allowed, v_used, v_retry
          FROM {schema}.tokenmeter_rate_acquire(p_tokens_key, p_tokens_id, p_now, p_window, p_tokens_limit, p_tokens_amount, false) a;
        IF NOT v_allowed THEN
            RETURN QUERY SELECT 'tokens'::text, v_used, v_retry, false, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint;
            RETURN;
        END IF;
    END IF;

    IF p_requests_key IS NOT NULL THEN
        SELECT a.allowed, a.used, a.retry_after_ms INTO v_allowed, v_used, v_retry
          FROM {schema}.tokenmeter_rate_acquire(p_requests_key, p_requests_id, p_now, p_window, p_requests_limit, 1, true) a;
        IF NOT v_allowed THEN
            DELETE FROM {schema}.tokenmeter_rate_entries e WHERE e.key = p_tokens_key AND e.id = p_tokens_id;
            RETURN QUERY SELECT 'requests'::text, v_used, v_retry, false, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint;
            RETURN;
        END IF;
    END IF;

    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, coalesce(v_used, 0), 0::bigint, false, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint, NULL::numeric, NULL::bigint;
        RETURN;
    END IF;

    SELECT * INTO v_budget FROM {schema}.tokenmeter_budget_reserve(p_hold_id, p_user, p_month, p_cost, p_hold_tokens, p_budget_now, p_expires);
    IF NOT v_budget.allowed THEN
        -- The request permit stays taken (the request was made); the tokens were never used.
        DELETE FROM {schema}.tokenmeter_rate_entries e WHERE e.key = p_tokens_key AND e.id = p_tokens_id;
    END IF;

    RETURN QUERY SELECT CASE WHEN v_budget.allowed THEN NULL ELSE 'budget' END, coalesce(v_used, 0), 0::bigint, true,
        v_budget.limit_cost, v_budget.limit_tokens, v_budget.spent_cost, v_budget.spent_tokens, v_budget.held_cost, v_budget.held_tokens;
END
$fn$;

-- Settles in one statement. Holds: p_hold_ids with their real cost, tokens and keep-until; their
-- records as (p_record_holds, p_record_ids, p_record_times) rows. A hold without records is dropped
-- (its call used nothing); one with records keeps counting its real cost until they have all
-- landed (tokenmeter_budget_reserve then counts the rollup instead). Entries: amount 0 drops the
-- entry, any other amount replaces its estimate. Every write sets absolute values, so a batch
-- written twice (a retry after a lost answer) counts nothing twice.
CREATE FUNCTION {schema}.tokenmeter_settle_limits(
    p_hold_ids uuid[], p_hold_costs numeric[], p_hold_tokens bigint[], p_hold_until timestamptz[],
    p_record_holds uuid[], p_record_ids uuid[], p_record_times timestamptz[],
    p_entry_keys text[], p_entry_ids uuid[], p_entry_amounts bigint[])
RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    WITH s AS (
        SELECT h.id, h.cost, h.tokens, h.until,
               (SELECT array_agg(r.id ORDER BY r.ord) FROM unnest(p_record_holds, p_record_ids, p_record_times) WITH ORDINALITY AS r(hold, id, at, ord) WHERE r.hold = h.id) AS ids,
               (SELECT array_agg(r.at ORDER BY r.ord) FROM unnest(p_record_holds, p_record_ids, p_record_times) WITH ORDINALITY AS r(hold, id, at, ord) WHERE r.hold = h.id) AS times
          FROM unnest(p_hold_ids, p_hold_costs, p_hold_tokens, p_hold_until) AS h(id, cost, tokens, until)),
    dropped AS (
        DELETE FROM {schema}.tokenmeter_budget_holds t USING s WHERE t.id = s.id AND s.ids IS NULL RETURNING 1)
    UPDATE {schema}.tokenmeter_budget_holds t
       SET cost_usd = s.cost, tokens = s.tokens, expires_at = s.until, record_ids = s.ids, record_times = s.times
      FROM s
     WHERE t.id = s.id AND s.ids IS NOT NULL;

    DELETE FROM {schema}.tokenmeter_rate_entries t
     USING unnest(p_entry_keys, p_entry_ids, p_entry_amounts) AS e(key, id, amount)
     WHERE t.key = e.key AND t.id = e.id AND e.amount = 0;
    UPDATE {schema}.tokenmeter_rate_entries t
       SET amount = e.amount
      FROM unnest(p_entry_keys, p_entry_ids, p_entry_amounts) AS e(key, id, amount)
     WHERE t.key = e.key AND t.id = e.id AND e.amount <> 0;
END
$fn$;
