-- Bulk loader for the benchmark: cases i = :lo .. :hi, each with exactly the
-- columns and JSON shapes POST /v1/cases writes (copied from a case created
-- through the API: a refund / quality_defect case in awaiting_seller, the
-- open event with the adjudication, and its seller_response deadline).
--
-- psql variables (all required):
--   part            cases | events | deadlines   (run the three in parallel)
--   lo, hi          the range of i
--   n_shops         shops are 1000000 .. 1000000 + n_shops - 1 (numeric ids)
--   n_buyers        buyers are 50000000 .. 50000000 + n_buyers - 1
--   t0              epoch seconds: "now" of the load; created_at falls in
--                   [t0 - 3.5 days, t0], so every seller_response deadline
--                   (created_at + 5 days) is more than 36 h away and neither
--                   it nor its 24 h reminder fires during the benchmark
--   fe_key          the frontend API key id (actor and idempotency scope)
--   pv              the policy version
--
-- Deterministic from i, so the three parts need not see each other:
--   case id   'c_' || md5('case' || i)    (32 hex digits, like the service's uuid)
--   shop      1000000 + (i * 7919) % n_shops
--   buyer     50000000 + (i * 104729) % n_buyers
--   order     900000000000 + i
--
-- Runs as the superuser with session_replication_role = replica: triggers
-- (foreign keys and the hash chain) are off for the load, so the event's
-- seq, prev_hash and hash are computed here with the schema's own
-- arbiter_event_digest(), exactly what the chain trigger computes for a
-- first event; `arbiter verify` checks them afterwards in the smoke run.
\set ON_ERROR_STOP 1
SET session_replication_role = replica;
SET synchronous_commit = off;
SET client_min_messages = warning;

-- 491 distinct prices; the JSON of each is built once (json/jsonb input
-- is the expensive part of a bulk load), then joined to every case.
CREATE TEMP TABLE bench_tmpl AS
SELECT price, decision, jsonb_build_object('kind', 'refund', 'reason', 'quality_defect',
                                           'decision', decision::jsonb) AS data
  FROM (SELECT p AS price, json_build_object(
         'outcome', 'seller_review', 'fault', 'seller',
         'refund', json_build_object('item_cents', p, 'shipping_cents', 800,
                                     'penalty_cents', 0, 'total_cents', p + 800,
                                     'currency', 'CNY'),
         'return_required', true, 'return_shipping_payer', 'seller',
         'insurance_payout_cents', NULL, 'repair_cost_payer', NULL, 'remedy', NULL,
         'severity', 'general',
         'risk', json_build_object('score', 0, 'signals', json_build_array()),
         'rules', json_build_array(
            json_build_object('id', 'R-EVIDENCE', 'result', 'pass', 'reason',
              'reason quality_defect needs evidence: 1 accepted item(s) given'),
            json_build_object('id', 'R-FAULT', 'result', 'fired', 'reason',
              'reason quality_defect: seller at fault'),
            json_build_object('id', 'R-REFUND-SELLER', 'result', 'fired', 'reason',
              'seller at fault: price ' || p || ' + outbound shipping 800; seller bears the return'),
            json_build_object('id', 'R-RETURN-REQUIRED', 'result', 'fired', 'reason',
              'quality_defect on delivered goods: the goods must come back before the refund'),
            json_build_object('id', 'R-RISK-NEW-ACCOUNT', 'result', 'skipped', 'reason',
              'account creation time unknown'),
            json_build_object('id', 'R-RISK-MANY-CASES', 'result', 'pass', 'reason',
              '0 cases by this buyer in 7 days <= 3'),
            json_build_object('id', 'R-RISK-SAME-TEXT', 'result', 'pass', 'reason',
              'same description sent to 0 other shops in 30 days <= 1'),
            json_build_object('id', 'R-RISK-SCORE', 'result', 'pass', 'reason',
              'risk score 0 < 40')),
         'policy_version', :'pv') AS decision
          FROM generate_series(1000, 50000, 100) AS p) AS t;
CREATE UNIQUE INDEX ON bench_tmpl (price);
ANALYZE bench_tmpl;

-- Rows in case id order, so primary-key inserts append instead of landing
-- on random btree pages.
CREATE TEMP VIEW bench_src AS
SELECT i,
       id,
       (1000000 + (i * 7919) % :n_shops)::text AS shop_id,
       (50000000 + (i * 104729) % :n_buyers)::text AS buyer_id,
       (900000000000 + i)::text AS order_id,
       1000 + (i % 491) * 100 AS price,
       to_timestamp(:t0) - ((i * 7919) % 100003) * (interval '3.5 days' / 100003) AS created_at,
       (ARRAY['The kettle leaks from the seam after the first boil',
              'The screen has a dead pixel cluster in the upper left corner',
              'The left earbud crackles at any volume',
              'The zip broke the second time I closed the bag',
              'The blender motor smells burnt after thirty seconds',
              'The shoe sole came unglued after a week',
              'The lamp flickers and the switch is loose',
              'The phone case does not fit the camera cut-out'])[1 + i % 8]
         || ' (order ' || (900000000000 + i) || ').' AS description
  FROM (SELECT i, 'c_' || md5('case' || i) AS id
          FROM generate_series(:lo::bigint, :hi::bigint) AS g(i)
         ORDER BY 2 OFFSET 0) AS g;

CREATE TEMP VIEW bench_rows AS
SELECT s.*, (SELECT t.decision FROM bench_tmpl t WHERE t.price = s.price) AS decision,
       (SELECT t.data FROM bench_tmpl t WHERE t.price = s.price) AS data
  FROM bench_src s;

\if :{?part}
\else
\echo 'load.sql: set -v part=cases|events|deadlines'
\quit
\endif

SELECT :'part' = 'cases' AS is_cases, :'part' = 'events' AS is_events,
       :'part' = 'deadlines' AS is_deadlines \gset

\if :is_cases
INSERT INTO cases (id, shop_id, buyer_id, order_id, sku, kind, reason, state, outcome,
                   version, currency, requested_cents, description, order_doc, evidence,
                   decision, manual_review, offer_cents, agreement_pending, refund_cents,
                   policy_version, created_at, updated_at, idem_scope, idem_key,
                   acted_version)
SELECT r.id, r.shop_id, r.buyer_id, r.order_id, 'SKU-' || (r.i % 5000), 'refund',
       'quality_defect', 'awaiting_seller', NULL, 1, 'CNY', NULL, r.description,
       json_build_object(
         'id', r.order_id, 'shop_id', r.shop_id, 'buyer_id', r.buyer_id,
         'sku', 'SKU-' || (r.i % 5000), 'category', 'kitchen',
         'price_cents', r.price, 'shipping_fee_cents', 800, 'free_shipping', false,
         'paid_at', to_char((r.created_at - interval '4 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'promised_ship_by', to_char((r.created_at - interval '2 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'shipped_at', to_char((r.created_at - interval '3 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'delivered_at', to_char((r.created_at - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'customized', false, 'return_shipping_insurance', 'none'),
       json_build_array(json_build_object('kind', 'photo',
         'url', 'https://img.example.com/ev/' || r.order_id || '-1.jpg',
         'sha256', encode(sha256(convert_to(r.order_id, 'UTF8')), 'hex'))),
       r.decision, false, NULL, false, NULL, :'pv', r.created_at, r.created_at,
       :'fe_key', 'load-' || r.i, 1
  FROM bench_rows r;
\endif

\if :is_events
INSERT INTO case_events (case_id, shop_id, seq, at, actor_role, actor_id, action,
                         from_state, to_state, data, policy_version, prev_hash, hash)
SELECT e.case_id, e.shop_id, e.seq, e.at, e.actor_role, e.actor_id, e.action,
       e.from_state, e.to_state, e.data, e.policy_version, e.prev_hash,
       arbiter_event_digest(e.prev_hash, ROW(e.*)::case_events)
  FROM (SELECT NULL::bigint AS id, NULL::xid8 AS xid, r.id AS case_id, r.shop_id,
               1 AS seq, r.created_at AS at, 'frontend'::text AS actor_role,
               :'fe_key'::text AS actor_id, 'open'::text AS action, NULL::text AS from_state,
               'awaiting_seller'::text AS to_state,
               r.data,
               :'pv'::text AS policy_version,
               '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS prev_hash,
               NULL::bytea AS hash
          FROM bench_rows r) AS e;
\endif

\if :is_deadlines
INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version, reminded)
SELECT s.id, 'seller_response', s.created_at + interval '5 days', 'auto_refund', 1, false
  FROM bench_src s;
\endif
