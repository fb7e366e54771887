/*
 * A per-thread bump arena for jansson's allocations, for loops that parse
 * and drop one small document after another (a backtest's open events):
 * while a thread's arena is in use (json_arena_use) its jansson values
 * come from the arena, freeing them costs nothing, and the next use takes
 * the whole arena back at once. Outside, and for what does not fit,
 * jansson uses malloc and free as usual.
 *
 * json_arena_install must run before any thread but main exists (main
 * does it first). A value made in the arena must be dropped before its use
 * ends, and never handed to another thread.
 */
#ifndef ARBITER_JSONARENA_H
#define ARBITER_JSONARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "arbiter/model.h"

void json_arena_install(void);
/* This thread's arena of `bytes`, not in use yet; false when out of
 * memory (jansson then keeps using malloc). */
bool json_arena_begin(size_t bytes) AR_MUSTCHECK;
/* on: jansson allocates from the arena, from its start (every value made
 * in it before is dead); off: from malloc again. No-op without an arena. */
void json_arena_use(bool on);
/* Frees this thread's arena; accepts none. */
void json_arena_end(void);

#endif
