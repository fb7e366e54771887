/* Unit tests for working-day calendars: loading, time zones and working-day deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/workcal.h"

/*
 * Expected instants were computed with `date -u -d <iso> +%s` from dates
 * counted by hand on the State Council's 2025 and 2026 schedules, not with
 * the code under test.
 */
#define S(x) ((ar_time)(x) * 1000)

/* The facts of the shipped calendar that the tests lean on (the 2025 and
 * 2026 notices), plus the 2019 notice's make-up day in 2018. */
static const char *CN_2025_2026 =
	"{\"id\": \"cn-test\", \"years\": {"
	" \"2025\": {\"holidays\": [\"2025-10-01\", \"2025-10-02\", \"2025-10-03\", \"2025-10-04\","
	"   \"2025-10-05\", \"2025-10-06\", \"2025-10-07\", \"2025-10-08\"],"
	"  \"working_days\": [\"2025-09-28\", \"2025-10-11\"]},"
	" \"2026\": {\"holidays\": [\"2026-01-01\", \"2026-01-02\", \"2026-01-03\","
	"   \"2026-02-15\", \"2026-02-16\", \"2026-02-17\", \"2026-02-18\", \"2026-02-19\","
	"   \"2026-02-20\", \"2026-02-21\", \"2026-02-22\", \"2026-02-23\","
	"   \"2026-10-01\", \"2026-10-02\", \"2026-10-03\", \"2026-10-04\", \"2026-10-05\","
	"   \"2026-10-06\", \"2026-10-07\"],"
	"  \"working_days\": [\"2026-01-04\", \"2026-02-14\", \"2026-02-28\", \"2026-09-20\","
	"   \"2026-10-10\"]}}}";

static workcal *load_text(const char *text)
{
	json_error_t je;
	ar_err err;
	json_t *doc = json_loads(text, 0, &je);
	if (!doc)
		fail_msg("test calendar is not JSON: %s", je.text);
	ar_err_init(&err);
	workcal *c = workcal_load(doc, &err);
	json_decref(doc);
	if (!c)
		fail_msg("calendar refused: %s %s", err.detail,
			 err.n_fields ? err.fields[0].message : "");
	return c;
}

static workcal_due add(const workcal *c, ar_time start, int n, workcal_at at)
{
	workcal_due due;
	ar_err err;
	ar_err_init(&err);
	if (!workcal_add_working_days(c, start, n, at, &due, &err))
		fail_msg("add_working_days refused: %s", err.n_fields ? err.fields[0].message : "");
	return due;
}

static void test_national_day_2025(void **state)
{
	workcal *c = load_text(CN_2025_2026);
	/* Friday 2025-09-26 10:00 CST: Sunday 28th is a make-up working day,
	 * then Monday 29th and Tuesday 30th: due at 24:00 on the 30th. */
	workcal_due d = add(c, S(1758852000), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1759248000));
	assert_false(d.calendar_incomplete);
	/* Tuesday 30th 15:00 CST: Oct 1-8 are off, then Thu 9th, Fri 10th and
	 * the make-up Saturday 11th. */
	d = add(c, S(1759215600), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1760198400));
	workcal_free(c);
}

static void test_makeup_saturday_start(void **state)
{
	workcal *c = load_text(CN_2025_2026);
	bool covered = false;
	/* Saturday 2026-02-14 is a working day (Spring Festival 调休); the nine
	 * days after it are off, so the three days are Feb 24, 25 and 26. */
	assert_true(workcal_is_working_day(c, ar_days_from_civil(2026, 2, 14), &covered));
	assert_true(covered);
	workcal_due d = add(c, S(1771030800), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1772121600));
	/* Saturday 2026-10-10 (National Day 调休): Sunday off, then Oct 12-14. */
	d = add(c, S(1791597600), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1791993600));
	assert_false(d.calendar_incomplete);
	workcal_free(c);
}

static void test_next_year_missing(void **state)
{
	workcal *c = load_text(CN_2025_2026);
	/* Sunday 2026-12-20: Dec 21-23, all inside 2026. */
	workcal_due d = add(c, S(1797739200), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1798041600));
	assert_false(d.calendar_incomplete);
	/* Wednesday 2026-12-30: Dec 31, then 2027, which no notice covers yet:
	 * Friday Jan 1 counts by the Monday-Friday fallback, then Monday Jan 4,
	 * and the result says it guessed. */
	d = add(c, S(1798603200), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1799078400));
	assert_true(d.calendar_incomplete);
	/* 23:30 CST on Dec 31 (15:30 UTC): the counting starts on Jan 1. */
	d = add(c, S(1798731000), 1, WORKCAL_END_OF_DAY);
	assert_true(d.calendar_incomplete);
	workcal_free(c);
}

static void test_makeup_day_across_year_boundary(void **state)
{
	/* The 2019 notice (not the 2018 one) made Saturday 2018-12-29 a working
	 * day and Dec 30 - Jan 1 the New Year holiday. */
	workcal *c = load_text(
		"{\"id\": \"cn-2019\", \"years\": {"
		" \"2018\": {\"holidays\": [\"2018-10-01\"]},"
		" \"2019\": {\"holidays\": [\"2018-12-30\", \"2018-12-31\", \"2019-01-01\"],"
		"           \"working_days\": [\"2018-12-29\"]}}}");
	/* Thursday 2018-12-27 10:00 CST: Fri 28th, Sat 29th, then Wed Jan 2. */
	workcal_due d = add(c, S(1545876000), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1546444800));
	assert_false(d.calendar_incomplete);
	workcal_free(c);
}

static void test_dst_zone(void **state)
{
	workcal *de = load_text(
		"{\"id\": \"de-test\", \"time_zone\": \"Europe/Berlin\", \"years\": {"
		" \"2026\": {\"holidays\": [\"2026-04-03\", \"2026-04-06\"]}}}");
	workcal *cn = load_text(CN_2025_2026);
	/* Friday 2026-03-27 10:00 CET; summer time starts on Sunday 29th, so
	 * 24:00 on Wednesday April 1st is 22:00 UTC, not 23:00. */
	workcal_due d = add(de, S(1774602000), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1775080800));
	/* The same wall-clock time: 10:00 CEST is 08:00 UTC. */
	d = add(de, S(1774602000), 3, WORKCAL_SAME_TIME);
	assert_int_equal(d.due, S(1775030400));
	/* Thursday April 2nd: Good Friday, the weekend and Easter Monday are off. */
	d = add(de, S(1775116800), 3, WORKCAL_END_OF_DAY);
	assert_int_equal(d.due, S(1775772000));
	/* Shanghai keeps UTC+8 across the same weekend. */
	assert_int_equal(workcal_offset_at(cn, S(1774602000)), 8 * 3600 * 1000LL);
	assert_int_equal(workcal_offset_at(cn, S(1775116800)), 8 * 3600 * 1000LL);
	workcal_free(de);
	workcal_free(cn);

	workcal *ny = load_text(
		"{\"id\": \"us-test\", \"time_zone\": \"America/New_York\", \"years\": {\"2026\": {}}}");
	/* Friday 2026-10-30 10:00 EDT; summer time ends on Sunday November 1st:
	 * Monday 10:00 EST is 15:00 UTC. */
	d = add(ny, S(1793368800), 1, WORKCAL_SAME_TIME);
	assert_int_equal(d.due, S(1793631600));
	assert_int_equal(workcal_offset_at(ny, S(1793368800)), -4 * 3600 * 1000LL);
	assert_int_equal(workcal_offset_at(ny, S(1793631600)), -5 * 3600 * 1000LL);
	workcal_free(ny);
}

static void test_days_left(void **state)
{
	workcal *c = load_text(CN_2025_2026);
	/* 2026-12-06: 25 days to December 31st, the last covered day. */
	assert_int_equal(workcal_days_left(c, S(1796558400)), 25);
	/* 2025-12-31 16:30 UTC is already January 1st 2026 in Shanghai. */
	assert_int_equal(workcal_days_left(c, S(1767198600)), 364);
	/* 2027 is not covered at all. */
	assert_int_equal(workcal_days_left(c, S(1799078400)), -1);
	workcal_free(c);
}

static void extend(const workcal *c, ar_time due, int min_days, ar_time want, int want_days)
{
	ar_time got;
	int days;
	workcal_extend_over_holiday(c, due, min_days, &got, &days);
	if (got != want || days != want_days)
		fail_msg("extend(%lld, %d): got %lld (+%d days), want %lld (+%d days)",
			 (long long)due, min_days, (long long)got, days, (long long)want, want_days);
}

/* Runs counted by hand on the 2026 notice: Spring Festival 15-23 Feb (9
 * days: the Saturday before and the one after are make-up working days),
 * National Day 1-7 Oct (7), New Year 1-3 Jan (3: Sunday 4 Jan works). */
static void test_holiday_extension(void **state)
{
	workcal *c = load_text(CN_2025_2026);
	(void)state;
	/* 17 Feb 10:00 CST -> 26 Feb 10:00 CST */
	extend(c, S(1771293600), 3, S(1772071200), 9);
	/* 5 Oct 23:59:59 CST -> 12 Oct 23:59:59 CST */
	extend(c, S(1791215999), 7, S(1791820799), 7);
	/* a run shorter than min_days, or exactly as long */
	extend(c, S(1767326400), 4, S(1767326400), 0);
	extend(c, S(1767326400), 3, S(1767585600), 3);
	/* the last instant of the run moves; the first of the make-up Sunday
	 * after it does not */
	extend(c, S(1767455999), 1, S(1767715199), 3);
	extend(c, S(1767456000), 1, S(1767456000), 0);
	/* a plain Saturday is no holiday */
	extend(c, S(1772856000), 1, S(1772856000), 0);
	/* off */
	extend(c, S(1771293600), 0, S(1771293600), 0);
	workcal_free(c);
}

static void refused(const char *text, const char *pointer)
{
	json_error_t je;
	ar_err err;
	json_t *doc = json_loads(text, 0, &je);
	assert_non_null(doc);
	ar_err_init(&err);
	workcal *c = workcal_load(doc, &err);
	json_decref(doc);
	if (c)
		fail_msg("calendar accepted: %s", text);
	assert_int_equal(err.status, 422);
	assert_string_equal(err.type, "invalid-calendar");
	for (size_t i = 0; i < err.n_fields; i++)
		if (strcmp(err.fields[i].pointer, pointer) == 0)
			return;
	fail_msg("no field error at %s for %s (first: %s)", pointer, text,
		 err.n_fields ? err.fields[0].pointer : "none");
}

static void test_invalid(void **state)
{
	refused("[]", "");
	refused("{\"years\": {}}", "/id");
	refused("{\"id\": \"Bad Id\", \"years\": {}}", "/id");
	refused("{\"id\": \"x\", \"time_zone\": \"Mars/Base\", \"years\": {}}", "/time_zone");
	refused("{\"id\": \"x\"}", "/years");
	refused("{\"id\": \"x\", \"years\": {\"26\": {}}}", "/years/26");
	refused("{\"id\": \"x\", \"years\": {\"2026\": {\"holidays\": [\"2026-02-30\"]}}}",
		"/years/2026/holidays");
	refused("{\"id\": \"x\", \"years\": {\"2026\": {\"holidays\": [\"2029-01-01\"]}}}",
		"/years/2026/holidays");
	refused("{\"id\": \"x\", \"years\": {\"2026\": {\"holidays\": [\"2026-01-05\"],"
		" \"working_days\": [\"2026-01-05\"]}}}", "/years");
	refused("{\"id\": \"x\", \"years\": {\"2026\": {\"extra\": 1}}}", "/years/2026");
	refused("{\"id\": \"x\", \"colour\": 1, \"years\": {}}", "");

	workcal *c = load_text(CN_2025_2026);
	workcal_due d;
	ar_err err;
	ar_err_init(&err);
	assert_false(workcal_add_working_days(c, S(1796558400), 0, WORKCAL_END_OF_DAY, &d, &err));
	assert_int_equal(err.status, 422);
	ar_err_init(&err);
	assert_false(workcal_add_working_days(c, S(1796558400), WORKCAL_MAX_N + 1,
					      WORKCAL_END_OF_DAY, &d, &err));
	workcal_free(c);
}

/* ---- randomized against a day-by-day walk ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)   /* xorshift64: reproducible, no libc state */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The obvious algorithm: walk day by day, counting working days. */
static int64_t walk(const workcal *c, int64_t d0, int n, bool *incomplete)
{
	int64_t d = d0;
	*incomplete = false;
	while (n > 0) {
		bool covered;
		d++;
		if (workcal_is_working_day(c, d, &covered))
			n--;
		if (!covered)
			*incomplete = true;
	}
	return d;
}

static void random_calendar(char *buf, size_t len, const char *zone)
{
	size_t o = (size_t)snprintf(buf, len, "{\"id\": \"rnd\", \"time_zone\": \"%s\", \"years\": {",
				    zone);
	bool first_year = true;
	for (int y = 2024; y <= 2029; y++) {
		if (next_rand() % 4 == 0)
			continue;   /* a missing year */
		o += (size_t)snprintf(buf + o, len - o, "%s\"%d\": {\"holidays\": [",
				      first_year ? "" : ",", y);
		first_year = false;
		/* Runs of holidays; each run's neighbouring weekend day may be a
		 * make-up working day, kept apart from the holidays. */
		char work[1024] = "";
		size_t wo = 0;
		bool first = true;
		int64_t day = ar_days_from_civil(y, 1, 1);
		int64_t end = ar_days_from_civil(y + 1, 1, 1);
		while (day < end) {
			day += 1 + (int64_t)(next_rand() % 40);
			int run = 1 + (int)(next_rand() % 8);
			for (int i = 0; i < run && day < end; i++, day++) {
				int64_t yy;
				int m, dd;
				ar_civil_from_days(day, &yy, &m, &dd);
				o += (size_t)snprintf(buf + o, len - o, "%s\"%04lld-%02d-%02d\"",
						      first ? "" : ",", (long long)yy, m, dd);
				first = false;
			}
			int64_t mk = day + 1;
			int w = (int)((mk + 4) % 7);
			if ((w == 0 || w == 6) && next_rand() % 2 && mk < end + 1) {
				int64_t yy;
				int m, dd;
				ar_civil_from_days(mk, &yy, &m, &dd);
				wo += (size_t)snprintf(work + wo, sizeof work - wo, "%s\"%04lld-%02d-%02d\"",
						       wo ? "," : "", (long long)yy, m, dd);
				day = mk + 1;
			}
		}
		o += (size_t)snprintf(buf + o, len - o, "], \"working_days\": [%s]}", work);
	}
	snprintf(buf + o, len - o, "}}");
}

static void test_random_against_walk(void **state)
{
	static char text[65536];
	const char *zones[] = {"Asia/Shanghai", "Europe/Berlin", "America/New_York"};
	int checked = 0;

	for (int round = 0; round < 60; round++) {
		const char *zone = zones[round % 3];
		random_calendar(text, sizeof text, zone);
		workcal *c = load_text(text);
		for (int i = 0; i < 200; i++) {
			ar_time start = S(ar_days_from_civil(2024, 1, 1) * 86400) +
					(ar_time)(next_rand() % (5ULL * 365 * 86400 * 1000));
			int n = 1 + (int)(next_rand() % 30);
			workcal_due d = add(c, start, n, WORKCAL_END_OF_DAY);
			int64_t local = start + workcal_offset_at(c, start);
			int64_t d0 = local / AR_MS_PER_DAY;
			bool incomplete;
			int64_t last = walk(c, d0, n, &incomplete);
			/* The due instant is local midnight ending the walked day. */
			if (d.due + workcal_offset_at(c, d.due) != (last + 1) * AR_MS_PER_DAY ||
			    d.calendar_incomplete != incomplete)
				fail_msg("round %d zone %s start %lld n %d: due %lld (incomplete %d), "
					 "walk ends on day %lld (incomplete %d)\n%s",
					 round, zone, (long long)start, n, (long long)d.due,
					 d.calendar_incomplete, (long long)last, incomplete, text);
			checked++;
		}
		workcal_free(c);
	}
	assert_int_equal(checked, 60 * 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_national_day_2025),
		cmocka_unit_test(test_makeup_saturday_start),
		cmocka_unit_test(test_next_year_missing),
		cmocka_unit_test(test_makeup_day_across_year_boundary),
		cmocka_unit_test(test_dst_zone),
		cmocka_unit_test(test_days_left),
		cmocka_unit_test(test_holiday_extension),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_random_against_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
