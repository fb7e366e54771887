/*
 * Where a read may go when a replica serves reads: read-your-writes per API
 * key. A key that wrote (any request but GET or HEAD) in the last window_ms
 * reads from the primary; other reads may use the replica.
 *
 * The table is a fixed array of slots indexed by a hash of the key id,
 * each holding the latest write time of the keys that hash there. Two keys
 * sharing a slot only send each other's reads to the primary more often,
 * never to a replica too early. Thread-safe without a lock (atomics).
 */
#ifndef ARBITER_READROUTE_H
#define ARBITER_READROUTE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct readroute readroute;

/* NULL on OOM; readroute_free frees it (NULL is fine). */
readroute *readroute_new(int64_t window_ms);
void readroute_free(readroute *rr);
/* caller: the key id that wrote; now_ms: a monotonic clock. */
void readroute_wrote(readroute *rr, const char *caller, int64_t now_ms);
/* True when caller's reads may go to the replica at now_ms. */
bool readroute_replica_ok(const readroute *rr, const char *caller, int64_t now_ms);
#endif
