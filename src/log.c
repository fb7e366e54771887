/* Structured JSON log lines on stderr, one write(2) per line. */
#include "arbiter/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arbiter/textbuf.h"

#define LOG_KV_MAX 32

static ar_log_level min_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(ar_log_level lvl)
{
	min_level = lvl;
}

bool log_enabled(ar_log_level lvl)
{
	return lvl >= min_level;
}

void log_fields(ar_log_level lvl, const char *msg, const log_field *f, size_t n)
{
	/* what is left to say when the line itself cannot be built */
	static const char lost[] = "{\"level\":\"error\",\"msg\":\"log line lost: out of memory\"}\n";
	textbuf b = { 0 };
	struct timespec ts;
	struct tm tm;
	char when[96];

	if (lvl < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	logline_format(&b, when, level_names[lvl], msg, f, n);
	if (b.oom) {
		/* stderr gone: nothing else to tell */
		if (write(STDERR_FILENO, lost, sizeof(lost) - 1) < 0)
			b.len = 0;
		free(b.p);
		return;
	}
	if (write(STDERR_FILENO, b.p, b.len) < 0)
		b.len = 0;
	free(b.p);
}

void log_kv(ar_log_level lvl, const char *msg, ...)
{
	log_field f[LOG_KV_MAX];
	size_t n = 0;
	va_list ap;
	const char *k;

	if (lvl < min_level)
		return;
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		if (n < LOG_KV_MAX)
			f[n++] = LOG_STR(k, v);
	}
	va_end(ap);
	log_fields(lvl, msg, f, n);
}
