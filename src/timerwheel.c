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
 * Speed. Once the timers outgrow the caches, a random tw_cancel is a cache
 * miss on the node, and what it costs is how many such misses the CPU
 * keeps in flight: that falls with every other line a cancel must fetch
 * (a list neighbour elsewhere costs about as much as the node itself) and
 * with the instructions each cancel takes, which fill the reorder window
 * that lets the cancels behind it start. Hence:
 *   - Every list is circular through a sentinel node, so an unlink is two
 *     stores with no branch on what the load of the node returned: a
 *     mispredicted branch there waits for the miss, then throws away the
 *     cancels started behind it.
 *   - A node's links carry its handle as one word (id below): one
 *     comparison proves the node live and the handle current.
 *   - A node is split in two 16-byte halves in parallel arrays: the links
 *     (next, prev, id) and the due (key, tick). tw_cancel touches links
 *     only, four nodes to a line. Both arrays are line-aligned and the
 *     nodes start on a run boundary, so no half straddles two lines.
 *   - Never-used nodes are handed to each list in runs of RUN consecutive
 *     nodes, so consecutive members of a list are memory neighbours: the
 *     unlink usually finds both neighbours in the line it already holds,
 *     and cascade and drain walk their lists through contiguous memory.
 *     (Taken in plain pool order, consecutive members of a slot would sit
 *     about one node per occupied slot apart: a line or a page each.)
 * The rest (insert, advance) is cheap beside a miss and was kept lean
 * rather than clever; insert avoids unpredictable branches (see there).
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
/* The top tick is kept free so that cur = tick + 1 cannot overflow. */
#define MAX_TICK (UINT64_MAX - 1u)
#define CACHE_LINE 64u
/*
 * Nodes per run: two lines of links. Longer runs did not make tw_cancel
 * cheaper (four links share a line whatever the run) and made a cancel of
 * the oldest timers slower: the lists fill their runs side by side, so the
 * oldest timers, in insertion order, lie along as many streams through
 * memory as there are lists, which the hardware prefetchers lose track of
 * once runs are long. Shorter runs split more neighbours across runs.
 */
#define RUN 8u
/* How far ahead of the never-used frontier tw_insert prefetches, in runs. */
#define PREFETCH_RUNS 8u

/*
 * The link array starts with one sentinel per list, at the list's number;
 * the nodes that hold timers start at FIRST_NODE, rounded up so that runs
 * start on a line. Every run starts on a multiple of RUN.
 */
#define FIRST_NODE ((N_LISTS + RUN - 1u) / RUN * RUN)
/* Never a node's index: the free list's end, and the idx half of a free node's id. */
#define NOT_LIVE UINT32_MAX
/* The pool holds whole runs only, and tw_insert's look-ahead past its end stays below NOT_LIVE. */
#define MAX_NODES (((UINT32_MAX - FIRST_NODE) / RUN - PREFETCH_RUNS - 2u) * RUN)

/*
 * id is the node's handle as one word, idx | gen << 32, while it holds a
 * timer; once free its idx half is NOT_LIVE. gen moves on each time the
 * node is handed out, so a handle of an earlier timer of the node is stale.
 */
typedef struct {
	uint32_t next;      /* also the free-list link */
	uint32_t prev;
	uint64_t id;
} tw_link;

typedef struct {
	uint64_t key;
	uint64_t tick;
} tw_due;

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
	tw_link *links;       /* sentinels, then nodes from FIRST_NODE up to limit */
	tw_due *dues;         /* from FIRST_NODE up */
	uint32_t limit;       /* FIRST_NODE + capacity */
	uint32_t free_head;   /* nodes that held a timer, most recently freed first */
	uint32_t fresh;       /* [fresh, limit) has never been handed out */
	size_t pending;
	uint32_t summary;                         /* bit per non-zero occupied[] word */
	uint64_t occupied[N_WHEEL_LISTS / 64u];   /* bit per wheel list */
	/*
	 * A list's never-used nodes: from run_next up to the next multiple of
	 * RUN, none when run_next is one.
	 */
	uint32_t run_next[N_LISTS];
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

/* ms >= 1: the caller has ms > last_now. */
static uint64_t tick_ceil(const tw_wheel *w, uint64_t ms)
{
	uint64_t t = divide(w, ms - 1) + 1;
	return t > MAX_TICK ? MAX_TICK : t;
}

static tw_link *link_at(const tw_wheel *w, uint32_t idx)
{
	return &w->links[idx];
}

static tw_due *due_at(const tw_wheel *w, uint32_t idx)
{
	return &w->dues[idx - FIRST_NODE];
}

static uint64_t node_id(uint32_t idx, uint32_t gen)
{
	return (uint64_t)gen << 32 | idx;
}

static uint32_t id_gen(uint64_t id)
{
	return (uint32_t)(id >> 32);
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

static void list_reset(tw_wheel *w, uint32_t list)
{
	tw_link *s = link_at(w, list);
	s->next = s->prev = list;
}

/*
 * Appends node idx, live with id, to list. Forced inline: it is most of
 * tw_insert and of a cascade step.
 */
__attribute__((always_inline)) static inline void list_append(tw_wheel *w, uint32_t list,
	uint32_t idx, uint64_t id)
{
	tw_link *s = link_at(w, list);
	uint32_t tail = s->prev;
	/* Written as a whole: a never-used node's line need not be read first. */
	*link_at(w, idx) = (tw_link){ .next = list, .prev = tail, .id = id };
	link_at(w, tail)->next = idx;
	s->prev = idx;
	if (tail == list && list != READY)
		set_occupied(w, list);
}

/* Pushes idx, which holds no timer any more, on the free list: its handle goes stale. */
static void node_release(tw_wheel *w, tw_link *n, uint32_t idx, uint64_t id)
{
	n->next = w->free_head;
	n->id = id | NOT_LIVE;
	w->free_head = idx;
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
	uint32_t idx = link_at(w, list)->next;
	list_reset(w, list);
	clear_occupied(w, list);
	while (idx != list) {
		const tw_link *n = link_at(w, idx);
		uint32_t next = n->next;
		list_append(w, list_of(w, due_at(w, idx)->tick), idx, n->id);
		idx = next;
	}
}

/* Level 0 holds one tick per slot, so the whole list is due: splice it behind READY's. */
static void make_ready(tw_wheel *w, unsigned slot)
{
	tw_link *src = link_at(w, slot);
	tw_link *ready = link_at(w, READY);
	uint32_t first = src->next, last = src->prev;
	link_at(w, ready->prev)->next = first;
	link_at(w, first)->prev = ready->prev;
	link_at(w, last)->next = READY;
	ready->prev = last;
	list_reset(w, slot);
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
	if (capacity > MAX_NODES)
		return false;
	capacity = (capacity + RUN - 1) / RUN * RUN;
	uint32_t limit = FIRST_NODE + capacity;
	if (w->links && limit <= w->limit)
		return true;
	uint32_t old = w->links ? w->limit : 0;
	/* realloc would not keep the alignment: copy instead (the pool doubles, so rarely). */
	tw_link *links = pool_alloc((size_t)limit * sizeof *links);
	tw_due *dues = pool_alloc((size_t)capacity * sizeof *dues);
	if (!links || !dues) {
		free(links);
		free(dues);
		return false;
	}
	uint32_t from = old ? old : FIRST_NODE;
	if (old) {
		memcpy(links, w->links, (size_t)old * sizeof *links);
		memcpy(dues, w->dues, (size_t)(old - FIRST_NODE) * sizeof *dues);
	} else {
		for (uint32_t idx = 0; idx < FIRST_NODE; idx++)
			links[idx] = (tw_link){ .next = idx, .prev = idx, .id = node_id(NOT_LIVE, 0) };
	}
	/* Every new node written once: the pages fault in here, not in the inserts. */
	for (uint32_t idx = from; idx < limit; idx++)
		links[idx] = (tw_link){ .next = NOT_LIVE, .prev = NOT_LIVE, .id = node_id(NOT_LIVE, 0) };
	memset(dues + (from - FIRST_NODE), 0, (size_t)(limit - from) * sizeof *dues);
	free(w->links);
	free(w->dues);
	w->links = links;
	w->dues = dues;
	/* The new nodes extend the never-used tail [fresh, limit). */
	w->limit = limit;
	return true;
}

/*
 * The pool is otherwise full: hands every node set aside in a run to the
 * free list. True when there was one. Runs are only refilled from the
 * never-used tail, so this scan comes at most once per growth of the pool.
 */
static bool reclaim_runs(tw_wheel *w)
{
	for (unsigned i = 0; i < N_LISTS; i++) {
		for (uint32_t idx = w->run_next[i]; idx % RUN; idx++) {
			link_at(w, idx)->next = w->free_head;
			w->free_head = idx;
		}
		w->run_next[i] = w->run_next[i] / RUN * RUN;
	}
	return w->free_head != NOT_LIVE;
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
	w->free_head = NOT_LIVE;
	w->fresh = FIRST_NODE;
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

__attribute__((always_inline)) static inline void place(tw_wheel *w, uint32_t list, uint32_t idx,
	uint32_t gen, uint64_t key, uint64_t tick, tw_handle *out)
{
	w->pending++;
	*due_at(w, idx) = (tw_due){ key, tick };
	list_append(w, list, idx, node_id(idx, gen));
	if (out)
		*out = (tw_handle){ idx, gen };
}

static uint32_t pop_free(tw_wheel *w, uint32_t *gen)
{
	uint32_t idx = w->free_head;
	const tw_link *n = link_at(w, idx);
	w->free_head = n->next;
	*gen = id_gen(n->id) + 1;
	return idx;
}

/*
 * The never-used tail is exhausted: the nodes set aside in the runs of
 * other lists, else a doubled pool. Out of line, so that tw_insert's
 * common path needs few registers.
 */
__attribute__((noinline)) static bool insert_slow(tw_wheel *w, uint32_t list,
	uint64_t key, uint64_t tick, tw_handle *out)
{
	uint32_t idx, gen;
	if (reclaim_runs(w)) {
		idx = pop_free(w, &gen);
	} else {
		uint32_t capacity = w->limit - FIRST_NODE;
		uint32_t want = capacity > MAX_NODES / 2 ? MAX_NODES : capacity ? capacity * 2 : 64;
		if (want <= capacity || !grow(w, want))
			return false;
		idx = w->fresh;
		w->fresh += RUN;
		w->run_next[list] = idx + 1;
		gen = 1;
	}
	place(w, list, idx, gen, key, tick, out);
	return true;
}

/*
 * Recycled nodes first, most recently freed first: they are the likeliest
 * to be cached, and they keep the pool from growing while it has room.
 * Then the list's own run, or a new one from the never-used tail: chosen
 * without a branch, because which list is due a new run is as random as
 * the due times, and the mispredicted branch cost a quarter of an insert.
 */
bool tw_insert(tw_wheel *w, uint64_t due_ms, uint64_t key, tw_handle *out)
{
	/* Already due: it joins the last processed tick, behind everything there. */
	uint64_t tick = due_ms <= w->last_now ? w->last_tick : tick_ceil(w, due_ms);
	uint32_t list = tick < w->cur ? READY : list_of(w, tick);
	uint32_t idx, gen;
	if (w->free_head != NOT_LIVE) {
		idx = pop_free(w, &gen);
	} else {
		uint32_t next = w->run_next[list], fresh = w->fresh;
		/* All ones when the list's run is used up. Masks: compilers turn ?: into the branch. */
		uint32_t used_up = 0u - (uint32_t)(next % RUN == 0);
		uint32_t new_fresh = fresh + (used_up & RUN);
		if (__builtin_expect(new_fresh > w->limit, 0))
			return insert_slow(w, list, key, tick, out);
		idx = (fresh & used_up) | (next & ~used_up);
		w->fresh = new_fresh;
		w->run_next[list] = idx + 1;
		/*
		 * The never-used tail is filled a run at a time, in order, but each
		 * run over RUN inserts to its list: too slowly for the hardware
		 * prefetchers to follow. Fetch one node of a run PREFETCH_RUNS ahead
		 * (which node turns with idx, so every line of it comes in time).
		 */
		uint32_t ahead = new_fresh + PREFETCH_RUNS * RUN + idx % RUN;
		ahead = ahead < w->limit ? ahead : idx;
		__builtin_prefetch(link_at(w, ahead), 1);
		__builtin_prefetch(due_at(w, ahead), 1);
		gen = 1;   /* never used: generation 0 as grow left it, not read */
	}
	place(w, list, idx, gen, key, tick, out);
	return true;
}

/* A list just lost its last timer. Out of line: tw_cancel's common path stays short. */
__attribute__((noinline, cold)) static void list_emptied(tw_wheel *w, uint32_t list)
{
	if (list != READY)
		clear_occupied(w, list);
}

bool tw_cancel(tw_wheel *w, tw_handle h)
{
	if (h.idx >= w->limit)
		return false;
	tw_link *n = link_at(w, h.idx);
	uint64_t id = node_id(h.idx, h.gen);
	if (n->id != id)
		return false;
	uint32_t prev = n->prev, next = n->next;
	link_at(w, prev)->next = next;
	link_at(w, next)->prev = prev;
	/* Only a sentinel (whose index is its list's) is both neighbours of a node: it was alone in its list. */
	if (__builtin_expect(prev == next, 0))
		list_emptied(w, prev);
	node_release(w, n, h.idx, id);
	w->pending--;
	return true;
}

static size_t drain_ready(tw_wheel *w, tw_expired *out, size_t cap)
{
	tw_link *ready = link_at(w, READY);
	uint32_t idx = ready->next;
	size_t n = 0;
	while (n < cap && idx != READY) {
		const tw_due *d = due_at(w, idx);
		out[n++] = (tw_expired){ d->key, d->tick };
		tw_link *l = link_at(w, idx);
		uint32_t next = l->next;
		node_release(w, l, idx, l->id);
		idx = next;
	}
	ready->next = idx;
	link_at(w, idx)->prev = READY;
	w->pending -= n;
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
	uint32_t head = link_at(w, READY)->next;
	if (head != READY)
		tick = due_at(w, head)->tick;
	else if (!next_slot(w, &level, &slot, &tick))
		return UINT64_MAX;
	if (tick > UINT64_MAX / w->tick_ms)
		return UINT64_MAX;
	return tick * w->tick_ms;
}

size_t tw_memory_bytes(const tw_wheel *w)
{
	return sizeof *w + (size_t)w->limit * sizeof *w->links
		+ (size_t)(w->limit - FIRST_NODE) * sizeof *w->dues;
}
