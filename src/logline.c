/* Formats one typed JSON log line; values are cut per field, never the line. */
#include "arbiter/logline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
	size_t k = n;

	while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	return k;
}

static void put_escaped(textbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			tb_byte(b, '\\');
			tb_byte(b, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			tb_str(b, esc);
		} else {
			tb_byte(b, (char)c);
		}
	}
}

void logline_string(textbuf *b, const char *s, size_t max)
{
	size_t n = strlen(s), keep = n;
	char mark[48];

	tb_byte(b, '"');
	if (n > max)
		keep = utf8_cut(s, max);
	put_escaped(b, s, keep);
	if (keep < n) {
		snprintf(mark, sizeof(mark), "%s%zu bytes]", LOG_TRUNC_MARK, n - keep);
		tb_str(b, mark);
	}
	tb_byte(b, '"');
}

void logline_format(textbuf *b, const char *ts, const char *level, const char *msg,
		    const log_field *f, size_t n)
{
	char num[48];

	tb_str(b, "{\"ts\":");
	logline_string(b, ts, LOG_VALUE_MAX);
	tb_str(b, ",\"level\":");
	logline_string(b, level, LOG_VALUE_MAX);
	tb_str(b, ",\"msg\":");
	logline_string(b, msg, LOG_VALUE_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!f[i].key || (f[i].type == LF_STR && !f[i].v.s))
			continue;
		tb_byte(b, ',');
		logline_string(b, f[i].key, 128);
		tb_byte(b, ':');
		switch (f[i].type) {
		case LF_STR:
			logline_string(b, f[i].v.s, LOG_VALUE_MAX);
			break;
		case LF_INT:
			snprintf(num, sizeof(num), "%lld", f[i].v.i);
			tb_str(b, num);
			break;
		case LF_NUM:
			if (isfinite(f[i].v.d)) {
				snprintf(num, sizeof(num), "%.15g", f[i].v.d);
				tb_str(b, num);
			} else {
				tb_str(b, "null");
			}
			break;
		case LF_BOOL:
			tb_str(b, f[i].v.b ? "true" : "false");
			break;
		}
	}
	tb_str(b, "}\n");
}
