/* URL path -> route id and path parameters (pure; fuzzed). */
#include "arbiter/router.h"

#include <string.h>

static const struct {
	const char *tmpl;
	unsigned methods;
	const char *allow;
} routes[ROUTE__COUNT] = {
	[ROUTE_HEALTHZ] = { "/healthz", M_GET | M_HEAD, "GET, HEAD" },
	[ROUTE_READYZ] = { "/readyz", M_GET | M_HEAD, "GET, HEAD" },
	[ROUTE_METRICS] = { "/metrics", M_GET, "GET" },
	[ROUTE_OPENAPI] = { "/openapi.json", M_GET, "GET" },
	[ROUTE_CASES] = { "/v1/cases", M_GET | M_POST, "GET, POST" },
	[ROUTE_CASE] = { "/v1/cases/{id}", M_GET, "GET" },
	[ROUTE_CASE_EVENTS] = { "/v1/cases/{id}/events", M_GET, "GET" },
	[ROUTE_CASE_ACTIONS] = { "/v1/cases/{id}/actions", M_POST, "POST" },
	[ROUTE_EVENTS] = { "/v1/events", M_GET, "GET" },
	[ROUTE_ADJUDICATIONS] = { "/v1/adjudications", M_POST, "POST" },
	[ROUTE_POLICY] = { "/v1/policy", M_GET | M_PUT, "GET, PUT" },
	[ROUTE_KEYS] = { "/v1/keys", M_GET | M_POST, "GET, POST" },
	[ROUTE_KEY] = { "/v1/keys/{id}", M_DELETE, "DELETE" },
	[ROUTE_STATS] = { "/v1/stats", M_GET, "GET" },
	[ROUTE_QUEUE] = { "/v1/queues/{id}", M_GET, "GET" },
	[ROUTE_SKU_FLAGS] = { "/v1/sku-flags", M_GET, "GET" },
	[ROUTE_SKU_FLAG] = { "/v1/sku-flags/{id}/{id}", M_DELETE, "DELETE" },
	[ROUTE_UI] = { "/ui/", M_GET | M_HEAD, "GET, HEAD" },
};

/* An id segment: what the service hands out, nothing that needs escaping. */
static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool match_one(const char *tmpl, const char *path, route_match *out)
{
	size_t np = 0;

	while (*tmpl && *path) {
		if (strncmp(tmpl, "{id}", 4) == 0) {
			size_t n = 0;
			while (path[n] && path[n] != '/') {
				if (!id_char(path[n]))
					return false;
				n++;
			}
			if (n == 0 || n > AR_MAX_ID_LEN || np >= ROUTE_MAX_PARAMS)
				return false;
			memcpy(out->params[np], path, n);
			out->params[np][n] = '\0';
			np++;
			tmpl += 4;
			path += n;
			continue;
		}
		if (*tmpl != *path)
			return false;
		tmpl++;
		path++;
	}
	if (*tmpl || *path)
		return false;
	out->n_params = np;
	return true;
}

bool router_match(const char *path, route_match *out)
{
	char trimmed[512];
	size_t n = strlen(path);

	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0 ||
	    strcmp(path, "/ui/index.html") == 0) {
		out->id = ROUTE_UI;
		out->n_params = 0;
		return true;
	}
	/* one trailing slash is forgiven: "/v1/cases/" is "/v1/cases" */
	if (n > 1 && path[n - 1] == '/') {
		if (n >= sizeof(trimmed))
			return false;
		memcpy(trimmed, path, n - 1);
		trimmed[n - 1] = '\0';
		path = trimmed;
	}
	for (int i = 0; i < ROUTE__COUNT; i++) {
		if (match_one(routes[i].tmpl, path, out)) {
			out->id = (route_id)i;
			return true;
		}
	}
	return false;
}

route_method router_method(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return M_GET;
	if (strcmp(m, "POST") == 0)
		return M_POST;
	if (strcmp(m, "PUT") == 0)
		return M_PUT;
	if (strcmp(m, "DELETE") == 0)
		return M_DELETE;
	if (strcmp(m, "HEAD") == 0)
		return M_HEAD;
	return M_OTHER;
}

unsigned router_allowed(route_id id)
{
	return routes[id].methods;
}

const char *router_allow_header(route_id id)
{
	return routes[id].allow;
}

const char *router_template(route_id id)
{
	return (unsigned)id < ROUTE__COUNT ? routes[id].tmpl : "unmatched";
}
