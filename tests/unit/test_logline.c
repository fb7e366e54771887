/* Unit tests of the log line formatter: typed fields, escaping, per-field truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/logline.h"

static char *line(const log_field *f, size_t n)
{
	textbuf b = { 0 };

	logline_format(&b, "2026-01-01T00:00:00.000Z", "info", "access", f, n);
	assert_false(b.oom);
	return b.p;
}

static void typed_fields(void **state)
{
	log_field f[] = {
		LOG_STR("path", "/v1/cases"), LOG_INT("status", 404), LOG_NUM("duration_ms", 1.25),
		LOG_BOOL("authenticated", false), LOG_STR("key_id", NULL), LOG_INT("bytes_out", -1),
		LOG_NUM("nan", NAN),
	};
	char *s = line(f, sizeof(f) / sizeof(f[0]));

	(void)state;
	assert_string_equal(s, "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\":\"info\","
			       "\"msg\":\"access\",\"path\":\"/v1/cases\",\"status\":404,"
			       "\"duration_ms\":1.25,\"authenticated\":false,\"bytes_out\":-1,"
			       "\"nan\":null}\n");
	free(s);
}

static void escaping(void **state)
{
	log_field f[] = { LOG_STR("v", "a\"b\\c\n\x01\x7f\xc3\xa9") };
	char *s = line(f, 1);

	(void)state;
	assert_non_null(strstr(s, "\"v\":\"a\\\"b\\\\c\\u000a\\u0001\\u007f\xc3\xa9\"}"));
	free(s);
}

/* A long value is cut with a marker saying how much is gone; the fields after
 * it are all there. The cut never splits a UTF-8 sequence. */
static void truncation_per_field(void **state)
{
	size_t n = LOG_VALUE_MAX + 500;
	char *big = malloc(n + 1), *s, *mark;
	log_field f[2];

	(void)state;
	assert_non_null(big);
	memset(big, 'x', n);
	/* a 2-byte character across the cut */
	big[LOG_VALUE_MAX - 1] = (char)0xc3;
	big[LOG_VALUE_MAX] = (char)0xa9;
	big[n] = '\0';
	f[0] = LOG_STR("path", big);
	f[1] = LOG_INT("status", 200);
	s = line(f, 2);
	mark = strstr(s, LOG_TRUNC_MARK);
	assert_non_null(mark);
	assert_int_equal(mark[-1], 'x');
	assert_non_null(strstr(mark, LOG_TRUNC_MARK "501 bytes]\",\"status\":200}\n"));
	free(s);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(typed_fields),
		cmocka_unit_test(escaping),
		cmocka_unit_test(truncation_per_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
