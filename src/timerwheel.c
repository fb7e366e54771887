/* Hierarchical timing wheel holding SLA deadlines: O(1) arm/disarm, no clock, no allocation per tick (pure). */
#include "arbiter/timerwheel.h"

#include <stdlib.h>
#include <string.h>

/*
 * Layout. Ticks are absolute (ms / T), so a timer's place depends only on
 * its tick E and on `cur`, the first tick not yet processed. A timer lives
 * at level L = (index of the highest bit where E and cur differ) / 8, in
 * slot (E >> 8L) & 255: the digits are bytes. Hence at every level the
 * occupied slots lie strictly ahead of cur's own digit (level 0: at or
 * ahead), nothing ever wraps around, and the first slot to act is the
 * lowest set bit of the lowest non-empty level. When cur enters the block
 * of a level-L slot the slot is cascaded: its timers are re-placed, in list
 * order, one level lower or more.
 *
 * FIFO among equal ticks comes from one invariant: all pending timers with
 * the same E sit in the same list, in insertion order. Placement depends
 * only on (E, cur), cascades happen exactly when cur enters a slot's block
 * (and before any insert can see that cur: see settle), and a cascade
 * appends in list order, so a late insert always lands behind its elders.
 *
 * Memory layout, which decides the speed once the timers outgrow the
 * caches (every figure of tests/bench/tw_bench.c at 1 M and 10 M timers is
 * a count of cache lines and pages touched):
 *   - A node is split in two 16-byte halves in parallel arrays: the links
 *     (next, prev, generation, list) and the due (key, tick). tw_cancel,
 *     the operation that lands on a random node, reads and writes links
 *     only, four to a cache line.
 *   - Both arrays are cache-line aligned, so no half ever straddles two
 *     lines (a plain realloc'd array of 32-byte nodes, 16 bytes off a line,
 *     splits every other node).
 *   - Never-used nodes are handed to each list in runs of RUN consecutive
 *     nodes, so consecutive members of a list are memory neighbours: the
 *     unlink in tw_cancel then usually finds both neighbours in the line it
 *     already holds, and cascade, make_ready and drain walk their lists
 *     through contiguous memory. Taken in plain pool order, consecutive
 *     members of a slot sit about one node per occupied slot apart, i.e. a
 *     line (and often a page) apart each.
 */

/*
 * 256 slots per level rather than 64: a 5-day deadline at 100 ms (2^22
 * ticks) then cascades twice instead of three times, and each cascade step
 * is a cache miss per timer, which dominates tw_advance.
 */
#define LEVEL_BITS 8u
#define SLOTS (1u << LEVEL_BITS)
#define LEVELS 8u                       /* 8 * 8 = 64: the whole tick range */
#define WORDS (SLOTS / 64u)             /* occupancy words per level */
#define N_WORDS (LEVELS * WORDS)        /* 32: one bit each in `summary` */
_Static_assert(N_WORDS <= 32, "summary holds one bit per occupancy word");
#define N_WHEEL_LISTS (LEVELS * SLOTS)
#define READY N_WHEEL_LISTS             /* processed, not yet handed out */
#define N_LISTS (N_WHEEL_LISTS + 1u)
#define NIL UINT32_MAX
#define FREE_LIST UINT32_MAX            /* link->list of a node holding no timer */
#define MAX_NODES (UINT32_MAX - 1u)
/* The top tick is kept free so that cur = tick + 1 cannot overflow. */
#define MAX_TICK (UINT64_MAX - 1u)
#define CACHE_LINE 64u
/*
 * Nodes per run: two lines of links. Longer runs did not make tw_cancel
 * cheaper (four links share a line whatever the run) and made tw_insert
 * slower (more lines being filled at once); shorter ones split more
 * neighbours across runs.
 */
#define RUN 8u
/* How many runs ahead of the never-used frontier tw_insert prefetches. */
#define RUN_PREFETCH 1u

typedef struct {
	uint32_t next;      /* also the free-list link */
	uint32_t prev;
	uint32_t gen;
	uint32_t list;      /* which list holds it, so cancel can fix head/tail */
} tw_link;

typedef struct {
	uint64_t key;
	uint64_t tick;
} tw_due;

typedef struct {
	uint32_t head;
	uint32_t tail;
	uint32_t run_next;  /* run_next..run_end: never-used nodes set aside for this list */
	uint32_t run_end;
} tw_list;

/*
 * n / tick_ms as a multiply by a reciprocal computed once (Granlund and
 * Montgomery; the 65-bit "add" variant as in libdivide): tick_ms is only
 * known at run time, and a 64-bit hardware division was some 15% of an
 * insert. Without a 128-bit type the division stays a division.
 */
typedef struct {
	uint64_t magic;     /* 0: tick_ms is a power of two, a plain shift */
	unsigned shift;
	bool add;
} tw_divider;

struct tw_wheel {
	uint64_t tick_ms;
	uint64_t last_now;
	uint64_t last_tick;   /* tick_floor(last_now): the tick of an overdue insert */
	uint64_t cur;
	tw_divider div;
	tw_link *links;
	tw_due *dues;
	uint32_t capacity;
	uint32_t free_head;   /* nodes that held a timer, most recently freed first */
	uint32_t fresh;       /* [fresh, capacity) has never been handed out */
	uint32_t reserved;    /* never-used nodes sitting in the lists' runs */
	size_t pending;
	uint32_t summary;                         /* bit per non-zero occupied[] word */
	uint64_t occupied[N_WHEEL_LISTS / 64u];   /* bit per wheel list */
	tw_list lists[N_LISTS];
};

static void divider_init(tw_divider *d, uint64_t den)
{
	unsigned k = 63u - (unsigned)__builtin_clzll(den);
	d->magic = 0;
	d->shift = k;
	d->add = false;
#ifdef __SIZEOF_INT128__
	if ((den & (den - 1)) == 0)
		return;
	/* 2^(64+k) / den < 2^64 because den > 2^k. */
	unsigned __int128 num = (unsigned __int128)1 << (64 + k);
	uint64_t m = (uint64_t)(num / den);
	uint64_t rem = (uint64_t)(num % den);
	if (den - rem >= (UINT64_C(1) << k)) {
		/* That power is not precise enough: take 2^(65+k) / den, one bit too wide for m. */
		m += m;
		uint64_t twice = rem + rem;
		if (twice >= den || twice < rem)
			m++;
		d->add = true;
	}
	d->magic = m + 1;
#endif
}

static uint64_t divide(const tw_wheel *w, uint64_t n)
{
#ifdef __SIZEOF_INT128__
	const tw_divider *d = &w->div;
	if (!d->magic)
		return n >> d->shift;
	uint64_t q = (uint64_t)(((unsigned __int128)n * d->magic) >> 64);
	if (!d->add)
		return q >> d->shift;
	return (((n - q) >> 1) + q) >> d->shift;
#else
	return n / w->tick_ms;
#endif
}

static uint64_t tick_floor(const tw_wheel *w, uint64_t ms)
{
	uint64_t t = divide(w, ms);
	return t > MAX_TICK ? MAX_TICK : t;
}

static uint64_t tick_ceil(const tw_wheel *w, uint64_t ms)
{
	uint64_t q = divide(w, ms);
	uint64_t t = q + (ms - q * w->tick_ms != 0);
	return t > MAX_TICK ? MAX_TICK : t;
}

/* The summary spares next_slot a scan of 32 words on every tw_advance. */
static void set_occupied(tw_wheel *w, uint32_t list)
{
	w->occupied[list / 64u] |= UINT64_C(1) << (list % 64u);
	w->summary |= UINT32_C(1) << (list / 64u);
}

static void clear_occupied(tw_wheel *w, uint32_t list)
{
	uint64_t *word = &w->occupied[list / 64u];
	*word &= ~(UINT64_C(1) << (list % 64u));
	if (!*word)
		w->summary &= ~(UINT32_C(1) << (list / 64u));
}

/* Appends idx to list; its link half is rewritten whole, with generation gen. */
static void list_append(tw_wheel *w, uint32_t list, uint32_t idx, uint32_t gen)
{
	tw_list *l = &w->lists[list];
	uint32_t tail = l->tail;
	/* Written as a whole: a never-used node's line need not be read first. */
	w->links[idx] = (tw_link){ .next = NIL, .prev = tail, .gen = gen, .list = list };
	if (tail == NIL) {
		l->head = idx;
		if (list < N_WHEEL_LISTS)
			set_occupied(w, list);
	} else {
		w->links[tail].next = idx;
	}
	l->tail = idx;
}

static void list_unlink(tw_wheel *w, uint32_t idx)
{
	const tw_link *n = &w->links[idx];
	uint32_t prev = n->prev, next = n->next, list = n->list;
	tw_list *l = &w->lists[list];
	if (prev == NIL)
		l->head = next;
	else
		w->links[prev].next = next;
	if (next == NIL)
		l->tail = prev;
	else
		w->links[next].prev = prev;
	if (prev == NIL && next == NIL && list < N_WHEEL_LISTS)
		clear_occupied(w, list);
}

static void node_release(tw_wheel *w, uint32_t idx)
{
	tw_link *n = &w->links[idx];
	n->list = FREE_LIST;
	/* Generation 0 is never issued so that a zeroed handle is always stale. */
	if (++n->gen == 0)
		n->gen = 1;
	n->next = w->free_head;
	w->free_head = idx;
	w->pending--;
}

/* The wheel list of a tick >= cur: level from the highest differing bit. */
static uint32_t list_of(const tw_wheel *w, uint64_t tick)
{
	/* | 1: tick == cur is level 0, and clz of 0 is undefined. */
	unsigned level = (unsigned)(63 - __builtin_clzll((tick ^ w->cur) | 1)) / LEVEL_BITS;
	unsigned slot = (unsigned)(tick >> (level * LEVEL_BITS)) & (SLOTS - 1);
	return level * SLOTS + slot;
}

/*
 * The first slot that must act: the lowest set bit of the lowest non-empty
 * level. Lower levels always act before higher ones because a level-L
 * timer shares every digit above L with cur, and a level-(L+1) slot only
 * acts when cur leaves the current level-(L+1) digit behind. Returns false
 * when the wheel is empty.
 */
static bool next_slot(const tw_wheel *w, unsigned *level, unsigned *slot, uint64_t *tick)
{
	if (!w->summary)
		return false;
	unsigned i = (unsigned)__builtin_ctz(w->summary);
	unsigned l = i / WORDS;
	unsigned s = (i % WORDS) * 64u + (unsigned)__builtin_ctzll(w->occupied[i]);
	unsigned above = (l + 1) * LEVEL_BITS;
	uint64_t base = above >= 64 ? 0 : (w->cur >> above) << above;
	*level = l;
	*slot = s;
	*tick = base | ((uint64_t)s << (l * LEVEL_BITS));
	return true;
}

static void cascade(tw_wheel *w, unsigned level, unsigned slot)
{
	uint32_t list = level * SLOTS + slot;
	tw_list *l = &w->lists[list];
	uint32_t idx = l->head;
	l->head = l->tail = NIL;
	clear_occupied(w, list);
	while (idx != NIL) {
		const tw_link *n = &w->links[idx];
		uint32_t next = n->next;
		list_append(w, list_of(w, w->dues[idx].tick), idx, n->gen);
		idx = next;
	}
}

/* Level 0 holds one tick per slot, so the whole list is due: splice it. */
static void make_ready(tw_wheel *w, unsigned slot)
{
	tw_list *src = &w->lists[slot];
	tw_list *dst = &w->lists[READY];
	for (uint32_t i = src->head; i != NIL; i = w->links[i].next)
		w->links[i].list = READY;
	if (dst->tail == NIL) {
		dst->head = src->head;
	} else {
		w->links[dst->tail].next = src->head;
		w->links[src->head].prev = dst->tail;
	}
	dst->tail = src->tail;
	src->head = src->tail = NIL;
	clear_occupied(w, slot);
}

/*
 * Cascades every slot whose block begins exactly at cur. Without this, an
 * insert made while cur sits on such a boundary would be placed below
 * older timers of the same tick still waiting in the coarse slot, and
 * would overtake them.
 */
static void settle(tw_wheel *w)
{
	/* Coarse blocks begin only at multiples of SLOTS: spare the search otherwise. */
	if (w->cur % SLOTS)
		return;
	unsigned level, slot;
	uint64_t tick;
	while (next_slot(w, &level, &slot, &tick) && level > 0 && tick == w->cur)
		cascade(w, level, slot);
}

/* Cache-line aligned, so that no 16-byte half of a node straddles two lines. */
static void *pool_alloc(size_t bytes)
{
	size_t rounded = (bytes + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	return aligned_alloc(CACHE_LINE, rounded ? rounded : CACHE_LINE);
}

static bool grow(tw_wheel *w, uint32_t capacity)
{
	if (capacity <= w->capacity)
		return true;
	if (capacity > MAX_NODES)
		return false;
	/* realloc would not keep the alignment: copy instead (the pool doubles, so rarely). */
	tw_link *links = pool_alloc((size_t)capacity * sizeof *links);
	tw_due *dues = pool_alloc((size_t)capacity * sizeof *dues);
	if (!links || !dues) {
		free(links);
		free(dues);
		return false;
	}
	if (w->capacity) {
		memcpy(links, w->links, (size_t)w->capacity * sizeof *links);
		memcpy(dues, w->dues, (size_t)w->capacity * sizeof *dues);
	}
	/* Every new node written once: the pages fault in here, not in the inserts. */
	for (uint32_t i = w->capacity; i < capacity; i++)
		links[i] = (tw_link){ .next = NIL, .prev = NIL, .gen = 1, .list = FREE_LIST };
	memset(dues + w->capacity, 0, (size_t)(capacity - w->capacity) * sizeof *dues);
	free(w->links);
	free(w->dues);
	w->links = links;
	w->dues = dues;
	/* The new nodes extend the never-used tail [fresh, capacity). */
	w->capacity = capacity;
	return true;
}

/* The pool is otherwise full: hands every node set aside in a run to the free list. */
static void reclaim_runs(tw_wheel *w)
{
	for (unsigned i = 0; i < N_LISTS && w->reserved; i++) {
		tw_list *l = &w->lists[i];
		while (l->run_next != l->run_end) {
			uint32_t idx = --l->run_end;
			w->links[idx].next = w->free_head;
			w->free_head = idx;
			w->reserved--;
		}
	}
}

static uint32_t pop_free(tw_wheel *w, uint32_t *gen)
{
	uint32_t idx = w->free_head;
	w->free_head = w->links[idx].next;
	*gen = w->links[idx].gen;
	return idx;
}

/*
 * Slow path of node_alloc, once per RUN inserts: a new run for list l
 * from the never-used tail of the pool; else the runs of the other lists;
 * else a doubled pool.
 */
static uint32_t new_run(tw_wheel *w, tw_list *l, uint32_t *gen)
{
	if (w->fresh == w->capacity) {
		if (w->reserved) {
			reclaim_runs(w);
			return pop_free(w, gen);
		}
		uint32_t want = w->capacity > MAX_NODES / 2 ? MAX_NODES
			: w->capacity ? w->capacity * 2 : 64;
		if (want <= w->capacity || !grow(w, want))
			return NIL;
	}
	uint32_t idx = w->fresh;
	/* Runs end on multiples of RUN, so that every later run starts on a line. */
	uint32_t end = (idx | (RUN - 1)) + 1;
	if (end > w->capacity || end < idx)
		end = w->capacity;
	w->fresh = end;
	l->run_next = idx + 1;
	l->run_end = end;
	w->reserved += end - idx - 1;
	/*
	 * Runs are taken from the frontier in order, whichever list asks, so the
	 * lines of the next ones are known now: fetch them while RUN inserts go by.
	 */
	uint32_t ahead = end + RUN_PREFETCH * RUN;
	if (ahead > end && ahead < w->capacity && w->capacity - ahead >= RUN) {
		for (unsigned i = 0; i < RUN; i += CACHE_LINE / sizeof(tw_link))
			__builtin_prefetch(&w->links[ahead + i], 1);
		for (unsigned i = 0; i < RUN; i += CACHE_LINE / sizeof(tw_due))
			__builtin_prefetch(&w->dues[ahead + i], 1);
	}
	*gen = 1;   /* as grow left it */
	return idx;
}

/*
 * Recycled nodes first, most recently freed first: they are the likeliest
 * to be cached, and they keep the pool from growing while it has room.
 * Then the list's own run. gen: the node's current generation.
 */
static uint32_t node_alloc(tw_wheel *w, tw_list *l, uint32_t *gen)
{
	if (w->free_head != NIL)
		return pop_free(w, gen);
	if (l->run_next != l->run_end) {
		w->reserved--;
		*gen = 1;   /* never used: as grow left it */
		return l->run_next++;
	}
	return new_run(w, l, gen);
}

tw_wheel *tw_create(uint32_t capacity, uint64_t tick_ms, uint64_t now_ms)
{
	tw_wheel *w = calloc(1, sizeof *w);
	if (!w)
		goto fail;
	w->tick_ms = tick_ms ? tick_ms : TW_DEFAULT_TICK_MS;
	divider_init(&w->div, w->tick_ms);
	w->last_now = now_ms;
	w->last_tick = tick_floor(w, now_ms);
	w->cur = w->last_tick + 1;
	w->free_head = NIL;
	for (unsigned i = 0; i < N_LISTS; i++)
		w->lists[i] = (tw_list){ NIL, NIL, 0, 0 };
	if (!grow(w, capacity))
		goto fail;
	return w;
fail:
	tw_free(w);
	return NULL;
}

void tw_free(tw_wheel *w)
{
	if (!w)
		return;
	free(w->links);
	free(w->dues);
	free(w);
}

bool tw_reserve(tw_wheel *w, uint32_t capacity)
{
	return grow(w, capacity);
}

bool tw_insert(tw_wheel *w, uint64_t due_ms, uint64_t key, tw_handle *out)
{
	/* Already due: it joins the last processed tick, behind everything there. */
	uint64_t tick = due_ms <= w->last_now ? w->last_tick : tick_ceil(w, due_ms);
	uint32_t list = tick < w->cur ? READY : list_of(w, tick);
	uint32_t gen;
	uint32_t idx = node_alloc(w, &w->lists[list], &gen);
	if (idx == NIL)
		return false;
	w->pending++;
	w->dues[idx] = (tw_due){ key, tick };
	list_append(w, list, idx, gen);
	if (out)
		*out = (tw_handle){ idx, gen };
	return true;
}

bool tw_cancel(tw_wheel *w, tw_handle h)
{
	if (h.idx >= w->capacity)
		return false;
	const tw_link *n = &w->links[h.idx];
	if (n->list == FREE_LIST || n->gen != h.gen)
		return false;
	list_unlink(w, h.idx);
	node_release(w, h.idx);
	return true;
}

static size_t drain_ready(tw_wheel *w, tw_expired *out, size_t cap)
{
	tw_list *r = &w->lists[READY];
	size_t n = 0;
	while (n < cap && r->head != NIL) {
		uint32_t idx = r->head;
		out[n++] = (tw_expired){ w->dues[idx].key, w->dues[idx].tick };
		r->head = w->links[idx].next;
		node_release(w, idx);
	}
	if (r->head == NIL)
		r->tail = NIL;
	else
		w->links[r->head].prev = NIL;
	return n;
}

size_t tw_advance(tw_wheel *w, uint64_t now_ms, tw_expired *out, size_t cap)
{
	if (now_ms > w->last_now) {
		w->last_now = now_ms;
		w->last_tick = tick_floor(w, now_ms);
	}
	uint64_t target = w->last_tick;
	size_t n = 0;
	for (;;) {
		n += drain_ready(w, out + n, cap - n);
		if (n == cap)
			break;
		unsigned level, slot;
		uint64_t tick;
		if (!next_slot(w, &level, &slot, &tick) || tick > target) {
			/* Nothing acts up to target, so cur may jump: no placement changes. */
			if (w->cur <= target)
				w->cur = target + 1;
			break;
		}
		w->cur = tick;
		if (level == 0) {
			make_ready(w, slot);
			w->cur = tick + 1;
		} else {
			cascade(w, level, slot);
		}
	}
	settle(w);
	return n;
}

size_t tw_pending(const tw_wheel *w)
{
	return w->pending;
}

uint64_t tw_next_due_hint(const tw_wheel *w)
{
	unsigned level, slot;
	uint64_t tick;
	if (w->lists[READY].head != NIL)
		tick = w->dues[w->lists[READY].head].tick;
	else if (!next_slot(w, &level, &slot, &tick))
		return UINT64_MAX;
	if (tick > UINT64_MAX / w->tick_ms)
		return UINT64_MAX;
	return tick * w->tick_ms;
}

size_t tw_memory_bytes(const tw_wheel *w)
{
	return sizeof *w + (size_t)w->capacity * (sizeof *w->links + sizeof *w->dues);
}
