/* A per-thread bump arena behind jansson's allocator, so a stream of parsed-and-dropped documents costs no malloc/free per value. */
#include "arbiter/jsonarena.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
	char *base;
	size_t cap, used;
	bool on;
} arena;

static _Thread_local arena cur;

static void *arena_malloc(size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;

	if (cur.on && need >= n && cur.cap - cur.used >= need) {
		void *p = cur.base + cur.used;
		cur.used += need;
		return p;
	}
	return malloc(n);
}

/* A pointer inside this thread's arena is reclaimed by the next reset;
 * any other came from malloc. */
static void arena_free(void *p)
{
	if (cur.base && (uintptr_t)p >= (uintptr_t)cur.base &&
	    (uintptr_t)p < (uintptr_t)cur.base + cur.cap)
		return;
	free(p);
}

void json_arena_install(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
}

bool json_arena_begin(size_t bytes)
{
	/* aligned, so that every bump stays aligned for jansson's structs */
	if (posix_memalign((void **)&cur.base, 64, bytes) != 0) {
		cur.base = NULL;
		return false;
	}
	cur.cap = bytes;
	cur.used = 0;
	cur.on = false;
	return true;
}

void json_arena_use(bool on)
{
	cur.used = 0;
	cur.on = on && cur.base;
}

void json_arena_end(void)
{
	free(cur.base);
	cur = (arena){ 0 };
}
