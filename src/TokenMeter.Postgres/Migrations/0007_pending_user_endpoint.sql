-- TokenMeter 0007: the user×endpoint×model rollups (usage_user_endpoint_day, _month, _total) are
-- folded asynchronously. Ingest appends each batch's sums per user, day, endpoint and model here, in
-- the same transaction as the raw rows and the other rollups (a plain insert, no upsert); re-pricing
-- appends its cost differences here too. A fold moves the rows out (DELETE ... RETURNING) and adds
-- them to the three rollups in one transaction, one fold at a time per schema (advisory lock), so
-- nothing is counted twice or lost. Every query of those rollups adds the rows still here, in the
-- same statement, so its figures are exact the moment a write commits. Folds run every few tens of
-- thousands of records, which keeps this table small.
CREATE TABLE {schema}.usage_user_endpoint_pending (
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
    cache_write_tokens  bigint  NOT NULL
);
CREATE INDEX usage_user_endpoint_pending_user_idx ON {schema}.usage_user_endpoint_pending (user_id);
