/*
 * PostgreSQL access: a fixed pool of libpq connections, prepared statements,
 * one transaction per change (case row + audit events + deadlines together).
 *
 * Every function that can fail returns false and fills ar_err: 404 for an
 * unknown (or out-of-scope) case, 503 "database-unavailable" when PostgreSQL
 * cannot be reached (the HTTP edge adds Retry-After), 500 only for a bug.
 * JSON results are new references owned by the caller (json_decref).
 */
#ifndef ARBITER_STORE_H
#define ARBITER_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include "arbiter/model.h"

typedef struct store store;

/* Creates the pool; connections open lazily, so an unreachable database
 * does not stop start-up (readiness reports it). NULL only on OOM. */
store *store_open(const char *conninfo, int pool_size);
void store_close(store *s);

typedef struct {
	int size, in_use, broken;
} store_pool_stats;
void store_pool_stats_get(store *s, store_pool_stats *out);

/* Database reachable and every compiled-in migration applied. */
bool store_ready(store *s, ar_err *err) AR_MUSTCHECK;

/* Applies pending migrations under an advisory lock (several replicas may
 * start at once). Progress lines go to out. */
bool store_migrate(const char *conninfo, FILE *out, char *msg, size_t msglen) AR_MUSTCHECK;

/* Walks every audit chain; prints the first broken link. Returns 0 when all
 * chains verify, 1 when one is broken, 2 on a database error. */
int store_verify(const char *conninfo, FILE *out);

/* One event to append: action, states, data (borrowed). */
typedef struct {
	const char *action;
	const char *from_state;   /* NULL for the opening event */
	const char *to_state;
	json_t *data;             /* borrowed; NULL = {} */
} store_event;

/* One deadline to arm: due `after_ms` after the transaction's time. */
typedef struct {
	const char *name;
	int64_t after_ms;
	const char *on_expiry;
} store_deadline;

#define STORE_MAX_EVENTS 4
#define STORE_MAX_DEADLINES 4

typedef struct {
	const ar_case_input *in;
	const char *state;
	const char *outcome;      /* NULL unless the case opens terminal */
	json_t *order_doc;        /* borrowed */
	json_t *evidence;         /* borrowed */
	json_t *decision;         /* borrowed, may be NULL */
	bool manual_review;
	int64_t refund_cents;     /* -1: none decided */
	const char *policy_version;
	const char *actor_role, *actor_id;
	size_t n_events;
	store_event events[STORE_MAX_EVENTS];
	size_t n_deadlines;
	store_deadline deadlines[STORE_MAX_DEADLINES];
} store_new_case;

bool store_case_create(store *s, const store_new_case *nc, json_t **out_case,
		       ar_err *err) AR_MUSTCHECK;

/* shop_scope: NULL = every shop, else the case must belong to that shop
 * (anything else is 404, so ids leak nothing). */
bool store_case_get(store *s, const char *id, const char *shop_scope,
		    json_t **out_case, ar_err *err) AR_MUSTCHECK;

typedef struct {
	const char *shop_id, *state, *kind, *buyer_id, *order_id;
	ar_time created_after, created_before;  /* AR_TIME_NONE: unbounded */
	const char *shop_scope;                 /* key's scope, NULL = all */
	int limit;
	bool has_cursor;
	int64_t cursor_us;                      /* created_at of the last item, microseconds */
	char cursor_id[AR_MAX_ID_LEN + 1];
} store_list_query;

/* items: new array; next_cursor filled ("" when there is no next page). */
bool store_case_list(store *s, const store_list_query *q, json_t **items,
		     char *next_cursor, size_t cursor_len, ar_err *err) AR_MUSTCHECK;

bool store_case_events(store *s, const char *id, const char *shop_scope,
		       json_t **items, ar_err *err) AR_MUSTCHECK;

/* Opaque list cursor <-> (created_at µs, id); pure. */
void store_cursor_encode(int64_t us, const char *id, char *out, size_t outlen);
bool store_cursor_decode(const char *s, int64_t *us, char *id, size_t idlen) AR_MUSTCHECK;

#endif
