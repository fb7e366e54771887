/* Case actions through the state machine, the event feed, and API keys. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/caseplan.h"
#include "arbiter/casefsm.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/sla.h"
#include "arbiter/store_feed.h"
#include "arbiter/store_keys.h"

#define TEXT_MAX 4000
#define SHORT_MAX 200

/* Fields each action takes besides "action"; NULL-terminated. */
static const char *const *action_fields(fsm_action a)
{
	static const char *const none[] = { "action", NULL };
	static const char *const accept[] = { "action", "note", NULL };
	static const char *const reject[] = { "action", "reason", NULL };
	static const char *const offer[] = { "action", "refund_cents", "message", NULL };
	static const char *const receipt[] = { "action", "condition", "note", NULL };
	static const char *const ship[] = { "action", "carrier", "tracking_no", NULL };
	static const char *const escalate[] = { "action", "statement", NULL };
	static const char *const withdraw[] = { "action", "reason", NULL };
	static const char *const evidence[] = { "action", "evidence", NULL };
	static const char *const note[] = { "action", "text", "signal", NULL };
	static const char *const agreement[] = { "action", "terms", "channel", "compensation_cents", NULL };
	static const char *const ack[] = { "action", "message", NULL };
	static const char *const resolve[] = { "action", "resolution", "compensation_cents", "message", NULL };
	static const char *const rule[] = { "action", "in_favour_of", "refund_cents", "fault", "statement", NULL };
	static const char *const executed[] = { "action", "payment_ref", NULL };
	static const char *const counter[] = { "action", "refund_cents", "message", NULL };
	static const char *const report[] = { "action", "statement", NULL };

	switch (a) {
	case FSM_ACTION_ACCEPT: return accept;
	case FSM_ACTION_REJECT: return reject;
	case FSM_ACTION_OFFER: return offer;
	case FSM_ACTION_CONFIRM_RECEIPT: return receipt;
	case FSM_ACTION_SHIP_REPLACEMENT:
	case FSM_ACTION_SHIP_BACK: return ship;
	case FSM_ACTION_ESCALATE: return escalate;
	case FSM_ACTION_REOPEN: return withdraw;
	case FSM_ACTION_WITHDRAW: return withdraw;
	case FSM_ACTION_ADD_EVIDENCE: return evidence;
	case FSM_ACTION_NOTE: return note;
	case FSM_ACTION_RECORD_AGREEMENT: return agreement;
	case FSM_ACTION_ACKNOWLEDGE: return ack;
	case FSM_ACTION_RESOLVE: return resolve;
	case FSM_ACTION_RULE: return rule;
	case FSM_ACTION_REFUND_EXECUTED: return executed;
	case FSM_ACTION_RESEND:
	case FSM_ACTION_CONFIRM_DELIVERY: return accept;
	case FSM_ACTION_REPORT_MISSING: return report;
	case FSM_ACTION_COUNTER_OFFER: return counter;
	default: return none;
	}
}

static bool one_of(const char *v, const char *const set[])
{
	for (size_t i = 0; v && set[i]; i++) {
		if (strcmp(v, set[i]) == 0)
			return true;
	}
	return false;
}

static void enum_field(json_t *body, const char *key, bool required, const char *const set[],
		       const char *help, const char **out, ar_err *err)
{
	char ptr[64];

	snprintf(ptr, sizeof(ptr), "/%s", key);
	if (!codec_get_string(body, key, "", required, 64, out, err))
		return;
	if (*out && !one_of(*out, set))
		ar_err_fieldk(err, ptr, "field.one_of", "list", help, NULL);
}

/* Field readers for action bodies: a bad field is recorded in err (all of
 * them are reported together), the value left NULL / -1. */
static void want_str(json_t *o, const char *key, bool required, size_t max,
		     const char **out, ar_err *err)
{
	if (!codec_get_string(o, key, "", required, max, out, err))
		*out = NULL;
}

static void want_cents(json_t *o, const char *key, bool required, int64_t *out, ar_err *err)
{
	if (!codec_get_cents(o, key, "", required, out, err))
		*out = -1;
}

/* Validates new evidence items like case creation does and appends them
 * to a copy of the case's evidence; NULL with err on a bad item or more than
 * AR_MAX_EVIDENCE in all. */
static json_t *merged_evidence(json_t *existing, json_t *items, ar_err *err)
{
	size_t room = AR_MAX_EVIDENCE - (json_array_size(existing) < AR_MAX_EVIDENCE
					 ? json_array_size(existing) : AR_MAX_EVIDENCE);
	json_t *add, *all;

	if (room == 0) {
		ar_err_fieldk(err, "/evidence", "field.case_evidence_max", "max", AR_INT(AR_MAX_EVIDENCE), NULL);
		return NULL;
	}
	add = codec_evidence_items(items, room, err);
	if (!add)
		return NULL;
	all = json_deep_copy(existing);
	if (!all || json_array_extend(all, add)) {
		json_decref(all);
		all = NULL;
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
	}
	json_decref(add);
	return all;
}

/* "3" (the ETag as sent), W/"3" and a bare 3 all name version 3; nothing
 * else does. */
static bool parse_if_match(const char *h, int *version)
{
	bool quoted;
	long v = 0;
	size_t digits = 0;

	if (strncmp(h, "W/", 2) == 0)
		h += 2;
	quoted = *h == '"';
	h += quoted;
	while (h[digits] >= '0' && h[digits] <= '9' && digits < 10)
		v = v * 10 + (h[digits++] - '0');
	if (digits == 0 || h[0] == '0' || v < 1 || v > 1000000000)
		return false;
	h += digits;
	if (quoted && *h++ != '"')
		return false;
	if (*h)
		return false;
	*version = (int)v;
	return true;
}

static int64_t json_int(json_t *o, const char *k, int64_t dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* The 409 body: which state the case is in and what this role may do now;
 * when a deadline passed since the version the caller read, which one and
 * when (passed: the expiry event's data, or NULL). */
static void reply_not_allowed(ar_req *r, const fsm_case *fc, fsm_role role, ar_err *err,
			      json_t *passed)
{
	fsm_action acts[FSM_ACTION__COUNT];
	unsigned n = fsm_allowed(fc, role, acts, FSM_ACTION__COUNT);
	json_t *p, *arr = json_array();
	const char *dl = json_string_value(json_object_get(passed, "deadline"));
	const char *due = json_string_value(json_object_get(passed, "due_at"));

	if (dl && due) {
		/* the clock refused it, not the caller's reading of the state:
		 * say so instead of the machine's refusal */
		ar_err_init(err);
		ar_err_setk(err, 409, "deadline-passed", "detail.deadline_passed", "deadline", dl,
			    "due", due, "state", fsm_state_name(fc->state), NULL);
	}
	p = http_problem_json(err, NULL, req_lang(r));
	for (unsigned i = 0; arr && i < n && i < FSM_ACTION__COUNT; i++)
		json_array_append_new(arr, json_string(fsm_action_name(acts[i])));
	if (p) {
		json_object_set_new(p, "state", json_string(fsm_state_name(fc->state)));
		json_object_set_new(p, "allowed_actions", arr);
		json_object_set_new(p, "request_id", json_string(req_id(r)));
		arr = NULL;
		if (dl && due) {
			json_t *d = json_pack("{s:s,s:s}", "name", dl, "due_at", due);
			if (d && json_is_string(json_object_get(passed, "fired_at")))
				json_object_set(d, "fired_at", json_object_get(passed, "fired_at"));
			json_object_set_new(p, "deadline", d);
		}
	}
	json_decref(arr);
	{
		char *s = codec_dumps(p);
		req_reply_text(r, err->status, "application/problem+json", s ? s : "", s ? strlen(s) : 0);
		free(s);
	}
	json_decref(p);
}

/* The state machine's view of a case as store_case_get read it. */
static bool case_of(json_t *cur, fsm_case *fc, ar_err *err)
{
	memset(fc, 0, sizeof(*fc));
	if (!ar_kind_parse(json_string_value(json_object_get(cur, "kind")), &fc->kind) ||
	    !fsm_state_parse(json_string_value(json_object_get(cur, "state")), &fc->state)) {
		ar_err_setk(err, 500, "internal", "detail.case_unreadable", NULL);
		return false;
	}
	fc->manual_review = json_is_true(json_object_get(cur, "manual_review"));
	fc->has_offer = json_is_integer(json_object_get(cur, "offer_cents"));
	fc->agreement_pending = json_is_true(json_object_get(cur, "agreement_pending"));
	fc->goods_missing = json_string_value(json_object_get(cur, "reason")) &&
			    strcmp(json_string_value(json_object_get(cur, "reason")), "missing_item") == 0;
	fc->has_counter = json_is_integer(json_object_get(cur, "counter_cents"));
	fc->rounds_left = json_is_true(json_object_get(cur, "rounds_left"));
	return true;
}

/*
 * The clock rule on the request path: the deadline `due` (store_case_get's
 * "due") has passed, so its expiry is written first, exactly as the
 * scheduler would write it. true when it is written, or when someone else
 * (the scheduler, another request) wrote the case first: either way the
 * caller reads the case again.
 */
static bool expire_due(ar_app *app, const char *id, json_t *cur, json_t *due, ar_err *err)
{
	store_claimed c;
	fsm_case fc;
	fsm_deadline dl;
	store_change ch;
	caseplan_fired f;
	store_case_row *row = NULL;
	json_t *data = NULL, *refund = NULL;
	int64_t due_ms = json_int(due, "due_ms", 0);
	bool ok = false;

	if (!case_of(cur, &fc, err))
		return false;
	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.shop_id, sizeof(c.shop_id), "%s",
		 json_string_value(json_object_get(cur, "shop_id")) ?
		 json_string_value(json_object_get(cur, "shop_id")) : "");
	c.version = (int)json_int(cur, "version", 0);
	c.kind = fc.kind;
	c.state = fc.state;
	c.manual_review = fc.manual_review;
	c.has_offer = fc.has_offer;
	c.agreement_pending = fc.agreement_pending;
	c.goods_missing = fc.goods_missing;
	c.has_counter = fc.has_counter;
	c.rounds_left = fc.rounds_left;
	c.counter_cents = json_int(cur, "counter_cents", -1);
	c.decision = json_object_get(cur, "decision");   /* borrowed */
	if (!fsm_deadline_parse(json_string_value(json_object_get(due, "name")), &dl)) {
		ar_err_setk(err, 500, "internal", "detail.deadline_unreadable", NULL);
		return false;
	}
	if (!caseplan_expiry(app, &c, dl, (int)json_int(due, "armed_version", 0), due_ms,
			     CASEPLAN_BY_REQUEST, &ch, &f, &data, &refund, err)) {
		/* deadlines are armed only in states they expire from: one
		 * that cannot expire would hold the case forever */
		if (!ar_err_is_set(err))
			ar_err_setk(err, 500, "internal", "detail.deadline_cannot_expire", "deadline",
				    fsm_deadline_name(dl), "state", fsm_state_name(fc.state), NULL);
		goto done;
	}
	if (!store_case_apply(app->db, &ch, &row, err)) {
		if (err->status == 412) {   /* written by someone else first */
			ar_err_init(err);
			ok = true;
		}
		goto done;
	}
	metrics_transition(f.action, FSM_ROLE_SYSTEM);
	metrics_sla_fired(dl, (double)(app_now() - due_ms) / 1000.0);
	if (f.breach)
		metrics_sla_breach(dl);
	if (f.refund_cents >= 0)
		metrics_refund("seller_silent", f.currency, f.refund_cents, true);
	for (size_t i = 0; i < ch.n_deadlines; i++) {
		if (ch.deadlines[i].after_ms <= SLA_HORIZON_MS)
			sla_poke(app->sla);
	}
	ok = true;
done:
	store_case_rows_free(row, row ? 1 : 0);
	json_decref(data);
	json_decref(refund);
	return ok;
}

/* What an action's body carries, decoded against the case it acts on. */
typedef struct {
	fsm_action act;          /* may differ from the requested one (receipt) */
	const char *s1, *s2;
	int64_t amount;
	int64_t max_cents;       /* the most owed: caps offers and rulings */
	int64_t decided_cents;   /* what accepting pays: the request, at most max */
	fsm_favour favour;
	json_t *evidence;        /* owned: the case's evidence with the new items */
} action_args;

/* Compensation (an agreement's, a resolution's) is at most what the order
 * was worth, or the decision's maximum when that is more. */
static void check_compensation(json_t *cur, const action_args *a, ar_err *err)
{
	int64_t cap = json_int(json_object_get(cur, "order"), "price_cents", 0) +
		      json_int(json_object_get(cur, "order"), "shipping_fee_cents", 0);

	if (a->max_cents > cap)
		cap = a->max_cents;
	if (a->amount > cap)
		ar_err_fieldk(err, "/compensation_cents", "field.amount_over_cap",
			      "amount", AR_MONEY(a->amount), "cap", AR_MONEY(cap), NULL);
}

static void decode_args(json_t *root, json_t *cur, action_args *a, ar_err *err)
{
	static const char *const conditions[] = { "as_sent", "damaged_by_buyer", "not_received", NULL };
	static const char *const channels[] = { "phone", "chat", NULL };
	static const char *const resolutions[] = { "refund", "compensation", "replacement",
						   "apology", "explanation", NULL };
	static const char *const favours[] = { "buyer", "seller", "split", NULL };
	static const char *const faults[] = { "seller", "buyer", "carrier", NULL };
	static const char *const signals[] = { "review_extortion", NULL };
	json_t *decision = json_object_get(cur, "decision");
	ar_kind kind = AR_KIND_REFUND;

	if (!ar_kind_parse(json_string_value(json_object_get(cur, "kind")), &kind))
		kind = AR_KIND_REFUND;
	/* total_cents is what accepting pays (the requested amount, at most
	 * the most owed); max_cents, the most owed, caps offers and rulings.
	 * Decisions stored before max_cents existed pay and cap at total. */
	a->decided_cents = json_int(json_object_get(decision, "refund"), "total_cents", 0);
	a->max_cents = json_int(json_object_get(decision, "refund"), "max_cents", a->decided_cents);
	/* Exchanges, repairs and complaints owe no refund by policy, but an
	 * offer or a ruling may still pay out, up to what the order was worth. */
	if (kind == AR_KIND_EXCHANGE || kind == AR_KIND_REPAIR || kind == AR_KIND_COMPLAINT) {
		int64_t worth = json_int(json_object_get(cur, "order"), "price_cents", 0) +
				json_int(json_object_get(cur, "order"), "shipping_fee_cents", 0);
		if (worth > a->max_cents)
			a->max_cents = worth;
	}

	switch (a->act) {
	case FSM_ACTION_REJECT:
		want_str(root, "reason", true, TEXT_MAX, &a->s1, err);
		break;
	case FSM_ACTION_OFFER:
	case FSM_ACTION_COUNTER_OFFER:
		want_str(root, "message", false, TEXT_MAX, &a->s2, err);
		if (codec_get_cents(root, "refund_cents", "", true, &a->amount, err)) {
			/* 001: concessions come in stages, each above the last
			 * offer; a counter asks for more than the offer, and a
			 * seller who would pay the counter accepts it instead */
			int64_t offer = json_int(cur, "offer_cents", -1);
			int64_t counter = json_int(cur, "counter_cents", -1);
			if (a->amount <= 0)
				ar_err_fieldk(err, "/refund_cents", "field.positive", NULL);
			else if (a->amount > a->max_cents)
				ar_err_fieldk(err, "/refund_cents", "field.amount_over_cap",
					      "amount", AR_MONEY(a->amount), "cap",
					      AR_MONEY(a->max_cents), NULL);
			else if (offer >= 0 && a->amount <= offer)
				ar_err_fieldk(err, "/refund_cents", "field.not_above_offer",
					      "amount", AR_MONEY(a->amount), "offer", AR_MONEY(offer),
					      NULL);
			else if (a->act == FSM_ACTION_OFFER && counter >= 0 && a->amount >= counter)
				ar_err_fieldk(err, "/refund_cents", "field.not_below_counter",
					      "amount", AR_MONEY(a->amount), "counter",
					      AR_MONEY(counter), NULL);
		}
		break;
	case FSM_ACTION_RESEND:
	case FSM_ACTION_CONFIRM_DELIVERY:
		want_str(root, "note", false, TEXT_MAX, &a->s1, err);
		break;
	case FSM_ACTION_REPORT_MISSING:
		want_str(root, "statement", true, TEXT_MAX, &a->s1, err);
		break;
	case FSM_ACTION_CONFIRM_RECEIPT:
		enum_field(root, "condition", true, conditions,
			   "as_sent, damaged_by_buyer, not_received", &a->s1, err);
		want_str(root, "note", false, TEXT_MAX, &a->s2, err);
		/* A disputed receipt goes to the platform: the machine's reject. */
		if (a->s1 && strcmp(a->s1, "as_sent") != 0)
			a->act = FSM_ACTION_REJECT;
		break;
	case FSM_ACTION_SHIP_REPLACEMENT:
	case FSM_ACTION_SHIP_BACK:
		want_str(root, "carrier", true, 64, &a->s1, err);
		want_str(root, "tracking_no", true, 64, &a->s2, err);
		break;
	case FSM_ACTION_ESCALATE:
		want_str(root, "statement", true, TEXT_MAX, &a->s1, err);
		break;
	case FSM_ACTION_WITHDRAW:
	case FSM_ACTION_ACCEPT:
		want_str(root, a->act == FSM_ACTION_ACCEPT ? "note" : "reason", false, TEXT_MAX,
			 &a->s1, err);
		break;
	case FSM_ACTION_ADD_EVIDENCE:
		a->evidence = merged_evidence(json_object_get(cur, "evidence"),
					      json_object_get(root, "evidence"), err);
		break;
	case FSM_ACTION_NOTE:
		want_str(root, "text", true, TEXT_MAX, &a->s1, err);
		/* 000: a demand for money to remove a review is a sign of a
		 * malicious complaint; it routes the case to a human, never
		 * to a rejection. */
		enum_field(root, "signal", false, signals, "review_extortion", &a->s2, err);
		break;
	case FSM_ACTION_RECORD_AGREEMENT:
		want_str(root, "terms", true, TEXT_MAX, &a->s1, err);
		enum_field(root, "channel", true, channels, "phone, chat", &a->s2, err);
		want_cents(root, "compensation_cents", false, &a->amount, err);
		check_compensation(cur, a, err);
		break;
	case FSM_ACTION_ACKNOWLEDGE:
		want_str(root, "message", false, TEXT_MAX, &a->s1, err);
		break;
	case FSM_ACTION_RESOLVE:
		enum_field(root, "resolution", true, resolutions,
			   "refund, compensation, replacement, apology, explanation", &a->s1, err);
		want_str(root, "message", false, TEXT_MAX, &a->s2, err);
		if (codec_get_cents(root, "compensation_cents", "", false, &a->amount, err))
			check_compensation(cur, a, err);
		break;
	case FSM_ACTION_RULE:
		enum_field(root, "in_favour_of", true, favours, "buyer, seller, split", &a->s1, err);
		enum_field(root, "fault", true, faults, "seller, buyer, carrier", &a->s2, err);
		{
			const char *st;
			want_str(root, "statement", true, TEXT_MAX, &st, err);
		}
		if (codec_get_cents(root, "refund_cents", "", false, &a->amount, err) && a->s1 &&
		    fsm_favour_parse(a->s1, &a->favour)) {
			if (a->favour == FSM_FAVOUR_SELLER && a->amount > 0)
				ar_err_fieldk(err, "/refund_cents", "field.seller_ruling_no_refund", NULL);
			else if (a->favour == FSM_FAVOUR_SPLIT && a->amount <= 0)
				ar_err_fieldk(err, "/refund_cents", "field.split_needs_amount", NULL);
			else if (a->amount > a->max_cents)
				ar_err_fieldk(err, "/refund_cents", "field.amount_over_cap",
					      "amount", AR_MONEY(a->amount), "cap",
					      AR_MONEY(a->max_cents), NULL);
			if (a->favour == FSM_FAVOUR_BUYER && a->amount < 0)
				a->amount = a->decided_cents;
		}
		break;
	case FSM_ACTION_REFUND_EXECUTED:
		want_str(root, "payment_ref", true, SHORT_MAX, &a->s1, err);
		break;
	default:
		break;
	}
}

/* How often an action reads the case again after losing a race (to an
 * expiry it then applies, or to the scheduler) before it gives up. */
#define ACTION_ROUNDS 4

/*
 * An action is judged at the instant it is written, by the database's
 * clock: a deadline of the case due by then is applied first (expire_due,
 * or the scheduler got there), and the action is judged against the state
 * that left. If-Match may name the version before such expiries: only the
 * clock moved the case since the caller read it.
 */
void api_case_action(ar_req *r)
{
	ar_app *app = req_app(r);
	const ar_identity *who = req_identity(r);
	const char *id = req_param(r, 0), *ifm = req_header(r, "If-Match");
	ar_err err;
	size_t len;
	const char *body = req_body(r, &len), *action_s = NULL;
	json_t *root = NULL, *cur = NULL, *data = NULL;
	store_case_row *out = NULL;
	json_t *refund_data = NULL, *comp_data = NULL, *decision;
	int64_t compensation = 0;
	int version = 0, cv = 0;
	int64_t refund_total = -1;
	fsm_action requested;
	fsm_case fc;
	fsm_result res;
	store_change ch;
	action_args a;
	const char *why = "decided";

	if (req_idem_applied(r)) {
		/* this key's first attempt changed the case; its reply was lost */
		api_case_get(r);
		req_add_header(r, "Idempotent-Replayed", "true");
		return;
	}
	ar_err_init(&err);
	memset(&a, 0, sizeof(a));
	req_set_case(r, id);
	if (!ifm) {
		ar_err_setk(&err, 428, "precondition-required", "detail.if_match_required", NULL);
		goto fail;
	}
	if (!parse_if_match(ifm, &version)) {
		ar_err_setk(&err, 412, "stale", "detail.if_match_syntax", NULL);
		goto fail;
	}
	root = codec_parse_body(body, len, &err);
	if (!root)
		goto fail;
	if (!codec_get_string(root, "action", "", true, 64, &action_s, &err))
		goto fail;
	if (!fsm_action_parse(action_s, &requested) || fsm_action_is_system(requested)) {
		ar_err_fieldk(&err, "/action", "field.unknown_action", "action", action_s, NULL);
		goto fail;
	}
	if (!codec_check_fields(root, action_fields(requested), "", &err))
		goto fail;

	for (int round = 1;; round++) {
		json_t *due;
		int64_t acted;

		json_decref(cur);
		json_decref(a.evidence);
		memset(&a, 0, sizeof(a));
		if (!store_case_get(app->db, id, auth_scope(who), version, &cur, &err))
			goto fail;
		cv = (int)json_int(cur, "version", 0);
		acted = json_int(cur, "acted_version", cv);
		if (version > cv || version < acted) {
			ar_err_setk(&err, 412, "stale", "detail.version_differs", "current", AR_INT(cv),
				    "sent", AR_INT(version), NULL);
			goto fail;
		}
		due = json_object_get(cur, "due");
		if (json_is_object(due)) {
			if (round == ACTION_ROUNDS) {
				ar_err_setk(&err, 503, "overloaded", "detail.due_deadline_busy", NULL);
				goto fail;
			}
			if (!expire_due(app, id, cur, due, &err))
				goto fail;
			continue;
		}
		if (!case_of(cur, &fc, &err))
			goto fail;
		decision = json_object_get(cur, "decision");
		a.act = requested;
		decode_args(root, cur, &a, &err);
		if (ar_err_is_set(&err))
			goto fail;
		/* 001: major complaints go to experienced agents only. */
		if (fc.kind == AR_KIND_COMPLAINT && who->role == FSM_ROLE_AGENT && !who->senior &&
		    (a.act == FSM_ACTION_ACKNOWLEDGE || a.act == FSM_ACTION_RESOLVE ||
		     a.act == FSM_ACTION_ESCALATE) &&
		    json_string_value(json_object_get(decision, "severity")) &&
		    strcmp(json_string_value(json_object_get(decision, "severity")), "major") == 0) {
			ar_err_setk(&err, 403, "senior-agent-required", "detail.senior_only", NULL);
			goto fail;
		}
		if (a.act == FSM_ACTION_RULE ? !fsm_apply_rule(&fc, who->role, a.favour, &res, &err)
					     : !fsm_apply(&fc, a.act, who->role, &res, &err)) {
			if (err.status == 409) {
				reply_not_allowed(r, &fc, who->role, &err,
						  cv != version ? json_object_get(cur, "passed") : NULL);
				goto done;
			}
			goto fail;
		}

		memset(&ch, 0, sizeof(ch));
		ch.case_id = id;
		ch.shop_scope = auth_scope(who);
		ch.expected_version = cv;
		ch.state = fsm_state_name(res.to);
		ch.outcome = res.outcome != FSM_OUTCOME_NONE ? fsm_outcome_name(res.outcome) : NULL;
		if (a.act == FSM_ACTION_REFUND_EXECUTED &&
		    json_int(cur, "refund_cents", a.max_cents) < a.max_cents)
			ch.outcome = fsm_outcome_name(FSM_OUTCOME_PARTIALLY_REFUNDED);
		ch.offer = res.sets_offer ? STORE_SET : res.clears_offer ? STORE_CLEAR : STORE_KEEP;
		ch.offer_cents = a.amount;
		ch.agreement = res.sets_agreement ? STORE_SET
			       : res.clears_agreement ? STORE_CLEAR : STORE_KEEP;
		ch.agreement_cents = a.act == FSM_ACTION_RECORD_AGREEMENT ? a.amount : -1;
		ch.counter = res.sets_counter ? STORE_SET : res.clears_counter ? STORE_CLEAR : STORE_KEEP;
		ch.counter_cents = a.amount;
		ch.counts_round = res.counts_round;
		ch.refund_cents = -1;
		ch.manual_review = a.act == FSM_ACTION_NOTE && a.s2 ? STORE_SET : STORE_KEEP;
		ch.evidence = a.evidence;
		ch.actor_role = fsm_role_name(who->role);
		ch.actor_id = who->key_id;
		ch.idem_key = req_idem_claim(r);
		ch.idem_scope = ch.idem_key ? who->key_id : NULL;
		refund_total = -1;
		switch (res.refund) {
		case FSM_REFUND_DECIDED: refund_total = a.decided_cents; why = "accepted"; break;
		case FSM_REFUND_OFFER:
			refund_total = json_int(cur, "offer_cents", 0);
			why = "offer_accepted";
			break;
		case FSM_REFUND_RULING: refund_total = a.amount; why = "ruling"; break;
		case FSM_REFUND_COUNTER:
			refund_total = json_int(cur, "counter_cents", 0);
			why = "counter_accepted";
			break;
		case FSM_REFUND_NONE:
			if (a.act == FSM_ACTION_RESOLVE && a.amount > 0) {
				refund_total = a.amount;
				why = "complaint_compensation";
			}
			break;
		}
		if (res.state_changed || res.rearms) {
			const char *sev = json_string_value(json_object_get(decision, "severity"));
			ch.replace_deadlines = true;
			if (!caseplan_deadlines(app, fc.kind,
						json_string_value(json_object_get(cur, "shop_id")),
						sev && strcmp(sev, "major") == 0, fc.manual_review,
						res.deadlines, ch.deadlines, &ch.n_deadlines, &err))
				goto fail;
		}
		json_decref(data);
		json_decref(refund_data);
		json_decref(comp_data);
		refund_data = comp_data = NULL;
		compensation = 0;
		data = json_deep_copy(root);
		if (!data)
			goto oom;
		json_object_del(data, "action");
		if (a.act == FSM_ACTION_REJECT && json_object_get(root, "condition"))
			json_object_set_new(data, "disputed_receipt", json_true());
		ch.events[ch.n_events++] = (store_event){ action_s, fsm_state_name(fc.state), ch.state,
							  data };
		/* 001: an agreement the buyer confirmed is paid, once: the
		 * confirmation clears agreement_pending in the same write,
		 * so a second confirmation finds nothing to confirm */
		if (a.act == FSM_ACTION_CONFIRM_AGREEMENT && json_int(cur, "agreement_cents", 0) > 0) {
			json_t *rf = json_object_get(decision, "refund");
			const char *cur_s = json_string_value(json_object_get(rf, "currency"));
			compensation = json_int(cur, "agreement_cents", 0);
			comp_data = json_pack("{s:I,s:s,s:s}", "compensation_cents",
					      (json_int_t)compensation, "currency", cur_s ? cur_s : "CNY",
					      "reason", "agreement_confirmed");
			if (!comp_data)
				goto oom;
			ch.events[ch.n_events++] = (store_event){ "compensation.instructed", ch.state,
								  ch.state, comp_data };
		}
		if (refund_total > 0) {
			ch.refund_cents = refund_total;
			refund_data = policy_refund_instruction(json_object_get(decision, "refund"),
								refund_total, why);
			if (!refund_data)
				goto oom;
			ch.events[ch.n_events++] = (store_event){ "refund.instructed", ch.state, ch.state,
								  refund_data };
		}
		if (store_case_apply(app->db, &ch, &out, &err))
			break;
		/* a deadline came due or the scheduler wrote first: read again */
		if (err.status != 412 || round == ACTION_ROUNDS)
			goto fail;
		ar_err_init(&err);
	}
	for (size_t i = 0; i < ch.n_deadlines; i++) {
		if (ch.deadlines[i].after_ms <= SLA_HORIZON_MS)
			sla_poke(app->sla);
	}
	metrics_transition(a.act, who->role);
	if (refund_data)
		metrics_refund(why, json_string_value(json_object_get(refund_data, "currency")),
			       refund_total, false);
	if (comp_data)
		metrics_refund("agreement_confirmed",
			       json_string_value(json_object_get(comp_data, "currency")),
			       compensation, false);
	api_reply_case_row(r, 200, out);
	goto done;
oom:
	ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
fail:
	req_reply_problem(r, &err);
done:
	store_case_rows_free(out, out ? 1 : 0);
	json_decref(refund_data);
	json_decref(comp_data);
	json_decref(data);
	json_decref(a.evidence);
	json_decref(cur);
	json_decref(root);
}

void api_events_feed(ar_req *r)
{
	ar_err err;
	const char *v = req_query(r, "limit");
	int limit = 100;
	json_t *items;
	char next[64];
	static const char *const params[] = { "after", "limit", NULL };

	ar_err_init(&err);
	if (!req_query_known(r, params, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (!*v || *end || n < 1 || n > 1000) {
			ar_err_fieldk(&err, "/query/limit", "field.int_range", "min", AR_INT(1), "max", AR_INT(1000), NULL);
			req_reply_problem(r, &err);
			return;
		}
		limit = (int)n;
	}
	if (!store_feed(req_app(r)->db, req_query(r, "after"), auth_scope(req_identity(r)), limit,
			&items, next, sizeof(next), &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (!api_view_events(r, items, &err)) {
		json_decref(items);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, json_pack("{s:o,s:s}", "items", items, "next_cursor", next));
}

void api_keys_list(ar_req *r)
{
	ar_err err;
	json_t *items;
	static const char *const params[] = { NULL };

	ar_err_init(&err);
	if (!req_query_known(r, params, &err) || !store_key_list(req_app(r)->db, &items, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

void api_keys_create(ar_req *r)
{
	static const char *const fields[] = { "role", "shops", "name", "senior", NULL };
	ar_err err;
	size_t len;
	const char *body = req_body(r, &len), *role = NULL, *name = NULL;
	json_t *root, *shops, *it;
	char list[1200] = "", key[96], kid[AUTH_ID_LEN + 1], loc[64];
	size_t pos = 0, i;

	ar_err_init(&err);
	root = codec_parse_body(body, len, &err);
	if (!root)
		goto fail;
	if (!codec_check_fields(root, fields, "", &err))
		goto fail;
	want_str(root, "role", true, 16, &role, &err);
	want_str(root, "name", true, SHORT_MAX, &name, &err);
	shops = json_object_get(root, "shops");
	if (shops && !json_is_null(shops)) {
		if (json_is_array(shops) && json_array_size(shops) == 0) {
			ar_err_fieldk(&err, "/shops", "field.shops_empty", NULL);
		} else if (!json_is_array(shops)) {
			ar_err_fieldk(&err, "/shops", "field.shop_ids", NULL);
		} else {
			json_array_foreach(shops, i, it) {
				const char *sv = json_string_value(it);
				if (!sv || strchr(sv, ',') || pos + strlen(sv) + 2 >= sizeof(list)) {
					ar_err_fieldk(&err, "/shops", "field.shop_ids", NULL);
					break;
				}
				pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%s%s",
							pos ? "," : "", sv);
			}
		}
	}
	if (json_object_get(root, "senior") && !json_is_boolean(json_object_get(root, "senior")))
		ar_err_fieldk(&err, "/senior", "field.bool", NULL);
	if (ar_err_is_set(&err))
		goto fail;
	if (!auth_key_create(req_app(r)->db, role, list, name,
			     json_is_true(json_object_get(root, "senior")), key, sizeof(key), kid, &err))
		goto fail;
	snprintf(loc, sizeof(loc), "/v1/keys/%s", kid);
	req_add_header(r, "Location", loc);
	req_reply_json(r, 201, json_pack("{s:s,s:s,s:s,s:O?,s:s}", "id", kid, "key", key,
					 "role", role, "shops", shops, "name", name));
	json_decref(root);
	return;
fail:
	json_decref(root);
	req_reply_problem(r, &err);
}

void api_key_revoke(ar_req *r)
{
	ar_err err;

	ar_err_init(&err);
	if (!store_key_revoke(req_app(r)->db, req_param(r, 0), &err)) {
		req_reply_problem(r, &err);
		return;
	}
	req_reply_text(r, 204, NULL, "", 0);
}
