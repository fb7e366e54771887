-- Baseline for the SLA drain: the expiry the scheduler commits for a silent
-- seller on a refund case (src/sla.c fire_batch): ST_CLAIM locking the
-- case, then ST_APPLY consuming the seller_response deadline armed at
-- version 1, moving the case to refund_pending and appending
-- expire_seller_response + refund.instructed, in one transaction. Each client walks its own cases of the expiry slice
-- (k persists per client); a case met again after wrapping is a no-op, so
-- the rate reported is the count of expire events written, not transactions.
-- The scheduler claims up to 256 cases with one ST_CLAIM and sends their
-- ST_APPLYs down one pipeline, one transaction per batch, on one
-- connection; this baseline commits each expiry on its own, with many
-- clients.
\set k :k + 1
\set n :elo + (:client_id + :nclients * :k) % :esize
BEGIN;
--@ 1 '{' || 'c_' || md5('case' || :n) || '}'
@ST_CLAIM version gset
--@ 1 'c_' || md5('case' || :n)
--@ 2 :ver
--@ 3 'refund_pending'
--@ 4 NULL
--@ 5 'keep'
--@ 6 NULL
--@ 7 'keep'
--@ 8 :refund
--@ 9 NULL
--@ 10 NULL
--@ 11 'seller_response'
--@ 12 1
--@ 13 't'
--@ 14 '{}'
--@ 15 '[]'
--@ 16 'system'
--@ 17 'pgbench-expire'
--@ 18 :expire_events
--@ 19 'keep'
--@ 20 'f'
@ST_APPLY
END;
