/*
 * The PostgreSQL connection pool, and the one way every store module runs a
 * statement on it: a fixed pool of libpq connections opened on first use,
 * named statements prepared once per connection, every round trip timed.
 *
 * The db_query* helpers do acquire / execute / check / release once: they
 * return a result whose status is COMMAND_OK or TUPLES_OK (the caller
 * PQclears it; it outlives the connection) or NULL with err filled: 503
 * "database-unavailable" when PostgreSQL cannot be reached or the connection
 * was lost, 503 "database-busy" for a serialization failure, 500 only for a
 * bug (logged with the statement's name and SQLSTATE, never its values).
 */
#ifndef ARBITER_DB_H
#define ARBITER_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "arbiter/model.h"

typedef struct store store;

/*
 * A named statement. Each lives beside the functions that run it, as a
 * static of its module registered before main (DB_REGISTER), so that a
 * connection can prepare them all when it warms up; bit is the pool's.
 */
typedef struct {
	const char *name;
	const char *sql;
	unsigned bit;
} db_stmt;

#define DB_MAX_STMTS 32
void db_register(db_stmt *st);
#define DB_REGISTER(st) \
	__attribute__((constructor)) static void db_register_##st(void) { db_register(&st); }

/* Creates the pool; connections open on first use (or in store_warm), so
 * an unreachable database does not stop start-up (readiness reports it).
 * NULL only on OOM; store_close frees it (NULL is fine). */
store *store_open(const char *conninfo, int pool_size);
void store_close(store *s);
/* on (the default): each statement is prepared once per connection and run
 * by name. off (ARBITER_DB_PREPARED=false): the same SQL is sent with every
 * call as an unnamed statement, for a pooler in transaction mode (pgbouncer
 * 1.18), which hands each transaction any server connection, where a name
 * prepared on another is unknown. Set before the first query. */
void store_use_prepared(store *s, bool on);
bool db_unnamed(const store *s);
/* A pool for reads on a replica (ARBITER_READ_DATABASE_URL): a connection
 * to a standby is kept, where the primary's pool drops it. */
void store_reads_only(store *s);
/* Opens every pooled connection at once and prepares and plans every
 * registered statement on each, so that the first requests after a start
 * do not pay each backend's cold start. Returns how many connections are
 * ready; the rest connect on first use. */
int store_warm(store *s);

/* size slots: in_use busy, broken whose last connect failed, the rest idle
 * (connected, or opened on first use). */
typedef struct {
	int size, in_use, broken;
} store_pool_stats;
void store_pool_stats_get(store *s, store_pool_stats *out);

/* One statement on a connection of its own (acquire, run, check, release). */
PGresult *db_query(store *s, const db_stmt *st, int n, const char *const *vals,
		   ar_err *err) AR_MUSTCHECK;
/* The same for SQL sent unnamed (planned with its values each time), what
 * names it in logs. n == 0 sends it as a simple query (several statements
 * may then share the text). */
PGresult *db_query_sql(store *s, const char *what, const char *sql, int n,
		       const char *const *vals, ar_err *err) AR_MUSTCHECK;

/* For several statements on one connection: a slot index, or -1 with err. */
int db_acquire(store *s, ar_err *err) AR_MUSTCHECK;
/* Gives the slot back; a connection that is broken or left inside a
 * transaction is closed (the next use reconnects). */
void db_release(store *s, int idx);
PGconn *db_conn(store *s, int idx);
/* Closes slot idx's connection at once (one that cannot send). */
void db_drop_conn(store *s, int idx);
bool db_prepare(store *s, int idx, const db_stmt *st, ar_err *err) AR_MUSTCHECK;
PGresult *db_exec(store *s, int idx, const db_stmt *st, int n, const char *const *vals,
		  ar_err *err) AR_MUSTCHECK;
PGresult *db_exec_sql(store *s, int idx, const char *what, const char *sql, int n,
		      const char *const *vals, ar_err *err) AR_MUSTCHECK;

/* Cell (row, col) parsed as JSON: a new reference, or NULL with err (500). */
json_t *db_json_cell(const PGresult *r, int row, int col, ar_err *err);

/* A connection outside the pool, for the one-shot subcommands (migrate,
 * verify): the caller PQfinishes it, whatever its status. */
PGconn *db_connect(const char *conninfo);

/* Maps a failed result to err and logs it (see the top of this file). */
void db_result_error(PGconn *conn, const PGresult *r, const char *what, ar_err *err);
void db_err_unavailable(ar_err *err, const char *why);
void db_err_internal(ar_err *err);
void db_err_oom(ar_err *err);

int64_t db_mono_us(void);

/* The group-commit queue of this pool (groupcommit.c owns its contents). */
struct gc_queue *db_gc(store *s);
#endif
