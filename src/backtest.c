/* Policy backtests: re-deciding a recorded case under a draft, and the bounded report comparing both (pure). */
#include "arbiter/backtest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/codec.h"
#include "arbiter/errmsg.h"

#define N_OUTCOMES 4
#define SHOP_SLOTS 512      /* open addressing, at most BACKTEST_MAX_SHOPS used */
#define RULE_SLOTS 256      /* at most BACKTEST_MAX_RULE_IDS used */

void backtest_open_state(ar_kind kind, policy_outcome outcome, fsm_state *state,
			 bool *manual_review, bool *instruct_refund)
{
	*state = fsm_initial_state(kind);
	*manual_review = false;
	*instruct_refund = false;
	switch (outcome) {
	case POLICY_OUTCOME_AUTO_APPROVE:
		if (kind == AR_KIND_REFUND) {
			*state = FSM_STATE_REFUND_PENDING;
			*instruct_refund = true;
		} else if (kind != AR_KIND_COMPLAINT) {
			*state = FSM_STATE_AWAITING_BUYER_RETURN;
		}
		break;
	case POLICY_OUTCOME_MANUAL_REVIEW:
		*manual_review = true;
		break;
	case POLICY_OUTCOME_INELIGIBLE:
		if (kind != AR_KIND_COMPLAINT)
			*state = FSM_STATE_AWAITING_BUYER_REPLY;
		break;
	case POLICY_OUTCOME_SELLER_REVIEW:
		break;
	}
}

json_t *backtest_inputs_json(json_t *request, const policy_history *h, int cases_cap,
			     int shops_cap, ar_time decided_at, const policy_arming *armed,
			     size_t n_armed)
{
	json_t *arr = json_array(), *o;

	for (size_t i = 0; arr && i < n_armed; i++) {
		o = armed[i].working_days > 0
			? json_pack("{s:s,s:s,s:i}", "name", armed[i].name, "on_expiry",
				    armed[i].on_expiry, "working_days", armed[i].working_days)
			: json_pack("{s:s,s:s,s:I}", "name", armed[i].name, "on_expiry",
				    armed[i].on_expiry, "after_ms", (json_int_t)armed[i].after_ms);
		if (json_array_append_new(arr, o)) {
			json_decref(arr);
			return NULL;
		}
	}
	if (!arr)
		return NULL;
	return json_pack("{s:O,s:I,s:{s:I,s:I,s:I,s:b,s:i,s:i},s:o}",
			 "request", request, "decided_at_ms", (json_int_t)decided_at,
			 "history", "cases_7d", (json_int_t)h->cases_last_7d,
			 "same_text_other_shops_30d", (json_int_t)h->same_text_other_shops_30d,
			 "complaints_same_order", (json_int_t)h->complaints_same_order,
			 "sku_batch_defect", h->sku_batch_defect,
			 "cases_7d_cap", cases_cap, "other_shops_30d_cap", shops_cap,
			 "armed", arr);
}

static int64_t jint(const json_t *o, const char *k, int64_t dflt)
{
	const json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* Why a case cannot be replayed: a per-case entry of the report, never an
 * HTTP reply (so the type is passed in, not one of the API's problem
 * types at the call). */
static void cannot_replay(ar_err *err, const char *type, const char *detail)
{
	ar_err_set(err, 422, type, "Cannot replay", "%s", detail);
}

bool backtest_replay(const policy *p, const json_t *open_data, backtest_replayed *out,
		     ar_err *err)
{
	const json_t *inputs = json_object_get(open_data, "inputs");
	const json_t *hist = json_object_get(inputs, "history");
	json_t *request = json_object_get(inputs, "request");
	ar_case_input in;
	policy_history h;
	ar_err derr;
	int cases_cap, shops_cap;
	unsigned mask;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(request) || !json_is_object(hist) ||
	    !json_is_integer(json_object_get(inputs, "decided_at_ms"))) {
		cannot_replay(err, "inputs-not-recorded",
			      "inputs not recorded: the case opened before its open event kept them");
		return false;
	}
	ar_err_init(&derr);
	if (!codec_decode_case(request, &in, &derr)) {
		char why[AR_ERR_TEXT * 2];
		snprintf(why, sizeof(why), "the recorded request no longer decodes: %.200s%s%.100s",
			 derr.n_fields ? derr.fields[0].pointer : derr.detail,
			 derr.n_fields ? " " : "", derr.n_fields ? derr.fields[0].message : "");
		cannot_replay(err, "inputs-invalid", why);
		return false;
	}
	h.cases_last_7d = jint(hist, "cases_7d", 0);
	h.same_text_other_shops_30d = jint(hist, "same_text_other_shops_30d", 0);
	h.complaints_same_order = jint(hist, "complaints_same_order", 0);
	h.sku_batch_defect = json_is_true(json_object_get(hist, "sku_batch_defect"));
	/* a count the store stopped at its cap means "at least"; a draft
	 * whose threshold lies beyond that cap cannot be decided from it */
	policy_risk_caps(p, &cases_cap, &shops_cap);
	if ((cases_cap > jint(hist, "cases_7d_cap", 0) &&
	     h.cases_last_7d >= jint(hist, "cases_7d_cap", 0) + 1) ||
	    (shops_cap > jint(hist, "other_shops_30d_cap", 0) &&
	     h.same_text_other_shops_30d >= jint(hist, "other_shops_30d_cap", 0))) {
		cannot_replay(err, "history-capped",
			      "a risk count was recorded only up to the cap the deciding policy "
			      "needed; the draft's threshold needs more");
		return false;
	}
	if (!policy_adjudicate(p, &in, &h, (ar_time)jint(inputs, "decided_at_ms", 0), &out->dec,
			       err))
		return false;
	backtest_open_state(in.kind, out->dec.outcome, &out->state, &out->manual_review,
			    &out->instruct_refund);
	mask = fsm_deadlines_for(in.kind, out->state);
	return policy_armings(p, in.kind, in.order.shop_id, out->dec.major, out->manual_review,
			      mask, out->armed, BACKTEST_MAX_ARMED, &out->n_armed, err);
}

/* ------------------------------------------------------------------ */
/* the report                                                          */

typedef struct {
	int64_t n;
	int n_ex;
	char ex[BACKTEST_EXAMPLES][AR_CASE_ID_LEN + 1];
} counted;

typedef struct {
	char id[AR_MAX_ID_LEN + 1];
	int64_t cases, refund_before, refund_after, penalty_before, penalty_after;
} shop_row;

typedef struct {
	char id[POLICY_RULE_ID_LEN];
	int64_t before, after;
} rule_row;

typedef struct {
	int64_t day;   /* days since the epoch, UTC */
	int64_t cases, refund_before, refund_after;
} day_row;

typedef struct {
	char type[64];
	counted c;
	char reason[BACKTEST_EXAMPLES][POLICY_RULE_REASON_LEN];
} error_row;

struct backtest_report {
	int examples;
	int64_t seen, replayed, unchanged, money_changed, rules_changed;
	counted changed[N_OUTCOMES][N_OUTCOMES];   /* [before][after], from != to */
	int64_t before_n[N_OUTCOMES], after_n[N_OUTCOMES];
	int64_t refund_before, refund_after, penalty_before, penalty_after;
	counted money_examples;
	char currency[AR_CURRENCY_LEN + 1];
	size_t n_shops;
	int shop_slot[SHOP_SLOTS];     /* index + 1 into shops, 0 empty */
	shop_row shops[BACKTEST_MAX_SHOPS];
	shop_row other_shops;
	size_t n_rules;
	int rule_slot[RULE_SLOTS];
	rule_row rules[BACKTEST_MAX_RULE_IDS];
	int64_t rules_untracked;
	size_t n_days;
	day_row days[BACKTEST_MAX_DAYS];
	int64_t days_untracked;
	int64_t dl_longer, dl_shorter, dl_same, dl_other_kind, dl_only_before, dl_only_after;
	int64_t auto_open_before, auto_open_after;
	int64_t silence_before, silence_after, silence_unknown;
	size_t n_errors;
	error_row errors[BACKTEST_MAX_ERROR_KINDS];
	int64_t errors_total;
	/* one case's replay, kept here: a fresh block of this size per case
	 * made malloc consolidate its free lists every time */
	backtest_replayed scratch;
};

backtest_report *backtest_report_new(int examples)
{
	backtest_report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->examples = examples < 0 ? 0 : examples > BACKTEST_EXAMPLES ? BACKTEST_EXAMPLES : examples;
	return r;
}

void backtest_report_free(backtest_report *r)
{
	free(r);
}

int64_t backtest_report_seen(const backtest_report *r)
{
	return r->seen;
}

static void count(const backtest_report *r, counted *c, const char *case_id)
{
	c->n++;
	if (c->n_ex < r->examples && case_id)
		snprintf(c->ex[c->n_ex++], sizeof(c->ex[0]), "%s", case_id);
}

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static shop_row *shop_of(backtest_report *r, const char *shop)
{
	uint32_t i = fnv(shop) % SHOP_SLOTS;

	for (;; i = (i + 1) % SHOP_SLOTS) {
		int k = r->shop_slot[i];
		if (k == 0)
			break;
		if (strcmp(r->shops[k - 1].id, shop) == 0)
			return &r->shops[k - 1];
	}
	if (r->n_shops >= BACKTEST_MAX_SHOPS || strlen(shop) > AR_MAX_ID_LEN)
		return &r->other_shops;
	snprintf(r->shops[r->n_shops].id, sizeof(r->shops[0].id), "%s", shop);
	r->shop_slot[i] = (int)++r->n_shops;
	return &r->shops[r->n_shops - 1];
}

static rule_row *rule_of(backtest_report *r, const char *id)
{
	uint32_t i = fnv(id) % RULE_SLOTS;

	for (;; i = (i + 1) % RULE_SLOTS) {
		int k = r->rule_slot[i];
		if (k == 0)
			break;
		if (strcmp(r->rules[k - 1].id, id) == 0)
			return &r->rules[k - 1];
	}
	if (r->n_rules >= BACKTEST_MAX_RULE_IDS || strlen(id) >= POLICY_RULE_ID_LEN)
		return NULL;
	snprintf(r->rules[r->n_rules].id, sizeof(r->rules[0].id), "%s", id);
	r->rule_slot[i] = (int)++r->n_rules;
	return &r->rules[r->n_rules - 1];
}

/* Cases stream in creation order, so a day is nearly always the last. */
static day_row *day_of(backtest_report *r, ar_time at)
{
	int64_t day = at >= 0 ? at / AR_MS_PER_DAY : -((-at + AR_MS_PER_DAY - 1) / AR_MS_PER_DAY);

	for (size_t i = r->n_days; i > 0; i--)
		if (r->days[i - 1].day == day)
			return &r->days[i - 1];
	if (r->n_days >= BACKTEST_MAX_DAYS)
		return NULL;
	r->days[r->n_days].day = day;
	return &r->days[r->n_days++];
}

static int outcome_index(const char *name)
{
	for (int i = 0; name && i < N_OUTCOMES; i++)
		if (strcmp(policy_outcome_name((policy_outcome)i), name) == 0)
			return i;
	return -1;
}

static void add_error(backtest_report *r, const char *case_id, const ar_err *e)
{
	error_row *row = NULL;
	char reason[POLICY_RULE_REASON_LEN];

	r->errors_total++;
	for (size_t i = 0; i < r->n_errors; i++)
		if (strcmp(r->errors[i].type, e->type) == 0)
			row = &r->errors[i];
	if (!row && r->n_errors < BACKTEST_MAX_ERROR_KINDS) {
		row = &r->errors[r->n_errors++];
		snprintf(row->type, sizeof(row->type), "%s", e->type);
	}
	if (!row)
		return;
	if (e->n_fields)
		snprintf(reason, sizeof(reason), "%.60s: %.130s", e->fields[0].pointer,
			 e->fields[0].message);
	else
		snprintf(reason, sizeof(reason), "%.190s", e->detail);
	if (row->c.n_ex < r->examples)
		snprintf(row->reason[row->c.n_ex], sizeof(row->reason[0]), "%s", reason);
	count(r, &row->c, case_id);
}

/* The recorded decision and the replayed one agree but for the version
 * that made them (and the calendar note a create adds). */
/* Rule traces alike but for args: a decision recorded before traces
 * carried args is not changed by the replay's having them, and args say
 * nothing the reason does not. */
static bool same_rules(const json_t *recorded, const json_t *replayed)
{
	static const char *const keys[] = { "id", "result", "reason" };
	size_t i;

	if (!json_is_array(recorded) || !json_is_array(replayed))
		return json_equal(recorded, replayed);
	if (json_array_size(recorded) != json_array_size(replayed))
		return false;
	for (i = 0; i < json_array_size(recorded); i++) {
		const json_t *a = json_array_get(recorded, i), *b = json_array_get(replayed, i);
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (!json_equal(json_object_get(a, keys[k]), json_object_get(b, keys[k])))
				return false;
		}
	}
	return true;
}

static bool same_decision(const json_t *recorded, const json_t *replayed)
{
	const char *k;
	const json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)recorded, k, v) {
		if (strcmp(k, "policy_version") == 0 || strcmp(k, "calendar_incomplete") == 0)
			continue;
		if (strcmp(k, "rules") == 0 ? !same_rules(v, json_object_get(replayed, k))
					    : !json_equal(v, json_object_get(replayed, k)))
			return false;
		n++;
	}
	return n + 1 == json_object_size(replayed);   /* the replayed one's policy_version */
}

static const json_t *armed_named(const json_t *armed, const char *name)
{
	size_t i;
	const json_t *a;

	json_array_foreach(armed, i, a) {
		const char *n = json_string_value(json_object_get(a, "name"));
		if (n && strcmp(n, name) == 0)
			return a;
	}
	return NULL;
}

static void compare_deadlines(backtest_report *r, const json_t *armed, const backtest_replayed *x)
{
	size_t i;
	const json_t *a;

	json_array_foreach(armed, i, a) {
		const char *name = json_string_value(json_object_get(a, "name"));
		const policy_arming *b = NULL;
		int64_t wd = jint(a, "working_days", 0), ms = jint(a, "after_ms", -1);

		for (size_t k = 0; name && k < x->n_armed; k++)
			if (strcmp(x->armed[k].name, name) == 0)
				b = &x->armed[k];
		if (!b)
			r->dl_only_before++;
		else if ((wd > 0) != (b->working_days > 0))
			r->dl_other_kind++;
		else if (wd > 0 ? b->working_days > wd : b->after_ms > ms)
			r->dl_longer++;
		else if (wd > 0 ? b->working_days < wd : b->after_ms < ms)
			r->dl_shorter++;
		else
			r->dl_same++;
	}
	for (size_t k = 0; k < x->n_armed; k++)
		if (!armed_named(armed, x->armed[k].name))
			r->dl_only_after++;
}

/* Would the seller's silence have been refunded (seller_response expiring
 * with auto_refund)? Before: whether it was. After: under the draft's
 * span, from how long the seller in fact stayed silent; unknown when the
 * case left the state by that expiry before the draft's span ended (what
 * the seller would have done later is not recorded), or when the draft
 * counts working days the recording did not. */
static void compare_silence(backtest_report *r, const json_t *armed, const backtest_replayed *x,
			    const backtest_case *c)
{
	const json_t *a = armed_named(armed, "seller_response");
	const policy_arming *b = NULL;
	bool expired = c->exit_action && strcmp(c->exit_action, "expire_seller_response") == 0;
	int64_t silent;

	if (a && json_string_value(json_object_get(a, "on_expiry")) &&
	    strcmp(json_string_value(json_object_get(a, "on_expiry")), "auto_refund") == 0 && expired)
		r->silence_before++;
	for (size_t k = 0; k < x->n_armed; k++)
		if (strcmp(x->armed[k].name, "seller_response") == 0 &&
		    strcmp(x->armed[k].on_expiry, "auto_refund") == 0)
			b = &x->armed[k];
	if (!b)
		return;
	if (b->working_days > 0) {
		if (a && jint(a, "working_days", 0) == b->working_days && expired)
			r->silence_after++;
		else if (!(a && jint(a, "working_days", 0) == b->working_days))
			r->silence_unknown++;
		return;
	}
	silent = c->exit_ms >= 0 ? c->exit_ms : c->now - c->opened_at;
	if (silent >= b->after_ms)
		r->silence_after++;
	else if (expired)
		r->silence_unknown++;
}

bool backtest_report_add(backtest_report *r, const policy *draft, const backtest_case *c)
{
	backtest_replayed *x = &r->scratch;
	const json_t *rec = json_object_get(c->open_data, "decision");
	const json_t *rec_refund = json_object_get(rec, "refund");
	const json_t *armed = json_object_get(json_object_get(c->open_data, "inputs"), "armed");
	json_t *after = NULL, *rule;
	ar_err err;
	int from, to;
	int64_t rb, ra, pb, pa;
	shop_row *shop;
	day_row *day;
	bool ok = false, rules_differ = false;
	size_t i;
	fsm_state st;
	bool mr, instruct_before = false;
	ar_kind kind;

	r->seen++;
	ar_err_init(&err);
	if (!backtest_replay(draft, c->open_data, x, &err)) {
		if (err.status == 503)
			goto fail;
		add_error(r, c->case_id, &err);
		ok = true;
		goto fail;
	}
	after = policy_decision_to_json(&x->dec);
	if (!after)
		goto fail;
	r->replayed++;
	from = outcome_index(json_string_value(json_object_get(rec, "outcome")));
	to = (int)x->dec.outcome;
	if (from >= 0) {
		r->before_n[from]++;
		if (from != to)
			count(r, &r->changed[from][to], c->case_id);
		if (ar_kind_parse(json_string_value(json_object_get(c->open_data, "kind")), &kind))
			backtest_open_state(kind, (policy_outcome)from, &st, &mr, &instruct_before);
	}
	r->after_n[to]++;
	r->auto_open_before += instruct_before;
	r->auto_open_after += x->instruct_refund;
	if (!r->currency[0])
		snprintf(r->currency, sizeof(r->currency), "%s", x->dec.refund.currency);

	rb = jint(rec_refund, "total_cents", 0);
	pb = jint(rec_refund, "penalty_cents", 0);
	ra = x->dec.refund.total_cents;
	pa = x->dec.refund.penalty_cents;
	r->refund_before += rb;
	r->refund_after += ra;
	r->penalty_before += pb;
	r->penalty_after += pa;
	if (rb != ra || pb != pa || jint(rec_refund, "max_cents", 0) != x->dec.refund.max_cents)
		count(r, &r->money_examples, c->case_id);
	shop = shop_of(r, c->shop_id ? c->shop_id : "");
	shop->cases++;
	shop->refund_before += rb;
	shop->refund_after += ra;
	shop->penalty_before += pb;
	shop->penalty_after += pa;
	day = day_of(r, c->opened_at);
	if (day) {
		day->cases++;
		day->refund_before += rb;
		day->refund_after += ra;
	} else {
		r->days_untracked++;
	}

	json_array_foreach(json_object_get(rec, "rules"), i, rule) {
		const char *res = json_string_value(json_object_get(rule, "result"));
		rule_row *rr;
		if (!res || (strcmp(res, "fired") != 0 && strcmp(res, "fail") != 0))
			continue;
		rr = rule_of(r, json_string_value(json_object_get(rule, "id")) ?
				json_string_value(json_object_get(rule, "id")) : "");
		if (rr)
			rr->before++;
		else
			r->rules_untracked++;
	}
	for (i = 0; i < x->dec.n_rules && i < POLICY_MAX_RULES; i++) {
		rule_row *rr;
		if (x->dec.rules[i].result != POLICY_RULE_FIRED &&
		    x->dec.rules[i].result != POLICY_RULE_FAIL)
			continue;
		rr = rule_of(r, x->dec.rules[i].id);
		if (rr)
			rr->after++;
		else
			r->rules_untracked++;
	}
	{
		json_t *rec_rules = json_object_get(rec, "rules");
		if (json_array_size(rec_rules) != x->dec.n_rules)
			rules_differ = true;
		for (i = 0; !rules_differ && i < x->dec.n_rules; i++) {
			json_t *rr = json_array_get(rec_rules, i);
			const char *id = json_string_value(json_object_get(rr, "id"));
			const char *res = json_string_value(json_object_get(rr, "result"));
			rules_differ = !id || !res || strcmp(id, x->dec.rules[i].id) != 0 ||
				       strcmp(res, policy_rule_result_name(x->dec.rules[i].result)) != 0;
		}
	}
	r->rules_changed += rules_differ;
	compare_deadlines(r, armed, x);
	compare_silence(r, armed, x, c);
	if (same_decision(rec, after))
		r->unchanged++;
	ok = true;
fail:
	json_decref(after);
	return ok;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static json_t *examples_json(const counted *c)
{
	json_t *a = json_array();

	for (int i = 0; a && i < c->n_ex; i++)
		if (json_array_append_new(a, json_string(c->ex[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *shop_json(const shop_row *s)
{
	return json_pack("{s:s,s:I,s:{s:I,s:I},s:{s:I,s:I}}", "shop_id", s->id,
			 "cases", (json_int_t)s->cases,
			 "refund_cents", "before", (json_int_t)s->refund_before,
			 "after", (json_int_t)s->refund_after,
			 "penalty_cents", "before", (json_int_t)s->penalty_before,
			 "after", (json_int_t)s->penalty_after);
}

/* Appends v to a (a steals v); false when either is missing. */
static bool push(json_t *a, json_t *v)
{
	return a && v && json_array_append_new(a, v) == 0;
}

json_t *backtest_report_json(const backtest_report *r)
{
	json_t *changed = json_array(), *shops = json_array(), *more = json_array();
	json_t *less = json_array(), *days = json_array(), *errors = json_array();
	json_t *before = json_object(), *after = json_object(), *root = NULL;
	bool ok = changed && shops && more && less && days && errors && before && after;

	for (int f = 0; ok && f < N_OUTCOMES; f++) {
		ok = json_object_set_new(before, policy_outcome_name((policy_outcome)f),
					 json_integer(r->before_n[f])) == 0 &&
		     json_object_set_new(after, policy_outcome_name((policy_outcome)f),
					 json_integer(r->after_n[f])) == 0;
		for (int t = 0; ok && t < N_OUTCOMES; t++) {
			if (!r->changed[f][t].n)
				continue;
			ok = push(changed, json_pack("{s:s,s:s,s:I,s:o}",
				"from", policy_outcome_name((policy_outcome)f),
				"to", policy_outcome_name((policy_outcome)t),
				"count", (json_int_t)r->changed[f][t].n,
				"examples", examples_json(&r->changed[f][t])));
		}
	}
	for (size_t i = 0; ok && i < r->n_shops; i++)
		ok = push(shops, shop_json(&r->shops[i]));
	for (size_t i = 0; ok && i < r->n_rules; i++) {
		const rule_row *rr = &r->rules[i];
		if (rr->before == rr->after)
			continue;
		ok = push(rr->after > rr->before ? more : less,
			  json_pack("{s:s,s:I,s:I}", "id", rr->id, "before", (json_int_t)rr->before,
				    "after", (json_int_t)rr->after));
	}
	for (size_t i = 0; ok && i < r->n_days; i++) {
		int64_t y;
		int m, d;
		char day[16];
		ar_civil_from_days(r->days[i].day, &y, &m, &d);
		snprintf(day, sizeof(day), "%04d-%02d-%02d", (int)y, m, d);
		ok = push(days, json_pack("{s:s,s:I,s:{s:I,s:I}}", "day", day,
			"cases", (json_int_t)r->days[i].cases, "refund_cents",
			"before", (json_int_t)r->days[i].refund_before,
			"after", (json_int_t)r->days[i].refund_after));
	}
	for (size_t i = 0; ok && i < r->n_errors; i++) {
		const error_row *e = &r->errors[i];
		json_t *ex = json_array();
		for (int k = 0; ex && k < e->c.n_ex; k++)
			if (!push(ex, json_pack("{s:s,s:s}", "case_id", e->c.ex[k], "reason",
						e->reason[k]))) {
				json_decref(ex);
				ex = NULL;
			}
		ok = push(errors, json_pack("{s:s,s:I,s:o*}", "type", e->type,
					    "count", (json_int_t)e->c.n, "examples", ex));
	}
	if (!ok)
		goto fail;
	root = json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
			 "s:{s:O,s:O,s:O},"
			 "s:{s:s,s:{s:I,s:I},s:{s:I,s:I},s:I,s:o,s:O,s:o,s:I},"
			 "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:{s:{s:I,s:I},s:{s:I,s:I,s:I}}},"
			 "s:{s:O,s:O,s:I},"
			 "s:{s:I,s:O},"
			 "s:{s:O,s:I}}",
		"cases", "seen", (json_int_t)r->seen, "replayed", (json_int_t)r->replayed,
		"unchanged", (json_int_t)r->unchanged,
		"changed", (json_int_t)(r->replayed - r->unchanged),
		"money_changed", (json_int_t)r->money_examples.n,
		"rules_changed", (json_int_t)r->rules_changed,
		"errors", (json_int_t)r->errors_total,
		"outcomes", "before", before, "after", after, "changed", changed,
		"money", "currency", r->currency[0] ? r->currency : "",
		"refund_cents", "before", (json_int_t)r->refund_before,
		"after", (json_int_t)r->refund_after,
		"penalty_cents", "before", (json_int_t)r->penalty_before,
		"after", (json_int_t)r->penalty_after,
		"changed", (json_int_t)r->money_examples.n,
		"examples", examples_json(&r->money_examples),
		"per_shop", shops, "other_shops", shop_json(&r->other_shops),
		"shops_untracked", (json_int_t)(r->n_shops >= BACKTEST_MAX_SHOPS ? r->other_shops.cases : 0),
		"deadlines", "longer", (json_int_t)r->dl_longer, "shorter", (json_int_t)r->dl_shorter,
		"same", (json_int_t)r->dl_same, "other_kind", (json_int_t)r->dl_other_kind,
		"only_before", (json_int_t)r->dl_only_before, "only_after", (json_int_t)r->dl_only_after,
		"auto_refunds", "at_open", "before", (json_int_t)r->auto_open_before,
		"after", (json_int_t)r->auto_open_after,
		"on_seller_silence", "before", (json_int_t)r->silence_before,
		"after", (json_int_t)r->silence_after, "unknown", (json_int_t)r->silence_unknown,
		"rules", "more", more, "less", less, "untracked", (json_int_t)r->rules_untracked,
		"errors", "count", (json_int_t)r->errors_total, "by_type", errors,
		"per_day", "days", days, "untracked", (json_int_t)r->days_untracked);
fail:
	json_decref(changed);
	json_decref(shops);
	json_decref(more);
	json_decref(less);
	json_decref(days);
	json_decref(errors);
	json_decref(before);
	json_decref(after);
	return root;
}

/* ------------------------------------------------------------------ */
/* the selection                                                       */

void backtest_selection_init(backtest_selection *s)
{
	memset(s, 0, sizeof(*s));
	s->created_after = AR_TIME_NONE;
	s->created_before = AR_TIME_NONE;
}

bool backtest_selection_add(backtest_selection *s, const char *list, const char *item,
			    const char *pointer, ar_err *err)
{
	char *buf;
	bool *has;
	ar_kind k;
	ar_reason rs;
	size_t n;

	if (strcmp(list, "shops") == 0) {
		buf = s->shops;
		has = &s->has_shops;
		if (!item || !codec_ident_ok(item)) {
			ar_err_fieldk(err, pointer, "field.shop_id", NULL);
			return false;
		}
	} else if (strcmp(list, "kinds") == 0) {
		buf = s->kinds;
		has = &s->has_kinds;
		if (!item || !ar_kind_parse(item, &k)) {
			ar_err_fieldk(err, pointer, "field.case_kind", NULL);
			return false;
		}
	} else {
		buf = s->reasons;
		has = &s->has_reasons;
		if (!item || !ar_reason_parse(item, &rs)) {
			ar_err_fieldk(err, pointer, "field.reason", NULL);
			return false;
		}
	}
	n = strlen(buf);
	if (n + strlen(item) + 4 >= BACKTEST_LIST_TEXT) {
		ar_err_fieldk(err, pointer, "field.at_most_items", "max", AR_INT(BACKTEST_MAX_LIST), NULL);
		return false;
	}
	/* "{a,b}": the closing brace is rewritten with every item */
	snprintf(buf + (n ? n - 1 : 0), BACKTEST_LIST_TEXT - (n ? n - 1 : 0), "%s\"%s\"}",
		 n ? "," : "{", item);
	*has = true;
	return true;
}

static bool sel_time(json_t *sel, const char *key, ar_time *out, ar_err *err)
{
	json_t *v = json_object_get(sel, key);

	if (!v)
		return true;
	if (!json_is_string(v) || !ar_time_parse(json_string_value(v), out)) {
		ar_err_fieldk(err, key[8] == 'a' ? "/selection/created_after" : "/selection/created_before",
			      "field.rfc3339", NULL);
		return false;
	}
	return true;
}

bool backtest_selection_parse(json_t *sel, backtest_selection *out, ar_err *err)
{
	static const char *const keys[] = { "created_after", "created_before", "shops", "kinds",
					    "reasons", "sample", NULL };
	static const char *const lists[] = { "shops", "kinds", "reasons" };
	json_t *v;
	bool ok = true;

	backtest_selection_init(out);
	if (!sel || json_is_null(sel))
		return true;
	if (!json_is_object(sel)) {
		ar_err_fieldk(err, "/selection", "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(sel, keys, "/selection", err) && ok;
	ok = sel_time(sel, "created_after", &out->created_after, err) && ok;
	ok = sel_time(sel, "created_before", &out->created_before, err) && ok;
	if (out->created_after != AR_TIME_NONE && out->created_before != AR_TIME_NONE &&
	    out->created_before <= out->created_after) {
		ar_err_fieldk(err, "/selection/created_before", "field.after", "other", "created_after",
			      NULL);
		ok = false;
	}
	for (size_t l = 0; l < 3; l++) {
		json_t *item;
		size_t i;
		char ptr[64];
		v = json_object_get(sel, lists[l]);
		if (!v)
			continue;
		if (!json_is_array(v) || json_array_size(v) == 0 ||
		    json_array_size(v) > BACKTEST_MAX_LIST) {
			snprintf(ptr, sizeof(ptr), "/selection/%s", lists[l]);
			ar_err_fieldk(err, ptr, "field.array_items", "max", AR_INT(BACKTEST_MAX_LIST), NULL);
			ok = false;
			continue;
		}
		json_array_foreach(v, i, item) {
			snprintf(ptr, sizeof(ptr), "/selection/%s/%zu", lists[l], i);
			if (!backtest_selection_add(out, lists[l], json_string_value(item), ptr, err)) {
				ok = false;
				break;
			}
		}
	}
	v = json_object_get(sel, "sample");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 1000000000) {
			ar_err_fieldk(err, "/selection/sample", "field.int_range", "min", AR_INT(1), "max",
				      AR_INT(1000000000), NULL);
			ok = false;
		} else {
			out->sample = (int64_t)json_integer_value(v);
		}
	}
	return ok;
}

/* A literal "{"a","b"}" back to a JSON array (items hold no quotes). */
static json_t *list_json(const char *lit)
{
	json_t *a = json_array();
	const char *p = lit;

	while (a && (p = strchr(p, '"')) != NULL) {
		const char *q = strchr(p + 1, '"');
		if (!q || json_array_append_new(a, json_stringn(p + 1, (size_t)(q - p - 1)))) {
			json_decref(a);
			return NULL;
		}
		p = q + 1;
	}
	return a;
}

json_t *backtest_selection_json(const backtest_selection *s)
{
	json_t *o = json_object();
	char t[40];
	int rc = 0;

	if (!o)
		return NULL;
	if (s->created_after != AR_TIME_NONE) {
		ar_time_format(s->created_after, t, sizeof(t));
		rc |= json_object_set_new(o, "created_after", json_string(t));
	}
	if (s->created_before != AR_TIME_NONE) {
		ar_time_format(s->created_before, t, sizeof(t));
		rc |= json_object_set_new(o, "created_before", json_string(t));
	}
	if (s->has_shops)
		rc |= json_object_set_new(o, "shops", list_json(s->shops));
	if (s->has_kinds)
		rc |= json_object_set_new(o, "kinds", list_json(s->kinds));
	if (s->has_reasons)
		rc |= json_object_set_new(o, "reasons", list_json(s->reasons));
	if (s->sample)
		rc |= json_object_set_new(o, "sample", json_integer(s->sample));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}
