/* Unit tests of read-your-writes routing: a key that wrote reads from the primary for its window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/readroute.h"

static void fresh_key_reads_replica(void **state)
{
	readroute *rr = readroute_new(5000);
	(void)state;
	assert_non_null(rr);
	assert_true(readroute_replica_ok(rr, "k_frontend", 0));
	assert_true(readroute_replica_ok(rr, "k_frontend", 123456789));
	readroute_free(rr);
}

static void window_after_write(void **state)
{
	readroute *rr = readroute_new(5000);
	(void)state;
	assert_non_null(rr);
	readroute_wrote(rr, "k_seller", 10000);
	assert_false(readroute_replica_ok(rr, "k_seller", 10000));
	assert_false(readroute_replica_ok(rr, "k_seller", 14999));
	assert_true(readroute_replica_ok(rr, "k_seller", 15000));
	/* an earlier write reported late does not shorten the window */
	readroute_wrote(rr, "k_seller", 20000);
	readroute_wrote(rr, "k_seller", 18000);
	assert_false(readroute_replica_ok(rr, "k_seller", 24999));
	assert_true(readroute_replica_ok(rr, "k_seller", 25000));
	readroute_free(rr);
}

/* Among many keys, one key's write keeps every other key that does not
 * share its slot on the replica, and never sends the writer early. */
static void other_keys_unaffected(void **state)
{
	readroute *rr = readroute_new(1000);
	char name[32];
	int shared = 0;
	(void)state;
	assert_non_null(rr);
	readroute_wrote(rr, "k_writer", 500);
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "k_%d", i);
		if (!readroute_replica_ok(rr, name, 600))
			shared++;
	}
	assert_false(readroute_replica_ok(rr, "k_writer", 600));
	/* 10,000 keys over 4,096 slots: about 2 share the writer's */
	assert_in_range(shared, 0, 12);
	readroute_free(rr);
}

static void zero_window(void **state)
{
	readroute *rr = readroute_new(0);
	(void)state;
	assert_non_null(rr);
	readroute_wrote(rr, "k", 100);
	assert_true(readroute_replica_ok(rr, "k", 100));
	readroute_free(rr);
	readroute_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_key_reads_replica),
		cmocka_unit_test(window_after_write),
		cmocka_unit_test(other_keys_unaffected),
		cmocka_unit_test(zero_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
