/*
 * Token buckets by key (an API key id, a client address): a fixed table,
 * no allocation after rl_new, one mutex. The clock is the caller's
 * (microseconds, any monotonic origin), so it is tested without sleeping.
 * When the table is full, the least recently used bucket of a key's probe
 * window is given to the new key (which starts full): memory stays bounded
 * whatever the number of keys.
 */
#ifndef ARBITER_RATELIMIT_H
#define ARBITER_RATELIMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arbiter/config.h"

#define RL_MAX_KEY 24

typedef struct rl_table rl_table;

typedef struct {
	bool allowed;
	double remaining;     /* whole requests left after this one */
	double retry_after_s; /* when refused: until one request is allowed */
	double reset_s;       /* until the bucket is full again */
} rl_result;

/* A table of about `slots` buckets; NULL when memory runs out. */
rl_table *rl_new(size_t slots);
void rl_free(rl_table *t);
/* Takes one request from key's bucket under lim (lim.rate 0: always
 * allowed, nothing stored). keylen at most RL_MAX_KEY. */
void rl_take(rl_table *t, const void *key, size_t keylen, ar_rate lim, int64_t now_us,
	     rl_result *out);
#endif
