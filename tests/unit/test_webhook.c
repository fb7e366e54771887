/* Unit tests for the webhooks' pure rules: secrets, signatures, the retry schedule, outcomes, patterns, SSRF classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "arbiter/webhook.h"

/* The Standard Webhooks specification's own example. */
static void test_sign_spec_vector(void **state)
{
	unsigned char key[WH_SECRET_MAX];
	size_t n = 0;
	char sig[WH_SIG_TEXT_MAX];
	const char *body = "{\"test\": 2432232314}";

	(void)state;
	assert_true(wh_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &n));
	assert_int_equal(n, 24);
	assert_true(wh_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
			    strlen(body), sig, sizeof(sig)));
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* one byte of the body changed: another signature */
	assert_true(wh_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232315}",
			    strlen(body), sig, sizeof(sig)));
	assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void test_secret_round_trip_and_bounds(void **state)
{
	unsigned char key[64], back[WH_SECRET_MAX];
	char text[WH_SECRET_TEXT_MAX];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = WH_SECRET_MIN; len <= WH_SECRET_MAX; len++) {
		assert_true(wh_secret_format(key, len, text, sizeof(text)));
		assert_memory_equal(text, "whsec_", 6);
		assert_true(wh_secret_parse(text, back, &n));
		assert_int_equal(n, len);
		assert_memory_equal(back, key, len);
	}
	assert_false(wh_secret_format(key, WH_SECRET_MIN - 1, text, sizeof(text)));
	assert_false(wh_secret_format(key, WH_SECRET_MAX + 1, text, sizeof(text)));
	assert_false(wh_secret_format(key, 32, text, 20));
	assert_false(wh_secret_parse("sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", back, &n));
	assert_false(wh_secret_parse("whsec_", back, &n));
	assert_false(wh_secret_parse("whsec_AAAA", back, &n));            /* 3 bytes */
	assert_false(wh_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", back, &n));
}

static void test_retry_schedule(void **state)
{
	static const int64_t want_s[WH_ATTEMPTS] = {
		0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
	};
	(void)state;
	for (int a = 0; a < WH_ATTEMPTS; a++) {
		int64_t mid = wh_retry_delay_ms(a, 1.0, 0x7fffffffu);
		int64_t lo = wh_retry_delay_ms(a, 1.0, 0);
		int64_t hi = wh_retry_delay_ms(a, 1.0, 0xffffffffu);
		/* +-10 % jitter around the schedule */
		assert_true(llabs(mid - want_s[a] * 1000) <= 1);
		assert_true(llabs(lo - want_s[a] * 900) <= 1);
		assert_true(llabs(hi - want_s[a] * 1100) <= 1);
	}
	assert_int_equal(wh_retry_delay_ms(WH_ATTEMPTS, 1.0, 0), -1);
	assert_int_equal(wh_retry_delay_ms(WH_ATTEMPTS + 5, 1.0, 0), -1);
	/* the test scale: 24 h becomes 86.4 s at 1/1000 */
	assert_true(llabs(wh_retry_delay_ms(9, 0.001, 0x7fffffffu) - 86400) <= 1);
	assert_true(llabs(wh_retry_delay_ms(1, 0.001, 0x7fffffffu) - 5) <= 1);
}

static void test_retry_after(void **state)
{
	int64_t s = -1;
	(void)state;
	assert_true(wh_retry_after_parse("120", 0, &s));
	assert_int_equal(s, 120);
	assert_true(wh_retry_after_parse(" 0 ", 0, &s));
	assert_int_equal(s, 0);
	/* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 */
	assert_true(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30, &s));
	assert_int_equal(s, 30);
	assert_true(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 30, &s));
	assert_int_equal(s, 0);
	assert_false(wh_retry_after_parse("soon", 0, &s));
	assert_false(wh_retry_after_parse("12s", 0, &s));
	assert_false(wh_retry_after_parse("-5", 0, &s));
	assert_false(wh_retry_after_parse("99999999999999999999", 0, &s));
	assert_false(wh_retry_after_parse("", 0, &s));
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(wh_classify(200), WH_ACK);
	assert_int_equal(wh_classify(204), WH_ACK);
	assert_int_equal(wh_classify(299), WH_ACK);
	assert_int_equal(wh_classify(301), WH_FAIL);
	assert_int_equal(wh_classify(302), WH_FAIL);
	assert_int_equal(wh_classify(410), WH_GONE);
	assert_int_equal(wh_classify(429), WH_THROTTLED);
	assert_int_equal(wh_classify(502), WH_THROTTLED);
	assert_int_equal(wh_classify(503), WH_THROTTLED);
	assert_int_equal(wh_classify(504), WH_THROTTLED);
	assert_int_equal(wh_classify(500), WH_FAIL);
	assert_int_equal(wh_classify(404), WH_FAIL);
	assert_int_equal(wh_classify(0), WH_FAIL);
}

static void test_patterns(void **state)
{
	(void)state;
	assert_true(wh_pattern_valid("*"));
	assert_true(wh_pattern_valid("case.*"));
	assert_true(wh_pattern_valid("case.refund.instructed"));
	assert_true(wh_pattern_valid("case.accept"));
	assert_false(wh_pattern_valid(""));
	assert_false(wh_pattern_valid(".*"));
	assert_false(wh_pattern_valid("case."));
	assert_false(wh_pattern_valid("case..x"));
	assert_false(wh_pattern_valid("Case.x"));
	assert_false(wh_pattern_valid("case*"));
	assert_false(wh_pattern_valid("case.*.x"));
	assert_false(wh_pattern_valid("*.x"));

	assert_true(wh_type_matches("*", "case.accept"));
	assert_true(wh_type_matches("case.*", "case.accept"));
	assert_true(wh_type_matches("case.*", "case.refund.instructed"));
	assert_true(wh_type_matches("case.refund.*", "case.refund.instructed"));
	assert_false(wh_type_matches("case.*", "cases.accept"));
	assert_false(wh_type_matches("case.*", "case"));
	assert_false(wh_type_matches("case.*", "case."));
	assert_true(wh_type_matches("case.accept", "case.accept"));
	assert_false(wh_type_matches("case.accept", "case.accept_offer"));
}

static const char *v4(const char *a)
{
	struct sockaddr_in s;
	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return wh_addr_refusal((struct sockaddr *)&s);
}

static const char *v6(const char *a)
{
	struct sockaddr_in6 s;
	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return wh_addr_refusal((struct sockaddr *)&s);
}

static void test_ssrf_classes(void **state)
{
	(void)state;
	assert_string_equal(v4("127.0.0.1"), "loopback");
	assert_string_equal(v4("127.255.1.2"), "loopback");
	assert_string_equal(v4("10.1.2.3"), "private");
	assert_string_equal(v4("172.16.0.1"), "private");
	assert_string_equal(v4("172.31.255.255"), "private");
	assert_null(v4("172.32.0.1"));
	assert_null(v4("172.15.255.255"));
	assert_string_equal(v4("192.168.1.1"), "private");
	assert_string_equal(v4("100.64.0.1"), "private");
	assert_string_equal(v4("169.254.169.254"), "metadata");
	assert_string_equal(v4("169.254.1.1"), "link-local");
	assert_string_equal(v4("0.0.0.0"), "unspecified");
	assert_string_equal(v4("224.0.0.1"), "multicast");
	assert_string_equal(v4("255.255.255.255"), "reserved");
	assert_null(v4("93.184.216.34"));
	assert_null(v4("8.8.8.8"));
	assert_null(v4("192.169.0.1"));

	assert_string_equal(v6("::1"), "loopback");
	assert_string_equal(v6("::"), "unspecified");
	assert_string_equal(v6("fe80::1"), "link-local");
	assert_string_equal(v6("febf::1"), "link-local");
	assert_string_equal(v6("fc00::1"), "private");
	assert_string_equal(v6("fd00:ec2::254"), "private");
	assert_string_equal(v6("ff02::1"), "multicast");
	/* a v4 address in v6 clothing is judged as itself */
	assert_string_equal(v6("::ffff:127.0.0.1"), "loopback");
	assert_string_equal(v6("::ffff:169.254.169.254"), "metadata");
	assert_null(v6("::ffff:8.8.8.8"));
	assert_null(v6("2606:4700::1111"));
}

static void test_host_list(void **state)
{
	(void)state;
	assert_true(wh_host_listed("127.0.0.1", "127.0.0.1"));
	assert_true(wh_host_listed(" a.example , 127.0.0.1 ", "127.0.0.1"));
	assert_true(wh_host_listed("Hooks.Example", "hooks.example"));
	assert_false(wh_host_listed("127.0.0.1", "127.0.0.10"));
	assert_false(wh_host_listed("127.0.0.10", "127.0.0.1"));
	assert_false(wh_host_listed("", "127.0.0.1"));
	assert_false(wh_host_listed(NULL, "127.0.0.1"));
	assert_false(wh_host_listed("127.0.0.1", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_spec_vector),
		cmocka_unit_test(test_secret_round_trip_and_bounds),
		cmocka_unit_test(test_retry_schedule),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_ssrf_classes),
		cmocka_unit_test(test_host_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
