/* Unit tests for localised decision reasons: rule texts filled from a trace entry's args, money as ¥, spans, and the fallback for entries without args. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/msgs.h"

static const ar_lang EN = AR_LANG_EN, ZH = AR_LANG_ZH_CN;

static json_t *rule(const char *text)
{
	json_error_t e;
	json_t *r = json_loads(text, 0, &e);

	assert_non_null(r);
	return r;
}

static void reason(const char *json, ar_lang l, int64_t total, char *out, size_t len)
{
	json_t *r = rule(json);

	assert_true(msgs_rule_reason(r, l, total, out, len));
	json_decref(r);
}

static void test_window_days_in_both_languages(void **state)
{
	char en[512], zh[512];
	const char *r = "{\"id\": \"R-NOREASON-7D\", \"result\": \"fail\", \"reason\": \"x\","
			" \"args\": {\"days\": 9, \"elapsed_ms\": 777600000, \"window_days\": 7}}";

	(void)state;
	reason(r, EN, 0, en, sizeof(en));
	reason(r, ZH, 0, zh, sizeof(zh));
	assert_string_equal(en, "failed: asked for 9 days after delivery, past the 7-day no-reason "
				"return window");
	assert_string_equal(zh, "未通过：签收后已过 9 天，超过 7 天无理由退货期限");
}

static void test_money_as_yuan(void **state)
{
	char en[512], zh[512];
	const char *r = "{\"id\": \"R-REQUESTED\", \"result\": \"fail\", \"reason\": \"x\","
			" \"args\": {\"requested_cents\": 12000, \"max_cents\": 9900}}";

	(void)state;
	reason(r, EN, 0, en, sizeof(en));
	reason(r, ZH, 0, zh, sizeof(zh));
	assert_string_equal(en, "failed: the ¥120.00 asked for is above the most that can be "
				"refunded, ¥99.00");
	assert_string_equal(zh, "未通过：申请 ¥120.00，超过可退最高 ¥99.00");
	/* {total} is the decision's refund, in ¥ too */
	reason("{\"id\": \"R-REFUND-SELLER\", \"result\": \"fired\", \"reason\": \"x\","
	       " \"args\": {\"price_cents\": 1290, \"shipping_cents\": 5}}", ZH, 1295, zh, sizeof(zh));
	assert_non_null(strstr(zh, "¥12.90"));
	assert_non_null(strstr(zh, "¥0.05"));
	assert_non_null(strstr(zh, "¥12.95"));
}

static void test_branch_by_when(void **state)
{
	char zh[512];

	(void)state;
	reason("{\"id\": \"R-NOREASON-7D\", \"result\": \"pass\", \"reason\": \"x\","
	       " \"args\": {\"window_days\": 15, \"when\": \"undelivered\"}}", ZH, 0, zh, sizeof(zh));
	assert_string_equal(zh, "通过：尚未签收，15 天无理由退货期限尚未开始计算");
}

static void test_without_args_the_general_text(void **state)
{
	char zh[512];

	(void)state;
	/* recorded before traces had args */
	reason("{\"id\": \"R-NOREASON-7D\", \"result\": \"fail\", \"reason\": \"x\"}", ZH, 0, zh,
	       sizeof(zh));
	assert_string_equal(zh, "未通过：七天无理由退货须在签收后的规定期限内申请");
	/* args that do not fill the text: the general text, never a half-filled one */
	reason("{\"id\": \"R-NOREASON-7D\", \"result\": \"fail\", \"reason\": \"x\","
	       " \"args\": {\"days\": 9}}", ZH, 0, zh, sizeof(zh));
	assert_string_equal(zh, "未通过：七天无理由退货须在签收后的规定期限内申请");
	reason("{\"id\": \"R-NO-SUCH\", \"result\": \"fired\", \"reason\": \"x\","
	       " \"args\": {\"n\": 1}}", ZH, 0, zh, sizeof(zh));
	assert_string_equal(zh, "已适用：规则 R-NO-SUCH");
}

static void test_decision_rewritten_in_zh_only(void **state)
{
	json_t *d = rule("{\"refund\": {\"total_cents\": 9900}, \"rules\": ["
			 "{\"id\": \"R-PAY-REQUESTED\", \"result\": \"fired\", \"reason\": \"pays\","
			 " \"args\": {\"requested_cents\": 9900, \"max_cents\": 12000}}]}");
	json_t *en = json_deep_copy(d);
	const char *zh;

	(void)state;
	assert_true(msgs_decision(d, ZH));
	assert_true(msgs_decision(en, EN));
	zh = json_string_value(json_object_get(json_array_get(json_object_get(d, "rules"), 0),
					       "reason"));
	assert_string_equal(zh, "已适用：按买家申请的金额 ¥99.00 退款，最高可退 ¥120.00");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(en, "rules"), 0), "reason")),
			    "pays");
	json_decref(d);
	json_decref(en);
}

static void test_duration(void **state)
{
	char b[48];

	(void)state;
	i18n_duration(7LL * 86400000, EN, b, sizeof(b));
	assert_string_equal(b, "7 days");
	i18n_duration(86400000, EN, b, sizeof(b));
	assert_string_equal(b, "1 day");
	i18n_duration(7LL * 86400000, ZH, b, sizeof(b));
	assert_string_equal(b, "7 天");
	i18n_duration(24LL * 3600000, ZH, b, sizeof(b));
	assert_string_equal(b, "1 天");
	i18n_duration(5LL * 3600000, ZH, b, sizeof(b));
	assert_string_equal(b, "5 小时");
	i18n_duration(9LL * 86400000 + 1001, ZH, b, sizeof(b));
	assert_string_equal(b, "9 天 00:00:01.001");
	i18n_duration(-3661000, EN, b, sizeof(b));
	assert_string_equal(b, "-01:01:01");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_days_in_both_languages),
		cmocka_unit_test(test_money_as_yuan),
		cmocka_unit_test(test_branch_by_when),
		cmocka_unit_test(test_without_args_the_general_text),
		cmocka_unit_test(test_decision_rewritten_in_zh_only),
		cmocka_unit_test(test_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
