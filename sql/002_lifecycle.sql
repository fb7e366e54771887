-- Lifecycle: idempotency keys, API keys, policy versions.

-- A replayable response per (API key, Idempotency-Key). The fingerprint is
-- the hash of method, path and body: the same key with another body is 422.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,          -- the API key's id
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    state        text NOT NULL DEFAULT 'in_flight',  -- in_flight | done
    status       integer,
    response     text,
    etag         text,
    location     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- A create carries its idempotency key into the case row, so a retry after
-- a crash between commit and reply finds the case instead of making another.
ALTER TABLE cases ADD COLUMN idem_scope text, ADD COLUMN idem_key text;
CREATE UNIQUE INDEX cases_idem_idx ON cases (idem_scope, idem_key) WHERE idem_key IS NOT NULL;

-- API keys: only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    secret_hash  bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('frontend', 'seller', 'agent', 'arbiter',
                                               'payment', 'ops', 'admin')),
    shops        text[],                 -- NULL: every shop
    name         text NOT NULL,
    senior       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Every policy the service has run with, so an old decision stays explainable.
CREATE TABLE policies (
    version     text PRIMARY KEY,
    sha256      bytea NOT NULL,
    document    jsonb NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
