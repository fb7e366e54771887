/* Unit tests for the shop's view of a decision: cross-shop counts and signals withheld, the rest kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/redact.h"

static const char DECISION[] =
	"{\"outcome\":\"manual_review\",\"refund\":{\"total_cents\":4300},"
	"\"risk\":{\"score\":100,\"signals\":[\"same_text_other_shops\",\"new_account\",\"many_cases_7d\"]},"
	"\"rules\":["
	"{\"id\":\"R-RISK-SAME-TEXT\",\"result\":\"fired\",\"reason\":\"same description sent to 7 other shops\"},"
	"{\"id\":\"R-RISK-MANY-CASES\",\"result\":\"pass\",\"reason\":\"2 cases by this buyer in 7 days\"},"
	"{\"id\":\"R-MISSING-24H\",\"result\":\"pass\",\"reason\":\"reported 1 h after delivery\"}]}";

static const char *reason(json_t *d, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(d, "rules"), i), "reason"));
}

static void test_decision_keeps_ids_results_money(void **state)
{
	json_t *d = json_loads(DECISION, 0, NULL), *sig;
	ar_err err;

	(void)state;
	ar_err_init(&err);
	assert_non_null(d);
	assert_true(redact_decision(d, &err));
	assert_false(ar_err_is_set(&err));
	assert_string_equal(json_string_value(json_object_get(d, "outcome")), "manual_review");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "refund"), "total_cents")), 4300);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(d, "rules"), 0),
							      "result")), "fired");
	assert_non_null(strstr(reason(d, 0), "needs review"));
	assert_null(strpbrk(reason(d, 0), "0123456789"));
	/* a rule that passed says it was checked, and no count either */
	assert_null(strstr(reason(d, 1), "needs review"));
	assert_null(strpbrk(reason(d, 1), "0123456789"));
	assert_string_equal(reason(d, 2), "reported 1 h after delivery");
	sig = json_object_get(json_object_get(d, "risk"), "signals");
	assert_int_equal(json_array_size(sig), 1);
	assert_string_equal(json_string_value(json_array_get(sig, 0)), "new_account");
	json_decref(d);
}

static void test_case_and_event_reach_their_decision(void **state)
{
	char *doc = NULL;
	json_t *c, *e;
	ar_err err;

	(void)state;
	ar_err_init(&err);
	assert_true(asprintf(&doc, "{\"id\":\"c_1\",\"decision\":%s,\"state\":\"awaiting_seller\"}",
			     DECISION) > 0);
	c = json_loads(doc, 0, NULL);
	assert_true(redact_case(c, &err));
	assert_null(strpbrk(reason(json_object_get(c, "decision"), 0), "0123456789"));
	json_decref(c);

	e = json_pack("{s:s,s:{s:s,s:o}}", "action", "open", "data", "kind", "refund", "decision",
		      json_loads(DECISION, 0, NULL));
	assert_true(redact_event(e, &err));
	assert_null(strpbrk(reason(json_object_get(json_object_get(e, "data"), "decision"), 0),
			    "0123456789"));
	json_decref(e);
	/* an open event's replay inputs hold the same counts (backtest.h) */
	e = json_pack("{s:s,s:{s:{s:{s:i,s:i,s:i,s:b}}}}", "action", "open", "data", "inputs",
		      "history", "cases_7d", 4, "same_text_other_shops_30d", 2,
		      "complaints_same_order", 1, "sku_batch_defect", 0);
	assert_true(redact_event(e, &err));
	{
		json_t *h = json_object_get(json_object_get(json_object_get(e, "data"), "inputs"),
					    "history");
		assert_null(json_object_get(h, "cases_7d"));
		assert_null(json_object_get(h, "same_text_other_shops_30d"));
		assert_int_equal(json_integer_value(json_object_get(h, "complaints_same_order")), 1);
	}
	json_decref(e);
	/* events and cases without a decision are left alone */
	e = json_pack("{s:s,s:{s:i}}", "action", "offer", "data", "refund_cents", 500);
	assert_true(redact_event(e, &err));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "data"), "refund_cents")), 500);
	json_decref(e);
	assert_false(ar_err_is_set(&err));
	free(doc);
}

static void test_case_text_is_replaced_by_its_view(void **state)
{
	char *doc = NULL;
	size_t len;
	ar_err err;

	(void)state;
	ar_err_init(&err);
	len = (size_t)asprintf(&doc, "{\"id\":\"c_1\",\"decision\":%s,\"version\":3}", DECISION);
	assert_true(redact_case_text(&doc, &len, &err));
	assert_int_equal(len, strlen(doc));
	assert_null(strstr(doc, "7 other shops"));
	assert_null(strstr(doc, "many_cases_7d"));
	assert_non_null(strstr(doc, "reported 1 h after delivery"));
	/* key order is kept: the edge splices allowed_actions before the end */
	assert_true(strstr(doc, "\"id\"") < strstr(doc, "\"decision\""));
	assert_int_equal(doc[len - 1], '}');
	free(doc);

	doc = strdup("{\"id\": \"c_1\", \"decision\": ");
	len = strlen(doc);
	assert_false(redact_case_text(&doc, &len, &err));
	assert_int_equal(err.status, 500);
	assert_string_equal(doc, "{\"id\": \"c_1\", \"decision\": ");
	free(doc);
}

static void test_policy_keeps_only_the_keys_shops(void **state)
{
	ar_err err;
	const char shops[2][AR_MAX_ID_LEN + 1] = { "S-1", "S-3" };
	json_t *doc = json_loads("{\"version\":\"v9\",\"shops\":{\"S-1\":{\"no_reason_days\":15},"
				 "\"S-2\":{\"no_reason_days\":60}},\"durations\":{\"x\":\"P1D\"}}",
				 0, NULL);
	(void)state;
	assert_non_null(doc);
	ar_err_init(&err);
	assert_true(redact_policy(doc, shops, 2, &err));
	assert_int_equal(json_object_size(json_object_get(doc, "shops")), 1);
	assert_non_null(json_object_get(json_object_get(doc, "shops"), "S-1"));
	assert_null(json_object_get(json_object_get(doc, "shops"), "S-2"));
	assert_string_equal(json_string_value(json_object_get(doc, "version")), "v9");
	assert_non_null(json_object_get(doc, "durations"));
	/* no shops at all: an empty object, never another shop's */
	assert_true(redact_policy(doc, shops, 0, &err));
	assert_int_equal(json_object_size(json_object_get(doc, "shops")), 0);
	json_decref(doc);
	/* a policy without overrides is left alone */
	doc = json_loads("{\"version\":\"v1\"}", 0, NULL);
	assert_true(redact_policy(doc, shops, 2, &err));
	assert_null(json_object_get(doc, "shops"));
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decision_keeps_ids_results_money),
		cmocka_unit_test(test_policy_keeps_only_the_keys_shops),
		cmocka_unit_test(test_case_and_event_reach_their_decision),
		cmocka_unit_test(test_case_text_is_replaced_by_its_view),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
