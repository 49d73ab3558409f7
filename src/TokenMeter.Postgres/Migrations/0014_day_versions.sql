-- TokenMeter 0014: a version per day of the rollups, so a reader can keep finished days in memory.
--
-- The dashboards' two bulk reads (every user's days for the forecasts, every user's lines of a month for the
-- statements) return one row per user and day (or line): tens of thousands of rows, ~1 µs each to produce, send and
-- read, whatever the number of calls stored. Yet a finished day changes only when something is folded into it late (a
-- spool replayed after an outage, a clock that was behind) or when it is re-priced. usage_day_versions gives every day
-- of the rollups a version that changes whenever any rollup row of that day changes; a reader keeps the rows of the
-- days it has read with their versions and reads again only the days whose version moved (and what is still pending,
-- always). The versions live in the database, so a change made by any instance is seen by every instance.
--
-- The versions are kept by triggers on usage_endpoint_day: every record folded into any rollup (the fold, re-pricing's
-- differences, any instance's version of the fold) adds to its day's row of usage_endpoint_day (every record, with or
-- without a user, is in that grain), so a change there is a change of the day in every finer and per-user rollup
-- (usage_user_day; usage_user_endpoint_month for the day's month). One statement-level trigger per kind of change, each
-- with the changed rows as a transition table: a fold touches a few rows there per day (one per endpoint and model),
-- so keeping the versions costs one small upsert per fold. Every new version comes from one sequence, so a version is
-- never given twice: a reader's remembered version matches only the state it read. A day without a version row (no
-- rows at all, or after a TRUNCATE of the rollup, which empties the versions) is never taken from memory.
CREATE SEQUENCE {schema}.usage_day_version_seq;

CREATE TABLE {schema}.usage_day_versions (
    day     date   NOT NULL PRIMARY KEY,
    version bigint NOT NULL
);

CREATE FUNCTION {schema}.tokenmeter_bump_day_versions()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {schema}.usage_day_versions;
        RETURN NULL;
    END IF;
    INSERT INTO {schema}.usage_day_versions AS v (day, version)
    SELECT d.day, nextval('{schema}.usage_day_version_seq') FROM (SELECT DISTINCT c.day FROM changed_days c) d
    ON CONFLICT (day) DO UPDATE SET version = excluded.version;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER usage_endpoint_day_inserted AFTER INSERT ON {schema}.usage_endpoint_day
    REFERENCING NEW TABLE AS changed_days FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_bump_day_versions();
CREATE TRIGGER usage_endpoint_day_updated AFTER UPDATE ON {schema}.usage_endpoint_day
    REFERENCING NEW TABLE AS changed_days FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_bump_day_versions();
CREATE TRIGGER usage_endpoint_day_deleted AFTER DELETE ON {schema}.usage_endpoint_day
    REFERENCING OLD TABLE AS changed_days FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_bump_day_versions();
CREATE TRIGGER usage_endpoint_day_truncated AFTER TRUNCATE ON {schema}.usage_endpoint_day
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_bump_day_versions();

-- The days already in the rollups get their first version (one row per day read from the small per-day rollup).
INSERT INTO {schema}.usage_day_versions (day, version)
SELECT day, nextval('{schema}.usage_day_version_seq') FROM (SELECT DISTINCT day FROM {schema}.usage_endpoint_day) d;
