/* Opaque list cursors: (created_at µs, id) <-> base64url text; pure. */
#ifndef ARBITER_CURSOR_H
#define ARBITER_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arbiter/model.h"

/* Decoding refuses µs past 9999-12-31 and ids outside [A-Za-z0-9_-]. */
#define CURSOR_MAX_US 253402300799999999LL
void cursor_encode(int64_t us, const char *id, char *out, size_t outlen);
bool cursor_decode(const char *s, int64_t *us, char *id, size_t idlen) AR_MUSTCHECK;
#endif
