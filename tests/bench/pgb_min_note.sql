-- Minimal "transition": update one row and insert one event per commit,
-- -M prepared, over random loaded cases.
\set n random(:tlo, :thi)
BEGIN;
UPDATE min_cases SET version = version + 1 WHERE id = 'c_' || md5('case' || :n) RETURNING version \gset
INSERT INTO min_events (case_id, seq, data) VALUES ('c_' || md5('case' || :n), :version + 1000, '{"note": "pgbench"}');
COMMIT;
