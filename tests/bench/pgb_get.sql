-- Baseline "read by id": the service's ST_GET_ROW (src/store.c, pasted in
-- at @ST_GET_ROW) for a key that sees every shop (scope NULL), -M prepared,
-- over random loaded cases.
\set n random(1, :ncases)
--@ 1 'c_' || md5('case' || :n)
--@ 2 NULL
@ST_GET_ROW
