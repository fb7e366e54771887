-- Deadlines decided by the clock: a deadline is enforced at its due_at,
-- whoever gets there first (the scheduler or a request on the case).
--
-- acted_version: the version the last change by anyone but the scheduler
-- left the case at. A client that read version N may still act with
-- If-Match N when every change since was an expiry (the clock's, which it
-- could foresee from due_at); its request is then judged against the state
-- the expiry made. NULL (cases from before this migration): If-Match must
-- match the version exactly, as before.
ALTER TABLE cases ADD COLUMN acted_version integer;

-- Reads tell the truth: a deadline past its due_at whose expiry is not yet
-- written says so. statement_timestamp(): one instant for the whole read,
-- so a case's flags and its overdue deadline agree.
CREATE OR REPLACE FUNCTION arbiter_deadlines_json(case_id text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(json_build_object(
               'name', d.name, 'due_at', arbiter_ts(d.due_at),
               'on_expiry', d.on_expiry, 'overdue', d.due_at <= statement_timestamp())
               ORDER BY d.due_at, d.name), '[]'::json)
              FROM case_deadlines d WHERE d.case_id = arbiter_deadlines_json.case_id);
END $$;

-- The earliest deadline of a case that is due and not yet applied, or NULL:
-- the read paths show the case as that expiry will leave it.
CREATE FUNCTION arbiter_overdue(case_id text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT d.name FROM case_deadlines d
             WHERE d.case_id = arbiter_overdue.case_id AND d.due_at <= statement_timestamp()
             ORDER BY d.due_at, d.name LIMIT 1);
END $$;

-- An expiry's event data carries fired_at: null from the service, filled
-- here with the database's clock at the write, the instant the expiry took
-- effect (the event's `at` is its transaction's start).
CREATE FUNCTION arbiter_fired(data jsonb) RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN data ? 'fired_at'
                THEN data || jsonb_build_object('fired_at', arbiter_ts(clock_timestamp()))
                ELSE coalesce(data, '{}'::jsonb) END
$$;
