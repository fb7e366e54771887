/* libFuzzer: arbitrary URL paths through router_match (and the method parser), checking the match invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	route_match m;

	if (!path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	(void)router_method(path);
	memset(&m, 0xA5, sizeof(m));
	if (router_match(path, &m)) {
		if ((unsigned)m.id >= ROUTE__COUNT || m.n_params > ROUTE_MAX_PARAMS)
			__builtin_trap();
		for (size_t i = 0; i < m.n_params; i++) {
			size_t n = strnlen(m.params[i], sizeof(m.params[i]));
			if (n == 0 || n > AR_MAX_ID_LEN || strpbrk(m.params[i], "/?#%. "))
				__builtin_trap(); /* an id is never empty, long or escaping */
		}
		if (!router_template(m.id) || !router_allow_header(m.id) || !router_allowed(m.id))
			__builtin_trap();
	}
	free(path);
	return 0;
}
