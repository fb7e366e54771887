/* Token buckets in a fixed, locked table: per API key and per client address. */
#include "arbiter/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RL_PROBE 8

typedef struct {
	uint64_t hash;       /* 0: empty */
	uint8_t keylen;
	unsigned char key[RL_MAX_KEY];
	double tokens;
	int64_t last_us;
} rl_bucket;

struct rl_table {
	pthread_mutex_t lock;
	size_t n;            /* a power of two */
	rl_bucket *b;
};

rl_table *rl_new(size_t slots)
{
	rl_table *t = calloc(1, sizeof(*t));
	size_t n = RL_PROBE;

	if (!t)
		return NULL;
	while (n < slots)
		n *= 2;
	t->n = n;
	t->b = calloc(n, sizeof(*t->b));
	if (!t->b || pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t->b);
		free(t);
		return NULL;
	}
	return t;
}

void rl_free(rl_table *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->b);
	free(t);
}

/* FNV-1a; never 0 (0 marks an empty slot). */
static uint64_t hash_key(const unsigned char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h ? h : 1;
}

void rl_take(rl_table *t, const void *key, size_t keylen, ar_rate lim, int64_t now_us,
	     rl_result *out)
{
	const unsigned char *k = key;
	uint64_t h;
	rl_bucket *hit = NULL, *victim = NULL;
	size_t i0;

	memset(out, 0, sizeof(*out));
	out->allowed = true;
	if (!t || lim.rate <= 0) {
		out->remaining = lim.burst;
		return;
	}
	if (keylen > RL_MAX_KEY)
		keylen = RL_MAX_KEY;
	h = hash_key(k, keylen);
	i0 = (size_t)h & (t->n - 1);
	pthread_mutex_lock(&t->lock);
	for (size_t p = 0; p < RL_PROBE; p++) {
		rl_bucket *b = &t->b[(i0 + p) & (t->n - 1)];
		if (b->hash == h && b->keylen == keylen && memcmp(b->key, k, keylen) == 0) {
			hit = b;
			break;
		}
		if (!victim || b->hash == 0 || (victim->hash != 0 && b->last_us < victim->last_us))
			victim = b;
	}
	if (!hit) {
		hit = victim;
		hit->hash = h;
		hit->keylen = (uint8_t)keylen;
		memcpy(hit->key, k, keylen);
		hit->tokens = lim.burst;
		hit->last_us = now_us;
	}
	if (now_us > hit->last_us) {
		hit->tokens += (double)(now_us - hit->last_us) / 1e6 * lim.rate;
		hit->last_us = now_us;
	}
	if (hit->tokens > lim.burst)
		hit->tokens = lim.burst;
	if (hit->tokens >= 1) {
		hit->tokens -= 1;
	} else {
		out->allowed = false;
		out->retry_after_s = (1 - hit->tokens) / lim.rate;
	}
	out->remaining = hit->tokens < 1 ? 0 : (double)(int64_t)hit->tokens;
	out->reset_s = (lim.burst - hit->tokens) / lim.rate;
	pthread_mutex_unlock(&t->lock);
}
