-- Foundation: cases, their deadlines, and the hash-chained audit trail.
-- Every statement is shop-scoped or id-scoped so the tables can later be
-- distributed by shop_id (see deploy/SCALING.md).

CREATE TABLE cases (
    id                text PRIMARY KEY,
    shop_id           text NOT NULL,
    buyer_id          text NOT NULL,
    order_id          text NOT NULL,
    sku               text NOT NULL,
    kind              text NOT NULL,
    reason            text NOT NULL,
    state             text NOT NULL,
    outcome           text,
    version           integer NOT NULL DEFAULT 1,
    currency          char(3) NOT NULL,
    requested_cents   bigint,
    description       text NOT NULL,
    order_doc         json NOT NULL,
    evidence          json NOT NULL DEFAULT '[]',
    decision          json,
    manual_review     boolean NOT NULL DEFAULT false,
    offer_cents       bigint,
    agreement_pending boolean NOT NULL DEFAULT false,
    refund_cents      bigint,
    policy_version    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- keyset pagination, newest first, with and without the common filters
CREATE INDEX cases_created_idx ON cases (created_at DESC, id DESC);
CREATE INDEX cases_shop_state_idx ON cases (shop_id, state, created_at DESC, id DESC);
CREATE INDEX cases_shop_idx ON cases (shop_id, created_at DESC, id DESC);
CREATE INDEX cases_buyer_idx ON cases (buyer_id, created_at DESC, id DESC);
CREATE INDEX cases_order_idx ON cases (order_id);

-- The truth of every pending deadline; the SLA wheel is only an index over it.
-- armed_version is the case version that set the deadline: an expiry commits
-- only if the case is still at that version (exactly-once firing).
CREATE TABLE case_deadlines (
    case_id       text NOT NULL REFERENCES cases (id),
    name          text NOT NULL,
    due_at        timestamptz NOT NULL,
    on_expiry     text NOT NULL,
    armed_version integer NOT NULL,
    reminded      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (case_id, name)
);
CREATE INDEX case_deadlines_due_idx ON case_deadlines (due_at);

CREATE TABLE case_events (
    id             bigserial NOT NULL,
    -- the writing transaction: the event feed hands out an event only once
    -- every older transaction has finished, so a reader never skips one
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    case_id        text NOT NULL REFERENCES cases (id),
    shop_id        text NOT NULL,
    seq            integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    actor_role     text NOT NULL,
    actor_id       text NOT NULL,
    action         text NOT NULL,
    from_state     text,
    to_state       text NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    policy_version text,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE INDEX case_events_feed_idx ON case_events (xid, id);

-- The bytes that are hashed. jsonb's text form is canonical (sorted keys,
-- normalised numbers), so the digest does not depend on how a client spelled
-- its JSON.
CREATE FUNCTION arbiter_event_digest(prev bytea, e case_events) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev || convert_to(concat_ws(E'\x1f',
        e.case_id, e.seq::text,
        to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        e.actor_role, e.actor_id, e.action, coalesce(e.from_state, ''),
        e.to_state, e.data::text, coalesce(e.policy_version, '')), 'UTF8'))
$$;

-- Chain each new event to the previous one of its case. Callers serialise
-- writers of one case through the case row (conditional UPDATE on version),
-- and the primary key refuses a fork if they ever did not.
CREATE FUNCTION arbiter_event_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  integer;
    last_hash bytea;
BEGIN
    SELECT seq, hash INTO last_seq, last_hash
      FROM case_events WHERE case_id = NEW.case_id
     ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.hash := arbiter_event_digest(NEW.prev_hash, NEW);
    RETURN NEW;
END $$;

CREATE TRIGGER case_events_chain BEFORE INSERT ON case_events
    FOR EACH ROW EXECUTE FUNCTION arbiter_event_chain();

CREATE FUNCTION arbiter_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION arbiter_event_append_only();
CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION arbiter_event_append_only();

-- The role that runs migrations is the service's role: take the rights away
-- at the privilege level too, so the trigger is the second wall, not the only one.
REVOKE UPDATE, DELETE, TRUNCATE ON case_events FROM PUBLIC;
DO $$ BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON case_events FROM %I', current_user);
END $$;

CREATE FUNCTION arbiter_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The case resource as the API shows it (allowed_actions is added by the
-- service, which owns the state machine).
CREATE FUNCTION arbiter_case_json(c cases, deadlines json) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', c.id, 'kind', c.kind, 'reason', c.reason, 'state', c.state,
        'outcome', c.outcome, 'version', c.version, 'shop_id', c.shop_id,
        'description', c.description, 'order', c.order_doc,
        'currency', c.currency, 'requested_cents', c.requested_cents,
        'evidence', c.evidence,
        'deadlines', deadlines,
        'decision', c.decision, 'manual_review', c.manual_review,
        'offer_cents', c.offer_cents, 'agreement_pending', c.agreement_pending,
        'refund_cents', c.refund_cents, 'policy_version', c.policy_version,
        'created_at', arbiter_ts(c.created_at), 'updated_at', arbiter_ts(c.updated_at))
$$;

CREATE FUNCTION arbiter_deadlines_json(case_id text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object(
               'name', d.name, 'due_at', arbiter_ts(d.due_at),
               'on_expiry', d.on_expiry) ORDER BY d.due_at, d.name), '[]'::json)
      FROM case_deadlines d WHERE d.case_id = arbiter_deadlines_json.case_id
$$;
