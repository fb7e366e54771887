-- Group commit: a create writes its case, deadlines, events, batch-defect
-- flag and idempotent reply in one statement, so that several requests'
-- creates can share one transaction (src/store.c, ST_CREATE). The reply
-- is rendered inside that statement, where a flag set by the same
-- statement is not yet visible to a query: hence `flagged`. The two-argument
-- form (007) stays as it is for the read paths.

CREATE OR REPLACE FUNCTION arbiter_case_json(c cases, deadlines json, flagged boolean)
RETURNS json LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', c.id, 'kind', c.kind, 'reason', c.reason, 'state', c.state,
        'outcome', c.outcome, 'version', c.version, 'shop_id', c.shop_id,
        'description', c.description, 'order', c.order_doc,
        'currency', c.currency, 'requested_cents', c.requested_cents,
        'evidence', c.evidence,
        'deadlines', deadlines,
        'decision', c.decision, 'manual_review', c.manual_review,
        'offer_cents', c.offer_cents, 'agreement_pending', c.agreement_pending,
        'refund_cents', c.refund_cents, 'policy_version', c.policy_version,
        'sku_batch_defect', flagged OR EXISTS (SELECT 1 FROM sku_flags f
            WHERE f.shop_id = c.shop_id AND f.sku = c.sku AND f.cleared_at IS NULL),
        'created_at', arbiter_ts(c.created_at), 'updated_at', arbiter_ts(c.updated_at));
END $$;

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
