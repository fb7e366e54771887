/* The commit-ordered event feed. */
#ifndef ARBITER_STORE_FEED_H
#define ARBITER_STORE_FEED_H

#include <jansson.h>
#include "arbiter/db.h"

/* The commit-ordered event feed: events after the cursor that every reader
 * will ever see in this order (see sql/001_foundation.sql, case_events.xid).
 * Cursors name the caller's own last event (see store_feed.c): 422 naming
 * /query/after for one this caller was not handed. */
bool store_feed(store *s, const char *after, const char *shop_scope, int limit,
		json_t **items, char *next_cursor, size_t cursor_len,
		ar_err *err) AR_MUSTCHECK;
#endif
