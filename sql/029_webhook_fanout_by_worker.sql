-- Webhook deliveries are queued by the delivery worker from the event log,
-- no longer by a trigger in the writing transaction (issue 24). The
-- trigger of 020 wrote a row per (event, subscription) inside every case
-- write: with three subscriptions, creates at the database ran at 0.69x
-- the rate without (make bench, pgbench of the service's create SQL).
--
-- The event row is the outbox: it commits with the change it records, and
-- the commit-ordered feed (case_events_feed_idx and _shop_feed_idx: (xid,
-- id), handed out only below the oldest running transaction's xid) never
-- skips one. Each subscription keeps its position in that order; the
-- worker reads the events after it, writes their delivery rows and moves
-- the position in one statement, so an event is queued once whether the
-- worker dies before or after (src/webhook_worker.c, expand_sql). Nothing
-- rolled back is ever in the feed, so nothing rolled back is sent. A
-- subscription whose receiver does not keep up stops being expanded once
-- its window of pending rows is full: a receiver that hangs costs that
-- window, not a row per event.
--
-- A new subscription starts at the oldest running transaction: events of
-- transactions committed before it was created are not its.
ALTER TABLE webhook_subscriptions
    ADD COLUMN feed_xid xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot()),
    ADD COLUMN feed_id bigint NOT NULL DEFAULT 0;

-- Dropping the trigger waits for every transaction writing events. Those
-- it already queued that are at or above the xmin taken after it may be
-- queued once more: delivered twice, with the same webhook-id (receivers
-- de-duplicate on it), rather than missed.
DROP TRIGGER case_events_webhooks ON case_events;
DROP FUNCTION arbiter_webhook_enqueue();
UPDATE webhook_subscriptions SET feed_xid = pg_snapshot_xmin(pg_current_snapshot()), feed_id = 0;

-- Feed order is xid order, and a case's seq order almost always agrees:
-- a write that took its xid before waiting for the case's row lock (an
-- UPDATE whose version still matched once the lock holder, a reminder,
-- committed) has a lower xid than the event before it. So a round also
-- queues the events of its cases with a lower seq that lie after the
-- round in the feed ("pulled early"), and records them here, so that the
-- round that reaches them skips them. Rare, and emptied as the feed
-- passes them.
CREATE TABLE webhook_pulled (
    sub_id   text NOT NULL,
    event_id bigint NOT NULL,
    PRIMARY KEY (sub_id, event_id)
);

-- The events that ride along with a change and change no version:
-- refund and compensation instructions, reminders, batch-defect flags.
-- A case's version is the count of its other, main events; src/verify.c
-- keeps its own copy of this list, so that no function the database owner
-- can redefine changes what verify checks.
CREATE FUNCTION arbiter_event_is_rider(action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT action IN ('refund.instructed', 'compensation.instructed', 'deadline.approaching',
                      'sku.batch_defect')
$$;

-- The case's version once the transaction that wrote an event had
-- committed: its main events up to that transaction's last. A case's few
-- events, by primary key.
CREATE FUNCTION arbiter_case_version_at(c text, x xid8) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM case_events v
     WHERE v.case_id = c
       AND v.seq <= (SELECT max(w.seq) FROM case_events w WHERE w.case_id = c AND w.xid = x)
       AND NOT arbiter_event_is_rider(v.action)
$$;

-- The worker moves the positions; the API never writes them.
ALTER FUNCTION arbiter_grant_runtime(name) RENAME TO arbiter_grant_runtime_before_029;
CREATE FUNCTION arbiter_grant_runtime(r name) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM arbiter_grant_runtime_before_029(r);
    EXECUTE format('GRANT UPDATE (feed_xid, feed_id) ON webhook_subscriptions TO %I', r);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON webhook_pulled TO %I', r);
END $$;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION arbiter_grant_runtime_before_029(name) FROM PUBLIC;
