/* Unit tests for the request codec: parsing limits, case decoding, field errors and canonical JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/codec.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char *const VALID_BODY =
	"{\"kind\":\"return\",\"reason\":\"quality_defect\","
	"\"description\":\"\xe5\xb1\x8f\xe5\xb9\x95\xe6\x9c\x89\xe9\xbb\x91\xe7\x82\xb9 0.5 mm\","
	"\"requested_cents\":12900,\"currency\":\"USD\",\"defect\":\"screen\","
	"\"order\":{\"id\":\"O-1\",\"shop_id\":\"S-1\",\"buyer_id\":\"B-1\",\"sku\":\"SKU-1\","
	"\"category\":\"phones\",\"price_cents\":12900,\"shipping_fee_cents\":800,"
	"\"free_shipping\":true,\"paid_at\":\"2026-11-01T10:00:00+08:00\","
	"\"promised_ship_by\":\"2026-11-03T10:00:00Z\",\"shipped_at\":\"2026-11-02T10:00:00Z\","
	"\"delivered_at\":\"2026-11-04T10:00:00.5Z\",\"warranty_until\":null,"
	"\"customized\":true,\"return_shipping_insurance\":\"seller\",\"usage_km\":0},"
	"\"evidence\":[{\"kind\":\"photo\",\"url\":\"https://img.example.com/1.jpg\","
	"\"sha256\":\"" SHA_A "\"},"
	"{\"kind\":\"chat_log\",\"url\":\"http://chat.example.com/x\"}],"
	"\"buyer\":{\"account_created_at\":\"2020-01-01T00:00:00Z\",\"orders_count\":42}}";

static const char *const MINIMAL_BODY =
	"{\"kind\":\"refund\",\"reason\":\"late_shipment\",\"description\":\"x\","
	"\"order\":{\"id\":\"O-2\",\"shop_id\":\"S-2\",\"buyer_id\":\"B-2\",\"sku\":\"K\","
	"\"price_cents\":0,\"paid_at\":\"2026-11-02T10:00:00Z\"}}";

/* 2026-11-02T10:00:00Z, from `date -u -d 2026-11-02T10:00:00Z +%s`. */
#define T0 (1793613600LL * 1000)
#define HOUR (3600LL * 1000)

static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j)
		fail_msg("test fixture does not parse: %s", jerr.text);
	return j;
}

/* The object at "" / "order" / "buyer" / "evidence/<i>" inside a fixture body. */
static json_t *at(json_t *root, const char *where)
{
	if (strcmp(where, "") == 0)
		return root;
	if (strncmp(where, "evidence/", 9) == 0)
		return json_array_get(json_object_get(root, "evidence"), (size_t)atoi(where + 9));
	return json_object_get(root, where);
}

/* Decodes root and asserts exactly one field error, at ptr, whose message contains msg. */
static void expect_one(json_t *root, const char *ptr, const char *msg)
{
	ar_case_input in;
	ar_err err;

	ar_err_init(&err);
	assert_false(codec_decode_case(root, &in, &err));
	assert_int_equal(err.status, 422);
	assert_string_equal(err.type, "validation");
	if (err.n_fields != 1)
		fail_msg("expected 1 field error at %s, got %zu (first %s: %s)", ptr, err.n_fields,
			 err.fields[0].pointer, err.fields[0].message);
	assert_string_equal(err.fields[0].pointer, ptr);
	if (!strstr(err.fields[0].message, msg))
		fail_msg("message '%s' lacks '%s'", err.fields[0].message, msg);
}

/* Replaces one field of the valid body and expects exactly that field to be blamed. */
static void bad_field(const char *where, const char *key, json_t *value, const char *ptr,
		      const char *msg)
{
	json_t *root = load(VALID_BODY);
	assert_int_equal(json_object_set_new(at(root, where), key, value), 0);
	expect_one(root, ptr, msg);
	json_decref(root);
}

static void decode_ok(json_t *root, ar_case_input *in)
{
	ar_err err;

	ar_err_init(&err);
	if (!codec_decode_case(root, in, &err))
		fail_msg("decode failed: %s: %s", err.n_fields ? err.fields[0].pointer : "",
			 err.n_fields ? err.fields[0].message : err.detail);
	assert_int_equal(err.status, 0);
}

static void test_valid_body_decodes(void **state)
{
	json_t *root = load(VALID_BODY);
	ar_case_input in;

	decode_ok(root, &in);
	assert_int_equal(in.kind, AR_KIND_RETURN);
	assert_int_equal(in.reason, AR_REASON_QUALITY_DEFECT);
	assert_string_equal(in.description,
			    "\xe5\xb1\x8f\xe5\xb9\x95\xe6\x9c\x89\xe9\xbb\x91\xe7\x82\xb9 0.5 mm");
	assert_int_equal(in.requested_cents, 12900);
	assert_string_equal(in.currency, "USD");
	assert_string_equal(in.defect, "screen");
	assert_string_equal(in.order.id, "O-1");
	assert_string_equal(in.order.shop_id, "S-1");
	assert_string_equal(in.order.buyer_id, "B-1");
	assert_string_equal(in.order.sku, "SKU-1");
	assert_string_equal(in.order.category, "phones");
	assert_int_equal(in.order.price_cents, 12900);
	assert_int_equal(in.order.shipping_fee_cents, 800);
	assert_true(in.order.free_shipping);
	assert_int_equal(in.order.paid_at, T0 - 32 * HOUR);
	assert_int_equal(in.order.promised_ship_by, T0 + 24 * HOUR);
	assert_int_equal(in.order.shipped_at, T0);
	assert_int_equal(in.order.delivered_at, T0 + 48 * HOUR + 500);
	assert_true(in.order.warranty_until == AR_TIME_NONE);
	assert_true(in.order.customized);
	assert_int_equal(in.order.insurance, AR_INSURANCE_SELLER);
	assert_int_equal(in.order.usage_km, 0);
	assert_int_equal(in.n_evidence, 2);
	assert_int_equal(in.evidence[0].kind, AR_EVIDENCE_PHOTO);
	assert_string_equal(in.evidence[0].url, "https://img.example.com/1.jpg");
	assert_string_equal(in.evidence[0].sha256, SHA_A);
	assert_int_equal(in.evidence[1].kind, AR_EVIDENCE_CHAT_LOG);
	assert_null(in.evidence[1].sha256);
	assert_int_equal(in.buyer.account_created_at, 1577836800LL * 1000);
	assert_int_equal(in.buyer.orders_count, 42);
	json_decref(root);
}

static void test_minimal_body_defaults(void **state)
{
	json_t *root = load(MINIMAL_BODY);
	ar_case_input in;

	decode_ok(root, &in);
	assert_int_equal(in.kind, AR_KIND_REFUND);
	assert_int_equal(in.reason, AR_REASON_LATE_SHIPMENT);
	assert_int_equal(in.requested_cents, -1);
	assert_string_equal(in.currency, "CNY");
	assert_null(in.defect);
	assert_null(in.order.category);
	assert_int_equal(in.order.price_cents, 0);
	assert_int_equal(in.order.shipping_fee_cents, 0);
	assert_false(in.order.free_shipping);
	assert_false(in.order.customized);
	assert_int_equal(in.order.paid_at, T0);
	assert_true(in.order.promised_ship_by == AR_TIME_NONE);
	assert_true(in.order.shipped_at == AR_TIME_NONE);
	assert_true(in.order.delivered_at == AR_TIME_NONE);
	assert_true(in.order.warranty_until == AR_TIME_NONE);
	assert_int_equal(in.order.insurance, AR_INSURANCE_NONE);
	assert_int_equal(in.order.usage_km, -1);
	assert_int_equal(in.n_evidence, 0);
	assert_true(in.buyer.account_created_at == AR_TIME_NONE);
	assert_int_equal(in.buyer.orders_count, -1);
	json_decref(root);
}

static char *repeat(const char *cp, size_t n);

static ar_time fixed_now(void)
{
	return T0 + 30 * 24 * HOUR;
}

static void test_order_timeline(void **state)
{
	json_t *root = load(MINIMAL_BODY);
	char future[32];

	/* paid <= shipped <= delivered, each named when out of order */
	assert_int_equal(json_object_set_new(at(root, "order"), "delivered_at",
					     json_string("2020-01-01T00:00:00Z")), 0);
	expect_one(root, "/order/delivered_at", "before paid_at");
	json_decref(root);
	bad_field("order", "shipped_at", json_string("2026-11-01T01:00:00Z"), "/order/shipped_at",
		  "before paid_at");
	bad_field("order", "delivered_at", json_string("2026-11-02T09:00:00Z"),
		  "/order/delivered_at", "before shipped_at");
	/* not in the future beyond the skew: year 9999, and now + skew + 1 s */
	bad_field("order", "delivered_at", json_string("9999-01-01T00:00:00Z"),
		  "/order/delivered_at", "future");
	ar_time_format(fixed_now() + CODEC_CLOCK_SKEW_MS + 1000, future, sizeof(future));
	bad_field("order", "delivered_at", json_string(future), "/order/delivered_at", "future");
	/* within the skew is fine */
	root = load(VALID_BODY);
	ar_time_format(fixed_now() + CODEC_CLOCK_SKEW_MS - 1000, future, sizeof(future));
	assert_int_equal(json_object_set_new(at(root, "order"), "delivered_at", json_string(future)), 0);
	{
		ar_case_input in;
		decode_ok(root, &in);
	}
	json_decref(root);
}

static void test_ident_charset(void **state)
{
	static const char *const bad[] = { "../S-2", "S'1", "S\"1", "-S", ".S", "S 1", "S/1",
					   "S%2F1", "\xe5\xba\x97" };
	static const char *const good[] = { "S-1", "1000000", "KETTLE-1L-WHITE", "ord-1a2b", "a.b:c_d" };
	char *max = repeat("a", CODEC_IDENT_MAX), *over = repeat("a", CODEC_IDENT_MAX + 1);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(codec_ident_ok(bad[i]));
		bad_field("order", "shop_id", json_string(bad[i]), "/order/shop_id", "letters");
		bad_field("order", "sku", json_string(bad[i]), "/order/sku", "letters");
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(codec_ident_ok(good[i]));
	assert_true(codec_ident_ok(max));
	assert_false(codec_ident_ok(over));
	assert_false(codec_ident_ok(""));
	assert_false(codec_ident_ok(NULL));
	bad_field("order", "buyer_id", json_string(over), "/order/buyer_id", "1 to 64");
	free(max);
	free(over);
}

static void test_evidence_internal_hosts(void **state)
{
	static const char *const bad[] = {
		"https://127.0.0.1/x", "https://127.1/x", "https://2130706433/x", "https://0x7f000001/",
		"https://0177.0.0.1/", "https://localhost/x", "https://LOCALHOST./x", "https://a.localhost/",
		"https://169.254.169.254/latest/meta-data/", "https://10.1.2.3/", "https://172.16.0.1/",
		"https://192.168.1.1:8443/", "https://100.64.0.1/", "https://0.0.0.0/", "https://[::1]/",
		"https://[fe80::1]/", "https://[::ffff:127.0.0.1]/", "https://user@img.example.com/x",
		"https://user:pw@img.example.com/x", "https://img.example.com@127.0.0.1/",
		"https://224.0.0.1/", "https://a_b.example.com/",
	};
	static const char *const good[] = {
		"https://img.example.com/x@y", "https://8.8.8.8/x", "https://img.example.com:8443/a?b=c#d",
		"https://172.32.0.1/", "https://xn--fiq228c.example/",
	};
	json_t *root;
	ar_case_input in;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_field("evidence/0", "url", json_string(bad[i]), "/evidence/0/url", "must");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		root = load(VALID_BODY);
		assert_int_equal(json_object_set_new(at(root, "evidence/0"), "url",
						     json_string(good[i])), 0);
		decode_ok(root, &in);
		json_decref(root);
	}
}

static void test_https_only_by_default(void **state)
{
	codec_options strict = { .allow_http_evidence = false, .now = fixed_now };
	codec_options loose = { .allow_http_evidence = true, .now = fixed_now };

	codec_configure(&strict);
	bad_field("evidence/1", "url", json_string("http://chat.example.com/x"), "/evidence/1/url",
		  "https://");
	codec_configure(&loose);
}

static json_t *parse_str(const char *s, ar_err *err)
{
	ar_err_init(err);
	return codec_parse_body(s, strlen(s), err);
}

static void test_parse_ok_and_malformed(void **state)
{
	ar_err err;
	json_t *root = parse_str(VALID_BODY, &err);

	assert_non_null(root);
	assert_int_equal(err.status, 0);
	json_decref(root);

	assert_null(parse_str("{\"a\" 1}", &err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.type, "malformed-json");
	assert_non_null(strstr(err.detail, "byte offset 6"));
	assert_non_null(strstr(err.detail, "':' expected"));

	assert_null(parse_str("{\"a\":1} x", &err));
	assert_string_equal(err.type, "malformed-json");
	assert_non_null(strstr(err.detail, "byte offset 9"));

	assert_null(parse_str("", &err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.type, "malformed-json");

	/* NUL would truncate borrowed C strings, so it must never reach decode. */
	assert_null(parse_str("{\"a\":\"x\\u0000y\"}", &err));
	assert_string_equal(err.type, "malformed-json");

	ar_err_init(&err);
	assert_null(codec_parse_body(NULL, 0, &err));
	assert_int_equal(err.status, 400);
}

static void test_parse_duplicate_key(void **state)
{
	ar_err err;

	assert_null(parse_str("{\"kind\":\"refund\",\"order\":{\"sku\":\"a\",\"sku\":\"b\"}}", &err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.type, "duplicate-key");
	assert_non_null(strstr(err.detail, "\"sku\""));
}

/* {"a": followed by n-1 nested arrays: n levels of containers in all. */
static char *nested(size_t n)
{
	char *s = malloc(2 * n + 16);
	size_t w = 0;

	assert_non_null(s);
	w += (size_t)sprintf(s, "{\"a\":");
	for (size_t i = 1; i < n; i++)
		s[w++] = '[';
	for (size_t i = 1; i < n; i++)
		s[w++] = ']';
	s[w++] = '}';
	s[w] = '\0';
	return s;
}

static void test_parse_depth(void **state)
{
	ar_err err;
	char *ok32 = nested(32), *bad33 = nested(33), *huge = nested(100000);
	json_t *root = parse_str(ok32, &err);

	assert_non_null(root);
	json_decref(root);
	assert_null(parse_str(bad33, &err));
	assert_int_equal(err.status, 400);
	assert_string_equal(err.type, "nesting-too-deep");
	assert_non_null(strstr(err.detail, "nesting too deep"));
	assert_null(parse_str(huge, &err));
	assert_string_equal(err.type, "nesting-too-deep");
	free(ok32);
	free(bad33);
	free(huge);

	/* Brackets inside strings, including after an escaped quote, are not nesting. */
	root = parse_str("{\"a\":\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{\"}", &err);
	assert_non_null(root);
	json_decref(root);
}

static void test_parse_top_level_not_object(void **state)
{
	ar_err err;

	assert_null(parse_str("[1,2]", &err));
	assert_int_equal(err.status, 422);
	assert_int_equal(err.n_fields, 1);
	assert_string_equal(err.fields[0].pointer, "");
	assert_null(parse_str("\"refund\"", &err));
	assert_int_equal(err.status, 422);
	assert_string_equal(err.fields[0].pointer, "");

	ar_case_input in;
	json_t *arr = load("[]");
	expect_one(arr, "", "must be an object");
	json_decref(arr);
	ar_err_init(&err);
	assert_false(codec_decode_case(NULL, &in, &err));
}

static void test_wrong_types(void **state)
{
	bad_field("order", "price_cents", json_string("12900"), "/order/price_cents",
		  "must be a non-negative integer");
	bad_field("order", "price_cents", json_real(1.5), "/order/price_cents",
		  "must be a non-negative integer");
	bad_field("order", "price_cents", json_real(100.0), "/order/price_cents",
		  "must be a non-negative integer");
	bad_field("order", "price_cents", json_null(), "/order/price_cents", "is required");
	bad_field("", "requested_cents", json_integer(-1), "/requested_cents",
		  "must be a non-negative integer");
	bad_field("order", "shipping_fee_cents", json_integer(-800), "/order/shipping_fee_cents",
		  "must be a non-negative integer");
	bad_field("order", "price_cents", json_integer(CODEC_MAX_CENTS + 1), "/order/price_cents",
		  "at most 1000000000000000");
	bad_field("buyer", "orders_count", json_true(), "/buyer/orders_count",
		  "must be a non-negative integer");
	bad_field("order", "usage_km", json_integer(-3), "/order/usage_km",
		  "must be a non-negative integer");
	bad_field("order", "free_shipping", json_string("yes"), "/order/free_shipping",
		  "must be true or false");
	bad_field("order", "customized", json_integer(1), "/order/customized",
		  "must be true or false");
	bad_field("", "description", json_integer(5), "/description", "must be a string");
	bad_field("order", "id", json_integer(5), "/order/id", "must be a string");
	bad_field("", "order", json_array(), "/order", "must be an object");
	bad_field("", "buyer", json_string("b"), "/buyer", "must be an object");
	bad_field("", "evidence", json_object(), "/evidence", "must be an array");
	bad_field("order", "paid_at", json_integer(1793613600), "/order/paid_at", "RFC 3339");
	bad_field("order", "delivered_at", json_string("2026-02-30T10:00:00Z"),
		  "/order/delivered_at", "RFC 3339");
	bad_field("order", "shipped_at", json_string("2026-11-02T10:00:00"), "/order/shipped_at",
		  "RFC 3339");
	bad_field("buyer", "account_created_at", json_string("yesterday"),
		  "/buyer/account_created_at", "RFC 3339");
}

static void test_money_bound_inclusive(void **state)
{
	json_t *root = load(VALID_BODY);
	ar_case_input in;

	assert_int_equal(json_object_set_new(at(root, "order"), "price_cents",
					     json_integer(CODEC_MAX_CENTS)), 0);
	decode_ok(root, &in);
	assert_int_equal(in.order.price_cents, CODEC_MAX_CENTS);
	json_decref(root);
}

static void test_enums(void **state)
{
	bad_field("", "kind", json_string("refunds"), "/kind",
		  "must be one of refund, return, exchange, repair, complaint");
	bad_field("", "kind", json_integer(0), "/kind", "must be one of refund,");
	bad_field("", "reason", json_string("QUALITY_DEFECT"), "/reason",
		  "quality_defect, not_as_described");
	bad_field("", "reason", json_string("x"), "/reason", "safety_hazard");
	bad_field("order", "return_shipping_insurance", json_string("both"),
		  "/order/return_shipping_insurance", "must be one of none, buyer, seller");
	bad_field("evidence/1", "kind", json_string("audio"), "/evidence/1/kind",
		  "must be one of photo, video, chat_log, logistics, document");
}

static void test_missing_required(void **state)
{
	static const struct {
		const char *where, *key, *ptr;
	} cases[] = {
		{ "", "kind", "/kind" },
		{ "", "reason", "/reason" },
		{ "", "description", "/description" },
		{ "", "order", "/order" },
		{ "order", "id", "/order/id" },
		{ "order", "shop_id", "/order/shop_id" },
		{ "order", "buyer_id", "/order/buyer_id" },
		{ "order", "sku", "/order/sku" },
		{ "order", "price_cents", "/order/price_cents" },
		{ "order", "paid_at", "/order/paid_at" },
		{ "evidence/0", "kind", "/evidence/0/kind" },
		{ "evidence/1", "url", "/evidence/1/url" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *root = load(VALID_BODY);
		assert_int_equal(json_object_del(at(root, cases[i].where), cases[i].key), 0);
		expect_one(root, cases[i].ptr, "is required");
		json_decref(root);
	}
}

static void test_unknown_fields_each_level(void **state)
{
	bad_field("", "colour", json_string("red"), "/colour", "unknown field");
	bad_field("order", "colour", json_string("red"), "/order/colour", "unknown field");
	bad_field("evidence/1", "caption", json_string("c"), "/evidence/1/caption",
		  "unknown field");
	bad_field("buyer", "vip", json_true(), "/buyer/vip", "unknown field");
	/* RFC 6901: "~" is written ~0 and "/" is written ~1. */
	bad_field("", "a/b~c", json_null(), "/a~1b~0c", "unknown field");
}

/* n copies of a code point given as UTF-8 bytes; caller frees. */
static char *repeat(const char *cp, size_t n)
{
	size_t k = strlen(cp);
	char *s = malloc(k * n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * k, cp, k);
	s[k * n] = '\0';
	return s;
}

static void test_description_code_points(void **state)
{
	char *ok3 = repeat("\xe6\xb1\x89", AR_MAX_DESCRIPTION);     /* 汉: 3 bytes */
	char *bad3 = repeat("\xe6\xb1\x89", AR_MAX_DESCRIPTION + 1);
	char *ok4 = repeat("\xf0\x9f\x93\xa6", AR_MAX_DESCRIPTION); /* package emoji: 4 bytes */
	json_t *root = load(VALID_BODY);
	ar_case_input in;

	assert_int_equal(json_object_set_new(root, "description", json_string(ok3)), 0);
	decode_ok(root, &in);
	assert_int_equal(strlen(in.description), 3 * AR_MAX_DESCRIPTION);
	assert_int_equal(json_object_set_new(root, "description", json_string(ok4)), 0);
	decode_ok(root, &in);
	json_decref(root);

	bad_field("", "description", json_string(bad3), "/description", "1 to 4000 characters");
	bad_field("", "description", json_string(""), "/description", "1 to 4000 characters");
	free(ok3);
	free(bad3);
	free(ok4);
}

static void test_id_strings(void **state)
{
	char *id64 = repeat("x", AR_MAX_ID_LEN), *id65 = repeat("x", AR_MAX_ID_LEN + 1);
	json_t *root = load(VALID_BODY);
	ar_case_input in;

	assert_int_equal(json_object_set_new(at(root, "order"), "sku", json_string(id64)), 0);
	decode_ok(root, &in);
	json_decref(root);
	bad_field("order", "sku", json_string(id65), "/order/sku", "1 to 64 characters");
	bad_field("order", "shop_id", json_string(""), "/order/shop_id", "1 to 64 characters");
	bad_field("order", "id", json_string("O\x01"), "/order/id", "control characters");
	bad_field("order", "buyer_id", json_string("B\n1"), "/order/buyer_id", "control characters");
	bad_field("order", "category", json_string("\xc2\x85"), "/order/category",
		  "control characters");
	bad_field("", "defect", json_string(id65), "/defect", "1 to 64 characters");
	free(id64);
	free(id65);
}

static void test_currency(void **state)
{
	static const char *const bad[] = { "usd", "US", "USDX", "U5D", "" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		bad_field("", "currency", json_string(bad[i]), "/currency", "3-letter ISO 4217");
	bad_field("", "currency", json_integer(156), "/currency", "3-letter ISO 4217");
}

static void test_evidence_count(void **state)
{
	json_t *root = load(VALID_BODY);
	json_t *arr = json_array();
	ar_case_input in;

	for (int i = 0; i < AR_MAX_EVIDENCE; i++) {
		char url[64];
		snprintf(url, sizeof(url), "https://e.example.com/%d", i);
		assert_int_equal(json_array_append_new(arr, json_pack("{s:s, s:s}", "kind", "video",
								      "url", url)), 0);
	}
	assert_int_equal(json_object_set(root, "evidence", arr), 0);
	decode_ok(root, &in);
	assert_int_equal(in.n_evidence, AR_MAX_EVIDENCE);
	assert_string_equal(in.evidence[19].url, "https://e.example.com/19");

	assert_int_equal(json_array_append_new(arr, json_pack("{s:s, s:s}", "kind", "video", "url",
							      "https://e.example.com/20")), 0);
	expect_one(root, "/evidence", "at most 20 items");
	json_decref(arr);
	json_decref(root);

	bad_field("", "evidence", json_pack("[i]", 1), "/evidence/0", "must be an object");
}

static void test_evidence_url_and_sha(void **state)
{
	static const char *const bad_urls[] = {
		"ftp://x.example.com/a", "https://", "javascript:alert(1)", "https://a b",
		"//img.example.com/1.jpg", "https://x\x01y",
	};
	char *long_ok = repeat("a", AR_MAX_URL_LEN - 8), *long_bad = repeat("a", AR_MAX_URL_LEN - 7);
	char u_ok[AR_MAX_URL_LEN + 16], u_bad[AR_MAX_URL_LEN + 16];
	json_t *root = load(VALID_BODY);
	ar_case_input in;

	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++)
		bad_field("evidence/0", "url", json_string(bad_urls[i]), "/evidence/0/url", "URL");
	snprintf(u_ok, sizeof(u_ok), "https://%s", long_ok);
	snprintf(u_bad, sizeof(u_bad), "https://%s", long_bad);
	assert_int_equal(json_object_set_new(at(root, "evidence/0"), "url", json_string(u_ok)), 0);
	decode_ok(root, &in);
	assert_int_equal(strlen(in.evidence[0].url), AR_MAX_URL_LEN);
	json_decref(root);
	bad_field("evidence/0", "url", json_string(u_bad), "/evidence/0/url", "1 to 2048");
	/* The scheme is case-insensitive (RFC 3986). */
	root = load(VALID_BODY);
	assert_int_equal(json_object_set_new(at(root, "evidence/0"), "url",
					     json_string("HTTPS://IMG.EXAMPLE.COM/x")), 0);
	decode_ok(root, &in);
	json_decref(root);
	free(long_ok);
	free(long_bad);

	bad_field("evidence/1", "sha256", json_string(SHA_A "0"), "/evidence/1/sha256", "64");
	bad_field("evidence/1", "sha256", json_string("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
		  "/evidence/1/sha256", "64 lowercase hexadecimal");
	bad_field("evidence/1", "sha256", json_string("g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		  "/evidence/1/sha256", "64 lowercase hexadecimal");
	bad_field("evidence/1", "sha256", json_string("abc"), "/evidence/1/sha256",
		  "64 lowercase hexadecimal");
}

static void test_many_errors_one_pass(void **state)
{
	json_t *root = load(VALID_BODY);
	ar_case_input in;
	ar_err err;
	static const char *const want[] = {
		"/colour", "/kind", "/currency", "/order/price_cents", "/order/paid_at",
		"/evidence/0/url", "/evidence/1/sha256", "/buyer/orders_count",
	};

	assert_int_equal(json_object_set_new(root, "colour", json_string("red")), 0);
	assert_int_equal(json_object_set_new(root, "kind", json_string("swap")), 0);
	assert_int_equal(json_object_set_new(root, "currency", json_string("rmb")), 0);
	assert_int_equal(json_object_set_new(at(root, "order"), "price_cents", json_real(9.99)), 0);
	assert_int_equal(json_object_del(at(root, "order"), "paid_at"), 0);
	assert_int_equal(json_object_set_new(at(root, "evidence/0"), "url", json_string("ftp://a")), 0);
	assert_int_equal(json_object_set_new(at(root, "evidence/1"), "sha256", json_string("zz")), 0);
	assert_int_equal(json_object_set_new(at(root, "buyer"), "orders_count", json_integer(-1)), 0);

	ar_err_init(&err);
	assert_false(codec_decode_case(root, &in, &err));
	assert_int_equal(err.status, 422);
	assert_int_equal(err.n_fields, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(err.fields[i].pointer, want[i]);
	json_decref(root);
}

static void test_error_cap(void **state)
{
	json_t *root = load(VALID_BODY);
	ar_case_input in;
	ar_err err;

	for (int i = 0; i < AR_ERR_MAX_FIELDS + 5; i++) {
		char key[16];
		snprintf(key, sizeof(key), "x%d", i);
		assert_int_equal(json_object_set_new(root, key, json_true()), 0);
	}
	ar_err_init(&err);
	assert_false(codec_decode_case(root, &in, &err));
	assert_int_equal(err.n_fields, AR_ERR_MAX_FIELDS);
	assert_string_equal(err.fields[0].pointer, "/x0");
	json_decref(root);
}

static void test_generic_helpers(void **state)
{
	json_t *body = load("{\"note\":\"hello\",\"amount\":5,\"big\":2.0,\"n\":null}");
	static const char *const allowed[] = { "note", "amount", NULL };
	const char *s = "sentinel";
	int64_t cents = 99;
	ar_err err;

	ar_err_init(&err);
	assert_true(codec_get_string(body, "note", "/action", true, 5, &s, &err));
	assert_string_equal(s, "hello");
	assert_true(codec_get_string(body, "missing", "/action", false, 5, &s, &err));
	assert_null(s);
	assert_true(codec_get_string(body, "n", "/action", false, 5, &s, &err));
	assert_null(s);
	assert_true(codec_get_cents(body, "amount", "", true, &cents, &err));
	assert_int_equal(cents, 5);
	assert_true(codec_get_cents(body, "missing", "", false, &cents, &err));
	assert_int_equal(cents, -1);
	assert_int_equal(err.status, 0);

	assert_false(codec_get_string(body, "note", "/action", true, 4, &s, &err));
	assert_false(codec_get_string(body, "missing", "/action", true, 4, &s, &err));
	assert_false(codec_get_cents(body, "big", "", true, &cents, &err));
	assert_false(codec_get_cents(body, "n", "", true, &cents, &err));
	assert_false(codec_check_fields(body, allowed, "", &err));
	assert_int_equal(err.status, 422);
	assert_int_equal(err.n_fields, 6);
	assert_string_equal(err.fields[0].pointer, "/action/note");
	assert_string_equal(err.fields[1].pointer, "/action/missing");
	assert_string_equal(err.fields[1].message, "is required");
	assert_string_equal(err.fields[2].pointer, "/big");
	assert_string_equal(err.fields[3].pointer, "/n");
	assert_string_equal(err.fields[4].pointer, "/big");
	assert_string_equal(err.fields[4].message, "unknown field");
	assert_string_equal(err.fields[5].pointer, "/n");
	json_decref(body);
}

static void test_utf8_len(void **state)
{
	assert_true(codec_utf8_len_ok("", 0));
	assert_true(codec_utf8_len_ok("abc", 3));
	assert_false(codec_utf8_len_ok("abcd", 3));
	assert_true(codec_utf8_len_ok("\xe6\xb1\x89\xe6\xb1\x89", 2));
	assert_false(codec_utf8_len_ok("\xe6\xb1\x89\xe6\xb1\x89", 1));
	assert_true(codec_utf8_len_ok("\xf0\x9f\x93\xa6", 1));
	assert_false(codec_utf8_len_ok("\xe6\xb1", 10));          /* truncated */
	assert_false(codec_utf8_len_ok("\xc0\xaf", 10));          /* overlong '/' */
	assert_false(codec_utf8_len_ok("\xed\xa0\x80", 10));      /* surrogate */
	assert_false(codec_utf8_len_ok("\xf4\x90\x80\x80", 10));  /* past U+10FFFF */
	assert_false(codec_utf8_len_ok("\x80", 10));
	assert_false(codec_utf8_len_ok(NULL, 10));
}

static void test_canonical_json(void **state)
{
	json_t *root = load(VALID_BODY);
	json_t *order, *evidence, *want_order, *want_ev, *body2;
	ar_case_input in, in2;

	decode_ok(root, &in);
	order = codec_order_to_json(&in.order);
	evidence = codec_case_input_evidence_to_json(&in);
	assert_non_null(order);
	assert_non_null(evidence);
	want_order = load(
		"{\"id\":\"O-1\",\"shop_id\":\"S-1\",\"buyer_id\":\"B-1\",\"sku\":\"SKU-1\","
		"\"category\":\"phones\",\"price_cents\":12900,\"shipping_fee_cents\":800,"
		"\"free_shipping\":true,\"paid_at\":\"2026-11-01T02:00:00.000Z\","
		"\"promised_ship_by\":\"2026-11-03T10:00:00.000Z\","
		"\"shipped_at\":\"2026-11-02T10:00:00.000Z\","
		"\"delivered_at\":\"2026-11-04T10:00:00.500Z\",\"customized\":true,"
		"\"return_shipping_insurance\":\"seller\",\"usage_km\":0,"
		"\"quantity\":1,\"points_used\":0,\"coupon_cents\":0}");
	want_ev = load("[{\"kind\":\"photo\",\"url\":\"https://img.example.com/1.jpg\","
		       "\"sha256\":\"" SHA_A "\"},"
		       "{\"kind\":\"chat_log\",\"url\":\"http://chat.example.com/x\"}]");
	if (!json_equal(order, want_order)) {
		char *got = json_dumps(order, JSON_SORT_KEYS);
		fail_msg("canonical order differs: %s", got);
	}
	assert_true(json_equal(evidence, want_ev));

	/* The canonical form decodes back to the same values. */
	body2 = json_deep_copy(root);
	assert_int_equal(json_object_set(body2, "order", order), 0);
	assert_int_equal(json_object_set(body2, "evidence", evidence), 0);
	decode_ok(body2, &in2);
	assert_memory_equal(&in.order.price_cents, &in2.order.price_cents, sizeof(int64_t));
	assert_int_equal(in2.order.paid_at, in.order.paid_at);
	assert_int_equal(in2.order.delivered_at, in.order.delivered_at);
	assert_true(in2.order.warranty_until == AR_TIME_NONE);
	assert_int_equal(in2.order.insurance, in.order.insurance);
	assert_int_equal(in2.n_evidence, 2);
	assert_string_equal(in2.evidence[0].sha256, SHA_A);

	json_decref(body2);
	json_decref(want_order);
	json_decref(want_ev);
	json_decref(order);
	json_decref(evidence);
	json_decref(root);
}

static void test_canonical_json_omits_absent(void **state)
{
	json_t *root = load(MINIMAL_BODY);
	json_t *order, *evidence;
	ar_case_input in;

	decode_ok(root, &in);
	order = codec_order_to_json(&in.order);
	evidence = codec_case_input_evidence_to_json(&in);
	assert_null(json_object_get(order, "category"));
	assert_null(json_object_get(order, "shipped_at"));
	assert_null(json_object_get(order, "warranty_until"));
	assert_null(json_object_get(order, "usage_km"));
	assert_string_equal(json_string_value(json_object_get(order, "return_shipping_insurance")),
			    "none");
	assert_int_equal(json_integer_value(json_object_get(order, "shipping_fee_cents")), 0);
	assert_int_equal(json_array_size(evidence), 0);
	json_decref(order);
	json_decref(evidence);
	json_decref(root);
}

/* codec_dumps against jansson's own compact dump, byte for byte. */
static void assert_dumps_like_jansson(const json_t *j)
{
	char *mine = codec_dumps(j);
	char *theirs = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(mine);
	assert_non_null(theirs);
	assert_string_equal(mine, theirs);
	free(mine);
	free(theirs);
}

static void test_dumps_fixed(void **state)
{
	static const char *const docs[] = {
		"{}", "[]", "\"\"", "0", "-1", "true", "false", "null",
		"9223372036854775807", "-9223372036854775808",
		"0.1", "1.0", "-2.5", "1e300", "1e-7", "-1.5e-300", "123456789012345678.0",
		"\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"",
		"\"\\u0000\\u0001\\u001f\\u007f \\u00e9 \\u4e2d \\ud83d\\ude00\"",
		"{\"b\":1,\"a\":[1,2,{\"z\":null,\"y\":\"\\u001e\"}],\"\":\"empty key\"}",
		"{\"v\":\"a \\u0000 in a value\"}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		json_error_t e;
		json_t *j = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
		assert_non_null(j);
		assert_dumps_like_jansson(j);
		json_decref(j);
	}
	/* jansson's parser refuses a NUL in a key, but an object may hold one */
	json_t *o = json_object();
	assert_int_equal(json_object_setn_new(o, "k\0ey", 4, json_true()), 0);
	assert_dumps_like_jansson(o);
	json_decref(o);
	assert_null(codec_dumps(NULL));
}

static json_t *random_value(unsigned *seed, int depth)
{
	static const char alphabet[] = "aZ09 \"\\/\b\f\n\r\t\x01\x1f\x7f{}[]:,";
	int kind = rand_r(seed) % (depth > 4 ? 6 : 8);
	char s[16];
	size_t n;
	json_t *c;

	switch (kind) {
	case 0: return json_null();
	case 1: return json_boolean(rand_r(seed) & 1);
	case 2: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) & 1 ? -1 : 1)
				    * (json_int_t)rand_r(seed));
	case 3: return json_real((double)rand_r(seed) / ((double)rand_r(seed) + 1.0)
				 * (rand_r(seed) & 1 ? 1e-12 : 1e12));
	case 4:
	case 5:
		n = (size_t)rand_r(seed) % sizeof s;
		for (size_t i = 0; i < n; i++)
			s[i] = alphabet[rand_r(seed) % (sizeof alphabet - 1)];
		/* and sometimes a two-byte UTF-8 letter */
		if (n >= 2 && rand_r(seed) % 3 == 0) {
			s[0] = '\xc3';
			s[1] = '\xa9';
		}
		return json_stringn(s, n);
	case 6:
		c = json_array();
		for (int i = rand_r(seed) % 5; i > 0; i--)
			json_array_append_new(c, random_value(seed, depth + 1));
		return c;
	default:
		c = json_object();
		for (int i = rand_r(seed) % 5; i > 0; i--) {
			snprintf(s, sizeof s, "k%d\"%d", rand_r(seed) % 7, i);
			json_object_set_new(c, s, random_value(seed, depth + 1));
		}
		return c;
	}
}

static void test_dumps_random(void **state)
{
	unsigned seed = 20261204;
	for (int i = 0; i < 20000; i++) {
		json_t *j = random_value(&seed, 0);
		assert_non_null(j);
		assert_dumps_like_jansson(j);
		json_decref(j);
	}
}

/* Deeper than CODEC_DUMP_MAX_DEPTH: refused, not a stack overflow. */
static void test_dumps_too_deep(void **state)
{
	json_t *root = json_array(), *cur = root;
	for (int i = 0; i < CODEC_DUMP_MAX_DEPTH + 1; i++) {
		json_t *next = json_array();
		json_array_append_new(cur, next);
		cur = next;
	}
	assert_null(codec_dumps(root));
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_body_decodes),
		cmocka_unit_test(test_minimal_body_defaults),
		cmocka_unit_test(test_order_timeline),
		cmocka_unit_test(test_ident_charset),
		cmocka_unit_test(test_evidence_internal_hosts),
		cmocka_unit_test(test_https_only_by_default),
		cmocka_unit_test(test_parse_ok_and_malformed),
		cmocka_unit_test(test_parse_duplicate_key),
		cmocka_unit_test(test_parse_depth),
		cmocka_unit_test(test_parse_top_level_not_object),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_money_bound_inclusive),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_unknown_fields_each_level),
		cmocka_unit_test(test_description_code_points),
		cmocka_unit_test(test_id_strings),
		cmocka_unit_test(test_currency),
		cmocka_unit_test(test_evidence_count),
		cmocka_unit_test(test_evidence_url_and_sha),
		cmocka_unit_test(test_many_errors_one_pass),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_generic_helpers),
		cmocka_unit_test(test_utf8_len),
		cmocka_unit_test(test_canonical_json),
		cmocka_unit_test(test_canonical_json_omits_absent),
		cmocka_unit_test(test_dumps_fixed),
		cmocka_unit_test(test_dumps_random),
		cmocka_unit_test(test_dumps_too_deep),
	};
	{
		/* the fixtures hold an http:// chat log and dates of 2026-11 */
		codec_options o = { .allow_http_evidence = true, .now = fixed_now };
		codec_configure(&o);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
