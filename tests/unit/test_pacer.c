/* Unit tests of the pacer: the share it holds, its credit, and when liveness turns it on and off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "arbiter/pacer.h"

static void test_busy_time_buys_the_wait_its_share_asks(void **state)
{
	pacer p;

	(void)state;
	pacer_init(&p, 10, 0);
	assert_int_equal(pacer_wait(&p, 0), 0);
	pacer_spend(&p, 1000);
	/* 1 ms busy at 10 % wants 10 ms of wall time since the start */
	assert_int_equal(pacer_wait(&p, 0), 10000);
	assert_int_equal(pacer_wait(&p, 4000), 6000);
	assert_int_equal(pacer_wait(&p, 10000), 0);
	assert_int_equal(p.waited_us, 16000);
}

static void test_idle_time_banks_only_the_credit(void **state)
{
	pacer p;

	(void)state;
	pacer_init(&p, 10, 0);
	/* a second idle, then 20 ms busy: only PACER_CREDIT_US of it is paid
	 * for by the idle second */
	assert_int_equal(pacer_wait(&p, 1000000), 0);
	pacer_spend(&p, 20000);
	assert_int_equal(pacer_wait(&p, 1000000), (20000 - PACER_CREDIT_US) * 100 / 10);
}

static void test_a_long_run_is_busy_its_share_of_the_time(void **state)
{
	int shares[] = { 1, 10, 25, 50, 99 };

	(void)state;
	for (size_t i = 0; i < sizeof(shares) / sizeof(shares[0]); i++) {
		pacer p;
		int64_t now = 0, busy = 0;

		pacer_init(&p, shares[i], 0);
		/* units of 700 us of work, each followed by the wait asked */
		while (now < 60 * 1000000LL) {
			pacer_spend(&p, 700);
			busy += 700;
			now += 700;
			now += pacer_wait(&p, now);
		}
		/* within one unit of work of the share */
		assert_true(busy * 100 <= now * shares[i] + 700 * 100);
		assert_true(busy * 100 >= now * shares[i] - 700 * 100 - PACER_CREDIT_US * 100);
	}
}

static void test_full_share_and_clamps(void **state)
{
	pacer p;

	(void)state;
	pacer_init(&p, 100, 0);
	pacer_spend(&p, 1000000);
	assert_int_equal(pacer_wait(&p, 0), 0);
	pacer_init(&p, 0, 0);
	assert_int_equal(p.share, 1);
	pacer_init(&p, 250, 0);
	assert_int_equal(p.share, 100);
}

static void test_liveness_follows_the_wal_rate(void **state)
{
	pacer p;
	int64_t t = 1000;
	uint64_t lsn = 1u << 30;

	(void)state;
	pacer_init(&p, 10, t);
	assert_true(p.live); /* until the first window says otherwise */
	assert_true(pacer_reading_due(&p, t));
	pacer_reading(&p, t, lsn);
	assert_false(pacer_reading_due(&p, t + PACER_WINDOW_US - 1));
	/* a reading inside the window changes nothing */
	pacer_reading(&p, t + 1000, lsn);
	assert_true(p.live);
	/* a quiet window: a few hundred bytes in half a second */
	t += PACER_WINDOW_US;
	lsn += 400;
	pacer_reading(&p, t, lsn);
	assert_false(p.live);
	pacer_spend(&p, 1000000);
	assert_int_equal(pacer_wait(&p, t), 0);
	assert_int_equal(pacer_live_us(&p, t), PACER_WINDOW_US);
	/* writes at 4 x the threshold: live again, and the busy time spent
	 * while idle is not owed */
	t += PACER_WINDOW_US;
	lsn += (uint64_t)PACER_LIVE_WAL_BPS * 2;
	pacer_reading(&p, t, lsn);
	assert_true(p.live);
	assert_int_equal(pacer_wait(&p, t), 0);
	pacer_spend(&p, 100);
	assert_int_equal(pacer_wait(&p, t), 1000);
	assert_int_equal(pacer_live_us(&p, t + 7), PACER_WINDOW_US + 7);
	/* just under the threshold is quiet */
	t += PACER_WINDOW_US;
	lsn += (uint64_t)PACER_LIVE_WAL_BPS / 2 - 1;
	pacer_reading(&p, t, lsn);
	assert_false(p.live);
	/* a position that went back (another server after a failover) */
	t += PACER_WINDOW_US;
	pacer_reading(&p, t, lsn - 1);
	assert_true(p.live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busy_time_buys_the_wait_its_share_asks),
		cmocka_unit_test(test_idle_time_banks_only_the_credit),
		cmocka_unit_test(test_a_long_run_is_busy_its_share_of_the_time),
		cmocka_unit_test(test_full_share_and_clamps),
		cmocka_unit_test(test_liveness_follows_the_wal_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
