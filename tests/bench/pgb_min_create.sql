-- Minimal "create": one case row and one event row per commit
-- (min_tables.sql), -M prepared; the documents are those of a case created
-- through the API at the start of the run (-D order_doc, decision).
\set shop 1000000 + random(0, :nshops - 1)
\set ord random(1000000000000000, 8999999999999999)
BEGIN;
INSERT INTO min_cases VALUES ('m_' || :ord || '_' || :client_id, :shop, 'awaiting_seller', 1, now(), :order_doc, :decision);
INSERT INTO min_events (case_id, seq, data) VALUES ('m_' || :ord || '_' || :client_id, 1, :decision);
COMMIT;
