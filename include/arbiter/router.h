/* URL path -> route, pure: the routing table and its path parameters. */
#ifndef ARBITER_ROUTER_H
#define ARBITER_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include "arbiter/model.h"

typedef enum {
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_OPENAPI,
	ROUTE_CASES,
	ROUTE_CASE,
	ROUTE_CASE_EVENTS,
	ROUTE_CASE_ACTIONS,
	ROUTE_EVENTS,
	ROUTE_ADJUDICATIONS,
	ROUTE_POLICY,
	ROUTE_KEYS,
	ROUTE_KEY,
	ROUTE_STATS,
	ROUTE_QUEUE,
	ROUTE_SKU_FLAGS,
	ROUTE_SKU_FLAG,
	ROUTE_UI,
	ROUTE__COUNT
} route_id;

typedef enum {
	M_GET = 1 << 0,
	M_POST = 1 << 1,
	M_PUT = 1 << 2,
	M_DELETE = 1 << 3,
	M_HEAD = 1 << 4,
	M_OTHER = 1 << 5
} route_method;

#define ROUTE_MAX_PARAMS 2

typedef struct {
	route_id id;
	size_t n_params;
	char params[ROUTE_MAX_PARAMS][AR_MAX_ID_LEN + 1];
} route_match;

/* Matches a path (no query string). Returns false for an unknown path. */
bool router_match(const char *path, route_match *out) AR_MUSTCHECK;
route_method router_method(const char *method);
/* Methods the route accepts, as a bitmask and as an Allow header value. */
unsigned router_allowed(route_id id);
const char *router_allow_header(route_id id);
/* The template for metrics and logs, e.g. "/v1/cases/{id}". */
const char *router_template(route_id id);
#endif
