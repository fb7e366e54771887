/* Unit tests for the token buckets: burst, refill, separate keys, a full table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/ratelimit.h"

static void test_burst_then_refill(void **state)
{
	rl_table *t = rl_new(64);
	ar_rate lim = { 5, 10 };
	rl_result r;

	assert_non_null(t);
	for (int i = 0; i < 10; i++) {
		rl_take(t, "k1", 2, lim, 0, &r);
		assert_true(r.allowed);
		assert_true(r.remaining == 9 - i);
	}
	rl_take(t, "k1", 2, lim, 0, &r);
	assert_false(r.allowed);
	assert_true(r.retry_after_s > 0.19 && r.retry_after_s <= 0.2 + 1e-9);
	/* 0.2 s later one token is back, not two */
	rl_take(t, "k1", 2, lim, 200000, &r);
	assert_true(r.allowed);
	rl_take(t, "k1", 2, lim, 200000, &r);
	assert_false(r.allowed);
	/* never more than the burst after a long pause */
	rl_take(t, "k1", 2, lim, 3600LL * 1000000, &r);
	assert_true(r.allowed);
	assert_true(r.remaining == 9);
	rl_free(t);
}

static void test_keys_are_separate_and_unlimited_is_free(void **state)
{
	rl_table *t = rl_new(64);
	ar_rate one = { 1, 1 }, none = { 0, 0 };
	rl_result r;

	rl_take(t, "a", 1, one, 0, &r);
	assert_true(r.allowed);
	rl_take(t, "a", 1, one, 0, &r);
	assert_false(r.allowed);
	rl_take(t, "b", 1, one, 0, &r);
	assert_true(r.allowed);
	for (int i = 0; i < 1000; i++) {
		rl_take(t, "a", 1, none, 0, &r);
		assert_true(r.allowed);
	}
	rl_free(t);
	rl_free(NULL);
}

static void test_full_table_stays_bounded(void **state)
{
	rl_table *t = rl_new(8);
	ar_rate one = { 1, 1 };
	rl_result r;
	char k[16];

	/* far more keys than slots: each new key gets a (recycled) full bucket */
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		rl_take(t, k, strlen(k), one, i, &r);
		assert_true(r.allowed);
	}
	/* the most recent key still has its (empty) bucket */
	rl_take(t, k, strlen(k), one, 10000, &r);
	assert_false(r.allowed);
	rl_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_keys_are_separate_and_unlimited_is_free),
		cmocka_unit_test(test_full_table_stays_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
