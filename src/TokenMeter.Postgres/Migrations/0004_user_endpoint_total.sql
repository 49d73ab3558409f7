-- TokenMeter 0004: all-time totals per user, endpoint and model, kept by ingest and re-pricing like
-- every other rollup. A user's detail reads its by-endpoint list from here: one row per
-- endpoint/model pair whatever the length of the user's history (it summed every month before).
-- Existing databases are backfilled from usage_user_endpoint_month, which holds the same sums.
CREATE TABLE {schema}.usage_user_endpoint_total (
    user_id             text COLLATE "C" NOT NULL,
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
    CONSTRAINT usage_user_endpoint_total_key UNIQUE NULLS NOT DISTINCT (user_id, endpoint, model)
) WITH (fillfactor = 70);

-- The migration runs under the migrator's lock, in one transaction; ingest writes the month rollup
-- in the same transaction as its other rollups, so the copy below sees whole batches only.
LOCK TABLE {schema}.usage_user_endpoint_month IN SHARE MODE;
INSERT INTO {schema}.usage_user_endpoint_total
    (user_id, endpoint, model, calls, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd, cache_write_tokens)
SELECT user_id, endpoint, model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(cached_input_tokens)::bigint, sum(output_tokens)::bigint,
       sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost_usd), sum(cache_write_tokens)::bigint
FROM {schema}.usage_user_endpoint_month
GROUP BY user_id, endpoint, model;
