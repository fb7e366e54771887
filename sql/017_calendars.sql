-- Working-day calendars (issue 25): each row is one version of one calendar,
-- appended and never changed, so the table is its own audit trail (who loaded
-- which content when). A deadline counted in working days names the
-- (id, version) it used, and that version stays readable.
CREATE TABLE calendars (
    id          text NOT NULL CHECK (id ~ '^[a-z0-9_-]{1,63}$'),
    version     integer NOT NULL CHECK (version > 0),
    document    jsonb NOT NULL CHECK (document->>'id' = id),
    sha256      bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by text NOT NULL,
    PRIMARY KEY (id, version)
);

-- The shipped calendar: deploy/calendars/cn-mainland.json (tests/api/
-- test_calendars.py checks that the two agree).
INSERT INTO calendars (id, version, document, sha256, recorded_by)
SELECT 'cn-mainland', 1, d, sha256(convert_to(d::text, 'UTF8')), 'migration 017'
  FROM (SELECT $cal$
{
 "id": "cn-mainland",
 "name": "中国大陆法定节假日 (Mainland China public holidays)",
 "time_zone": "Asia/Shanghai",
 "source": "State Council General Office notices (国务院办公厅关于节假日安排的通知): 2025 https://www.gov.cn/zhengce/zhengceku/202411/content_6986383.htm ; 2026 https://www.gov.cn/zhengce/zhengceku/202511/content_7047091.htm ; dates as transcribed by github.com/NateScarlet/holiday-cn (commit d4e53bf, 2026-08-07)",
 "retrieved": "2026-12-06",
 "years": {
  "2025": {
   "holidays": ["2025-01-01", "2025-01-28", "2025-01-29", "2025-01-30", "2025-01-31", "2025-02-01", "2025-02-02", "2025-02-03", "2025-02-04", "2025-04-04", "2025-04-05", "2025-04-06", "2025-05-01", "2025-05-02", "2025-05-03", "2025-05-04", "2025-05-05", "2025-05-31", "2025-06-01", "2025-06-02", "2025-10-01", "2025-10-02", "2025-10-03", "2025-10-04", "2025-10-05", "2025-10-06", "2025-10-07", "2025-10-08"],
   "working_days": ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]
  },
  "2026": {
   "holidays": ["2026-01-01", "2026-01-02", "2026-01-03", "2026-02-15", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20", "2026-02-21", "2026-02-22", "2026-02-23", "2026-04-04", "2026-04-05", "2026-04-06", "2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05", "2026-06-19", "2026-06-20", "2026-06-21", "2026-09-25", "2026-09-26", "2026-09-27", "2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05", "2026-10-06", "2026-10-07"],
   "working_days": ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
  }
 }
}
$cal$::jsonb AS d) s;

-- The runtime role reads calendars and appends versions; it may not change
-- one. Wraps the grants of the migrations before this one rather than
-- restating them.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_017;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_017(r);
    EXECUTE format('GRANT SELECT, INSERT ON calendars TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_017(name) FROM PUBLIC;

-- A deadline counted in working days keeps how many, the calendar version it
-- was counted on and whether that calendar lacked a year it needed (then
-- those days counted Monday to Friday); a span leaves the four NULL.
ALTER TABLE case_deadlines ADD COLUMN working_days integer CHECK (working_days > 0),
                           ADD COLUMN calendar_id text,
                           ADD COLUMN calendar_version integer,
                           -- a counted day lay in a year no schedule covers
                           ADD COLUMN calendar_incomplete boolean,
                           ADD CONSTRAINT case_deadlines_calendar_ck
                               CHECK ((working_days IS NULL) = (calendar_id IS NULL)
                                  AND (calendar_id IS NULL) = (calendar_version IS NULL)
                                  AND (calendar_id IS NULL) = (calendar_incomplete IS NULL));

-- One deadline as every read shows it (the case reads, the replies of the
-- writes that arm deadlines).
CREATE FUNCTION arbiter_deadline_json(d case_deadlines) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'name', d.name, 'due_at', arbiter_ts(d.due_at),
        'on_expiry', d.on_expiry, 'overdue', d.due_at <= statement_timestamp(),
        'working_days', d.working_days,
        'calendar', CASE WHEN d.calendar_id IS NOT NULL THEN
            json_build_object('id', d.calendar_id, 'version', d.calendar_version,
                              'calendar_incomplete', d.calendar_incomplete) END)
$$;

CREATE OR REPLACE FUNCTION arbiter_deadlines_json(case_id text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(arbiter_deadline_json(d) ORDER BY d.due_at, d.name),
                            '[]'::json)
              FROM case_deadlines d WHERE d.case_id = arbiter_deadlines_json.case_id);
END $$;
