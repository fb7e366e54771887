-- Group commit: a create writes its case, deadlines, events, batch-defect
-- flag and idempotent reply in one statement (src/store.c, ST_CREATE), so
-- that several requests' creates can share one transaction.

-- Rows of a few KB (a case with its order and decision, an open event, a
-- stored reply) are written once and read often: kept inline and
-- uncompressed, they cost no pglz on the write path (it showed in the
-- profile of creates) and no detoasting on reads.
ALTER TABLE cases SET (toast_tuple_target = 8160);
ALTER TABLE case_events SET (toast_tuple_target = 8160);
ALTER TABLE idempotency_keys SET (toast_tuple_target = 8160);

-- The batch-defect count in ST_CREATE: a shop's quality cases of one SKU
-- in the window, without visiting the shop's other cases.
CREATE INDEX cases_sku_quality_idx ON cases (shop_id, sku, created_at)
    WHERE reason IN ('quality_defect', 'not_as_described', 'safety_hazard');

-- The scheduler's reminder refill asks each second for the deadlines not
-- yet reminded within the next day; most of a day's deadlines have been,
-- so it reads a partial index rather than walking them all.
CREATE INDEX case_deadlines_remind_idx ON case_deadlines (due_at) WHERE NOT reminded;
