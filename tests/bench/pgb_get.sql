-- Baseline "read by id": the service's case_get_row (src/store_cases.c, pasted in
-- at @case_get_row) for a key that sees every shop (scope NULL), -M prepared,
-- over random loaded cases.
\set n random(1, :ncases)
--@ 1 'c_' || md5('case' || :n)
--@ 2 NULL
@case_get_row
