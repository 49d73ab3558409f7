-- TokenMeter 0003: pricing truth. Cache-write tokens and the cost source on every record, cache-write
-- tokens in every rollup and summary view, and the log of applied re-pricings. Every new column is
-- added with a constant default (or none), which PostgreSQL records in the catalog: existing rows are
-- not rewritten. A row stored before this migration reads cost_source NULL: its source is derived
-- from cost_usd and status when it is read.
ALTER TABLE {schema}.user_api_usage
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cost_source        text   NULL;

ALTER TABLE {schema}.usage_endpoint_day        ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_endpoint_month      ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_user_endpoint_day   ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_user_endpoint_month ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_user_day            ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_user_month          ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE {schema}.usage_user_total          ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0;

-- The views gain cache_write_tokens as their last column (CREATE OR REPLACE VIEW may only append).
CREATE OR REPLACE VIEW {schema}.user_usage_summary AS
SELECT user_id,
       calls               AS total_calls,
       input_tokens,
       cached_input_tokens,
       output_tokens,
       reasoning_tokens,
       total_tokens,
       cost_usd            AS total_cost_usd,
       first_call_at,
       last_call_at,
       cache_write_tokens
FROM {schema}.usage_user_total;

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
FROM {schema}.usage_endpoint_month
GROUP BY endpoint, model;

CREATE OR REPLACE VIEW {schema}.daily_usage_summary AS
SELECT d.day                                 AS date,
       sum(d.calls)::bigint                  AS calls,
       sum(d.input_tokens)::bigint           AS input_tokens,
       sum(d.cached_input_tokens)::bigint    AS cached_input_tokens,
       sum(d.output_tokens)::bigint          AS output_tokens,
       sum(d.total_tokens)::bigint           AS total_tokens,
       sum(d.cost_usd)                       AS cost_usd,
       coalesce(max(a.active_users), 0)      AS active_users,
       sum(d.cache_write_tokens)::bigint     AS cache_write_tokens
FROM {schema}.usage_endpoint_day d
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
       coalesce(max(a.active_users), 0)      AS active_users,
       sum(m.cache_write_tokens)::bigint     AS cache_write_tokens
FROM {schema}.usage_endpoint_month m
LEFT JOIN {schema}.usage_active_month a ON a.month = m.month
GROUP BY m.month;

-- Each applied re-pricing: who, when, which days, and what it changed (by model, and the closed
-- months it left alone with the difference it would have made).
CREATE TABLE {schema}.tokenmeter_repricings (
    id             uuid        NOT NULL,
    at             timestamptz NOT NULL,
    by_user        text        NULL,
    from_day       date        NOT NULL,
    to_day         date        NOT NULL,
    only_unpriced  boolean     NOT NULL,
    records        bigint      NOT NULL,
    old_cost_usd   numeric     NOT NULL,
    new_cost_usd   numeric     NOT NULL,
    details        jsonb       NULL,
    CONSTRAINT tokenmeter_repricings_pkey PRIMARY KEY (id)
);
CREATE INDEX tokenmeter_repricings_at_idx ON {schema}.tokenmeter_repricings (at);
