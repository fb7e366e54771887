/*
 * API keys: "ak_<id>_<secret>", where only SHA-256(secret) is stored. A
 * verified key is cached for at most AUTH_CACHE_MS, so a revocation takes
 * effect within that time without a database round trip per request.
 */
#ifndef ARBITER_AUTH_H
#define ARBITER_AUTH_H

#include "arbiter/casefsm.h"
#include "arbiter/db.h"

#define AUTH_CACHE_MS 1000
#define AUTH_MAX_SHOPS 16
#define AUTH_ID_LEN 12       /* hex chars */
#define AUTH_SECRET_LEN 48   /* hex chars: 192 bits */

typedef struct {
	char key_id[AUTH_ID_LEN + 1];
	fsm_role role;
	bool all_shops;
	size_t n_shops;
	char shops[AUTH_MAX_SHOPS][AR_MAX_ID_LEN + 1];
	char scope_literal[1024];  /* PostgreSQL array literal; "" when all_shops */
	bool senior;
} ar_identity;

/* Checks "Bearer <key>" against the store (through the cache). false with
 * err 401 for a missing, malformed, unknown or revoked key; 503 when the
 * database cannot be asked. */
bool auth_verify(store *s, const char *authorization, ar_identity *out, ar_err *err) AR_MUSTCHECK;

/* The identity may act on / see cases of this shop. */
bool auth_sees_shop(const ar_identity *id, const char *shop_id);
/* NULL for all shops, else the array literal for store queries. */
const char *auth_scope(const ar_identity *id);

/* Creates a key; writes the full key (shown once) into key_out (>= 80 bytes)
 * and its id into id_out (>= AUTH_ID_LEN + 1). shops: comma-separated list or
 * NULL/"" for every shop. */
bool auth_key_create(store *s, const char *role, const char *shops, const char *name,
		     bool senior, char *key_out, size_t key_len, char *id_out,
		     ar_err *err) AR_MUSTCHECK;
/* nhex (even, at most 128) hex digits of fresh randomness into out, which
 * holds nhex + 1. false when the system has no entropy to give. */
bool auth_random_hex(char *out, size_t nhex) AR_MUSTCHECK;
#endif
