-- TokenMeter 0002: cheaper ingest. The primary key of user_api_usage leads with created_at, so it
-- also serves time ranges (and the export's ORDER BY created_at, id); the separate created_at
-- index goes. One index fewer to maintain per inserted row; inserts append at the right edge of
-- the key (created_at grows) instead of the UUIDv7 order. Every unique key still contains id,
-- so Citus can still distribute the table by id.
ALTER TABLE {schema}.user_api_usage DROP CONSTRAINT user_api_usage_pkey;
ALTER TABLE {schema}.user_api_usage ADD CONSTRAINT user_api_usage_pkey PRIMARY KEY (created_at, id);
DROP INDEX {schema}.user_api_usage_created_idx;
