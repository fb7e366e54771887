-- GET /v1/stats's open half from gauges the writes maintain (issue 21):
-- like sql/026's counters, its read grows with shops in scope x hour
-- buckets, never with cases.
--
-- Two more metrics in stats_delta / stats_counts, both on the fixed day
-- 1970-01-01 (a gauge belongs to no window; no window read asks for their
-- metric names):
--   open_q  manual_review|major_complaints|in_arbitration|breached
--           the open cases (state not refunded/closed) in that queue
--   due_h   YYYY-MM-DDTHH   the cases whose next unpaused deadline falls
--           in that UTC hour
-- The read sums the full hours from the buckets and counts the one partial
-- hour exactly from case_deadlines_due_idx (src/api_desk.c).
--
-- A case's next deadline cannot be moved by OLD/NEW differences alone: one
-- statement may change several deadlines of a case (an action's CTEs
-- delete some and upsert others), and every row trigger of it runs after
-- the whole statement, seeing only the final rows, so none can tell the
-- case's minimum before the statement. stats_next_due holds
-- the hour each case is counted in; a deadline trigger recomputes the
-- case's minimum from its few rows (primary key range) and moves the
-- bucket only when that hour differs from the recorded one, so the first
-- row trigger of a statement moves it and the others find nothing to do.
-- Every writer of a case's deadlines holds the case's row lock (the create
-- inserts it, an action or expiry updates it, a pause locks it FOR UPDATE),
-- so two writers never record the same case at once.
--
-- The buckets do not look at the case's state: a refunded or closed case
-- has no deadlines (the state machine arms none there, the transition into
-- it deletes them in the same statement, and arbiter verify checks it), so
-- counting every case with an unpaused deadline counts the open ones.
-- The breached gauge needs both the case (open?) and its events: the event
-- trigger reads the case's state, the case trigger (when the case opens or
-- closes) its events; a breach is a STAY transition, so no statement both
-- adds a case's first breach and opens or closes it.

CREATE TABLE stats_next_due (
    case_id text PRIMARY KEY,
    shop_id text NOT NULL,
    hour    text NOT NULL
);

-- What one case row contributes to the open_q gauges (breached: whether
-- the case has an sla.breached event, when the caller looked).
CREATE FUNCTION arbiter_stats_gauge_rows(c cases, breached boolean)
RETURNS TABLE (day date, metric text, label text)
LANGUAGE sql STABLE AS $$
    SELECT DATE '1970-01-01', 'open_q', x.label
      FROM (VALUES ('manual_review', c.manual_review),
                   ('major_complaints', c.kind = 'complaint' AND c.decision->>'severity' = 'major'),
                   ('in_arbitration', c.state = 'in_arbitration'),
                   ('breached', breached)) AS x(label, counted)
     WHERE x.counted AND c.state NOT IN ('refunded', 'closed')
$$;

-- The create's one INSERT now also carries its open_q rows (no row, no
-- cost, for a case in no queue). The update subtracts the old row's
-- contribution and adds the new one's; the breached flag is looked up only
-- when the case opens, closes or changes shop (otherwise its old and new
-- contributions are the same and cancel).
CREATE OR REPLACE FUNCTION arbiter_stats_on_case() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d date := (NEW.created_at AT TIME ZONE 'UTC')::date;
    breached boolean := false;
    h text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_delta (shop_id, day, metric, label, n)
        SELECT NEW.shop_id, coalesce(x.day, d), x.metric, x.label, 1
          FROM (VALUES
                ('case', NEW.kind || '|' || NEW.state || '|' || coalesce(NEW.outcome, ''), NULL::date),
                ('open_h', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24'), NULL),
                (CASE WHEN NEW.reason IN ('quality_defect', 'not_as_described', 'safety_hazard')
                      THEN 'sku' END, NEW.sku, NULL),
                (CASE WHEN NEW.state IN ('refunded', 'closed') THEN 'resol' END,
                 arbiter_stats_bucket(extract(epoch FROM NEW.updated_at - NEW.created_at)::float8)::text,
                 NULL),
                (CASE WHEN NEW.manual_review AND NEW.state NOT IN ('refunded', 'closed')
                      THEN 'open_q' END, 'manual_review', DATE '1970-01-01'),
                (CASE WHEN NEW.kind = 'complaint' AND NEW.decision->>'severity' = 'major'
                       AND NEW.state NOT IN ('refunded', 'closed')
                      THEN 'open_q' END, 'major_complaints', DATE '1970-01-01'),
                (CASE WHEN NEW.state = 'in_arbitration' THEN 'open_q' END, 'in_arbitration',
                 DATE '1970-01-01'))
               AS x(metric, label, day)
         WHERE x.metric IS NOT NULL;
    ELSE
        IF (OLD.state IN ('refunded', 'closed')) <> (NEW.state IN ('refunded', 'closed'))
           OR OLD.shop_id <> NEW.shop_id THEN
            breached := EXISTS (SELECT 1 FROM case_events e
                                 WHERE e.case_id = NEW.id AND e.action = 'sla.breached');
        END IF;
        INSERT INTO stats_delta (shop_id, day, metric, label, n)
        SELECT r.shop, r.day, r.metric, r.label, sum(r.n)
          FROM (SELECT NEW.shop_id, x.*, 1 FROM arbiter_stats_case_rows(NEW) x
                UNION ALL
                SELECT OLD.shop_id, x.*, -1 FROM arbiter_stats_case_rows(OLD) x
                UNION ALL
                SELECT NEW.shop_id, x.*, 1 FROM arbiter_stats_gauge_rows(NEW, breached) x
                UNION ALL
                SELECT OLD.shop_id, x.*, -1 FROM arbiter_stats_gauge_rows(OLD, breached) x)
               AS r(shop, day, metric, label, n)
         GROUP BY 1, 2, 3, 4
        HAVING sum(r.n) <> 0;
        -- a repair moving the case to another shop moves its deadline hour
        IF OLD.shop_id <> NEW.shop_id THEN
            UPDATE stats_next_due SET shop_id = NEW.shop_id WHERE case_id = NEW.id
            RETURNING hour INTO h;
            IF h IS NOT NULL THEN
                INSERT INTO stats_delta (shop_id, day, metric, label, n)
                VALUES (OLD.shop_id, DATE '1970-01-01', 'due_h', h, -1),
                       (NEW.shop_id, DATE '1970-01-01', 'due_h', h, 1);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- 026's update trigger, with the columns the open_q gauges read
DROP TRIGGER cases_stats_update ON cases;
CREATE TRIGGER cases_stats_update AFTER UPDATE ON cases
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.outcome IS DISTINCT FROM NEW.outcome
          OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.reason IS DISTINCT FROM NEW.reason
          OR OLD.sku IS DISTINCT FROM NEW.sku
          OR OLD.manual_review IS DISTINCT FROM NEW.manual_review
          OR (OLD.decision->>'severity') IS DISTINCT FROM (NEW.decision->>'severity')
          -- not the service's writes: a repair, a test's backdating
          OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.shop_id IS DISTINCT FROM NEW.shop_id
          OR (NEW.state IN ('refunded', 'closed') AND OLD.updated_at IS DISTINCT FROM NEW.updated_at))
    EXECUTE FUNCTION arbiter_stats_on_case();

-- 026's event trigger, plus the breached gauge: the case's first
-- sla.breached event (an earlier one is in the case's few breaches,
-- case_events_breached_idx), while the case is open.
CREATE OR REPLACE FUNCTION arbiter_stats_on_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    opened timestamptz;
    st text;
BEGIN
    SELECT created_at, state INTO opened, st FROM cases WHERE id = NEW.case_id;
    INSERT INTO stats_delta (shop_id, day, metric, label, n, cents)
    SELECT NEW.shop_id, coalesce(x.day, (opened AT TIME ZONE 'UTC')::date), x.metric, x.label, 1, x.cents
      FROM (VALUES
            (CASE WHEN NEW.action = 'refund.instructed' THEN 'refund_h' END,
             arbiter_stats_hour(NEW.at) || '|' || ((opened AT TIME ZONE 'UTC')::date)::text, 0::bigint,
             (NEW.at AT TIME ZONE 'UTC')::date),
            (CASE WHEN NEW.action = 'refund.instructed'
                   AND NEW.data->>'reason' IN ('auto_approve', 'seller_silent') THEN 'auto' END,
             '', coalesce((NEW.data->>'total_cents')::bigint, 0), NULL::date),
            (CASE WHEN NEW.action = 'sla.breached' THEN 'breach' END, '', 0, NULL),
            (CASE WHEN NEW.action = 'sla.breached' AND st NOT IN ('refunded', 'closed')
                   AND NOT EXISTS (SELECT 1 FROM case_events e
                                    WHERE e.case_id = NEW.case_id AND e.action = 'sla.breached'
                                      AND e.seq < NEW.seq)
                  THEN 'open_q' END, 'breached', 0, DATE '1970-01-01'),
            -- the first seller/agent answer only: an earlier one is in the
            -- case's few events (primary key range)
            (CASE WHEN NEW.seq > 1 AND NEW.actor_role IN ('seller', 'agent')
                   AND NOT EXISTS (SELECT 1 FROM case_events e
                                    WHERE e.case_id = NEW.case_id AND e.seq > 1 AND e.seq < NEW.seq
                                      AND e.actor_role IN ('seller', 'agent'))
                  THEN 'first' END,
             arbiter_stats_bucket(extract(epoch FROM NEW.at - opened)::float8)::text, 0, NULL))
           AS x(metric, label, cents, day)
     WHERE x.metric IS NOT NULL;
    RETURN NULL;
END $$;

-- Brings the case's recorded hour (and its bucket) to its current next
-- unpaused deadline; writes nothing when the hour stays. An inserted
-- deadline can only bring the minimum forward: one due in or after the
-- recorded hour changes nothing (a delete or update in the same statement
-- runs its own trigger). A create's one deadline costs 30 us of backend
-- time over 026's triggers, on a 59 us case + deadline insert (a
-- server-side loop of 5000 such statements; the same work as one statement
-- with data-modifying CTEs cost 12 us more, and a trigger that only
-- appends a delta row costs 15 us).
CREATE FUNCTION arbiter_stats_on_deadline() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cid text := CASE WHEN TG_OP = 'DELETE' THEN OLD.case_id ELSE NEW.case_id END;
    h text;
    rh text;
    rs text;
BEGIN
    LOOP
        SELECT x.hour, x.shop_id INTO rh, rs FROM stats_next_due x WHERE x.case_id = cid;
        IF TG_OP = 'INSERT' AND rh IS NOT NULL AND arbiter_stats_hour(NEW.due_at) >= rh THEN
            RETURN NULL;
        END IF;
        SELECT arbiter_stats_hour(min(d.due_at)) INTO h FROM case_deadlines d
         WHERE d.case_id = cid AND d.paused_at IS NULL;
        IF h IS NOT DISTINCT FROM rh THEN
            NULL;
        ELSIF rh IS NULL THEN
            INSERT INTO stats_next_due (case_id, shop_id, hour)
            SELECT cid, c.shop_id, h FROM cases c WHERE c.id = cid
            RETURNING shop_id INTO rs;
            INSERT INTO stats_delta (shop_id, day, metric, label, n)
            SELECT rs, DATE '1970-01-01', 'due_h', h, 1 WHERE rs IS NOT NULL;
        ELSIF h IS NULL THEN
            DELETE FROM stats_next_due WHERE case_id = cid;
            INSERT INTO stats_delta (shop_id, day, metric, label, n)
            VALUES (rs, DATE '1970-01-01', 'due_h', rh, -1);
        ELSE
            UPDATE stats_next_due SET hour = h WHERE case_id = cid;
            INSERT INTO stats_delta (shop_id, day, metric, label, n)
            VALUES (rs, DATE '1970-01-01', 'due_h', rh, -1), (rs, DATE '1970-01-01', 'due_h', h, 1);
        END IF;
        -- a deadline moved to another case (never the service's write)
        EXIT WHEN TG_OP <> 'UPDATE' OR cid = OLD.case_id;
        cid := OLD.case_id;
    END LOOP;
    RETURN NULL;
END $$;

-- A paused deadline inserted or deleted is no case's next one; a reminder
-- (reminded), a calendar note, or a re-arm to the same instant runs no
-- trigger.
CREATE TRIGGER case_deadlines_stats_insert AFTER INSERT ON case_deadlines
    FOR EACH ROW WHEN (NEW.paused_at IS NULL) EXECUTE FUNCTION arbiter_stats_on_deadline();
CREATE TRIGGER case_deadlines_stats_delete AFTER DELETE ON case_deadlines
    FOR EACH ROW WHEN (OLD.paused_at IS NULL) EXECUTE FUNCTION arbiter_stats_on_deadline();
CREATE TRIGGER case_deadlines_stats_update AFTER UPDATE ON case_deadlines
    FOR EACH ROW
    WHEN (OLD.due_at IS DISTINCT FROM NEW.due_at OR OLD.paused_at IS DISTINCT FROM NEW.paused_at
          OR OLD.case_id IS DISTINCT FROM NEW.case_id)
    EXECUTE FUNCTION arbiter_stats_on_deadline();

-- 026's fold, now deleting the counters it brought to zero: a deadline
-- hour empties once its deadlines pass, and the read of the buckets must
-- not grow with the hours gone by (a zero counter of any metric reads as
-- no row).
CREATE OR REPLACE FUNCTION arbiter_stats_compact(lim int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
    zs text[];
    zd date[];
    zm text[];
    zl text[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(2126026) THEN
        RETURN 0;
    END IF;
    WITH d AS (
        DELETE FROM stats_delta
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM stats_delta LIMIT lim))
        RETURNING shop_id, day, metric, label, n, cents),
    g AS (
        INSERT INTO stats_counts (shop_id, day, metric, label, n, cents)
        SELECT coalesce(shop_id, ''), day, metric, label, sum(n), sum(cents) FROM d
         GROUP BY GROUPING SETS ((shop_id, day, metric, label), (day, metric, label))
        ON CONFLICT (shop_id, metric, day, label) DO UPDATE
           SET n = stats_counts.n + EXCLUDED.n, cents = stats_counts.cents + EXCLUDED.cents
        RETURNING shop_id, day, metric, label, n, cents)
    SELECT (SELECT count(*) FROM d),
           array_agg(shop_id), array_agg(day), array_agg(metric), array_agg(label)
      INTO folded, zs, zd, zm, zl
      FROM g WHERE n = 0 AND cents = 0;
    -- a second statement: the first one's upserts are invisible to itself
    IF zs IS NOT NULL THEN
        DELETE FROM stats_counts k
         USING unnest(zs, zd, zm, zl) AS z(shop_id, day, metric, label)
         WHERE k.shop_id = z.shop_id AND k.metric = z.metric AND k.day = z.day
           AND k.label = z.label AND k.n = 0 AND k.cents = 0;
    END IF;
    RETURN folded;
END $$;

-- 026's backfill, then the gauges from the cases, events and deadlines
-- (the same lock: the first call takes it).
ALTER FUNCTION arbiter_stats_backfill() RENAME TO arbiter_stats_backfill_before_027;
CREATE FUNCTION arbiter_stats_backfill() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    rows bigint;
    more bigint;
BEGIN
    rows := arbiter_stats_backfill_before_027();
    DELETE FROM stats_next_due;
    INSERT INTO stats_next_due (case_id, shop_id, hour)
    SELECT d.case_id, c.shop_id, arbiter_stats_hour(min(d.due_at))
      FROM case_deadlines d JOIN cases c ON c.id = d.case_id
     WHERE d.paused_at IS NULL
     GROUP BY d.case_id, c.shop_id;
    INSERT INTO stats_counts (shop_id, day, metric, label, n, cents)
    SELECT s.shop, DATE '1970-01-01', x.metric, x.label, count(*), 0
      FROM (SELECT c.shop_id, g.metric, g.label
              FROM cases c
              LEFT JOIN (SELECT DISTINCT e.case_id FROM case_events e
                          WHERE e.action = 'sla.breached') b ON b.case_id = c.id,
                   arbiter_stats_gauge_rows(c, b.case_id IS NOT NULL) g
             WHERE c.state NOT IN ('refunded', 'closed')
            UNION ALL
            SELECT shop_id, 'due_h', hour FROM stats_next_due) x,
           LATERAL (VALUES (x.shop_id), ('')) AS s(shop)
     GROUP BY 1, 2, 3, 4;
    GET DIAGNOSTICS more = ROW_COUNT;
    RETURN rows + more;
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_stats_backfill() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_stats_backfill_before_027() FROM PUBLIC;

SELECT arbiter_stats_backfill();

-- The runtime role's deadline writes record their case's hour (through
-- the trigger); its fold deletes the counters it brought to zero.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_027;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_027(r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON stats_next_due TO %I', r);
    EXECUTE format('GRANT DELETE ON stats_counts TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_027(name) FROM PUBLIC;
