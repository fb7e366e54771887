-- Minimal "list": 50 rows by an index range (a shop's newest), -M extended
-- like the service's list.
\set shop 1000000 + random(0, :nsel - 1) * :selstride
SELECT id, doc, decision, version FROM min_cases WHERE shop_id = :shop
 ORDER BY created_at DESC, id DESC LIMIT 50;
