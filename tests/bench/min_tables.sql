-- The least durable work each endpoint could do (issue 21), for the
-- minimal pgbench baselines (pgb_min_*.sql): a case row of the service's
-- width (its JSON documents, copied from the loaded cases) with only its
-- primary key and the one index a list needs, and an event row with only
-- its primary key. No triggers, no hash chain, no idempotency record.
-- run.sh creates these beside the loaded cases, as the superuser, and
-- grants them to the service's role (pgbench logs in as it).
CREATE TABLE min_cases (
    id         text PRIMARY KEY,
    shop_id    text NOT NULL,
    state      text NOT NULL,
    version    integer NOT NULL,
    created_at timestamptz NOT NULL,
    doc        json NOT NULL,
    decision   json NOT NULL
);
CREATE TABLE min_events (
    case_id text NOT NULL,
    seq     integer NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    data    jsonb NOT NULL,
    PRIMARY KEY (case_id, seq)
);
INSERT INTO min_cases SELECT id, shop_id, state, version, created_at, order_doc, decision FROM cases;
INSERT INTO min_events SELECT case_id, seq, at, data FROM case_events;
CREATE INDEX min_cases_shop_idx ON min_cases (shop_id, created_at DESC, id DESC);
VACUUM ANALYZE min_cases;
VACUUM ANALYZE min_events;
GRANT SELECT, INSERT, UPDATE ON min_cases, min_events TO arbiter;
