-- Policy backtests (issue 28): a job replays recorded cases under a draft
-- policy and keeps its progress and report here, so that any replica
-- answers GET /v1/policy/backtests/{id}. A job lives only while its process
-- runs it: its heartbeat (updated_at) moves with every batch, and a running
-- job whose heartbeat stopped is failed (at start-up and when read).
CREATE TABLE policy_backtests (
    id             text PRIMARY KEY,
    state          text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    created_by     text NOT NULL,          -- the API key id that asked
    policy_version text NOT NULL,          -- the draft's own "version"
    policy         jsonb NOT NULL,         -- the draft, canonical
    selection      jsonb NOT NULL,
    seen           bigint NOT NULL DEFAULT 0,
    report         jsonb,                  -- when done
    error          text                    -- when failed
);
-- the start-up sweep reads only running jobs
CREATE INDEX policy_backtests_running_idx ON policy_backtests (updated_at) WHERE state = 'running';

-- Each activation of a policy over the API, with the backtest that led to
-- it (PUT /v1/policy?backtest_id=): which report a version was judged on.
CREATE TABLE policy_activations (
    id           bigserial PRIMARY KEY,
    version      text NOT NULL REFERENCES policies (version),
    activated_at timestamptz NOT NULL DEFAULT now(),
    actor_id     text NOT NULL,
    backtest_id  text REFERENCES policy_backtests (id)
);

-- The runtime role starts, updates and reads jobs, appends activations.
-- Wraps the grants of the migrations before this one (as 017 did) rather
-- than restating them.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_021;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_021(r);
    EXECUTE format('GRANT SELECT, INSERT ON policy_backtests, policy_activations TO %I', r);
    EXECUTE format('GRANT UPDATE (state, updated_at, finished_at, seen, report, error)'
                   ' ON policy_backtests TO %I', r);
    EXECUTE format('GRANT USAGE ON SEQUENCE policy_activations_id_seq TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_021(name) FROM PUBLIC;
