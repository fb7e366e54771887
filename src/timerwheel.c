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
 * ahead), nothing ever wraps around, and the first slot to act is the lowest set bit of the lowest
 * non-empty level. When cur enters the block of a level-L slot the slot is
 * cascaded: its timers are re-placed, in list order, one level lower or
 * more.
 *
 * FIFO among equal ticks comes from one invariant: all pending timers with
 * the same E sit in the same list, in insertion order. Placement depends
 * only on (E, cur), cascades happen exactly when cur enters a slot's block
 * (and before any insert can see that cur: see settle), and a cascade
 * appends in list order, so a late insert always lands behind its elders.
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
#define N_WHEEL_LISTS (LEVELS * SLOTS)
#define READY N_WHEEL_LISTS             /* processed, not yet handed out */
#define N_LISTS (N_WHEEL_LISTS + 1u)
#define NIL UINT32_MAX
#define FREE_LIST UINT32_MAX            /* node->list of a free node */
#define MAX_NODES (UINT32_MAX - 1u)
/* The top tick is kept free so that cur = tick + 1 cannot overflow. */
#define MAX_TICK (UINT64_MAX - 1u)

typedef struct {
	uint64_t key;
	uint64_t tick;
	uint32_t next;      /* also the free-list link */
	uint32_t prev;
	uint32_t gen;
	uint32_t list;      /* which list holds it, so cancel can fix head/tail */
} tw_node;

typedef struct {
	uint32_t head;
	uint32_t tail;
} tw_list;

struct tw_wheel {
	uint64_t tick_ms;
	uint64_t last_now;
	uint64_t cur;
	tw_node *nodes;
	uint32_t capacity;
	uint32_t free_head;
	size_t pending;
	uint64_t occupied[N_WHEEL_LISTS / 64u];   /* bit per wheel list */
	tw_list lists[N_LISTS];
};

static uint64_t tick_floor(const tw_wheel *w, uint64_t ms)
{
	uint64_t t = ms / w->tick_ms;
	return t > MAX_TICK ? MAX_TICK : t;
}

static uint64_t tick_ceil(const tw_wheel *w, uint64_t ms)
{
	uint64_t t = ms / w->tick_ms + (ms % w->tick_ms != 0);
	return t > MAX_TICK ? MAX_TICK : t;
}

static void list_append(tw_wheel *w, uint32_t list, uint32_t idx)
{
	tw_list *l = &w->lists[list];
	tw_node *n = &w->nodes[idx];
	n->list = list;
	n->next = NIL;
	n->prev = l->tail;
	if (l->tail == NIL)
		l->head = idx;
	else
		w->nodes[l->tail].next = idx;
	l->tail = idx;
	if (list < N_WHEEL_LISTS)
		w->occupied[list / 64u] |= UINT64_C(1) << (list % 64u);
}

static void list_unlink(tw_wheel *w, uint32_t idx)
{
	tw_node *n = &w->nodes[idx];
	tw_list *l = &w->lists[n->list];
	if (n->prev == NIL)
		l->head = n->next;
	else
		w->nodes[n->prev].next = n->next;
	if (n->next == NIL)
		l->tail = n->prev;
	else
		w->nodes[n->next].prev = n->prev;
	if (l->head == NIL && n->list < N_WHEEL_LISTS)
		w->occupied[n->list / 64u] &= ~(UINT64_C(1) << (n->list % 64u));
}

static void node_release(tw_wheel *w, uint32_t idx)
{
	tw_node *n = &w->nodes[idx];
	n->list = FREE_LIST;
	/* Generation 0 is never issued so that a zeroed handle is always stale. */
	if (++n->gen == 0)
		n->gen = 1;
	n->next = w->free_head;
	w->free_head = idx;
	w->pending--;
}

/* Requires tick >= cur. */
static void place(tw_wheel *w, uint32_t idx)
{
	uint64_t tick = w->nodes[idx].tick;
	uint64_t diff = tick ^ w->cur;
	unsigned level = diff ? (unsigned)(63 - __builtin_clzll(diff)) / LEVEL_BITS : 0;
	unsigned slot = (unsigned)(tick >> (level * LEVEL_BITS)) & (SLOTS - 1);
	list_append(w, level * SLOTS + slot, idx);
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
	for (unsigned i = 0; i < LEVELS * WORDS; i++) {
		if (!w->occupied[i])
			continue;
		unsigned l = i / WORDS;
		unsigned s = (i % WORDS) * 64u + (unsigned)__builtin_ctzll(w->occupied[i]);
		unsigned above = (l + 1) * LEVEL_BITS;
		uint64_t base = above >= 64 ? 0 : (w->cur >> above) << above;
		*level = l;
		*slot = s;
		*tick = base | ((uint64_t)s << (l * LEVEL_BITS));
		return true;
	}
	return false;
}

static void cascade(tw_wheel *w, unsigned level, unsigned slot)
{
	tw_list *l = &w->lists[level * SLOTS + slot];
	uint32_t idx = l->head;
	l->head = l->tail = NIL;
	w->occupied[(level * SLOTS + slot) / 64u] &= ~(UINT64_C(1) << (slot % 64u));
	while (idx != NIL) {
		uint32_t next = w->nodes[idx].next;
		place(w, idx);
		idx = next;
	}
}

/* Level 0 holds one tick per slot, so the whole list is due: splice it. */
static void make_ready(tw_wheel *w, unsigned slot)
{
	tw_list *src = &w->lists[slot];
	tw_list *dst = &w->lists[READY];
	for (uint32_t i = src->head; i != NIL; i = w->nodes[i].next)
		w->nodes[i].list = READY;
	if (dst->tail == NIL) {
		dst->head = src->head;
	} else {
		w->nodes[dst->tail].next = src->head;
		w->nodes[src->head].prev = dst->tail;
	}
	dst->tail = src->tail;
	src->head = src->tail = NIL;
	w->occupied[slot / 64u] &= ~(UINT64_C(1) << (slot % 64u));
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

static bool grow(tw_wheel *w, uint32_t capacity)
{
	if (capacity <= w->capacity)
		return true;
	if (capacity > MAX_NODES)
		return false;
	tw_node *nodes = realloc(w->nodes, (size_t)capacity * sizeof *nodes);
	if (!nodes)
		return false;
	w->nodes = nodes;
	/* Pushed in reverse so the pool is handed out in ascending, cache-friendly order. */
	for (uint32_t i = capacity; i-- > w->capacity;) {
		nodes[i] = (tw_node){ .next = w->free_head, .prev = NIL, .gen = 1, .list = FREE_LIST };
		w->free_head = i;
	}
	w->capacity = capacity;
	return true;
}

tw_wheel *tw_create(uint32_t capacity, uint64_t tick_ms, uint64_t now_ms)
{
	tw_wheel *w = calloc(1, sizeof *w);
	if (!w)
		goto fail;
	w->tick_ms = tick_ms ? tick_ms : TW_DEFAULT_TICK_MS;
	w->last_now = now_ms;
	w->cur = tick_floor(w, now_ms) + 1;
	w->free_head = NIL;
	for (unsigned i = 0; i < N_LISTS; i++)
		w->lists[i] = (tw_list){ NIL, NIL };
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
	free(w->nodes);
	free(w);
}

bool tw_reserve(tw_wheel *w, uint32_t capacity)
{
	return grow(w, capacity);
}

bool tw_insert(tw_wheel *w, uint64_t due_ms, uint64_t key, tw_handle *out)
{
	if (w->free_head == NIL) {
		uint32_t want = w->capacity > MAX_NODES / 2 ? MAX_NODES
			: w->capacity ? w->capacity * 2 : 64;
		if (want <= w->capacity || !grow(w, want))
			return false;
	}
	uint32_t idx = w->free_head;
	tw_node *n = &w->nodes[idx];
	w->free_head = n->next;
	w->pending++;
	n->key = key;
	/* Already due: it joins the last processed tick, behind everything there. */
	n->tick = due_ms <= w->last_now ? tick_floor(w, w->last_now) : tick_ceil(w, due_ms);
	if (n->tick < w->cur)
		list_append(w, READY, idx);
	else
		place(w, idx);
	if (out)
		*out = (tw_handle){ idx, n->gen };
	return true;
}

bool tw_cancel(tw_wheel *w, tw_handle h)
{
	if (h.idx >= w->capacity)
		return false;
	tw_node *n = &w->nodes[h.idx];
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
		tw_node *node = &w->nodes[idx];
		out[n++] = (tw_expired){ node->key, node->tick };
		r->head = node->next;
		node_release(w, idx);
	}
	if (r->head == NIL)
		r->tail = NIL;
	else
		w->nodes[r->head].prev = NIL;
	return n;
}

size_t tw_advance(tw_wheel *w, uint64_t now_ms, tw_expired *out, size_t cap)
{
	if (now_ms > w->last_now)
		w->last_now = now_ms;
	uint64_t target = tick_floor(w, w->last_now);
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
		tick = w->nodes[w->lists[READY].head].tick;
	else if (!next_slot(w, &level, &slot, &tick))
		return UINT64_MAX;
	if (tick > UINT64_MAX / w->tick_ms)
		return UINT64_MAX;
	return tick * w->tick_ms;
}

size_t tw_memory_bytes(const tw_wheel *w)
{
	return sizeof *w + (size_t)w->capacity * sizeof *w->nodes;
}
