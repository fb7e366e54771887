/* PostgreSQL access: connection pool, prepared statements, audit chain. */
#include "arbiter/store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arbiter/codec.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/migrations.h"

#define ACQUIRE_WAIT_MS 5000
#define BACKOFF_MAX_MS 2000
/* Group commit: at most this many requests' writes share a transaction, and
 * at most GC_LEADERS such transactions run at once (one executing while the
 * other waits for its WAL flush). */
#define GC_MAX_BATCH 64
#define GC_LEADERS 2

enum stmt_id {
	ST_CREATE,
	ST_FACTS,
	ST_EVENTS,
	ST_EXISTS,
	ST_APPLY,
	ST_FEED,
	ST_KEY_GET,
	ST_KEY_TOUCH,
	ST_HISTORY,
	ST_CLAIM,
	ST_EXPIRE,
	ST_GET_ROW,
	ST_BY_IDEM,
	ST__COUNT
};

static const struct {
	const char *name;
	const char *sql;
} stmts[ST__COUNT] = {
	/* One statement for a whole create, so that creates can share a group
	 * commit: the case (unless its Idempotency-Key has a live record or a
	 * case already), its deadlines, its events, the batch-defect check of
	 * its SKU (this case counted: the statement cannot see its own row),
	 * and the reply, rendered here and stored for replays. */
	[ST_CREATE] = { "case_create",
		"WITH c AS ("
		"  INSERT INTO cases (id, shop_id, buyer_id, order_id, sku, kind, reason,"
		"     state, outcome, currency, requested_cents, description, order_doc,"
		"     evidence, decision, manual_review, refund_cents, policy_version,"
		"     idem_scope, idem_key, acted_version)"
		"  SELECT $23::text, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text,"
		"     $7::text, $8::text, $9::text, $10::bigint, $11::text, $12::json, $13::json,"
		"     $14::json, $15::boolean, $16::bigint, $17::text,"
		"     CASE WHEN $22::text IS NULL THEN NULL ELSE $20::text END, $22, 1"
		"   WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys k"
		"          WHERE k.scope = $20 AND k.key = $22"
		"            AND k.created_at > now() - CASE k.state WHEN 'done' THEN interval '24 hours'"
		"                ELSE $28::int * interval '1 second' END)"
		"  ON CONFLICT (idem_scope, idem_key) WHERE idem_key IS NOT NULL DO NOTHING"
		"  RETURNING *),"
		" d AS ("
		"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version)"
		"  SELECT c.id, x.name, now() + x.after_ms * interval '1 millisecond',"
		"         x.on_expiry, 1"
		"    FROM c, json_to_recordset($18::json) AS x(name text, after_ms bigint, on_expiry text)"
		"  RETURNING *),"
		" n AS ("
		"  SELECT count(*) + 1 AS n FROM cases k"
		"   WHERE $24::boolean AND k.shop_id = $1 AND k.sku = $4"
		"     AND k.reason IN ('quality_defect', 'not_as_described', 'safety_hazard')"
		"     AND k.created_at > now() - $25::int * interval '1 day'"
		/* an agent's clear stands until new cases reach the threshold again */
		"     AND k.created_at > coalesce((SELECT max(cleared_at) FROM sku_flags"
		"           WHERE shop_id = $1 AND sku = $4), '-infinity')),"
		" f AS ("
		"  INSERT INTO sku_flags (shop_id, sku, cases)"
		"  SELECT c.shop_id, c.sku, n.n FROM c, n WHERE $24::boolean AND n.n >= $26::int"
		"  ON CONFLICT (shop_id, sku) WHERE cleared_at IS NULL DO NOTHING"
		"  RETURNING cases),"
		" e AS ("
		"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
		"     from_state, to_state, data, policy_version)"
		"  SELECT c.id, c.shop_id, x.role, x.actor, x.action, x.from_state, x.to_state,"
		"         coalesce(x.data, '{}'::jsonb), c.policy_version"
		"    FROM c, (SELECT $19::text, $20::text, r.action, r.from_state, r.to_state, r.data, r.n"
		"               FROM ROWS FROM (json_to_recordset($21::json) AS (action text,"
		"                    from_state text, to_state text, data jsonb))"
		"                    WITH ORDINALITY AS r(action, from_state, to_state, data, n)"
		"             UNION ALL"
		"             SELECT 'system', 'batch-defect', 'sku.batch_defect', $7, $7,"
		"                    jsonb_build_object('shop_id', $1::text, 'sku', $4::text,"
		"                    'cases', f.cases, 'window_days', $25::int), 1000 FROM f)"
		"          AS x(role, actor, action, from_state, to_state, data, n)"
		"   ORDER BY x.n"
		"  RETURNING seq),"
		/* the document cannot see a flag this statement sets: a SKU
		 * flagged just now is written into it */
		" j AS ("
		"  SELECT left(CASE WHEN EXISTS (SELECT 1 FROM f)"
		"     THEN (x.doc::jsonb || '{\"sku_batch_defect\": true}')::text"
		"     ELSE x.doc::text END, -1)"
		"   || ',\"allowed_actions\":' || $29::text || '}' AS body"
		"    FROM (SELECT arbiter_case_json(ROW(c.*)::cases,"
		"     (SELECT coalesce(json_agg(json_build_object('name', d.name,"
		"        'due_at', arbiter_ts(d.due_at), 'on_expiry', d.on_expiry,"
		"        'overdue', d.due_at <= statement_timestamp())"
		"        ORDER BY d.due_at, d.name), '[]'::json) FROM d)) AS doc FROM c) x),"
		" k AS ("
		"  INSERT INTO idempotency_keys (scope, key, fingerprint, state, status, response,"
		"     etag, location)"
		"  SELECT $20, $22, decode($27, 'hex'), 'done', 201, j.body, '\"1\"', '/v1/cases/' || $23"
		"    FROM j WHERE $22::text IS NOT NULL"
		"  ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
		"     state = 'done', status = 201, response = EXCLUDED.response,"
		"     etag = EXCLUDED.etag, location = EXCLUDED.location, created_at = now()"
		"  RETURNING 1)"
		" SELECT j.body, (SELECT count(*) FROM e), (SELECT count(*) FROM f),"
		"        (SELECT count(*) FROM k)"
		"  FROM j" },
	/* what an action is decided on, and no more: no deadlines, no
	 * timestamps to format, of the decision its refund and severity, of
	 * the order what it was worth */
	[ST_FACTS] = { "case_facts",
		"SELECT json_build_object('version', c.version, 'kind', c.kind, 'state', c.state,"
		"   'shop_id', c.shop_id, 'manual_review', c.manual_review,"
		"   'offer_cents', c.offer_cents, 'agreement_pending', c.agreement_pending,"
		"   'refund_cents', c.refund_cents, 'reason', c.reason,"
		"   'counter_cents', c.counter_cents, 'offer_rounds', c.offer_rounds,"
		"   'rounds_left', arbiter_rounds_left(c), 'agreement_cents', c.agreement_cents,"
		"   'decision', json_build_object('refund', c.decision->'refund',"
		"       'severity', c.decision->'severity'),"
		"   'order', json_build_object('price_cents', c.order_doc->'price_cents',"
		"       'shipping_fee_cents', c.order_doc->'shipping_fee_cents'),"
		"   'evidence', c.evidence,"
		"   'acted_version', coalesce(c.acted_version, c.version),"
		/* the deadline due now (the request applies its expiry first) */
		"   'due', (SELECT json_build_object('name', d.name, 'armed_version', d.armed_version,"
		"       'due_ms', floor(extract(epoch FROM d.due_at) * 1000)::bigint)"
		"      FROM case_deadlines d WHERE d.case_id = c.id AND d.due_at <= clock_timestamp()"
		"      ORDER BY d.due_at, d.name LIMIT 1),"
		/* the case moved on since the version the caller read ($3): the
		 * last expiry, if that is what moved it, for the caller's 409 */
		"   'passed', CASE WHEN c.version <> $3::int THEN (SELECT e.data || jsonb_build_object("
		"       'to_state', e.to_state) FROM case_events e"
		"      WHERE e.case_id = c.id AND e.actor_role = 'system' AND e.data ? 'due_at'"
		"        AND e.action <> 'deadline.approaching'"
		"      ORDER BY e.seq DESC LIMIT 1) END)"
		"  FROM cases c WHERE c.id = $1"
		"   AND ($2::text[] IS NULL OR c.shop_id = ANY ($2::text[]))" },
	[ST_EVENTS] = { "case_events",
		"SELECT coalesce(json_agg(json_build_object('seq', e.seq,"
		"   'at', arbiter_ts(e.at), 'actor', json_build_object('role', e.actor_role,"
		"   'id', e.actor_id), 'action', e.action, 'from_state', e.from_state,"
		"   'to_state', e.to_state, 'data', e.data, 'policy_version', e.policy_version,"
		"   'prev_hash', encode(e.prev_hash, 'hex'), 'hash', encode(e.hash, 'hex'))"
		"   ORDER BY e.seq), '[]'::json)"
		"  FROM case_events e WHERE e.case_id = $1" },
	[ST_EXISTS] = { "case_exists",
		"SELECT 1 FROM cases WHERE id = $1"
		"   AND ($2::text[] IS NULL OR shop_id = ANY ($2::text[]))" },
	[ST_APPLY] = { "case_apply",
		"WITH u AS ("
		"  UPDATE cases SET state = $3, outcome = $4, version = version + 1,"
		"     updated_at = now(),"
		"     offer_cents = CASE $5::text WHEN 'set' THEN $6::bigint"
		"                   WHEN 'clear' THEN NULL ELSE offer_cents END,"
		"     agreement_pending = CASE $7::text WHEN 'set' THEN true"
		"                   WHEN 'clear' THEN false ELSE agreement_pending END,"
		"     refund_cents = coalesce($8::bigint, refund_cents),"
		"     evidence = coalesce($9::json, evidence),"
		"     manual_review = manual_review OR $19::text = 'set',"
		"     counter_cents = CASE $21::text WHEN 'set' THEN $22::bigint"
		"                   WHEN 'clear' THEN NULL ELSE counter_cents END,"
		"     offer_rounds = offer_rounds + CASE WHEN $23::boolean THEN 1 ELSE 0 END,"
		"     agreement_cents = CASE $7::text WHEN 'set' THEN $24::bigint"
		"                   WHEN 'clear' THEN NULL ELSE agreement_cents END,"
		"     acted_version = CASE WHEN $16::text = 'system' THEN acted_version"
		"                     ELSE version + 1 END"
		"   WHERE id = $1 AND version = $2"
		"     AND ($10::text[] IS NULL OR shop_id = ANY ($10::text[]))"
		/* judged by the clock: no change but an expiry while a deadline of
		 * the case is due (the caller applies that expiry first) */
		"     AND ($11::text IS NOT NULL OR NOT EXISTS (SELECT 1 FROM case_deadlines d"
		"          WHERE d.case_id = $1 AND d.due_at <= clock_timestamp()))"
		"     AND ($11::text IS NULL OR EXISTS (SELECT 1 FROM case_deadlines d"
		"          WHERE d.case_id = $1 AND d.name = $11 AND d.armed_version = $12"
		"            AND d.due_at <= clock_timestamp()))"
		"  RETURNING *),"
		" del AS ("
		"  DELETE FROM case_deadlines d USING u"
		"   WHERE d.case_id = u.id"
		"     AND (($13::boolean AND d.name <> ALL ($14::text[])) OR d.name = $11)"
		"  RETURNING d.name),"
		" ins AS ("
		"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version)"
		"  SELECT u.id, x.name, now() + x.after_ms * interval '1 millisecond',"
		"         x.on_expiry, u.version"
		"    FROM u, json_to_recordset($15::json) AS x(name text, after_ms bigint, on_expiry text)"
		"   WHERE $13::boolean"
		"  ON CONFLICT (case_id, name) DO UPDATE SET due_at = EXCLUDED.due_at,"
		"     on_expiry = EXCLUDED.on_expiry, armed_version = EXCLUDED.armed_version,"
		"     reminded = false, armed_at = now()"
		"  RETURNING *),"
		" e AS ("
		"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
		"     from_state, to_state, data, policy_version)"
		"  SELECT u.id, u.shop_id, $16, $17, x.action, x.from_state, x.to_state,"
		"         arbiter_fired(x.data), u.policy_version"
		"    FROM u, ROWS FROM (json_to_recordset($18::json) AS (action text,"
		"         from_state text, to_state text, data jsonb))"
		"         WITH ORDINALITY AS x(action, from_state, to_state, data, n)"
		"   ORDER BY x.n"
		"  RETURNING seq)"
		/* $20: the case document for a reply (the scheduler needs none) */
		" SELECT CASE WHEN $20::boolean THEN"
		"   arbiter_case_json(ROW(u.*)::cases, CASE WHEN $13::boolean THEN"
		"   (SELECT coalesce(json_agg(json_build_object('name', i.name,"
		"      'due_at', arbiter_ts(i.due_at), 'on_expiry', i.on_expiry,"
		"      'overdue', i.due_at <= statement_timestamp())"
		"      ORDER BY i.due_at, i.name), '[]'::json) FROM ins i)"
		"   ELSE (SELECT coalesce(json_agg(json_build_object('name', d.name,"
		"      'due_at', arbiter_ts(d.due_at), 'on_expiry', d.on_expiry,"
		"      'overdue', d.due_at <= statement_timestamp())"
		"      ORDER BY d.due_at, d.name), '[]'::json) FROM case_deadlines d"
		"      WHERE d.case_id = u.id AND d.name IS DISTINCT FROM $11) END) END,"
		"   u.version, u.kind, u.state, u.manual_review, u.offer_cents IS NOT NULL,"
		"   u.agreement_pending, NULL::text, u.reason = 'missing_item', u.counter_cents IS NOT NULL,"
		"   arbiter_rounds_left(ROW(u.*)::cases), (SELECT count(*) FROM e), (SELECT count(*) FROM del)"
		"  FROM u" },
	[ST_FEED] = { "event_feed",
		"SELECT e.case_id, e.seq, json_build_object('cursor', '', 'case_id', e.case_id,"
		"   'shop_id', e.shop_id, 'seq', e.seq, 'at', arbiter_ts(e.at),"
		"   'actor', json_build_object('role', e.actor_role, 'id', e.actor_id),"
		"   'action', e.action, 'from_state', e.from_state, 'to_state', e.to_state,"
		"   'data', e.data, 'policy_version', e.policy_version,"
		"   'hash', encode(e.hash, 'hex'))"
		"  FROM case_events e"
		" WHERE (e.xid, e.id) > ($1::xid8, $2::bigint)"
		"   AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
		"   AND ($3::text[] IS NULL OR e.shop_id = ANY ($3::text[]))"
		" ORDER BY e.xid, e.id LIMIT $4" },
	[ST_KEY_GET] = { "key_get",
		"SELECT encode(secret_hash, 'hex'), role, coalesce(array_to_json(shops)::text, ''), senior,"
		"       revoked_at IS NOT NULL FROM api_keys WHERE id = $1" },
	[ST_KEY_TOUCH] = { "key_touch",
		"UPDATE api_keys SET last_used_at = now() WHERE id = $1"
		"   AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')" },
	/* the scheduler's read of a batch: a case another replica (or a
	 * request) holds is skipped, not waited for; its deadline comes round
	 * again */
	[ST_CLAIM] = { "case_claim",
		"SELECT c.id, c.version, c.kind, c.state, c.manual_review,"
		"       c.offer_cents IS NOT NULL AS has_offer, c.agreement_pending, c.shop_id,"
		"       c.decision, c.reason = 'missing_item' AS goods_missing, c.counter_cents,"
		"       arbiter_rounds_left(c) AS rounds_left"
		"  FROM cases c WHERE c.id = ANY ($1::text[]) FOR UPDATE SKIP LOCKED" },
	/* The scheduler's changes of a batch as one set: what ST_APPLY does
	 * for one change (the version check, the due deadline still armed at
	 * its version, deadlines replaced, events appended), for each element
	 * of $1, in one statement; returns the ids of the cases it changed. */
	[ST_EXPIRE] = { "case_expire",
		"WITH x AS ("
		"  SELECT * FROM json_to_recordset($1::json) AS x(id text, ver int, state text,"
		"     outcome text, clear_offer boolean, clear_counter boolean, refund bigint, dl text,"
		"     armed int,"
		"     replace boolean, deadlines json, events json, n int)),"
		" u AS ("
		"  UPDATE cases c SET state = x.state, outcome = x.outcome, version = c.version + 1,"
		"     updated_at = now(),"
		"     offer_cents = CASE WHEN x.clear_offer THEN NULL ELSE c.offer_cents END,"
		"     counter_cents = CASE WHEN x.clear_counter THEN NULL ELSE c.counter_cents END,"
		"     refund_cents = coalesce(x.refund, c.refund_cents)"
		"    FROM x"
		"   WHERE c.id = x.id AND c.version = x.ver"
		"     AND EXISTS (SELECT 1 FROM case_deadlines d WHERE d.case_id = x.id"
		"          AND d.name = x.dl AND d.armed_version = x.armed"
		"          AND d.due_at <= clock_timestamp())"
		"  RETURNING c.id, c.version, c.shop_id, c.policy_version, x.dl, x.replace,"
		"     x.deadlines, x.events, x.n),"
		" del AS ("
		"  DELETE FROM case_deadlines d USING u"
		"   WHERE d.case_id = u.id"
		"     AND ((u.replace AND d.name NOT IN (SELECT y.name"
		"          FROM json_to_recordset(u.deadlines) AS y(name text))) OR d.name = u.dl)"
		"  RETURNING d.case_id),"
		" ins AS ("
		"  INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version)"
		"  SELECT u.id, y.name, now() + y.after_ms * interval '1 millisecond',"
		"         y.on_expiry, u.version"
		"    FROM u, json_to_recordset(u.deadlines) AS y(name text, after_ms bigint, on_expiry text)"
		"   WHERE u.replace"
		"  ON CONFLICT (case_id, name) DO UPDATE SET due_at = EXCLUDED.due_at,"
		"     on_expiry = EXCLUDED.on_expiry, armed_version = EXCLUDED.armed_version,"
		"     reminded = false, armed_at = now()"
		"  RETURNING 1),"
		" e AS ("
		"  INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
		"     from_state, to_state, data, policy_version)"
		"  SELECT u.id, u.shop_id, $2::text, $3::text, y.action, y.from_state, y.to_state,"
		"         arbiter_fired(y.data), u.policy_version"
		"    FROM u, ROWS FROM (json_to_recordset(u.events) AS (action text,"
		"         from_state text, to_state text, data jsonb))"
		"         WITH ORDINALITY AS y(action, from_state, to_state, data, k)"
		"   ORDER BY u.n, y.k"
		"  RETURNING 1)"
		" SELECT u.id, (SELECT count(*) FROM e), (SELECT count(*) FROM del),"
		"        (SELECT count(*) FROM ins)"
		"  FROM u" },
	[ST_GET_ROW] = { "case_get_row",
		"SELECT arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
		"       c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
		"       arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
		"       arbiter_rounds_left(c)"
		"  FROM cases c WHERE c.id = $1"
		"   AND ($2::text[] IS NULL OR c.shop_id = ANY ($2::text[]))" },
	/* a create's case found by its Idempotency-Key, when its record expired */
	[ST_BY_IDEM] = { "case_by_idem",
		"SELECT arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
		"       c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
		"       arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
		"       arbiter_rounds_left(c), c.id"
		"  FROM cases c WHERE c.idem_scope = $1 AND c.idem_key = $2" },
	[ST_HISTORY] = { "buyer_history",
		"SELECT (SELECT count(*) FROM cases WHERE buyer_id = $1"
		"          AND created_at > now() - interval '7 days'),"
		"       (SELECT count(DISTINCT shop_id) FROM cases"
		"         WHERE description_hash = md5(lower(regexp_replace($3, '\\s+', ' ', 'g')))"
		"           AND shop_id <> $2 AND created_at > now() - interval '30 days'),"
		"       (SELECT count(*) FROM cases WHERE order_id = $4 AND kind = 'complaint'),"
		"       EXISTS (SELECT 1 FROM sku_flags WHERE shop_id = $2 AND sku = $5"
		"               AND cleared_at IS NULL)" },
};

struct slot {
	PGconn *conn;
	bool busy;
	bool failed;         /* the last connection attempt failed */
	uint32_t prepared;   /* bit per enum stmt_id */
};

/* One request's write waiting for a group commit; lives on its owner's
 * stack until done. res (owner PQclears) or err is its outcome. cv wakes
 * its owner alone: when the job is done, or when it is first in the queue
 * and a leader's place has come free. */
typedef struct gc_job {
	enum stmt_id id;
	int n;
	const char *const *vals;
	PGresult *res;
	ar_err *err;
	bool done;
	pthread_cond_t cv;
	struct gc_job *next;
} gc_job;

struct store {
	char *conninfo;
	int size;
	struct slot *slots;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t next_connect_ms;   /* reconnect backoff while the database is down */
	int backoff_ms;
	pthread_mutex_t gmu;       /* the group-commit queue */
	gc_job *ghead, **gtail;
	int gleaders;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool result_ok(const PGresult *r)
{
	return PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
}

/* Every round trip of the pool is timed and counted (failures as errors). */
static PGresult *db_exec(PGconn *c, const char *sql)
{
	int64_t t0 = mono_us();
	PGresult *r = PQexec(c, sql);

	metrics_db_query((double)(mono_us() - t0) / 1e6, !result_ok(r));
	return r;
}

static PGresult *db_exec_params(PGconn *c, const char *sql, int n, const char *const *vals)
{
	int64_t t0 = mono_us();
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);

	metrics_db_query((double)(mono_us() - t0) / 1e6, !result_ok(r));
	return r;
}

static void err_unavailable(ar_err *err, const char *why)
{
	ar_err_set(err, 503, "database-unavailable", "Database unavailable",
		   "the database cannot be reached right now (%s); retry later", why);
}

static void err_internal(ar_err *err)
{
	ar_err_set(err, 500, "internal", "Internal error",
		   "the request could not be completed; it has been logged");
}

store *store_open(const char *conninfo, int pool_size)
{
	store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->conninfo = strdup(conninfo);
	s->slots = calloc((size_t)pool_size, sizeof(*s->slots));
	if (!s->conninfo || !s->slots)
		goto fail;
	s->size = pool_size;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&s->cv, NULL) != 0)
		goto fail_mu;
	if (pthread_mutex_init(&s->gmu, NULL) != 0)
		goto fail_cv;
	s->gtail = &s->ghead;
	return s;
fail_cv:
	pthread_cond_destroy(&s->cv);
fail_mu:
	pthread_mutex_destroy(&s->mu);
fail:
	free(s->slots);
	free(s->conninfo);
	free(s);
	return NULL;
}

void store_close(store *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->size; i++)
		PQfinish(s->slots[i].conn);
	pthread_mutex_destroy(&s->gmu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->slots);
	free(s->conninfo);
	free(s);
}

void store_pool_stats_get(store *s, store_pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->mu);
	out->size = s->size;
	for (int i = 0; i < s->size; i++) {
		if (s->slots[i].busy)
			out->in_use++;
		else if (s->slots[i].failed)
			out->broken++;
	}
	pthread_mutex_unlock(&s->mu);
}

static PGconn *connect_db(const char *conninfo)
{
	/* a fallback: an application_name in the operator's conninfo wins */
	const char *keys[] = { "dbname", "connect_timeout", "fallback_application_name", NULL };
	const char *vals[] = { conninfo, "3", "arbiter", NULL };

	return PQconnectdbParams(keys, vals, 1);
}

/* Connects slot idx, which the caller has marked busy and which has no
 * connection; the pool's mutex is held on entry and on return. A failure
 * backs off further connects and leaves the slot free again. */
static bool slot_connect(store *s, int idx, ar_err *err)
{
	PGconn *conn;

	if (mono_ms() < s->next_connect_ms) {
		s->slots[idx].busy = false;
		pthread_cond_signal(&s->cv);
		err_unavailable(err, "reconnecting");
		return false;
	}
	pthread_mutex_unlock(&s->mu);
	conn = connect_db(s->conninfo);
	pthread_mutex_lock(&s->mu);
	if (PQstatus(conn) != CONNECTION_OK) {
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		s->next_connect_ms = mono_ms() + s->backoff_ms;
		s->slots[idx].busy = false;
		s->slots[idx].failed = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		log_kv(LOG_WARN, "database connection failed", "error",
		       PQerrorMessage(conn), NULL);
		PQfinish(conn);
		pthread_mutex_lock(&s->mu);
		err_unavailable(err, "connection failed");
		return false;
	}
	s->backoff_ms = 0;
	s->next_connect_ms = 0;
	s->slots[idx].conn = conn;
	s->slots[idx].failed = false;
	s->slots[idx].prepared = 0;
	return true;
}

/* Takes a pooled connection, connecting it if needed. Returns the slot index
 * or -1 with err set (503 when the database cannot be reached). */
static int acquire(store *s, ar_err *err)
{
	struct timespec deadline;
	int idx = -1;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ACQUIRE_WAIT_MS / 1000;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (int i = 0; i < s->size; i++) {
			if (!s->slots[i].busy && (idx < 0 || s->slots[i].conn))
				idx = i;
		}
		if (idx >= 0)
			break;
		if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&s->mu);
			err_unavailable(err, "all database connections are busy");
			return -1;
		}
	}
	s->slots[idx].busy = true;
	if (!s->slots[idx].conn && !slot_connect(s, idx, err))
		idx = -1;
	pthread_mutex_unlock(&s->mu);
	return idx;
}

static void release(store *s, int idx)
{
	struct slot *sl = &s->slots[idx];

	pthread_mutex_lock(&s->mu);
	if (sl->conn && (PQstatus(sl->conn) != CONNECTION_OK ||
			 PQtransactionStatus(sl->conn) != PQTRANS_IDLE)) {
		PQfinish(sl->conn);
		sl->conn = NULL;
	}
	sl->busy = false;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Maps a failed result to the caller's error and logs what went wrong
 * (SQLSTATE and primary message: never parameter values). */
static void result_error(PGconn *conn, const PGresult *r, const char *what, ar_err *err)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (PQstatus(conn) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0) ||
	    (state && (strcmp(state, "57P01") == 0 || strcmp(state, "57P03") == 0))) {
		log_kv(LOG_WARN, "database connection lost", "statement", what, NULL);
		err_unavailable(err, "connection lost");
		return;
	}
	if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
		      strcmp(state, "55P03") == 0)) {
		ar_err_set(err, 503, "database-busy", "Try again",
			   "the database asked to retry the transaction");
		return;
	}
	log_kv(LOG_ERROR, "database error", "statement", what, "sqlstate",
	       state ? state : "?", "error", msg ? msg : PQerrorMessage(conn), NULL);
	err_internal(err);
}

/* Runs a prepared statement, preparing it on this connection first if
 * needed. Returns the result (caller PQclear) or NULL with err set; a
 * failure whose SQLSTATE is `quiet` returns NULL with err untouched, for
 * callers that handle that one failure themselves. */
static bool ensure_prepared(store *s, int idx, enum stmt_id id, ar_err *err)
{
	struct slot *sl = &s->slots[idx];
	PGresult *r;

	if (sl->prepared & (1u << id))
		return true;
	r = PQprepare(sl->conn, stmts[id].name, stmts[id].sql, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(sl->conn, r, stmts[id].name, err);
		PQclear(r);
		return false;
	}
	PQclear(r);
	sl->prepared |= 1u << id;
	return true;
}

/* Plans a prepared statement without running it (EXPLAIN EXECUTE with
 * every parameter NULL): what a backend's first plan costs is mostly
 * loading the catalog entries of the tables, indexes and functions it
 * touches, and this loads them. Best effort: a statement it cannot plan
 * is planned by its first request instead. The text holds no outside
 * input. */
static void plan_once(PGconn *c, const char *name)
{
	PGresult *r = PQdescribePrepared(c, name);
	char sql[1024];
	size_t len;
	int n;

	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return;
	}
	n = PQnparams(r);
	PQclear(r);
	len = (size_t)snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s(", name);
	for (int i = 0; i < n; i++) {
		if (len + sizeof(",NULL)") > sizeof(sql))
			return;
		len += (size_t)sprintf(sql + len, i ? ",NULL" : "NULL");
	}
	memcpy(sql + len, ")", 2);
	PQclear(PQexec(c, sql));
}

typedef struct {
	store *s;
	int idx;
	pthread_t thread;
	bool started;
} warm_job;

/* Connects one idle slot if it is not, and prepares and plans every
 * statement not yet prepared on it (one that is has run); a slot some
 * request took meanwhile is left to it. */
static void *warm_slot(void *arg)
{
	store *s = ((warm_job *)arg)->s;
	int idx = ((warm_job *)arg)->idx;
	ar_err err;
	bool ok;

	ar_err_init(&err);
	pthread_mutex_lock(&s->mu);
	ok = !s->slots[idx].busy;
	if (ok) {
		s->slots[idx].busy = true;
		ok = s->slots[idx].conn || slot_connect(s, idx, &err);
	}
	pthread_mutex_unlock(&s->mu);
	if (!ok)
		return NULL;
	for (int id = 0; id < ST__COUNT; id++) {
		if (s->slots[idx].prepared & (1u << id))
			continue;
		if (!ensure_prepared(s, idx, (enum stmt_id)id, &err))
			break;
		plan_once(s->slots[idx].conn, stmts[id].name);
	}
	release(s, idx);
	return NULL;
}

int store_warm(store *s)
{
	warm_job *jobs = calloc((size_t)s->size, sizeof(*jobs));
	int ready = 0;

	if (!jobs)
		return 0;
	for (int i = 0; i < s->size; i++) {
		jobs[i].s = s;
		jobs[i].idx = i;
		jobs[i].started = pthread_create(&jobs[i].thread, NULL, warm_slot, &jobs[i]) == 0;
	}
	for (int i = 0; i < s->size; i++) {
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
	}
	free(jobs);
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->size; i++)
		ready += s->slots[i].conn && s->slots[i].prepared == (1u << ST__COUNT) - 1;
	pthread_mutex_unlock(&s->mu);
	return ready;
}

static PGresult *exec_stmt_quiet(store *s, int idx, enum stmt_id id, int n,
				 const char *const *vals, ar_err *err, const char *quiet)
{
	struct slot *sl = &s->slots[idx];
	PGresult *r;
	const char *state;

	if (!ensure_prepared(s, idx, id, err))
		return NULL;
	{
		int64_t t0 = mono_us();
		bool failed, expected;
		r = PQexecPrepared(sl->conn, stmts[id].name, n, vals, NULL, NULL, 0);
		failed = PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK;
		state = failed ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		expected = failed && quiet && state && strcmp(state, quiet) == 0;
		metrics_db_query((double)(mono_us() - t0) / 1e6, failed && !expected);
		if (!failed)
			return r;
		if (!expected)
			result_error(sl->conn, r, stmts[id].name, err);
	}
	PQclear(r);
	return NULL;
}

static PGresult *exec_stmt(store *s, int idx, enum stmt_id id, int n,
			   const char *const *vals, ar_err *err)
{
	return exec_stmt_quiet(s, idx, id, n, vals, err, NULL);
}

/* ---- group commit ----
 *
 * A durable write costs a commit, and on a small machine the commit (WAL
 * flush, a round trip, two context switches) costs more than the statement.
 * Concurrent requests' single-statement writes therefore share one
 * transaction: the first writer to find a free leader place takes every job
 * queued so far, sends BEGIN, their statements and COMMIT down one libpq
 * pipeline, and hands each job its own result. Nobody gets an answer before
 * the COMMIT did. Each statement is written to stand alone (its conditions
 * are in its WHERE clauses), so sharing a transaction changes no outcome;
 * when one of them fails, the transaction is rolled back and each job runs
 * again on its own, so one bad write never fails its neighbours.
 */

/* BEGIN, the jobs, COMMIT in one pipeline. true: every job has its result;
 * false: nothing is committed and no job holds a result. */
static bool pipeline_run(store *s, int idx, gc_job *batch)
{
	PGconn *c = s->slots[idx].conn;
	PGresult *r;
	bool sent, failed = false, began = false;

	if (!PQenterPipelineMode(c))
		return false;
	sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	for (gc_job *j = batch; sent && j; j = j->next)
		sent = PQsendQueryPrepared(c, stmts[j->id].name, j->n, j->vals, NULL, NULL, 0);
	sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
	       PQpipelineSync(c);
	if (!sent) {
		/* a connection that cannot send is gone; release() drops it */
		PQfinish(c);
		s->slots[idx].conn = NULL;
		return false;
	}
	/* results come in order: BEGIN, each job, COMMIT, each followed by a
	 * NULL, then the sync; after an error the rest are PIPELINE_ABORTED */
	for (gc_job *j = NULL;;) {     /* whose result comes next; NULL: BEGIN, COMMIT */
		r = PQgetResult(c);
		if (!r || PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (j && (PQresultStatus(r) == PGRES_TUPLES_OK ||
			  PQresultStatus(r) == PGRES_COMMAND_OK)) {
			j->res = r;
		} else {
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				if (!failed && PQresultStatus(r) == PGRES_FATAL_ERROR) {
					const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
					log_kv(LOG_DEBUG, "group commit rolled back", "sqlstate",
					       st ? st : "?", "statement", j ? stmts[j->id].name : "begin/commit", NULL);
				}
				failed = true;
			}
			PQclear(r);
		}
		while ((r = PQgetResult(c)) != NULL)
			PQclear(r);
		j = !began ? batch : j ? j->next : NULL;
		began = true;
	}
	if (PQstatus(c) != CONNECTION_OK || !PQexitPipelineMode(c)) {
		PQfinish(c);
		s->slots[idx].conn = NULL;
		failed = true;
	} else if (PQtransactionStatus(c) != PQTRANS_IDLE) {
		PQclear(db_exec(c, "ROLLBACK"));
		failed = true;
	}
	if (failed) {
		for (gc_job *j = batch; j; j = j->next) {
			PQclear(j->res);
			j->res = NULL;
		}
	}
	return !failed;
}

static void gc_run_batch(store *s, gc_job *batch)
{
	ar_err aerr;
	int64_t t0 = mono_us();
	int idx;
	bool ok = true;

	ar_err_init(&aerr);
	idx = acquire(s, &aerr);
	for (gc_job *j = batch; ok && j; j = j->next)
		ok = idx >= 0 && ensure_prepared(s, idx, j->id, &aerr);
	if (!ok) {
		for (gc_job *j = batch; j; j = j->next)
			*j->err = aerr;
		goto done;
	}
	if (batch->next && pipeline_run(s, idx, batch)) {
		double dt = (double)(mono_us() - t0) / 1e6;
		for (gc_job *j = batch; j; j = j->next)
			metrics_db_query(dt, false);
		goto done;
	}
	for (gc_job *j = batch; j; j = j->next) {
		if (!s->slots[idx].conn) {
			err_unavailable(j->err, "connection lost");
			continue;
		}
		j->res = exec_stmt(s, idx, j->id, j->n, j->vals, j->err);
	}
done:
	if (idx >= 0)
		release(s, idx);
}

/* Runs one prepared write in a shared transaction. Returns its result
 * (caller PQclears) or NULL with err set. Blocks until committed. */
static PGresult *gc_exec(store *s, enum stmt_id id, int n, const char *const *vals,
			 ar_err *err)
{
	gc_job job = { .id = id, .n = n, .vals = vals, .err = err };

	if (pthread_cond_init(&job.cv, NULL) != 0) {
		err_unavailable(err, "out of resources");
		return NULL;
	}
	pthread_mutex_lock(&s->gmu);
	*s->gtail = &job;
	s->gtail = &job.next;
	while (!job.done) {
		if (s->gleaders < GC_LEADERS && s->ghead) {
			gc_job *batch = s->ghead, *last = batch;
			for (int k = 1; last->next && k < GC_MAX_BATCH; k++)
				last = last->next;
			s->ghead = last->next;
			if (!s->ghead)
				s->gtail = &s->ghead;
			last->next = NULL;
			s->gleaders++;
			pthread_mutex_unlock(&s->gmu);
			gc_run_batch(s, batch);
			pthread_mutex_lock(&s->gmu);
			s->gleaders--;
			/* Each owner is woken alone (a broadcast woke every waiter per
			 * batch, most of them only to sleep again: a third of a create's
			 * system time went to futex calls). next is read before done is
			 * set: once the lock is released, a done job's owner returns
			 * and the job is gone. */
			while (batch) {
				gc_job *next = batch->next;
				batch->done = true;
				pthread_cond_signal(&batch->cv);
				batch = next;
			}
			/* the place just freed goes to the queue's first */
			if (s->ghead)
				pthread_cond_signal(&s->ghead->cv);
		} else {
			pthread_cond_wait(&job.cv, &s->gmu);
		}
	}
	pthread_mutex_unlock(&s->gmu);
	pthread_cond_destroy(&job.cv);
	return job.res;
}

static json_t *parse_json_cell(const PGresult *r, int row, int col, ar_err *err)
{
	json_error_t jerr;
	json_t *j = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
			       0, &jerr);
	if (!j) {
		log_kv(LOG_ERROR, "database returned invalid JSON", "error", jerr.text, NULL);
		err_internal(err);
	}
	return j;
}

bool store_ready(store *s, ar_err *err)
{
	int idx = acquire(s, err);
	PGresult *r;
	bool ok = false;

	if (idx < 0)
		return false;
	r = db_exec(s->slots[idx].conn, "SELECT count(*) FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "42P01") == 0)
			ar_err_set(err, 503, "not-migrated", "Not ready",
				   "the database has no migrations applied (run arbiter migrate)");
		else
			result_error(s->slots[idx].conn, r, "ready", err);
		goto done;
	}
	if (strtoull(PQgetvalue(r, 0, 0), NULL, 10) < ar_n_migrations) {
		ar_err_set(err, 503, "not-migrated", "Not ready",
			   "pending migrations (run arbiter migrate)");
		goto done;
	}
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

static bool exec_ok(PGconn *c, const char *sql, char *msg, size_t msglen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/*
 * Each migration runs in its own transaction under a transaction-scoped
 * advisory lock and re-checks schema_migrations inside it, so replicas
 * starting at once apply each migration once, and no session state is left
 * behind (safe through a transaction-pooling PgBouncer).
 */
bool store_migrate(const char *conninfo, FILE *out, char *msg, size_t msglen)
{
	PGconn *c = connect_db(conninfo);
	bool ok = false;
	size_t applied = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(msg, msglen, "cannot connect: %s", PQerrorMessage(c));
		goto fail;
	}
	if (!exec_ok(c, "BEGIN", msg, msglen) ||
	    !exec_ok(c, "SET LOCAL client_min_messages = warning", msg, msglen) ||
	    !exec_ok(c, "SELECT pg_advisory_xact_lock(714628100)", msg, msglen) ||
	    !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			"name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		     msg, msglen) ||
	    !exec_ok(c, "COMMIT", msg, msglen))
		goto fail;
	for (size_t i = 0; i < ar_n_migrations; i++) {
		const char *name = ar_migrations[i].name;
		PGresult *r;
		bool done;

		if (!exec_ok(c, "BEGIN", msg, msglen) ||
		    !exec_ok(c, "SET LOCAL client_min_messages = warning", msg, msglen) ||
		    !exec_ok(c, "SELECT pg_advisory_xact_lock(714628100)", msg, msglen))
			goto fail;
		r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE name = $1",
				 1, NULL, &name, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
			PQclear(r);
			goto fail;
		}
		done = PQntuples(r) > 0;
		PQclear(r);
		if (done) {
			if (!exec_ok(c, "COMMIT", msg, msglen))
				goto fail;
			continue;
		}
		if (!exec_ok(c, ar_migrations[i].sql, msg, msglen)) {
			char detail[512];
			snprintf(detail, sizeof(detail), "%s", msg);
			snprintf(msg, msglen, "migration %s failed: %s", name, detail);
			goto fail;
		}
		r = PQexecParams(c, "INSERT INTO schema_migrations (name) VALUES ($1)",
				 1, NULL, &name, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
			PQclear(r);
			goto fail;
		}
		PQclear(r);
		if (!exec_ok(c, "COMMIT", msg, msglen))
			goto fail;
		fprintf(out, "migrate: applied %s\n", name);
		applied++;
	}
	fprintf(out, "migrate: %zu applied, %zu total, schema up to date\n", applied,
		ar_n_migrations);
	ok = true;
fail:
	PQfinish(c);
	return ok;
}

bool store_grant_runtime(const char *conninfo, const char *role, char *msg, size_t msglen)
{
	PGconn *c = connect_db(conninfo);
	PGresult *r = NULL;
	bool ok = false;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(msg, msglen, "cannot connect: %s", PQerrorMessage(c));
		goto fail;
	}
	r = PQexecParams(c, "SELECT arbiter_grant_runtime($1)", 1, NULL, &role, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
		goto fail;
	}
	ok = true;
fail:
	PQclear(r);
	PQfinish(c);
	return ok;
}

bool store_owns_schema(store *s, bool *owner, ar_err *err)
{
	int idx = acquire(s, err);
	PGresult *r;
	bool ok = false;

	if (idx < 0)
		return false;
	r = db_exec(s->slots[idx].conn,
		    "SELECT pg_has_role(current_user, c.relowner, 'USAGE')"
		    "  FROM pg_class c WHERE c.oid = 'case_events'::regclass");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		result_error(s->slots[idx].conn, r, "owns_schema", err);
		goto done;
	}
	*owner = PQgetvalue(r, 0, 0)[0] == 't';
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

/* One of verify's queries, its result replacing *r (the caller clears the
 * last); false, printed, on an error. */
static bool verify_query(PGconn *c, const char *sql, PGresult **r, FILE *out)
{
	PQclear(*r);
	*r = PQexec(c, sql);
	if (PQresultStatus(*r) == PGRES_TUPLES_OK)
		return true;
	fprintf(out, "verify: %s", PQresultErrorMessage(*r));
	return false;
}

int store_verify(const char *conninfo, FILE *out)
{
	static const char *const sql =
		"WITH x AS ("
		"  SELECT e.case_id, e.seq, e.prev_hash, e.hash,"
		"         arbiter_event_digest(e.prev_hash, e) AS want,"
		"         lag(e.hash) OVER w AS lag_hash, row_number() OVER w AS rn"
		"    FROM case_events e"
		"  WINDOW w AS (PARTITION BY e.case_id ORDER BY e.seq))"
		" SELECT case_id, seq,"
		"   CASE WHEN seq <> rn THEN 'sequence gap: expected seq ' || rn"
		"        WHEN prev_hash <> coalesce(lag_hash, '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)"
		"          THEN 'prev_hash does not match the previous event''s hash'"
		"        ELSE 'hash does not match the event''s content' END"
		"   FROM x"
		"  WHERE seq <> rn OR hash <> want OR prev_hash <> coalesce(lag_hash,"
		"        '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)"
		"  ORDER BY case_id, seq LIMIT 1";
	PGconn *c = connect_db(conninfo);
	PGresult *r = NULL;
	int rc = 2;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(out, "verify: cannot connect: %s", PQerrorMessage(c));
		goto done;
	}
	if (!verify_query(c, sql, &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s event seq %s: %s\n", PQgetvalue(r, 0, 0),
			PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
		rc = 1;
		goto done;
	}
	if (!verify_query(c, "SELECT c.id FROM cases c WHERE NOT EXISTS"
		      " (SELECT 1 FROM case_events e WHERE e.case_id = c.id) LIMIT 1", &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s has no events\n", PQgetvalue(r, 0, 0));
		rc = 1;
		goto done;
	}
	/* Replay (issue 18): the row must be what its events made it. Each
	 * change writes one main event (riders: refund and compensation
	 * instructions, reminders, batch-defect flags), so the version is the
	 * count of main events, the state the last one's to_state, and
	 * refund_cents the last refund instruction's total. */
	if (!verify_query(c,
		"WITH ev AS ("
		"  SELECT e.case_id,"
		"    count(*) FILTER (WHERE e.action NOT IN ('refund.instructed',"
		"       'compensation.instructed', 'deadline.approaching', 'sku.batch_defect')) AS n_main,"
		"    (array_agg(e.to_state ORDER BY e.seq DESC) FILTER (WHERE e.action NOT IN"
		"       ('refund.instructed', 'compensation.instructed', 'deadline.approaching',"
		"        'sku.batch_defect')))[1] AS state,"
		"    (array_agg((e.data->>'total_cents')::bigint ORDER BY e.seq DESC)"
		"       FILTER (WHERE e.action = 'refund.instructed'))[1] AS refund"
		"    FROM case_events e GROUP BY e.case_id)"
		" SELECT c.id, CASE WHEN c.state IS DISTINCT FROM ev.state THEN 'state'"
		"   WHEN c.version <> ev.n_main THEN 'version'"
		"   ELSE 'refund_cents' END,"
		"   CASE WHEN c.state IS DISTINCT FROM ev.state THEN c.state || ' (events: ' || ev.state || ')'"
		"   WHEN c.version <> ev.n_main THEN c.version || ' (events: ' || ev.n_main || ')'"
		"   ELSE coalesce(c.refund_cents::text, 'null') || ' (events: '"
		"        || coalesce(ev.refund::text, 'null') || ')' END"
		"  FROM cases c JOIN ev ON ev.case_id = c.id"
		" WHERE c.state IS DISTINCT FROM ev.state OR c.version <> ev.n_main"
		"    OR c.refund_cents IS DISTINCT FROM ev.refund"
		" ORDER BY c.id LIMIT 1", &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s: its row's %s is %s\n", PQgetvalue(r, 0, 0),
			PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
		rc = 1;
		goto done;
	}
	/* armed deadlines: only those the state machine arms in the case's
	 * state, armed no later than its version */
	if (!verify_query(c, "SELECT c.id, c.kind, c.state, d.name, d.armed_version > c.version"
		      "  FROM case_deadlines d JOIN cases c ON c.id = d.case_id ORDER BY c.id", &r, out))
		goto done;
	for (int i = 0; i < PQntuples(r); i++) {
		ar_kind kind;
		fsm_state st;
		fsm_deadline dl;
		bool ok = ar_kind_parse(PQgetvalue(r, i, 1), &kind) &&
			  fsm_state_parse(PQgetvalue(r, i, 2), &st) &&
			  fsm_deadline_parse(PQgetvalue(r, i, 3), &dl) &&
			  (fsm_deadlines_for(kind, st) & FSM_DEADLINE_BIT(dl)) &&
			  PQgetvalue(r, i, 4)[0] != 't';
		if (!ok) {
			fprintf(out, "verify: BROKEN case %s: deadline %s is not one its state %s arms"
				" at its version\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 3),
				PQgetvalue(r, i, 2));
			rc = 1;
			goto done;
		}
	}
	if (!verify_query(c, "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM case_events)",
			  &r, out))
		goto done;
	fprintf(out, "verify: ok: %s cases, %s events, every chain intact, every case row"
		" and deadline what its events made it\n",
		PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	rc = 0;
done:
	PQclear(r);
	PQfinish(c);
	return rc;
}

static json_t *deadlines_json(const store_deadline *d, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_pack("{s:s,s:I,s:s}", "name", d[i].name,
				"after_ms", (json_int_t)d[i].after_ms, "on_expiry", d[i].on_expiry))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *events_json(const store_event *e, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		if (json_array_append_new(a, json_pack("{s:s,s:s?,s:s,s:O?}", "action",
				e[i].action, "from_state", e[i].from_state, "to_state",
				e[i].to_state, "data", e[i].data))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

bool store_case_create(store *s, const store_new_case *nc, store_created *out, ar_err *err)
{
	const ar_case_input *in = nc->in;
	json_t *dl = deadlines_json(nc->deadlines, nc->n_deadlines);
	json_t *ev = events_json(nc->events, nc->n_events);
	char *order_s = NULL, *evid_s = NULL, *dec_s = NULL, *dl_s = NULL, *ev_s = NULL;
	char req[24], refund[24], win[16], th[16], lease[16];
	PGresult *r = NULL;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (!dl || !ev)
		goto oom;
	order_s = codec_dumps(nc->order_doc);
	evid_s = codec_dumps(nc->evidence);
	dec_s = codec_dumps(nc->decision);
	dl_s = codec_dumps(dl);
	ev_s = codec_dumps(ev);
	if (!order_s || !evid_s || !dl_s || !ev_s || (nc->decision && !dec_s))
		goto oom;
	snprintf(req, sizeof(req), "%" PRId64, in->requested_cents);
	snprintf(refund, sizeof(refund), "%" PRId64, nc->refund_cents);
	snprintf(win, sizeof(win), "%d", nc->sku_window_days);
	snprintf(th, sizeof(th), "%d", nc->sku_threshold);
	snprintf(lease, sizeof(lease), "%d", nc->idem_lease_s);
	{
		const char *vals[29] = {
			in->order.shop_id, in->order.buyer_id, in->order.id, in->order.sku,
			ar_kind_name(in->kind), ar_reason_name(in->reason), nc->state,
			nc->outcome, in->currency, in->requested_cents >= 0 ? req : NULL,
			in->description, order_s, evid_s, dec_s,
			nc->manual_review ? "t" : "f", nc->refund_cents >= 0 ? refund : NULL,
			nc->policy_version, dl_s, nc->actor_role, nc->actor_id, ev_s,
			nc->idem_key, nc->id, nc->sku_check ? "t" : "f", win, th,
			nc->idem_key ? nc->fingerprint : NULL, lease, nc->allowed_actions,
		};
		r = gc_exec(s, ST_CREATE, 29, vals, err);
		if (!r)
			goto done;
		ok = true;
		if (PQntuples(r) == 0)
			goto done;   /* the Idempotency-Key's: see store_idem_lookup */
		out->len = (size_t)PQgetlength(r, 0, 0);
		out->body = malloc(out->len + 1);
		if (!out->body)
			goto oom;
		memcpy(out->body, PQgetvalue(r, 0, 0), out->len + 1);
		out->created = true;
		out->sku_flagged = strcmp(PQgetvalue(r, 0, 2), "0") != 0;
	}
	goto done;
oom:
	ok = false;
	ar_err_set(err, 503, "overloaded", "Out of memory", "the server is out of memory");
done:
	PQclear(r);
	free(order_s);
	free(evid_s);
	free(dec_s);
	free(dl_s);
	free(ev_s);
	json_decref(dl);
	json_decref(ev);
	return ok;
}

static void err_not_found(ar_err *err, const char *id)
{
	ar_err_set(err, 404, "not-found", "Not found", "no case with id '%s'", id);
}

static bool case_get_on(store *s, int idx, const char *id, const char *shop_scope,
			int read_version, json_t **out_case, ar_err *err)
{
	char ver[16];
	const char *vals[3] = { id, shop_scope, ver };
	PGresult *r;
	bool ok = false;

	*out_case = NULL;
	snprintf(ver, sizeof(ver), "%d", read_version);
	r = exec_stmt(s, idx, ST_FACTS, 3, vals, err);
	if (!r)
		return false;
	if (PQntuples(r) == 0) {
		err_not_found(err, id);
		goto done;
	}
	*out_case = parse_json_cell(r, 0, 0, err);
	ok = *out_case != NULL;
done:
	PQclear(r);
	return ok;
}

bool store_case_get(store *s, const char *id, const char *shop_scope, int read_version,
		    json_t **out_case, ar_err *err)
{
	int idx = acquire(s, err);
	bool ok;

	*out_case = NULL;
	if (idx < 0)
		return false;
	ok = case_get_on(s, idx, id, shop_scope, read_version, out_case, err);
	release(s, idx);
	return ok;
}

bool store_case_events(store *s, const char *id, const char *shop_scope,
		       json_t **items, ar_err *err)
{
	const char *vals[2] = { id, shop_scope };
	PGresult *r;
	int idx;
	bool ok = false;

	*items = NULL;
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = exec_stmt(s, idx, ST_EXISTS, 2, vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		err_not_found(err, id);
		goto done;
	}
	PQclear(r);
	r = exec_stmt(s, idx, ST_EVENTS, 1, vals, err);
	if (!r)
		goto done;
	*items = parse_json_cell(r, 0, 0, err);
	ok = *items != NULL;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

void store_case_rows_free(store_case_row *rows, size_t n)
{
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		free(rows[i].json);
	free(rows);
}

/* Rows from columns (json, version, kind, state, manual_review, has_offer,
 * agreement_pending, overdue deadline or NULL, goods_missing, has_counter,
 * rounds_left) starting at col, at most max of them. */
static bool rows_from(const PGresult *r, int col, int max, store_case_row **rows, size_t *n,
		      ar_err *err)
{
	int nt = PQntuples(r) < max ? PQntuples(r) : max;

	*rows = calloc(nt > 0 ? (size_t)nt : 1, sizeof(**rows));
	*n = 0;
	if (!*rows) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		return false;
	}
	for (int i = 0; i < nt; i++) {
		store_case_row *w = &(*rows)[i];
		w->len = (size_t)PQgetlength(r, i, col);
		w->json = malloc(w->len + 1);
		if (!w->json || !ar_kind_parse(PQgetvalue(r, i, col + 2), &w->kind) ||
		    !fsm_state_parse(PQgetvalue(r, i, col + 3), &w->state)) {
			store_case_rows_free(*rows, (size_t)i + (w->json != NULL));
			*rows = NULL;
			err_internal(err);
			return false;
		}
		memcpy(w->json, PQgetvalue(r, i, col), w->len + 1);
		w->version = atoi(PQgetvalue(r, i, col + 1));
		w->manual_review = PQgetvalue(r, i, col + 4)[0] == 't';
		w->has_offer = PQgetvalue(r, i, col + 5)[0] == 't';
		w->agreement_pending = PQgetvalue(r, i, col + 6)[0] == 't';
		w->goods_missing = PQgetvalue(r, i, col + 8)[0] == 't';
		w->has_counter = PQgetvalue(r, i, col + 9)[0] == 't';
		w->rounds_left = PQgetvalue(r, i, col + 10)[0] == 't';
		w->overdue = -1;
		if (!PQgetisnull(r, i, col + 7)) {
			fsm_deadline d;
			if (fsm_deadline_parse(PQgetvalue(r, i, col + 7), &d))
				w->overdue = (int)d;
		}
		(*n)++;
	}
	return true;
}

/* The case row a two-parameter statement finds (*row NULL: none), with
 * the statement's twelfth column, its id, into id_out when asked. */
static bool row_by(store *s, enum stmt_id stmt, const char *a, const char *b,
		   store_case_row **row, char *id_out, size_t idlen, ar_err *err)
{
	const char *vals[2] = { a, b };
	PGresult *r;
	size_t n = 0;
	int idx = acquire(s, err);
	bool ok = false;

	*row = NULL;
	if (idx < 0)
		return false;
	r = exec_stmt(s, idx, stmt, 2, vals, err);
	if (!r)
		goto done;
	ok = rows_from(r, 0, 1, row, &n, err);
	if (ok && n == 0) {
		store_case_rows_free(*row, 0);
		*row = NULL;
	} else if (ok && id_out) {
		snprintf(id_out, idlen, "%s", PQgetvalue(r, 0, 11));
	}
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_case_get_row(store *s, const char *id, const char *shop_scope,
			store_case_row **row, ar_err *err)
{
	if (!row_by(s, ST_GET_ROW, id, shop_scope, row, NULL, 0, err))
		return false;
	if (!*row) {
		err_not_found(err, id);
		return false;
	}
	return true;
}

bool store_case_by_idem(store *s, const char *scope, const char *key, store_case_row **row,
			char *id, size_t idlen, ar_err *err)
{
	return row_by(s, ST_BY_IDEM, scope, key, row, id, idlen, err);
}

/* ---- list with keyset pagination ---- */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void store_cursor_encode(int64_t us, const char *id, char *out, size_t outlen)
{
	char raw[AR_MAX_ID_LEN + 32];
	size_t n = (size_t)snprintf(raw, sizeof(raw), "%" PRId64 ".%s", us, id);
	size_t o = 0;

	if (n >= sizeof(raw))
		n = sizeof(raw) - 1;
	for (size_t i = 0; i < n && o + 5 < outlen; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;
	return p ? (int)(p - b64url) : -1;
}

bool store_cursor_decode(const char *s, int64_t *us, char *id, size_t idlen)
{
	char raw[AR_MAX_ID_LEN + 32];
	size_t n = strlen(s), o = 0;
	char *dot, *end;
	long long v;

	if (n == 0 || n % 4 == 1 || n > (sizeof(raw) - 1) / 3 * 4)
		return false;
	for (size_t i = 0; i < n; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]);
		int c = i + 2 < n ? b64val(s[i + 2]) : 0;
		int d = i + 3 < n ? b64val(s[i + 3]) : 0;
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return false;
		uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		raw[o++] = (char)(w >> 16);
		if (i + 2 < n)
			raw[o++] = (char)(w >> 8);
		if (i + 3 < n)
			raw[o++] = (char)w;
	}
	raw[o] = '\0';
	if (memchr(raw, '\0', o))
		return false;
	dot = strchr(raw, '.');
	if (!dot || dot == raw)
		return false;
	*dot = '\0';
	errno = 0;
	v = strtoll(raw, &end, 10);
	/* µs since the epoch up to 9999-12-31: PostgreSQL's arithmetic on
	 * anything past that fails (a 500), and no row was made then. */
	if (errno || *end || v < 0 || v > STORE_CURSOR_MAX_US || !isdigit((unsigned char)raw[0]))
		return false;
	if (strlen(dot + 1) == 0 || strlen(dot + 1) >= idlen ||
	    strspn(dot + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
		    strlen(dot + 1))
		return false;
	*us = v;
	snprintf(id, idlen, "%s", dot + 1);
	return true;
}

bool store_case_list_rows(store *s, const store_list_query *q, store_case_row **rows,
			  size_t *n_rows, char *next_cursor, size_t cursor_len, ar_err *err)
{
	char sql[1536], ta[40], tb[40], cur_us[24], lim[16];
	const char *vals[12];
	int n = 0, idx = -1;
	size_t pos;
	PGresult *r = NULL;
	bool ok = false;

	*rows = NULL;
	*n_rows = 0;
	next_cursor[0] = '\0';
	pos = (size_t)snprintf(sql, sizeof(sql),
		"SELECT (extract(epoch FROM c.created_at) * 1000000)::bigint, c.id,"
		" arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
		" c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
		" arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
		" arbiter_rounds_left(c)"
		" FROM cases c WHERE true");
#define FILTER(col, val) \
	do { \
		if (val) { \
			vals[n++] = (val); \
			pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos, \
						" AND c." col " = $%d", n); \
		} \
	} while (0)
	if (q->shop_scope) {
		vals[n++] = q->shop_scope;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
					" AND c.shop_id = ANY ($%d::text[])", n);
	}
	FILTER("shop_id", q->shop_id);
	FILTER("state", q->state);
	FILTER("kind", q->kind);
	FILTER("buyer_id", q->buyer_id);
	FILTER("order_id", q->order_id);
#undef FILTER
	if (q->created_after != AR_TIME_NONE) {
		ar_time_format(q->created_after, ta, sizeof(ta));
		vals[n++] = ta;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
					" AND c.created_at > $%d::timestamptz", n);
	}
	if (q->created_before != AR_TIME_NONE) {
		ar_time_format(q->created_before, tb, sizeof(tb));
		vals[n++] = tb;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
					" AND c.created_at < $%d::timestamptz", n);
	}
	if (q->has_cursor) {
		snprintf(cur_us, sizeof(cur_us), "%" PRId64, q->cursor_us);
		vals[n++] = cur_us;
		vals[n++] = q->cursor_id;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos,
			" AND (c.created_at, c.id) < ('epoch'::timestamptz + $%d::bigint"
			" * interval '1 microsecond', $%d)", n - 1, n);
	}
	snprintf(lim, sizeof(lim), "%d", q->limit + 1);
	vals[n++] = lim;
	snprintf(sql + pos, sizeof(sql) - pos,
		 " ORDER BY c.created_at DESC, c.id DESC LIMIT $%d", n);

	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, sql, n, vals);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "case_list", err);
		goto done;
	}
	if (!rows_from(r, 2, q->limit, rows, n_rows, err))
		goto done;
	if (PQntuples(r) > q->limit) {
		int last = q->limit - 1;
		store_cursor_encode(strtoll(PQgetvalue(r, last, 0), NULL, 10),
				    PQgetvalue(r, last, 1), next_cursor, cursor_len);
	}
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

static const char *op_name(store_op op)
{
	return op == STORE_SET ? "set" : op == STORE_CLEAR ? "clear" : "keep";
}

/* ST_APPLY's parameters for a change; the strings are owned here. */
typedef struct {
	const char *vals[24];
	char *dl_s, *ev_s, *evid_s;
	char ver[16], offer[24], refund[24], armed[16], names[256], counter[24], agree[24];
} apply_params;

static void apply_params_free(apply_params *p)
{
	free(p->dl_s);
	free(p->ev_s);
	free(p->evid_s);
}

static bool apply_params_init(apply_params *p, const store_change *ch, bool render,
			      ar_err *err)
{
	json_t *dl = deadlines_json(ch->deadlines, ch->n_deadlines);
	json_t *ev = events_json(ch->events, ch->n_events);
	size_t np = 0;
	bool ok = false;

	memset(p, 0, sizeof(*p));
	p->dl_s = codec_dumps(dl);
	p->ev_s = codec_dumps(ev);
	p->evid_s = codec_dumps(ch->evidence);
	if (!p->dl_s || !p->ev_s || (ch->evidence && !p->evid_s)) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		apply_params_free(p);
		goto done;
	}
	p->names[np++] = '{';
	for (size_t i = 0; i < ch->n_deadlines; i++)
		np += (size_t)snprintf(p->names + np, sizeof(p->names) - np, "%s%s", i ? "," : "",
				       ch->deadlines[i].name);
	snprintf(p->names + np, sizeof(p->names) - np, "}");
	snprintf(p->ver, sizeof(p->ver), "%d", ch->expected_version);
	snprintf(p->offer, sizeof(p->offer), "%" PRId64, ch->offer_cents);
	snprintf(p->refund, sizeof(p->refund), "%" PRId64, ch->refund_cents);
	snprintf(p->armed, sizeof(p->armed), "%d", ch->consume_armed_version);
	snprintf(p->counter, sizeof(p->counter), "%" PRId64, ch->counter_cents);
	snprintf(p->agree, sizeof(p->agree), "%" PRId64, ch->agreement_cents);
	{
		const char *vals[24] = {
			ch->case_id, p->ver, ch->state, ch->outcome, op_name(ch->offer),
			ch->offer == STORE_SET ? p->offer : NULL, op_name(ch->agreement),
			ch->refund_cents >= 0 ? p->refund : NULL, p->evid_s, ch->shop_scope,
			ch->consume_deadline, ch->consume_deadline ? p->armed : NULL,
			ch->replace_deadlines ? "t" : "f", p->names, p->dl_s, ch->actor_role,
			ch->actor_id, p->ev_s, op_name(ch->manual_review), render ? "t" : "f",
			op_name(ch->counter), ch->counter == STORE_SET ? p->counter : NULL,
			ch->counts_round ? "t" : "f",
			ch->agreement == STORE_SET && ch->agreement_cents >= 0 ? p->agree : NULL,
		};
		memcpy(p->vals, vals, sizeof(vals));
	}
	ok = true;
done:
	json_decref(dl);
	json_decref(ev);
	return ok;
}

static void err_stale(ar_err *err, const store_change *ch)
{
	ar_err_set(err, 412, "stale", "Precondition failed",
		   "case %s is no longer at version %d; read it again",
		   ch->case_id, ch->expected_version);
}

bool store_case_apply(store *s, const store_change *ch, store_case_row **row, ar_err *err)
{
	apply_params p;
	PGresult *r;
	size_t n = 0;
	bool ok = false;

	*row = NULL;
	if (!apply_params_init(&p, ch, true, err))
		return false;
	r = gc_exec(s, ST_APPLY, 24, p.vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		err_stale(err, ch);
		goto done;
	}
	ok = rows_from(r, 0, 1, row, &n, err);
done:
	PQclear(r);
	apply_params_free(&p);
	return ok;
}

struct store_tx {
	store *s;
	int idx;
	bool failed;
};

bool store_tx_begin(store *s, store_tx **out, ar_err *err)
{
	store_tx *tx = calloc(1, sizeof(*tx));
	PGresult *r;

	*out = NULL;
	if (!tx) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		return false;
	}
	tx->s = s;
	tx->idx = acquire(s, err);
	if (tx->idx < 0)
		goto fail;
	r = db_exec(s->slots[tx->idx].conn, "BEGIN");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(s->slots[tx->idx].conn, r, "begin", err);
		PQclear(r);
		release(s, tx->idx);
		goto fail;
	}
	PQclear(r);
	*out = tx;
	return true;
fail:
	free(tx);
	return false;
}

bool store_tx_end(store_tx *tx, bool commit, ar_err *err)
{
	PGresult *r;
	bool ok;

	if (!tx)
		return false;
	commit = commit && !tx->failed;
	r = db_exec(tx->s->slots[tx->idx].conn, commit ? "COMMIT" : "ROLLBACK");
	ok = PQresultStatus(r) == PGRES_COMMAND_OK && commit;
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		result_error(tx->s->slots[tx->idx].conn, r, commit ? "commit" : "rollback", err);
	PQclear(r);
	release(tx->s, tx->idx);
	free(tx);
	return ok;
}

void store_claimed_clear(store_claimed *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		json_decref(c[i].decision);
		c[i].decision = NULL;
	}
}

bool store_tx_claim(store_tx *tx, const char *const *ids, size_t n, store_claimed *out,
		    size_t *n_out, ar_err *err)
{
	size_t len = 3;
	char *arr, *p;
	const char *vals[1];
	PGresult *r;
	bool ok = false;

	*n_out = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(ids[i]) + 3;
	arr = malloc(len);
	if (!arr) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		tx->failed = true;
		return false;
	}
	/* ids are the store's own ("c_" and hex), quoted all the same */
	p = arr;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", ids[i]);
	*p++ = '}';
	*p = '\0';
	vals[0] = arr;
	r = exec_stmt(tx->s, tx->idx, ST_CLAIM, 1, vals, err);
	free(arr);
	if (!r) {
		tx->failed = true;
		return false;
	}
	for (int i = 0; i < PQntuples(r) && *n_out < n; i++) {
		store_claimed *c = &out[*n_out];
		json_error_t jerr;
		memset(c, 0, sizeof(*c));
		snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(r, i, 0));
		c->version = atoi(PQgetvalue(r, i, 1));
		if (!ar_kind_parse(PQgetvalue(r, i, 2), &c->kind) ||
		    !fsm_state_parse(PQgetvalue(r, i, 3), &c->state))
			continue;   /* unreadable: left alone, like a case that moved on */
		c->manual_review = PQgetvalue(r, i, 4)[0] == 't';
		c->has_offer = PQgetvalue(r, i, 5)[0] == 't';
		c->agreement_pending = PQgetvalue(r, i, 6)[0] == 't';
		snprintf(c->shop_id, sizeof(c->shop_id), "%s", PQgetvalue(r, i, 7));
		c->goods_missing = PQgetvalue(r, i, 9)[0] == 't';
		c->counter_cents = PQgetisnull(r, i, 10) ? -1 : strtoll(PQgetvalue(r, i, 10), NULL, 10);
		c->has_counter = c->counter_cents >= 0;
		c->rounds_left = PQgetvalue(r, i, 11)[0] == 't';
		c->decision = PQgetisnull(r, i, 8) ? json_object() :
			      json_loads(PQgetvalue(r, i, 8), 0, &jerr);
		if (!c->decision) {
			ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
			store_claimed_clear(out, *n_out);
			*n_out = 0;
			tx->failed = true;
			goto done;
		}
		(*n_out)++;
	}
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_tx_apply_many(store_tx *tx, const store_change *chs, size_t n, bool applied[],
			 ar_err *err)
{
	json_t *set = json_array();
	char *set_s = NULL;
	PGresult *r = NULL;
	bool ok = false;

	for (size_t i = 0; i < n; i++)
		applied[i] = false;
	if (n == 0) {
		json_decref(set);
		return true;
	}
	for (size_t i = 0; set && i < n; i++) {
		const store_change *ch = &chs[i];
		json_t *o = json_pack("{s:s,s:i,s:s,s:s?,s:b,s:b,s:o,s:s,s:i,s:b,s:o,s:o,s:i}",
			"id", ch->case_id, "ver", ch->expected_version, "state", ch->state,
			"outcome", ch->outcome, "clear_offer", ch->offer == STORE_CLEAR,
			"clear_counter", ch->counter == STORE_CLEAR,
			"refund", ch->refund_cents >= 0 ? json_integer(ch->refund_cents) : json_null(),
			"dl", ch->consume_deadline, "armed", ch->consume_armed_version,
			"replace", ch->replace_deadlines,
			"deadlines", deadlines_json(ch->deadlines, ch->n_deadlines),
			"events", events_json(ch->events, ch->n_events), "n", (int)i);
		if (!o || json_array_append_new(set, o)) {
			json_decref(set);
			set = NULL;
		}
	}
	set_s = codec_dumps(set);
	if (!set_s) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		goto done;
	}
	{
		const char *vals[3] = { set_s, chs[0].actor_role, chs[0].actor_id };
		r = exec_stmt(tx->s, tx->idx, ST_EXPIRE, 3, vals, err);
	}
	if (!r)
		goto done;
	for (int k = 0; k < PQntuples(r); k++) {
		for (size_t i = 0; i < n; i++) {
			if (!applied[i] && strcmp(chs[i].case_id, PQgetvalue(r, k, 0)) == 0) {
				applied[i] = true;
				break;
			}
		}
	}
	ok = true;
done:
	PQclear(r);
	free(set_s);
	json_decref(set);
	if (!ok)
		tx->failed = true;
	return ok;
}

/*
 * The scheduler's refill (sla.c says why these three parts find every
 * deadline). Sent unnamed so that each is planned with its bounds: each
 * part is an index range scan (due_idx, remind_idx, short_idx), reading
 * only the rows it returns. The last row carries the statement's now().
 */
bool store_due_refill(store *s, const store_due_query *q, store_due *out,
		      store_due_result *res, ar_err *err)
{
	char ef[24], rf[24], af[24], hz[24], bf[24], cap[24], acap[24];
	const char *vals[7] = { ef, rf, af, hz, bf, cap, acap };
	PGresult *r = NULL;
	size_t n = 0;
	bool ok = false;
	int idx;

	memset(res, 0, sizeof(*res));
	snprintf(ef, sizeof(ef), "%" PRId64, q->exp_from_us);
	snprintf(rf, sizeof(rf), "%" PRId64, q->rem_from_us);
	snprintf(af, sizeof(af), "%" PRId64, q->armed_from_us);
	snprintf(hz, sizeof(hz), "%" PRId64, q->horizon_ms);
	snprintf(bf, sizeof(bf), "%" PRId64, q->before_ms);
	snprintf(cap, sizeof(cap), "%zu", q->cap);
	snprintf(acap, sizeof(acap), "%zu", q->armed_cap);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
#define DUE_COLS "case_id, name, armed_version, due_at, reminded, armed_at FROM case_deadlines"
#define DUE_FROM(n) "'epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond'"
	r = db_exec_params(s->slots[idx].conn,
		"SELECT p, case_id, name, armed_version,"
		"       floor(extract(epoch FROM due_at) * 1000000)::bigint, reminded,"
		"       floor(extract(epoch FROM armed_at) * 1000000)::bigint,"
		"       floor(extract(epoch FROM now()) * 1000000)::bigint FROM ("
		" (SELECT 0 AS p, " DUE_COLS
		"   WHERE due_at >= " DUE_FROM(1)
		"     AND due_at < now() + $4::bigint * interval '1 millisecond'"
		"   ORDER BY due_at LIMIT $6::int)"
		" UNION ALL"
		" (SELECT 1, " DUE_COLS
		"   WHERE NOT reminded AND due_at > now() AND due_at >= " DUE_FROM(2)
		"     AND due_at < now() + ($4::bigint + $5::bigint) * interval '1 millisecond'"
		"   ORDER BY due_at LIMIT $6::int)"
		" UNION ALL"
		/* the predicate of case_deadlines_short_idx, word for word
		 * (STORE_SHORT_ARMING_MS) */
		" (SELECT 2, " DUE_COLS
		"   WHERE due_at - armed_at < interval '5 minutes' AND armed_at >= " DUE_FROM(3)
		"   ORDER BY armed_at LIMIT $7::int)"
		" UNION ALL"
		" SELECT 3, NULL, NULL, NULL, NULL, NULL, NULL) x",
		7, vals);
#undef DUE_FROM
#undef DUE_COLS
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "due_refill", err);
		goto done;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		int part = atoi(PQgetvalue(r, i, 0));
		store_due *d;
		if (part < 0 || part > 2) {
			res->now_us = strtoll(PQgetvalue(r, i, 7), NULL, 10);
			continue;
		}
		if (n >= 3 * q->cap)
			continue;
		d = &out[n++];
		snprintf(d->case_id, sizeof(d->case_id), "%s", PQgetvalue(r, i, 1));
		snprintf(d->name, sizeof(d->name), "%s", PQgetvalue(r, i, 2));
		d->armed_version = atoi(PQgetvalue(r, i, 3));
		d->due_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10) / 1000;
		d->reminded = PQgetvalue(r, i, 5)[0] == 't';
		d->armed_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10) / 1000;
		d->part = (uint8_t)part;
		res->n[part]++;
		{
			int64_t us = strtoll(PQgetvalue(r, i, part == 2 ? 6 : 4), NULL, 10);
			if (us > res->last_us[part])
				res->last_us[part] = us;
		}
	}
	ok = res->now_us > 0;
	if (!ok)
		err_internal(err);
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_tx_remind(store_tx *tx, const char *case_id, const char *name, int armed_version,
		     json_t *data, ar_err *err)
{
	char ver[16], *data_s = codec_dumps(data);
	const char *vals[4] = { case_id, name, ver, data_s };
	PGresult *r;
	bool ok;

	if (!data_s) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		return false;
	}
	snprintf(ver, sizeof(ver), "%d", armed_version);
	/* The case row lock orders this event with concurrent actions. */
	r = db_exec_params(tx->s->slots[tx->idx].conn,
		"WITH c AS (SELECT id, shop_id, state, policy_version FROM cases"
		"            WHERE id = $1 FOR UPDATE),"
		" d AS (UPDATE case_deadlines d SET reminded = true FROM c"
		"        WHERE d.case_id = c.id AND d.name = $2 AND d.armed_version = $3::int"
		"          AND NOT d.reminded RETURNING d.case_id)"
		" INSERT INTO case_events (case_id, shop_id, actor_role, actor_id, action,"
		"    from_state, to_state, data, policy_version)"
		" SELECT c.id, c.shop_id, 'system', 'sla', 'deadline.approaching', c.state, c.state,"
		"        $4::jsonb, c.policy_version FROM c JOIN d ON d.case_id = c.id",
		4, vals);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok) {
		result_error(tx->s->slots[tx->idx].conn, r, "remind", err);
		tx->failed = true;
	}
	PQclear(r);
	free(data_s);
	return ok;
}

void store_housekeep(store *s)
{
	ar_err err;
	PGresult *r;
	int idx;

	ar_err_init(&err);
	idx = acquire(s, &err);
	if (idx < 0)
		return;
	r = db_exec(s->slots[idx].conn,
		   "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		result_error(s->slots[idx].conn, r, "housekeep", &err);
	PQclear(r);
	release(s, idx);
}

bool store_deadline_stats(store *s, int64_t *pending, double *oldest_overdue_s, ar_err *err)
{
	PGresult *r;
	int idx = acquire(s, err);

	if (idx < 0)
		return false;
	r = db_exec(s->slots[idx].conn,
		   "SELECT count(*), coalesce(extract(epoch FROM now() - min(due_at)), 0)::float8"
		   "  FROM case_deadlines");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "deadline_stats", err);
		PQclear(r);
		release(s, idx);
		return false;
	}
	*pending = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	*oldest_overdue_s = strtod(PQgetvalue(r, 0, 1), NULL);
	if (*oldest_overdue_s < 0)
		*oldest_overdue_s = 0;
	PQclear(r);
	release(s, idx);
	return true;
}

/*
 * Feed cursor: the caller's own position, never the global one. It names
 * the last event handed out (its case and seq, sealed like a list cursor),
 * and that event must be one the caller may see: a cursor naming another
 * shop's event is refused exactly like one naming no event, so cursors
 * reveal nothing about other shops (the feed's (xid, id) order stays
 * internal). "", "0" and "0.0" are the start. The "<xid>.<id>" cursors of
 * before are still taken from keys that see every shop (they learn nothing
 * from them), so a payment system resumes across the upgrade.
 */
static bool feed_position(store *s, int idx, const char *after, const char *shop_scope,
			  char *xid, size_t xidlen, char *id, size_t idlen, ar_err *err)
{
	char case_id[AR_MAX_ID_LEN + 1], seq[24];
	const char *vals[3] = { case_id, seq, shop_scope };
	const char *dot = strchr(after, '.');
	int64_t n;
	PGresult *r;
	bool ok = false;

	if (strcmp(after, "0") == 0 || strcmp(after, "0.0") == 0)
		return true;
	if (!shop_scope && dot && dot > after && (size_t)(dot - after) < xidlen &&
	    strlen(dot + 1) > 0 && strlen(dot + 1) < idlen &&
	    strspn(after, "0123456789") == (size_t)(dot - after) &&
	    strspn(dot + 1, "0123456789") == strlen(dot + 1)) {
		memcpy(xid, after, (size_t)(dot - after));
		xid[dot - after] = '\0';
		snprintf(id, idlen, "%s", dot + 1);
		return true;
	}
	if (!store_cursor_decode(after, &n, case_id, sizeof(case_id)) || n < 1 || n > INT32_MAX) {
		ar_err_field(err, "/query/after", "is not a cursor this service handed out");
		return false;
	}
	snprintf(seq, sizeof(seq), "%" PRId64, n);
	r = db_exec_params(s->slots[idx].conn,
		"SELECT e.xid::text, e.id FROM case_events e"
		" WHERE e.case_id = $1 AND e.seq = $2::integer"
		"   AND ($3::text[] IS NULL OR e.shop_id = ANY ($3::text[]))", 3, vals);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "feed_position", err);
		goto done;
	}
	if (PQntuples(r) != 1) {
		ar_err_field(err, "/query/after", "is not a cursor this service handed out");
		goto done;
	}
	snprintf(xid, xidlen, "%s", PQgetvalue(r, 0, 0));
	snprintf(id, idlen, "%s", PQgetvalue(r, 0, 1));
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_feed(store *s, const char *after, const char *shop_scope, int limit,
		json_t **items, char *next_cursor, size_t cursor_len, ar_err *err)
{
	char xid[24] = "0", id[24] = "0", lim[16];
	const char *vals[4] = { xid, id, shop_scope, lim };
	PGresult *r = NULL;
	int idx;
	bool ok = false;

	*items = NULL;
	if (after && strlen(after) >= cursor_len) {
		ar_err_field(err, "/query/after", "is not a cursor this service handed out");
		return false;
	}
	snprintf(next_cursor, cursor_len, "%s", after && *after ? after : "0.0");
	snprintf(lim, sizeof(lim), "%d", limit);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	if (after && *after &&
	    !feed_position(s, idx, after, shop_scope, xid, sizeof(xid), id, sizeof(id), err))
		goto done;
	r = exec_stmt(s, idx, ST_FEED, 4, vals, err);
	if (!r)
		goto done;
	*items = json_array();
	if (!*items)
		goto done;
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *e = parse_json_cell(r, i, 2, err);
		char cur[2 * AR_MAX_ID_LEN];
		if (!e)
			goto done;
		store_cursor_encode(strtoll(PQgetvalue(r, i, 1), NULL, 10), PQgetvalue(r, i, 0),
				    cur, sizeof(cur));
		json_object_set_new(e, "cursor", json_string(cur));
		if (json_array_append_new(*items, e))
			goto done;
		snprintf(next_cursor, cursor_len, "%s", cur);
	}
	ok = true;
done:
	if (!ok) {
		json_decref(*items);
		*items = NULL;
	}
	PQclear(r);
	release(s, idx);
	return ok;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool store_key_get(store *s, const char *id, store_key *out, ar_err *err)
{
	const char *vals[1] = { id };
	PGresult *r;
	int idx;
	bool ok = false;
	const char *hex;

	memset(out, 0, sizeof(*out));
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = exec_stmt(s, idx, ST_KEY_GET, 1, vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		ar_err_set(err, 401, "unauthorized", "Unauthorized", "unknown API key");
		goto done;
	}
	hex = PQgetvalue(r, 0, 0);
	if (strlen(hex) != 64) {
		err_internal(err);
		goto done;
	}
	for (int i = 0; i < 32; i++)
		out->secret_hash[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	snprintf(out->role, sizeof(out->role), "%s", PQgetvalue(r, 0, 1));
	snprintf(out->shops, sizeof(out->shops), "%s", PQgetvalue(r, 0, 2));
	out->senior = PQgetvalue(r, 0, 3)[0] == 't';
	out->revoked = PQgetvalue(r, 0, 4)[0] == 't';
	PQclear(r);
	r = exec_stmt(s, idx, ST_KEY_TOUCH, 1, vals, err);
	ok = r != NULL;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_key_insert(store *s, const char *id, const unsigned char hash[32],
		      const char *role, const char *shops_literal, const char *name,
		      bool senior, ar_err *err)
{
	char hex[65];
	const char *vals[6] = { id, hex, role, shops_literal && *shops_literal ? shops_literal : NULL,
				name, senior ? "t" : "f" };
	PGresult *r;
	int idx;
	bool ok;

	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, "INSERT INTO api_keys (id, secret_hash, role, shops, name, senior)"
			 " VALUES ($1, decode($2, 'hex'), $3, $4::text[], $5, $6)", 6, vals);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		result_error(s->slots[idx].conn, r, "key_insert", err);
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_key_list(store *s, json_t **items, ar_err *err)
{
	PGresult *r;
	int idx;
	bool ok = false;

	*items = NULL;
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec(s->slots[idx].conn,
		   "SELECT coalesce(json_agg(json_build_object('id', id, 'role', role,"
		   " 'shops', shops, 'name', name, 'senior', senior,"
		   " 'created_at', arbiter_ts(created_at),"
		   " 'last_used_at', arbiter_ts(last_used_at),"
		   " 'revoked_at', arbiter_ts(revoked_at)) ORDER BY created_at, id), '[]'::json)"
		   " FROM api_keys");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "key_list", err);
		goto done;
	}
	*items = parse_json_cell(r, 0, 0, err);
	ok = *items != NULL;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_key_revoke(store *s, const char *id, ar_err *err)
{
	const char *vals[1] = { id };
	PGresult *r;
	int idx;
	bool ok = false;

	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", 1, vals);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(s->slots[idx].conn, r, "key_revoke", err);
		goto done;
	}
	if (strcmp(PQcmdTuples(r), "0") == 0) {
		ar_err_set(err, 404, "not-found", "Not found", "no API key '%s'", id);
		goto done;
	}
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

/* Reads the record of (scope, key): state and, when done, the reply. A
 * record past its life (a done reply after 24 h, a claim after its lease)
 * reads as absent: IDEM_NEW. */
static bool idem_read(PGconn *c, const char *const vals[4], idem_state *state,
		      idem_replay *replay, ar_err *err)
{
	PGresult *r = db_exec_params(c, "SELECT fingerprint = decode($3, 'hex'), state, status, response,"
		"       coalesce(etag, ''), coalesce(location, ''),"
		"       created_at > now() - CASE state WHEN 'done' THEN interval '24 hours'"
		"           ELSE $4::int * interval '1 second' END"
		"  FROM idempotency_keys WHERE scope = $1 AND key = $2", 4, vals);
	bool ok = false;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(c, r, "idem_get", err);
		goto done;
	}
	if (PQntuples(r) == 0 || PQgetvalue(r, 0, 6)[0] != 't') {
		*state = IDEM_NEW;
	} else if (PQgetvalue(r, 0, 0)[0] != 't') {
		*state = IDEM_MISMATCH;
	} else if (strcmp(PQgetvalue(r, 0, 1), "done") != 0) {
		*state = IDEM_IN_FLIGHT;
	} else {
		*state = IDEM_REPLAY;
		replay->status = atoi(PQgetvalue(r, 0, 2));
		replay->body = strdup(PQgetvalue(r, 0, 3));
		snprintf(replay->etag, sizeof(replay->etag), "%s", PQgetvalue(r, 0, 4));
		snprintf(replay->location, sizeof(replay->location), "%s", PQgetvalue(r, 0, 5));
		if (!replay->body) {
			ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
			goto done;
		}
	}
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_idem_begin(store *s, const char *scope, const char *key, const char *fp_hex,
		      int lease_s, idem_state *state, idem_replay *replay, ar_err *err)
{
	char lease[16];
	const char *vals[4] = { scope, key, fp_hex, lease };
	PGresult *r = NULL;
	int idx;
	bool ok = false;

	memset(replay, 0, sizeof(*replay));
	snprintf(lease, sizeof(lease), "%d", lease_s);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	/* Claim the key, or take over a claim whose owner must be dead (older
	 * than the lease) or a reply older than the 24 h retention. */
	r = db_exec_params(s->slots[idx].conn, "INSERT INTO idempotency_keys AS k (scope, key, fingerprint)"
		" VALUES ($1, $2, decode($3, 'hex'))"
		" ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
		"   state = 'in_flight', status = NULL, response = NULL, created_at = now()"
		" WHERE (k.state = 'in_flight' AND k.created_at < now() - $4::int * interval '1 second')"
		"    OR k.created_at < now() - interval '24 hours'"
		" RETURNING 1", 4, vals);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "idem_claim", err);
		goto done;
	}
	if (PQntuples(r) == 1) {
		*state = IDEM_NEW;
		ok = true;
		goto done;
	}
	ok = idem_read(s->slots[idx].conn, vals, state, replay, err);
	if (ok && *state == IDEM_NEW) {
		/* the record we lost to ended in between */
		ok = false;
		ar_err_set(err, 409, "idempotency-in-flight", "Conflict",
			   "a request with this Idempotency-Key is being processed; retry");
	}
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_idem_lookup(store *s, const char *scope, const char *key, const char *fp_hex,
		       int lease_s, idem_state *state, idem_replay *replay, ar_err *err)
{
	char lease[16];
	const char *vals[4] = { scope, key, fp_hex, lease };
	int idx;
	bool ok;

	memset(replay, 0, sizeof(*replay));
	snprintf(lease, sizeof(lease), "%d", lease_s);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	ok = idem_read(s->slots[idx].conn, vals, state, replay, err);
	release(s, idx);
	return ok;
}

bool store_idem_finish(store *s, const char *scope, const char *key, int status,
		       const char *body, const char *etag, const char *location, ar_err *err)
{
	char st[8];
	const char *vals[6] = { scope, key, st, body, etag, location };
	PGresult *r;
	int idx;
	bool ok;

	snprintf(st, sizeof(st), "%d", status);
	idx = acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, "UPDATE idempotency_keys SET state = 'done', status = $3::int, response = $4,"
		"       etag = $5, location = $6 WHERE scope = $1 AND key = $2", 6, vals);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		result_error(s->slots[idx].conn, r, "idem_finish", err);
	PQclear(r);
	release(s, idx);
	return ok;
}

void store_idem_abandon(store *s, const char *scope, const char *key)
{
	const char *vals[2] = { scope, key };
	ar_err err;
	PGresult *r;
	int idx;

	ar_err_init(&err);
	idx = acquire(s, &err);
	if (idx < 0)
		return;
	r = db_exec_params(s->slots[idx].conn, "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_flight'", 2, vals);
	PQclear(r);
	release(s, idx);
}

bool store_buyer_history(store *s, const ar_case_input *in, store_history *out, ar_err *err)
{
	const char *vals[5] = { in->order.buyer_id, in->order.shop_id, in->description,
				in->order.id, in->order.sku };
	PGresult *r;
	int idx = acquire(s, err);

	memset(out, 0, sizeof(*out));
	if (idx < 0)
		return false;
	r = exec_stmt(s, idx, ST_HISTORY, 5, vals, err);
	if (r) {
		out->cases_7d = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		out->same_text_shops_30d = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		out->complaints_same_order = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		out->sku_flagged = PQgetvalue(r, 0, 3)[0] == 't';
	}
	PQclear(r);
	release(s, idx);
	return r != NULL;
}

bool store_policy_record(store *s, const char *version, const char *canonical_text,
			 bool activate, bool *is_new, ar_err *err)
{
	const char *vals[3] = { version, canonical_text, activate ? "t" : "f" };
	PGresult *r;
	int idx = acquire(s, err);
	bool ok = false;

	*is_new = false;
	if (idx < 0)
		return false;
	/* A version seen for the first time is activated too: a new policy
	 * file rolled out is meant to run. */
	r = db_exec_params(s->slots[idx].conn,
		"WITH ins AS (INSERT INTO policies (version, sha256, document, activated_at)"
		"   VALUES ($1, sha256(convert_to($2, 'UTF8')), $2::jsonb, clock_timestamp())"
		"   ON CONFLICT (version) DO NOTHING RETURNING 1),"
		" same AS (SELECT 1 FROM policies WHERE version = $1"
		"           AND sha256 = sha256(convert_to($2, 'UTF8'))),"
		" act AS (UPDATE policies SET activated_at = clock_timestamp()"
		"          WHERE version = $1 AND $3::boolean AND EXISTS (SELECT 1 FROM same)"
		"            AND NOT EXISTS (SELECT 1 FROM ins) RETURNING 1)"
		" SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM same)",
		3, vals);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "policy_record", err);
		goto done;
	}
	*is_new = PQgetvalue(r, 0, 0)[0] == 't';
	if (!*is_new && PQgetvalue(r, 0, 1)[0] != 't') {
		ar_err_set(err, 409, "policy-version-taken", "Policy version already used",
			   "version '%s' was recorded with different content; give the new document a new version",
			   version);
		goto done;
	}
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_policy_active(store *s, char *version, size_t version_len, char **text, ar_err *err)
{
	PGresult *r;
	int idx = acquire(s, err);
	bool ok = false;

	*text = NULL;
	if (idx < 0)
		return false;
	r = db_exec(s->slots[idx].conn,
		    "SELECT version, document::text FROM policies WHERE activated_at IS NOT NULL"
		    " ORDER BY activated_at DESC LIMIT 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "policy_active", err);
		goto done;
	}
	if (PQntuples(r) == 0) {
		ar_err_set(err, 404, "not-found", "Not found", "no policy was ever activated");
		goto done;
	}
	snprintf(version, version_len, "%s", PQgetvalue(r, 0, 0));
	*text = strdup(PQgetvalue(r, 0, 1));
	ok = *text != NULL;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_sku_clear(store *s, const char *shop_id, const char *sku, const char *by,
		     ar_err *err)
{
	const char *vals[3] = { shop_id, sku, by };
	PGresult *r;
	int idx = acquire(s, err);
	bool ok = false;

	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, "UPDATE sku_flags SET cleared_at = now(), cleared_by = $3"
		" WHERE shop_id = $1 AND sku = $2 AND cleared_at IS NULL", 3, vals);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(s->slots[idx].conn, r, "sku_clear", err);
		goto done;
	}
	if (strcmp(PQcmdTuples(r), "0") == 0) {
		ar_err_set(err, 404, "not-found", "Not found",
			   "SKU %.64s of shop %.64s carries no batch-defect flag", sku, shop_id);
		goto done;
	}
	ok = true;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_query_json(store *s, const char *what, const char *sql, int n,
		      const char *const *vals, json_t **out, ar_err *err)
{
	PGresult *r;
	int idx = acquire(s, err);
	bool ok = false;

	*out = NULL;
	if (idx < 0)
		return false;
	r = db_exec_params(s->slots[idx].conn, sql, n, vals);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		result_error(s->slots[idx].conn, r, what, err);
		goto done;
	}
	*out = parse_json_cell(r, 0, 0, err);
	ok = *out != NULL;
done:
	PQclear(r);
	release(s, idx);
	return ok;
}

bool store_case_counts(store *s, int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT], ar_err *err)
{
	PGresult *r;
	int idx = acquire(s, err);

	memset(counts, 0, sizeof(int64_t) * FSM_STATE__COUNT * AR_KIND__COUNT);
	if (idx < 0)
		return false;
	/* A background count: one core, and no JIT compile of a plan that
	 * is thrown away (both showed in profiles of busy servers). */
	r = db_exec(s->slots[idx].conn, "BEGIN; SET LOCAL jit = off;"
		    " SET LOCAL max_parallel_workers_per_gather = 0");
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		r = db_exec(s->slots[idx].conn, "SELECT state, kind, count(*) FROM cases GROUP BY state, kind");
		PQclear(db_exec(s->slots[idx].conn, "COMMIT"));
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		result_error(s->slots[idx].conn, r, "case_counts", err);
		PQclear(r);
		release(s, idx);
		return false;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		fsm_state st;
		ar_kind k;
		if (fsm_state_parse(PQgetvalue(r, i, 0), &st) && ar_kind_parse(PQgetvalue(r, i, 1), &k))
			counts[st][k] = strtoll(PQgetvalue(r, i, 2), NULL, 10);
	}
	PQclear(r);
	release(s, idx);
	return true;
}
