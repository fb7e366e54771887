/* Webhook subscriptions and deliveries for the API: create, read, change, replay, ping (each one scoped statement). */
#include "arbiter/store_webhooks.h"

#include "arbiter/errmsg.h"

#include <stdio.h>
#include <string.h>

/* The API's view of a subscription: never its secrets. */
#define SUB_JSON(t)                                                                      \
	"json_build_object('id', " t ".id, 'shop_id', " t ".shop_id, 'url', " t ".url,"      \
	" 'event_types', to_json(" t ".event_types), 'description', " t ".description,"     \
	" 'enabled', " t ".enabled, 'disabled_reason', " t ".disabled_reason,"               \
	" 'previous_secret_until', CASE WHEN " t ".prev_secret_until > now()"                \
	"   THEN arbiter_ts(" t ".prev_secret_until) END,"                                    \
	" 'created_at', arbiter_ts(" t ".created_at), 'updated_at', arbiter_ts(" t ".updated_at))"

/* A subscription the caller may see: $1 id, $2 scope. */
#define SUB_VISIBLE(t) \
	" " t ".id = $1 AND NOT " t ".deleted AND ($2::text[] IS NULL OR " t ".shop_id = ANY ($2::text[]))"

#define DELIVERY_JSON(t)                                                                  \
	"json_build_object('id', " t ".id::text, 'subscription_id', " t ".sub_id,"          \
	" 'type', " t ".type, 'webhook_id', CASE WHEN " t ".kind = 'ping'"                    \
	"   THEN 'ping_' || coalesce(" t ".replay_of, " t ".id) ELSE 'evt_' || " t ".event_id END," \
	" 'case_id', " t ".case_id, 'seq', " t ".seq, 'case_version', " t ".case_version,"  \
	" 'state', " t ".state, 'attempts', " t ".attempts,"                                 \
	" 'next_attempt_at', CASE WHEN " t ".state = 'pending' AND " t ".next_at < 'infinity'"   \
	"   THEN arbiter_ts(" t ".next_at) END,"                                                \
	" 'last_status', " t ".last_status, 'last_latency_ms', " t ".last_latency_ms,"       \
	" 'last_error', " t ".last_error, 'last_attempt_at', arbiter_ts(" t ".last_attempt_at)," \
	" 'replay_of', " t ".replay_of::text,"                                              \
	" 'replayed', EXISTS (SELECT 1 FROM webhook_deliveries r"                           \
	"   WHERE r.replay_of = coalesce(" t ".replay_of, " t ".id) AND r.id > " t ".id),"   \
	" 'created_at', arbiter_ts(" t ".created_at),"                                       \
	" 'finished_at', arbiter_ts(" t ".done_at))"

/* The single JSON cell of a one-row statement; NULL with err set. A NULL
 * cell is 404 (no such subscription for this caller). */
static json_t *query_json(store *s, const char *what, const char *sql, int n,
			  const char *const *vals, ar_err *err)
{
	PGresult *r = db_query_sql(s, what, sql, n, vals, err);
	json_t *out = NULL;

	if (!r)
		return NULL;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
		ar_err_setk(err, 404, "not-found", "detail.no_subscription", NULL);
	else
		out = db_json_cell(r, 0, 0, err);
	PQclear(r);
	return out;
}

bool store_webhook_create(store *s, const char *id, const char *shop_id, const char *url,
			  const char *types, const char *description, const char *secret_hex,
			  const char *created_by, json_t **out, ar_err *err)
{
	const char *vals[7] = { id, shop_id, url, types, description, secret_hex, created_by };

	*out = query_json(s, "webhook_create",
		"WITH s AS (INSERT INTO webhook_subscriptions (id, shop_id, url, event_types,"
		"   description, secret, created_by)"
		"  VALUES ($1, $2, $3, $4::text[], $5, decode($6, 'hex'), $7) RETURNING *)"
		" SELECT " SUB_JSON("s") " FROM s", 7, vals, err);
	return *out != NULL;
}

bool store_webhook_get(store *s, const char *id, const char *scope, json_t **out, ar_err *err)
{
	const char *vals[2] = { id, scope };

	*out = query_json(s, "webhook_get",
		"SELECT " SUB_JSON("s") " FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s"),
		2, vals, err);
	return *out != NULL;
}

bool store_webhook_list(store *s, const char *scope, int limit, const char *after,
			json_t **out, ar_err *err)
{
	char lim[16];
	const char *vals[3] = { scope, lim, after };

	snprintf(lim, sizeof(lim), "%d", limit);
	/* a shop key walks its shops' rows (webhook_subscriptions_shop_idx) */
	*out = query_json(s, "webhook_list",
		"WITH a AS (SELECT created_at, id FROM webhook_subscriptions WHERE id = $3),"
		" page AS (SELECT * FROM webhook_subscriptions s"
		"   WHERE NOT s.deleted AND ($1::text[] IS NULL OR s.shop_id = ANY ($1::text[]))"
		"     AND ($3::text IS NULL OR (s.created_at, s.id) < (SELECT created_at, id FROM a))"
		"   ORDER BY s.created_at DESC, s.id DESC LIMIT $2::int + 1),"
		" n AS (SELECT *, row_number() OVER (ORDER BY created_at DESC, id DESC) AS k FROM page)"
		" SELECT json_build_object('items', coalesce((SELECT json_agg(" SUB_JSON("n")
		"   ORDER BY n.k) FROM n WHERE n.k <= $2::int), '[]'::json),"
		"  'next', (SELECT n.id FROM n WHERE n.k = $2::int AND EXISTS"
		"           (SELECT 1 FROM n m WHERE m.k > $2::int)))",
		3, vals, err);
	return *out != NULL;
}

bool store_webhook_update(store *s, const char *id, const char *scope, const char *url,
			  const char *types, const char *description, const char *enabled,
			  const char *by, json_t **out, ar_err *err)
{
	const char *vals[7] = { id, scope, url, types, description, enabled, by };

	/* o locks the row and reads whether it was enabled, so that a change
	 * of enabled is stored (webhook_ops_events) with the change */
	*out = query_json(s, "webhook_update",
		"WITH o AS (SELECT s.id, s.enabled FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s")
		"   FOR UPDATE),"
		" u AS (UPDATE webhook_subscriptions s SET url = coalesce($3, s.url),"
		"   event_types = coalesce($4::text[], s.event_types),"
		"   description = coalesce($5, s.description),"
		"   enabled = coalesce($6::boolean, s.enabled),"
		"   disabled_reason = CASE WHEN $6::boolean THEN NULL"
		"     WHEN NOT $6::boolean THEN 'disabled by a key' ELSE s.disabled_reason END,"
		"   updated_at = now()"
		"  FROM o WHERE s.id = o.id RETURNING s.*, o.enabled AS was_enabled),"
		" e AS (INSERT INTO webhook_ops_events (sub_id, type, detail)"
		"   SELECT u.id, CASE WHEN u.enabled THEN 'webhook.subscription.enabled'"
		"     ELSE 'webhook.subscription.disabled' END,"
		"     CASE WHEN u.enabled THEN 'enabled by key ' ELSE 'disabled by key ' END || $7"
		"   FROM u WHERE u.enabled <> u.was_enabled)"
		" SELECT " SUB_JSON("u") " FROM u", 7, vals, err);
	return *out != NULL;
}

bool store_webhook_delete(store *s, const char *id, const char *scope, ar_err *err)
{
	const char *vals[2] = { id, scope };
	json_t *o = query_json(s, "webhook_delete",
		"WITH u AS (UPDATE webhook_subscriptions s SET deleted = true, enabled = false,"
		"   disabled_reason = 'deleted', updated_at = now()"
		"  WHERE" SUB_VISIBLE("s") " RETURNING s.id)"
		" SELECT json_build_object('id', u.id) FROM u", 2, vals, err);

	json_decref(o);
	return o != NULL;
}

bool store_webhook_rotate(store *s, const char *id, const char *scope, const char *secret_hex,
			  int64_t overlap_s, json_t **out, ar_err *err)
{
	char ov[24];
	const char *vals[4] = { id, scope, secret_hex, ov };

	snprintf(ov, sizeof(ov), "%lld", (long long)overlap_s);
	*out = query_json(s, "webhook_rotate",
		"WITH u AS (UPDATE webhook_subscriptions s SET prev_secret = s.secret,"
		"   secret = decode($3, 'hex'), prev_secret_until = now() + $4::bigint * interval '1 second',"
		"   updated_at = now()"
		"  WHERE" SUB_VISIBLE("s") " RETURNING s.*)"
		" SELECT " SUB_JSON("u") " FROM u", 4, vals, err);
	return *out != NULL;
}

bool store_webhook_deliveries(store *s, const char *id, const char *scope, const char *state,
			      int limit, const char *after, json_t **out, ar_err *err)
{
	char lim[16];
	const char *vals[5] = { id, scope, state, lim, after };

	snprintf(lim, sizeof(lim), "%d", limit);
	/* newest first down webhook_deliveries_sub_idx, or for dead letters
	 * webhook_deliveries_dead_idx (planned with the state's value) */
	*out = query_json(s, "webhook_deliveries",
		"WITH s AS (SELECT id FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s") "),"
		" page AS (SELECT * FROM webhook_deliveries d"
		"   WHERE d.sub_id = (SELECT id FROM s) AND ($3::text IS NULL OR d.state = $3)"
		"     AND ($5::bigint IS NULL OR d.id < $5::bigint)"
		"   ORDER BY d.id DESC LIMIT $4::int + 1),"
		" n AS (SELECT *, row_number() OVER (ORDER BY id DESC) AS k FROM page)"
		" SELECT CASE WHEN EXISTS (SELECT 1 FROM s) THEN json_build_object('items',"
		"   coalesce((SELECT json_agg(" DELIVERY_JSON("n") " ORDER BY n.k) FROM n"
		"     WHERE n.k <= $4::int), '[]'::json),"
		"   'next', (SELECT n.id::text FROM n WHERE n.k = $4::int AND EXISTS"
		"            (SELECT 1 FROM n m WHERE m.k > $4::int))) END",
		5, vals, err);
	return *out != NULL;
}

bool store_webhook_replay_one(store *s, const char *id, const char *scope, const char *did,
			      json_t **out, ar_err *err)
{
	const char *vals[3] = { id, scope, did };

	*out = query_json(s, "webhook_replay",
		"WITH s AS (SELECT id FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s") "),"
		" i AS (INSERT INTO webhook_deliveries (sub_id, kind, event_id, case_id, seq,"
		"     case_version, type, replay_of, next_at)"
		"   SELECT d.sub_id, d.kind, d.event_id, d.case_id, d.seq, d.case_version, d.type,"
		"          coalesce(d.replay_of, d.id), " WH_WAITING("d") ""
		"     FROM webhook_deliveries d JOIN s ON s.id = d.sub_id WHERE d.id = $3::bigint"
		"   RETURNING *)"
		" SELECT " DELIVERY_JSON("i") " FROM i", 3, vals, err);
	if (!*out && err->status == 404)
		ar_err_setk(err, 404, "not-found", "detail.no_delivery", NULL);
	return *out != NULL;
}

bool store_webhook_replay_since(store *s, const char *id, const char *scope, const char *since,
				int limit, json_t **out, ar_err *err)
{
	char lim[16];
	const char *vals[4] = { id, scope, since, lim };

	snprintf(lim, sizeof(lim), "%d", limit);
	/* the originals only (a replay of them would send twice), oldest
	 * first, so that each case's events are queued in their order */
	*out = query_json(s, "webhook_replay_since",
		"WITH s AS (SELECT id FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s") "),"
		" pick AS (SELECT d.* FROM webhook_deliveries d"
		"   WHERE d.sub_id = (SELECT id FROM s) AND d.created_at >= $3::timestamptz"
		"     AND d.replay_of IS NULL AND d.kind = 'event'"
		"   ORDER BY d.created_at, d.id LIMIT $4::int + 1),"
		" n AS (SELECT *, row_number() OVER (ORDER BY created_at, id) AS k,"
		"   row_number() OVER (PARTITION BY case_id ORDER BY created_at, id) = 1 AS first"
		"   FROM pick),"
		" i AS (INSERT INTO webhook_deliveries (sub_id, kind, event_id, case_id, seq,"
		"     case_version, type, replay_of, next_at)"
		"   SELECT n.sub_id, n.kind, n.event_id, n.case_id, n.seq, n.case_version, n.type, n.id,"
		"          CASE WHEN n.first THEN " WH_WAITING("n") " ELSE 'infinity'::timestamptz END"
		"     FROM n WHERE n.k <= $4::int ORDER BY n.k RETURNING 1)"
		" SELECT CASE WHEN EXISTS (SELECT 1 FROM s) THEN json_build_object("
		"   'replayed', (SELECT count(*) FROM i),"
		"   'next_since', (SELECT arbiter_ts(n.created_at) FROM n WHERE n.k = $4::int + 1)) END",
		4, vals, err);
	return *out != NULL;
}

bool store_webhook_ping(store *s, const char *id, const char *scope, json_t **out, ar_err *err)
{
	const char *vals[2] = { id, scope };

	*out = query_json(s, "webhook_ping",
		"WITH s AS (SELECT id FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s") "),"
		" i AS (INSERT INTO webhook_deliveries (sub_id, kind, type)"
		"   SELECT s.id, 'ping', 'webhook.ping' FROM s RETURNING *)"
		" SELECT " DELIVERY_JSON("i") " FROM i", 2, vals, err);
	return *out != NULL;
}

#define OPS_EVENT_JSON(t)                                                                \
	"json_build_object('id', " t ".id::text, 'subscription_id', " t ".sub_id,"          \
	" 'type', " t ".type, 'at', arbiter_ts(" t ".created_at),"                           \
	" 'delivery_id', " t ".delivery_id::text, 'webhook_id', " t ".webhook_id,"          \
	" 'event_type', " t ".event_type, 'case_id', " t ".case_id,"                         \
	" 'attempts', " t ".attempts, 'last_status', " t ".last_status,"                     \
	" 'detail', " t ".detail)"

bool store_webhook_ops_events(store *s, const char *id, const char *scope, int limit,
			      const char *after, json_t **out, ar_err *err)
{
	char lim[16];
	const char *vals[4] = { id, scope, lim, after };

	snprintf(lim, sizeof(lim), "%d", limit);
	/* newest first down webhook_ops_events_sub_idx */
	*out = query_json(s, "webhook_ops_events",
		"WITH s AS (SELECT id FROM webhook_subscriptions s WHERE" SUB_VISIBLE("s") "),"
		" page AS (SELECT * FROM webhook_ops_events o"
		"   WHERE o.sub_id = (SELECT id FROM s) AND ($4::bigint IS NULL OR o.id < $4::bigint)"
		"   ORDER BY o.id DESC LIMIT $3::int + 1),"
		" n AS (SELECT *, row_number() OVER (ORDER BY id DESC) AS k FROM page)"
		" SELECT CASE WHEN EXISTS (SELECT 1 FROM s) THEN json_build_object('items',"
		"   coalesce((SELECT json_agg(" OPS_EVENT_JSON("n") " ORDER BY n.k) FROM n"
		"     WHERE n.k <= $3::int), '[]'::json),"
		"   'next', (SELECT n.id::text FROM n WHERE n.k = $3::int AND EXISTS"
		"            (SELECT 1 FROM n m WHERE m.k > $3::int))) END",
		4, vals, err);
	return *out != NULL;
}
