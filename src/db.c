/* The PostgreSQL connection pool: connect, prepare, run, check, release. */
#include "arbiter/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arbiter/errmsg.h"
#include "arbiter/groupcommit.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"

#define ACQUIRE_WAIT_MS 5000
#define BACKOFF_MAX_MS 2000

/* Filled before main by DB_REGISTER, read-only after. */
static db_stmt *registry[DB_MAX_STMTS];
static unsigned n_registered;

struct slot {
	PGconn *conn;
	bool busy;
	bool failed;         /* the last connection attempt failed */
	uint32_t prepared;   /* bit per registered statement */
};

struct store {
	char *conninfo;
	int size;
	struct slot *slots;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t next_connect_ms;   /* reconnect backoff while the database is down */
	int backoff_ms;
	gc_queue gc;
	bool unnamed;              /* ARBITER_DB_PREPARED=false */
	bool reads_only;           /* a replica pool: a standby is what it wants */
};

void db_register(db_stmt *st)
{
	/* a new statement past the limit is a build mistake, caught by the
	 * first test that starts the binary */
	if (n_registered >= DB_MAX_STMTS)
		abort();
	st->bit = n_registered;
	registry[n_registered++] = st;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t db_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool result_ok(const PGresult *r)
{
	return PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
}

void db_err_unavailable(ar_err *err, const char *why)
{
	ar_err_setk(err, 503, "database-unavailable", "detail.db_unreachable", "why", why, NULL);
}

void db_err_internal(ar_err *err)
{
	ar_err_setk(err, 500, "internal", "detail.internal_logged", NULL);
}

void db_err_oom(ar_err *err)
{
	ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
}

store *store_open(const char *conninfo, int pool_size)
{
	store *s = calloc(1, sizeof(*s));
	bool mu = false, cv = false;

	if (!s)
		return NULL;
	s->conninfo = strdup(conninfo);
	s->slots = calloc((size_t)pool_size, sizeof(*s->slots));
	if (!s->conninfo || !s->slots)
		goto fail;
	s->size = pool_size;
	mu = pthread_mutex_init(&s->mu, NULL) == 0;
	cv = mu && pthread_cond_init(&s->cv, NULL) == 0;
	if (!cv || !gc_queue_init(&s->gc))
		goto fail;
	return s;
fail:
	if (cv)
		pthread_cond_destroy(&s->cv);
	if (mu)
		pthread_mutex_destroy(&s->mu);
	free(s->slots);
	free(s->conninfo);
	free(s);
	return NULL;
}

void store_use_prepared(store *s, bool on)
{
	s->unnamed = !on;
}

void store_reads_only(store *s)
{
	s->reads_only = true;
}

bool db_unnamed(const store *s)
{
	return s->unnamed;
}

void store_close(store *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->size; i++)
		PQfinish(s->slots[i].conn);
	gc_queue_destroy(&s->gc);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->slots);
	free(s->conninfo);
	free(s);
}

struct gc_queue *db_gc(store *s)
{
	return &s->gc;
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

PGconn *db_connect(const char *conninfo)
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
		db_err_unavailable(err, "reconnecting");
		return false;
	}
	pthread_mutex_unlock(&s->mu);
	conn = db_connect(s->conninfo);
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
		db_err_unavailable(err, "connection failed");
		return false;
	}
	s->backoff_ms = 0;
	s->next_connect_ms = 0;
	s->slots[idx].conn = conn;
	s->slots[idx].failed = false;
	s->slots[idx].prepared = 0;
	return true;
}

int db_acquire(store *s, ar_err *err)
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
			db_err_unavailable(err, "all database connections are busy");
			return -1;
		}
	}
	s->slots[idx].busy = true;
	if (!s->slots[idx].conn && !slot_connect(s, idx, err))
		idx = -1;
	pthread_mutex_unlock(&s->mu);
	return idx;
}

/* A connection whose server became (or always was) a standby, or whose
 * session is read-only, can never write: dropped, the next connect finds
 * the primary again (a multi-host URL with target_session_attrs=read-write
 * skips such servers). PostgreSQL 14+ reports both settings on every
 * change; through a pooler they may be absent. */
static bool on_standby(PGconn *c)
{
	const char *hs = PQparameterStatus(c, "in_hot_standby");
	const char *ro = PQparameterStatus(c, "default_transaction_read_only");

	return (hs && strcmp(hs, "on") == 0) || (ro && strcmp(ro, "on") == 0);
}

void db_release(store *s, int idx)
{
	struct slot *sl = &s->slots[idx];

	pthread_mutex_lock(&s->mu);
	if (sl->conn && (PQstatus(sl->conn) != CONNECTION_OK ||
			 PQtransactionStatus(sl->conn) != PQTRANS_IDLE ||
			 (!s->reads_only && on_standby(sl->conn)))) {
		PQfinish(sl->conn);
		sl->conn = NULL;
	}
	sl->busy = false;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

PGconn *db_conn(store *s, int idx)
{
	return s->slots[idx].conn;
}

void db_drop_conn(store *s, int idx)
{
	PQfinish(s->slots[idx].conn);
	s->slots[idx].conn = NULL;
}

void db_result_error(PGconn *conn, const PGresult *r, const char *what, ar_err *err)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (!conn || PQstatus(conn) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0) ||
	    (state && (strcmp(state, "57P01") == 0 || strcmp(state, "57P03") == 0))) {
		log_kv(LOG_WARN, "database connection lost", "statement", what, NULL);
		db_err_unavailable(err, "connection lost");
		return;
	}
	if (state && strcmp(state, "25006") == 0) {
		/* a write reached a standby: the primary moved (failover) */
		log_kv(LOG_WARN, "database is read-only", "statement", what, NULL);
		ar_err_setk(err, 503, "database-read-only", "detail.db_failover", NULL);
		return;
	}
	if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
		      strcmp(state, "55P03") == 0)) {
		ar_err_setk(err, 503, "database-busy", "detail.db_retry", NULL);
		return;
	}
	log_kv(LOG_ERROR, "database error", "statement", what, "sqlstate",
	       state ? state : "?", "error", msg ? msg : PQerrorMessage(conn), NULL);
	db_err_internal(err);
}

bool db_prepare(store *s, int idx, const db_stmt *st, ar_err *err)
{
	struct slot *sl = &s->slots[idx];
	PGresult *r;

	if (s->unnamed || (sl->prepared & (1u << st->bit)))
		return true;
	r = PQprepare(sl->conn, st->name, st->sql, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		db_result_error(sl->conn, r, st->name, err);
		PQclear(r);
		return false;
	}
	PQclear(r);
	sl->prepared |= 1u << st->bit;
	return true;
}

/* Every round trip of the pool is timed and counted (failures as errors);
 * r is the result, checked here: NULL with err set on a failure. */
static PGresult *checked(store *s, int idx, const char *what, int64_t t0, PGresult *r,
			 ar_err *err)
{
	bool ok = result_ok(r);

	metrics_db_query((double)(db_mono_us() - t0) / 1e6, !ok);
	if (ok)
		return r;
	db_result_error(s->slots[idx].conn, r, what, err);
	PQclear(r);
	return NULL;
}

PGresult *db_exec(store *s, int idx, const db_stmt *st, int n, const char *const *vals,
		  ar_err *err)
{
	int64_t t0;

	if (!db_prepare(s, idx, st, err))
		return NULL;
	t0 = db_mono_us();
	return checked(s, idx, st->name, t0,
		       s->unnamed ? PQexecParams(s->slots[idx].conn, st->sql, n, NULL, vals, NULL, NULL, 0)
				  : PQexecPrepared(s->slots[idx].conn, st->name, n, vals, NULL, NULL, 0),
		       err);
}

PGresult *db_exec_sql(store *s, int idx, const char *what, const char *sql, int n,
		      const char *const *vals, ar_err *err)
{
	int64_t t0 = db_mono_us();
	PGconn *c = s->slots[idx].conn;

	return checked(s, idx, what, t0,
		       n ? PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(c, sql), err);
}

PGresult *db_query(store *s, const db_stmt *st, int n, const char *const *vals, ar_err *err)
{
	int idx = db_acquire(s, err);
	PGresult *r;

	if (idx < 0)
		return NULL;
	r = db_exec(s, idx, st, n, vals, err);
	db_release(s, idx);
	return r;
}

PGresult *db_query_sql(store *s, const char *what, const char *sql, int n,
		       const char *const *vals, ar_err *err)
{
	int idx = db_acquire(s, err);
	PGresult *r;

	if (idx < 0)
		return NULL;
	r = db_exec_sql(s, idx, what, sql, n, vals, err);
	db_release(s, idx);
	return r;
}

json_t *db_json_cell(const PGresult *r, int row, int col, ar_err *err)
{
	json_error_t jerr;
	json_t *j = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
			       0, &jerr);
	if (!j) {
		log_kv(LOG_ERROR, "database returned invalid JSON", "error", jerr.text, NULL);
		db_err_internal(err);
	}
	return j;
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
	for (unsigned i = 0; i < n_registered && !s->unnamed; i++) {
		if (s->slots[idx].prepared & (1u << i))
			continue;
		if (!db_prepare(s, idx, registry[i], &err))
			break;
		plan_once(s->slots[idx].conn, registry[i]->name);
	}
	db_release(s, idx);
	return NULL;
}

int store_warm(store *s)
{
	warm_job *jobs = calloc((size_t)s->size, sizeof(*jobs));
	uint32_t all = n_registered >= 32 ? UINT32_MAX : (1u << n_registered) - 1;
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
		ready += s->slots[i].conn && (s->unnamed || s->slots[i].prepared == all);
	pthread_mutex_unlock(&s->mu);
	return ready;
}
