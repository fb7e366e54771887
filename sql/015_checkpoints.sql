-- Signed checkpoints (issue 27, item 2): the service folds the heads of the
-- chains that changed into a Merkle root, signs it with a key the database
-- never sees, and appends it to a log file outside the database. Here it
-- records each checkpoint's line and its leaves, so that `arbiter verify
-- --checkpoints` can recompute every signed root and compare each leaf with
-- the event row it names. Editing these rows gains an attacker nothing: a
-- changed leaf no longer gives the signed root.
CREATE TABLE checkpoints (
    no         bigint PRIMARY KEY,
    hash       bytea NOT NULL,        -- SHA-256 of the signed text: the next one's prev
    line       text NOT NULL,         -- exactly as appended to the log file
    -- the event feed position it covers up to: the next checkpoint starts
    -- after it, so a checkpoint costs the events since the last, not the cases
    feed_xid   xid8 NOT NULL,
    feed_id    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE checkpoint_leaves (
    no      bigint NOT NULL REFERENCES checkpoints (no),
    idx     integer NOT NULL,         -- leaf order in the Merkle tree
    case_id text NOT NULL,
    seq     integer NOT NULL,
    digest  bytea NOT NULL,           -- case_events.hash at (case_id, seq) when signed
    PRIMARY KEY (no, idx)
);

-- The runtime role may append checkpoints and read them, nothing more.
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
                   ' checkpoint_leaves TO %I', r);
    EXECUTE format('GRANT INSERT ON cases, case_deadlines, case_events, idempotency_keys,'
                   ' api_keys, policies, sku_flags, checkpoints, checkpoint_leaves TO %I', r);
    EXECUTE format('GRANT UPDATE (state, outcome, version, updated_at, offer_cents,'
                   ' agreement_pending, refund_cents, evidence, manual_review, acted_version,'
                   ' counter_cents, offer_rounds, agreement_cents) ON cases TO %I', r);
    EXECUTE format('GRANT UPDATE, DELETE ON case_deadlines, idempotency_keys TO %I', r);
    EXECUTE format('GRANT UPDATE (last_used_at, revoked_at) ON api_keys TO %I', r);
    EXECUTE format('GRANT UPDATE (activated_at) ON policies TO %I', r);
    EXECUTE format('GRANT UPDATE (cleared_at, cleared_by) ON sku_flags TO %I', r);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
