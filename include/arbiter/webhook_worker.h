/*
 * The webhook delivery worker: a thread of `arbiter serve` with its own
 * database connection and one libcurl multi handle. It claims due
 * deliveries (FOR UPDATE SKIP LOCKED, then a lease, so replicas share the
 * work and a replica killed mid-send loses nothing: its leases run out and
 * another sends again), at most the head of each (subscription, case)
 * queue, and sends them concurrently, signed by the Standard Webhooks
 * convention. Request threads never send: they only write rows.
 */
#ifndef ARBITER_WEBHOOK_WORKER_H
#define ARBITER_WEBHOOK_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include "arbiter/textbuf.h"

typedef struct wh_worker wh_worker;

/* Starts the thread (wh_config_load first); NULL with msg on failure. */
wh_worker *wh_worker_start(const char *conninfo, char *msg, size_t msglen);
/* Stops, gives back the leases of what is in flight, frees; accepts NULL. */
void wh_worker_stop(wh_worker *w);

/* The webhook metrics' exposition text (any thread, any time). */
void wh_metrics_render(textbuf *b);
#endif
