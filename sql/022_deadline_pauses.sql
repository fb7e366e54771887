-- Issue 25, pauses: a deadline paused while the case waits on the platform
-- (e.g. arbitration asked the other party for evidence) keeps its remaining
-- time and resumes with it. A paused deadline is due at arbiter_never(),
-- so every reader that asks "is it due?" (the scheduler's refill and claim,
-- the request path's clock rule, the overdue and near-deadline queues)
-- passes it by with no change to its query. ('infinity' would do the same
-- but breaks case_deadlines_short_idx's predicate, due_at - armed_at, which
-- cannot subtract it.) Resuming sets due_at to the resume time plus the
-- remaining time and re-arms it (armed_at and armed_version, as any new
-- arming; the scheduler's short-arming scan picks a near one up).
CREATE FUNCTION arbiter_never() RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT '9999-12-31 00:00:00+00'::timestamptz $$;

ALTER TABLE case_deadlines ADD COLUMN paused_at timestamptz,
                           ADD COLUMN remaining interval,
                           ADD CONSTRAINT case_deadlines_paused_ck
                               CHECK ((paused_at IS NULL) = (remaining IS NULL)
                                  AND (paused_at IS NULL) = (due_at < arbiter_never()));

-- One deadline as every read shows it, now with "paused" (and no due_at)
-- while it is.
CREATE OR REPLACE FUNCTION arbiter_deadline_json(d case_deadlines) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'name', d.name, 'due_at', CASE WHEN d.paused_at IS NULL THEN arbiter_ts(d.due_at) END,
        'on_expiry', d.on_expiry, 'overdue', d.due_at <= statement_timestamp(),
        'working_days', d.working_days,
        'calendar', CASE WHEN d.calendar_id IS NOT NULL THEN
            json_build_object('id', d.calendar_id, 'version', d.calendar_version,
                              'calendar_incomplete', d.calendar_incomplete) END,
        'paused', CASE WHEN d.paused_at IS NOT NULL THEN
            json_build_object('paused_at', arbiter_ts(d.paused_at),
                              'remaining_ms', floor(extract(epoch FROM d.remaining) * 1000)::bigint) END)
$$;
