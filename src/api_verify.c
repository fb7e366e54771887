/* GET /v1/cases/{id}/verify: one case's audit chain re-hashed in the database. */
#include "arbiter/api.h"

#include "arbiter/chaincheck.h"
#include "arbiter/errmsg.h"
#include "arbiter/store_stats.h"

/*
 * The page cannot recompute a digest itself: the digest covers the event's
 * data as jsonb's text form and its time to the microsecond, while the API
 * returns the data as JSON (numbers re-spelled, keys re-ordered) and the
 * time to the millisecond. So the server runs the same check as `arbiter
 * verify`, on the rows as stored, and says where the chain breaks. head is
 * the last event's stored hash, for a client to tie the events it shows to
 * the chain that was checked.
 */
static const char verify_sql[] =
	"WITH b AS (" AR_CHAIN_CHECK_SQL ")"
	" SELECT coalesce((SELECT json_build_object('case_id', c.id,"
	"   'intact', NOT EXISTS (SELECT 1 FROM b),"
	"   'events', (SELECT count(*) FROM case_events e WHERE e.case_id = c.id),"
	"   'head', (SELECT encode(e.hash, 'hex') FROM case_events e WHERE e.case_id = c.id"
	"            ORDER BY e.seq DESC LIMIT 1),"
	"   'broken', (SELECT json_build_object('seq', b.seq, 'reason', b.reason) FROM b),"
	"   'checked_at', arbiter_ts(clock_timestamp()))"
	"  FROM cases c WHERE c.id = $1::text"
	"   AND ($2::text[] IS NULL OR c.shop_id = ANY ($2::text[]))), '{}'::json)";

void api_case_verify(ar_req *r)
{
	const char *id = req_param(r, 0);
	const char *vals[2] = { id, auth_scope(req_identity(r)) };
	ar_err err;
	json_t *out;

	ar_err_init(&err);
	req_set_case(r, id);
	if (!store_query_json(req_app(r)->db, "case_verify", verify_sql, 2, vals, &out, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (json_object_size(out) == 0) {
		json_decref(out);
		ar_err_setk(&err, 404, "not-found", "detail.no_case", "id", id, NULL);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, out);
}
