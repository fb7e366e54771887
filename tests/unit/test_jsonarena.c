/* Unit tests for the per-thread jansson arena: values in and out of it, spills, other threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "arbiter/jsonarena.h"

static const char DOC[] = "{\"kind\": \"refund\", \"inputs\": {\"request\": {\"order\": "
			  "{\"id\": \"o-1\", \"price_cents\": 10000}}, \"armed\": [1, 2, 3]}}";

static int setup(void **state)
{
	(void)state;
	json_arena_install();
	return 0;
}

/* A value made while the arena is in use reads back whole, and dropping it
 * then reusing the arena gives a fresh document the same answers. */
static void test_parse_drop_reuse(void **state)
{
	(void)state;
	assert_true(json_arena_begin(64 * 1024));
	for (int round = 0; round < 1000; round++) {
		json_error_t e;
		json_t *d;

		json_arena_use(true);
		d = json_loads(DOC, 0, &e);
		assert_non_null(d);
		assert_string_equal(json_string_value(json_object_get(d, "kind")), "refund");
		assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(
					 json_object_get(d, "inputs"), "request"), "order"), "price_cents")),
				 10000);
		assert_int_equal(json_array_size(json_object_get(json_object_get(d, "inputs"), "armed")), 3);
		json_decref(d);
		json_arena_use(false);
	}
	json_arena_end();
}

/* A value made outside the arena (malloc) outlives any number of uses of
 * it and is freed as usual, even while the arena is in use. */
static void test_values_from_malloc_stay_valid(void **state)
{
	json_t *outside = json_pack("{s:s,s:i}", "a", "kept", "n", 7);

	(void)state;
	assert_non_null(outside);
	assert_true(json_arena_begin(4096));
	for (int i = 0; i < 100; i++) {
		json_arena_use(true);
		json_decref(json_loads(DOC, 0, NULL));
		json_arena_use(false);
	}
	assert_string_equal(json_string_value(json_object_get(outside, "a")), "kept");
	json_arena_use(true);
	json_decref(outside);   /* a malloc'd value freed while the arena is on */
	json_arena_use(false);
	json_arena_end();
}

/* A document bigger than the arena spills to malloc and is still whole. */
static void test_spill_to_malloc(void **state)
{
	json_t *big, *copy;
	char key[16];

	(void)state;
	assert_true(json_arena_begin(1024));
	json_arena_use(true);
	big = json_object();
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(json_object_set_new(big, key, json_integer(i)), 0);
	}
	copy = json_deep_copy(big);
	assert_true(json_equal(big, copy));
	assert_int_equal(json_integer_value(json_object_get(copy, "k499")), 499);
	json_decref(copy);
	json_decref(big);
	json_arena_use(false);
	json_arena_end();
}

static void *other_thread(void *arg)
{
	json_t *mine = json_pack("{s:s}", "t", "other");

	(void)arg;
	if (!mine || strcmp(json_string_value(json_object_get(mine, "t")), "other") != 0)
		return (void *)1;
	json_decref(mine);
	return NULL;
}

/* One thread's arena is its own: another thread meanwhile allocates from
 * malloc, and ending an arena twice or without one is harmless. */
static void test_arena_is_per_thread(void **state)
{
	pthread_t t;
	void *rc = (void *)1;

	(void)state;
	assert_true(json_arena_begin(4096));
	json_arena_use(true);
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &rc), 0);
	assert_null(rc);
	json_arena_use(false);
	json_arena_end();
	json_arena_end();
	json_arena_use(true);   /* no arena: a no-op, jansson stays on malloc */
	json_decref(json_loads(DOC, 0, NULL));
	json_arena_use(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_drop_reuse),
		cmocka_unit_test(test_values_from_malloc_stay_valid),
		cmocka_unit_test(test_spill_to_malloc),
		cmocka_unit_test(test_arena_is_per_thread),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
