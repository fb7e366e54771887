-- GET /v1/stats from counters the writes maintain (issue 21): its read
-- grows with days x shops in scope x buckets, never with cases.
--
-- The case and event triggers only append to stats_delta: a plain INSERT
-- with no index and no row lock, so hot shops (and the all-shops row every
-- write touches) never serialize creates, and no two writers can deadlock
-- on counter rows locked in different orders. The service's housekeeping
-- loop (arbiter_stats_compact) folds the deltas into stats_counts; a read
-- sums both, so it is exact whenever it runs, and the deltas it scans are
-- only those of the last few seconds.
--
-- Keys: the UTC day the case was created (every counter belongs to the case
-- it counts, as the stats count "the cases created in a window"), the shop
-- ('' counts all shops, for a key without a shop scope; written by the fold,
-- never in stats_delta), a metric and its label:
--   case     kind|state|outcome   each case once, moved on every state change
--   sku      the SKU              quality cases (quality_defect, not_as_described, safety_hazard)
--   resol    duration bucket      closed/refunded cases: updated_at - created_at
--   first    duration bucket      the first seller/agent event after the open
--   auto     ''                   refunds instructed without a person (n, cents)
--   breach   ''                   sla.breached events
--   open_h   YYYY-MM-DDTHH        cases opened in that UTC hour
--   refund_h YYYY-MM-DDTHH|date   refund.instructed events in that UTC hour, of
--                                 the cases created on that date; keyed by the
--                                 event's day (the hourly trend reads its last 24 h)
-- Duration buckets are log-scale, ten per decade (arbiter_stats_bucket).

CREATE TABLE stats_counts (
    shop_id text NOT NULL,
    day     date NOT NULL,
    metric  text NOT NULL,
    label   text NOT NULL,
    n       bigint NOT NULL,
    cents   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (shop_id, metric, day, label)
);
-- top_quality_skus: each day's most frequent SKUs, then the window's count
-- of a few of them (src/api_desk.c); only the folding pays these.
CREATE INDEX stats_counts_sku_day_idx ON stats_counts (shop_id, day, n DESC, label)
    WHERE metric = 'sku';
CREATE INDEX stats_counts_sku_label_idx ON stats_counts (shop_id, label, day) INCLUDE (n)
    WHERE metric = 'sku';

CREATE TABLE stats_delta (
    shop_id text NOT NULL,
    day     date NOT NULL,
    metric  text NOT NULL,
    label   text NOT NULL,
    n       bigint NOT NULL,
    cents   bigint NOT NULL DEFAULT 0
);
-- emptied every few seconds: its dead rows must not pile up between the
-- default autovacuum's visits
ALTER TABLE stats_delta SET (autovacuum_vacuum_scale_factor = 0,
                             autovacuum_vacuum_threshold = 5000);

-- Bucket 0 holds [0, 1 s); bucket b >= 1 holds [10^((b-1)/10), 10^(b/10)) s.
CREATE FUNCTION arbiter_stats_bucket(s float8) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN s IS NULL OR s < 1 THEN 0
                ELSE least(120, 1 + floor(10 * log(s))::int) END
$$;

-- A bucket's geometric middle: within 12.2 % of any value in it (0.5 s for
-- bucket 0).
CREATE FUNCTION arbiter_stats_mid(b int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN b = 0 THEN 0.5 ELSE power(10::float8, (b - 0.5) / 10.0) END
$$;

-- percentile_cont(p) of a histogram (buckets ascending, their counts):
-- the exact value interpolates between two order statistics; this
-- interpolates between their buckets' middles with the same weight, so it
-- is within 12.2 % + 0.5 s of the exact value.
CREATE FUNCTION arbiter_stats_pct(bs int[], ns bigint[], p float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    total bigint := 0;
    cum bigint := 0;
    r float8;
    kf bigint;
    kc bigint;
    mf float8;
    mc float8;
BEGIN
    FOR i IN 1 .. coalesce(array_length(ns, 1), 0) LOOP
        total := total + greatest(ns[i], 0);
    END LOOP;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    r := p * (total - 1);
    kf := floor(r);
    kc := ceil(r);
    FOR i IN 1 .. array_length(ns, 1) LOOP
        CONTINUE WHEN ns[i] <= 0;
        IF mf IS NULL AND kf < cum + ns[i] THEN
            mf := arbiter_stats_mid(bs[i]);
        END IF;
        IF kc < cum + ns[i] THEN
            mc := arbiter_stats_mid(bs[i]);
            EXIT;
        END IF;
        cum := cum + ns[i];
    END LOOP;
    RETURN mf + (r - kf) * (mc - mf);
END $$;

-- What one case row contributes: moved, on an update, by subtracting the
-- old row's and adding the new one's (the create's trigger writes the same
-- rows inline).
CREATE FUNCTION arbiter_stats_case_rows(c cases) RETURNS TABLE (day date, metric text, label text)
LANGUAGE sql STABLE AS $$
    SELECT (c.created_at AT TIME ZONE 'UTC')::date, x.metric, x.label
      FROM (VALUES
            ('case', c.kind || '|' || c.state || '|' || coalesce(c.outcome, '')),
            ('open_h', to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')),
            (CASE WHEN c.reason IN ('quality_defect', 'not_as_described', 'safety_hazard')
                  THEN 'sku' END, c.sku),
            (CASE WHEN c.state IN ('refunded', 'closed') THEN 'resol' END,
             arbiter_stats_bucket(extract(epoch FROM c.updated_at - c.created_at)::float8)::text))
           AS x(metric, label)
     WHERE x.metric IS NOT NULL
$$;

CREATE FUNCTION arbiter_stats_hour(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')
$$;

-- The triggers write each shop's deltas only; the fold adds the all-shops
-- ('') rows, and a read without a shop scope sums every shop's deltas.
-- A create is one INSERT of 2 or 3 rows, without a function call per row:
-- 13 us of backend CPU on a bare 46 us case insert (a first version through
-- arbiter_stats_case_rows, writing the all-shops rows too, took 20 us).
CREATE FUNCTION arbiter_stats_on_case() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d date := (NEW.created_at AT TIME ZONE 'UTC')::date;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_delta (shop_id, day, metric, label, n)
        SELECT NEW.shop_id, d, x.metric, x.label, 1
          FROM (VALUES
                ('case', NEW.kind || '|' || NEW.state || '|' || coalesce(NEW.outcome, '')),
                ('open_h', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')),
                (CASE WHEN NEW.reason IN ('quality_defect', 'not_as_described', 'safety_hazard')
                      THEN 'sku' END, NEW.sku),
                (CASE WHEN NEW.state IN ('refunded', 'closed') THEN 'resol' END,
                 arbiter_stats_bucket(extract(epoch FROM NEW.updated_at - NEW.created_at)::float8)::text))
               AS x(metric, label)
         WHERE x.metric IS NOT NULL;
    ELSE
        INSERT INTO stats_delta (shop_id, day, metric, label, n)
        SELECT r.shop, r.day, r.metric, r.label, sum(r.n)
          FROM (SELECT NEW.shop_id, x.*, 1 FROM arbiter_stats_case_rows(NEW) x
                UNION ALL
                SELECT OLD.shop_id, x.*, -1 FROM arbiter_stats_case_rows(OLD) x)
               AS r(shop, day, metric, label, n)
         GROUP BY 1, 2, 3, 4
        HAVING sum(r.n) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION arbiter_stats_on_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    opened timestamptz;
BEGIN
    SELECT created_at INTO opened FROM cases WHERE id = NEW.case_id;
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

-- Row triggers, each with a WHEN that keeps the rest of the writes free:
-- a create appends 2 or 3 delta rows in one INSERT; an update that moves
-- no counter (a note, an evidence upload, a pause) runs no trigger at all.
-- Creating them locks out the writes until this migration commits, so the
-- backfill below misses none.
CREATE TRIGGER cases_stats_insert AFTER INSERT ON cases
    FOR EACH ROW EXECUTE FUNCTION arbiter_stats_on_case();
CREATE TRIGGER cases_stats_update AFTER UPDATE ON cases
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.outcome IS DISTINCT FROM NEW.outcome
          OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.reason IS DISTINCT FROM NEW.reason
          OR OLD.sku IS DISTINCT FROM NEW.sku
          -- not the service's writes: a repair, a test's backdating
          OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.shop_id IS DISTINCT FROM NEW.shop_id
          OR (NEW.state IN ('refunded', 'closed') AND OLD.updated_at IS DISTINCT FROM NEW.updated_at))
    EXECUTE FUNCTION arbiter_stats_on_case();
CREATE TRIGGER case_events_stats AFTER INSERT ON case_events
    FOR EACH ROW
    WHEN (NEW.action IN ('refund.instructed', 'sla.breached')
          OR (NEW.seq > 1 AND NEW.actor_role IN ('seller', 'agent')))
    EXECUTE FUNCTION arbiter_stats_on_event();

-- Folds up to lim deltas into their shops' counters and the all-shops
-- ones; one caller at a time (the others return 0 at once). Returns how
-- many deltas it folded.
CREATE FUNCTION arbiter_stats_compact(lim int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
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
           SET n = stats_counts.n + EXCLUDED.n, cents = stats_counts.cents + EXCLUDED.cents)
    SELECT count(*) INTO folded FROM d;
    RETURN folded;
END $$;

-- The counters recomputed from the cases and events themselves: run here
-- on the cases a database already holds, by tests/bench/shaped.sh after
-- its trigger-less load, and by hand after a repair. EXCLUSIVE on cases
-- leaves only plain reads: every case write, and every event insert (its
-- foreign key's row lock on the case), waits until the new rows commit.
CREATE FUNCTION arbiter_stats_backfill() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    rows bigint;
BEGIN
    LOCK TABLE cases IN EXCLUSIVE MODE;
    DELETE FROM stats_delta;
    DELETE FROM stats_counts;
    INSERT INTO stats_counts (shop_id, day, metric, label, n, cents)
    SELECT s.shop, x.day, x.metric, x.label, sum(x.n), sum(x.cents)
      FROM (SELECT c.shop_id, r.day, r.metric, r.label, 1::bigint AS n, 0::bigint AS cents
              FROM cases c, arbiter_stats_case_rows(c) r
            UNION ALL
            SELECT c.shop_id, coalesce(m.day, (c.created_at AT TIME ZONE 'UTC')::date), m.metric,
                   m.label, 1, m.cents
              FROM case_events e JOIN cases c ON c.id = e.case_id,
                   LATERAL (VALUES
                     (CASE WHEN e.action = 'refund.instructed' THEN 'refund_h' END,
                      arbiter_stats_hour(e.at) || '|' || ((c.created_at AT TIME ZONE 'UTC')::date)::text,
                      0::bigint, (e.at AT TIME ZONE 'UTC')::date),
                     (CASE WHEN e.action = 'refund.instructed'
                            AND e.data->>'reason' IN ('auto_approve', 'seller_silent') THEN 'auto' END,
                      '', coalesce((e.data->>'total_cents')::bigint, 0), NULL::date),
                     (CASE WHEN e.action = 'sla.breached' THEN 'breach' END, '', 0, NULL))
                   AS m(metric, label, cents, day)
             WHERE e.action IN ('refund.instructed', 'sla.breached') AND m.metric IS NOT NULL
            UNION ALL
            SELECT c.shop_id, (c.created_at AT TIME ZONE 'UTC')::date, 'first',
                   arbiter_stats_bucket(extract(epoch FROM f.at - c.created_at)::float8)::text, 1, 0
              FROM (SELECT e.case_id, min(e.at) AS at FROM case_events e
                     WHERE e.seq > 1 AND e.actor_role IN ('seller', 'agent')
                     GROUP BY e.case_id) f
              JOIN cases c ON c.id = f.case_id) x,
           LATERAL (VALUES (x.shop_id), ('')) AS s(shop)
     GROUP BY 1, 2, 3, 4;
    GET DIAGNOSTICS rows = ROW_COUNT;
    RETURN rows;
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_stats_backfill() FROM PUBLIC;

SELECT arbiter_stats_backfill();

-- The runtime role's writes append deltas (through the triggers), its
-- housekeeping folds them, its reads sum both.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_026;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_026(r);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON stats_delta TO %I', r);
    EXECUTE format('GRANT SELECT, INSERT ON stats_counts TO %I', r);
    EXECUTE format('GRANT UPDATE (n, cents) ON stats_counts TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_026(name) FROM PUBLIC;
