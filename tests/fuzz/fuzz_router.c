/* libFuzzer: arbitrary URL paths and methods through router_match over the service's route table, checking the match invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The service's templates and methods (src/routes.c; handlers are not
 * this harness's: it links the pure router alone). */
static const ar_route table[] = {
	{ M_GET | M_HEAD, "/healthz", NULL, ROUTE_PUBLIC, 0, 0, 0 },
	{ M_GET, "/metrics", NULL, ROUTE_METRICS_KEYED, 0, 0, 0 },
	{ M_GET, "/v1/cases", NULL, ROUTE_KEYED, 0, 0, 0 },
	{ M_POST, "/v1/cases", NULL, ROUTE_KEYED, 0, 1, 0 },
	{ M_GET, "/v1/cases/{id}", NULL, ROUTE_KEYED, 0, 0, 0 },
	{ M_GET, "/v1/cases/{id}/events", NULL, ROUTE_KEYED, 0, 0, 0 },
	{ M_POST, "/v1/cases/{id}/actions", NULL, ROUTE_KEYED, 0, 1, 0 },
	{ M_DELETE, "/v1/sku-flags/{id}/{id}", NULL, ROUTE_KEYED, 0, 0, 0 },
	{ M_GET | M_HEAD, "/ui/", NULL, ROUTE_PUBLIC, 0, 0, 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const route_method methods[] = { M_GET, M_POST, M_PUT, M_DELETE, M_HEAD, M_OTHER };
	size_t n = sizeof(table) / sizeof(table[0]);
	route_method m;
	char *path;
	route_match rm;

	if (size < 1)
		return 0;
	m = methods[data[0] % 6];
	path = malloc(size);
	if (!path)
		return 0;
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	(void)router_method(path);
	memset(&rm, 0xA5, sizeof(rm));
	if (router_match(table, n, path, m, &rm)) {
		if (rm.path < 0 || (size_t)rm.path >= n || rm.n_params > ROUTE_MAX_PARAMS ||
		    !(rm.allowed & table[rm.path].methods))
			__builtin_trap();
		if (rm.entry >= 0 && ((size_t)rm.entry >= n || !(table[rm.entry].methods & m) ||
				      strcmp(table[rm.entry].tmpl, table[rm.path].tmpl) != 0))
			__builtin_trap();
		if (rm.entry < 0 && (rm.allowed & m))
			__builtin_trap(); /* a method the path takes found no entry */
		for (size_t i = 0; i < rm.n_params; i++) {
			size_t len = strnlen(rm.params[i], sizeof(rm.params[i]));
			if (len == 0 || len > AR_MAX_ID_LEN || strpbrk(rm.params[i], "/?#%. "))
				__builtin_trap(); /* an id is never empty, long or escaping */
		}
	}
	free(path);
	return 0;
}
