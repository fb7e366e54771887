/* The complaints desk's read side: stats, agent queues, batch-defect flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/errmsg.h"
#include "arbiter/store_policy.h"
#include "arbiter/store_stats.h"
#include "arbiter/codec.h"

#define QUEUE_DEFAULT 100
#define QUEUE_MAX 500
#define STATS_DEFAULT_DAYS 30

/* Each queue's condition on an open case c and its next deadline nd: the
 * queue lists them, the stats count them (the same text in both). */
#define Q_NEAR_DEADLINE "nd.due_at < now() + interval '24 hours'"
#define Q_OVERDUE "nd.due_at <= now()"
/* an SLA the case missed (sla.breached: escalated, never decided silently) */
#define Q_BREACHED \
	"EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id AND e.action = 'sla.breached')"
#define Q_MANUAL_REVIEW "c.manual_review"
#define Q_MAJOR_COMPLAINTS "c.kind = 'complaint' AND c.decision->>'severity' = 'major'"
#define Q_IN_ARBITRATION "c.state = 'in_arbitration'"
#define Q_OPEN_CASES \
	" FROM cases c LEFT JOIN LATERAL (SELECT min(d.due_at) AS due_at FROM case_deadlines d" \
	"                              WHERE d.case_id = c.id AND d.paused_at IS NULL) nd ON true" \
	" WHERE c.state NOT IN ('refunded', 'closed')"

/*
 * One statement, bounded by shop and time window, every part on an index
 * (cases by shop/created_at, events by primary key, deadlines by due_at).
 * $1 from, $2 to, $3 shop filter, $4 the key's scope.
 */
static const char stats_sql[] =
	"WITH c AS (SELECT id, kind, state, outcome, sku, reason, created_at, updated_at"
	"             FROM cases"
	"            WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz"
	"              AND ($3::text IS NULL OR shop_id = $3)"
	"              AND ($4::text[] IS NULL OR shop_id = ANY ($4::text[]))),"
	" first_seller AS (SELECT extract(epoch FROM min(e.at) - c.created_at)::float8 AS s"
	"             FROM c JOIN case_events e ON e.case_id = c.id"
	"            WHERE e.seq > 1 AND e.actor_role IN ('seller', 'agent')"
	"            GROUP BY c.id, c.created_at),"
	" resolution AS (SELECT extract(epoch FROM c.updated_at - c.created_at)::float8 AS s"
	"             FROM c WHERE c.state IN ('refunded', 'closed')),"
	" auto AS (SELECT count(*) AS n, coalesce(sum((e.data->>'total_cents')::bigint), 0) AS cents"
	"             FROM c JOIN case_events e ON e.case_id = c.id"
	"            WHERE e.action = 'refund.instructed'"
	"              AND e.data->>'reason' IN ('auto_approve', 'seller_silent')),"
	" breaches AS (SELECT count(*) AS n FROM c JOIN case_events e ON e.case_id = c.id"
	"            WHERE e.action = 'sla.breached'),"
	" top AS (SELECT sku, count(*) AS n FROM c"
	"          WHERE reason IN ('quality_defect', 'not_as_described', 'safety_hazard')"
	"          GROUP BY sku ORDER BY count(*) DESC, sku LIMIT 10),"
	" near AS (SELECT count(DISTINCT d.case_id) AS n FROM case_deadlines d"
	"            JOIN cases x ON x.id = d.case_id"
	"           WHERE d.due_at < now() + interval '24 hours'"
	"             AND ($3::text IS NULL OR x.shop_id = $3)"
	"             AND ($4::text[] IS NULL OR x.shop_id = ANY ($4::text[]))),"
	/* queues are what is open now, whenever it was opened */
	" queues AS (SELECT count(*) FILTER (WHERE " Q_NEAR_DEADLINE ") AS near_deadline,"
	"       count(*) FILTER (WHERE " Q_OVERDUE ") AS overdue,"
	"       count(*) FILTER (WHERE " Q_BREACHED ") AS breached,"
	"       count(*) FILTER (WHERE " Q_MANUAL_REVIEW ") AS manual_review,"
	"       count(*) FILTER (WHERE " Q_MAJOR_COMPLAINTS ") AS major_complaints,"
	"       count(*) FILTER (WHERE " Q_IN_ARBITRATION ") AS in_arbitration"
	Q_OPEN_CASES
	"   AND ($3::text IS NULL OR c.shop_id = $3)"
	"   AND ($4::text[] IS NULL OR c.shop_id = ANY ($4::text[]))),"
	/* the window's last 24 hours, hour by hour: cases opened, refunds
	 * instructed (of the window's cases, as auto_refunds) */
	" hours AS (SELECT h FROM generate_series(date_trunc('hour', $2::timestamptz)"
	"       - interval '23 hours', date_trunc('hour', $2::timestamptz), interval '1 hour') h),"
	" opened AS (SELECT date_trunc('hour', created_at) AS h, count(*) AS n FROM c"
	"            WHERE created_at >= (SELECT min(h) FROM hours) GROUP BY 1),"
	" refunds AS (SELECT date_trunc('hour', e.at) AS h, count(*) AS n FROM c"
	"              JOIN case_events e ON e.case_id = c.id"
	"             WHERE e.action = 'refund.instructed' AND e.at >= (SELECT min(h) FROM hours)"
	"               AND e.at < $2::timestamptz GROUP BY 1),"
	" hourly AS (SELECT json_agg(json_build_object('hour', arbiter_ts(hours.h),"
	"       'opened', coalesce(o.n, 0), 'refunds', coalesce(r.n, 0)) ORDER BY hours.h) AS j"
	"       FROM hours LEFT JOIN opened o ON o.h = hours.h LEFT JOIN refunds r ON r.h = hours.h)"
	" SELECT json_build_object("
	"  'from', arbiter_ts($1::timestamptz), 'to', arbiter_ts($2::timestamptz),"
	"  'shop_id', $3::text,"
	"  'cases', json_build_object('total', (SELECT count(*) FROM c),"
	"     'by_kind', coalesce((SELECT json_object_agg(kind, n) FROM"
	"        (SELECT kind, count(*) AS n FROM c GROUP BY kind) x), '{}'::json),"
	"     'by_state', coalesce((SELECT json_object_agg(state, n) FROM"
	"        (SELECT state, count(*) AS n FROM c GROUP BY state) x), '{}'::json),"
	"     'by_outcome', coalesce((SELECT json_object_agg(outcome, n) FROM"
	"        (SELECT outcome, count(*) AS n FROM c WHERE outcome IS NOT NULL"
	"          GROUP BY outcome) x), '{}'::json)),"
	"  'first_seller_response_seconds', (SELECT json_build_object('n', count(*),"
	"     'median', percentile_cont(0.5) WITHIN GROUP (ORDER BY s),"
	"     'p90', percentile_cont(0.9) WITHIN GROUP (ORDER BY s)) FROM first_seller),"
	"  'resolution_seconds', (SELECT json_build_object('n', count(*),"
	"     'median', percentile_cont(0.5) WITHIN GROUP (ORDER BY s),"
	"     'p90', percentile_cont(0.9) WITHIN GROUP (ORDER BY s)) FROM resolution),"
	"  'auto_refunds', (SELECT json_build_object('count', n, 'cents', cents) FROM auto),"
	"  'sla_breaches', (SELECT n FROM breaches),"
	"  'top_quality_skus', coalesce((SELECT json_agg(json_build_object('sku', sku, 'cases', n)"
	"     ORDER BY n DESC, sku) FROM top), '[]'::json),"
	"  'open_near_deadline', (SELECT n FROM near),"
	"  'queues', (SELECT row_to_json(queues) FROM queues),"
	"  'hourly', (SELECT j FROM hourly))";

void api_stats(ar_req *r)
{
	const ar_identity *who = req_identity(r);
	const char *shop = req_query(r, "shop_id"), *v;
	ar_time from, to = app_now();
	char fs[40], ts[40];
	ar_err err;
	json_t *out;
	static const char *const params[] = { "shop_id", "from", "to", NULL };

	ar_err_init(&err);
	if (!req_query_known(r, params, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	from = to - STATS_DEFAULT_DAYS * AR_MS_PER_DAY;
	if ((v = req_query(r, "from")) && !ar_time_parse(v, &from))
		ar_err_fieldk(&err, "/query/from", "field.rfc3339", NULL);
	if ((v = req_query(r, "to")) && !ar_time_parse(v, &to))
		ar_err_fieldk(&err, "/query/to", "field.rfc3339", NULL);
	if (shop && (!*shop || !codec_utf8_len_ok(shop, AR_MAX_ID_LEN)))
		ar_err_fieldk(&err, "/query/shop_id", "field.id_chars", "max", AR_INT(AR_MAX_ID_LEN),
			      NULL);
	if (!ar_err_is_set(&err) && from >= to)
		ar_err_fieldk(&err, "/query/from", "field.before", "other", "to", NULL);
	if (ar_err_is_set(&err)) {
		req_reply_problem(r, &err);
		return;
	}
	ar_time_format(from, fs, sizeof(fs));
	ar_time_format(to, ts, sizeof(ts));
	{
		const char *vals[4] = { fs, ts, shop, auth_scope(who) };
		store *db = req_read_db(r);
		while (!store_query_json(db, "stats", stats_sql, 4, vals, &out, &err)) {
			if (!req_read_fallback(r, &db, &err)) {
				req_reply_problem(r, &err);
				return;
			}
		}
	}
	req_reply_json(r, 200, out);
}

/* Each queue: which open cases, ordered by their next deadline. */
static const char *queue_filter(const char *name)
{
	/* from the deadlines' index: a filter on the joined min read every
	 * open case first (issue 21) */
	if (strcmp(name, "near_deadline") == 0)
		return "c.id IN (SELECT d.case_id FROM case_deadlines d"
		       " WHERE d.due_at < now() + interval '24 hours')";
	if (strcmp(name, "overdue") == 0)
		return "c.id IN (SELECT d.case_id FROM case_deadlines d WHERE d.due_at <= now())";
	if (strcmp(name, "breached") == 0)
		return "c.id IN (SELECT e.case_id FROM case_events e WHERE e.action = 'sla.breached')";
	if (strcmp(name, "manual_review") == 0)
		return Q_MANUAL_REVIEW;
	if (strcmp(name, "major_complaints") == 0)
		return Q_MAJOR_COMPLAINTS;
	if (strcmp(name, "in_arbitration") == 0)
		return Q_IN_ARBITRATION;
	return NULL;
}

void api_queue(ar_req *r)
{
	const char *name = req_param(r, 0), *filter = queue_filter(name), *v;
	char sql[1600], lim[16];
	long limit = QUEUE_DEFAULT;
	ar_err err;
	json_t *items;

	ar_err_init(&err);
	if (!filter) {
		ar_err_setk(&err, 404, "not-found", "detail.no_queue", "queue", name, "list",
			    "near_deadline, overdue, breached, manual_review, major_complaints,"
			    " in_arbitration", NULL);
		req_reply_problem(r, &err);
		return;
	}
	{
		static const char *const params[] = { "limit", NULL };
		if (!req_query_known(r, params, &err)) {
			req_reply_problem(r, &err);
			return;
		}
	}
	if ((v = req_query(r, "limit"))) {
		char *end;
		limit = strtol(v, &end, 10);
		if (!*v || *end || limit < 1 || limit > QUEUE_MAX) {
			ar_err_fieldk(&err, "/query/limit", "field.int_range", "min", AR_INT(1),
				      "max", AR_INT(QUEUE_MAX), NULL);
			req_reply_problem(r, &err);
			return;
		}
	}
	snprintf(lim, sizeof(lim), "%ld", limit);
	/* The filter is one of four constant strings above; values are parameters. */
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(json_agg(q.j ORDER BY q.due NULLS LAST, q.created_at), '[]'::json)"
		 "  FROM (SELECT arbiter_case_json(c, arbiter_deadlines_json(c.id))::jsonb"
		 "               || jsonb_build_object('next_due_at', arbiter_ts(nd.due_at)) AS j,"
		 "               nd.due_at AS due, c.created_at"
		 Q_OPEN_CASES " AND %s"
		 "           AND ($1::text[] IS NULL OR c.shop_id = ANY ($1::text[]))"
		 "         ORDER BY nd.due_at NULLS LAST, c.created_at LIMIT $2::int) q",
		 filter);
	{
		const char *vals[2] = { auth_scope(req_identity(r)), lim };
		store *db = req_read_db(r);
		while (!store_query_json(db, "queue", sql, 2, vals, &items, &err)) {
			if (!req_read_fallback(r, &db, &err)) {
				req_reply_problem(r, &err);
				return;
			}
		}
	}
	for (size_t i = 0; i < json_array_size(items); i++) {
		api_decorate_case(json_array_get(items, i));
		if (!api_view_case(r, json_array_get(items, i), &err)) {
			json_decref(items);
			req_reply_problem(r, &err);
			return;
		}
	}
	req_reply_json(r, 200, json_pack("{s:s,s:o}", "queue", name, "items", items));
}

void api_sku_flags(ar_req *r)
{
	static const char sql[] =
		"SELECT coalesce(json_agg(json_build_object('shop_id', shop_id, 'sku', sku,"
		"   'cases', cases, 'flagged_at', arbiter_ts(flagged_at)) ORDER BY flagged_at DESC),"
		"   '[]'::json)"
		"  FROM sku_flags WHERE cleared_at IS NULL"
		"   AND ($1::text[] IS NULL OR shop_id = ANY ($1::text[]))";
	const char *vals[1] = { auth_scope(req_identity(r)) };
	ar_err err;
	json_t *items;
	static const char *const params[] = { NULL };

	ar_err_init(&err);
	if (!req_query_known(r, params, &err) ||
	    !store_query_json(req_app(r)->db, "sku_flags", sql, 1, vals, &items, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

void api_sku_flag_clear(ar_req *r)
{
	const ar_identity *who = req_identity(r);
	const char *shop = req_param(r, 0), *sku = req_param(r, 1);
	ar_err err;

	ar_err_init(&err);
	if (!auth_sees_shop(who, shop)) {
		ar_err_setk(&err, 404, "not-found", "detail.no_batch_flag", "sku", sku, "shop", shop,
			    NULL);
		req_reply_problem(r, &err);
		return;
	}
	if (!store_sku_clear(req_app(r)->db, shop, sku, who->key_id, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	req_reply_text(r, 204, NULL, "", 0);
}
