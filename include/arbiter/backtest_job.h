/*
 * Running a backtest: the stream of recorded cases (store_backtests.h)
 * through the replay (backtest.h), on one connection of its own, and the
 * background jobs POST /v1/policy/backtests starts.
 *
 * Its share of the database is capped: one connection (to
 * ARBITER_READ_DATABASE_URL when set, else ARBITER_DATABASE_URL), batches
 * of BACKTEST_BATCH cases each one statement (its own read-only
 * transaction), and that connection busy with a query at most db_share
 * percent of the run's time (ARBITER_BACKTEST_DB_SHARE): after a query
 * that took t (until its batch had arrived), the next is sent no sooner
 * than t * 100 / db_share after it, and as soon as that moment passes,
 * even while the batch before is still being replayed. No parallel
 * workers. A job's thread runs at nice BACKTEST_NICE, below the request
 * threads.
 * Memory is two batches (one replayed, the next arriving) and one bounded
 * report.
 */
#ifndef ARBITER_BACKTEST_JOB_H
#define ARBITER_BACKTEST_JOB_H

#include <jansson.h>

#include "arbiter/app.h"
#include "arbiter/backtest.h"

#define BACKTEST_BATCH 1000
#define BACKTEST_SHARE_MIN 5    /* percent: ARBITER_BACKTEST_DB_SHARE's floor */
#define BACKTEST_MAX_JOBS 2     /* running at once per process */
#define BACKTEST_NICE 10        /* the job thread's nice value: requests come first */

/* Called after every batch with the cases seen so far; false stops the run
 * (err then says "stopped"). */
typedef bool (*backtest_progress_fn)(void *ctx, int64_t seen);

/* The database a backtest reads: the replica URL when configured. */
const char *backtest_read_url(const ar_app *app);

/*
 * Replays the selected cases under draft, reading url with the connection
 * busy at most db_share percent of the time (BACKTEST_SHARE_MIN..100), and
 * fills *report (a new reference; its "run" says the share). now: how long a case still open has waited is
 * measured to it. false with err when the database fails or progress
 * stopped it; per-case problems are in the report, not errors.
 */
bool backtest_run(const char *url, const policy *draft, const backtest_selection *sel,
		  int db_share, ar_time now, backtest_progress_fn progress, void *ctx, json_t **report,
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
