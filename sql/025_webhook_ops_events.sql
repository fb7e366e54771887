-- Operational events of webhook subscriptions (issue 24): a delivery that
-- exhausted its retries, a subscription disabled (410, failing for 5 days,
-- or by a key) or re-enabled. Each row is written by the statement that
-- makes the change it reports, so the record and the change commit
-- together; the API lists them per subscription, newest first.
CREATE TABLE webhook_ops_events (
    id          bigserial PRIMARY KEY,
    sub_id      text NOT NULL REFERENCES webhook_subscriptions (id),
    -- webhook.delivery.exhausted | webhook.subscription.disabled
    -- | webhook.subscription.enabled
    type        text NOT NULL,
    delivery_id bigint,          -- the dead delivery (exhausted)
    webhook_id  text,            -- its webhook-id: evt_<event id> or ping_<n>
    event_type  text,            -- its event's type
    case_id     text,
    attempts    integer,
    last_status integer,
    -- why: the last error (exhausted), the reason (disabled), the key (enabled)
    detail      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_ops_events_sub_idx ON webhook_ops_events (sub_id, id);

-- Whether a dead letter was sent again (a replay names the original it
-- repeats, replay_of): the deliveries list says so per row through this.
CREATE INDEX webhook_deliveries_replay_idx ON webhook_deliveries (replay_of, id)
    WHERE replay_of IS NOT NULL;

-- The runtime role appends and reads them. Wraps the grants of the
-- migrations before this one (as 020 and 021 do) rather than restating them.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_025;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_025(r);
    EXECUTE format('GRANT SELECT, INSERT ON webhook_ops_events TO %I', r);
    EXECUTE format('GRANT USAGE ON SEQUENCE webhook_ops_events_id_seq TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_025(name) FROM PUBLIC;
