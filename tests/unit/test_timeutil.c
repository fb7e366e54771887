/* Unit tests for RFC 3339 timestamp and ISO 8601 duration parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/model.h"

/* Expected instants were computed with `date -u -d <iso> +%s`, not with the code under test. */
#define T_2026_11_02_10 (1793613600LL * 1000)

static ar_time parse_ok(const char *s)
{
	ar_time t = 0;
	if (!ar_time_parse(s, &t))
		fail_msg("expected '%s' to parse", s);
	return t;
}

static void parse_bad(const char *s)
{
	ar_time t = 12345;
	if (ar_time_parse(s, &t))
		fail_msg("expected '%s' to be refused", s);
	assert_int_equal(t, 12345);
}

static void test_time_basic(void **state)
{
	assert_int_equal(parse_ok("2026-11-02T10:00:00Z"), T_2026_11_02_10);
	assert_int_equal(parse_ok("2026-11-02t10:00:00z"), T_2026_11_02_10);
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("9999-12-31T23:59:59Z"), 253402300799LL * 1000);
}

static void test_time_leap_years(void **state)
{
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800LL * 1000);
	assert_int_equal(parse_ok("2000-02-29T23:59:59Z"), 951868799LL * 1000);
	/* The day after Feb 28 in a common year is Mar 1. */
	assert_int_equal(parse_ok("2026-03-01T00:00:00Z") - parse_ok("2026-02-28T00:00:00Z"),
			 AR_MS_PER_DAY);
	parse_bad("2026-02-29T00:00:00Z");
	parse_bad("1900-02-29T00:00:00Z");
	parse_bad("2100-02-29T00:00:00Z");
	parse_bad("2024-02-30T00:00:00Z");
	parse_bad("2026-04-31T00:00:00Z");
}

static void test_time_offsets(void **state)
{
	assert_int_equal(parse_ok("2026-11-02T18:00:00+08:00"), T_2026_11_02_10);
	assert_int_equal(parse_ok("2026-11-02T04:30:00-05:30"), T_2026_11_02_10);
	assert_int_equal(parse_ok("2026-11-02T10:00:00-00:00"), T_2026_11_02_10);
	/* An offset can move the instant across midnight and month ends. */
	assert_int_equal(parse_ok("2026-11-03T07:59:00+23:59"), T_2026_11_02_10 - 2 * 3600 * 1000);
	assert_int_equal(parse_ok("2026-10-31T20:00:00-14:00"), T_2026_11_02_10 - 3600 * 1000 * 24);
	parse_bad("2026-11-02T10:00:00+24:00");
	parse_bad("2026-11-02T10:00:00+08:60");
	parse_bad("2026-11-02T10:00:00+0800");
	parse_bad("2026-11-02T10:00:00+8:00");
}

static void test_time_fraction(void **state)
{
	assert_int_equal(parse_ok("2026-11-02T10:00:00.5Z"), T_2026_11_02_10 + 500);
	assert_int_equal(parse_ok("2026-11-02T10:00:00.123Z"), T_2026_11_02_10 + 123);
	assert_int_equal(parse_ok("2026-11-02T10:00:00.123999999Z"), T_2026_11_02_10 + 123);
	assert_int_equal(parse_ok("2026-11-02T10:00:00.09+00:00"), T_2026_11_02_10 + 90);
	parse_bad("2026-11-02T10:00:00.Z");
	parse_bad("2026-11-02T10:00:00,5Z");
}

static void test_time_rejects(void **state)
{
	parse_bad(NULL);
	parse_bad("");
	parse_bad("2026-11-02T10:00:00");      /* no offset */
	parse_bad("2026-11-02 10:00:00Z");     /* space instead of T */
	parse_bad("2026-11-02");
	parse_bad("2026-13-02T10:00:00Z");
	parse_bad("2026-00-02T10:00:00Z");
	parse_bad("2026-11-00T10:00:00Z");
	parse_bad("2026-11-02T24:00:00Z");
	parse_bad("2026-11-02T10:60:00Z");
	parse_bad("2026-11-02T10:00:60Z");
	parse_bad("2026-11-02T10:00:00Zx");
	parse_bad("2026-11-02T10:00:00Z ");
	parse_bad(" 2026-11-02T10:00:00Z");
	parse_bad("1969-12-31T23:59:59Z");
	parse_bad("12026-11-02T10:00:00Z");
	parse_bad("2026-1-02T10:00:00Z");
	parse_bad("+026-11-02T10:00:00Z");
}

static void fmt(ar_time t, const char *want)
{
	char buf[32];
	ar_time_format(t, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_time_format(void **state)
{
	fmt(0, "1970-01-01T00:00:00.000Z");
	fmt(T_2026_11_02_10 + 7, "2026-11-02T10:00:00.007Z");
	fmt(1709164800LL * 1000 - 1, "2024-02-28T23:59:59.999Z");
	fmt(253402300799LL * 1000 + 999, "9999-12-31T23:59:59.999Z");
	fmt(-1, "1969-12-31T23:59:59.999Z");
	/* Round trip through the parser keeps the instant. */
	assert_int_equal(parse_ok("2026-11-02T18:00:00.250+08:00"), T_2026_11_02_10 + 250);
	fmt(parse_ok("2026-11-02T18:00:00.250+08:00"), "2026-11-02T10:00:00.250Z");
}

static void test_time_format_small_buffer(void **state)
{
	char buf[11];
	ar_time_format(T_2026_11_02_10, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-02");
}

static int64_t dur_ok(const char *s)
{
	int64_t ms = 0;
	if (!ar_duration_parse(s, &ms))
		fail_msg("expected duration '%s' to parse", s);
	return ms;
}

static void dur_bad(const char *s)
{
	int64_t ms = 777;
	if (ar_duration_parse(s, &ms))
		fail_msg("expected duration '%s' to be refused", s);
	assert_int_equal(ms, 777);
}

static void test_duration_ok(void **state)
{
	assert_int_equal(dur_ok("P5D"), 432000000LL);
	assert_int_equal(dur_ok("PT2S"), 2000);
	assert_int_equal(dur_ok("PT0.5S"), 500);
	assert_int_equal(dur_ok("PT1.2345S"), 1234);
	assert_int_equal(dur_ok("P1W"), 7 * AR_MS_PER_DAY);
	assert_int_equal(dur_ok("P1DT12H"), 36LL * 3600 * 1000);
	assert_int_equal(dur_ok("PT4H30M"), (4LL * 60 + 30) * 60 * 1000);
	assert_int_equal(dur_ok("PT24H"), AR_MS_PER_DAY);
	assert_int_equal(dur_ok("PT0S"), 0);
	assert_int_equal(dur_ok("P1DT1H1M1.001S"), AR_MS_PER_DAY + 3661001);
	assert_int_equal(dur_ok("PT90M"), 90LL * 60 * 1000);
}

static void test_duration_rejects(void **state)
{
	dur_bad(NULL);
	dur_bad("");
	dur_bad("P");
	dur_bad("PT");
	dur_bad("P1DT");
	dur_bad("P1Y");
	dur_bad("P1M");        /* months: no fixed length */
	dur_bad("P1Y2D");
	dur_bad("-P1D");
	dur_bad("P-1D");
	dur_bad("5D");
	dur_bad("p5d");
	dur_bad("P5");
	dur_bad("PT5");
	dur_bad("PD");
	dur_bad("P5H");        /* hours belong after T */
	dur_bad("PT5D");       /* days belong before T */
	dur_bad("P1D2D");
	dur_bad("PT1S2H");     /* out of order */
	dur_bad("PT1M1M");
	dur_bad("PTT1S");
	dur_bad("P1DT1HT1S");
	dur_bad("PT.5S");
	dur_bad("PT1.S");
	dur_bad("PT0.5M");     /* fractions only on seconds */
	dur_bad("P5D ");
	dur_bad("P99999999999999999999D");
	dur_bad("P9223372036854775807D");
	dur_bad("P15250284453W"); /* fits in int64 as weeks, overflows as ms */
}

static void test_duration_near_overflow(void **state)
{
	int64_t ms = 0;
	/* 9223372036854775 s = 9223372036854775000 ms is the largest whole second that fits. */
	assert_true(ar_duration_parse("PT9223372036854775S", &ms));
	assert_int_equal(ms, 9223372036854775000LL);
	assert_true(ar_duration_parse("P15250284452W", &ms));
	assert_int_equal(ms, 15250284452LL * 7 * AR_MS_PER_DAY);
	assert_false(ar_duration_parse("PT9223372036854775.808S", &ms));
	assert_false(ar_duration_parse("PT9223372036854776S", &ms));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_basic),
		cmocka_unit_test(test_time_leap_years),
		cmocka_unit_test(test_time_offsets),
		cmocka_unit_test(test_time_fraction),
		cmocka_unit_test(test_time_rejects),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_format_small_buffer),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_rejects),
		cmocka_unit_test(test_duration_near_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
