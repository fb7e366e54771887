/*
 * Webhook subscriptions and their deliveries, as the API reads and writes
 * them (the delivery worker has its own connection and statements, in
 * webhook_worker.c). Every function is scoped: scope is the caller's
 * PostgreSQL array literal of shops (NULL: every shop); a subscription
 * outside it, or deleted, is 404 like one that does not exist. JSON
 * results are new references (json_decref); false fills err.
 */
#ifndef ARBITER_STORE_WEBHOOKS_H
#define ARBITER_STORE_WEBHOOKS_H

#include <jansson.h>
#include "arbiter/db.h"

/* The next_at of a new delivery of table t's case: at the head of its
 * (subscription, case) queue when nothing of the case is pending there,
 * else waiting (sql/020, webhook_deliveries). The replays here and the
 * worker's queueing (webhook_worker.c) both use it. */
#define WH_WAITING(t)                                                                   \
	"CASE WHEN EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.sub_id = " t ".sub_id"   \
	"  AND p.case_id = " t ".case_id AND p.state = 'pending')"                            \
	" THEN 'infinity'::timestamptz ELSE now() END"

/* shop_id NULL: every shop. types: an array literal of patterns;
 * secret_hex: the key bytes in hex. *out: the subscription. */
bool store_webhook_create(store *s, const char *id, const char *shop_id, const char *url,
			  const char *types, const char *description, const char *secret_hex,
			  const char *created_by, json_t **out, ar_err *err) AR_MUSTCHECK;
bool store_webhook_get(store *s, const char *id, const char *scope, json_t **out,
		       ar_err *err) AR_MUSTCHECK;
/* Newest first, limit of them, after the subscription named by after
 * (NULL: from the start); {"items": [...], "next": id|null}. */
bool store_webhook_list(store *s, const char *scope, int limit, const char *after,
			json_t **out, ar_err *err) AR_MUSTCHECK;
/* NULL fields are kept; enabled: "t"/"f"/NULL (re-enabling clears the
 * reason it was disabled for). A change of enabled is stored as an
 * operational event naming by, the key. */
bool store_webhook_update(store *s, const char *id, const char *scope, const char *url,
			  const char *types, const char *description, const char *enabled,
			  const char *by, json_t **out, ar_err *err) AR_MUSTCHECK;
bool store_webhook_delete(store *s, const char *id, const char *scope, ar_err *err) AR_MUSTCHECK;
/* The new key signs from now; the one it replaces for overlap_s more. */
bool store_webhook_rotate(store *s, const char *id, const char *scope, const char *secret_hex,
			  int64_t overlap_s, json_t **out, ar_err *err) AR_MUSTCHECK;
/* Deliveries newest first; state NULL for all; after: a delivery id. */
bool store_webhook_deliveries(store *s, const char *id, const char *scope, const char *state,
			      int limit, const char *after, json_t **out, ar_err *err) AR_MUSTCHECK;
/* A new delivery of delivery did's event (the same webhook-id), queued
 * behind what the case has pending. */
bool store_webhook_replay_one(store *s, const char *id, const char *scope, const char *did,
			      json_t **out, ar_err *err) AR_MUSTCHECK;
/* The same for the events first queued at or after since (an RFC 3339
 * time), at most limit of them, oldest first: {"replayed": n, "next_since"}. */
bool store_webhook_replay_since(store *s, const char *id, const char *scope, const char *since,
				int limit, json_t **out, ar_err *err) AR_MUSTCHECK;
/* The subscription's operational events (sql/025: dead letters,
 * disabling, re-enabling) newest first; after: an event id. */
bool store_webhook_ops_events(store *s, const char *id, const char *scope, int limit,
			      const char *after, json_t **out, ar_err *err) AR_MUSTCHECK;
/* Queues a webhook.ping delivery. */
bool store_webhook_ping(store *s, const char *id, const char *scope, json_t **out,
			ar_err *err) AR_MUSTCHECK;
#endif
