-- The complaints desk: batch-defect flags per (shop, SKU), and the indexes
-- the signals, queues and stats use.

-- 001: several quality cases on one SKU in a short time flag a batch
-- problem. At most one active flag per (shop, sku); an agent clears it.
CREATE TABLE sku_flags (
    shop_id     text NOT NULL,
    sku         text NOT NULL,
    flagged_at  timestamptz NOT NULL DEFAULT now(),
    cases       integer NOT NULL,
    cleared_at  timestamptz,
    cleared_by  text,
    PRIMARY KEY (shop_id, sku, flagged_at)
);
CREATE UNIQUE INDEX sku_flags_active_idx ON sku_flags (shop_id, sku) WHERE cleared_at IS NULL;

CREATE INDEX cases_shop_sku_idx ON cases (shop_id, sku, created_at);
CREATE INDEX cases_manual_review_idx ON cases (created_at) WHERE manual_review;
CREATE INDEX cases_state_idx ON cases (state, created_at);

CREATE OR REPLACE FUNCTION arbiter_case_json(c cases, deadlines json) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', c.id, 'kind', c.kind, 'reason', c.reason, 'state', c.state,
        'outcome', c.outcome, 'version', c.version, 'shop_id', c.shop_id,
        'description', c.description, 'order', c.order_doc,
        'currency', c.currency, 'requested_cents', c.requested_cents,
        'evidence', c.evidence,
        'deadlines', deadlines,
        'decision', c.decision, 'manual_review', c.manual_review,
        'offer_cents', c.offer_cents, 'agreement_pending', c.agreement_pending,
        'refund_cents', c.refund_cents, 'policy_version', c.policy_version,
        'sku_batch_defect', EXISTS (SELECT 1 FROM sku_flags f
            WHERE f.shop_id = c.shop_id AND f.sku = c.sku AND f.cleared_at IS NULL),
        'created_at', arbiter_ts(c.created_at), 'updated_at', arbiter_ts(c.updated_at))
$$;
