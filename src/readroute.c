/* Read-your-writes for replica reads: which keys wrote a moment ago. */
#include <stdatomic.h>
#include <stdlib.h>
#include "arbiter/readroute.h"

/* 4096 slots: a busy service's writing keys within a few seconds number in
 * the hundreds, so a collision is rare and costs only a primary read. */
#define RR_SLOTS 4096

struct readroute {
	int64_t window_ms;
	_Atomic int64_t wrote_ms[RR_SLOTS];
};

static unsigned slot_of(const char *caller)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)caller; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % RR_SLOTS;
}

readroute *readroute_new(int64_t window_ms)
{
	readroute *rr = calloc(1, sizeof(*rr));

	if (!rr)
		return NULL;
	rr->window_ms = window_ms;
	for (int i = 0; i < RR_SLOTS; i++)
		atomic_init(&rr->wrote_ms[i], INT64_MIN);
	return rr;
}

void readroute_free(readroute *rr)
{
	free(rr);
}

void readroute_wrote(readroute *rr, const char *caller, int64_t now_ms)
{
	_Atomic int64_t *w = &rr->wrote_ms[slot_of(caller)];
	int64_t seen = atomic_load(w);

	/* keep the latest: an older write finishing last must not shorten
	 * another's window */
	while (seen < now_ms && !atomic_compare_exchange_weak(w, &seen, now_ms))
		;
}

bool readroute_replica_ok(const readroute *rr, const char *caller, int64_t now_ms)
{
	int64_t w = atomic_load(&((readroute *)rr)->wrote_ms[slot_of(caller)]);

	return w == INT64_MIN || now_ms - w >= rr->window_ms;
}
