-- Production-shaped data (issue 21): cases i = :lo .. :hi of a data set of
-- :n cases over six months, with their events and armed deadlines, in the
-- columns and JSON shapes POST /v1/cases and a withdraw write. Driven by
-- tests/bench/shaped.sh, which runs the parts in parallel and describes the
-- shape; every value is a function of (i, :seed), so parts need not see
-- each other and a set is the same every time it is made.
--
-- psql variables: part (cases | events | deadlines), lo, hi, n, seed, t0
-- (epoch seconds, "now" of the load), fe_key (frontend key id), pv (policy
-- version).
--
-- Runs as the superuser with session_replication_role = replica (foreign
-- keys and the chain trigger off): each event's seq, prev_hash and hash are
-- computed here with the schema's own arbiter_event_digest(), the second
-- event chained to the first, which is what the trigger would compute;
-- `arbiter verify` checks them (make plan-check).
\set ON_ERROR_STOP 1
SET session_replication_role = replica;
SET synchronous_commit = off;
SET client_min_messages = warning;

-- uniform [0, 1) from (i, stream k): one hash per draw, no state
SELECT format('CREATE FUNCTION pg_temp.u(i bigint, k integer) RETURNS float8 LANGUAGE sql IMMUTABLE AS '
              '%L', format('SELECT (hashint8extended(i, k + 1000 * %s) & 9007199254740991)::float8'
                           ' / 9007199254740992.0', :seed::integer)) \gexec
-- Zipf (s = 1) rank in 1 .. m: log-uniform, so rank 1 draws ln 2 / ln(m + 1)
CREATE FUNCTION pg_temp.zipf(i bigint, k integer, m integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS
$$ SELECT least(m, floor(exp(ln(m + 1.0) * pg_temp.u(i, k))))::integer $$;

-- The canned texts buyers send: 20 Chinese and 20 English complaints, each
-- with 5 endings, 200 in all (rank 1 the commonest).
CREATE TEMP TABLE shaped_canned AS
SELECT row_number() OVER (ORDER BY e.o, b.o)::integer AS r, b.t || e.t AS txt
  FROM unnest(ARRAY[
          '颜色与图片不符', '尺码不合适', '质量问题', '收到的商品有破损', '商品与描述不一致',
          '做工粗糙有线头', '用了一次就坏了', '少发了配件', '发错了颜色', '包装破损商品有划痕',
          '味道很大不敢用', '电池充不进电', '屏幕有坏点', '拉链坏了', '鞋底开胶',
          '衣服起球严重', '杯子漏水', '开机没反应', '耳机一边没有声音', '缝线开了',
          'Colour does not match the picture', 'Wrong size', 'Quality problem',
          'The item arrived damaged', 'Not as described', 'Poor workmanship, loose threads',
          'Broke after one use', 'Missing accessories', 'Wrong colour sent',
          'Scratched, the box was crushed', 'Strong chemical smell', 'Battery does not charge',
          'Dead pixels on the screen', 'The zip is broken', 'The sole came unglued',
          'Heavy pilling after one wash', 'It leaks', 'Does not turn on',
          'No sound from one earbud', 'The seam came apart']) WITH ORDINALITY AS b(t, o)
  JOIN (VALUES (1, '', true), (2, '，要求退款', true), (3, '，请尽快处理', true), (4, '。', true),
               (5, '，希望退货退款', true),
               (1, '', false), (2, ', please refund', false), (3, '. Please help.', false),
               (4, '!', false), (5, ', I want a refund', false)) AS e(o, t, zh)
    ON e.zh = (b.o <= 20);
CREATE UNIQUE INDEX ON shaped_canned (r);

-- 491 prices, each decision's JSON built once (JSON input is the dear part
-- of a bulk load) and joined to every case.
CREATE TEMP TABLE shaped_tmpl AS
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
              'seller at fault: price ' || p || ' + outbound shipping 800; seller bears the return')),
         'policy_version', :'pv') AS decision
          FROM generate_series(1000, 50000, 100) AS p) AS t;
CREATE UNIQUE INDEX ON shaped_tmpl (price);
ANALYZE shaped_canned;
ANALYZE shaped_tmpl;

-- The shape (tests/bench/shaped.sh prints it; RESULTS.md describes it):
--   shops   n / 250 (at least 200), Zipf: shop 1000000 is rank 1
--   buyers  30 % of cases from 100 k repeat buyers, Zipf (a few very
--           active), 70 % from n * 0.6 others, uniformly
--   SKUs    'SKU-' || Zipf rank in 1 .. 2000 within each shop; shop rank
--           1's SKU-1 is the hot one (flagged by shaped.sh)
--   text    85 % one of the 200 canned texts, Zipf; 15 % free text
--   time    22 % open: awaiting_seller, created in the last 3.5 days (a big
--           sale), seller_response armed 5 days after creation; 78 %
--           withdrawn (closed, version 2) over the 178.5 days before that
CREATE TEMP VIEW shaped_src AS
SELECT i, id,
       (1000000 + pg_temp.zipf(i, 1, greatest(200, (:n / 250)::integer)) - 1)::text AS shop_id,
       CASE WHEN pg_temp.u(i, 2) < 0.3
            THEN (50000000 + pg_temp.zipf(i, 3, 100000))::text
            ELSE (60000000 + floor(pg_temp.u(i, 4) * greatest(1, :n * 0.6)))::text END AS buyer_id,
       'SKU-' || pg_temp.zipf(i, 5, 2000) AS sku,
       (900000000000 + i)::text AS order_id,
       1000 + (i % 491) * 100 AS price,
       open,
       CASE WHEN open THEN to_timestamp(:t0) - pg_temp.u(i, 7) * interval '3.5 days'
            ELSE to_timestamp(:t0) - interval '3.5 days' - pg_temp.u(i, 7) * interval '178.5 days'
       END AS created_at,
       CASE WHEN pg_temp.u(i, 8) < 0.85
            THEN (SELECT k.txt FROM shaped_canned k WHERE k.r = pg_temp.zipf(i, 9, 200))
            ELSE 'Order ' || (900000000000 + i) || ': ' || (SELECT k.txt FROM shaped_canned k
                  WHERE k.r = 1 + (i % 200)) || ' (' || left(md5('free' || i), 12) || ')' END
         AS description
  FROM (SELECT i, 'c_' || md5('case' || i) AS id, pg_temp.u(i, 6) < 0.22 AS open
          FROM generate_series(:lo::bigint, :hi::bigint) AS g(i)
         ORDER BY 2 OFFSET 0) AS g;

CREATE TEMP VIEW shaped_rows AS
SELECT s.*, t.decision, t.data
  FROM shaped_src s JOIN shaped_tmpl t ON t.price = s.price;

SELECT :'part' = 'cases' AS is_cases, :'part' = 'events' AS is_events,
       :'part' = 'deadlines' AS is_deadlines \gset

\if :is_cases
INSERT INTO cases (id, shop_id, buyer_id, order_id, sku, kind, reason, state, outcome,
                   version, currency, requested_cents, description, order_doc, evidence,
                   decision, manual_review, offer_cents, agreement_pending, refund_cents,
                   policy_version, created_at, updated_at, idem_scope, idem_key,
                   acted_version)
SELECT r.id, r.shop_id, r.buyer_id, r.order_id, r.sku, 'refund', 'quality_defect',
       CASE WHEN r.open THEN 'awaiting_seller' ELSE 'closed' END,
       CASE WHEN r.open THEN NULL ELSE 'withdrawn' END,
       CASE WHEN r.open THEN 1 ELSE 2 END, 'CNY', NULL, r.description,
       json_build_object(
         'id', r.order_id, 'shop_id', r.shop_id, 'buyer_id', r.buyer_id,
         'sku', r.sku, 'category', 'kitchen',
         'price_cents', r.price, 'shipping_fee_cents', 800, 'free_shipping', false,
         'paid_at', to_char((r.created_at - interval '4 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'promised_ship_by', to_char((r.created_at - interval '2 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'shipped_at', to_char((r.created_at - interval '3 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'delivered_at', to_char((r.created_at - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"'),
         'customized', false, 'return_shipping_insurance', 'none'),
       json_build_array(json_build_object('kind', 'photo',
         'url', 'https://img.example.com/ev/' || r.order_id || '-1.jpg',
         'sha256', encode(sha256(convert_to(r.order_id, 'UTF8')), 'hex'))),
       r.decision, false, NULL, false, NULL, :'pv', r.created_at,
       CASE WHEN r.open THEN r.created_at ELSE r.created_at + interval '1 day' END,
       :'fe_key', 'shaped-' || r.i, CASE WHEN r.open THEN 1 ELSE 2 END
  FROM shaped_rows r;
\endif

\if :is_events
-- the open event of every case, then the withdraw of the closed ones,
-- chained to it
INSERT INTO case_events (case_id, shop_id, seq, at, actor_role, actor_id, action,
                         from_state, to_state, data, policy_version, prev_hash, hash)
SELECT x.case_id, x.shop_id, x.seq, x.at, x.actor_role, x.actor_id, x.action,
       x.from_state, x.to_state, x.data, x.policy_version, x.prev_hash, x.hash
  FROM (SELECT e1.*, arbiter_event_digest(e1.prev_hash, ROW(e1.*)::case_events) AS h1, r.open,
               r.created_at
          FROM shaped_rows r,
               LATERAL (SELECT NULL::bigint AS id, NULL::xid8 AS xid, r.id AS case_id, r.shop_id,
                               1 AS seq, r.created_at AS at, 'frontend'::text AS actor_role,
                               :'fe_key'::text AS actor_id, 'open'::text AS action,
                               NULL::text AS from_state, 'awaiting_seller'::text AS to_state,
                               r.data, :'pv'::text AS policy_version,
                               '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
                                 AS prev_hash, NULL::bytea AS hash) AS e1) AS o,
       LATERAL (SELECT o.case_id, o.shop_id, o.seq, o.at, o.actor_role, o.actor_id, o.action,
                       o.from_state, o.to_state, o.data, o.policy_version, o.prev_hash, o.h1 AS hash
                UNION ALL
                SELECT e2.case_id, e2.shop_id, e2.seq, e2.at, e2.actor_role, e2.actor_id,
                       e2.action, e2.from_state, e2.to_state, e2.data, e2.policy_version,
                       e2.prev_hash, arbiter_event_digest(e2.prev_hash, ROW(e2.*)::case_events)
                  FROM (SELECT NULL::bigint AS id, NULL::xid8 AS xid, o.case_id, o.shop_id,
                               2 AS seq, o.created_at + interval '1 day' AS at,
                               'frontend'::text AS actor_role, :'fe_key'::text AS actor_id,
                               'withdraw'::text AS action, 'awaiting_seller'::text AS from_state,
                               'closed'::text AS to_state, '{}'::jsonb AS data,
                               :'pv'::text AS policy_version, o.h1 AS prev_hash,
                               NULL::bytea AS hash) AS e2
                 WHERE NOT o.open) AS x;
\endif

\if :is_deadlines
INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version, reminded, armed_at)
SELECT s.id, 'seller_response', s.created_at + interval '5 days', 'auto_refund', 1, false,
       s.created_at
  FROM shaped_src s WHERE s.open;
\endif
