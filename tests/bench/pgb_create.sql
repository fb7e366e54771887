-- Baseline "create": the service's case_create (src/store_cases.c; run.sh pastes the
-- statement in at @case_create and fails if its parameters changed): one case,
-- its seller_response deadline, its open event, the SKU's batch-defect
-- count and the stored idempotent reply, one case per transaction
-- (autocommit, synchronous_commit on), -M prepared like the service. The
-- JSON parameters are those of a case created through the API at the start
-- of the run (-D order_doc, evidence, decision, deadlines, events, allowed);
-- shop, buyer, SKU, order id, description and Idempotency-Key vary per
-- transaction; the batch-defect threshold and window are the default
-- policy's (5 in 7 days). Case ids are made as the service makes them
-- (ar_case_id_format: creation time in ms, then 20 random hex digits; here
-- the digits come from the order id, so both places $23 is pasted agree).
\set shop 1000000 + random(0, :nshops - 1)
\set buyer 50000000 + random(0, :nbuyers - 1)
\set sku random(0, 4999)
\set ord random(1000000000000000, 8999999999999999)
--@ 1 :shop
--@ 2 :buyer
--@ 3 :ord
--@ 4 'SKU-' || :sku
--@ 5 'refund'
--@ 6 'quality_defect'
--@ 7 'awaiting_seller'
--@ 8 NULL
--@ 9 'CNY'
--@ 10 NULL
--@ 11 'The kettle leaks from the seam after the first boil (order ' || :ord || ').'
--@ 12 :order_doc
--@ 13 :evidence
--@ 14 :decision
--@ 15 'f'
--@ 16 NULL
--@ 17 :pv
--@ 18 :deadlines
--@ 19 'frontend'
--@ 20 :actor
--@ 21 :events
--@ 22 :ord
--@ 23 'c_' || lpad(to_hex((extract(epoch FROM statement_timestamp()) * 1000)::bigint), 12, '0') || left(md5(:ord::text), 20)
--@ 24 't'
--@ 25 7
--@ 26 5
--@ 27 encode(sha256(convert_to(:ord || '-body', 'UTF8')), 'hex')
--@ 28 20
--@ 29 :allowed
@case_create
