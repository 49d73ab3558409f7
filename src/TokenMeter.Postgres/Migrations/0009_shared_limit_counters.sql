-- TokenMeter 0009: rate-limit windows as per-second counters; checks and settles as flat statements.
--
-- 0005/0006 kept one row per permit or token reservation of the last minute and summed them on
-- every check (thousands of rows for a busy user), inside nested plpgsql functions. Here a window
-- is one counter row per partition key and second (at most 61 rows per key), and a check is a
-- flat statement the app sends after its per-key transaction locks, in the same round trip (see
-- PostgresSharedLimits): it sums the key's counters of the window, reads the budget, the month's
-- spend and the holds, decides, and writes the counters and the hold, all in one snapshot.
--
-- A counter of second s counts while now < s + 61 s: an entry made at t in [s, s + 1) counts until
-- at least t + 60 s, so the window admits what the exact window would, or refuses for at most a
-- second longer; Retry-After tells when the oldest counter needed leaves.
CREATE TABLE {schema}.tokenmeter_rate_slots (
    key    text COLLATE "C" NOT NULL,
    slot   bigint NOT NULL,
    amount bigint NOT NULL,
    CONSTRAINT tokenmeter_rate_slots_pkey PRIMARY KEY (key, slot)
);
CREATE INDEX tokenmeter_rate_slots_slot_idx ON {schema}.tokenmeter_rate_slots (slot);

-- Token reservations not yet settled: the settle deletes the row and moves the difference between
-- the estimate and what the call used into the counter of the reservation's second, so a settle
-- written twice finds nothing the second time. Rows never settled (an instance died) are swept.
CREATE TABLE {schema}.tokenmeter_rate_open (
    key    text COLLATE "C" NOT NULL,
    id     uuid        NOT NULL,
    slot   bigint      NOT NULL,
    amount bigint      NOT NULL,
    at     timestamptz NOT NULL,
    CONSTRAINT tokenmeter_rate_open_pkey PRIMARY KEY (key, id)
);
CREATE INDEX tokenmeter_rate_open_at_idx ON {schema}.tokenmeter_rate_open (at);

-- The last minute of the 0005 windows carries over.
INSERT INTO {schema}.tokenmeter_rate_slots (key, slot, amount)
SELECT e.key, floor(extract(epoch FROM e.at))::bigint, sum(e.amount)::bigint
  FROM {schema}.tokenmeter_rate_entries e
 GROUP BY 1, 2;
INSERT INTO {schema}.tokenmeter_rate_open (key, id, slot, amount, at)
SELECT e.key, e.id, floor(extract(epoch FROM e.at))::bigint, e.amount, e.at
  FROM {schema}.tokenmeter_rate_entries e
 WHERE e.key LIKE 'tokens/%';

DROP FUNCTION {schema}.tokenmeter_check_limits(timestamptz, interval, text, uuid, bigint, bigint, text, uuid, bigint, text, uuid, date, numeric, bigint, timestamptz, timestamptz);
DROP FUNCTION {schema}.tokenmeter_settle_limits(uuid[], numeric[], bigint[], timestamptz[], uuid[], uuid[], timestamptz[], text[], uuid[], bigint[]);
DROP FUNCTION {schema}.tokenmeter_rate_acquire(text, uuid, timestamptz, interval, bigint, bigint, boolean);
DROP FUNCTION {schema}.tokenmeter_budget_reserve(uuid, text, date, numeric, bigint, timestamptz, timestamptz);
DROP TABLE {schema}.tokenmeter_rate_entries;

