/* Cases: open one (group-committed), read them, list them by keyset. */
#include "arbiter/store_cases.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/codec.h"
#include "arbiter/cursor.h"
#include "arbiter/errmsg.h"
#include "arbiter/groupcommit.h"

/* One statement for a whole create, so that creates can share a group
 * commit: the case (unless its Idempotency-Key has a live record or a
 * case already), its deadlines, its events, the batch-defect check of
 * its SKU (this case counted: the statement cannot see its own row),
 * and the reply, rendered here and stored for replays. */
static db_stmt st_case_create = { .name = "case_create", .sql =
	"WITH c AS ("
	"  INSERT INTO cases (id, shop_id, buyer_id, order_id, sku, kind, reason,"
	"     state, outcome, currency, requested_cents, description, order_doc,"
	"     evidence, decision, manual_review, refund_cents, policy_version,"
	"     idem_scope, idem_key, acted_version)"
	"  SELECT $23::text, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text,"
	"     $7::text, $8::text, $9::text, $10::bigint, $11::text, $12::json, $13::json,"
	"     $14::json, $15::boolean, $16::bigint, $17::text,"
	"     CASE WHEN $22::text IS NULL THEN NULL ELSE $20::text END, $22, 1"
	"   WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys k"
	"          WHERE k.scope = $20 AND k.key = $22"
	"            AND k.created_at > now() - CASE k.state WHEN 'done' THEN interval '24 hours'"
	"                ELSE $28::int * interval '1 second' END)"
	"  ON CONFLICT (idem_scope, idem_key) WHERE idem_key IS NOT NULL DO NOTHING"
	"  RETURNING *),"
	" d AS ("
	"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version,"
	"                              working_days, calendar_id, calendar_version, calendar_incomplete,"
	"                              holiday_extended_days)"
	"  SELECT c.id, x.name, coalesce(x.due_at, now() + x.after_ms * interval '1 millisecond'),"
	"         x.on_expiry, 1, x.working_days, x.calendar_id, x.calendar_version, x.calendar_incomplete,"
	"         x.holiday_extended_days"
	"    FROM c, json_to_recordset($18::json) AS x(name text, after_ms bigint, on_expiry text,"
	"         due_at timestamptz, working_days int, calendar_id text, calendar_version int,"
	"         calendar_incomplete boolean, holiday_extended_days int)"
	"  RETURNING *),"
	" n AS ("
	/* capped: a hot SKU has thousands of cases, the threshold needs
	 * $26 - 1 of them */
	"  SELECT count(*) + 1 AS n FROM (SELECT 1 FROM cases k"
	"   WHERE $24::boolean AND k.shop_id = $1 AND k.sku = $4"
	"     AND k.reason IN ('quality_defect', 'not_as_described', 'safety_hazard')"
	"     AND k.created_at > now() - $25::int * interval '1 day'"
	/* an agent's clear stands until new cases reach the threshold again */
	"     AND k.created_at > coalesce((SELECT max(cleared_at) FROM sku_flags"
	"           WHERE shop_id = $1 AND sku = $4), '-infinity')"
	"   LIMIT $26::int) k),"
	" f AS ("
	"  INSERT INTO sku_flags (shop_id, sku, cases)"
	"  SELECT c.shop_id, c.sku, n.n FROM c, n WHERE $24::boolean AND n.n >= $26::int"
	"  ON CONFLICT (shop_id, sku) WHERE cleared_at IS NULL DO NOTHING"
	"  RETURNING cases),"
	" e AS ("
	"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
	"     from_state, to_state, data, policy_version)"
	"  SELECT c.id, c.shop_id, x.role, x.actor, x.action, x.from_state, x.to_state,"
	"         coalesce(x.data, '{}'::jsonb), c.policy_version"
	"    FROM c, (SELECT $19::text, $20::text, r.action, r.from_state, r.to_state, r.data, r.n"
	"               FROM ROWS FROM (json_to_recordset($21::json) AS (action text,"
	"                    from_state text, to_state text, data jsonb))"
	"                    WITH ORDINALITY AS r(action, from_state, to_state, data, n)"
	"             UNION ALL"
	"             SELECT 'system', 'batch-defect', 'sku.batch_defect', $7, $7,"
	"                    jsonb_build_object('shop_id', $1::text, 'sku', $4::text,"
	"                    'cases', f.cases, 'window_days', $25::int), 1000 FROM f)"
	"          AS x(role, actor, action, from_state, to_state, data, n)"
	"   ORDER BY x.n"
	"  RETURNING seq),"
	/* the same-text signal's summary (sql/018): a day's first case of a
	 * text at a shop writes the row */
	" t AS ("
	"  INSERT INTO text_shop_days (description_hash, day, shop_id)"
	"  SELECT c.description_hash, (c.created_at AT TIME ZONE 'UTC')::date, c.shop_id FROM c"
	"  ON CONFLICT DO NOTHING),"
	/* the document cannot see a flag this statement sets: a SKU
	 * flagged just now is written into it */
	" j AS ("
	"  SELECT left(CASE WHEN EXISTS (SELECT 1 FROM f)"
	"     THEN (x.doc::jsonb || '{\"sku_batch_defect\": true}')::text"
	"     ELSE x.doc::text END, -1)"
	"   || ',\"allowed_actions\":' || $29::text || '}' AS body"
	"    FROM (SELECT arbiter_case_json(ROW(c.*)::cases,"
	"     (SELECT coalesce(json_agg(arbiter_deadline_json(ROW(d.*)::case_deadlines)"
	"        ORDER BY d.due_at, d.name), '[]'::json) FROM d)) AS doc FROM c) x),"
	" k AS ("
	"  INSERT INTO idempotency_keys (scope, key, fingerprint, state, status, response,"
	"     etag, location)"
	"  SELECT $20, $22, decode($27, 'hex'), 'done', 201, j.body, '\"1\"', '/v1/cases/' || $23"
	"    FROM j WHERE $22::text IS NOT NULL"
	"  ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
	"     state = 'done', status = 201, response = EXCLUDED.response,"
	"     etag = EXCLUDED.etag, location = EXCLUDED.location, created_at = now()"
	"  RETURNING 1)"
	" SELECT j.body, (SELECT count(*) FROM e), (SELECT count(*) FROM f),"
	"        (SELECT count(*) FROM k)"
	"  FROM j" };
DB_REGISTER(st_case_create)

/* what an action is decided on, and no more: no deadlines, no
 * timestamps to format, of the decision its refund and severity, of
 * the order what it was worth */
static db_stmt st_case_facts = { .name = "case_facts", .sql =
	"SELECT json_build_object('version', c.version, 'kind', c.kind, 'state', c.state,"
	"   'shop_id', c.shop_id, 'manual_review', c.manual_review,"
	"   'offer_cents', c.offer_cents, 'agreement_pending', c.agreement_pending,"
	"   'refund_cents', c.refund_cents, 'reason', c.reason,"
	"   'counter_cents', c.counter_cents, 'offer_rounds', c.offer_rounds,"
	"   'rounds_left', arbiter_rounds_left(c), 'agreement_cents', c.agreement_cents,"
	"   'decision', json_build_object('refund', c.decision->'refund',"
	"       'severity', c.decision->'severity'),"
	"   'order', json_build_object('price_cents', c.order_doc->'price_cents',"
	"       'shipping_fee_cents', c.order_doc->'shipping_fee_cents'),"
	"   'evidence', c.evidence,"
	"   'acted_version', coalesce(c.acted_version, c.version),"
	/* the deadline due now (the request applies its expiry first) */
	"   'due', (SELECT json_build_object('name', d.name, 'armed_version', d.armed_version,"
	"       'due_ms', floor(extract(epoch FROM d.due_at) * 1000)::bigint)"
	"      FROM case_deadlines d WHERE d.case_id = c.id AND d.due_at <= clock_timestamp()"
	"      ORDER BY d.due_at, d.name LIMIT 1),"
	/* the case moved on since the version the caller read ($3): the
	 * last expiry, if that is what moved it, for the caller's 409 */
	"   'passed', CASE WHEN c.version <> $3::int THEN (SELECT e.data || jsonb_build_object("
	"       'to_state', e.to_state) FROM case_events e"
	"      WHERE e.case_id = c.id AND e.actor_role = 'system' AND e.data ? 'due_at'"
	"        AND e.action <> 'deadline.approaching'"
	"      ORDER BY e.seq DESC LIMIT 1) END)"
	"  FROM cases c WHERE c.id = $1"
	"   AND ($2::text[] IS NULL OR c.shop_id = ANY ($2::text[]))" };
DB_REGISTER(st_case_facts)

static db_stmt st_case_events = { .name = "case_events", .sql =
	"SELECT coalesce(json_agg(json_build_object('seq', e.seq,"
	"   'at', arbiter_ts(e.at), 'actor', json_build_object('role', e.actor_role,"
	"   'id', e.actor_id), 'action', e.action, 'from_state', e.from_state,"
	"   'to_state', e.to_state, 'data', e.data, 'policy_version', e.policy_version,"
	"   'prev_hash', encode(e.prev_hash, 'hex'), 'hash', encode(e.hash, 'hex'))"
	"   ORDER BY e.seq), '[]'::json)"
	"  FROM case_events e WHERE e.case_id = $1" };
DB_REGISTER(st_case_events)

static db_stmt st_case_exists = { .name = "case_exists", .sql =
	"SELECT 1 FROM cases WHERE id = $1"
	"   AND ($2::text[] IS NULL OR shop_id = ANY ($2::text[]))" };
DB_REGISTER(st_case_exists)

static db_stmt st_case_get_row = { .name = "case_get_row", .sql =
	"SELECT arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
	"       c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
	"       arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
	"       arbiter_rounds_left(c)"
	"  FROM cases c WHERE c.id = $1"
	"   AND ($2::text[] IS NULL OR c.shop_id = ANY ($2::text[]))" };
DB_REGISTER(st_case_get_row)

/* a create's case found by its Idempotency-Key, when its record expired */
static db_stmt st_case_by_idem = { .name = "case_by_idem", .sql =
	"SELECT arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
	"       c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
	"       arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
	"       arbiter_rounds_left(c), c.id"
	"  FROM cases c WHERE c.idem_scope = $1 AND c.idem_key = $2" };
DB_REGISTER(st_case_by_idem)

json_t *store_deadlines_json(const store_deadline *d, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		json_t *o = json_pack("{s:s,s:I,s:s}", "name", d[i].name,
				      "after_ms", (json_int_t)d[i].after_ms, "on_expiry", d[i].on_expiry);
		if (o && (d[i].working_days > 0 || d[i].holiday_extended_days > 0)) {
			char due[40];
			ar_time_format(d[i].due_at, due, sizeof(due));
			json_object_set_new(o, "due_at", json_string(due));
			if (d[i].working_days > 0)
				json_object_set_new(o, "working_days", json_integer(d[i].working_days));
			if (d[i].holiday_extended_days > 0)
				json_object_set_new(o, "holiday_extended_days",
						    json_integer(d[i].holiday_extended_days));
			json_object_set_new(o, "calendar_id", json_string(d[i].calendar_id));
			json_object_set_new(o, "calendar_version", json_integer(d[i].calendar_version));
			json_object_set_new(o, "calendar_incomplete",
					    json_boolean(d[i].calendar_incomplete));
		}
		if (json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *store_events_json(const store_event *e, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_pack("{s:s,s:s?,s:s,s:O?}", "action",
				e[i].action, "from_state", e[i].from_state, "to_state",
				e[i].to_state, "data", e[i].data))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

bool store_case_create(store *s, const store_new_case *nc, store_created *out, ar_err *err)
{
	const ar_case_input *in = nc->in;
	json_t *dl = store_deadlines_json(nc->deadlines, nc->n_deadlines);
	json_t *ev = store_events_json(nc->events, nc->n_events);
	char *order_s = NULL, *evid_s = NULL, *dec_s = NULL, *dl_s = NULL, *ev_s = NULL;
	char req[24], refund[24], win[16], th[16], lease[16];
	PGresult *r = NULL;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (!dl || !ev)
		goto oom;
	order_s = codec_dumps(nc->order_doc);
	evid_s = codec_dumps(nc->evidence);
	dec_s = codec_dumps(nc->decision);
	dl_s = codec_dumps(dl);
	ev_s = codec_dumps(ev);
	if (!order_s || !evid_s || !dl_s || !ev_s || (nc->decision && !dec_s))
		goto oom;
	snprintf(req, sizeof(req), "%" PRId64, in->requested_cents);
	snprintf(refund, sizeof(refund), "%" PRId64, nc->refund_cents);
	snprintf(win, sizeof(win), "%d", nc->sku_window_days);
	snprintf(th, sizeof(th), "%d", nc->sku_threshold);
	snprintf(lease, sizeof(lease), "%d", nc->idem_lease_s);
	{
		const char *vals[29] = {
			in->order.shop_id, in->order.buyer_id, in->order.id, in->order.sku,
			ar_kind_name(in->kind), ar_reason_name(in->reason), nc->state,
			nc->outcome, in->currency, in->requested_cents >= 0 ? req : NULL,
			in->description, order_s, evid_s, dec_s,
			nc->manual_review ? "t" : "f", nc->refund_cents >= 0 ? refund : NULL,
			nc->policy_version, dl_s, nc->actor_role, nc->actor_id, ev_s,
			nc->idem_key, nc->id, nc->sku_check ? "t" : "f", win, th,
			nc->idem_key ? nc->fingerprint : NULL, lease, nc->allowed_actions,
		};
		r = gc_exec(s, &st_case_create, 29, vals, err);
		if (!r)
			goto done;
		ok = true;
		if (PQntuples(r) == 0)
			goto done;   /* the Idempotency-Key's: see store_idem_lookup */
		out->len = (size_t)PQgetlength(r, 0, 0);
		out->body = malloc(out->len + 1);
		if (!out->body)
			goto oom;
		memcpy(out->body, PQgetvalue(r, 0, 0), out->len + 1);
		out->created = true;
		out->sku_flagged = strcmp(PQgetvalue(r, 0, 2), "0") != 0;
	}
	goto done;
oom:
	ok = false;
	db_err_oom(err);
done:
	PQclear(r);
	free(order_s);
	free(evid_s);
	free(dec_s);
	free(dl_s);
	free(ev_s);
	json_decref(dl);
	json_decref(ev);
	return ok;
}

void store_err_not_found(ar_err *err, const char *id)
{
	ar_err_setk(err, 404, "not-found", "detail.no_case", "id", id, NULL);
}

bool store_case_get(store *s, const char *id, const char *shop_scope, int read_version,
		    json_t **out_case, ar_err *err)
{
	char ver[16];
	const char *vals[3] = { id, shop_scope, ver };
	PGresult *r;

	*out_case = NULL;
	snprintf(ver, sizeof(ver), "%d", read_version);
	r = db_query(s, &st_case_facts, 3, vals, err);
	if (!r)
		return false;
	if (PQntuples(r) == 0)
		store_err_not_found(err, id);
	else
		*out_case = db_json_cell(r, 0, 0, err);
	PQclear(r);
	return *out_case != NULL;
}

bool store_case_events(store *s, const char *id, const char *shop_scope,
		       json_t **items, ar_err *err)
{
	const char *vals[2] = { id, shop_scope };
	PGresult *r = NULL;
	int idx;

	*items = NULL;
	idx = db_acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec(s, idx, &st_case_exists, 2, vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		store_err_not_found(err, id);
		goto done;
	}
	PQclear(r);
	r = db_exec(s, idx, &st_case_events, 1, vals, err);
	if (r)
		*items = db_json_cell(r, 0, 0, err);
done:
	PQclear(r);
	db_release(s, idx);
	return *items != NULL;
}

void store_case_rows_free(store_case_row *rows, size_t n)
{
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		free(rows[i].json);
	free(rows);
}

/* Rows from columns (json, version, kind, state, manual_review, has_offer,
 * agreement_pending, overdue deadline or NULL, goods_missing, has_counter,
 * rounds_left) starting at col, at most max of them. */
bool store_rows_from(const PGresult *r, int col, int max, store_case_row **rows, size_t *n,
		      ar_err *err)
{
	int nt = PQntuples(r) < max ? PQntuples(r) : max;

	*rows = calloc(nt > 0 ? (size_t)nt : 1, sizeof(**rows));
	*n = 0;
	if (!*rows) {
		db_err_oom(err);
		return false;
	}
	for (int i = 0; i < nt; i++) {
		store_case_row *w = &(*rows)[i];
		w->len = (size_t)PQgetlength(r, i, col);
		w->json = malloc(w->len + 1);
		if (!w->json || !ar_kind_parse(PQgetvalue(r, i, col + 2), &w->kind) ||
		    !fsm_state_parse(PQgetvalue(r, i, col + 3), &w->state)) {
			store_case_rows_free(*rows, (size_t)i + (w->json != NULL));
			*rows = NULL;
			db_err_internal(err);
			return false;
		}
		memcpy(w->json, PQgetvalue(r, i, col), w->len + 1);
		w->version = atoi(PQgetvalue(r, i, col + 1));
		w->manual_review = PQgetvalue(r, i, col + 4)[0] == 't';
		w->has_offer = PQgetvalue(r, i, col + 5)[0] == 't';
		w->agreement_pending = PQgetvalue(r, i, col + 6)[0] == 't';
		w->goods_missing = PQgetvalue(r, i, col + 8)[0] == 't';
		w->has_counter = PQgetvalue(r, i, col + 9)[0] == 't';
		w->rounds_left = PQgetvalue(r, i, col + 10)[0] == 't';
		w->overdue = -1;
		if (!PQgetisnull(r, i, col + 7)) {
			fsm_deadline d;
			if (fsm_deadline_parse(PQgetvalue(r, i, col + 7), &d))
				w->overdue = (int)d;
		}
		(*n)++;
	}
	return true;
}

/* The case row a two-parameter statement finds (*row NULL: none), with
 * the statement's twelfth column, its id, into id_out when asked. */
static bool row_by(store *s, const db_stmt *st, const char *a, const char *b,
		   store_case_row **row, char *id_out, size_t idlen, ar_err *err)
{
	const char *vals[2] = { a, b };
	PGresult *r = db_query(s, st, 2, vals, err);
	size_t n = 0;
	bool ok;

	*row = NULL;
	if (!r)
		return false;
	ok = store_rows_from(r, 0, 1, row, &n, err);
	if (ok && n == 0) {
		store_case_rows_free(*row, 0);
		*row = NULL;
	} else if (ok && id_out) {
		snprintf(id_out, idlen, "%s", PQgetvalue(r, 0, 11));
	}
	PQclear(r);
	return ok;
}

bool store_case_get_row(store *s, const char *id, const char *shop_scope,
			store_case_row **row, ar_err *err)
{
	if (!row_by(s, &st_case_get_row, id, shop_scope, row, NULL, 0, err))
		return false;
	if (!*row) {
		store_err_not_found(err, id);
		return false;
	}
	return true;
}

bool store_case_by_idem(store *s, const char *scope, const char *key, store_case_row **row,
			char *id, size_t idlen, ar_err *err)
{
	return row_by(s, &st_case_by_idem, scope, key, row, id, idlen, err);
}

bool store_case_list_rows(store *s, const store_list_query *q, store_case_row **rows,
			  size_t *n_rows, char *next_cursor, size_t cursor_len, ar_err *err)
{
	char sql[1536], ta[40], tb[40], cur_us[24], lim[16];
	const char *vals[14];
	int n = 0;
	size_t pos;
	PGresult *r = NULL;
	bool ok = false;

	*rows = NULL;
	*n_rows = 0;
	next_cursor[0] = '\0';
	pos = (size_t)snprintf(sql, sizeof(sql),
		"SELECT (extract(epoch FROM c.created_at) * 1000000)::bigint, c.id,"
		" arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
		" c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
		" arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
		" arbiter_rounds_left(c)"
		" FROM ");
	/* A key scoped to shops reads each shop's newest matching cases
	 * through its own index range and merges them: PostgreSQL 15 returns
	 * no order from `shop_id = ANY (...)`, so that read and sorted every
	 * case of the shops (issue 21). */
	if (q->shop_scope) {
		vals[n++] = q->shop_scope;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
			"(SELECT DISTINCT unnest($%d::text[])) AS s(shop_id) CROSS JOIN LATERAL"
			" (SELECT c.id FROM cases c WHERE c.shop_id = s.shop_id", n);
	} else {
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos, "cases c WHERE true");
	}
#define FILTER(col, val) \
	do { \
		if (val) { \
			vals[n++] = (val); \
			pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos, \
						" AND c." col " = $%d", n); \
		} \
	} while (0)
	FILTER("shop_id", q->shop_id);
	FILTER("state", q->state);
	FILTER("kind", q->kind);
	FILTER("buyer_id", q->buyer_id);
	FILTER("order_id", q->order_id);
	FILTER("sku", q->sku);
#undef FILTER
	if (q->created_after != AR_TIME_NONE) {
		ar_time_format(q->created_after, ta, sizeof(ta));
		vals[n++] = ta;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
					" AND c.created_at > $%d::timestamptz", n);
	}
	if (q->created_before != AR_TIME_NONE) {
		ar_time_format(q->created_before, tb, sizeof(tb));
		vals[n++] = tb;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
					" AND c.created_at < $%d::timestamptz", n);
	}
	if (q->has_cursor) {
		snprintf(cur_us, sizeof(cur_us), "%" PRId64, q->cursor_us);
		vals[n++] = cur_us;
		vals[n++] = q->cursor_id;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
			" AND (c.created_at, c.id) < ('epoch'::timestamptz + $%d::bigint"
			" * interval '1 microsecond', $%d)", n - 1, n);
	}
	snprintf(lim, sizeof(lim), "%d", q->limit + 1);
	vals[n++] = lim;
	if (q->shop_scope)
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
			" ORDER BY c.created_at DESC, c.id DESC LIMIT $%d) AS p"
			" JOIN cases c ON c.id = p.id", n);
	snprintf(sql + pos, sizeof(sql) - pos,
		 " ORDER BY c.created_at DESC, c.id DESC LIMIT $%d", n);

	r = db_query_sql(s, "case_list", sql, n, vals, err);
	if (!r)
		return false;
	if (!store_rows_from(r, 2, q->limit, rows, n_rows, err))
		goto done;
	if (PQntuples(r) > q->limit) {
		int last = q->limit - 1;
		cursor_encode(strtoll(PQgetvalue(r, last, 0), NULL, 10),
				    PQgetvalue(r, last, 1), next_cursor, cursor_len);
	}
	ok = true;
done:
	PQclear(r);
	return ok;
}
