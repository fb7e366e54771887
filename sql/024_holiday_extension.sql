-- Issue 25, holiday extension: a deadline given as a span whose due instant
-- falls in a long holiday of the calendar moves past it (policy
-- "holiday_extension"); the deadline keeps by how many days, and the
-- calendar id and version it was counted on (calendar_id, calendar_version).
ALTER TABLE case_deadlines ADD COLUMN holiday_extended_days integer
    CHECK (holiday_extended_days > 0);
-- 017's rule, widened: a calendar is named by a working-day deadline or by
-- an extended one (never both), with its version and completeness.
ALTER TABLE case_deadlines DROP CONSTRAINT case_deadlines_calendar_ck,
    ADD CONSTRAINT case_deadlines_calendar_ck
        CHECK ((working_days IS NOT NULL OR holiday_extended_days IS NOT NULL)
                   = (calendar_id IS NOT NULL)
           AND NOT (working_days IS NOT NULL AND holiday_extended_days IS NOT NULL)
           AND (calendar_id IS NULL) = (calendar_version IS NULL)
           AND (calendar_id IS NULL) = (calendar_incomplete IS NULL));

-- 022's deadline JSON, with holiday_extended_days.
CREATE OR REPLACE FUNCTION arbiter_deadline_json(d case_deadlines) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'name', d.name, 'due_at', CASE WHEN d.paused_at IS NULL THEN arbiter_ts(d.due_at) END,
        'on_expiry', d.on_expiry, 'overdue', d.due_at <= statement_timestamp(),
        'working_days', d.working_days,
        'holiday_extended_days', d.holiday_extended_days,
        'calendar', CASE WHEN d.calendar_id IS NOT NULL THEN
            json_build_object('id', d.calendar_id, 'version', d.calendar_version,
                              'calendar_incomplete', d.calendar_incomplete) END,
        'paused', CASE WHEN d.paused_at IS NOT NULL THEN
            json_build_object('paused_at', arbiter_ts(d.paused_at),
                              'remaining_ms', floor(extract(epoch FROM d.remaining) * 1000)::bigint) END)
$$;
