/* URL path + method -> route table entry and path parameters (pure; fuzzed). */
#include "arbiter/router.h"

#include <stdio.h>
#include <string.h>

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

bool router_match(const ar_route *table, size_t n, const char *path, route_method m,
		  route_match *out)
{
	char trimmed[512];
	size_t len = strlen(path);

	out->path = -1;
	out->entry = -1;
	out->allowed = 0;
	out->n_params = 0;
	/* the page answers under its directory's names too */
	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/index.html") == 0)
		path = "/ui/";
	/* one trailing slash is forgiven: "/v1/cases/" is "/v1/cases" */
	else if (len > 1 && path[len - 1] == '/' && strcmp(path, "/ui/") != 0) {
		if (len >= sizeof(trimmed))
			return false;
		memcpy(trimmed, path, len - 1);
		trimmed[len - 1] = '\0';
		path = trimmed;
	}
	for (size_t i = 0; i < n; i++) {
		if (out->path >= 0 && strcmp(table[i].tmpl, table[out->path].tmpl) != 0)
			continue;
		if (out->path < 0) {
			if (!match_one(table[i].tmpl, path, out))
				continue;
			out->path = (int)i;
		}
		out->allowed |= table[i].methods;
		if (out->entry < 0 && (table[i].methods & m))
			out->entry = (int)i;
	}
	return out->path >= 0;
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
	if (strcmp(m, "PATCH") == 0)
		return M_PATCH;
	return M_OTHER;
}

void router_allow_header(unsigned methods, char *out, size_t outlen)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { M_GET, "GET" }, { M_HEAD, "HEAD" }, { M_POST, "POST" },
		      { M_PUT, "PUT" }, { M_PATCH, "PATCH" }, { M_DELETE, "DELETE" } };
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((methods & names[i].bit) && o < outlen)
			o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? ", " : "",
					      names[i].name);
	}
}
