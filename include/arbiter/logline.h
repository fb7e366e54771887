/*
 * One structured log line as JSON text, with typed fields: strings escaped,
 * numbers as JSON numbers, booleans as booleans. A string longer than
 * LOG_VALUE_MAX bytes is cut (at a UTF-8 boundary) and marked, so a long
 * value never truncates the rest of the line. Pure: no I/O.
 */
#ifndef ARBITER_LOGLINE_H
#define ARBITER_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include "arbiter/textbuf.h"

#define LOG_VALUE_MAX 1024
/* Appended inside a cut string, followed by the number of bytes left out. */
#define LOG_TRUNC_MARK "...[truncated "

typedef enum { LF_STR, LF_INT, LF_NUM, LF_BOOL } log_ftype;

typedef struct {
	const char *key;
	log_ftype type;
	union {
		const char *s;   /* LF_STR; NULL leaves the field out */
		long long i;     /* LF_INT */
		double d;        /* LF_NUM; not finite: written as null */
		bool b;          /* LF_BOOL */
	} v;
} log_field;

#define LOG_STR(k, x) ((log_field){ .key = (k), .type = LF_STR, .v.s = (x) })
#define LOG_INT(k, x) ((log_field){ .key = (k), .type = LF_INT, .v.i = (long long)(x) })
#define LOG_NUM(k, x) ((log_field){ .key = (k), .type = LF_NUM, .v.d = (double)(x) })
#define LOG_BOOL(k, x) ((log_field){ .key = (k), .type = LF_BOOL, .v.b = (x) })

/* Appends {"ts":ts,"level":level,"msg":msg,...fields} and a newline to b
 * (check b->oom once after). */
void logline_format(textbuf *b, const char *ts, const char *level, const char *msg,
		    const log_field *f, size_t n);
/* Appends s as a JSON string, cut at max bytes with LOG_TRUNC_MARK. */
void logline_string(textbuf *b, const char *s, size_t max);
#endif
