-- Push webhooks (issue 24): subscriptions, and the outbox of deliveries
-- written in the same transaction as the case events they announce.

-- shop_id NULL: every shop (a platform key's subscription). scope is the
-- value the outbox trigger looks a shop's subscriptions up by.
CREATE TABLE webhook_subscriptions (
    id                text PRIMARY KEY,
    shop_id           text,
    scope             text GENERATED ALWAYS AS (coalesce(shop_id, '*')) STORED,
    url               text NOT NULL,
    event_types       text[] NOT NULL,
    description       text,
    enabled           boolean NOT NULL DEFAULT true,
    disabled_reason   text,
    deleted           boolean NOT NULL DEFAULT false,
    -- what signs (the API never returns it); the one before a rotation
    -- keeps signing until prev_secret_until
    secret            bytea NOT NULL,
    prev_secret       bytea,
    prev_secret_until timestamptz,
    -- the first failure since the last delivery acknowledged: failing for
    -- 5 days disables the subscription
    failing_since     timestamptz,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_scope_idx ON webhook_subscriptions (scope)
    WHERE enabled AND NOT deleted;
CREATE INDEX webhook_subscriptions_list_idx ON webhook_subscriptions (created_at DESC, id DESC)
    WHERE NOT deleted;
CREATE INDEX webhook_subscriptions_shop_idx ON webhook_subscriptions (shop_id, created_at DESC, id DESC)
    WHERE NOT deleted;

-- One row per (subscription, event) to send, and per replay or ping.
-- state: pending (to send; leased while a worker sends it), delivered,
-- dead (the schedule ran out), skipped (the subscription's event_types no
-- longer wanted it when its turn came). A case's rows of one subscription are sent
-- in id order, each after the one before is no longer pending: only the
-- first pending row of a (subscription, case) has a finite next_at; the
-- others wait at 'infinity' until the worker, finishing the one before,
-- moves the next up (and a sweep moves up any it missed). So the claim
-- reads the heads of the queues only, however long they are.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    sub_id          text NOT NULL REFERENCES webhook_subscriptions (id),
    kind            text NOT NULL DEFAULT 'event',    -- event | ping
    event_id        bigint,                           -- case_events.id
    case_id         text,
    seq             integer,
    case_version    integer,
    type            text NOT NULL,
    state           text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    last_latency_ms integer,
    last_attempt_at timestamptz,
    replay_of       bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_at, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_chain_idx ON webhook_deliveries (sub_id, case_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_sub_idx ON webhook_deliveries (sub_id, id);
CREATE INDEX webhook_deliveries_since_idx ON webhook_deliveries (sub_id, created_at, id);
CREATE INDEX webhook_deliveries_waiting_idx ON webhook_deliveries (created_at)
    WHERE state = 'pending' AND next_at = 'infinity';
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (sub_id, id) WHERE state = 'dead';

-- A subscription's event_types: exact types, "prefix.*" or "*".
CREATE FUNCTION arbiter_webhook_wants(patterns text[], t text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (SELECT 1 FROM unnest(patterns) AS p(x)
                    WHERE x = '*' OR x = t
                       OR (right(x, 2) = '.*' AND left(t, length(x) - 1) = left(x, -1)))
$$;

-- The outbox: an event's webhook type is "case." and its action. Every statement that appends events also queues them for the
-- enabled subscriptions of their shops (and the platform-wide ones), in
-- that statement's transaction. One set-based insert per statement; its
-- cost is the statement's events times their shops' subscriptions, found
-- by webhook_subscriptions_scope_idx.
CREATE FUNCTION arbiter_webhook_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (sub_id, event_id, case_id, seq, case_version, type, next_at)
    SELECT q.sub_id, q.event_id, q.case_id, q.seq, q.version, q.type,
           CASE WHEN q.k = 1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                  WHERE p.sub_id = q.sub_id AND p.case_id = q.case_id AND p.state = 'pending')
                THEN now() ELSE 'infinity' END
      FROM (SELECT s.id AS sub_id, n.id AS event_id, n.case_id, n.seq, c.version,
                   'case.' || n.action AS type,
                   row_number() OVER (PARTITION BY s.id, n.case_id ORDER BY n.seq) AS k
              FROM new_events n
              JOIN webhook_subscriptions s ON s.scope IN (n.shop_id, '*')
                                          AND s.enabled AND NOT s.deleted
              JOIN cases c ON c.id = n.case_id
             WHERE arbiter_webhook_wants(s.event_types, 'case.' || n.action)) q
     ORDER BY q.case_id, q.seq, q.sub_id;
    RETURN NULL;
END $$;

CREATE TRIGGER case_events_webhooks AFTER INSERT ON case_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION arbiter_webhook_enqueue();

-- The webhook tables for the runtime role: subscriptions are created and
-- updated (never deleted: a deleted one keeps its deliveries' history),
-- deliveries appended and updated by the worker. Wrapped around whatever
-- arbiter_grant_runtime is defined when this runs (018's, or a later
-- migration's wrapper on a database that applied that one first), so no
-- grant of another migration is lost whatever the order.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_020;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_020(r);
    EXECUTE format('GRANT SELECT, INSERT ON webhook_subscriptions, webhook_deliveries TO %I', r);
    EXECUTE format('GRANT UPDATE (url, event_types, description, enabled, disabled_reason,'
                   ' deleted, secret, prev_secret, prev_secret_until, failing_since, updated_at)'
                   ' ON webhook_subscriptions TO %I', r);
    EXECUTE format('GRANT UPDATE (state, attempts, next_at, lease_until, last_status, last_error,'
                   ' last_latency_ms, last_attempt_at, done_at) ON webhook_deliveries TO %I', r);
    EXECUTE format('GRANT USAGE ON SEQUENCE webhook_deliveries_id_seq TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_020(name) FROM PUBLIC;
