-- Dead letters counted per subscription as they die, for the
-- arbiter_webhook_dead_letters gauge. Every replica's worker read it every
-- 5 s as count(*) over all dead deliveries, and those are kept for good (a
-- replay writes a new row; nothing deletes the dead one), so the gauge's
-- cost grew with every dead letter ever made. Now it sums one row per
-- subscription that has any.
--
-- A trigger rather than the worker's result statement keeps the count, so
-- an older binary still serving during a rolling upgrade, or a hand-made
-- repair, counts too. Deaths are rare and one subscription's are written
-- by its workers one statement at a time, so a row per subscription does
-- not need 026's append-only deltas.
CREATE TABLE webhook_dead_counts (
    sub_id text PRIMARY KEY REFERENCES webhook_subscriptions (id),
    n      bigint NOT NULL CHECK (n >= 0)
);

CREATE FUNCTION arbiter_webhook_dead_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' AND NEW.state = 'dead' THEN
        INSERT INTO webhook_dead_counts AS c (sub_id, n) VALUES (NEW.sub_id, 1)
            ON CONFLICT (sub_id) DO UPDATE SET n = c.n + 1;
    ELSE
        -- never below zero: counts emptied by hand are rebuilt by the
        -- backfill, not made to fail the change that found them short
        UPDATE webhook_dead_counts SET n = greatest(n - 1, 0) WHERE sub_id = OLD.sub_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_deliveries_dead_insert AFTER INSERT ON webhook_deliveries
    FOR EACH ROW WHEN (NEW.state = 'dead')
    EXECUTE FUNCTION arbiter_webhook_dead_count();
CREATE TRIGGER webhook_deliveries_dead_update AFTER UPDATE OF state ON webhook_deliveries
    FOR EACH ROW WHEN ((OLD.state = 'dead') <> (NEW.state = 'dead'))
    EXECUTE FUNCTION arbiter_webhook_dead_count();
CREATE TRIGGER webhook_deliveries_dead_delete AFTER DELETE ON webhook_deliveries
    FOR EACH ROW WHEN (OLD.state = 'dead')
    EXECUTE FUNCTION arbiter_webhook_dead_count();

-- The counts from the deliveries themselves, for this migration and for a
-- repair; returns the dead letters counted.
CREATE FUNCTION arbiter_webhook_dead_backfill() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    LOCK TABLE webhook_deliveries IN SHARE MODE;
    DELETE FROM webhook_dead_counts;
    INSERT INTO webhook_dead_counts (sub_id, n)
        SELECT sub_id, count(*) FROM webhook_deliveries WHERE state = 'dead' GROUP BY sub_id;
    SELECT coalesce(sum(n), 0) INTO total FROM webhook_dead_counts;
    RETURN total;
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_webhook_dead_backfill() FROM PUBLIC;
SELECT arbiter_webhook_dead_backfill();

-- The runtime role's worker kills deliveries (the trigger runs as it) and
-- reads the sum. Wraps the grants before this one, as 029 does.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_031;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_031(r);
    EXECUTE format('GRANT SELECT, INSERT ON webhook_dead_counts TO %I', r);
    EXECUTE format('GRANT UPDATE (n) ON webhook_dead_counts TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_031(name) FROM PUBLIC;
