/* API keys in PostgreSQL (only the secret's SHA-256 is stored). */
#ifndef ARBITER_STORE_KEYS_H
#define ARBITER_STORE_KEYS_H

#include <jansson.h>
#include "arbiter/db.h"

/* API keys (only the secret's SHA-256 is stored). */
typedef struct {
	char role[16];
	char shops[1024];   /* JSON array of shop ids, "" = every shop */
	bool senior;
	bool revoked;
	unsigned char secret_hash[32];
} store_key;

/* false + 401-ready err "unknown key" when absent; 503 when unreachable. */
bool store_key_get(store *s, const char *id, store_key *out, ar_err *err) AR_MUSTCHECK;
bool store_key_insert(store *s, const char *id, const unsigned char hash[32],
		      const char *role, const char *shops_literal, const char *name,
		      bool senior, ar_err *err) AR_MUSTCHECK;
/* items: new array of {id, role, shops, name, senior, created_at, last_used_at, revoked_at} */
bool store_key_list(store *s, json_t **items, ar_err *err) AR_MUSTCHECK;
/* 404 when no such key */
bool store_key_revoke(store *s, const char *id, ar_err *err) AR_MUSTCHECK;
#endif
