-- Minimal "read by id": one row by primary key, -M prepared.
\set n random(1, :ncases)
SELECT doc, decision, version FROM min_cases WHERE id = 'c_' || md5('case' || :n);
