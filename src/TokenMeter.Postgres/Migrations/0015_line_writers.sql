-- TokenMeter 0015: each row of usage_user_endpoint_month names the transaction that last wrote it.
--
-- The statements of the month in progress read every user's lines of the month (one row per user, endpoint and model:
-- tens of thousands). Migration 0014's day versions let a reader keep a finished month's lines in memory, but under
-- ingest every fold moves today's version, so the month in progress was read whole again on every request, although a
-- fold changes only the lines of the users whose calls it folds. written_by is the id of the transaction that inserted
-- or last updated a row (pg_current_xact_id(): the 64-bit id, which never wraps around): the default on insert, and
-- set again by the fold's update. A reader keeps the month's lines with the snapshot it read them in
-- (pg_current_snapshot()), and reads again only the lines whose writer that snapshot did not see
-- (NOT pg_visible_in_snapshot(written_by, snapshot)): exactly the lines inserted or updated since, whatever instance
-- wrote them and in whatever order their transactions committed.
--
-- The column is added with a stable default, which PostgreSQL evaluates once here and stores in the catalog: no row is
-- rewritten, and every existing row reads as written by this migration's transaction (seen by any later snapshot).
ALTER TABLE {schema}.usage_user_endpoint_month ADD COLUMN written_by xid8 NOT NULL DEFAULT pg_current_xact_id();

-- The fold sets written_by itself (one more column in its update). Any other update that does not (an instance of an
-- older version still folding during an upgrade, a correction made by hand) gets it from this trigger: its WHEN clause is
-- evaluated without calling the function, so an update that sets written_by costs no function call per row.
CREATE FUNCTION {schema}.tokenmeter_line_written()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.written_by := pg_current_xact_id();
    RETURN NEW;
END
$fn$;

CREATE TRIGGER usage_user_endpoint_month_written BEFORE UPDATE ON {schema}.usage_user_endpoint_month
    FOR EACH ROW WHEN (NEW.written_by = OLD.written_by) EXECUTE FUNCTION {schema}.tokenmeter_line_written();

-- The store never deletes a line; a statement that does (a correction by hand, a rebuild) or that empties the table
-- counts one more in usage_line_removals (statement-level triggers, so the fold, which only inserts and updates, pays
-- nothing), and a reader whose kept lines were read at another count reads the month whole again.
CREATE TABLE {schema}.usage_line_removals (
    removals bigint NOT NULL
);

INSERT INTO {schema}.usage_line_removals (removals) VALUES (0);

CREATE FUNCTION {schema}.tokenmeter_count_line_removals()
RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE {schema}.usage_line_removals SET removals = removals + 1;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER usage_user_endpoint_month_deleted AFTER DELETE ON {schema}.usage_user_endpoint_month
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_count_line_removals();
CREATE TRIGGER usage_user_endpoint_month_truncated AFTER TRUNCATE ON {schema}.usage_user_endpoint_month
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tokenmeter_count_line_removals();
