/* Unit tests for problems by catalogue key: what an ar_err records, its English text, and its rendering in each language. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/errmsg.h"
#include "arbiter/msgs.h"

static void test_field_in_both_languages(void **state)
{
	ar_err e;
	char zh[256], en[256];

	(void)state;
	ar_err_init(&e);
	ar_err_fieldk(&e, "/order/delivered_at", "field.not_before", "other", "shipped_at", NULL);
	assert_int_equal(e.status, 422);
	assert_string_equal(e.type, "validation");
	assert_string_equal(e.title, "Invalid request");
	assert_string_equal(e.detail, "one or more fields are invalid");
	assert_int_equal(e.n_fields, 1);
	assert_string_equal(e.fields[0].pointer, "/order/delivered_at");
	assert_string_equal(e.fields[0].message, "must not be before shipped_at");
	msgs_field(&e.fields[0], AR_LANG_ZH_CN, zh, sizeof(zh));
	assert_string_equal(zh, "不得早于 shipped_at");
	msgs_field(&e.fields[0], AR_LANG_EN, en, sizeof(en));
	assert_string_equal(en, e.fields[0].message);
}

static void test_numbers_and_money(void **state)
{
	ar_err e;
	char zh[256];

	(void)state;
	ar_err_init(&e);
	ar_err_fieldk(&e, "/order/quantity", "field.int_range", "min", AR_INT(1), "max",
		      AR_INT(9999), NULL);
	ar_err_fieldk(&e, "/refund_cents", "field.amount_over_cap", "amount", AR_MONEY(12900),
		      "cap", AR_MONEY(1290), NULL);
	assert_string_equal(e.fields[0].message, "must be an integer from 1 to 9999");
	assert_string_equal(e.fields[1].message,
			    "\xc2\xa5" "129.00 exceeds the most this order allows (\xc2\xa5" "12.90)");
	msgs_field(&e.fields[0], AR_LANG_ZH_CN, zh, sizeof(zh));
	assert_string_equal(zh, "必须是 1 到 9999 之间的整数");
	msgs_field(&e.fields[1], AR_LANG_ZH_CN, zh, sizeof(zh));
	assert_string_equal(zh, "\xc2\xa5" "129.00 超过了此订单允许的最高金额（\xc2\xa5" "12.90）");
}

static void test_problem_detail_and_first_error_wins(void **state)
{
	ar_err e;
	const char *title;
	char detail[512];

	(void)state;
	ar_err_init(&e);
	ar_err_setk(&e, 409, "deadline-passed", "detail.deadline_passed", "deadline",
		    "seller_response", "due", "2026-11-02T10:00:00.000Z", "state", "refund_pending",
		    NULL);
	ar_err_setk(&e, 404, "not-found", "detail.no_such_case", NULL);
	assert_int_equal(e.status, 409);
	assert_string_equal(e.title, "Deadline passed");
	assert_string_equal(e.detail, "the seller_response deadline passed at "
			    "2026-11-02T10:00:00.000Z, before this request; the case is now refund_pending");
	msgs_problem(&e, AR_LANG_ZH_CN, &title, detail, sizeof(detail));
	assert_string_equal(title, "期限已过");
	assert_string_equal(detail, "seller_response 期限已于 2026-11-02T10:00:00.000Z 到期，"
			    "早于本次请求；案件当前状态为 refund_pending");
	msgs_problem(&e, AR_LANG_EN, &title, detail, sizeof(detail));
	assert_string_equal(detail, e.detail);
}

static void test_problem_without_key_keeps_old_texts(void **state)
{
	ar_err e;
	const char *title;
	char detail[512];

	(void)state;
	ar_err_init(&e);
	ar_err_set(&e, 404, "not-found", "Not found", "no widget %d", 7);
	msgs_problem(&e, AR_LANG_EN, &title, detail, sizeof(detail));
	assert_string_equal(detail, "no widget 7");
	msgs_problem(&e, AR_LANG_ZH_CN, &title, detail, sizeof(detail));
	assert_string_equal(detail, "没有这个资源。");
}

static void test_render_refuses(void **state)
{
	ar_msg m = { .key = "field.int_range", .n_args = 1, .name = { "min" }, .at = { 0 },
		     .values = "1" };
	ar_msg none = { .key = "" };
	ar_msg unknown = { .key = "field.no_such_key" };
	char out[256] = "untouched";

	(void)state;
	assert_false(ar_msg_render(&m, AR_LANG_EN, out, sizeof(out)));     /* {max} missing */
	assert_false(ar_msg_render(&none, AR_LANG_EN, out, sizeof(out)));
	assert_false(ar_msg_render(&unknown, AR_LANG_ZH_CN, out, sizeof(out)));
	assert_false(ar_msg_render(&m, AR_LANG_EN, out, 4));
	assert_string_equal(out, "untouched");
}

static void test_long_values_are_cut_not_overrun(void **state)
{
	char big[1000];
	ar_err e;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ar_err_init(&e);
	ar_err_fieldk(&e, "/x", "field.one_of", "list", big, NULL);
	assert_int_equal(strlen(e.fields[0].msg.values), AR_MSG_VALUES - 1);
	assert_true(strlen(e.fields[0].message) < sizeof(e.fields[0].message));
}

static void test_field_copy_keeps_the_key(void **state)
{
	ar_err a, b;
	char zh[256];

	(void)state;
	ar_err_init(&a);
	ar_err_init(&b);
	ar_err_fieldk(&a, "/durations/x", "field.not_duration", "value", "P1M", NULL);
	ar_err_setk(&b, 422, "invalid-policy", "detail.policy_invalid", NULL);
	ar_err_field_copy(&b, "/policy", &a.fields[0]);
	assert_string_equal(b.fields[0].pointer, "/policy/durations/x");
	msgs_field(&b.fields[0], AR_LANG_ZH_CN, zh, sizeof(zh));
	assert_non_null(strstr(zh, "\"P1M\" 不是 ISO 8601 时长"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_in_both_languages),
		cmocka_unit_test(test_numbers_and_money),
		cmocka_unit_test(test_problem_detail_and_first_error_wins),
		cmocka_unit_test(test_problem_without_key_keeps_old_texts),
		cmocka_unit_test(test_render_refuses),
		cmocka_unit_test(test_long_values_are_cut_not_overrun),
		cmocka_unit_test(test_field_copy_keeps_the_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
