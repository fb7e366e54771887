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

/* A queue's condition on an open case c; the stats count the same cases
 * from gauges (sql/027 states each one's definition). */
#define Q_MANUAL_REVIEW "c.manual_review"
#define Q_MAJOR_COMPLAINTS "c.kind = 'complaint' AND c.decision->>'severity' = 'major'"
#define Q_IN_ARBITRATION "c.state = 'in_arbitration'"
#define Q_OPEN_CASES \
	" FROM cases c LEFT JOIN LATERAL (SELECT min(d.due_at) AS due_at FROM case_deadlines d" \
	"                              WHERE d.case_id = c.id AND d.paused_at IS NULL) nd ON true" \
	" WHERE c.state NOT IN ('refunded', 'closed')"

/*
 * The window's figures, from the counters the writes maintain (sql/026):
 * the summary rows of the window's UTC days and the scope's shops (''
 * holds all shops, for a key without a scope), plus the deltas not yet
 * folded into them. Its cost grows with days x shops x buckets, never
 * with cases. The window is widened to whole UTC days (the reply says
 * which); the hourly trend keeps the hours up to `to`. $1 from, $2 to,
 * $3 shop filter, $4 the key's scope.
 */
static const char stats_sql[] =
	"WITH win AS (SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date AS d0,"
	"       (($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1 AS d1,"
	"       ((date_trunc('hour', $2::timestamptz) - interval '23 hours') AT TIME ZONE 'UTC')::date AS hd0,"
	"       (date_trunc('hour', $2::timestamptz) AT TIME ZONE 'UTC')::date AS hd1),"
	" sc AS (SELECT $3::text AS shop WHERE $3::text IS NOT NULL"
	"          AND ($4::text[] IS NULL OR $3::text = ANY ($4::text[]))"
	"        UNION SELECT unnest($4::text[]) WHERE $3::text IS NULL AND $4::text[] IS NOT NULL"
	"        UNION SELECT '' WHERE $3::text IS NULL AND $4::text[] IS NULL),"
	/* the deltas not folded yet: a few seconds of writes, read once; they
	 * are each shop's ('' is written by the fold) */
	" dl AS (SELECT k.metric, k.day, k.label, k.n, k.cents FROM sc, stats_delta k"
	"         WHERE k.shop_id = sc.shop OR sc.shop = ''),"
	" w AS (SELECT x.metric, x.label, sum(x.n)::bigint AS n, sum(x.cents)::bigint AS cents FROM ("
	"         SELECT k.metric, k.label, k.n, k.cents FROM sc, win, stats_counts k"
	"          WHERE k.shop_id = sc.shop AND k.metric IN ('case', 'resol', 'first', 'auto', 'breach')"
	"            AND k.day >= win.d0 AND k.day < win.d1"
	"         UNION ALL"
	"         SELECT k.metric, k.label, k.n, k.cents FROM sc, win, stats_counts k"
	"          WHERE k.shop_id = sc.shop AND k.metric = 'open_h'"
	"            AND k.day >= greatest(win.d0, win.hd0) AND k.day < win.d1"
	/* refunds by the day they happened, of the cases the window opened */
	"         UNION ALL"
	"         SELECT k.metric, split_part(k.label, '|', 1), k.n, k.cents FROM sc, win, stats_counts k"
	"          WHERE k.shop_id = sc.shop AND k.metric = 'refund_h'"
	"            AND k.day >= win.hd0 AND k.day <= win.hd1"
	"            AND split_part(k.label, '|', 2)::date >= win.d0"
	"            AND split_part(k.label, '|', 2)::date < win.d1"
	"         UNION ALL"
	"         SELECT k.metric, CASE WHEN k.metric = 'refund_h' THEN split_part(k.label, '|', 1)"
	"                ELSE k.label END, k.n, k.cents FROM win, dl k"
	"          WHERE k.metric <> 'sku' AND CASE WHEN k.metric = 'refund_h'"
	"            THEN split_part(k.label, '|', 2)::date >= win.d0"
	"             AND split_part(k.label, '|', 2)::date < win.d1"
	"            ELSE k.day >= win.d0 AND k.day < win.d1 END) x"
	"        GROUP BY 1, 2 HAVING sum(x.n) <> 0),"
	/* the most frequent quality SKUs: candidates from each day's 20 most
	 * frequent, the window's count of the 30 likeliest */
	" dsku AS (SELECT k.label, k.n FROM win, dl k"
	"           WHERE k.metric = 'sku' AND k.day >= win.d0 AND k.day < win.d1),"
	" cand AS (SELECT t.label, t.n FROM sc, win,"
	"            generate_series(win.d0::timestamp, win.d1::timestamp - interval '1 day',"
	"                            interval '1 day') g(day),"
	"            LATERAL (SELECT k.label, k.n FROM stats_counts k"
	"                      WHERE k.metric = 'sku' AND k.shop_id = sc.shop AND k.day = g.day::date"
	"                      ORDER BY k.n DESC LIMIT 20) t"
	"          UNION ALL SELECT label, n FROM dsku),"
	" pick AS (SELECT label FROM cand GROUP BY label ORDER BY sum(n) DESC, label LIMIT 30),"
	" skus AS (SELECT label, sum(n)::bigint AS n FROM ("
	"            SELECT p.label, t.n FROM pick p, sc, win,"
	"              LATERAL (SELECT k.n FROM stats_counts k"
	"                        WHERE k.metric = 'sku' AND k.shop_id = sc.shop AND k.label = p.label"
	"                          AND k.day >= win.d0 AND k.day < win.d1 OFFSET 0) t"
	"            UNION ALL SELECT label, n FROM dsku WHERE label IN (SELECT label FROM pick)) x"
	"           GROUP BY label HAVING sum(n) > 0),"
	" cs AS (SELECT split_part(label, '|', 1) AS kind, split_part(label, '|', 2) AS state,"
	"        nullif(split_part(label, '|', 3), '') AS outcome, n FROM w WHERE metric = 'case'),"
	" hist AS (SELECT metric, array_agg(label::int ORDER BY label::int) AS b,"
	"        array_agg(n ORDER BY label::int) AS n, sum(n) AS total FROM w"
	"        WHERE metric IN ('first', 'resol') GROUP BY metric),"
	" hours AS (SELECT h FROM generate_series(date_trunc('hour', $2::timestamptz)"
	"       - interval '23 hours', date_trunc('hour', $2::timestamptz), interval '1 hour') h),"
	" hourly AS (SELECT json_agg(json_build_object('hour', arbiter_ts(hours.h),"
	"       'opened', coalesce(o.n, 0), 'refunds', coalesce(r.n, 0)) ORDER BY hours.h) AS j"
	"       FROM hours LEFT JOIN w o ON o.metric = 'open_h' AND o.label = arbiter_stats_hour(hours.h)"
	"       LEFT JOIN w r ON r.metric = 'refund_h' AND r.label = arbiter_stats_hour(hours.h))"
	" SELECT json_build_object("
	"  'from', arbiter_ts((SELECT d0 FROM win)::timestamp AT TIME ZONE 'UTC'),"
	"  'to', arbiter_ts((SELECT d1 FROM win)::timestamp AT TIME ZONE 'UTC'),"
	"  'shop_id', $3::text,"
	"  'cases', json_build_object('total', (SELECT coalesce(sum(n), 0) FROM cs),"
	"     'by_kind', coalesce((SELECT json_object_agg(kind, n) FROM"
	"        (SELECT kind, sum(n) AS n FROM cs GROUP BY kind HAVING sum(n) > 0) x), '{}'::json),"
	"     'by_state', coalesce((SELECT json_object_agg(state, n) FROM"
	"        (SELECT state, sum(n) AS n FROM cs GROUP BY state HAVING sum(n) > 0) x), '{}'::json),"
	"     'by_outcome', coalesce((SELECT json_object_agg(outcome, n) FROM"
	"        (SELECT outcome, sum(n) AS n FROM cs WHERE outcome IS NOT NULL"
	"          GROUP BY outcome HAVING sum(n) > 0) x), '{}'::json)),"
	"  'first_seller_response_seconds', (SELECT json_build_object('n', coalesce(max(total), 0),"
	"     'median', arbiter_stats_pct(max(b), max(n), 0.5::float8),"
	"     'p90', arbiter_stats_pct(max(b), max(n), 0.9::float8)) FROM hist WHERE metric = 'first'),"
	"  'resolution_seconds', (SELECT json_build_object('n', coalesce(max(total), 0),"
	"     'median', arbiter_stats_pct(max(b), max(n), 0.5::float8),"
	"     'p90', arbiter_stats_pct(max(b), max(n), 0.9::float8)) FROM hist WHERE metric = 'resol'),"
	"  'auto_refunds', (SELECT json_build_object('count', coalesce(sum(n), 0),"
	"     'cents', coalesce(sum(cents), 0)) FROM w WHERE metric = 'auto'),"
	"  'sla_breaches', (SELECT coalesce(sum(n), 0) FROM w WHERE metric = 'breach'),"
	"  'top_quality_skus', coalesce((SELECT json_agg(json_build_object('sku', label, 'cases', n)"
	"     ORDER BY n DESC, label) FROM (SELECT label, n FROM skus"
	"     ORDER BY n DESC, label LIMIT 10) t), '[]'::json),"
	"  'hourly', (SELECT j FROM hourly))";

/* the hour of the near-deadline bound, now() + 24 h (UTC), and its bucket */
#define NEAR_TRUNC "date_trunc('hour', now() + interval '24 hours', 'UTC')"
#define NEAR_HOUR "arbiter_stats_hour(date_trunc('hour', now() + interval '24 hours', 'UTC'))"

/*
 * What is open now, whenever it was opened: each queue's size and the
 * deadlines due within a day, from the gauges the writes maintain
 * (sql/027), for the scope's shops ('' holds all shops) plus the deltas
 * not yet folded. near_deadline and overdue: the cases whose next unpaused
 * deadline falls in a full UTC hour before the bound's hour, from the
 * hour buckets, plus an exact count over the bound's own partial hour
 * (case_deadlines_due_idx: at most an hour of deadlines, each checked to
 * be its case's next one). Its cost grows with shops x hour buckets, never
 * with cases. open_near_deadline is queues.near_deadline. $1 shop filter,
 * $2 the key's scope.
 */
static const char stats_open_sql[] =
	"WITH sc AS (SELECT $1::text AS shop WHERE $1::text IS NOT NULL"
	"          AND ($2::text[] IS NULL OR $1::text = ANY ($2::text[]))"
	"        UNION SELECT unnest($2::text[]) WHERE $1::text IS NULL AND $2::text[] IS NOT NULL"
	"        UNION SELECT '' WHERE $1::text IS NULL AND $2::text[] IS NULL),"
	" g AS (SELECT k.metric, k.label, k.n FROM sc, stats_counts k"
	"        WHERE k.shop_id = sc.shop AND k.metric = 'open_q' AND k.day = DATE '1970-01-01'"
	"       UNION ALL"
	"       SELECT k.metric, k.label, k.n FROM sc, stats_counts k"
	"        WHERE k.shop_id = sc.shop AND k.metric = 'due_h' AND k.day = DATE '1970-01-01'"
	"          AND k.label < " NEAR_HOUR
	/* the deltas not folded yet: a few seconds of writes, each shop's */
	"       UNION ALL"
	"       SELECT k.metric, k.label, k.n FROM sc, stats_delta k"
	"        WHERE (k.shop_id = sc.shop OR sc.shop = '')"
	"          AND (k.metric = 'open_q' OR (k.metric = 'due_h' AND k.label < " NEAR_HOUR "))),"
	/* the partial hours: deadlines in [hour, bound) that are their case's
	 * next unpaused one, of an open case in scope */
	" p AS (SELECT count(*) FILTER (WHERE d.due_at >= " NEAR_TRUNC ") AS near,"
	"         count(*) FILTER (WHERE d.due_at <= now()) AS due"
	"         FROM case_deadlines d JOIN cases c ON c.id = d.case_id"
	"        WHERE ((d.due_at >= " NEAR_TRUNC " AND d.due_at < now() + interval '24 hours')"
	"               OR (d.due_at >= date_trunc('hour', now(), 'UTC') AND d.due_at <= now()))"
	"          AND d.paused_at IS NULL AND c.state NOT IN ('refunded', 'closed')"
	"          AND EXISTS (SELECT 1 FROM sc WHERE sc.shop = '' OR sc.shop = c.shop_id)"
	"          AND NOT EXISTS (SELECT 1 FROM case_deadlines e"
	"               WHERE e.case_id = d.case_id AND e.paused_at IS NULL"
	"                 AND (e.due_at < d.due_at OR (e.due_at = d.due_at AND e.name < d.name)))),"
	" q AS (SELECT"
	"       ((SELECT near FROM p) + coalesce(sum(n) FILTER (WHERE metric = 'due_h'), 0))::bigint"
	"         AS near_deadline,"
	"       ((SELECT due FROM p) + coalesce(sum(n) FILTER (WHERE metric = 'due_h'"
	"         AND label < arbiter_stats_hour(date_trunc('hour', now(), 'UTC'))), 0))::bigint"
	"         AS overdue,"
	"       coalesce(sum(n) FILTER (WHERE metric = 'open_q' AND label = 'breached'), 0)::bigint"
	"         AS breached,"
	"       coalesce(sum(n) FILTER (WHERE metric = 'open_q' AND label = 'manual_review'), 0)::bigint"
	"         AS manual_review,"
	"       coalesce(sum(n) FILTER (WHERE metric = 'open_q' AND label = 'major_complaints'),"
	"         0)::bigint AS major_complaints,"
	"       coalesce(sum(n) FILTER (WHERE metric = 'open_q' AND label = 'in_arbitration'),"
	"         0)::bigint AS in_arbitration"
	"       FROM g)"
	" SELECT json_build_object('open_near_deadline', (SELECT near_deadline FROM q),"
	"  'queues', (SELECT row_to_json(q) FROM q))";

/* Adds the open cases' figures to the window's; on failure releases out. */
static bool stats_add(store *db, json_t *out, const char *const *vals, ar_err *err)
{
	json_t *open;

	if (!store_query_json(db, "stats_open", stats_open_sql, 2, vals, &open, err)) {
		json_decref(out);
		return false;
	}
	json_object_update(out, open);
	json_decref(open);
	return true;
}

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
		while (!store_query_json(db, "stats", stats_sql, 4, vals, &out, &err) ||
		       !stats_add(db, out, vals + 2, &err)) {
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
		       " WHERE d.due_at < now() + interval '24 hours' AND d.paused_at IS NULL)";
	if (strcmp(name, "overdue") == 0)
		return "c.id IN (SELECT d.case_id FROM case_deadlines d"
		       " WHERE d.due_at <= now() AND d.paused_at IS NULL)";
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
