/*
 * The audit chain check, one SQL text shared by `arbiter verify` (every
 * case: $1 NULL) and GET /v1/cases/{id}/verify (one case: $1 its id). Each
 * event's digest is recomputed by arbiter_event_digest (sql/001) from its
 * stored row; the first broken link comes back as (case_id, seq, reason),
 * no row when every chain is intact.
 */
#ifndef ARBITER_CHAINCHECK_H
#define ARBITER_CHAINCHECK_H

#define AR_ZERO_DIGEST_SQL \
	"'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea"

#define AR_CHAIN_CHECK_SQL \
	"WITH x AS (" \
	"  SELECT e.case_id, e.seq, e.prev_hash, e.hash," \
	"         arbiter_event_digest(e.prev_hash, e) AS want," \
	"         lag(e.hash) OVER w AS lag_hash, row_number() OVER w AS rn" \
	"    FROM case_events e WHERE ($1::text IS NULL OR e.case_id = $1::text)" \
	"  WINDOW w AS (PARTITION BY e.case_id ORDER BY e.seq))" \
	" SELECT case_id, seq," \
	"   CASE WHEN seq <> rn THEN 'sequence gap: expected seq ' || rn" \
	"        WHEN prev_hash <> coalesce(lag_hash, " AR_ZERO_DIGEST_SQL ")" \
	"          THEN 'prev_hash does not match the previous event''s hash'" \
	"        ELSE 'hash does not match the event''s content' END AS reason" \
	"   FROM x" \
	"  WHERE seq <> rn OR hash <> want OR prev_hash <> coalesce(lag_hash, " AR_ZERO_DIGEST_SQL ")" \
	"  ORDER BY case_id, seq LIMIT 1"
#endif
