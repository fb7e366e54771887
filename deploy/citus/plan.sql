-- The Citus plan of deploy/SCALING.md (section 3), checked on plain
-- PostgreSQL: the schema changes distribution needs (shop_id in every key,
-- case_deadlines carrying shop_id), 200 shops' worth of rows, and EXPLAIN
-- of each query as one shard would run it. A shard is an ordinary table,
-- so what the planner does here is what each worker does with its shard.
--
--   createdb -O arbiter_owner arbiter_citus_plan
--   ARBITER_DATABASE_URL='... dbname=arbiter_citus_plan user=arbiter_owner' arbiter migrate
--   psql -X -v ON_ERROR_STOP=1 -d '... dbname=arbiter_citus_plan user=postgres' -f deploy/citus/plan.sql
--
-- On Citus the same DDL is followed by
--   SELECT create_reference_table('api_keys'), create_reference_table('policies');
--   SELECT create_distributed_table('cases', 'shop_id');
--   SELECT create_distributed_table('case_events', 'shop_id', colocate_with => 'cases');
--   SELECT create_distributed_table('case_deadlines', 'shop_id', colocate_with => 'cases');
--   SELECT create_distributed_table('sku_flags', 'shop_id', colocate_with => 'cases');
--   SELECT create_distributed_table('idempotency_keys', 'shop_id', colocate_with => 'cases');
-- which this file cannot run (Citus is not packaged in Debian 12).

\set ON_ERROR_STOP 1
BEGIN;

-- 1. Every unique key and foreign key carries the distribution column.
ALTER TABLE case_events DROP CONSTRAINT case_events_case_id_fkey;
ALTER TABLE case_deadlines DROP CONSTRAINT case_deadlines_case_id_fkey;
ALTER TABLE cases DROP CONSTRAINT cases_pkey;
ALTER TABLE cases ADD PRIMARY KEY (shop_id, id);
DROP INDEX cases_idem_idx;
CREATE UNIQUE INDEX cases_idem_idx ON cases (shop_id, idem_scope, idem_key) WHERE idem_key IS NOT NULL;

ALTER TABLE case_events DROP CONSTRAINT case_events_pkey;
ALTER TABLE case_events ADD PRIMARY KEY (shop_id, case_id, seq);
ALTER TABLE case_events ADD FOREIGN KEY (shop_id, case_id) REFERENCES cases (shop_id, id);

ALTER TABLE case_deadlines ADD COLUMN shop_id text NOT NULL;
ALTER TABLE case_deadlines DROP CONSTRAINT case_deadlines_pkey;
ALTER TABLE case_deadlines ADD PRIMARY KEY (shop_id, case_id, name);
ALTER TABLE case_deadlines ADD FOREIGN KEY (shop_id, case_id) REFERENCES cases (shop_id, id);

-- idempotency_keys co-located with the cases: the key is unique per shop
ALTER TABLE idempotency_keys ADD COLUMN shop_id text NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (shop_id, scope, key);

-- 2. Rows: 200 shops, 100 000 cases, one armed deadline each, 3 events each
-- (the chain trigger is skipped: this is about plans, not hashes).
INSERT INTO cases (id, shop_id, buyer_id, order_id, sku, kind, reason, state, currency,
                   description, order_doc, created_at)
SELECT 'c_' || lpad(to_hex(g), 32, '0'), 'S-' || (g % 200), 'B-' || (g % 50000),
       'O-' || g, 'SKU-' || (g % 1000), 'refund', 'quality_defect', 'awaiting_seller', 'CNY',
       'plan row', '{}', now() - (g % 86400) * interval '1 second'
  FROM generate_series(1, 100000) g;
INSERT INTO case_deadlines (shop_id, case_id, name, due_at, on_expiry, armed_version, armed_at)
SELECT shop_id, id, 'seller_response', created_at + interval '5 days', 'auto_refund', 1, created_at
  FROM cases;
ALTER TABLE case_events DISABLE TRIGGER USER;
INSERT INTO case_events (case_id, shop_id, seq, actor_role, actor_id, action, to_state,
                         prev_hash, hash)
SELECT c.id, c.shop_id, s, 'buyer', 'B', 'open', 'awaiting_seller', '\x00', '\x00'
  FROM cases c, generate_series(1, 3) s;
ALTER TABLE case_events ENABLE TRIGGER USER;
ANALYZE cases, case_deadlines, case_events;

-- 3. The queries, as a shard runs them.

-- The scheduler's due query: unchanged text, pushed down to every shard as
-- a top-n on case_deadlines_due_idx, merged by due_at on the coordinator.
-- It now returns shop_id, which the claim and the expiry need to route.
EXPLAIN (COSTS OFF)
SELECT shop_id, case_id, name, armed_version, due_at, reminded, armed_at FROM case_deadlines
 WHERE due_at >= now() AND due_at < now() + interval '5 days 1 hour'
 ORDER BY due_at LIMIT 256;

-- With shards leased per replica (each scheduler loads only its shards),
-- the same query runs on one shard: the plan above, one node.

-- The claim of an expiry batch, formed per shop (FOR UPDATE is routed only).
EXPLAIN (COSTS OFF)
SELECT c.id, c.version FROM cases c
 WHERE c.shop_id = 'S-7' AND c.id = ANY (ARRAY['c_' || lpad(to_hex(7), 32, '0'),
                                               'c_' || lpad(to_hex(207), 32, '0')])
   FOR UPDATE SKIP LOCKED;

-- A case by id once the id names its shop (GET /v1/cases/{id}, case_facts).
EXPLAIN (COSTS OFF)
SELECT c.id, c.version, c.state,
       (SELECT json_agg(json_build_object('name', d.name, 'due_at', d.due_at) ORDER BY d.due_at)
          FROM case_deadlines d WHERE d.shop_id = c.shop_id AND d.case_id = c.id)
  FROM cases c WHERE c.shop_id = 'S-7' AND c.id = 'c_' || lpad(to_hex(7), 32, '0');

-- A case's trail (GET /v1/cases/{id}/events): co-located, by the new key.
EXPLAIN (COSTS OFF)
SELECT seq, action, to_state FROM case_events
 WHERE shop_id = 'S-7' AND case_id = 'c_' || lpad(to_hex(7), 32, '0') ORDER BY seq;

-- A shop's list (GET /v1/cases?shop_id=): one shard, the existing index.
EXPLAIN (COSTS OFF)
SELECT id, state, created_at FROM cases
 WHERE shop_id = 'S-7' ORDER BY created_at DESC, id DESC LIMIT 50;

-- A create's idempotent retry after 24 h (case_by_idem), with the shop.
EXPLAIN (COSTS OFF)
SELECT id FROM cases WHERE shop_id = 'S-7' AND idem_scope = 'k1' AND idem_key = 'x';

-- verify, per shard: the chain walk partitioned by the distribution column.
EXPLAIN (COSTS OFF)
SELECT shop_id, case_id, seq, hash, lag(hash) OVER w AS prev
  FROM case_events WINDOW w AS (PARTITION BY shop_id, case_id ORDER BY seq);

ROLLBACK;
