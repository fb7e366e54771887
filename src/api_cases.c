/* Case routes: open (with adjudication), read, list, audit trail; health. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/backtest.h"
#include "arbiter/caseplan.h"
#include "arbiter/casefsm.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/textbuf.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/cursor.h"
#include "arbiter/migrate.h"
#include "arbiter/platform.h"
#include "arbiter/sla.h"
#include "arbiter/store_policy.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500

/* What the policy's decision means for a new case: where it opens, which
 * deadlines it arms, whether a refund is instructed at once. */
typedef struct {
	ar_decision dec;
	policy_history h;        /* what it was decided on, for backtests */
	int cases_cap, shops_cap;
	ar_time decided_at;
	size_t n_armed;
	policy_arming armed[STORE_MAX_DEADLINES];
	fsm_state state;
	bool manual_review;
	bool instruct_refund;
	unsigned deadlines;
	size_t n_deadlines;
	store_deadline deadlines_out[STORE_MAX_DEADLINES];
} open_plan;

static bool plan_open(ar_app *app, const ar_case_input *in, open_plan *pl, ar_err *err)
{
	policy_history h = { 0, 0, 0, false };
	store_history sh;
	int cases_cap, shops_cap;
	bool ok = false;

	memset(pl, 0, sizeof(*pl));
	pthread_rwlock_rdlock(&app->policy_lock);
	policy_risk_caps(app->policy, &cases_cap, &shops_cap);
	pthread_rwlock_unlock(&app->policy_lock);
	if (!store_buyer_history(app->db, in, cases_cap, shops_cap, &sh, err))
		return false;
	h.cases_last_7d = sh.cases_7d + 1;   /* this case included */
	h.same_text_other_shops_30d = sh.same_text_shops_30d;
	h.complaints_same_order = sh.complaints_same_order;
	h.sku_batch_defect = sh.sku_flagged;
	pl->h = h;
	pl->cases_cap = cases_cap;
	pl->shops_cap = shops_cap;
	pl->decided_at = app_now();
	pthread_rwlock_rdlock(&app->policy_lock);
	if (!policy_adjudicate(app->policy, in, &h, pl->decided_at, &pl->dec, err))
		goto done;
	backtest_open_state(in->kind, pl->dec.outcome, &pl->state, &pl->manual_review,
			    &pl->instruct_refund);
	pl->deadlines = fsm_deadlines_for(in->kind, pl->state);
	/* the policy's own armings (a span before any holiday extension),
	 * what a backtest compares a draft's with */
	ok = policy_armings(app->policy, in->kind, in->order.shop_id, pl->dec.major,
			    pl->manual_review, pl->deadlines, pl->armed, STORE_MAX_DEADLINES,
			    &pl->n_armed, err);
done:
	pthread_rwlock_unlock(&app->policy_lock);
	return ok && caseplan_deadlines(app, in->kind, in->order.shop_id, pl->dec.major,
				       pl->manual_review, pl->deadlines, pl->deadlines_out,
				       &pl->n_deadlines, err);
}

/* A deadline counted Monday-Friday for a year the calendar lacks: the
 * decision says so (never a silent guess). */
static void mark_calendar_incomplete(json_t *decision, const open_plan *pl)
{
	for (size_t i = 0; decision && i < pl->n_deadlines; i++)
		if (pl->deadlines_out[i].calendar_incomplete) {
			json_object_set_new(decision, "calendar_incomplete", json_true());
			return;
		}
}

/* As tb_case for a parsed document: its first overdue deadline (they are
 * in due order) is shown applied, with pending_expiry. */
static void overdue_view(json_t *c, fsm_case *fc)
{
	size_t i;
	json_t *d;
	fsm_deadline dl;
	fsm_case after;

	json_array_foreach(json_object_get(c, "deadlines"), i, d) {
		if (!json_is_true(json_object_get(d, "overdue")))
			continue;
		if (fsm_deadline_parse(json_string_value(json_object_get(d, "name")), &dl) &&
		    fsm_after_expiry(fc, dl, &after)) {
			json_object_set_new(c, "pending_expiry",
					    json_pack("{s:s,s:s}", "deadline", fsm_deadline_name(dl),
						      "to_state", fsm_state_name(after.state)));
			*fc = after;
		}
		return;
	}
}

/* Adds the fields the state machine owns (allowed_actions). */
void api_decorate_case(json_t *c)
{
	fsm_case fc;
	fsm_action acts[FSM_ACTION__COUNT];
	unsigned n;
	json_t *arr = json_array();

	memset(&fc, 0, sizeof(fc));
	if (!arr)
		return;
	if (ar_kind_parse(json_string_value(json_object_get(c, "kind")), &fc.kind) &&
	    fsm_state_parse(json_string_value(json_object_get(c, "state")), &fc.state)) {
		fc.manual_review = json_is_true(json_object_get(c, "manual_review"));
		fc.has_offer = json_is_integer(json_object_get(c, "offer_cents"));
		fc.agreement_pending = json_is_true(json_object_get(c, "agreement_pending"));
		fc.goods_missing = json_string_value(json_object_get(c, "reason")) &&
				   strcmp(json_string_value(json_object_get(c, "reason")), "missing_item") == 0;
		fc.has_counter = json_is_integer(json_object_get(c, "counter_cents"));
		{
			json_t *mr = json_object_get(json_object_get(json_object_get(c, "decision"),
								     "negotiation"), "max_rounds");
			fc.rounds_left = json_integer_value(json_object_get(c, "offer_rounds")) <
					 (json_is_integer(mr) ? json_integer_value(mr) : 1);
		}
		overdue_view(c, &fc);
		n = fsm_allowed_any(&fc, acts, FSM_ACTION__COUNT);
		for (unsigned i = 0; i < n && i < FSM_ACTION__COUNT; i++)
			json_array_append_new(arr, json_string(fsm_action_name(acts[i])));
	}
	json_object_set_new(c, "allowed_actions", arr);
	{
		fsm_outcome o;
		const char *tb = NULL;
		int pdd = -1;

		if (!fsm_outcome_parse(json_string_value(json_object_get(c, "outcome")), &o))
			o = FSM_OUTCOME_NONE;
		if (ar_kind_parse(json_string_value(json_object_get(c, "kind")), &fc.kind) &&
		    fsm_state_parse(json_string_value(json_object_get(c, "state")), &fc.state))
			platform_status(fc.kind, fc.state, o, &tb, &pdd);
		json_object_set_new(c, "platform_status",
				    json_pack("{s:o,s:o}", "taobao", tb ? json_string(tb) : json_null(),
					      "pinduoduo",
					      pdd >= 0 ? json_integer(pdd) : json_null()));
	}
}

/* allowed_actions as a JSON array, from the state machine. */
static void tb_allowed(textbuf *b, const fsm_case *fc)
{
	fsm_action acts[FSM_ACTION__COUNT];
	unsigned n = fsm_allowed_any(fc, acts, FSM_ACTION__COUNT);

	tb_str(b, "[");
	for (unsigned i = 0; i < n && i < FSM_ACTION__COUNT; i++) {
		tb_str(b, i ? ",\"" : "\"");
		tb_str(b, fsm_action_name(acts[i]));
		tb_str(b, "\"");
	}
	tb_str(b, "]");
}

/* A closed case's outcome (what a closed case is on the platforms turns on
 * it); the row carries no outcome, so only closed cases parse theirs. */
static fsm_outcome case_outcome(fsm_state state, const char *json, size_t len)
{
	fsm_outcome o = FSM_OUTCOME_NONE;
	json_t *c;

	if (state != FSM_STATE_CLOSED)
		return o;
	c = json_loadb(json, len, 0, NULL);
	if (!fsm_outcome_parse(json_string_value(json_object_get(c, "outcome")), &o))
		o = FSM_OUTCOME_NONE;
	json_decref(c);
	return o;
}

/* platform_status (platform.h): what the case is on Taobao and Pinduoduo. */
static void tb_platform(textbuf *b, ar_kind kind, fsm_state state, fsm_outcome outcome)
{
	const char *tb;
	char num[16];
	int pdd;

	platform_status(kind, state, outcome, &tb, &pdd);
	tb_str(b, ",\"platform_status\":{\"taobao\":");
	tb_str(b, tb ? "\"" : "null");
	if (tb) {
		tb_str(b, tb);
		tb_str(b, "\"");
	}
	snprintf(num, sizeof(num), "%d", pdd);
	tb_str(b, ",\"pinduoduo\":");
	tb_str(b, pdd >= 0 ? num : "null");
	tb_str(b, "}");
}

/* The case document as PostgreSQL wrote it, with allowed_actions spliced in
 * before its closing brace: no parse, no re-encode on the read paths. A
 * case with a deadline past due whose expiry is not yet written is shown as
 * that expiry leaves it (every action applies it first): pending_expiry
 * names the deadline and the state it moves to, and allowed_actions are
 * those of that state. */
static void tb_case(textbuf *b, const store_case_row *w)
{
	fsm_case fc = { w->kind, w->state, w->manual_review, w->has_offer, w->agreement_pending,
			w->goods_missing, w->has_counter, w->rounds_left };
	fsm_case after;
	size_t end = w->len;

	while (end > 0 && w->json[end - 1] != '}')
		end--;
	if (end == 0) {
		b->oom = true;
		return;
	}
	tb_put(b, w->json, end - 1);
	tb_platform(b, w->kind, w->state, case_outcome(w->state, w->json, end));
	if (w->overdue >= 0 && fsm_after_expiry(&fc, (fsm_deadline)w->overdue, &after)) {
		tb_str(b, ",\"pending_expiry\":{\"deadline\":\"");
		tb_str(b, fsm_deadline_name((fsm_deadline)w->overdue));
		tb_str(b, "\",\"to_state\":\"");
		tb_str(b, fsm_state_name(after.state));
		tb_str(b, "\"}");
		fc = after;
	}
	tb_str(b, ",\"allowed_actions\":");
	tb_allowed(b, &fc);
	tb_str(b, "}");
}

void api_reply_case_row(ar_req *r, int status, store_case_row *row)
{
	textbuf b = { 0 };
	char etag[24];
	ar_err err;

	ar_err_init(&err);
	if (!api_view_case_text(r, &row->json, &row->len, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	tb_case(&b, row);
	if (b.oom) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		req_reply_problem(r, &err);
	} else {
		snprintf(etag, sizeof(etag), "\"%d\"", row->version);
		req_add_header(r, "ETag", etag);
		req_reply_text(r, status, "application/json", b.p, b.len);
	}
	free(b.p);
}

/* A fresh case id, time-ordered (ar_case_id_format says why). */
static bool new_case_id(char out[AR_CASE_ID_LEN + 1])
{
	char rnd[AR_CASE_ID_RANDOM + 1];

	if (!auth_random_hex(rnd, AR_CASE_ID_RANDOM))
		return false;
	ar_case_id_format(out, app_now(), rnd);
	return true;
}

/* A create whose Idempotency-Key wrote nothing: its record answers (replay,
 * 409, 422); with none alive, the case opened under it long ago (its
 * record expired) is the answer. */
static void reply_idem_create(ar_req *r, const char *key, const char *fp)
{
	ar_app *app = req_app(r);
	const char *scope = req_identity(r)->key_id;
	idem_state st;
	idem_replay rep;
	store_case_row *row = NULL;
	ar_err err;
	char id[AR_MAX_ID_LEN + 1], loc[96];

	ar_err_init(&err);
	if (!store_idem_lookup(app->db, scope, key, fp, req_idem_lease(r), &st, &rep, &err))
		goto fail;
	/* the stored reply is the statement's, written before any view */
	if (st == IDEM_REPLAY && rep.status == 201) {
		size_t n = strlen(rep.body);
		if (!api_view_case_text(r, &rep.body, &n, &err)) {
			free(rep.body);
			goto fail;
		}
	}
	if (req_idem_answer(r, st, &rep))
		return;
	if (!store_case_by_idem(app->db, scope, key, &row, id, sizeof(id), &err))
		goto fail;
	if (!row) {
		/* the request that held it rolled back just now */
		ar_err_setk(&err, 409, "idempotency-in-flight", "detail.idempotency_retry", NULL);
		goto fail;
	}
	snprintf(loc, sizeof(loc), "/v1/cases/%s", id);
	req_set_case(r, id);
	req_add_header(r, "Location", loc);
	req_add_header(r, "Idempotent-Replayed", "true");
	api_reply_case_row(r, 201, row);
	store_case_rows_free(row, 1);
	return;
fail:
	req_reply_problem(r, &err);
}

void api_cases_create(ar_req *r)
{
	ar_app *app = req_app(r);
	const ar_identity *who = req_identity(r);
	ar_err err;
	size_t len;
	const char *body = req_body(r, &len), *key;
	json_t *root = NULL, *order = NULL, *evidence = NULL, *decision = NULL;
	json_t *open_data = NULL, *refund_data = NULL;
	ar_case_input in;
	open_plan *pl = malloc(sizeof(*pl));
	store_new_case nc;
	store_created made = { false, false, NULL, 0 };
	textbuf allowed = { 0 };
	char fp[2 * SHA256_LEN + 1], id[AR_CASE_ID_LEN + 1], loc[96];

	ar_err_init(&err);
	if (!pl) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	if (!req_idem_key(r, &key, fp))
		goto done;
	root = codec_parse_body(body, len, &err);
	if (!root || !codec_decode_case(root, &in, &err))
		goto fail;
	if (!auth_sees_shop(who, in.order.shop_id)) {
		ar_err_setk(&err, 403, "forbidden", "detail.shop_not_allowed", "shop", in.order.shop_id,
			    NULL);
		goto fail;
	}
	if (!plan_open(app, &in, pl, &err))
		goto fail;
	order = codec_order_to_json(&in.order);
	evidence = codec_case_input_evidence_to_json(&in);
	decision = policy_decision_to_json(&pl->dec);
	mark_calendar_incomplete(decision, pl);
	/* what a backtest replays it from (backtest.h) */
	open_data = json_pack("{s:s,s:s,s:O,s:o}", "kind", ar_kind_name(in.kind),
			      "reason", ar_reason_name(in.reason), "decision", decision,
			      "inputs", backtest_inputs_json(root, &pl->h, pl->cases_cap,
							     pl->shops_cap, pl->decided_at,
							     pl->armed, pl->n_armed));
	if (!order || !evidence || !decision || !open_data)
		goto oom;
	if (!new_case_id(id)) {
		ar_err_setk(&err, 503, "overloaded", "detail.no_entropy", NULL);
		goto fail;
	}

	memset(&nc, 0, sizeof(nc));
	nc.in = &in;
	nc.id = id;
	nc.state = fsm_state_name(pl->state);
	nc.order_doc = order;
	nc.evidence = evidence;
	nc.decision = decision;
	nc.manual_review = pl->manual_review;
	nc.refund_cents = -1;
	nc.policy_version = pl->dec.policy_version;
	nc.actor_role = fsm_role_name(who->role);
	nc.actor_id = who->key_id;
	nc.idem_key = key;
	nc.fingerprint = fp;
	nc.idem_lease_s = req_idem_lease(r);
	{
		fsm_case fc = { in.kind, pl->state, pl->manual_review, false, false,
				in.reason == AR_REASON_MISSING_ITEM, false,
				pl->dec.max_offer_rounds > 0 };
		fsm_outcome o;

		tb_allowed(&allowed, &fc);
		if (!nc.outcome || !fsm_outcome_parse(nc.outcome, &o))
			o = FSM_OUTCOME_NONE;
		tb_platform(&allowed, in.kind, pl->state, o);
		if (allowed.oom)
			goto oom;
		nc.allowed_actions = allowed.p;
	}
	nc.sku_check = in.reason == AR_REASON_QUALITY_DEFECT ||
		       in.reason == AR_REASON_NOT_AS_DESCRIBED || in.reason == AR_REASON_SAFETY_HAZARD;
	pthread_rwlock_rdlock(&app->policy_lock);
	policy_batch(app->policy, &nc.sku_threshold, &nc.sku_window_days);
	pthread_rwlock_unlock(&app->policy_lock);
	nc.events[nc.n_events++] = (store_event){ "open", NULL, nc.state, open_data };
	if (pl->instruct_refund) {
		nc.refund_cents = pl->dec.refund.total_cents;
		/* the decided amount: what was requested, at most the most owed */
		refund_data = policy_refund_instruction(json_object_get(decision, "refund"),
							pl->dec.refund.total_cents, "auto_approve");
		if (!refund_data)
			goto oom;
		nc.events[nc.n_events++] = (store_event){ "refund.instructed", nc.state,
							  nc.state, refund_data };
	}
	for (size_t i = 0; i < pl->n_deadlines; i++)
		nc.deadlines[nc.n_deadlines++] = pl->deadlines_out[i];
	if (!store_case_create(app->db, &nc, &made, &err))
		goto fail;
	if (!made.created) {
		reply_idem_create(r, key, fp);
		goto done;
	}
	for (size_t i = 0; i < nc.n_deadlines; i++) {
		if (nc.deadlines[i].after_ms <= SLA_HORIZON_MS)
			sla_poke(app->sla);
	}
	if (made.sku_flagged)
		log_kv(LOG_INFO, "SKU flagged as a batch defect", "request_id", req_id(r),
		       "case_id", id, NULL);
	metrics_case_opened(in.kind, (int)pl->dec.outcome);
	if (pl->instruct_refund)
		metrics_refund("auto_approve", pl->dec.refund.currency, pl->dec.refund.total_cents, true);
	/* the case is open whatever this says: a retry under the same
	 * Idempotency-Key gets it */
	if (!api_view_case_text(r, &made.body, &made.len, &err))
		goto fail;
	snprintf(loc, sizeof(loc), "/v1/cases/%s", id);
	req_set_case(r, id);
	req_add_header(r, "Location", loc);
	req_add_header(r, "ETag", "\"1\"");
	req_reply_text(r, 201, "application/json", made.body, made.len);
	goto done;
oom:
	ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
fail:
	req_reply_problem(r, &err);
done:
	free(made.body);
	free(allowed.p);
	json_decref(refund_data);
	json_decref(open_data);
	json_decref(decision);
	json_decref(evidence);
	json_decref(order);
	json_decref(root);
	free(pl);
}

void api_adjudicate(ar_req *r)
{
	ar_app *app = req_app(r);
	ar_err err;
	size_t len;
	const char *body = req_body(r, &len);
	json_t *root = NULL, *out = NULL, *dl, *decision = NULL;
	ar_case_input in;
	open_plan *pl = malloc(sizeof(*pl));

	ar_err_init(&err);
	if (!pl) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	root = codec_parse_body(body, len, &err);
	if (!root || !codec_decode_case(root, &in, &err))
		goto fail;
	/* a shop's key asks only about its own shops, and is never told what
	 * other shops' cases say (issue 18): the signals still decide */
	if (!auth_sees_shop(req_identity(r), in.order.shop_id)) {
		ar_err_fieldk(&err, "/order/shop_id", "field.shop_not_allowed", "shop",
			      in.order.shop_id, NULL);
		goto fail;
	}
	if (!plan_open(app, &in, pl, &err))
		goto fail;
	decision = policy_decision_to_json(&pl->dec);
	mark_calendar_incomplete(decision, pl);
	if (decision && !api_view_decision(r, decision, &err))
		goto fail;
	dl = json_array();
	for (size_t i = 0; dl && i < pl->n_deadlines; i++)
		json_array_append_new(dl, json_pack("{s:s,s:I,s:s}", "name",
			pl->deadlines_out[i].name, "after_ms", (json_int_t)pl->deadlines_out[i].after_ms,
			"on_expiry", pl->deadlines_out[i].on_expiry));
	out = json_pack("{s:o,s:s,s:o*,s:b}", "decision", decision,
			"state", fsm_state_name(pl->state), "deadlines", dl,
			"stored", 0);
	decision = NULL;   /* json_pack's "o" took it, even when it failed */
	if (!out) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	req_reply_json(r, 200, out);
	goto done;
fail:
	json_decref(decision);
	req_reply_problem(r, &err);
done:
	json_decref(root);
	free(pl);
}

void api_case_get(ar_req *r)
{
	ar_err err;
	store_case_row *row;

	ar_err_init(&err);
	req_set_case(r, req_param(r, 0));
	if (!store_case_get_row(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), &row,
				&err)) {
		req_reply_problem(r, &err);
		return;
	}
	api_reply_case_row(r, 200, row);
	store_case_rows_free(row, 1);
}

void api_case_events(ar_req *r)
{
	ar_err err;
	json_t *items;

	ar_err_init(&err);
	req_set_case(r, req_param(r, 0));
	if (!store_case_events(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), &items, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (!api_view_events(r, items, &err)) {
		json_decref(items);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

static void query_time(ar_req *r, const char *name, ar_time *out, ar_err *err)
{
	const char *v = req_query(r, name);
	char ptr[64];

	*out = AR_TIME_NONE;
	if (!v)
		return;
	if (!ar_time_parse(v, out)) {
		snprintf(ptr, sizeof(ptr), "/query/%s", name);
		ar_err_fieldk(err, ptr, "field.rfc3339", NULL);
	}
}

static void query_id(ar_req *r, const char *name, const char **out, ar_err *err)
{
	const char *v = req_query(r, name);
	char ptr[64];

	*out = v;
	if (v && (!*v || !codec_utf8_len_ok(v, AR_MAX_ID_LEN))) {
		snprintf(ptr, sizeof(ptr), "/query/%s", name);
		ar_err_fieldk(err, ptr, "field.id_chars", "max", AR_INT(AR_MAX_ID_LEN), NULL);
	}
}

void api_cases_list(ar_req *r)
{
	store_list_query q;
	store *db;
	ar_err err;
	const char *v;
	store_case_row *rows = NULL;
	size_t n = 0;
	textbuf b = { 0 };
	char next[256];
	fsm_state st;
	ar_kind kind;

	static const char *const params[] = { "shop_id", "buyer_id", "order_id", "state", "kind",
					      "sku", "created_after", "created_before", "limit", "cursor",
					      NULL };

	ar_err_init(&err);
	if (!req_query_known(r, params, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	memset(&q, 0, sizeof(q));
	q.limit = LIST_DEFAULT;
	q.shop_scope = auth_scope(req_identity(r));
	query_id(r, "shop_id", &q.shop_id, &err);
	query_id(r, "buyer_id", &q.buyer_id, &err);
	query_id(r, "order_id", &q.order_id, &err);
	query_id(r, "sku", &q.sku, &err);
	q.state = req_query(r, "state");
	if (q.state && !fsm_state_parse(q.state, &st))
		ar_err_fieldk(&err, "/query/state", "field.unknown_state", "state", q.state, NULL);
	q.kind = req_query(r, "kind");
	if (q.kind && !ar_kind_parse(q.kind, &kind))
		ar_err_fieldk(&err, "/query/kind", "field.one_of", "list",
			      "refund, return, exchange, repair, complaint", NULL);
	query_time(r, "created_after", &q.created_after, &err);
	query_time(r, "created_before", &q.created_before, &err);
	v = req_query(r, "limit");
	if (v) {
		char *end;
		long lim = strtol(v, &end, 10);
		if (!*v || *end || lim < 1 || lim > LIST_MAX)
			ar_err_fieldk(&err, "/query/limit", "field.int_range", "min", AR_INT(1),
				      "max", AR_INT(LIST_MAX), NULL);
		else
			q.limit = (int)lim;
	}
	v = req_query(r, "cursor");
	if (v) {
		q.has_cursor = cursor_decode(v, &q.cursor_us, q.cursor_id, sizeof(q.cursor_id));
		if (!q.has_cursor)
			ar_err_cursor(&err, "/query/cursor");
	}
	if (ar_err_is_set(&err)) {
		req_reply_problem(r, &err);
		return;
	}
	db = req_read_db(r);
	while (!store_case_list_rows(db, &q, &rows, &n, next, sizeof(next), &err)) {
		if (!req_read_fallback(r, &db, &err)) {
			req_reply_problem(r, &err);
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!api_view_case_text(r, &rows[i].json, &rows[i].len, &err)) {
			store_case_rows_free(rows, n);
			req_reply_problem(r, &err);
			return;
		}
	}
	tb_str(&b, "{\"items\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			tb_str(&b, ",");
		tb_case(&b, &rows[i]);
	}
	tb_str(&b, "],\"next_cursor\":");
	if (next[0]) {
		/* the cursor alphabet (base64url) needs no escaping */
		tb_str(&b, "\"");
		tb_str(&b, next);
		tb_str(&b, "\"}");
	} else {
		tb_str(&b, "null}");
	}
	if (b.oom) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		req_reply_problem(r, &err);
	} else {
		req_reply_text(r, 200, "application/json", b.p, b.len);
	}
	free(b.p);
	store_case_rows_free(rows, n);
}

void api_healthz(ar_req *r)
{
	req_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_readyz(ar_req *r)
{
	ar_app *app = req_app(r);
	ar_err err;

	ar_err_init(&err);
	if (atomic_load(&app->draining)) {
		ar_err_setk(&err, 503, "draining", "detail.shutting_down", NULL);
		req_reply_problem(r, &err);
		return;
	}
	if (!store_ready(app->db, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (!sla_running(app->sla)) {
		ar_err_setk(&err, 503, "scheduler-down", "detail.scheduler_down", NULL);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

void api_policy_get(ar_req *r)
{
	ar_app *app = req_app(r);
	json_t *doc;

	ar_err err;

	pthread_rwlock_rdlock(&app->policy_lock);
	doc = policy_to_json(app->policy);
	pthread_rwlock_unlock(&app->policy_lock);
	ar_err_init(&err);
	if (!doc)
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
	if (!doc || !api_view_policy(r, doc, &err)) {
		json_decref(doc);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, doc);
}

void api_policy_put(ar_req *r)
{
	ar_app *app = req_app(r);
	ar_err err;
	size_t len;
	const char *body = req_body(r, &len), *backtest_id;
	policy *p;
	json_t *doc;

	ar_err_init(&err);
	doc = codec_parse_body(body, len, &err);
	json_decref(doc);
	if (ar_err_is_set(&err) || !api_policy_backtest_arg(r, &backtest_id, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	p = policy_load(body, len, &err);
	if (!p || !app_policy_install(app, p, true, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	api_policy_activation_record(r, backtest_id);
	pthread_rwlock_rdlock(&app->policy_lock);
	doc = policy_to_json(app->policy);
	pthread_rwlock_unlock(&app->policy_lock);
	log_kv(LOG_INFO, "policy replaced", "request_id", req_id(r), "version",
	       json_string_value(json_object_get(doc, "version")), NULL);
	req_reply_json(r, 200, doc);
}
