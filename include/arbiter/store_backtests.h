/*
 * Backtests in PostgreSQL (migration 021): the job rows any replica reads,
 * the activation record that names the backtest a policy was judged on, and
 * the stream of recorded cases a job replays (keyset batches, each in its
 * own read-only transaction, on the job's own connection).
 *
 * Every function that can fail returns false and fills ar_err (db.h).
 */
#ifndef ARBITER_STORE_BACKTESTS_H
#define ARBITER_STORE_BACKTESTS_H

#include <jansson.h>
#include <libpq-fe.h>

#include "arbiter/backtest.h"
#include "arbiter/db.h"

/* A running job whose heartbeat is older than this is failed: the process
 * that ran it stopped. Batches beat far more often. */
#define STORE_BACKTEST_STALE_S 60

bool store_backtest_create(store *s, const char *id, const char *by, const char *version,
			   const char *policy_text, const char *selection_json,
			   ar_err *err) AR_MUSTCHECK;
/* The job's heartbeat and progress; state "running", "done" (with report)
 * or "failed" (with error). */
bool store_backtest_update(store *s, const char *id, const char *state, int64_t seen,
			   const char *report_json, const char *error, ar_err *err) AR_MUSTCHECK;
/* The job as GET shows it (a stale running job is failed first). 404
 * when there is none. *out is a new reference. */
bool store_backtest_get(store *s, const char *id, json_t **out, ar_err *err) AR_MUSTCHECK;
/* Fails every running job whose heartbeat stopped (start-up). */
bool store_backtest_sweep(store *s, int *n_failed, ar_err *err) AR_MUSTCHECK;
/* Records an activation of version by actor, naming backtest_id (NULL:
 * none); 422 naming /query/backtest_id when no such backtest exists. */
bool store_policy_activation(store *s, const char *version, const char *actor,
			     const char *backtest_id, ar_err *err) AR_MUSTCHECK;

/* The stream, on slot idx of s (held by the caller for the whole job):
 * store_backtest_session makes every later statement on it read-only;
 * store_backtest_send starts the query for the next batch of selected
 * cases after (after_ts, after_id) in creation order, without waiting, so
 * the caller replays the previous batch meanwhile; store_backtest_ready
 * tells whether it has arrived, store_backtest_recv waits for it. Columns: id, shop_id, created_at (text, the next call's
 * after_ts), the open event's time (ms), its data (jsonb text), and ms
 * from it to the first event that left the opening state and that event's
 * action (NULL when none). *out is the caller's to PQclear. */
bool store_backtest_session(store *s, int idx, ar_err *err) AR_MUSTCHECK;
bool store_backtest_send(store *s, int idx, const backtest_selection *sel,
			 const char *after_ts, const char *after_id, int limit,
			 ar_err *err) AR_MUSTCHECK;
/* Whether the batch sent has arrived whole (recv would not wait); reads
 * what the socket holds without blocking. */
bool store_backtest_ready(store *s, int idx);
bool store_backtest_recv(store *s, int idx, PGresult **out, ar_err *err) AR_MUSTCHECK;

/* The database's WAL position in bytes on slot idx (nothing in flight
 * there): its insert position on a primary, its replay position on a
 * standby (how the throttle tells live traffic from a quiet database,
 * pacer.h). */
bool store_backtest_wal(store *s, int idx, uint64_t *lsn, ar_err *err) AR_MUSTCHECK;

/* How many cases the selection holds (the CLI's progress bar). */
bool store_backtest_count(store *s, const backtest_selection *sel, int64_t *n,
			  ar_err *err) AR_MUSTCHECK;

#endif
