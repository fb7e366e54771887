-- Baseline for the scheduler's batches: the same two statements as
-- pgb_expire.sql, but as the scheduler sends them, a batch of :batch cases
-- per transaction: one case_claim locking them all, one case_expire with the
-- set of their changes (seller_response consumed at version 1, case to
-- refund_pending, expire_seller_response + refund.instructed). The set is
-- built in SQL from the claimed rows (the scheduler builds it in C from
-- what case_claim returned), so pgbench does a little more work per batch
-- than the service. Each client walks its own batches of its run's slice
-- [elo, elo + esize) (k persists per client); a case met again after
-- wrapping is a no-op, so the rate reported is the count of expire events
-- written, not transactions.
\set k :k + 1
\set n :elo + ((:client_id + :nclients * :k) * :batch) % :esize
\set hi least(:n + :batch - 1, :elo + :esize - 1)
BEGIN;
--@ 1 (SELECT '{' || string_agg('c_' || md5('case' || g.i), ',') || '}' FROM generate_series((:n)::int, (:hi)::int) g(i))
@case_claim
--@ 1 (SELECT json_agg(json_build_object('id', c.id, 'ver', c.version, 'state', 'refund_pending', 'outcome', NULL, 'clear_offer', false, 'refund', (:refund)::bigint, 'dl', 'seller_response', 'armed', 1, 'replace', true, 'deadlines', '[]'::json, 'events', (:expire_events)::json, 'n', g.i - (:n)::int)) FROM generate_series((:n)::int, (:hi)::int) g(i) JOIN cases c ON c.id = 'c_' || md5('case' || g.i))
--@ 2 'system'
--@ 3 :actor_expire
@case_expire
END;
