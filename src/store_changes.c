/* Changes to a case: one request's (group-committed), the scheduler's batches. */
#include "arbiter/store_changes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/groupcommit.h"

static db_stmt st_case_apply = { .name = "case_apply", .sql =
	"WITH u AS ("
	"  UPDATE cases SET state = $3, outcome = $4, version = version + 1,"
	"     updated_at = now(),"
	"     offer_cents = CASE $5::text WHEN 'set' THEN $6::bigint"
	"                   WHEN 'clear' THEN NULL ELSE offer_cents END,"
	"     agreement_pending = CASE $7::text WHEN 'set' THEN true"
	"                   WHEN 'clear' THEN false ELSE agreement_pending END,"
	"     refund_cents = coalesce($8::bigint, refund_cents),"
	"     evidence = coalesce($9::json, evidence),"
	"     manual_review = manual_review OR $19::text = 'set',"
	"     counter_cents = CASE $21::text WHEN 'set' THEN $22::bigint"
	"                   WHEN 'clear' THEN NULL ELSE counter_cents END,"
	"     offer_rounds = offer_rounds + CASE WHEN $23::boolean THEN 1 ELSE 0 END,"
	"     agreement_cents = CASE $7::text WHEN 'set' THEN $24::bigint"
	"                   WHEN 'clear' THEN NULL ELSE agreement_cents END,"
	"     acted_version = CASE WHEN $16::text = 'system' THEN acted_version"
	"                     ELSE version + 1 END"
	"   WHERE id = $1 AND version = $2"
	"     AND ($10::text[] IS NULL OR shop_id = ANY ($10::text[]))"
	/* judged by the clock: no change but an expiry while a deadline of
	 * the case is due (the caller applies that expiry first) */
	"     AND ($11::text IS NOT NULL OR NOT EXISTS (SELECT 1 FROM case_deadlines d"
	"          WHERE d.case_id = $1 AND d.due_at <= clock_timestamp()))"
	"     AND ($11::text IS NULL OR EXISTS (SELECT 1 FROM case_deadlines d"
	"          WHERE d.case_id = $1 AND d.name = $11 AND d.armed_version = $12"
	"            AND d.due_at <= clock_timestamp()))"
	"  RETURNING *),"
	" del AS ("
	"  DELETE FROM case_deadlines d USING u"
	"   WHERE d.case_id = u.id"
	"     AND (($13::boolean AND d.name <> ALL ($14::text[])) OR d.name = $11)"
	"  RETURNING d.name),"
	" ins AS ("
	"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version,"
	"                              working_days, calendar_id, calendar_version, calendar_incomplete,"
	"                              holiday_extended_days)"
	"  SELECT u.id, x.name, coalesce(x.due_at, now() + x.after_ms * interval '1 millisecond'),"
	"         x.on_expiry, u.version, x.working_days, x.calendar_id, x.calendar_version,"
	"         x.calendar_incomplete, x.holiday_extended_days"
	"    FROM u, json_to_recordset($15::json) AS x(name text, after_ms bigint, on_expiry text,"
	"         due_at timestamptz, working_days int, calendar_id text, calendar_version int,"
	"         calendar_incomplete boolean, holiday_extended_days int)"
	"   WHERE $13::boolean"
	"  ON CONFLICT (case_id, name) DO UPDATE SET due_at = EXCLUDED.due_at,"
	"     on_expiry = EXCLUDED.on_expiry, armed_version = EXCLUDED.armed_version,"
	"     reminded = false, armed_at = now(), working_days = EXCLUDED.working_days,"
	"     calendar_id = EXCLUDED.calendar_id, calendar_version = EXCLUDED.calendar_version,"
	"     calendar_incomplete = EXCLUDED.calendar_incomplete,"
	"     holiday_extended_days = EXCLUDED.holiday_extended_days,"
	/* re-armed, a deadline paused before starts afresh (sql/022) */
	"     paused_at = NULL, remaining = NULL"
	"  RETURNING *),"
	" e AS ("
	"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
	"     from_state, to_state, data, policy_version)"
	"  SELECT u.id, u.shop_id, $16, $17, x.action, x.from_state, x.to_state,"
	"         arbiter_fired(x.data), u.policy_version"
	"    FROM u, ROWS FROM (json_to_recordset($18::json) AS (action text,"
	"         from_state text, to_state text, data jsonb))"
	"         WITH ORDINALITY AS x(action, from_state, to_state, data, n)"
	"   ORDER BY x.n"
	"  RETURNING seq),"
	/* the action's Idempotency-Key record ($25, $26) learns that its
	 * change committed, in the same transaction (sql/023) */
	" k AS ("
	"  UPDATE idempotency_keys ik SET applied_case = u.id, applied_version = u.version"
	"    FROM u WHERE $25::text IS NOT NULL AND ik.scope = $25 AND ik.key = $26"
	"     AND ik.state = 'in_flight'"
	"  RETURNING 1)"
	/* $20: the case document for a reply (the scheduler needs none) */
	" SELECT CASE WHEN $20::boolean THEN"
	"   arbiter_case_json(ROW(u.*)::cases, CASE WHEN $13::boolean THEN"
	"   (SELECT coalesce(json_agg(arbiter_deadline_json(ROW(i.*)::case_deadlines)"
	"      ORDER BY i.due_at, i.name), '[]'::json) FROM ins i)"
	"   ELSE (SELECT coalesce(json_agg(arbiter_deadline_json(d)"
	"      ORDER BY d.due_at, d.name), '[]'::json) FROM case_deadlines d"
	"      WHERE d.case_id = u.id AND d.name IS DISTINCT FROM $11) END) END,"
	"   u.version, u.kind, u.state, u.manual_review, u.offer_cents IS NOT NULL,"
	"   u.agreement_pending, NULL::text, u.reason = 'missing_item', u.counter_cents IS NOT NULL,"
	"   arbiter_rounds_left(ROW(u.*)::cases), (SELECT count(*) FROM e), (SELECT count(*) FROM del)"
	"  FROM u" };
DB_REGISTER(st_case_apply)

/* the scheduler's read of a batch: a case another replica (or a
 * request) holds is skipped, not waited for; its deadline comes round
 * again */
static db_stmt st_case_claim = { .name = "case_claim", .sql =
	"SELECT c.id, c.version, c.kind, c.state, c.manual_review,"
	"       c.offer_cents IS NOT NULL AS has_offer, c.agreement_pending, c.shop_id,"
	"       c.decision, c.reason = 'missing_item' AS goods_missing, c.counter_cents,"
	"       arbiter_rounds_left(c) AS rounds_left"
	"  FROM cases c WHERE c.id = ANY ($1::text[]) FOR UPDATE SKIP LOCKED" };
DB_REGISTER(st_case_claim)

/* The scheduler's changes of a batch as one set: what case_apply does
 * for one change (the version check, the due deadline still armed at
 * its version, deadlines replaced, events appended), for each element
 * of $1, in one statement; returns the ids of the cases it changed. */
static db_stmt st_case_expire = { .name = "case_expire", .sql =
	"WITH x AS ("
	"  SELECT * FROM json_to_recordset($1::json) AS x(id text, ver int, state text,"
	"     outcome text, clear_offer boolean, clear_counter boolean, refund bigint, dl text,"
	"     armed int,"
	"     replace boolean, deadlines json, events json, n int)),"
	" u AS ("
	"  UPDATE cases c SET state = x.state, outcome = x.outcome, version = c.version + 1,"
	"     updated_at = now(),"
	"     offer_cents = CASE WHEN x.clear_offer THEN NULL ELSE c.offer_cents END,"
	"     counter_cents = CASE WHEN x.clear_counter THEN NULL ELSE c.counter_cents END,"
	"     refund_cents = coalesce(x.refund, c.refund_cents)"
	"    FROM x"
	"   WHERE c.id = x.id AND c.version = x.ver"
	"     AND EXISTS (SELECT 1 FROM case_deadlines d WHERE d.case_id = x.id"
	"          AND d.name = x.dl AND d.armed_version = x.armed"
	"          AND d.due_at <= clock_timestamp())"
	"  RETURNING c.id, c.version, c.shop_id, c.policy_version, x.dl, x.replace,"
	"     x.deadlines, x.events, x.n),"
	" del AS ("
	"  DELETE FROM case_deadlines d USING u"
	"   WHERE d.case_id = u.id"
	"     AND ((u.replace AND d.name NOT IN (SELECT y.name"
	"          FROM json_to_recordset(u.deadlines) AS y(name text))) OR d.name = u.dl)"
	"  RETURNING d.case_id),"
	" ins AS ("
	"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version,"
	"                              working_days, calendar_id, calendar_version, calendar_incomplete,"
	"                              holiday_extended_days)"
	"  SELECT u.id, y.name, coalesce(y.due_at, now() + y.after_ms * interval '1 millisecond'),"
	"         y.on_expiry, u.version, y.working_days, y.calendar_id, y.calendar_version,"
	"         y.calendar_incomplete, y.holiday_extended_days"
	"    FROM u, json_to_recordset(u.deadlines) AS y(name text, after_ms bigint, on_expiry text,"
	"         due_at timestamptz, working_days int, calendar_id text, calendar_version int,"
	"         calendar_incomplete boolean, holiday_extended_days int)"
	"   WHERE u.replace"
	"  ON CONFLICT (case_id, name) DO UPDATE SET due_at = EXCLUDED.due_at,"
	"     on_expiry = EXCLUDED.on_expiry, armed_version = EXCLUDED.armed_version,"
	"     reminded = false, armed_at = now(), working_days = EXCLUDED.working_days,"
	"     calendar_id = EXCLUDED.calendar_id, calendar_version = EXCLUDED.calendar_version,"
	"     calendar_incomplete = EXCLUDED.calendar_incomplete,"
	"     holiday_extended_days = EXCLUDED.holiday_extended_days,"
	/* re-armed, a deadline paused before starts afresh (sql/022) */
	"     paused_at = NULL, remaining = NULL"
	"  RETURNING 1),"
	" e AS ("
	"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
	"     from_state, to_state, data, policy_version)"
	"  SELECT u.id, u.shop_id, $2::text, $3::text, y.action, y.from_state, y.to_state,"
	"         arbiter_fired(y.data), u.policy_version"
	"    FROM u, ROWS FROM (json_to_recordset(u.events) AS (action text,"
	"         from_state text, to_state text, data jsonb))"
	"         WITH ORDINALITY AS y(action, from_state, to_state, data, k)"
	"   ORDER BY u.n, y.k"
	"  RETURNING 1)"
	" SELECT u.id, (SELECT count(*) FROM e), (SELECT count(*) FROM del),"
	"        (SELECT count(*) FROM ins)"
	"  FROM u" };
DB_REGISTER(st_case_expire)

static const char *op_name(store_op op)
{
	return op == STORE_SET ? "set" : op == STORE_CLEAR ? "clear" : "keep";
}

/* case_apply's parameters for a change; the strings are owned here. */
typedef struct {
	const char *vals[26];
	char *dl_s, *ev_s, *evid_s;
	char ver[16], offer[24], refund[24], armed[16], names[256], counter[24], agree[24];
} apply_params;

static void apply_params_free(apply_params *p)
{
	free(p->dl_s);
	free(p->ev_s);
	free(p->evid_s);
}

static bool apply_params_init(apply_params *p, const store_change *ch, bool render,
			      ar_err *err)
{
	json_t *dl = store_deadlines_json(ch->deadlines, ch->n_deadlines);
	json_t *ev = store_events_json(ch->events, ch->n_events);
	size_t np = 0;
	bool ok = false;

	memset(p, 0, sizeof(*p));
	p->dl_s = codec_dumps(dl);
	p->ev_s = codec_dumps(ev);
	p->evid_s = codec_dumps(ch->evidence);
	if (!p->dl_s || !p->ev_s || (ch->evidence && !p->evid_s)) {
		db_err_oom(err);
		apply_params_free(p);
		goto done;
	}
	p->names[np++] = '{';
	for (size_t i = 0; i < ch->n_deadlines; i++)
		np += (size_t)snprintf(p->names + np, sizeof(p->names) - np, "%s%s", i ? "," : "",
				       ch->deadlines[i].name);
	snprintf(p->names + np, sizeof(p->names) - np, "}");
	snprintf(p->ver, sizeof(p->ver), "%d", ch->expected_version);
	snprintf(p->offer, sizeof(p->offer), "%" PRId64, ch->offer_cents);
	snprintf(p->refund, sizeof(p->refund), "%" PRId64, ch->refund_cents);
	snprintf(p->armed, sizeof(p->armed), "%d", ch->consume_armed_version);
	snprintf(p->counter, sizeof(p->counter), "%" PRId64, ch->counter_cents);
	snprintf(p->agree, sizeof(p->agree), "%" PRId64, ch->agreement_cents);
	{
		const char *vals[26] = {
			ch->case_id, p->ver, ch->state, ch->outcome, op_name(ch->offer),
			ch->offer == STORE_SET ? p->offer : NULL, op_name(ch->agreement),
			ch->refund_cents >= 0 ? p->refund : NULL, p->evid_s, ch->shop_scope,
			ch->consume_deadline, ch->consume_deadline ? p->armed : NULL,
			ch->replace_deadlines ? "t" : "f", p->names, p->dl_s, ch->actor_role,
			ch->actor_id, p->ev_s, op_name(ch->manual_review), render ? "t" : "f",
			op_name(ch->counter), ch->counter == STORE_SET ? p->counter : NULL,
			ch->counts_round ? "t" : "f",
			ch->agreement == STORE_SET && ch->agreement_cents >= 0 ? p->agree : NULL,
			ch->idem_scope, ch->idem_scope ? ch->idem_key : NULL,
		};
		memcpy(p->vals, vals, sizeof(vals));
	}
	ok = true;
done:
	json_decref(dl);
	json_decref(ev);
	return ok;
}

static void err_stale(ar_err *err, const store_change *ch)
{
	ar_err_setk(err, 412, "stale", "detail.case_moved_on", "id", ch->case_id, "version",
		    AR_INT(ch->expected_version), NULL);
}

bool store_case_apply(store *s, const store_change *ch, store_case_row **row, ar_err *err)
{
	apply_params p;
	PGresult *r;
	size_t n = 0;
	bool ok = false;

	*row = NULL;
	if (!apply_params_init(&p, ch, true, err))
		return false;
	r = gc_exec(s, &st_case_apply, 26, p.vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		err_stale(err, ch);
		goto done;
	}
	ok = store_rows_from(r, 0, 1, row, &n, err);
done:
	PQclear(r);
	apply_params_free(&p);
	return ok;
}

struct store_tx {
	store *s;
	int idx;
	bool failed;
};

bool store_tx_begin(store *s, store_tx **out, ar_err *err)
{
	store_tx *tx = calloc(1, sizeof(*tx));
	PGresult *r;

	*out = NULL;
	if (!tx) {
		db_err_oom(err);
		return false;
	}
	tx->s = s;
	tx->idx = db_acquire(s, err);
	if (tx->idx < 0)
		goto fail;
	r = db_exec_sql(s, tx->idx, "begin", "BEGIN", 0, NULL, err);
	if (!r) {
		db_release(s, tx->idx);
		goto fail;
	}
	PQclear(r);
	*out = tx;
	return true;
fail:
	free(tx);
	return false;
}

bool store_tx_end(store_tx *tx, bool commit, ar_err *err)
{
	PGresult *r;
	bool ok;

	if (!tx)
		return false;
	commit = commit && !tx->failed;
	r = db_exec_sql(tx->s, tx->idx, commit ? "commit" : "rollback",
			commit ? "COMMIT" : "ROLLBACK", 0, NULL, err);
	ok = r && commit;
	PQclear(r);
	db_release(tx->s, tx->idx);
	free(tx);
	return ok;
}

void store_claimed_clear(store_claimed *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		json_decref(c[i].decision);
		c[i].decision = NULL;
	}
}

bool store_tx_claim(store_tx *tx, const char *const *ids, size_t n, store_claimed *out,
		    size_t *n_out, ar_err *err)
{
	size_t len = 3;
	char *arr, *p;
	const char *vals[1];
	PGresult *r;
	bool ok = false;

	*n_out = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(ids[i]) + 3;
	arr = malloc(len);
	if (!arr) {
		db_err_oom(err);
		tx->failed = true;
		return false;
	}
	/* ids are the store's own ("c_" and hex), quoted all the same */
	p = arr;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", ids[i]);
	*p++ = '}';
	*p = '\0';
	vals[0] = arr;
	r = db_exec(tx->s, tx->idx, &st_case_claim, 1, vals, err);
	free(arr);
	if (!r) {
		tx->failed = true;
		return false;
	}
	for (int i = 0; i < PQntuples(r) && *n_out < n; i++) {
		store_claimed *c = &out[*n_out];
		json_error_t jerr;
		memset(c, 0, sizeof(*c));
		snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(r, i, 0));
		c->version = atoi(PQgetvalue(r, i, 1));
		if (!ar_kind_parse(PQgetvalue(r, i, 2), &c->kind) ||
		    !fsm_state_parse(PQgetvalue(r, i, 3), &c->state))
			continue;   /* unreadable: left alone, like a case that moved on */
		c->manual_review = PQgetvalue(r, i, 4)[0] == 't';
		c->has_offer = PQgetvalue(r, i, 5)[0] == 't';
		c->agreement_pending = PQgetvalue(r, i, 6)[0] == 't';
		snprintf(c->shop_id, sizeof(c->shop_id), "%s", PQgetvalue(r, i, 7));
		c->goods_missing = PQgetvalue(r, i, 9)[0] == 't';
		c->counter_cents = PQgetisnull(r, i, 10) ? -1 : strtoll(PQgetvalue(r, i, 10), NULL, 10);
		c->has_counter = c->counter_cents >= 0;
		c->rounds_left = PQgetvalue(r, i, 11)[0] == 't';
		c->decision = PQgetisnull(r, i, 8) ? json_object() :
			      json_loads(PQgetvalue(r, i, 8), 0, &jerr);
		if (!c->decision) {
			db_err_oom(err);
			store_claimed_clear(out, *n_out);
			*n_out = 0;
			tx->failed = true;
			goto done;
		}
		(*n_out)++;
	}
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_tx_apply_many(store_tx *tx, const store_change *chs, size_t n, bool applied[],
			 ar_err *err)
{
	json_t *set = json_array();
	char *set_s = NULL;
	PGresult *r = NULL;
	bool ok = false;

	for (size_t i = 0; i < n; i++)
		applied[i] = false;
	if (n == 0) {
		json_decref(set);
		return true;
	}
	for (size_t i = 0; set && i < n; i++) {
		const store_change *ch = &chs[i];
		json_t *o = json_pack("{s:s,s:i,s:s,s:s?,s:b,s:b,s:o,s:s,s:i,s:b,s:o,s:o,s:i}",
			"id", ch->case_id, "ver", ch->expected_version, "state", ch->state,
			"outcome", ch->outcome, "clear_offer", ch->offer == STORE_CLEAR,
			"clear_counter", ch->counter == STORE_CLEAR,
			"refund", ch->refund_cents >= 0 ? json_integer(ch->refund_cents) : json_null(),
			"dl", ch->consume_deadline, "armed", ch->consume_armed_version,
			"replace", ch->replace_deadlines,
			"deadlines", store_deadlines_json(ch->deadlines, ch->n_deadlines),
			"events", store_events_json(ch->events, ch->n_events), "n", (int)i);
		if (!o || json_array_append_new(set, o)) {
			json_decref(set);
			set = NULL;
		}
	}
	set_s = codec_dumps(set);
	if (!set_s) {
		db_err_oom(err);
		goto done;
	}
	{
		const char *vals[3] = { set_s, chs[0].actor_role, chs[0].actor_id };
		r = db_exec(tx->s, tx->idx, &st_case_expire, 3, vals, err);
	}
	if (!r)
		goto done;
	for (int k = 0; k < PQntuples(r); k++) {
		for (size_t i = 0; i < n; i++) {
			if (!applied[i] && strcmp(chs[i].case_id, PQgetvalue(r, k, 0)) == 0) {
				applied[i] = true;
				break;
			}
		}
	}
	ok = true;
done:
	PQclear(r);
	free(set_s);
	json_decref(set);
	if (!ok)
		tx->failed = true;
	return ok;
}

bool store_tx_remind(store_tx *tx, const char *case_id, const char *name, int armed_version,
		     json_t *data, ar_err *err)
{
	char ver[16], *data_s = codec_dumps(data);
	const char *vals[4] = { case_id, name, ver, data_s };
	PGresult *r;
	bool ok;

	if (!data_s) {
		db_err_oom(err);
		return false;
	}
	snprintf(ver, sizeof(ver), "%d", armed_version);
	/* The case row lock orders this event with concurrent actions. */
	r = db_exec_sql(tx->s, tx->idx, "remind",
		"WITH c AS (SELECT id, shop_id, state, policy_version FROM cases"
		"            WHERE id = $1 FOR UPDATE),"
		" d AS (UPDATE case_deadlines d SET reminded = true FROM c"
		"        WHERE d.case_id = c.id AND d.name = $2 AND d.armed_version = $3::int"
		"          AND NOT d.reminded RETURNING d.case_id)"
		" INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
		"    from_state, to_state, data, policy_version)"
		" SELECT c.id, c.shop_id, 'system', 'sla', 'deadline.approaching', c.state, c.state,"
		"        $4::jsonb, c.policy_version FROM c JOIN d ON d.case_id = c.id",
		4, vals, err);
	ok = r != NULL;
	if (!ok)
		tx->failed = true;
	PQclear(r);
	free(data_s);
	return ok;
}
