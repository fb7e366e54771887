/*
 * Running a backtest: the stream of recorded cases (store_backtests.h)
 * through the replay (backtest.h), on one connection of its own, and the
 * background jobs POST /v1/policy/backtests starts.
 *
 * Its share is capped. One connection (to ARBITER_READ_DATABASE_URL when
 * set, else ARBITER_DATABASE_URL), batches each one statement (its own
 * read-only transaction), no parallel workers. While the database serves
 * others (its WAL moves faster than PACER_LIVE_WAL_BPS; pacer.h) the
 * run's busy time, its thread's CPU plus its queries' time, is at most
 * share percent of the wall time (ARBITER_BACKTEST_SHARE; on two cores a
 * busy core, however niced, tripled the create p99), in batches of
 * BACKTEST_BATCH_LIVE; on a quiet database it runs at full speed in
 * batches of BACKTEST_BATCH, the next read while one is replayed. A
 * job's thread runs at nice BACKTEST_NICE, below the request threads.
 * Memory is two batches (one replayed, the next arriving) and one bounded
 * report.
 */
#ifndef ARBITER_BACKTEST_JOB_H
#define ARBITER_BACKTEST_JOB_H

#include <jansson.h>

#include "arbiter/app.h"
#include "arbiter/backtest.h"

#define BACKTEST_BATCH 1000
#define BACKTEST_BATCH_LIVE 100 /* under the share: a query is one short burst */
#define BACKTEST_SHARE_MIN CONFIG_BACKTEST_SHARE_MIN /* percent */
#define BACKTEST_MAX_JOBS 2     /* running at once per process */
#define BACKTEST_NICE 10        /* the job thread's nice value: requests come first */

/* Called after every batch with the cases seen so far; false stops the run
 * (err then says "stopped"). */
typedef bool (*backtest_progress_fn)(void *ctx, int64_t seen);

/* The database a backtest reads: the replica URL when configured. */
const char *backtest_read_url(const ar_app *app);

/*
 * Replays the selected cases under draft, reading url, busy at most share
 * percent of the time while the database serves others
 * (BACKTEST_SHARE_MIN..100), and fills *report (a new reference; its "run"
 * says the share and how long it held). now: how long a case still open has waited is
 * measured to it. false with err when the database fails or progress
 * stopped it; per-case problems are in the report, not errors.
 */
bool backtest_run(const char *url, const policy *draft, const backtest_selection *sel,
		  int share, ar_time now, backtest_progress_fn progress, void *ctx, json_t **report,
		  ar_err *err) AR_MUSTCHECK;

/* How many cases sel holds, read on url (a progress bar's whole). */
bool backtest_count(const char *url, const backtest_selection *sel, int64_t *n,
		    ar_err *err) AR_MUSTCHECK;

/* Starts job id (its row written by the caller) in a thread of its own;
 * takes draft in every case. 409 "backtest-limit" when BACKTEST_MAX_JOBS
 * are running. */
bool backtest_job_start(ar_app *app, const char *id, policy *draft,
			const backtest_selection *sel, ar_err *err) AR_MUSTCHECK;

/* Start-up: fails the jobs whose process stopped (store_backtest_sweep). */
void backtest_jobs_sweep(ar_app *app);
/* Shutdown: stops every running job (each is recorded failed) and waits
 * for its thread. */
void backtest_jobs_stop(void);

#endif
