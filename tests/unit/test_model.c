/* Unit tests for the shared model: case ids and the first-error-wins collector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/model.h"

static const char RND_LOW[] = "00000000000000000000";
static const char RND_HIGH[] = "ffffffffffffffffffff";

static void test_case_id_layout(void **state)
{
	static const char rnd[] = "0123456789abcdef0ff0";
	char id[AR_CASE_ID_LEN + 1];

	(void)state;
	/* 1796161034087 ms is 0x1a2338a5767 (python3 -c 'print(hex(...))') */
	ar_case_id_format(id, 1796161034087LL, rnd);
	assert_string_equal(id, "c_01a2338a5767" "0123456789abcdef0ff0");
	assert_int_equal(strlen(id), AR_CASE_ID_LEN);

	ar_case_id_format(id, 0, RND_LOW);
	assert_string_equal(id, "c_" "000000000000" "00000000000000000000");
	/* 12 hex digits hold milliseconds until the year 10889 */
	ar_case_id_format(id, 0xffffffffffffLL, RND_HIGH);
	assert_string_equal(id, "c_" "ffffffffffff" "ffffffffffffffffffff");
}

/* An id made a millisecond later sorts after any id made earlier, whatever
 * their random parts: that is what puts new entries on the right of the
 * B-trees keyed by case id. */
static void test_case_id_later_sorts_later(void **state)
{
	char a[AR_CASE_ID_LEN + 1], b[AR_CASE_ID_LEN + 1];
	int64_t t = 1796161034087LL;

	(void)state;
	for (int i = 0; i < 4096; i++, t += 997) {
		ar_case_id_format(a, t, RND_HIGH);
		ar_case_id_format(b, t + 1, RND_LOW);
		assert_true(strcmp(a, b) < 0);
	}
	/* across a carry into the next hex digit */
	ar_case_id_format(a, 0x0fffffffffffLL, RND_HIGH);
	ar_case_id_format(b, 0x100000000000LL, RND_LOW);
	assert_true(strcmp(a, b) < 0);
}

static void test_err_first_error_wins(void **state)
{
	ar_err e;

	(void)state;
	ar_err_init(&e);
	assert_int_equal(e.status, 0);
	ar_err_set(&e, 404, "not_found", "Not found", "case %s", "c_1");
	ar_err_set(&e, 503, "unavailable", "Unavailable", "later");
	assert_int_equal(e.status, 404);
	assert_string_equal(e.type, "not_found");
	assert_string_equal(e.detail, "case c_1");
}

static void test_err_fields_collect_under_one_422(void **state)
{
	ar_err e;

	(void)state;
	ar_err_init(&e);
	ar_err_field(&e, "/order/id", "is required");
	ar_err_field(&e, "/kind", "must be one of %s", "refund, return");
	assert_int_equal(e.status, 422);
	assert_int_equal(e.n_fields, 2);
	assert_string_equal(e.fields[0].pointer, "/order/id");
	assert_string_equal(e.fields[1].message, "must be one of refund, return");
}

/* a cursor not handed out is the client's 400, named; after another
 * field's 422 it is one more field of that 422 */
static void test_err_cursor_is_a_named_400(void **state)
{
	ar_err e;

	(void)state;
	ar_err_init(&e);
	ar_err_cursor(&e, "/query/after");
	assert_int_equal(e.status, 400);
	assert_string_equal(e.type, "invalid-cursor");
	assert_int_equal(e.n_fields, 1);
	assert_string_equal(e.fields[0].pointer, "/query/after");

	ar_err_init(&e);
	ar_err_field(&e, "/query/limit", "must be an integer");
	ar_err_cursor(&e, "/query/cursor");
	assert_int_equal(e.status, 422);
	assert_int_equal(e.n_fields, 2);
	assert_string_equal(e.fields[1].pointer, "/query/cursor");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_id_layout),
		cmocka_unit_test(test_case_id_later_sorts_later),
		cmocka_unit_test(test_err_first_error_wins),
		cmocka_unit_test(test_err_fields_collect_under_one_422),
		cmocka_unit_test(test_err_cursor_is_a_named_400),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
