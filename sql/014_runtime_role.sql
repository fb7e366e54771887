-- Least privilege: migrations run as the role that owns the schema; the
-- service runs as a role that owns nothing. The runtime role may read, may
-- only append to the audit trail, and may update only the columns its
-- statements write. Not owning case_events it cannot disable the
-- append-only triggers, grant itself UPDATE or alter anything, so its own
-- login can no longer rewrite history (issue 18).
--
-- `arbiter migrate` calls this after the migrations when ARBITER_RUNTIME_ROLE
-- (or --grant ROLE) names the runtime role; it runs as the owner.
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
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
                   ' idempotency_keys, api_keys, policies, sku_flags TO %I', r);
    EXECUTE format('GRANT INSERT ON cases, case_deadlines, case_events, idempotency_keys,'
                   ' api_keys, policies, sku_flags TO %I', r);
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
