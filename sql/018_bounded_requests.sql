-- Request statements whose work does not grow with the data (issue 21).
--
-- Bounded risk signals (issue 21). R-RISK-SAME-TEXT asks whether at least
-- max_same_text_other_shops_30d + 1 other shops got the same description in
-- 30 days. Counted over cases, that read every case with the text: canned
-- texts ("尺码不合适") are sent by the thousand a day, and one hot shop can
-- hold any number of them, so even a capped DISTINCT had no bound. One row
-- per (text, day, shop), written by the create (ON CONFLICT DO NOTHING, so
-- only a day's first case of a text at a shop writes), bounds it: a shop
-- has at most 31 rows in the window, so the first 31 * k rows newest first
-- hold k distinct other shops whenever k exist (store.c, ST_HISTORY). Rows
-- older than 31 days are pruned by the housekeeping run.
CREATE TABLE text_shop_days (
    description_hash text NOT NULL,
    day              date NOT NULL,
    shop_id          text NOT NULL,
    PRIMARY KEY (description_hash, day, shop_id)
);
INSERT INTO text_shop_days (description_hash, day, shop_id)
SELECT DISTINCT description_hash, (created_at AT TIME ZONE 'UTC')::date, shop_id
  FROM cases WHERE created_at > now() - interval '31 days';
CREATE INDEX text_shop_days_day_idx ON text_shop_days (day);

-- Only the history read it; every create paid for it.
DROP INDEX cases_description_hash_idx;

-- 015's and 017's grants (checkpoints, calendars) and text_shop_days: read, append, and delete what
-- housekeeping prunes.
CREATE OR REPLACE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF r = current_user THEN
        RAISE EXCEPTION 'runtime role % is the migrating role: the runtime role must own nothing', r;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        RAISE EXCEPTION 'runtime role % does not exist', r;
    END IF;
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
    EXECUTE format('GRANT SELECT ON schema_migrations, cases, case_deadlines, case_events,'
                   ' idempotency_keys, api_keys, policies, sku_flags, checkpoints,'
                   ' checkpoint_leaves, text_shop_days, calendars TO %I', r);
    EXECUTE format('GRANT INSERT ON cases, case_deadlines, case_events, idempotency_keys,'
                   ' api_keys, policies, sku_flags, checkpoints, checkpoint_leaves,'
                   ' text_shop_days, calendars TO %I', r);
    EXECUTE format('GRANT UPDATE (state, outcome, version, updated_at, offer_cents,'
                   ' agreement_pending, refund_cents, evidence, manual_review, acted_version,'
                   ' counter_cents, offer_rounds, agreement_cents) ON cases TO %I', r);
    EXECUTE format('GRANT UPDATE, DELETE ON case_deadlines, idempotency_keys TO %I', r);
    EXECUTE format('GRANT DELETE ON text_shop_days TO %I', r);
    EXECUTE format('GRANT UPDATE (last_used_at, revoked_at) ON api_keys TO %I', r);
    EXECUTE format('GRANT UPDATE (activated_at) ON policies TO %I', r);
    EXECUTE format('GRANT UPDATE (cleared_at, cleared_by) ON sku_flags TO %I', r);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;

-- A shop key's event feed: each shop's events in feed order (ST_FEED).
CREATE INDEX case_events_shop_feed_idx ON case_events (shop_id, xid, id);

-- GET /v1/cases?kind=: a rare kind walked the newest-first index of every
-- case to find 51.
CREATE INDEX cases_kind_idx ON cases (kind, created_at DESC, id DESC);

-- The major-complaints desk queue: its open cases only.
CREATE INDEX cases_major_open_idx ON cases (created_at)
    WHERE kind = 'complaint' AND decision->>'severity' = 'major'
      AND state NOT IN ('refunded', 'closed');

-- A shop's cases of one buyer (a seller key's ?buyer_id=): neither the
-- shop's range nor the buyer's is bounded for a busy buyer at a big shop.
CREATE INDEX cases_shop_buyer_idx ON cases (shop_id, buyer_id, created_at DESC, id DESC);
