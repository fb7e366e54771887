-- Baseline "list by shop + state": the statement store_case_list_rows() builds
-- for a seller key (scope = its shop) with ?shop_id=&state= and the default
-- limit 50 (LIMIT 51), run with -M extended (the service sends it unnamed
-- through PQexecParams, parsed and planned per request).
\set shop 1000000 + random(0, :nsel - 1) * :selstride
SELECT (extract(epoch FROM c.created_at) * 1000000)::bigint, c.id,
 arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,
 c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,
 arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,
 arbiter_rounds_left(c) FROM
 (SELECT DISTINCT unnest(ARRAY[:shop]::text[])) AS s(shop_id) CROSS JOIN LATERAL
 (SELECT c.id FROM cases c WHERE c.shop_id = s.shop_id AND c.shop_id = :shop AND c.state = 'awaiting_seller'
 ORDER BY c.created_at DESC, c.id DESC LIMIT 51) AS p JOIN cases c ON c.id = p.id
 ORDER BY c.created_at DESC, c.id DESC LIMIT 51;
