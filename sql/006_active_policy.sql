-- Which policy every replica runs: the most recently activated version.
-- PUT /v1/policy and SIGHUP activate; a replica starting with a policy file
-- whose version is already recorded adopts the active one instead, so a
-- restart never undoes an operator's change.
ALTER TABLE policies ADD COLUMN activated_at timestamptz;
CREATE INDEX policies_active_idx ON policies (activated_at DESC) WHERE activated_at IS NOT NULL;
