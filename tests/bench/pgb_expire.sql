-- Baseline for the SLA drain: the expiry the scheduler commits for a silent
-- seller on a refund case (src/sla.c fire_batch): case_claim locking the
-- case, then case_expire with a set of one change consuming the
-- seller_response deadline armed at version 1, moving the case to
-- refund_pending and appending expire_seller_response + refund.instructed,
-- in one transaction. Each client walks its own cases of the expiry slice
-- (k persists per client); a case met again after wrapping is a no-op, so
-- the rate reported is the count of expire events written, not transactions.
-- The scheduler claims up to 256 cases with one case_claim and writes their
-- changes with one case_expire, one transaction per batch, on one
-- connection; this baseline commits each expiry on its own, with many
-- clients.
\set k :k + 1
\set n :elo + (:client_id + :nclients * :k) % :esize
BEGIN;
--@ 1 '{' || 'c_' || md5('case' || :n) || '}'
@case_claim version gset
--@ 1 json_build_array(json_build_object('id', 'c_' || md5('case' || :n), 'ver', (:ver)::int, 'state', 'refund_pending', 'outcome', NULL, 'clear_offer', false, 'refund', (:refund)::bigint, 'dl', 'seller_response', 'armed', 1, 'replace', true, 'deadlines', '[]'::json, 'events', (:expire_events)::json, 'n', 0))
--@ 2 'system'
--@ 3 'pgbench-expire'
@case_expire
END;
