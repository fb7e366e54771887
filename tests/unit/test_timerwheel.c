/* Unit tests of the timing wheel: edge cases, plus a seeded randomized comparison with a sorted-array model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/timerwheel.h"

#define DAY_MS (86400ull * 1000ull)
#define YEAR_MS (365ull * DAY_MS)

static size_t advance_all(tw_wheel *w, uint64_t now, tw_expired *out, size_t cap)
{
	size_t total = 0, n;
	do {
		n = tw_advance(w, now, out + total, cap - total < 16 ? cap - total : 16);
		total += n;
	} while (n == 16 && total < cap);
	return total;
}

static void test_basic(void **state)
{
	tw_wheel *w = tw_create(4, 100, 1000);
	assert_non_null(w);
	tw_handle h;
	tw_expired out[8];
	assert_true(tw_insert(w, 1500, 42, &h));
	assert_int_equal(tw_pending(w), 1);
	assert_int_equal(tw_next_due_hint(w), 1500);
	assert_int_equal(tw_advance(w, 1499, out, 8), 0);
	assert_int_equal(tw_advance(w, 1500, out, 8), 1);
	assert_int_equal(out[0].key, 42);
	assert_int_equal(out[0].tick, 15);
	assert_int_equal(tw_pending(w), 0);
	assert_int_equal(tw_next_due_hint(w), UINT64_MAX);
	assert_false(tw_cancel(w, h));
	tw_free(w);
	tw_free(NULL);
}

/* A due inside a tick is rounded up: never early, at most one tick late. */
static void test_rounding_never_early(void **state)
{
	tw_wheel *w = tw_create(4, 100, 0);
	assert_non_null(w);
	tw_expired out[4];
	assert_true(tw_insert(w, 1501, 7, NULL));
	assert_int_equal(tw_advance(w, 1550, out, 4), 0);
	assert_int_equal(tw_advance(w, 1599, out, 4), 0);
	assert_int_equal(tw_advance(w, 1600, out, 4), 1);
	assert_int_equal(out[0].tick, 16);
	tw_free(w);
}

static void test_default_tick(void **state)
{
	tw_wheel *w = tw_create(1, 0, 0);
	assert_non_null(w);
	tw_expired out[1];
	assert_true(tw_insert(w, 250, 1, NULL));
	assert_int_equal(tw_advance(w, 299, out, 1), 0);
	assert_int_equal(tw_advance(w, 300, out, 1), 1);
	assert_int_equal(out[0].tick, 3);
	tw_free(w);
}

static void test_cancel_and_stale(void **state)
{
	tw_wheel *w = tw_create(2, 100, 0);
	assert_non_null(w);
	tw_expired out[4];
	tw_handle a, b, zero = { 0, 0 }, wild = { 1000, 1 };
	assert_false(tw_cancel(w, zero));
	assert_false(tw_cancel(w, wild));
	assert_true(tw_insert(w, 500, 1, &a));
	assert_true(tw_cancel(w, a));
	assert_false(tw_cancel(w, a));
	/* b reuses a's node: a's handle must not reach it. */
	assert_true(tw_insert(w, 500, 2, &b));
	assert_int_equal(a.idx, b.idx);
	assert_int_not_equal(a.gen, b.gen);
	assert_false(tw_cancel(w, a));
	assert_int_equal(tw_pending(w), 1);
	assert_int_equal(tw_advance(w, 1000, out, 4), 1);
	assert_int_equal(out[0].key, 2);
	assert_false(tw_cancel(w, b));
	assert_int_equal(tw_advance(w, 2000, out, 4), 0);
	tw_free(w);
}

/*
 * tw_cancel trusts nothing in a handle: near misses of a live handle, the
 * handles of sentinels and of free nodes, and a node's earlier handle after
 * it was reused must all be refused without disturbing anything.
 */
static void test_forged_handles(void **state)
{
	tw_wheel *w = tw_create(8, 100, 0);
	assert_non_null(w);
	tw_handle h[4], old;
	for (int i = 0; i < 4; i++)
		assert_true(tw_insert(w, 1000 + 100 * (uint64_t)i, (uint64_t)i, &h[i]));
	const tw_handle forged[] = {
		{ h[1].idx + 1, h[1].gen }, { h[1].idx - 1, h[1].gen },
		{ h[1].idx, h[1].gen + 1 }, { h[1].idx, h[1].gen - 1 },
		{ h[1].idx, h[1].gen ^ 0x80000000u }, { h[1].idx, 0 },
		{ 0, 1 }, { 1, 1 }, { 2, 1 }, { UINT32_MAX, h[1].gen }, { UINT32_MAX - 1, 1 },
	};
	for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
		bool issued = false;
		/* A neighbour's index may be another live timer's, issued to the caller. */
		for (int j = 0; j < 4; j++)
			issued |= forged[i].idx == h[j].idx && forged[i].gen == h[j].gen;
		if (!issued)
			assert_false(tw_cancel(w, forged[i]));
	}
	assert_int_equal(tw_pending(w), 4);
	old = h[2];
	assert_true(tw_cancel(w, h[2]));
	/* The free node's next generation, guessed: not issued yet. */
	assert_false(tw_cancel(w, (tw_handle){ old.idx, old.gen + 1 }));
	assert_true(tw_insert(w, 1200, 9, &h[2]));
	assert_int_equal(h[2].idx, old.idx);
	assert_false(tw_cancel(w, old));
	tw_expired out[8];
	assert_int_equal(tw_advance(w, 2000, out, 8), 4);
	static const uint64_t order[] = { 0, 1, 9, 3 };
	for (int i = 0; i < 4; i++)
		assert_int_equal(out[i].key, order[i]);
	for (int i = 0; i < 4; i++)
		assert_false(tw_cancel(w, h[i]));
	tw_free(w);
}

/* Cancelling a timer that is due but not yet handed out (cap was full). */
static void test_cancel_ready(void **state)
{
	tw_wheel *w = tw_create(4, 10, 0);
	assert_non_null(w);
	tw_expired out[4];
	tw_handle h[3];
	for (int i = 0; i < 3; i++)
		assert_true(tw_insert(w, 50, (uint64_t)i, &h[i]));
	assert_int_equal(tw_advance(w, 100, out, 1), 1);
	assert_int_equal(out[0].key, 0);
	assert_true(tw_cancel(w, h[1]));
	assert_int_equal(tw_advance(w, 100, out, 4), 1);
	assert_int_equal(out[0].key, 2);
	assert_int_equal(tw_pending(w), 0);
	tw_free(w);
}

static void test_overdue_insert(void **state)
{
	tw_wheel *w = tw_create(4, 100, 0);
	assert_non_null(w);
	tw_expired out[4];
	assert_int_equal(tw_advance(w, 5050, out, 4), 0);
	/* Inside the current partial tick but already past: fires at once. */
	assert_true(tw_insert(w, 5020, 1, NULL));
	assert_true(tw_insert(w, 10, 2, NULL));
	assert_true(tw_insert(w, 5051, 3, NULL));
	assert_int_equal(tw_next_due_hint(w), 5000);
	assert_int_equal(tw_advance(w, 5050, out, 4), 2);
	assert_int_equal(out[0].key, 1);
	assert_int_equal(out[0].tick, 50);
	assert_int_equal(out[1].key, 2);
	assert_int_equal(out[1].tick, 50);
	assert_int_equal(tw_advance(w, 5099, out, 4), 0);
	assert_int_equal(tw_advance(w, 5100, out, 4), 1);
	assert_int_equal(out[0].key, 3);
	/* Going back in time is ignored. */
	assert_true(tw_insert(w, 5200, 4, NULL));
	assert_int_equal(tw_advance(w, 0, out, 4), 0);
	assert_int_equal(tw_advance(w, 5200, out, 4), 1);
	tw_free(w);
}

/*
 * Timers of one tick inserted while it is far (coarse level) and while it
 * is near (level 0), interleaved with advances that cascade: expiry must
 * still follow insertion order.
 */
static void test_same_tick_fifo(void **state)
{
	tw_wheel *w = tw_create(16, 100, 0);
	assert_non_null(w);
	tw_expired out[64];
	const uint64_t due = 5 * DAY_MS + 99;
	uint64_t now = 0;
	uint64_t key = 0;
	while (now + 100 < due) {
		assert_true(tw_insert(w, due - (key % 49), key, NULL));
		key++;
		assert_int_equal(tw_advance(w, now, out, 64), 0);
		now += (due - now) / 3 + 1;
	}
	assert_true(key > 10);
	size_t n = advance_all(w, due + 1, out, 64);
	assert_int_equal(n, key);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].key, i);
		assert_int_equal(out[i].tick, due / 100 + 1);
	}
	tw_free(w);
}

/* The output buffer filling up mid-tick must not reorder anything. */
static void test_small_cap_order(void **state)
{
	tw_wheel *w = tw_create(8, 1, 0);
	assert_non_null(w);
	tw_expired out[3];
	for (uint64_t i = 0; i < 100; i++)
		assert_true(tw_insert(w, 10 + i / 10, i, NULL));
	uint64_t got[101];
	size_t total = 0, n;
	while ((n = tw_advance(w, 1000, out, 3)) > 0) {
		for (size_t i = 0; i < n; i++) {
			assert_true(total < 101);
			assert_int_equal(out[i].tick, out[i].key == 1000 ? 1000 : 10 + out[i].key / 10);
			got[total++] = out[i].key;
		}
		/* Already due, inserted while earlier ticks are still queued: it goes last. */
		if (total == 30)
			assert_true(tw_insert(w, 500, 1000, NULL));
	}
	assert_int_equal(total, 101);
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(got[i], i);
	assert_int_equal(got[100], 1000);
	tw_free(w);
}

static void test_far_deadlines(void **state)
{
	const uint64_t start = 1767225600000ull; /* 2026-01-01 */
	tw_wheel *w = tw_create(4, 100, start);
	assert_non_null(w);
	tw_expired out[4];
	static const uint64_t offsets[] = {
		1, 150, 6400, 60000, 3600000, DAY_MS, 5 * DAY_MS,
		5 * DAY_MS + 1, YEAR_MS, 10 * YEAR_MS, 100 * YEAR_MS, 1000 * YEAR_MS,
		100000 * YEAR_MS,
	};
	const size_t n = sizeof offsets / sizeof offsets[0];
	/* Inserted in reverse to prove the order comes from the due times. */
	for (size_t i = n; i-- > 0;)
		assert_true(tw_insert(w, start + offsets[i], i, NULL));
	for (size_t i = 0; i < n; i++) {
		uint64_t due = start + offsets[i];
		uint64_t fire = (due + 99) / 100 * 100;
		assert_true(tw_next_due_hint(w) <= fire);
		assert_int_equal(tw_advance(w, fire - 1, out, 4), 0);
		assert_int_equal(tw_advance(w, fire, out, 4), 1);
		assert_int_equal(out[0].key, i);
		assert_int_equal(out[0].tick, fire / 100);
	}
	assert_int_equal(tw_pending(w), 0);
	tw_free(w);
}

/* Ticks near the top of the 64-bit range use the last level. */
static void test_extreme_range(void **state)
{
	tw_wheel *w = tw_create(4, 1, 5);
	assert_non_null(w);
	tw_expired out[4];
	assert_true(tw_insert(w, UINT64_MAX - 3, 2, NULL));
	assert_true(tw_insert(w, UINT64_MAX / 2, 1, NULL));
	assert_true(tw_insert(w, 1ull << 62, 0, NULL));
	assert_int_equal(tw_advance(w, (1ull << 62) - 1, out, 4), 0);
	assert_int_equal(tw_advance(w, 1ull << 62, out, 4), 1);
	assert_int_equal(out[0].key, 0);
	assert_int_equal(tw_advance(w, UINT64_MAX - 4, out, 4), 1);
	assert_int_equal(out[0].key, 1);
	assert_int_equal(tw_advance(w, UINT64_MAX, out, 4), 1);
	assert_int_equal(out[0].key, 2);
	tw_free(w);
}

static void test_growth(void **state)
{
	tw_wheel *w = tw_create(1, 100, 0);
	assert_non_null(w);
	size_t before = tw_memory_bytes(w);
	for (uint64_t i = 0; i < 10000; i++)
		assert_true(tw_insert(w, 1000 + (i % 7) * 100, i, NULL));
	assert_true(tw_memory_bytes(w) > before);
	assert_true(tw_reserve(w, 100000));
	assert_true(tw_memory_bytes(w) >= 100000 * 32);
	tw_expired out[64];
	size_t total = 0, n;
	uint64_t last_tick = 0;
	while ((n = tw_advance(w, 10000, out, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			assert_true(out[i].tick >= last_tick);
			last_tick = out[i].tick;
		}
		total += n;
	}
	assert_int_equal(total, 10000);
	tw_free(w);
}

/*
 * Never-used nodes are handed to each list in runs: the nodes set aside in
 * the runs of other lists must still be used before the pool grows, so
 * that tw_create/tw_reserve keep their promise of `capacity` timers
 * without allocation, however the timers spread over the lists.
 */
static void test_capacity_kept(void **state)
{
	enum { N = 3000 };
	static tw_handle h[N];
	tw_wheel *w = tw_create(1, 100, 0);
	assert_non_null(w);
	assert_true(tw_reserve(w, N));
	size_t bytes = tw_memory_bytes(w);
	/* Spread over many slots of every level in use, most of them with few timers. */
	for (uint64_t i = 0; i < N; i++)
		assert_true(tw_insert(w, 100 + (i * 7919 % 997) * (i % 3 == 0 ? 100 : i % 3 == 1 ? 25600 : 6553600), i, &h[i]));
	assert_int_equal(tw_memory_bytes(w), bytes);
	for (size_t i = 0; i < N; i += 2)
		assert_true(tw_cancel(w, h[i]));
	for (uint64_t i = 0; i < N / 2; i++)
		assert_true(tw_insert(w, 50 + i * 100, N + i, NULL));
	assert_int_equal(tw_memory_bytes(w), bytes);
	assert_int_equal(tw_pending(w), N);
	/* One more than the capacity: now it must grow. */
	assert_true(tw_insert(w, 1000, 2 * N, NULL));
	assert_true(tw_memory_bytes(w) > bytes);
	tw_expired out[64];
	size_t total = 0, n;
	uint64_t last_tick = 0;
	while ((n = tw_advance(w, 997ull * 6553600 + 100, out, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			assert_true(out[i].tick >= last_tick);
			last_tick = out[i].tick;
		}
		total += n;
	}
	assert_int_equal(total, N + 1);
	assert_int_equal(tw_pending(w), 0);
	tw_free(w);
}

/* ---- randomized comparison with a reference model ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Expiry order is (tick, insertion id); the array is sorted descending so the next to fire is at the end. */
typedef struct {
	uint64_t tick;
	uint64_t id;
} ref_entry;

typedef struct {
	ref_entry *v;
	size_t n;
} ref_model;

static bool ref_before(ref_entry a, ref_entry b)
{
	return a.tick < b.tick || (a.tick == b.tick && a.id < b.id);
}

/* First index whose entry fires before e. */
static size_t ref_lower(const ref_model *r, ref_entry e)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ref_before(r->v[mid], e))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void ref_insert(ref_model *r, ref_entry e)
{
	size_t i = ref_lower(r, e);
	memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof *r->v);
	r->v[i] = e;
	r->n++;
}

static void ref_remove(ref_model *r, ref_entry e)
{
	size_t i = ref_lower(r, e);
	assert_true(i > 0);
	i--;
	assert_int_equal(r->v[i].id, e.id);
	memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof *r->v);
	r->n--;
}

#define MAX_TICK_REF (UINT64_MAX - 1)

typedef struct {
	uint64_t tick_ms;
	uint64_t start_ms;
	size_t ops;
	uint64_t seed;
} fuzz_cfg;

typedef struct {
	tw_handle h;
	uint64_t tick;
	uint32_t live_pos;   /* index in the live array, UINT32_MAX once gone */
} fuzz_timer;

static uint64_t ref_tick(const fuzz_cfg *c, uint64_t last_now, uint64_t due)
{
	uint64_t t;
	if (due <= last_now)
		t = last_now / c->tick_ms;
	else
		t = due / c->tick_ms + (due % c->tick_ms ? 1 : 0);
	return t > MAX_TICK_REF ? MAX_TICK_REF : t;
}

static uint64_t pick_due(uint64_t now, uint64_t tick_ms, uint64_t last_due)
{
	uint64_t r = rnd_below(1000);
	if (r < 400)
		return now + rnd_below(10 * tick_ms);
	if (r < 650)
		return now + rnd_below(1000 * tick_ms);
	if (r < 800)
		return now + rnd_below(5 * DAY_MS);
	if (r < 880)
		return now + rnd_below(10 * YEAR_MS);
	if (r < 930)
		return now - rnd_below(now < 100 * tick_ms ? now : 100 * tick_ms);
	if (r < 995)
		return last_due;
	return rnd();
}

static uint64_t pick_step(uint64_t tick_ms)
{
	uint64_t r = rnd_below(1000);
	if (r < 600)
		return rnd_below(3 * tick_ms);
	if (r < 850)
		return rnd_below(1000 * tick_ms);
	if (r < 960)
		return rnd_below(5 * DAY_MS);
	return rnd_below(10 * YEAR_MS);
}

static void remove_live(uint32_t *live, size_t *n_live, fuzz_timer *t, uint64_t id)
{
	uint32_t pos = t[id].live_pos;
	uint32_t moved = live[--*n_live];
	live[pos] = moved;
	t[moved].live_pos = pos;
	t[id].live_pos = UINT32_MAX;
}

static void run_fuzz(const fuzz_cfg *c)
{
	rng_state = c->seed;
	size_t max_timers = c->ops;
	fuzz_timer *timers = calloc(max_timers, sizeof *timers);
	uint32_t *live = calloc(max_timers, sizeof *live);
	ref_model ref = { calloc(max_timers + 1, sizeof(ref_entry)), 0 };
	tw_expired out[1024];
	assert_non_null(timers);
	assert_non_null(live);
	assert_non_null(ref.v);
	tw_wheel *w = tw_create(16, c->tick_ms, c->start_ms);
	assert_non_null(w);

	uint64_t now = c->start_ms, last_now = c->start_ms, last_due = c->start_ms;
	size_t n_ids = 0, n_live = 0, fired = 0, cancelled = 0, stale = 0;
	for (size_t op = 0; op < c->ops; op++) {
		uint64_t r = rnd_below(100);
		if (r < 45 && n_ids < max_timers) {
			uint64_t id = n_ids++;
			uint64_t due = pick_due(now, c->tick_ms, last_due);
			last_due = due;
			fuzz_timer *t = &timers[id];
			assert_true(tw_insert(w, due, id, &t->h));
			t->tick = ref_tick(c, last_now, due);
			t->live_pos = (uint32_t)n_live;
			live[n_live++] = (uint32_t)id;
			ref_insert(&ref, (ref_entry){ t->tick, id });
		} else if (r < 65 && n_live > 0) {
			uint64_t id = live[rnd_below(n_live)];
			assert_true(tw_cancel(w, timers[id].h));
			ref_remove(&ref, (ref_entry){ timers[id].tick, id });
			remove_live(live, &n_live, timers, id);
			cancelled++;
		} else if (r < 70 && n_ids > 0) {
			uint64_t id = rnd_below(n_ids);
			if (timers[id].live_pos == UINT32_MAX) {
				assert_false(tw_cancel(w, timers[id].h));
				stale++;
			}
		} else {
			if (rnd_below(50) == 0)
				now -= rnd_below(now - c->start_ms + 1);
			else
				now += pick_step(c->tick_ms);
			if (now > last_now)
				last_now = now;
			size_t cap = rnd_below(4) == 0 ? 1024 : 1 + rnd_below(8);
			size_t n = tw_advance(w, now, out, cap);
			uint64_t limit = last_now / c->tick_ms;
			size_t expect = 0;
			while (expect < cap && ref.n > 0 && ref.v[ref.n - 1].tick <= limit) {
				ref_entry e = ref.v[--ref.n];
				assert_true(expect < n);
				assert_int_equal(out[expect].key, e.id);
				assert_int_equal(out[expect].tick, e.tick);
				remove_live(live, &n_live, timers, e.id);
				expect++;
			}
			assert_int_equal(n, expect);
			fired += n;
		}
		assert_int_equal(tw_pending(w), ref.n);
		if (ref.n == 0) {
			assert_int_equal(tw_next_due_hint(w), UINT64_MAX);
		} else {
			uint64_t first = ref.v[ref.n - 1].tick;
			uint64_t bound = first > UINT64_MAX / c->tick_ms ? UINT64_MAX : first * c->tick_ms;
			assert_true(tw_next_due_hint(w) <= bound);
		}
	}
	/* Every path must have been exercised, or the run proves little. */
	assert_true(fired > c->ops / 20);
	assert_true(cancelled > c->ops / 20);
	assert_true(stale > c->ops / 100);
	tw_free(w);
	free(ref.v);
	free(live);
	free(timers);
}

static void test_random_vs_reference_100ms(void **state)
{
	fuzz_cfg c = { 100, 1767225600000ull, 4000000, 0x5eed0001 };
	run_fuzz(&c);
}

static void test_random_vs_reference_1ms(void **state)
{
	fuzz_cfg c = { 1, 1ull << 40, 1000000, 0x5eed0002 };
	run_fuzz(&c);
}

static void test_random_vs_reference_odd_tick(void **state)
{
	fuzz_cfg c = { 37, 12345, 1000000, 0x5eed0003 };
	run_fuzz(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_rounding_never_early),
		cmocka_unit_test(test_default_tick),
		cmocka_unit_test(test_cancel_and_stale),
		cmocka_unit_test(test_forged_handles),
		cmocka_unit_test(test_cancel_ready),
		cmocka_unit_test(test_overdue_insert),
		cmocka_unit_test(test_same_tick_fifo),
		cmocka_unit_test(test_small_cap_order),
		cmocka_unit_test(test_far_deadlines),
		cmocka_unit_test(test_extreme_range),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_capacity_kept),
		cmocka_unit_test(test_random_vs_reference_100ms),
		cmocka_unit_test(test_random_vs_reference_1ms),
		cmocka_unit_test(test_random_vs_reference_odd_tick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
