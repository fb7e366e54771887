-- The delivery worker claims per subscription (issue 24): its pending
-- rows by subscription, then due time. The claim read the global due
-- order before, and skipped the queue heads of every subscription already
-- at its limit of transfers in flight: behind a receiver that hangs,
-- thousands of them, on every claim, so its cost grew with the backlog of
-- exactly the subscription that is not moving. Now it walks the
-- subscriptions with pending rows (one index probe each) and reads the
-- first due rows of each that has room.
DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_sub_due_idx ON webhook_deliveries (sub_id, next_at, id)
    WHERE state = 'pending';
