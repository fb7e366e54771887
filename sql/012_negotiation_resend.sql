-- Negotiation in rounds and compensation that is paid (issue 20, 001/003).
--
-- counter_cents: the buyer's open counter-offer (awaiting_seller_reply).
-- offer_rounds: how many offers the seller has made; the decision's
--   negotiation.max_rounds bounds them (cases decided before it: one).
-- agreement_cents: the compensation of the agreement an agent recorded,
--   paid (compensation.instructed) when the buyer confirms it.
ALTER TABLE cases ADD COLUMN counter_cents bigint,
                  ADD COLUMN offer_rounds integer NOT NULL DEFAULT 0,
                  ADD COLUMN agreement_cents bigint;

CREATE OR REPLACE FUNCTION arbiter_case_json(c cases, deadlines json) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', c.id, 'kind', c.kind, 'reason', c.reason, 'state', c.state,
        'outcome', c.outcome, 'version', c.version, 'shop_id', c.shop_id,
        'description', c.description, 'order', c.order_doc,
        'currency', c.currency, 'requested_cents', c.requested_cents,
        'evidence', c.evidence,
        'deadlines', deadlines,
        'decision', c.decision, 'manual_review', c.manual_review,
        'offer_cents', c.offer_cents, 'counter_cents', c.counter_cents,
        'offer_rounds', c.offer_rounds,
        'agreement_pending', c.agreement_pending,
        'agreement_cents', c.agreement_cents,
        'refund_cents', c.refund_cents, 'policy_version', c.policy_version,
        'sku_batch_defect', EXISTS (SELECT 1 FROM sku_flags f
            WHERE f.shop_id = c.shop_id AND f.sku = c.sku AND f.cleared_at IS NULL),
        'created_at', arbiter_ts(c.created_at), 'updated_at', arbiter_ts(c.updated_at));
END $$;

-- The state machine's flags of a case beyond those stored as columns:
-- goods never received, an open counter-offer, rounds the seller has left.
CREATE FUNCTION arbiter_rounds_left(c cases) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT c.offer_rounds < coalesce((c.decision->'negotiation'->>'max_rounds')::int, 1)
$$;
