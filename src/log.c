/* Structured JSON log lines on stderr, one write(2) per line. */
#include "arbiter/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static size_t put_escaped(char *buf, size_t pos, size_t cap, const char *s)
{
	for (; *s && pos + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[pos++] = '\\';
			buf[pos++] = (char)c;
		} else if (c < 0x20) {
			pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
		} else {
			buf[pos++] = (char)c;
		}
	}
	return pos;
}

static size_t put_raw(char *buf, size_t pos, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (pos + n >= cap)
		n = cap - pos - 1;
	memcpy(buf + pos, s, n);
	return pos + n;
}

void log_kv(ar_log_level lvl, const char *msg, ...)
{
	char buf[4096];
	size_t pos = 0, cap = sizeof(buf) - 4;
	struct timespec ts;
	struct tm tm;
	char when[96];
	va_list ap;
	const char *k, *v;

	if (lvl < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	pos = put_raw(buf, pos, cap, "{\"ts\":\"");
	pos = put_raw(buf, pos, cap, when);
	pos = put_raw(buf, pos, cap, "\",\"level\":\"");
	pos = put_raw(buf, pos, cap, level_names[lvl]);
	pos = put_raw(buf, pos, cap, "\",\"msg\":\"");
	pos = put_escaped(buf, pos, cap, msg);
	pos = put_raw(buf, pos, cap, "\"");
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (!v)
			continue;
		pos = put_raw(buf, pos, cap, ",\"");
		pos = put_escaped(buf, pos, cap, k);
		pos = put_raw(buf, pos, cap, "\":\"");
		pos = put_escaped(buf, pos, cap, v);
		pos = put_raw(buf, pos, cap, "\"");
	}
	va_end(ap);
	buf[pos++] = '}';
	buf[pos++] = '\n';
	if (write(STDERR_FILENO, buf, pos) < 0)
		return;
}
