-- TokenMeter 0016: all-time totals per endpoint and model, kept by the fold.
--
-- The totals by endpoint and model over all time (and the all-time figures of the stats, and endpoint_usage_summary) summed
-- usage_endpoint_month: a row per endpoint, model and month of the history (about 1,800 at ten years), so those reads grew with
-- the history. They read usage_endpoint_total instead: a row per endpoint and model, whatever the length of the history. The
-- fold adds to it what it adds to usage_endpoint_month (its endpoint×model by day rows, summed per endpoint and model): a few
-- dozen rows per fold, where the per-user all-time table that 0010 dropped took about as many as the user×endpoint×model
-- months. Re-pricing's cost differences reach it through the fold like every rollup; retention drops raw rows only, so it
-- stays all-time like the months.

-- The fold's lock (PostgresPendingFold's advisory lock), first: a fold running now commits before the copy below (its sums are
-- in the months it reads), and until this transaction commits no other fold starts (one tried meanwhile finds the lock taken
-- and leaves its rows pending; re-pricing and retention wait), so no fold is counted twice or missed. Then every other writer
-- of the months (a correction by hand) is held off until the commit, and the trigger below follows them after it.
SELECT pg_advisory_xact_lock(hashtext('tokenmeter.fold.' || {schema_name}));
LOCK TABLE {schema}.usage_endpoint_month IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE {schema}.usage_endpoint_total (
    endpoint            text COLLATE "C" NULL,
    model               text COLLATE "C" NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    cache_write_tokens  bigint  NOT NULL DEFAULT 0,
    CONSTRAINT usage_endpoint_total_key UNIQUE NULLS NOT DISTINCT (endpoint, model)
) WITH (fillfactor = 50);

INSERT INTO {schema}.usage_endpoint_total
    (endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
SELECT endpoint, model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint, sum(output_tokens)::bigint,
       sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost_usd), sum(cache_write_tokens)::bigint
FROM {schema}.usage_endpoint_month
GROUP BY endpoint, model;

-- Any write to usage_endpoint_month not made by this version's fold (an instance of an older version still folding during the
-- upgrade, a correction or a rebuild by hand) is carried to the all-time row: minus the row's old sums, plus its new ones; a
-- pair whose last month row goes loses its all-time row; emptying the months empties it. The fold's transaction says it
-- writes usage_endpoint_total itself (the setting tokenmeter.folds_endpoint_total, set for the transaction by the fold's
-- lock), and the WHEN clause is evaluated without calling the function, so the fold's rows cost no function call.
CREATE FUNCTION {schema}.tokenmeter_carry_to_endpoint_total()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {schema}.usage_endpoint_total;
        RETURN NULL;
    END IF;
    INSERT INTO {schema}.usage_endpoint_total AS t
        (endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
    SELECT d.endpoint, d.model, sum(d.calls)::bigint, sum(d.input_tokens)::bigint, sum(d.cached_input_tokens)::bigint, sum(d.output_tokens)::bigint,
           sum(d.reasoning_tokens)::bigint, sum(d.total_tokens)::bigint, sum(d.cost_usd), sum(d.cache_write_tokens)::bigint
    FROM (SELECT OLD.endpoint, OLD.model, -OLD.calls, -OLD.input_tokens, -OLD.cached_input_tokens, -OLD.output_tokens,
                 -OLD.reasoning_tokens, -OLD.total_tokens, -OLD.cost_usd, -OLD.cache_write_tokens
           WHERE TG_OP <> 'INSERT'
          UNION ALL
          SELECT NEW.endpoint, NEW.model, NEW.calls, NEW.input_tokens, NEW.cached_input_tokens, NEW.output_tokens,
                 NEW.reasoning_tokens, NEW.total_tokens, NEW.cost_usd, NEW.cache_write_tokens
           WHERE TG_OP <> 'DELETE') AS d (endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
                                          total_tokens, cost_usd, cache_write_tokens)
    GROUP BY d.endpoint, d.model
    ON CONFLICT (endpoint, model) DO UPDATE SET
        calls = t.calls + excluded.calls, input_tokens = t.input_tokens + excluded.input_tokens, cached_input_tokens = t.cached_input_tokens + excluded.cached_input_tokens,
        output_tokens = t.output_tokens + excluded.output_tokens, reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens, total_tokens = t.total_tokens + excluded.total_tokens,
        cost_usd = t.cost_usd + excluded.cost_usd, cache_write_tokens = t.cache_write_tokens + excluded.cache_write_tokens;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.endpoint IS DISTINCT FROM NEW.endpoint OR OLD.model IS DISTINCT FROM NEW.model)) THEN
        DELETE FROM {schema}.usage_endpoint_total t
         WHERE t.endpoint IS NOT DISTINCT FROM OLD.endpoint AND t.model IS NOT DISTINCT FROM OLD.model
           AND NOT EXISTS (SELECT 1 FROM {schema}.usage_endpoint_month m
                            WHERE m.endpoint IS NOT DISTINCT FROM OLD.endpoint AND m.model IS NOT DISTINCT FROM OLD.model);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER usage_endpoint_month_carried AFTER INSERT OR UPDATE OR DELETE ON {schema}.usage_endpoint_month
    FOR EACH ROW WHEN (current_setting('tokenmeter.folds_endpoint_total', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION {schema}.tokenmeter_carry_to_endpoint_total();
CREATE TRIGGER usage_endpoint_month_emptied AFTER TRUNCATE ON {schema}.usage_endpoint_month
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_carry_to_endpoint_total();

-- The view reads the all-time rows (plus what is pending) instead of summing the months; same columns as 0008.
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
    SELECT endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_endpoint_total
    UNION ALL
    SELECT endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, total_tokens, cost_usd, cache_write_tokens FROM {schema}.usage_pending
) x
GROUP BY endpoint, model;
