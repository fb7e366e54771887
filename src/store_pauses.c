/* Pausing and resuming a deadline: the deadline row, the case version and the event, in one statement. */
#include "arbiter/store_pauses.h"

#include <stdlib.h>
#include <string.h>

/* A paused deadline is due at arbiter_never() (sql/022 says why); resuming
 * re-arms it at the resume instant plus what was left, with armed_at the
 * transaction's start as every arming has it (sla.c's refill relies on
 * that to find a near deadline armed while a refill ran). */
static db_stmt st_deadline_pause = { .name = "deadline_pause", .sql =
	"WITH c AS (SELECT id, shop_id, state, version, policy_version FROM cases"
	"            WHERE id = $1 AND ($2::text[] IS NULL OR shop_id = ANY ($2::text[]))"
	"            FOR UPDATE),"
	" d AS (SELECT d.case_id, d.name, d.due_at, d.paused_at, d.remaining"
	"         FROM case_deadlines d JOIN c ON d.case_id = c.id WHERE d.name = $3"
	"         FOR UPDATE OF d),"
	" t AS (SELECT clock_timestamp() AS now),"
	" upd AS ("
	"  UPDATE case_deadlines x SET"
	"     paused_at = CASE WHEN $4::boolean THEN NULL ELSE t.now END,"
	"     remaining = CASE WHEN $4::boolean THEN NULL ELSE d.due_at - t.now END,"
	"     due_at = CASE WHEN $4::boolean THEN t.now + d.remaining ELSE arbiter_never() END,"
	"     armed_at = CASE WHEN $4::boolean THEN now() ELSE x.armed_at END,"
	"     armed_version = CASE WHEN $4::boolean THEN c.version + 1 ELSE x.armed_version END,"
	"     reminded = CASE WHEN $4::boolean THEN false ELSE x.reminded END"
	"    FROM d, c, t"
	"   WHERE x.case_id = d.case_id AND x.name = d.name"
	"     AND CASE WHEN $4::boolean THEN d.paused_at IS NOT NULL"
	"              ELSE d.paused_at IS NULL AND d.due_at > t.now END"
	"  RETURNING x.case_id, x.due_at AS new_due, d.due_at AS old_due, d.paused_at AS old_paused,"
	"            t.now),"
	" cv AS (UPDATE cases k SET version = k.version + 1, updated_at = now()"
	"          FROM upd WHERE k.id = upd.case_id RETURNING k.id),"
	" ev AS ("
	"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
	"     from_state, to_state, data, policy_version)"
	"  SELECT c.id, c.shop_id, $5::text, $6::text,"
	"         CASE WHEN $4::boolean THEN 'deadline.resumed' ELSE 'deadline.paused' END,"
	"         c.state, c.state,"
	"         CASE WHEN $4::boolean THEN jsonb_build_object('deadline', $3::text,"
	"              'paused_at', arbiter_ts(upd.old_paused), 'resumed_at', arbiter_ts(upd.now),"
	"              'paused_ms', floor(extract(epoch FROM upd.now - upd.old_paused) * 1000)::bigint,"
	"              'due_at', arbiter_ts(upd.new_due))"
	"         ELSE jsonb_build_object('deadline', $3::text, 'due_at', arbiter_ts(upd.old_due),"
	"              'paused_at', arbiter_ts(upd.now),"
	"              'remaining_ms', floor(extract(epoch FROM upd.old_due - upd.now) * 1000)::bigint)"
	"         END || CASE WHEN $7::text IS NULL THEN '{}'::jsonb"
	"                     ELSE jsonb_build_object('reason', $7::text) END,"
	"         c.policy_version"
	"    FROM c, upd RETURNING 1)"
	" SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM d), (SELECT count(*) FROM ev),"
	"        coalesce((SELECT d.paused_at IS NOT NULL FROM d), false),"
	"        coalesce((SELECT d.due_at <= t.now FROM d, t), false)" };
DB_REGISTER(st_deadline_pause)

bool store_deadline_pause(store *s, const store_pause *p, store_pause_result *out,
			  ar_err *err)
{
	const char *vals[7] = { p->case_id, p->shop_scope, p->deadline, p->resume ? "t" : "f",
				p->actor_role, p->actor_id, p->reason };
	PGresult *r = db_query(s, &st_deadline_pause, 7, vals, err);
	bool ok = false;

	if (!r)
		return false;
	if (PQntuples(r) != 1) {
		db_err_internal(err);
		goto fail;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "0") == 0)
		*out = STORE_PAUSE_NO_CASE;
	else if (strcmp(PQgetvalue(r, 0, 1), "0") == 0)
		*out = STORE_PAUSE_NO_DEADLINE;
	else if (strcmp(PQgetvalue(r, 0, 2), "1") == 0)
		*out = STORE_PAUSE_OK;
	else if (p->resume)
		*out = STORE_PAUSE_RUNNING;
	else if (PQgetvalue(r, 0, 3)[0] == 't')
		*out = STORE_PAUSE_PAUSED;
	else
		*out = STORE_PAUSE_DUE;
	ok = true;
fail:
	PQclear(r);
	return ok;
}
