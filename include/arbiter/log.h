/* Structured logging: one JSON object per line on stderr. */
#ifndef ARBITER_LOG_H
#define ARBITER_LOG_H
#include "arbiter/config.h"
#include "arbiter/logline.h"

void log_set_level(ar_log_level lvl);
bool log_enabled(ar_log_level lvl);
/*
 * Writes {"ts","level","msg", ...fields}. Fields are alternating key/value
 * C strings terminated by NULL (at most 32 pairs); values are JSON-escaped
 * and a NULL value leaves its field out. Keys and bodies must never be
 * passed here.
 */
void log_kv(ar_log_level lvl, const char *msg, ...) __attribute__((sentinel));
/* The same line with typed fields (numbers and booleans as JSON's own). */
void log_fields(ar_log_level lvl, const char *msg, const log_field *f, size_t n);
#endif
