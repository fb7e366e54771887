/*
 * URL path + method -> route, pure: the shape of a route table and the
 * matcher over it. The table itself (src/routes.c) is the one place that
 * lists endpoints; the edge (http.c) reads its entries for auth, limits and
 * dispatch, and knows no handler by name.
 */
#ifndef ARBITER_ROUTER_H
#define ARBITER_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include "arbiter/model.h"

typedef enum {
	M_GET = 1 << 0,
	M_POST = 1 << 1,
	M_PUT = 1 << 2,
	M_DELETE = 1 << 3,
	M_HEAD = 1 << 4,
	M_OTHER = 1 << 5,
	M_PATCH = 1 << 6
} route_method;

/* Who may call: no key at all, an API key, or /metrics' rule (a key unless
 * the operator opened it). */
typedef enum { ROUTE_PUBLIC, ROUTE_KEYED, ROUTE_METRICS_KEYED } route_auth;

enum {
	/* an Idempotency-Key on this POST is honoured at the edge (the reply
	 * stored and replayed); creates keep their record in their statement */
	ROUTE_IDEMPOTENT = 1 << 0,
	/* health and metrics: no rate limit, served while draining (healthz) */
	ROUTE_UNLIMITED = 1 << 1,
	ROUTE_WHILE_DRAINING = 1 << 2,
};

/* A body as large as the configured ARBITER_MAX_BODY. */
#define ROUTE_BODY_MAX ((size_t)-1)
#define ROUTE_ROLE(r) (1u << (r))
#define ROUTE_ANY_ROLE (~0u)

struct ar_req;
typedef void (*route_handler)(struct ar_req *r);

/* One endpoint: method and path template ("{id}" is one id segment). */
typedef struct {
	unsigned methods;         /* M_* bits its handler takes (GET | HEAD for probes) */
	const char *tmpl;
	route_handler handler;
	route_auth auth;
	unsigned roles;           /* ROUTE_ROLE(fsm_role) bits that may call */
	size_t body_limit;        /* bytes; 0: no body */
	unsigned flags;
} ar_route;

#define ROUTE_MAX_PARAMS 2

typedef struct {
	int path;                 /* the first entry with the path's template, or -1 */
	int entry;                /* the entry for the method, or -1 (405) */
	unsigned allowed;         /* methods the path's entries take */
	size_t n_params;
	char params[ROUTE_MAX_PARAMS][AR_MAX_ID_LEN + 1];
} route_match;

/* Matches a path (no query string) and method against table. Returns false
 * for a path no entry has (404); true with entry -1 for a method none of
 * its entries takes (405). */
bool router_match(const ar_route *table, size_t n, const char *path, route_method m,
		  route_match *out) AR_MUSTCHECK;
route_method router_method(const char *method);
/* An Allow header value for a methods mask: "GET, HEAD, POST". */
void router_allow_header(unsigned methods, char *out, size_t outlen);
#endif
