/* Structured logging: one JSON object per line on stderr. */
#ifndef ARBITER_LOG_H
#define ARBITER_LOG_H
#include "arbiter/config.h"

void log_set_level(ar_log_level lvl);
bool log_enabled(ar_log_level lvl);
/*
 * Writes {"ts","level","msg", ...fields}. Fields are alternating key/value
 * C strings terminated by NULL; values are JSON-escaped. Keys and bodies
 * must never be passed here.
 */
void log_kv(ar_log_level lvl, const char *msg, ...) __attribute__((sentinel));
#endif
