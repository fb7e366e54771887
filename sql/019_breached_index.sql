-- The breached queue (GET /v1/queues/breached) starts from the cases that
-- missed an SLA: few, and found through this partial index instead of a
-- scan of every open case's events.
CREATE INDEX case_events_breached_idx ON case_events (case_id) WHERE action = 'sla.breached';
