/* Unit tests for reply languages: Accept-Language negotiation, catalogue lookup and placeholders, completeness, money. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/assets.h"
#include "arbiter/i18n.h"

static const ar_lang EN = AR_LANG_EN, ZH = AR_LANG_ZH_CN;

static void test_negotiate(void **state)
{
	(void)state;
	assert_int_equal(i18n_negotiate(NULL, EN), EN);
	assert_int_equal(i18n_negotiate(NULL, ZH), ZH);
	assert_int_equal(i18n_negotiate("", ZH), ZH);
	assert_int_equal(i18n_negotiate("zh-CN", EN), ZH);
	assert_int_equal(i18n_negotiate("zh", EN), ZH);
	assert_int_equal(i18n_negotiate("zh-Hans-CN", EN), ZH);
	assert_int_equal(i18n_negotiate("zh-SG", EN), ZH);
	assert_int_equal(i18n_negotiate("Zh-cN", EN), ZH);
	assert_int_equal(i18n_negotiate("en-US", ZH), EN);
	/* Traditional Chinese is no zh-CN; "zhx" is another language */
	assert_int_equal(i18n_negotiate("zh-TW", EN), EN);
	assert_int_equal(i18n_negotiate("zh-HK, zh-Hant;q=0.9", EN), EN);
	assert_int_equal(i18n_negotiate("zhx", EN), EN);
	/* q-values: the highest wins, the earlier on a tie, 0 is "not this" */
	assert_int_equal(i18n_negotiate("en;q=0.5, zh-CN;q=0.9", EN), ZH);
	assert_int_equal(i18n_negotiate("zh-CN;q=0.1, en", ZH), EN);
	assert_int_equal(i18n_negotiate("en;q=0.8, zh;q=0.8", ZH), EN);
	assert_int_equal(i18n_negotiate("zh;q=0.8, en;q=0.8", EN), ZH);
	assert_int_equal(i18n_negotiate("zh-CN;q=0", EN), EN);
	assert_int_equal(i18n_negotiate("en;q=0, zh;q=0.001", EN), ZH);
	assert_int_equal(i18n_negotiate("fr, de;q=0.9, zh ; q=0.2", EN), ZH);
	assert_int_equal(i18n_negotiate(" zh-CN ;Q=0.7 , en;q=0.700", EN), ZH);
	/* "*" stands for the default */
	assert_int_equal(i18n_negotiate("fr, *;q=0.5, en;q=0.4", ZH), ZH);
	/* malformed q-values and items are ignored, not guessed at */
	assert_int_equal(i18n_negotiate("zh;q=2, en;q=0.1", ZH), EN);
	assert_int_equal(i18n_negotiate("zh;q=0.1234, en;q=0.1", ZH), EN);
	assert_int_equal(i18n_negotiate("zh;q=, en;q=0.1", ZH), EN);
	assert_int_equal(i18n_negotiate("zh;level=1", EN), EN);
	assert_int_equal(i18n_negotiate(",,;, ", ZH), ZH);
}

static void test_lang_parse_and_tags(void **state)
{
	ar_lang l;

	(void)state;
	assert_true(i18n_lang_parse("zh-CN", &l) && l == ZH);
	assert_true(i18n_lang_parse("en", &l) && l == EN);
	assert_false(i18n_lang_parse("fr", &l));
	assert_false(i18n_lang_parse(NULL, &l));
	assert_string_equal(i18n_lang_tag(EN), "en");
	assert_string_equal(i18n_lang_tag(ZH), "zh-CN");
}

static i18n_cat *load(const char *en, const char *zh)
{
	const char *texts[AR_LANG__COUNT] = { en, zh };
	ar_err err;
	i18n_cat *c;

	ar_err_init(&err);
	c = i18n_cat_load(texts, &err);
	if (!c)
		fail_msg("catalogue refused: %s", err.detail);
	return c;
}

static void test_format(void **state)
{
	i18n_cat *c = load("{\"a\": \"{who} paid {amount}.\", \"b\": \"no args\", \"c\": \"{x}{x} {y\"}",
			   "{\"a\": \"{amount} 由{who}支付\", \"b\": \"无参数\", \"c\": \"{x}{x} {y\"}");
	i18n_arg args[] = { { "who", "买家" }, { "amount", "\xc2\xa5" "12.90" }, { "x", "ab" } };
	char out[64], tiny[8];

	(void)state;
	assert_true(i18n_format(c, ZH, "a", args, 2, out, sizeof(out)));
	assert_string_equal(out, "\xc2\xa5" "12.90 由买家支付");
	assert_true(i18n_format(c, EN, "a", args, 2, out, sizeof(out)));
	assert_string_equal(out, "买家 paid \xc2\xa5" "12.90.");
	assert_true(i18n_format(c, ZH, "b", NULL, 0, out, sizeof(out)));
	assert_string_equal(out, "无参数");
	/* a brace that opens no name is text; a name given twice is used twice */
	assert_true(i18n_format(c, EN, "c", args, 3, out, sizeof(out)));
	assert_string_equal(out, "abab {y");
	/* a placeholder without its argument, a missing key, too small */
	assert_false(i18n_format(c, EN, "a", args, 1, out, sizeof(out)));
	assert_false(i18n_format(c, EN, "nope", args, 2, out, sizeof(out)));
	assert_false(i18n_format(c, ZH, "a", args, 2, tiny, sizeof(tiny)));
	assert_null(i18n_text(c, EN, "nope"));
	assert_string_equal(i18n_text(c, ZH, "b"), "无参数");
	i18n_cat_free(c);
	i18n_cat_free(NULL);
}

static void test_check_finds_faults(void **state)
{
	i18n_cat *c = load("{\"a\": \"{n} days\", \"b\": \"x\", \"only_en\": \"y\"}",
			   "{\"a\": \"{m} 天\", \"b\": \"x\", \"only_zh\": \"z\"}");
	ar_err err;
	bool saw[3] = { false, false, false };

	(void)state;
	ar_err_init(&err);
	assert_false(i18n_cat_check(c, &err));
	assert_int_equal(err.n_fields, 3);
	for (size_t i = 0; i < err.n_fields; i++) {
		saw[0] |= strcmp(err.fields[i].pointer, "/zh-CN/only_en") == 0;
		saw[1] |= strcmp(err.fields[i].pointer, "/en/only_zh") == 0;
		saw[2] |= strcmp(err.fields[i].pointer, "/zh-CN/a") == 0 &&
			  strstr(err.fields[i].message, "placeholders") != NULL;
	}
	assert_true(saw[0] && saw[1] && saw[2]);
	i18n_cat_free(c);

	c = load("{\"a\": \"{n} of {m}\"}", "{\"a\": \"{m} 中的 {n}\"}");
	ar_err_init(&err);
	assert_true(i18n_cat_check(c, &err));
	i18n_cat_free(c);
}

static void test_load_refuses(void **state)
{
	const char *bad[][2] = { { "[]", "{}" }, { "{}", "{\"a\": 1}" }, { "{", "{}" }, { NULL, "{}" } };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *texts[AR_LANG__COUNT] = { bad[i][0], bad[i][1] };
		ar_err err;

		ar_err_init(&err);
		assert_null(i18n_cat_load(texts, &err));
		assert_int_equal(err.status, 500);
	}
}

/* The completeness test of the shipped catalogues (i18n/en.json, i18n/zh-CN.json). */
static void test_shipped_catalogues_complete(void **state)
{
	const char *texts[AR_LANG__COUNT] = { ar_i18n_en, ar_i18n_zh_cn };
	ar_err err;
	i18n_cat *c;

	(void)state;
	ar_err_init(&err);
	c = i18n_cat_load(texts, &err);
	assert_non_null(c);
	if (!i18n_cat_check(c, &err))
		fail_msg("catalogues incomplete: %s %s", err.fields[0].pointer, err.fields[0].message);
	assert_non_null(i18n_text(c, ZH, "problem.validation.title"));
	assert_non_null(i18n_text(c, ZH, "rule._other"));
	assert_non_null(i18n_text(c, ZH, "event._other"));
	i18n_cat_free(c);
}

static void test_money(void **state)
{
	char out[32];

	(void)state;
	i18n_money(1290, out, sizeof(out));
	assert_string_equal(out, "\xc2\xa5" "12.90");
	i18n_money(5, out, sizeof(out));
	assert_string_equal(out, "\xc2\xa5" "0.05");
	i18n_money(0, out, sizeof(out));
	assert_string_equal(out, "\xc2\xa5" "0.00");
	i18n_money(-150, out, sizeof(out));
	assert_string_equal(out, "-\xc2\xa5" "1.50");
	i18n_money(INT64_MIN, out, sizeof(out));
	assert_string_equal(out, "-\xc2\xa5" "92233720368547758.08");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_lang_parse_and_tags),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_check_finds_faults),
		cmocka_unit_test(test_load_refuses),
		cmocka_unit_test(test_shipped_catalogues_complete),
		cmocka_unit_test(test_money),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
