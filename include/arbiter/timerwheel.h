/*
 * Hierarchical timing wheel (Varghese & Lauck; the hierarchy and the
 * "place by the highest differing digit" rule of the Linux timer wheel).
 * A pure data structure: no clock (the caller passes "now" in milliseconds),
 * no threads, no I/O, no logging, no allocation in tw_advance. Not
 * thread-safe: the caller serialises every call on one wheel.
 *
 * Ownership: tw_create returns a wheel owned by the caller, released with
 * tw_free (which also releases every pending timer; keys are plain integers
 * and nothing they might name is touched). Output buffers of tw_advance are
 * the caller's.
 *
 * Time model. T = tick_ms. Every timer gets an effective tick E when it is
 * inserted:
 *   - due_ms >  last_now:  E = ceil(due_ms / T)
 *   - due_ms <= last_now:  E = floor(last_now / T)   ("already due")
 * where last_now is the largest now_ms passed to tw_create/tw_advance so far
 * (a smaller now_ms is treated as last_now: time never goes back).
 * tw_advance(now_ms) expires every timer with E <= floor(now_ms / T), so a
 * timer never fires before its due_ms, fires at most one tick after it, and
 * a timer inserted with due_ms <= last_now fires at the very next
 * tw_advance whatever its now_ms.
 *
 * Expiry order is total and deterministic: by E ascending, and among equal
 * E by insertion order (FIFO), also across cascades and across calls that
 * stop early because the output buffer is full. Timers of one tick whose
 * due_ms differ are therefore NOT sorted by due_ms: resolution is one tick.
 *
 * Cost: insert and cancel O(1); advance O(levels) per non-empty slot met
 * plus O(1) per timer expired or cascaded (each timer cascades at most
 * once per level: at most 7 times, twice for a 5-day deadline at 100 ms);
 * empty stretches of time, however long, are skipped through occupancy
 * bitmaps. 8 levels of 256 slots cover the whole 64-bit tick range, so no
 * deadline is ever clamped. Memory: one 32-byte node per timer of capacity
 * (capacity rounded up to a multiple of 8; kept as two 16-byte halves, see
 * timerwheel.c) plus a fixed ~42 KB of list heads, runs and bitmaps;
 * tw_memory_bytes reports the exact figure.
 */
#ifndef ARBITER_TIMERWHEEL_H
#define ARBITER_TIMERWHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arbiter/model.h"

#define TW_DEFAULT_TICK_MS 100u

typedef struct tw_wheel tw_wheel;

/*
 * Names one insertion. idx is the node's index in the pool (past the lists'
 * own entries, so never 0), gen its generation at insertion; once the timer fires
 * or is cancelled the node no longer answers to the handle, and the node's
 * next timer gets the next generation, so the handle stays stale and
 * tw_cancel refuses it. A zero-initialised handle is never issued, so it
 * can serve as "no timer". Generations are 32
 * bits: a handle kept across 2^32 reuses of the same node could alias a
 * newer timer.
 */
typedef struct {
	uint32_t idx;
	uint32_t gen;
} tw_handle;

typedef struct {
	uint64_t key;      /* as given to tw_insert */
	uint64_t tick;     /* effective tick E; E * tick_ms is when it became due */
} tw_expired;

/*
 * capacity: timers preallocated, rounded up to a multiple of 8 (the pool
 * doubles on demand when full).
 * tick_ms: resolution; 0 selects TW_DEFAULT_TICK_MS. now_ms: the current
 * time, the start of the wheel. Returns NULL when allocation fails.
 */
tw_wheel *tw_create(uint32_t capacity, uint64_t tick_ms, uint64_t now_ms);
void tw_free(tw_wheel *w);

/* Grows the pool so that `capacity` timers fit without further allocation. */
bool tw_reserve(tw_wheel *w, uint32_t capacity) AR_MUSTCHECK;

/*
 * Arms a timer. key is returned verbatim on expiry. out may be NULL when
 * the caller will never cancel. False only when the pool is full and cannot
 * grow (allocation failure or nearly 2^32 timers pending); nothing changed then.
 */
bool tw_insert(tw_wheel *w, uint64_t due_ms, uint64_t key, tw_handle *out) AR_MUSTCHECK;

/* Disarms a pending timer. False when h is stale: already fired, already
 * cancelled, or never issued. */
bool tw_cancel(tw_wheel *w, tw_handle h) AR_MUSTCHECK;

/*
 * Moves time to now_ms and writes up to cap expired timers into out, in the
 * order defined above. Returns how many were written; when that equals cap
 * more may be waiting: call again (with the same or a later now_ms) until
 * it returns less than cap. The handles of returned timers are stale.
 */
size_t tw_advance(tw_wheel *w, uint64_t now_ms, tw_expired *out, size_t cap);

/* Timers armed and not yet returned by tw_advance nor cancelled. */
size_t tw_pending(const tw_wheel *w);

/*
 * A lower bound on the time (ms) at which the next tw_advance can return
 * something: the caller may sleep until then. It is exact when the earliest
 * timer is within the current 256 ticks and otherwise the moment a coarser
 * slot must be split (advance then, and ask again). Returns a time
 * <= last_now when something is already due, UINT64_MAX when nothing is
 * pending.
 */
uint64_t tw_next_due_hint(const tw_wheel *w);

/* Bytes held by the wheel: the struct plus the node pool at its capacity. */
size_t tw_memory_bytes(const tw_wheel *w);

#endif
