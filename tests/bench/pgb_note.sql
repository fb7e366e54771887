-- Baseline "transition": what the service runs for POST /v1/cases/{id}/actions
-- {"action":"note"} by an agent key: ST_GET (it reads the case to check
-- If-Match and run the state machine; c.version is added to the select list
-- so pgbench can pass it on) then ST_APPLY with the version check, the note
-- event and no deadline change. Two statements, each its own transaction,
-- -M prepared. Both statements are pasted in from src/store.c.
\set n random(:tlo, :thi)
--@ 1 'c_' || md5('case' || :n)
--@ 2 NULL
@ST_GET version gset
--@ 1 'c_' || md5('case' || :n)
--@ 2 :ver
--@ 3 'awaiting_seller'
--@ 4 NULL
--@ 5 'keep'
--@ 6 NULL
--@ 7 'keep'
--@ 8 NULL
--@ 9 NULL
--@ 10 NULL
--@ 11 NULL
--@ 12 NULL
--@ 13 'f'
--@ 14 '{}'
--@ 15 '[]'
--@ 16 'agent'
--@ 17 :actor
--@ 18 :note_events
--@ 19 'keep'
@ST_APPLY
