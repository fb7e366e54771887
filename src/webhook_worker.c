/* The webhook delivery worker thread: claim due deliveries, send them signed with libcurl, record each outcome. */
#include "arbiter/webhook_worker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "arbiter/db.h"
#include "arbiter/log.h"
#include "arbiter/redact.h"
#include "arbiter/store_webhooks.h"
#include "arbiter/webhook.h"
#include "arbiter/webhook_net.h"

#define CLAIM_BATCH 16
/* events read per subscription per expansion round; rows a subscription
 * at its limit of transfers may have pending before it stops being
 * expanded; rounds at most this often while nothing more waits */
#define EXPAND_BATCH 500
#define EXPAND_WINDOW 1000
#define EXPAND_EVERY_MS 50
#define IDLE_POLL_MS 200
#define GAUGE_EVERY_MS 5000
#define RESPONSE_MAX (64 * 1024)     /* bytes of a reply read at most */
#define PAYLOAD_MAX (1024 * 1024)    /* a payload over this is not sent */
#define ERROR_KEEP 200               /* bytes of a reply kept as last_error */
#define RETRY_AFTER_MAX 86400
#define GAUGE_SUBS 20                /* subscriptions with their own queue gauges */

/* ---- metrics ---- */

enum { OC_ACK, OC_FAIL, OC_THROTTLED, OC_GONE, OC_REFUSED, OC__COUNT };
static const char *const oc_names[OC__COUNT] = { "ack", "fail", "throttled", "gone", "refused" };
static const double lat_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define N_LAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

static struct {
	atomic_ullong attempts[OC__COUNT];
	atomic_ullong dead_total, disabled_gone, disabled_failing;
	atomic_ullong lat_bucket[N_LAT + 1];
	atomic_ullong lat_sum_us;
	pthread_mutex_t mu;          /* guards the gauges below */
	bool gauges_set;
	long long depth, dead_stored;
	double oldest_s;
	size_t n_subs;
	struct { char id[80]; long long depth; double oldest_s; } subs[GAUGE_SUBS];
} M = { .mu = PTHREAD_MUTEX_INITIALIZER };

static unsigned long long ld(atomic_ullong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void inc(atomic_ullong *c, unsigned long long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void tb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		tb_put(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void wh_metrics_render(textbuf *b)
{
	unsigned long long cum = 0;

	tb_str(b, "# HELP arbiter_webhook_attempts_total Webhook delivery attempts by outcome"
	       " (ack: 2xx; fail: other replies and transport errors; throttled: 429/502/503/504;"
	       " gone: 410; refused: an address the SSRF guard refused).\n"
	       "# TYPE arbiter_webhook_attempts_total counter\n");
	for (int i = 0; i < OC__COUNT; i++)
		tb_printf(b, "arbiter_webhook_attempts_total{outcome=\"%s\"} %llu\n", oc_names[i],
			  ld(&M.attempts[i]));
	tb_str(b, "# HELP arbiter_webhook_attempt_duration_seconds Time of a webhook delivery attempt.\n"
	       "# TYPE arbiter_webhook_attempt_duration_seconds histogram\n");
	for (size_t i = 0; i < N_LAT; i++) {
		cum += ld(&M.lat_bucket[i]);
		tb_printf(b, "arbiter_webhook_attempt_duration_seconds_bucket{le=\"%g\"} %llu\n",
			  lat_bounds[i], cum);
	}
	cum += ld(&M.lat_bucket[N_LAT]);
	tb_printf(b, "arbiter_webhook_attempt_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
	tb_printf(b, "arbiter_webhook_attempt_duration_seconds_sum %.6f\n",
		  (double)ld(&M.lat_sum_us) / 1e6);
	tb_printf(b, "arbiter_webhook_attempt_duration_seconds_count %llu\n", cum);
	tb_str(b, "# HELP arbiter_webhook_dead_letters_total Webhook deliveries given up after"
	       " the whole retry schedule (by this process).\n"
	       "# TYPE arbiter_webhook_dead_letters_total counter\n");
	tb_printf(b, "arbiter_webhook_dead_letters_total %llu\n", ld(&M.dead_total));
	tb_str(b, "# HELP arbiter_webhook_subscriptions_disabled_total Subscriptions this process"
	       " disabled, by reason (gone: a 410 reply; failing: every attempt failed for"
	       " ARBITER_WEBHOOK_DISABLE_AFTER, 5 days).\n"
	       "# TYPE arbiter_webhook_subscriptions_disabled_total counter\n");
	tb_printf(b, "arbiter_webhook_subscriptions_disabled_total{reason=\"gone\"} %llu\n",
		  ld(&M.disabled_gone));
	tb_printf(b, "arbiter_webhook_subscriptions_disabled_total{reason=\"failing\"} %llu\n",
		  ld(&M.disabled_failing));
	tb_str(b, "# HELP arbiter_webhook_queue_depth Webhook deliveries pending (all, and the"
	       " subscriptions with the most).\n# TYPE arbiter_webhook_queue_depth gauge\n");
	pthread_mutex_lock(&M.mu);
	if (M.gauges_set) {
		tb_printf(b, "arbiter_webhook_queue_depth %lld\n", M.depth);
		for (size_t i = 0; i < M.n_subs; i++)
			tb_printf(b, "arbiter_webhook_queue_depth{subscription=\"%s\"} %lld\n",
				  M.subs[i].id, M.subs[i].depth);
	}
	tb_str(b, "# HELP arbiter_webhook_oldest_pending_seconds Age of the oldest webhook delivery"
	       " not yet delivered (0 when none).\n"
	       "# TYPE arbiter_webhook_oldest_pending_seconds gauge\n");
	if (M.gauges_set) {
		tb_printf(b, "arbiter_webhook_oldest_pending_seconds %.3f\n", M.oldest_s);
		for (size_t i = 0; i < M.n_subs; i++)
			tb_printf(b, "arbiter_webhook_oldest_pending_seconds{subscription=\"%s\"} %.3f\n",
				  M.subs[i].id, M.subs[i].oldest_s);
	}
	tb_str(b, "# HELP arbiter_webhook_dead_letters Webhook deliveries stored dead (replay"
	       " them through the API).\n# TYPE arbiter_webhook_dead_letters gauge\n");
	if (M.gauges_set)
		tb_printf(b, "arbiter_webhook_dead_letters %lld\n", M.dead_stored);
	pthread_mutex_unlock(&M.mu);
}

static void observe_latency(int64_t us)
{
	double s = (double)us / 1e6;
	size_t i = 0;

	while (i < N_LAT && s > lat_bounds[i])
		i++;
	inc(&M.lat_bucket[i], 1);
	inc(&M.lat_sum_us, us > 0 ? (unsigned long long)us : 0);
}

/* ---- the worker ---- */

typedef struct xfer {
	struct xfer *next;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	int64_t id;
	int attempts;                /* before this one */
	char sub_id[80], host[256], msg_id[48], type[80], case_id[80];
	char errbuf[CURL_ERROR_SIZE];
	char reply[ERROR_KEEP + 1];
	size_t got;
	int64_t retry_after;         /* seconds; -1: none */
	const char *refused;         /* the SSRF guard's reason */
} xfer;

struct wh_worker {
	char *conninfo;
	PGconn *conn;
	CURLM *multi;
	xfer *inflight;
	int n_inflight;
	pthread_t thread;
	atomic_bool stop;
	bool warned;
	unsigned prepared;           /* bits of HOT_* prepared on conn */
	int64_t last_claim_ms, last_gauge_ms, last_full_sweep_ms, last_expand_ms;
	bool claim_now, expand_now;
	bool feed_idle;              /* the last round read no event */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool conn_ok(wh_worker *w)
{
	if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
		return true;
	if (w->conn)
		PQfinish(w->conn);
	{
		/* named apart from the pool's (later keywords win), so that
		 * pg_stat_activity tells the worker from the request pool */
		const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
		const char *vals[] = { w->conninfo, "3", "arbiter-webhooks", NULL };
		w->conn = PQconnectdbParams(keys, vals, 1);
		w->prepared = 0;
	}
	if (PQstatus(w->conn) == CONNECTION_OK) {
		w->warned = false;
		return true;
	}
	if (!w->warned)
		log_kv(LOG_WARN, "webhook worker: database connection failed", "error",
		       PQerrorMessage(w->conn), NULL);
	w->warned = true;
	return false;
}

/* r if it holds rows or a command's success; otherwise NULL, r cleared,
 * and the failure logged once per outage. */
static PGresult *checked(wh_worker *w, PGresult *r, const char *what)
{
	if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
		w->warned = false;
		return r;
	}
	if (!w->warned)
		log_kv(LOG_WARN, "webhook worker: statement failed", "statement", what,
		       "sqlstate", PQresultErrorField(r, PG_DIAG_SQLSTATE), NULL);
	w->warned = true;
	PQclear(r);
	return NULL;
}

/* Runs one statement on the worker's connection; NULL (logged once per
 * outage) when it failed. */
static PGresult *run(wh_worker *w, const char *what, const char *sql, int n,
		     const char *const *vals)
{
	if (!conn_ok(w))
		return NULL;
	return checked(w, PQexecParams(w->conn, sql, n, NULL, vals, NULL, NULL, 0), what);
}

/* The statements run once or twice per attempt: prepared once per
 * connection, so that the worker does not plan them again each time (the
 * planning of claim_sql took longer than its execution). */
enum { HOT_CLAIM, HOT_RESULT, HOT_SKIP, HOT_EXPAND };

static PGresult *run_hot(wh_worker *w, int hot, const char *what, const char *sql, int n,
			 const char *const *vals)
{
	PGresult *r;

	if (!conn_ok(w))
		return NULL;
	if (!(w->prepared & (1u << hot))) {
		r = checked(w, PQprepare(w->conn, what, sql, n, NULL), what);
		if (!r)
			return NULL;
		PQclear(r);
		w->prepared |= 1u << hot;
	}
	return checked(w, PQexecPrepared(w->conn, what, n, vals, NULL, NULL, 0), what);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = sz * n;

	if (x->got < ERROR_KEEP) {
		size_t k = len < ERROR_KEEP - x->got ? len : ERROR_KEEP - x->got;
		memcpy(x->reply + x->got, p, k);
		x->reply[x->got + k] = '\0';
	}
	x->got += len;
	/* a receiver that streams forever is cut off (the status already
	 * arrived) */
	return x->got > RESPONSE_MAX ? 0 : len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = sz * n;
	char v[128];
	int64_t s;

	if (len > 12 && len < 12 + sizeof(v) && strncasecmp(p, "retry-after:", 12) == 0) {
		size_t k = len - 12;
		memcpy(v, p + 12, k);
		v[k] = '\0';
		while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
			v[--k] = '\0';
		if (wh_retry_after_parse(v, (int64_t)time(NULL), &s))
			x->retry_after = s > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s;
	}
	return len;
}

/* The SSRF guard at connect time: the address curl is about to connect
 * to, whatever DNS said when the subscription was made. */
static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	xfer *x = ud;
	const char *why;

	(void)purpose;
	if (!wh_connect_allowed(x->host, &a->addr, &why)) {
		x->refused = why;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

static void xfer_free(xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->body);
	free(x);
}

static size_t unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = strlen(h) / 2;

	if (n > cap)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return 0;
		out[i] = (unsigned char)v;
	}
	return n;
}

/*
 * The worker's own writes commit without waiting for the WAL flush: a
 * crash may forget a lease, a "delivered" or a round of queued rows with
 * the position it moved (one transaction), and each of those only sends a
 * delivery again, with the same webhook-id. The request path's writes
 * keep synchronous_commit. Set per statement (its implicit transaction),
 * so it holds through a transaction-pooling pgbouncer as well; each
 * statement reads the CTE in its result, so that it runs.
 */
#define ASYNC_COMMIT "async AS (SELECT set_config('synchronous_commit', 'off', true) AS v),"

/* Claim columns (see claim_sql). */
enum { C_ID, C_SUB, C_TYPE, C_ATTEMPTS, C_URL, C_SECRET, C_PREV, C_SHOP, C_MSGID, C_BODY,
       C_CASE, C_NOW, C_TYPES };

/*
 * The subscriptions with pending rows, by a skip scan of
 * webhook_deliveries_sub_due_idx (one probe each, however long their
 * queues), then the first due rows of each that is enabled and not at its
 * limit ($2), oldest first: a hanging receiver's backlog is never read
 * while its transfers are in flight (sql/028).
 */
static const char claim_sql[] =
	"WITH RECURSIVE " ASYNC_COMMIT " subs(sub_id) AS ("
	"   (SELECT d.sub_id FROM webhook_deliveries d WHERE d.state = 'pending'"
	"     ORDER BY d.sub_id LIMIT 1)"
	"   UNION ALL"
	"   SELECT (SELECT d.sub_id FROM webhook_deliveries d"
	"            WHERE d.state = 'pending' AND d.sub_id > subs.sub_id"
	"            ORDER BY d.sub_id LIMIT 1)"
	"     FROM subs WHERE subs.sub_id IS NOT NULL),"
	" cand AS (SELECT h.id, h.next_at FROM subs"
	"    JOIN webhook_subscriptions s ON s.id = subs.sub_id AND s.enabled AND NOT s.deleted"
	"    CROSS JOIN LATERAL (SELECT d.id, d.next_at FROM webhook_deliveries d"
	"       WHERE d.sub_id = subs.sub_id AND d.state = 'pending' AND d.next_at <= now()"
	"         AND (d.lease_until IS NULL OR d.lease_until < now())"
	/* the head of its (subscription, case) queue only */
	"         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.sub_id = d.sub_id"
	"              AND p.case_id = d.case_id AND p.state = 'pending' AND p.id < d.id)"
	"       ORDER BY d.next_at, d.id LIMIT $1::int) h"
	"   WHERE subs.sub_id <> ALL ($2::text[])),"
	/* by primary key from an array: the generic plan the prepared
	 * statement settles on would otherwise hash-join the whole table */
	" c AS (SELECT d.id FROM webhook_deliveries d"
	"   WHERE d.id = ANY (ARRAY(SELECT id FROM cand ORDER BY next_at, id LIMIT $1::int))"
	"     AND d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())"
	"   FOR UPDATE OF d SKIP LOCKED),"
	" u AS (UPDATE webhook_deliveries d SET lease_until = now() + $3::int * interval '1 second'"
	"   FROM c WHERE d.id = c.id RETURNING d.*)"
	" SELECT u.id, u.sub_id, u.type, u.attempts, s.url, encode(s.secret, 'hex'),"
	"   CASE WHEN s.prev_secret_until > now() THEN encode(s.prev_secret, 'hex') END,"
	"   s.shop_id IS NOT NULL,"
	"   CASE WHEN u.kind = 'ping' THEN 'ping_' || coalesce(u.replay_of, u.id)"
	"        ELSE 'evt_' || u.event_id END,"
	"   CASE WHEN u.kind = 'ping' THEN json_build_object('type', u.type, 'timestamp',"
	"     arbiter_ts(u.created_at), 'data', json_build_object('subscription_id', u.sub_id))"
	"   ELSE json_build_object('type', u.type, 'timestamp', arbiter_ts(e.at), 'data',"
	"     json_build_object('event_id', 'evt_' || e.id, 'case_id', e.case_id,"
	"       'shop_id', e.shop_id, 'seq', e.seq, 'case_version', u.case_version,"
	"       'at', arbiter_ts(e.at), 'actor', json_build_object('role', e.actor_role,"
	"       'id', e.actor_id), 'action', e.action, 'from_state', e.from_state,"
	"       'to_state', e.to_state, 'data', e.data, 'policy_version', e.policy_version)) END,"
	"   u.case_id, extract(epoch FROM now())::bigint, s.event_types::text"
	"  FROM async, u JOIN webhook_subscriptions s ON s.id = u.sub_id"
	"  LEFT JOIN case_events e ON e.case_id = u.case_id AND e.seq = u.seq";

/*
 * Queues what the event log holds for each subscription after its position
 * (sql/029): up to $1 events a subscription a round, from its shop's feed
 * or the whole feed, below the oldest running transaction (a later commit
 * never lands behind a position), plus the events of the round's cases
 * that a write put later in the feed with a lower seq (pulled early,
 * recorded in webhook_pulled, skipped when the feed reaches them). Rows of
 * a (subscription, case) go in seq order; the first gets a finite next_at
 * when none of that case is pending. A subscription with every transfer
 * this worker allows it in flight ($2) is expanded only while fewer than
 * $3 of its rows are pending: a hanging receiver costs that window, never
 * a row per event. SKIP LOCKED: replicas expand different subscriptions.
 * Returns rows queued, events read and the most any subscription read
 * (at $1: more are waiting).
 */
static const char expand_sql[] =
	"WITH " ASYNC_COMMIT " s AS (SELECT s.id, s.shop_id, s.event_types, s.feed_xid, s.feed_id"
	"    FROM webhook_subscriptions s"
	"   WHERE s.enabled AND NOT s.deleted"
	"     AND (s.id <> ALL ($2::text[]) OR (SELECT count(*) FROM (SELECT 1"
	"          FROM webhook_deliveries d WHERE d.sub_id = s.id AND d.state = 'pending'"
	"          LIMIT $3::int) w) < $3::int)"
	"   FOR UPDATE OF s SKIP LOCKED),"
	" h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),"
	" r AS (SELECT s.id AS sub_id, s.event_types, x.* FROM s, h CROSS JOIN LATERAL ("
	"     (SELECT a.id, a.xid, a.case_id, a.seq, a.action FROM case_events a"
	"       WHERE s.shop_id IS NULL AND (a.xid, a.id) > (s.feed_xid, s.feed_id)"
	"         AND a.xid < h.xmin ORDER BY a.xid, a.id LIMIT $1::int)"
	"     UNION ALL"
	"     (SELECT a.id, a.xid, a.case_id, a.seq, a.action FROM case_events a"
	"       WHERE a.shop_id = s.shop_id AND (a.xid, a.id) > (s.feed_xid, s.feed_id)"
	"         AND a.xid < h.xmin ORDER BY a.xid, a.id LIMIT $1::int)) x),"
	" pos AS (SELECT DISTINCT ON (sub_id) sub_id, xid, id FROM r"
	"   ORDER BY sub_id, xid DESC, id DESC),"
	" top AS (SELECT sub_id, case_id, max(seq) AS seq FROM r GROUP BY 1, 2),"
	" early AS (SELECT t.sub_id, s.event_types, a.id, a.xid, a.case_id, a.seq, a.action"
	"    FROM top t JOIN pos p ON p.sub_id = t.sub_id JOIN s ON s.id = t.sub_id, h,"
	"         case_events a"
	"   WHERE a.case_id = t.case_id AND a.seq < t.seq AND (a.xid, a.id) > (p.xid, p.id)"
	"     AND a.xid < h.xmin AND NOT EXISTS (SELECT 1 FROM webhook_pulled w"
	"          WHERE w.sub_id = t.sub_id AND w.event_id = a.id)),"
	" passed AS (DELETE FROM webhook_pulled w USING r"
	"   WHERE w.sub_id = r.sub_id AND w.event_id = r.id),"
	" pulled AS (INSERT INTO webhook_pulled (sub_id, event_id) SELECT sub_id, id FROM early),"
	" q AS (SELECT e.*, row_number() OVER (PARTITION BY e.sub_id, e.case_id ORDER BY e.seq) AS k"
	"    FROM (SELECT r.sub_id, r.event_types, r.id, r.xid, r.case_id, r.seq, r.action FROM r"
	"           WHERE NOT EXISTS (SELECT 1 FROM webhook_pulled w"
	"                WHERE w.sub_id = r.sub_id AND w.event_id = r.id)"
	"          UNION ALL SELECT * FROM early) e"
	"   WHERE arbiter_webhook_wants(e.event_types, 'case.' || e.action)),"
	" ins AS (INSERT INTO webhook_deliveries (sub_id, event_id, case_id, seq, case_version,"
	"     type, next_at)"
	"   SELECT q.sub_id, q.id, q.case_id, q.seq, arbiter_case_version_at(q.case_id, q.xid),"
	"     'case.' || q.action,"
	"     CASE WHEN q.k = 1 THEN " WH_WAITING("q") " ELSE 'infinity'::timestamptz END"
	"     FROM q ORDER BY q.sub_id, q.case_id, q.seq RETURNING 1),"
	" mv AS (UPDATE webhook_subscriptions w SET feed_xid = pos.xid, feed_id = pos.id"
	"   FROM pos WHERE w.id = pos.sub_id)"
	" SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM r),"
	"   coalesce((SELECT max(n) FROM (SELECT count(*) AS n FROM r GROUP BY sub_id) x), 0)"
	"  FROM async";

/* Done with delivery $1 (the CTE d returned its sub_id and case_id, and
 * $2 is its new state): the next of its case moves up. The statement's
 * snapshot still sees $1 pending, hence x.id <> $1. */
#define PROMOTE_NEXT                                                                     \
	"UPDATE webhook_deliveries w SET next_at = now()"                                    \
	"  WHERE $2 <> 'pending' AND w.next_at = 'infinity' AND w.state = 'pending'"         \
	"    AND w.id = (SELECT min(x.id) FROM webhook_deliveries x, d"                      \
	"                 WHERE x.sub_id = d.sub_id AND x.case_id = d.case_id"               \
	"                   AND x.state = 'pending' AND x.id <> $1::bigint)"

/* A queued event the subscription no longer wants (its event_types were
 * narrowed since): skipped, not sent. */
static const char skip_sql[] =
	"WITH " ASYNC_COMMIT " d AS (UPDATE webhook_deliveries SET state = $2, lease_until = NULL, done_at = now(),"
	"   last_error = 'not sent: the subscription''s event_types no longer match'"
	"  WHERE id = $1::bigint AND state = 'pending' RETURNING sub_id, case_id),"
	" nx AS (" PROMOTE_NEXT ")"
	" SELECT count(*) FROM async, d";

/*
 * $1 id, $2 state, $3 ms to the next attempt, $4 status, $5 error, $6 ms
 * taken, $7 acknowledged, $8 gone (410), $9 seconds of failures that
 * disable the subscription (ARBITER_WEBHOOK_DISABLE_AFTER). The
 * subscription's row is written only when its failing streak starts or
 * ends, or it is to be disabled. A death or a disabling is stored as an
 * operational event in the same statement, so it is recorded exactly when
 * the change is.
 */
static const char result_sql[] =
	"WITH " ASYNC_COMMIT " d AS (UPDATE webhook_deliveries SET attempts = attempts + 1, state = $2,"
	"   next_at = now() + $3::bigint * interval '1 millisecond', lease_until = NULL,"
	"   last_status = $4::int, last_error = $5, last_latency_ms = $6::int,"
	"   last_attempt_at = now(), done_at = CASE WHEN $2 <> 'pending' THEN now() END"
	"  WHERE id = $1::bigint AND state = 'pending' RETURNING *),"
	" nx AS (" PROMOTE_NEXT "),"
	/* a dead letter is recorded (sql/025) by the statement that kills it */
	" x AS (INSERT INTO webhook_ops_events (sub_id, type, delivery_id, webhook_id, event_type,"
	"     case_id, attempts, last_status, detail)"
	"   SELECT d.sub_id, 'webhook.delivery.exhausted', d.id, CASE WHEN d.kind = 'ping'"
	"     THEN 'ping_' || coalesce(d.replay_of, d.id) ELSE 'evt_' || d.event_id END,"
	"     d.type, d.case_id, d.attempts, d.last_status, d.last_error FROM d WHERE d.state = 'dead'),"
	" s AS (UPDATE webhook_subscriptions s SET"
	"   failing_since = CASE WHEN $7::boolean THEN NULL ELSE coalesce(s.failing_since, now()) END,"
	"   enabled = s.enabled AND NOT $8::boolean AND NOT (NOT $7::boolean AND"
	"     coalesce(s.failing_since < now() - $9::float8 * interval '1 second', false)),"
	"   disabled_reason = CASE WHEN $8::boolean THEN 'the receiver answered 410 Gone'"
	"     WHEN NOT $7::boolean AND"
	"       coalesce(s.failing_since < now() - $9::float8 * interval '1 second', false)"
	"     THEN 'every delivery failed since ' || arbiter_ts(s.failing_since)"
	"     ELSE s.disabled_reason END,"
	"   updated_at = now()"
	"  FROM d WHERE s.id = d.sub_id AND s.enabled AND ($8::boolean"
	"     OR ($7::boolean AND s.failing_since IS NOT NULL)"
	"     OR (NOT $7::boolean AND (s.failing_since IS NULL"
	"         OR s.failing_since < now() - $9::float8 * interval '1 second')))"
	"  RETURNING s.id, s.enabled, s.disabled_reason),"
	" o AS (INSERT INTO webhook_ops_events (sub_id, type, detail)"
	"   SELECT s.id, 'webhook.subscription.disabled', s.disabled_reason FROM s"
	"    WHERE NOT s.enabled)"
	" SELECT (SELECT count(*) FROM d), coalesce((SELECT bool_or(NOT enabled) FROM s), false)"
	"  FROM async";

/* Bytes that are not printable ASCII become '?', so last_error is text. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static void record(wh_worker *w, xfer *x, CURLcode rc)
{
	const wh_config *cfg = wh_config_get();
	long status = 0;
	curl_off_t us = 0;
	char err[320], sid[24], delay_s[24], st_s[24], ms_s[24], disable_s[32];
	const char *state = "pending";
	wh_outcome oc;
	int64_t delay = 0;
	uint32_t rnd = 0;
	PGresult *r;
	int ocm;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us);
	observe_latency((int64_t)us);
	oc = wh_classify(status);
	err[0] = '\0';
	if (x->refused)
		snprintf(err, sizeof(err), "refused: the address is %s (SSRF guard)", x->refused);
	else if (status == 0)
		snprintf(err, sizeof(err), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	else if (oc != WH_ACK)
		snprintf(err, sizeof(err), "HTTP %ld: %s", status, x->reply);
	printable(err);
	ocm = x->refused ? OC_REFUSED : oc == WH_ACK ? OC_ACK : oc == WH_GONE ? OC_GONE :
	      oc == WH_THROTTLED ? OC_THROTTLED : OC_FAIL;
	inc(&M.attempts[ocm], 1);
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)x->id * 2654435761u;
	if (oc == WH_ACK) {
		state = "delivered";
	} else if (oc == WH_GONE) {
		/* kept pending: re-enabling the subscription resumes here */
		delay = 0;
	} else {
		delay = wh_retry_delay_ms(x->attempts + 1, cfg->retry_scale, rnd);
		if (delay < 0)
			state = "dead";
		else if (oc == WH_THROTTLED && x->retry_after >= 0 && x->retry_after * 1000 > delay)
			delay = x->retry_after * 1000;
	}
	snprintf(sid, sizeof(sid), "%" PRId64, x->id);
	snprintf(delay_s, sizeof(delay_s), "%" PRId64, delay < 0 ? 0 : delay);
	snprintf(st_s, sizeof(st_s), "%ld", status);
	snprintf(ms_s, sizeof(ms_s), "%lld", (long long)(us / 1000));
	snprintf(disable_s, sizeof(disable_s), "%lld", (long long)cfg->disable_after_s);
	{
		const char *vals[9] = { sid, state, delay_s, status ? st_s : NULL, err[0] ? err : NULL,
					ms_s, oc == WH_ACK ? "t" : "f", oc == WH_GONE ? "t" : "f",
					disable_s };
		r = run_hot(w, HOT_RESULT, "webhook_result", result_sql, 9, vals);
	}
	if (r && PQgetvalue(r, 0, 1)[0] == 't') {
		inc(oc == WH_GONE ? &M.disabled_gone : &M.disabled_failing, 1);
		log_kv(LOG_WARN, "webhook subscription disabled", "event", "webhook.subscription.disabled",
		       "subscription", x->sub_id, "reason",
		       oc == WH_GONE ? "the receiver answered 410 Gone" :
		       "every delivery failed for ARBITER_WEBHOOK_DISABLE_AFTER",
		       NULL);
	}
	PQclear(r);
	if (strcmp(state, "dead") == 0) {
		inc(&M.dead_total, 1);
		log_kv(LOG_WARN, "webhook delivery exhausted its retries", "event",
		       "webhook.delivery.exhausted", "subscription", x->sub_id, "delivery", sid,
		       "webhook_id", x->msg_id, "type", x->type, "case_id", x->case_id[0] ? x->case_id : NULL,
		       "last_error", err, NULL);
	}
}

/* The body for a claimed row: the shop's view for a shop's subscription. */
static char *payload(PGresult *r, int i)
{
	json_error_t jerr;
	json_t *doc = json_loads(PQgetvalue(r, i, C_BODY), 0, &jerr);
	char *out = NULL;
	ar_err err;

	if (!doc)
		return NULL;
	ar_err_init(&err);
	if (PQgetvalue(r, i, C_SHOP)[0] == 't' && json_is_object(json_object_get(doc, "data")) &&
	    json_object_get(json_object_get(doc, "data"), "seq") &&
	    !redact_event(json_object_get(doc, "data"), &err))
		goto fail;
	out = json_dumps(doc, JSON_COMPACT);
fail:
	json_decref(doc);
	return out;
}

/* type matches one of the patterns of an array literal ("{case.*,x}":
 * patterns hold no quote, comma or brace, wh_pattern_valid). */
static bool wanted(const char *types, const char *type)
{
	char pat[WH_PATTERN_MAX + 1];
	const char *p = types;

	if (*p == '{')
		p++;
	while (*p && *p != '}') {
		size_t n = strcspn(p, ",}");
		if (n <= WH_PATTERN_MAX) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (wh_type_matches(pat, type))
				return true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static bool start_one(wh_worker *w, PGresult *r, int i)
{
	unsigned char key[WH_SECRET_MAX], prev[WH_SECRET_MAX];
	size_t kn, pn = 0;
	char sig[WH_SIG_TEXT_MAX], psig[WH_SIG_TEXT_MAX], hdr[2 * WH_SIG_TEXT_MAX + 40];
	int64_t ts = strtoll(PQgetvalue(r, i, C_NOW), NULL, 10);
	CURLU *u = NULL;
	char *host = NULL;
	xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return false;
	x->id = strtoll(PQgetvalue(r, i, C_ID), NULL, 10);
	x->attempts = atoi(PQgetvalue(r, i, C_ATTEMPTS));
	x->retry_after = -1;
	snprintf(x->sub_id, sizeof(x->sub_id), "%s", PQgetvalue(r, i, C_SUB));
	snprintf(x->msg_id, sizeof(x->msg_id), "%s", PQgetvalue(r, i, C_MSGID));
	snprintf(x->type, sizeof(x->type), "%s", PQgetvalue(r, i, C_TYPE));
	snprintf(x->case_id, sizeof(x->case_id), "%s", PQgetvalue(r, i, C_CASE));
	if (strncmp(x->msg_id, "evt_", 4) == 0 && !wanted(PQgetvalue(r, i, C_TYPES), x->type)) {
		char sid[24];
		const char *vals[2] = { sid, "skipped" };
		snprintf(sid, sizeof(sid), "%" PRId64, x->id);
		PQclear(run_hot(w, HOT_SKIP, "webhook_skip", skip_sql, 2, vals));
		xfer_free(x);
		w->claim_now = true;
		return true;
	}
	u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, PQgetvalue(r, i, C_URL), 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		size_t hl = strlen(host);
		if (hl >= 2 && host[0] == '[')
			snprintf(x->host, sizeof(x->host), "%.*s", (int)(hl - 2), host + 1);
		else
			snprintf(x->host, sizeof(x->host), "%s", host);
	}
	curl_free(host);
	curl_url_cleanup(u);
	x->body = payload(r, i);
	kn = unhex(PQgetvalue(r, i, C_SECRET), key, sizeof(key));
	if (!PQgetisnull(r, i, C_PREV))
		pn = unhex(PQgetvalue(r, i, C_PREV), prev, sizeof(prev));
	if (!x->body || kn == 0 ||
	    !wh_sign(key, kn, x->msg_id, ts, x->body, strlen(x->body), sig, sizeof(sig)) ||
	    (pn && !wh_sign(prev, pn, x->msg_id, ts, x->body, strlen(x->body), psig, sizeof(psig))))
		goto fail;
	x->easy = curl_easy_init();
	if (!x->easy)
		goto fail;
	/* the current key first; during a rotation the previous one too */
	snprintf(hdr, sizeof(hdr), "webhook-signature: %s%s%s", sig, pn ? " " : "", pn ? psig : "");
	x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
	x->hdrs = curl_slist_append(x->hdrs, hdr);
	snprintf(hdr, sizeof(hdr), "webhook-id: %s", x->msg_id);
	x->hdrs = curl_slist_append(x->hdrs, hdr);
	snprintf(hdr, sizeof(hdr), "webhook-timestamp: %" PRId64, ts);
	x->hdrs = curl_slist_append(x->hdrs, hdr);
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (!x->hdrs)
		goto fail;
	if (strlen(x->body) > PAYLOAD_MAX) {
		/* not sendable, ever: recorded as a failure until it is dead */
		snprintf(x->errbuf, sizeof(x->errbuf), "payload over %d bytes", PAYLOAD_MAX);
		goto fail;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, PQgetvalue(r, i, C_URL));
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "arbiter-webhooks/" ARBITER_VERSION);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(w->multi, x->easy) != CURLM_OK)
		goto fail;
	x->next = w->inflight;
	w->inflight = x;
	w->n_inflight++;
	return true;
fail:
	if (x->easy) {
		/* recorded as a failed attempt, so that it is retried or dies */
		record(w, x, CURLE_FAILED_INIT);
	}
	xfer_free(x);
	return false;
}

/* Subscriptions with per_subscription transfers in flight, as an array
 * literal, so that a slow receiver never takes every slot. */
static void busy_subs(wh_worker *w, char *out, size_t cap)
{
	size_t o = 0;

	o += (size_t)snprintf(out, cap, "{");
	for (xfer *x = w->inflight; x; x = x->next) {
		int n = 0;
		bool seen = false;
		for (xfer *y = w->inflight; y != x; y = y->next)
			seen = seen || strcmp(y->sub_id, x->sub_id) == 0;
		if (seen)
			continue;
		for (xfer *y = x; y; y = y->next)
			n += strcmp(y->sub_id, x->sub_id) == 0;
		if (n >= wh_config_get()->per_subscription && o + strlen(x->sub_id) + 4 < cap)
			o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", o > 1 ? "," : "", x->sub_id);
	}
	snprintf(out + o, cap - o, "}");
}

static void claim(wh_worker *w)
{
	const wh_config *cfg = wh_config_get();
	int room = cfg->concurrency - w->n_inflight;
	char lim[16], lease[16], busy[4096];
	PGresult *r;

	/* at capacity: the next completion asks again (finish_done) */
	w->claim_now = false;
	if (room <= 0)
		return;
	if (room > CLAIM_BATCH)
		room = CLAIM_BATCH;
	if (room > cfg->per_subscription)
		room = cfg->per_subscription;
	snprintf(lim, sizeof(lim), "%d", room);
	snprintf(lease, sizeof(lease), "%d", cfg->lease_s);
	busy_subs(w, busy, sizeof(busy));
	{
		const char *vals[3] = { lim, busy, lease };
		r = run_hot(w, HOT_CLAIM, "webhook_claim", claim_sql, 3, vals);
	}
	w->last_claim_ms = mono_ms();
	w->claim_now = false;
	if (!r)
		return;
	for (int i = 0; i < PQntuples(r); i++)
		(void)start_one(w, r, i);
	/* a full batch: more may be due at once */
	w->claim_now = PQntuples(r) == room;
	PQclear(r);
}

/* One expansion round (expand_sql): the events after each subscription's
 * position become delivery rows. */
static void expand(wh_worker *w)
{
	char lim[16], win[16], busy[4096];
	PGresult *r;

	snprintf(lim, sizeof(lim), "%d", EXPAND_BATCH);
	snprintf(win, sizeof(win), "%d", EXPAND_WINDOW);
	busy_subs(w, busy, sizeof(busy));
	{
		const char *vals[3] = { lim, busy, win };
		r = run_hot(w, HOT_EXPAND, "webhook_expand", expand_sql, 3, vals);
	}
	w->last_expand_ms = mono_ms();
	w->expand_now = false;
	if (!r)
		return;
	if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0)
		w->claim_now = true;
	w->expand_now = strtoll(PQgetvalue(r, 0, 2), NULL, 10) >= EXPAND_BATCH;
	w->feed_idle = strtoll(PQgetvalue(r, 0, 1), NULL, 10) == 0;
	PQclear(r);
}

static void finish_done(wh_worker *w)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(w->multi, &left))) {
		xfer *x = NULL, **pp;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(w->multi, m->easy_handle);
		record(w, x, m->data.result);
		for (pp = &w->inflight; *pp; pp = &(*pp)->next) {
			if (*pp == x) {
				*pp = x->next;
				break;
			}
		}
		w->n_inflight--;
		xfer_free(x);
		/* the next event of that case may be waiting for this one */
		w->claim_now = true;
	}
}

static void gauges(wh_worker *w)
{
	/* what enabled subscriptions wait for (a disabled one's queue is
	 * paused on purpose); dead letters from the counts sql/031 keeps, one
	 * row per subscription, since the dead rows themselves are kept for good */
	PGresult *r = run(w, "webhook_gauges",
		"WITH q AS (SELECT d.sub_id, count(*) AS n, min(d.created_at) AS oldest"
		"    FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.sub_id"
		"   WHERE d.state = 'pending' AND s.enabled AND NOT s.deleted GROUP BY d.sub_id)"
		" SELECT coalesce(sum(n), 0), coalesce(extract(epoch FROM now() - min(oldest)), 0),"
		"  (SELECT coalesce(sum(n), 0) FROM webhook_dead_counts),"
		"  (SELECT json_agg(json_build_object('id', sub_id, 'n', n,"
		"      'age', extract(epoch FROM now() - oldest)) ORDER BY n DESC, sub_id)"
		"     FROM (SELECT * FROM q ORDER BY n DESC, sub_id LIMIT 20) t)"
		"  FROM q", 0, NULL);
	json_t *subs = NULL, *o;
	size_t i;

	w->last_gauge_ms = mono_ms();
	if (!r)
		return;
	if (!PQgetisnull(r, 0, 3))
		subs = json_loads(PQgetvalue(r, 0, 3), 0, NULL);
	pthread_mutex_lock(&M.mu);
	M.gauges_set = true;
	M.depth = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	M.oldest_s = strtod(PQgetvalue(r, 0, 1), NULL);
	M.dead_stored = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	M.n_subs = 0;
	json_array_foreach(subs, i, o) {
		if (M.n_subs >= GAUGE_SUBS)
			break;
		snprintf(M.subs[M.n_subs].id, sizeof(M.subs[0].id), "%s",
			 json_string_value(json_object_get(o, "id")) ?
			 json_string_value(json_object_get(o, "id")) : "");
		M.subs[M.n_subs].depth = (long long)json_integer_value(json_object_get(o, "n"));
		M.subs[M.n_subs].oldest_s = json_number_value(json_object_get(o, "age"));
		M.n_subs++;
	}
	pthread_mutex_unlock(&M.mu);
	json_decref(subs);
	PQclear(r);
}

/*
 * A waiting delivery whose turn came while the one before it was finished
 * by a statement that could not see it yet (its event's transaction had
 * not committed) is moved up here: those of the last minutes every few
 * seconds (webhook_deliveries_waiting_idx), all of them at start and every
 * FULL_SWEEP_MS.
 */
#define FULL_SWEEP_MS (10 * 60 * 1000)
static void sweep(wh_worker *w, bool full)
{
	const char *vals[1] = { full ? "t" : "f" };

	PQclear(run(w, "webhook_sweep",
		"UPDATE webhook_deliveries d SET next_at = now()"
		" WHERE d.state = 'pending' AND d.next_at = 'infinity'"
		"   AND ($1::boolean OR d.created_at > now() - interval '5 minutes')"
		"   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.sub_id = d.sub_id"
		"        AND p.case_id = d.case_id AND p.state = 'pending' AND p.id < d.id)",
		1, vals));
	if (full)
		w->last_full_sweep_ms = mono_ms();
}

static void *loop(void *arg)
{
	wh_worker *w = arg;

	while (!atomic_load(&w->stop)) {
		int64_t now = mono_ms();
		int running = 0;

		if (!conn_ok(w) && w->n_inflight == 0) {
			for (int i = 0; i < 10 && !atomic_load(&w->stop); i++)
				usleep(100 * 1000);
			continue;
		}
		/* a quiet feed is read as often as the claim polls */
		if (w->expand_now ||
		    now - w->last_expand_ms >= (w->feed_idle ? IDLE_POLL_MS : EXPAND_EVERY_MS))
			expand(w);
		if (w->claim_now || now - w->last_claim_ms >= IDLE_POLL_MS)
			claim(w);
		if (now - w->last_gauge_ms >= GAUGE_EVERY_MS) {
			sweep(w, w->last_full_sweep_ms == 0 || now - w->last_full_sweep_ms >= FULL_SWEEP_MS);
			gauges(w);
		}
		curl_multi_perform(w->multi, &running);
		finish_done(w);
		if (!w->claim_now && !w->expand_now)
			curl_multi_poll(w->multi, NULL, 0,
					w->n_inflight || !w->feed_idle ? EXPAND_EVERY_MS : IDLE_POLL_MS,
					NULL);
	}
	return NULL;
}

wh_worker *wh_worker_start(const char *conninfo, char *msg, size_t msglen)
{
	wh_worker *w = calloc(1, sizeof(*w));

	if (!w)
		goto oom;
	w->conninfo = strdup(conninfo);
	w->multi = curl_multi_init();
	if (!w->conninfo || !w->multi)
		goto oom;
	atomic_init(&w->stop, false);
	if (pthread_create(&w->thread, NULL, loop, w) != 0) {
		snprintf(msg, msglen, "cannot start the webhook worker thread");
		goto fail;
	}
	return w;
oom:
	snprintf(msg, msglen, "out of memory");
fail:
	if (w) {
		if (w->multi)
			curl_multi_cleanup(w->multi);
		free(w->conninfo);
		free(w);
	}
	return NULL;
}

void wh_worker_stop(wh_worker *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	/* what was in flight goes back now rather than when its lease ends */
	while (w->inflight) {
		xfer *x = w->inflight;
		char sid[24];
		const char *vals[1] = { sid };
		w->inflight = x->next;
		snprintf(sid, sizeof(sid), "%" PRId64, x->id);
		PQclear(run(w, "webhook_release",
			    "UPDATE webhook_deliveries SET lease_until = NULL"
			    " WHERE id = $1::bigint AND state = 'pending'", 1, vals));
		curl_multi_remove_handle(w->multi, x->easy);
		xfer_free(x);
	}
	curl_multi_cleanup(w->multi);
	if (w->conn)
		PQfinish(w->conn);
	free(w->conninfo);
	free(w);
}
