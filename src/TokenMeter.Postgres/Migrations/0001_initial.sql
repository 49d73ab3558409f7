-- TokenMeter 0001: raw usage table (partitioned by month), rollups, summary views, budgets, delivery log.
-- {schema} is the quoted schema name and {schema_name} the same name as a string literal.

-- One row per metered call. Partitioned by month on created_at; the primary key carries created_at
-- because every unique key of a partitioned table must contain the partition key. Ids are UUIDv7
-- and a record keeps its created_at for ever, so (id, created_at) catches every replay.
CREATE TABLE {schema}.user_api_usage (
    id                  uuid             NOT NULL,
    created_at          timestamptz      NOT NULL,
    user_id             text COLLATE "C" NULL,
    endpoint            text             NULL,
    operation           text             NOT NULL,
    request_model       text             NULL,
    model               text             NULL,
    service_tier        text             NULL,
    input_tokens        bigint           NOT NULL DEFAULT 0,
    cached_input_tokens bigint           NOT NULL DEFAULT 0,
    output_tokens       bigint           NOT NULL DEFAULT 0,
    reasoning_tokens    bigint           NOT NULL DEFAULT 0,
    audio_input_tokens  bigint           NOT NULL DEFAULT 0,
    audio_output_tokens bigint           NOT NULL DEFAULT 0,
    total_tokens        bigint           NOT NULL DEFAULT 0,
    cost_usd            numeric          NULL,
    price_id            text             NULL,
    duration_ms         double precision NOT NULL DEFAULT 0,
    status              text             NOT NULL,
    http_status         integer          NULL,
    streaming           boolean          NOT NULL DEFAULT false,
    session_id          text             NULL,
    problem_id          text             NULL,
    metadata            jsonb            NULL,
    CONSTRAINT user_api_usage_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- One user's timeline (recent calls, per-user export) and time ranges (export, retention checks).
CREATE INDEX user_api_usage_user_created_idx ON {schema}.user_api_usage (user_id, created_at);
CREATE INDEX user_api_usage_created_idx ON {schema}.user_api_usage (created_at);

-- Creates the month's partition of user_api_usage unless it exists; true when it was created.
-- Serialized by an advisory lock so several instances can call it at once.
CREATE FUNCTION {schema}.tokenmeter_create_partition(p_month date) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_from date := date_trunc('month', p_month)::date;
    v_to   date := (date_trunc('month', p_month) + interval '1 month')::date;
    v_name text := 'user_api_usage_y' || to_char(v_from, 'YYYY') || 'm' || to_char(v_from, 'MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tokenmeter.partitions.' || {schema_name}));
    IF to_regclass(format('%I.%I', {schema_name}, v_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.user_api_usage FOR VALUES FROM (%L) TO (%L)',
        {schema_name}, v_name, {schema_name},
        to_char(v_from, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(v_to, 'YYYY-MM-DD') || ' 00:00:00+00');
    RETURN true;
END
$fn$;

-- Drops every monthly partition of user_api_usage for months before p_month; returns their names.
-- Rollups are kept: totals stay all-time, only raw rows (export, recent calls) go.
CREATE FUNCTION {schema}.tokenmeter_drop_partitions_before(p_month date) RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    v_name text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tokenmeter.partitions.' || {schema_name}));
    FOR v_name IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = {schema_name} AND p.relname = 'user_api_usage'
          AND c.relname ~ '^user_api_usage_y[0-9]{4}m[0-9]{2}$'
          AND to_date(substr(c.relname, 17, 4) || substr(c.relname, 22, 2) || '01', 'YYYYMMDD') < date_trunc('month', p_month)::date
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I.%I', {schema_name}, v_name);
        RETURN NEXT v_name;
    END LOOP;
END
$fn$;

-- Rollups, maintained in the same transaction as each insert. Endpoint and model may be null, so
-- their keys are NULLS NOT DISTINCT unique constraints. User-level rollups hold only calls with a
-- user; platform-level ones (endpoint_*) hold every call. Keys compare bytewise (COLLATE "C"):
-- faster than a locale in upserts, and the ordinal order the API sorts by. fillfactor leaves room
-- for HOT updates.
CREATE TABLE {schema}.usage_endpoint_day (
    day                 date    NOT NULL,
    endpoint            text COLLATE "C" NULL,
    model               text COLLATE "C" NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_endpoint_day_key UNIQUE NULLS NOT DISTINCT (day, endpoint, model)
) WITH (fillfactor = 70);

CREATE TABLE {schema}.usage_endpoint_month (
    month               date    NOT NULL,
    endpoint            text COLLATE "C" NULL,
    model               text COLLATE "C" NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_endpoint_month_key UNIQUE NULLS NOT DISTINCT (month, endpoint, model)
) WITH (fillfactor = 70);

CREATE TABLE {schema}.usage_user_endpoint_day (
    user_id             text COLLATE "C" NOT NULL,
    day                 date    NOT NULL,
    endpoint            text COLLATE "C" NULL,
    model               text COLLATE "C" NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_user_endpoint_day_key UNIQUE NULLS NOT DISTINCT (user_id, day, endpoint, model)
) WITH (fillfactor = 70);
CREATE INDEX usage_user_endpoint_day_day_idx ON {schema}.usage_user_endpoint_day (day);

CREATE TABLE {schema}.usage_user_endpoint_month (
    user_id             text COLLATE "C" NOT NULL,
    month               date    NOT NULL,
    endpoint            text COLLATE "C" NULL,
    model               text COLLATE "C" NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_user_endpoint_month_key UNIQUE NULLS NOT DISTINCT (user_id, month, endpoint, model)
) WITH (fillfactor = 70);
CREATE INDEX usage_user_endpoint_month_month_idx ON {schema}.usage_user_endpoint_month (month);

CREATE TABLE {schema}.usage_user_day (
    user_id             text COLLATE "C" NOT NULL,
    day                 date    NOT NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_user_day_pkey PRIMARY KEY (user_id, day)
) WITH (fillfactor = 70);
CREATE INDEX usage_user_day_day_idx ON {schema}.usage_user_day (day);

CREATE TABLE {schema}.usage_user_month (
    user_id             text COLLATE "C" NOT NULL,
    month               date    NOT NULL,
    calls               bigint  NOT NULL,
    input_tokens        bigint  NOT NULL,
    cached_input_tokens bigint  NOT NULL,
    output_tokens       bigint  NOT NULL,
    reasoning_tokens    bigint  NOT NULL,
    total_tokens        bigint  NOT NULL,
    cost_usd            numeric NOT NULL,
    CONSTRAINT usage_user_month_pkey PRIMARY KEY (user_id, month)
) WITH (fillfactor = 70);

CREATE TABLE {schema}.usage_user_total (
    user_id             text COLLATE "C" NOT NULL,
    calls               bigint      NOT NULL,
    input_tokens        bigint      NOT NULL,
    cached_input_tokens bigint      NOT NULL,
    output_tokens       bigint      NOT NULL,
    reasoning_tokens    bigint      NOT NULL,
    total_tokens        bigint      NOT NULL,
    cost_usd            numeric     NOT NULL,
    first_call_at       timestamptz NOT NULL,
    last_call_at        timestamptz NOT NULL,
    CONSTRAINT usage_user_total_pkey PRIMARY KEY (user_id)
) WITH (fillfactor = 70);

-- Distinct users per day and per month, counted when a user's first call of the period lands.
CREATE TABLE {schema}.usage_active_day (
    day          date   NOT NULL,
    active_users bigint NOT NULL,
    CONSTRAINT usage_active_day_pkey PRIMARY KEY (day)
) WITH (fillfactor = 70);

CREATE TABLE {schema}.usage_active_month (
    month        date   NOT NULL,
    active_users bigint NOT NULL,
    CONSTRAINT usage_active_month_pkey PRIMARY KEY (month)
) WITH (fillfactor = 70);

-- Views for DBAs; they read the rollups, so they agree with the API and stay fast.
CREATE VIEW {schema}.user_usage_summary AS
SELECT user_id,
       calls               AS total_calls,
       input_tokens,
       cached_input_tokens,
       output_tokens,
       reasoning_tokens,
       total_tokens,
       cost_usd            AS total_cost_usd,
       first_call_at,
       last_call_at
FROM {schema}.usage_user_total;

CREATE VIEW {schema}.endpoint_usage_summary AS
SELECT endpoint,
       model,
       sum(calls)::bigint                                          AS calls,
       sum(input_tokens)::bigint                                   AS input_tokens,
       sum(cached_input_tokens)::bigint                            AS cached_input_tokens,
       sum(output_tokens)::bigint                                  AS output_tokens,
       sum(total_tokens)::bigint                                   AS total_tokens,
       sum(total_tokens)::numeric / nullif(sum(calls), 0)          AS avg_tokens_per_call,
       sum(cost_usd)                                               AS total_cost_usd,
       sum(cost_usd) / nullif(sum(calls), 0)                       AS avg_cost_per_call
FROM {schema}.usage_endpoint_month
GROUP BY endpoint, model;

CREATE VIEW {schema}.daily_usage_summary AS
SELECT d.day                                 AS date,
       sum(d.calls)::bigint                  AS calls,
       sum(d.input_tokens)::bigint           AS input_tokens,
       sum(d.cached_input_tokens)::bigint    AS cached_input_tokens,
       sum(d.output_tokens)::bigint          AS output_tokens,
       sum(d.total_tokens)::bigint           AS total_tokens,
       sum(d.cost_usd)                       AS cost_usd,
       coalesce(max(a.active_users), 0)      AS active_users
FROM {schema}.usage_endpoint_day d
LEFT JOIN {schema}.usage_active_day a ON a.day = d.day
GROUP BY d.day;

CREATE VIEW {schema}.monthly_usage_summary AS
SELECT to_char(m.month, 'YYYY-MM')           AS month,
       m.month                               AS month_start,
       sum(m.calls)::bigint                  AS calls,
       sum(m.input_tokens)::bigint           AS input_tokens,
       sum(m.cached_input_tokens)::bigint    AS cached_input_tokens,
       sum(m.output_tokens)::bigint          AS output_tokens,
       sum(m.total_tokens)::bigint           AS total_tokens,
       sum(m.cost_usd)                       AS cost_usd,
       coalesce(max(a.active_users), 0)      AS active_users
FROM {schema}.usage_endpoint_month m
LEFT JOIN {schema}.usage_active_month a ON a.month = m.month
GROUP BY m.month;

-- Budgets: kind 'default' (user_id '') or 'user'. A null limit is no limit.
CREATE TABLE {schema}.tokenmeter_budgets (
    kind             text        NOT NULL CHECK (kind IN ('default', 'user')),
    user_id          text COLLATE "C" NOT NULL,
    monthly_cost_usd numeric     NULL,
    monthly_tokens   bigint      NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tokenmeter_budgets_pkey PRIMARY KEY (kind, user_id)
);

-- One-off deliveries (reports, alerts, statements): claimed with a lease, then completed.
CREATE TABLE {schema}.tokenmeter_deliveries (
    kind          text        NOT NULL,
    key           text        NOT NULL,
    claimed_until timestamptz NOT NULL,
    completed_at  timestamptz NULL,
    CONSTRAINT tokenmeter_deliveries_pkey PRIMARY KEY (kind, key)
);
