/* Unit tests for policy backtests: a replay under the deciding policy reproduces the decision; drafts change exactly what they should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/backtest.h"
#include "arbiter/codec.h"

static char *default_text;
static size_t default_len;
static policy *P;

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* The default policy with one piece of text replaced (and a new version). */
static policy *variant(const char *from, const char *to)
{
	char *doc = malloc(default_len + strlen(to) + 64), *at, *v;
	policy *p;
	ar_err err;
	size_t n;

	assert_non_null(doc);
	at = strstr(default_text, from);
	assert_non_null(at);
	n = (size_t)(at - default_text);
	memcpy(doc, default_text, n);
	strcpy(doc + n, to);
	strcat(doc, at + strlen(from));
	v = strstr(doc, "2026.2-default");
	assert_non_null(v);
	memcpy(v, "2026.2-draftxx", 14);
	ar_err_init(&err);
	p = policy_load(doc, strlen(doc), &err);
	free(doc);
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	ar_err err;

	ar_err_init(&err);
	default_text = read_file("deploy/policy/default.json", &default_len);
	if (!default_text)
		return -1;
	P = policy_load(default_text, default_len, &err);
	return P ? 0 : -1;
}

static int teardown(void **state)
{
	policy_free(P);
	free(default_text);
	return 0;
}

/* What a create records: the decision and the inputs, as api_cases does. */
static json_t *open_event(const policy *p, const char *body, const policy_history *h)
{
	json_t *req = json_loads(body, 0, NULL), *data;
	ar_case_input in;
	ar_decision *d = malloc(sizeof(*d));
	ar_err err;
	fsm_state st;
	bool mr, ir;
	policy_arming armed[BACKTEST_MAX_ARMED];
	size_t n = 0;
	int cc, sc;
	ar_time at;

	ar_err_init(&err);
	assert_non_null(req);
	assert_non_null(d);
	assert_true(ar_time_parse("2026-11-25T10:00:00Z", &at));
	assert_true(codec_decode_case(req, &in, &err));
	assert_true(policy_adjudicate(p, &in, h, at, d, &err));
	backtest_open_state(in.kind, d->outcome, &st, &mr, &ir);
	assert_true(policy_armings(p, in.kind, in.order.shop_id, d->major, mr,
				   fsm_deadlines_for(in.kind, st), armed, BACKTEST_MAX_ARMED, &n, &err));
	policy_risk_caps(p, &cc, &sc);
	data = json_pack("{s:s,s:s,s:o,s:o}", "kind", ar_kind_name(in.kind), "reason",
			 ar_reason_name(in.reason), "decision", policy_decision_to_json(d),
			 "inputs", backtest_inputs_json(req, h, cc, sc, at, armed, n));
	assert_non_null(data);
	/* through text, as the database stores it */
	{
		char *t = codec_dumps(data);
		json_decref(data);
		data = json_loads(t, 0, NULL);
		free(t);
	}
	json_decref(req);
	free(d);
	return data;
}

#define ORDER(shop, price, extra) \
	"\"order\":{\"id\":\"O-1\",\"shop_id\":\"" shop "\",\"buyer_id\":\"B-1\",\"sku\":\"K-1\"," \
	"\"price_cents\":" #price ",\"paid_at\":\"2026-11-18T10:00:00Z\"" extra "}"
#define LATE(shop, price) \
	"{\"kind\":\"refund\",\"reason\":\"late_shipment\",\"description\":\"late\"," \
	ORDER(shop, price, ",\"promised_ship_by\":\"2026-11-19T10:00:00Z\"," \
	      "\"shipped_at\":\"2026-11-23T10:00:00Z\"") "}"
#define QUALITY(shop, price) \
	"{\"kind\":\"return\",\"reason\":\"quality_defect\",\"description\":\"broken\"," \
	ORDER(shop, price, ",\"shipped_at\":\"2026-11-19T10:00:00Z\"," \
	      "\"delivered_at\":\"2026-11-21T10:00:00Z\"") "," \
	"\"evidence\":[{\"kind\":\"photo\",\"url\":\"https://img.example/1.jpg\"}]}"
#define QREFUND(shop, price) \
	"{\"kind\":\"refund\",\"reason\":\"quality_defect\",\"description\":\"broken\"," \
	ORDER(shop, price, ",\"shipped_at\":\"2026-11-19T10:00:00Z\"," \
	      "\"delivered_at\":\"2026-11-21T10:00:00Z\"") "," \
	"\"evidence\":[{\"kind\":\"photo\",\"url\":\"https://img.example/1.jpg\"}]}"
#define MIND(shop, price) \
	"{\"kind\":\"return\",\"reason\":\"changed_mind\",\"description\":\"no\"," \
	ORDER(shop, price, ",\"shipped_at\":\"2026-11-19T10:00:00Z\"," \
	      "\"delivered_at\":\"2026-11-21T10:00:00Z\"") "}"

static const char *const BODIES[] = {
	LATE("S-1", 200000), LATE("S-2", 10000), QUALITY("S-1", 12900), MIND("S-2", 5000),
	MIND("S-60", 5000),
};
#define N_BODIES (sizeof(BODIES) / sizeof(BODIES[0]))

static json_t *report_of(const policy *draft, const policy_history *h)
{
	backtest_report *r = backtest_report_new(3);
	json_t *j;
	char id[16];

	assert_non_null(r);
	for (size_t i = 0; i < N_BODIES; i++) {
		json_t *data = open_event(P, BODIES[i], h);
		backtest_case c = { id, json_string_value(json_object_get(json_object_get(
				    json_object_get(json_object_get(data, "inputs"), "request"),
				    "order"), "shop_id")), data, 1764064800000LL, -1, NULL,
				    1764064800000LL + 3600000 };
		snprintf(id, sizeof(id), "c_%zu", i);
		assert_true(backtest_report_add(r, draft, &c));
		json_decref(data);
	}
	j = backtest_report_json(r);
	assert_non_null(j);
	assert_int_equal(backtest_report_seen(r), N_BODIES);
	backtest_report_free(r);
	return j;
}

static int64_t at(json_t *j, const char *path)
{
	char buf[128], *save = NULL, *k;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, "/", &save); k && j; k = strtok_r(NULL, "/", &save))
		j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
	assert_non_null(j);
	return json_integer_value(j);
}

static void test_replay_under_the_deciding_policy_reproduces_it(void **state)
{
	policy_history h = { 1, 0, 0, false };
	json_t *j = report_of(P, &h);

	assert_int_equal(at(j, "cases/replayed"), N_BODIES);
	assert_int_equal(at(j, "cases/unchanged"), N_BODIES);
	assert_int_equal(at(j, "cases/changed"), 0);
	assert_int_equal(at(j, "cases/money_changed"), 0);
	assert_int_equal(at(j, "cases/rules_changed"), 0);
	assert_int_equal(at(j, "cases/errors"), 0);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "outcomes"), "changed")), 0);
	assert_int_equal(at(j, "money/refund_cents/before"), at(j, "money/refund_cents/after"));
	assert_true(at(j, "money/penalty_cents/before") > 0);
	assert_int_equal(at(j, "deadlines/longer") + at(j, "deadlines/shorter"), 0);
	assert_true(at(j, "deadlines/same") > 0);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "rules"), "more")), 0);
	json_decref(j);
}

static void test_lower_penalty_cap_changes_only_capped_money(void **state)
{
	policy *d = variant("\"penalty_cap_cents\": 50000", "\"penalty_cap_cents\": 30000");
	policy_history h = { 1, 0, 0, false };
	json_t *j = report_of(d, &h), *ex;

	/* only the 2000.00 order's 30 % (60000) was capped; at 30000 it pays 20000 less */
	assert_int_equal(at(j, "money/penalty_cents/before") - at(j, "money/penalty_cents/after"),
			 20000);
	assert_int_equal(at(j, "money/refund_cents/before") - at(j, "money/refund_cents/after"),
			 20000);
	assert_int_equal(at(j, "cases/money_changed"), 1);
	ex = json_object_get(json_object_get(j, "money"), "examples");
	assert_int_equal(json_array_size(ex), 1);
	assert_string_equal(json_string_value(json_array_get(ex, 0)), "c_0");
	assert_int_equal(at(j, "cases/changed"), 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "outcomes"), "changed")), 0);
	/* per shop: S-1 lost it, S-2 did not */
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(j, "money"), "per_shop"), 0), "shop_id")), "S-1");
	assert_int_equal(at(j, "money/per_shop/0/penalty_cents/before") -
			 at(j, "money/per_shop/0/penalty_cents/after"), 20000);
	assert_int_equal(at(j, "money/per_shop/1/penalty_cents/before"),
			 at(j, "money/per_shop/1/penalty_cents/after"));
	json_decref(j);
	policy_free(d);
}

static void test_broken_rule_reports_errors_per_case(void **state)
{
	/* evidence required for late shipments, which carry none */
	policy *d = variant("\"required_for\": [\"quality_defect\"",
			    "\"required_for\": [\"late_shipment\", \"quality_defect\"");
	policy_history h = { 1, 0, 0, false };
	json_t *j = report_of(d, &h), *e;

	assert_int_equal(at(j, "cases/errors"), 2);
	assert_int_equal(at(j, "cases/replayed"), N_BODIES - 2);
	assert_int_equal(at(j, "cases/unchanged"), N_BODIES - 2);
	e = json_array_get(json_object_get(json_object_get(j, "errors"), "by_type"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "policy-refused");
	assert_int_equal(json_integer_value(json_object_get(e, "count")), 2);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(
		json_object_get(e, "examples"), 0), "reason")), "/evidence"));
	json_decref(j);
	policy_free(d);
}

static void test_outcome_and_deadline_changes(void **state)
{
	/* no-reason returns refused (0 days) and a longer seller response */
	policy *d = variant("\"seller_response\": \"P5D\"", "\"seller_response\": \"P9D\"");
	policy *d2 = variant("\"days\": 7,", "\"days\": 0,");
	policy_history h = { 1, 0, 0, false };
	json_t *j = report_of(d, &h), *ch;

	assert_true(at(j, "deadlines/longer") > 0);
	assert_int_equal(at(j, "deadlines/shorter"), 0);
	assert_int_equal(at(j, "cases/changed"), 0);
	json_decref(j);
	j = report_of(d2, &h);
	ch = json_object_get(json_object_get(j, "outcomes"), "changed");
	/* S-60 keeps its own 60 days; S-2's changed-mind return becomes ineligible */
	assert_int_equal(json_array_size(ch), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 0), "to")),
			    "ineligible");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ch, 0), "count")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(ch, 0),
			    "examples"), 0)), "c_3");
	assert_true(json_array_size(json_object_get(json_object_get(j, "rules"), "more")) +
		    json_array_size(json_object_get(json_object_get(j, "rules"), "less")) > 0);
	json_decref(j);
	policy_free(d);
	policy_free(d2);
}

static void test_missing_or_capped_inputs_are_errors(void **state)
{
	json_t *data = json_pack("{s:s,s:s,s:{s:s}}", "kind", "refund", "reason", "late_shipment",
				 "decision", "outcome", "seller_review");
	policy_history h = { 5, 0, 0, false };   /* the store's count at the default's cap (4), + this one */
	policy *d = variant("\"max_cases_7d\": 3", "\"max_cases_7d\": 9");
	backtest_replayed *x = malloc(sizeof(*x));
	ar_err err;

	assert_non_null(x);
	ar_err_init(&err);
	assert_false(backtest_replay(P, data, x, &err));
	assert_string_equal(err.type, "inputs-not-recorded");
	json_decref(data);
	data = open_event(P, LATE("S-1", 10000), &h);
	ar_err_init(&err);
	assert_true(backtest_replay(P, data, x, &err));
	ar_err_init(&err);
	assert_false(backtest_replay(d, data, x, &err));
	assert_string_equal(err.type, "history-capped");
	json_decref(data);
	free(x);
	policy_free(d);
}

static void test_silence_refunds_follow_the_span(void **state)
{
	policy *d = variant("\"seller_response\": \"P5D\"", "\"seller_response\": \"P2D\"");
	backtest_report *r = backtest_report_new(1);
	policy_history h = { 1, 0, 0, false };
	json_t *data = open_event(P, QREFUND("S-1", 10000), &h), *j;
	/* the seller answered after 3 days: the draft's 2 would have refunded */
	backtest_case c = { "c_a", "S-1", data, 0, 3 * AR_MS_PER_DAY, "reject", 10 * AR_MS_PER_DAY };

	assert_non_null(r);
	assert_true(backtest_report_add(r, d, &c));
	/* silent until the 5 days ran out: refunded then, and under 2 days too */
	c.exit_ms = 5 * AR_MS_PER_DAY;
	c.exit_action = "expire_seller_response";
	assert_true(backtest_report_add(r, d, &c));
	/* answered within a day: neither */
	c.exit_ms = AR_MS_PER_DAY;
	c.exit_action = "accept";
	assert_true(backtest_report_add(r, d, &c));
	j = backtest_report_json(r);
	assert_int_equal(at(j, "deadlines/auto_refunds/on_seller_silence/before"), 1);
	assert_int_equal(at(j, "deadlines/auto_refunds/on_seller_silence/after"), 2);
	assert_int_equal(at(j, "deadlines/shorter"), 3);
	json_decref(j);
	json_decref(data);
	backtest_report_free(r);
	policy_free(d);
}

static void test_selection_is_checked_and_kept(void **state)
{
	json_t *sel = json_loads("{\"created_after\":\"2026-11-01T00:00:00Z\",\"shops\":[\"S-1\",\"S-2\"],"
				 "\"kinds\":[\"refund\"],\"reasons\":[\"late_shipment\"],\"sample\":7}", 0, NULL);
	json_t *back;
	backtest_selection s;
	ar_err err;

	ar_err_init(&err);
	assert_true(backtest_selection_parse(sel, &s, &err));
	assert_string_equal(s.shops, "{\"S-1\",\"S-2\"}");
	assert_string_equal(s.kinds, "{\"refund\"}");
	assert_true(s.has_reasons && s.sample == 7 && s.created_before == AR_TIME_NONE);
	back = backtest_selection_json(&s);
	assert_int_equal(json_array_size(json_object_get(back, "shops")), 2);
	assert_string_equal(json_string_value(json_object_get(back, "created_after")),
			    "2026-11-01T00:00:00.000Z");
	json_decref(back);
	json_decref(sel);

	/* every bad field is named */
	sel = json_loads("{\"shops\":[\"a b\"],\"kinds\":[\"refunds\"],\"sample\":0,\"extra\":1,"
			 "\"created_after\":\"2026-12-01T00:00:00Z\",\"created_before\":\"2026-11-01T00:00:00Z\"}",
			 0, NULL);
	ar_err_init(&err);
	assert_false(backtest_selection_parse(sel, &s, &err));
	{
		const char *want[] = { "/selection/shops/0", "/selection/kinds/0", "/selection/sample",
				       "/selection/extra", "/selection/created_before" };
		for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
			bool found = false;
			for (size_t i = 0; i < err.n_fields; i++)
				found = found || strcmp(err.fields[i].pointer, want[w]) == 0;
			assert_true(found);
		}
	}
	json_decref(sel);
	/* none: every case */
	ar_err_init(&err);
	assert_true(backtest_selection_parse(NULL, &s, &err));
	assert_false(s.has_shops || s.has_kinds || s.has_reasons || s.sample);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_under_the_deciding_policy_reproduces_it),
		cmocka_unit_test(test_lower_penalty_cap_changes_only_capped_money),
		cmocka_unit_test(test_broken_rule_reports_errors_per_case),
		cmocka_unit_test(test_outcome_and_deadline_changes),
		cmocka_unit_test(test_missing_or_capped_inputs_are_errors),
		cmocka_unit_test(test_silence_refunds_follow_the_span),
		cmocka_unit_test(test_selection_is_checked_and_kept),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
