/* Backtest runs: recorded cases streamed in read-only batches on one connection, replayed, reported; the job threads. */
#include "arbiter/backtest_job.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/jsonarena.h"
#include "arbiter/log.h"
#include "arbiter/pacer.h"
#include "arbiter/store_backtests.h"

const char *backtest_read_url(const ar_app *app)
{
	return app->cfg.read_database_url[0] ? app->cfg.read_database_url : app->cfg.database_url;
}

/* One case's open event parsed and its replay's decision: a few tens of
 * kB; a bigger one spills to malloc. */
#define BACKTEST_ARENA (256 * 1024)

static void sleep_us(int64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static int64_t cell_int(const PGresult *r, int row, int col, int64_t dflt)
{
	return PQgetisnull(r, row, col) ? dflt : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The thread's CPU time, in microseconds. */
static int64_t cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The run's throttle: the pacer, fed the thread's CPU and the queries'
 * time. */
typedef struct {
	pacer p;
	int64_t cpu_seen; /* cpu_us() when last spent */
	int64_t cases;    /* replayed in batches begun under the share */
} throttle;

/* Spends the CPU used since the last call, then sleeps what the share
 * asks. */
static void throttle_pace(throttle *t)
{
	int64_t cpu = cpu_us(), wait;

	pacer_spend(&t->p, cpu - t->cpu_seen);
	t->cpu_seen = cpu;
	wait = pacer_wait(&t->p, db_mono_us());
	if (wait > 0)
		sleep_us(wait);
}

/* The next batch: on a quiet database sent while one is replayed. */
typedef struct {
	store *rs;
	int idx;
	const backtest_selection *sel;
	const char *last_ts, *last_id;
	int limit;
	bool more;        /* a next batch is wanted */
	bool in_flight;   /* it has been sent */
	int64_t sent_at;  /* db_mono_us */
	int64_t ready_at; /* when it was seen whole; 0: not yet */
} next_batch;

static bool send_next(next_batch *nb, ar_err *err)
{
	if (!store_backtest_send(nb->rs, nb->idx, nb->sel, nb->last_ts, nb->last_id, nb->limit,
				 err))
		return false;
	nb->in_flight = true;
	nb->sent_at = db_mono_us();
	nb->ready_at = 0;
	return true;
}

/* One batch into the report; false when out of memory, a stored event is
 * not JSON, or sending the next batch failed. */
static bool replay_batch(backtest_report *rep, const policy *draft, const PGresult *r,
			 ar_time now, next_batch *nb, throttle *th, ar_err *err)
{
	for (int i = 0; i < PQntuples(r); i++) {
		json_error_t jerr;
		json_t *data;
		backtest_case c;
		bool ok;

		/* every few cases (a millisecond or two of replay): the share's
		 * wait. On a quiet database the next batch is read meanwhile
		 * (and noted when it has arrived); under the share it is read
		 * after this one, so that its query's time, which the share
		 * counts, is the time waited for it and not this replay's or
		 * sleep's */
		if (i % 32 == 0) {
			throttle_pace(th);
			if (nb->more && !nb->in_flight && !th->p.live && !send_next(nb, err))
				return false;
			if (nb->in_flight && !nb->ready_at && store_backtest_ready(nb->rs, nb->idx))
				nb->ready_at = db_mono_us();
		}
		/* the event and the replayed decision live in the arena only
		 * while this case is added (most of a replay's time was
		 * jansson's malloc and free) */
		json_arena_use(true);
		data = json_loadb(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4), 0, &jerr);
		c = (backtest_case){ PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), data,
				     cell_int(r, i, 3, 0), cell_int(r, i, 5, -1),
				     PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6), now };
		ok = data && backtest_report_add(rep, draft, &c);
		json_decref(data);
		json_arena_use(false);
		if (!ok) {
			ar_err_set(err, data ? 503 : 500, data ? "overloaded" : "internal",
				   "Backtest failed", data ? "out of memory" : "a stored event is not JSON");
			return false;
		}
	}
	return true;
}

/* The next batch's size: small while the share holds (a batch's query is
 * one burst of the backend's CPU), large on a quiet database, and no more
 * than what is left of the sample. */
static int next_limit(const backtest_selection *sel, int64_t seen, bool live)
{
	int batch = live ? BACKTEST_BATCH_LIVE : BACKTEST_BATCH;

	if (sel->sample && sel->sample - seen < batch)
		return (int)(sel->sample - seen);
	return batch;
}

/* A liveness reading when one is due (nothing is in flight on idx). */
static bool read_liveness(store *rs, int idx, throttle *th, ar_err *err)
{
	uint64_t lsn;
	int64_t now = db_mono_us();

	if (!pacer_reading_due(&th->p, now))
		return true;
	if (!store_backtest_wal(rs, idx, &lsn, err))
		return false;
	pacer_reading(&th->p, db_mono_us(), lsn);
	return true;
}

bool backtest_run(const char *url, const policy *draft, const backtest_selection *sel,
		  int share, ar_time now, backtest_progress_fn progress, void *ctx,
		  json_t **report, ar_err *err)
{
	store *rs = store_open(url, 1);
	backtest_report *rep = backtest_report_new(BACKTEST_EXAMPLES);
	PGresult *r = NULL;
	char last_ts[64] = "-infinity", last_id[AR_CASE_ID_LEN + 1] = "";
	next_batch nb = { .rs = rs, .sel = sel, .last_ts = last_ts, .last_id = last_id };
	throttle th = { .cases = 0 };
	int64_t end;
	int idx = -1;
	bool ok = false, arena = false;

	*report = NULL;
	if (share < BACKTEST_SHARE_MIN || share > 100) {
		ar_err_set(err, 500, "internal", "Backtest failed", "share %d%% out of range", share);
		goto fail;
	}
	if (!rs || !rep) {
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	/* the replica may well be a standby: statements go unnamed, and the
	 * one slot is held for the whole run (db_release drops a connection
	 * to a standby) */
	store_use_prepared(rs, false);
	if (sel->created_after != AR_TIME_NONE) {
		/* the keyset's start: (created_at, id) > (after, '') takes
		 * every case at or after it */
		ar_time_format(sel->created_after, last_ts, sizeof(last_ts));
	}
	/* without it the replay is only slower */
	arena = json_arena_begin(BACKTEST_ARENA);
	pacer_init(&th.p, share, db_mono_us());
	th.cpu_seen = cpu_us();
	idx = db_acquire(rs, err);
	if (idx < 0 || !store_backtest_session(rs, idx, err) || !read_liveness(rs, idx, &th, err))
		goto fail;
	nb.idx = idx;
	nb.limit = next_limit(sel, 0, th.p.live);
	if (nb.limit > 0 && !send_next(&nb, err))
		goto fail;
	while (nb.in_flight) {
		int n;

		nb.in_flight = false;
		if (!store_backtest_recv(rs, idx, &r, err))
			goto fail;
		pacer_spend(&th.p, (nb.ready_at ? nb.ready_at : db_mono_us()) - nb.sent_at);
		if (!read_liveness(rs, idx, &th, err))
			goto fail;
		n = PQntuples(r);
		nb.more = n == nb.limit &&
			  (nb.limit = next_limit(sel, backtest_report_seen(rep) + n, th.p.live)) > 0;
		if (n > 0) {
			snprintf(last_ts, sizeof(last_ts), "%s", PQgetvalue(r, n - 1, 2));
			snprintf(last_id, sizeof(last_id), "%s", PQgetvalue(r, n - 1, 0));
		}
		if (th.p.live)
			th.cases += n;
		if (!replay_batch(rep, draft, r, now, &nb, &th, err))
			goto fail;
		PQclear(r);
		r = NULL;
		if (progress && !progress(ctx, backtest_report_seen(rep))) {
			ar_err_set(err, 503, "draining", "Backtest stopped",
				   "stopped: the service shut down (a restart); start it again");
			goto fail;
		}
		if (nb.more && !nb.in_flight) {
			throttle_pace(&th);
			if (!send_next(&nb, err))
				goto fail;
		}
	}
	end = db_mono_us();
	*report = backtest_report_json(rep);
	if (!*report ||
	    json_object_set_new(*report, "run",
				json_pack("{s:i,s:i,s:i,s:I,s:I,s:I}", "share_percent", share,
					  "batch", BACKTEST_BATCH, "batch_under_share",
					  BACKTEST_BATCH_LIVE, "under_share_ms",
					  (json_int_t)(pacer_live_us(&th.p, end) / 1000),
					  "cases_under_share", (json_int_t)th.cases, "waited_ms",
					  (json_int_t)(th.p.waited_us / 1000))) != 0) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "building the report");
		goto fail;
	}
	ok = true;
fail:
	PQclear(r);
	/* a query still in flight leaves the connection busy: db_release
	 * closes it */
	if (idx >= 0)
		db_release(rs, idx);
	store_close(rs);
	backtest_report_free(rep);
	if (arena)
		json_arena_end();
	if (!ok) {
		json_decref(*report);
		*report = NULL;
	}
	return ok;
}

bool backtest_count(const char *url, const backtest_selection *sel, int64_t *n, ar_err *err)
{
	store *rs = store_open(url, 1);
	bool ok;

	if (!rs) {
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		return false;
	}
	store_use_prepared(rs, false);
	ok = store_backtest_count(rs, sel, n, err);
	store_close(rs);
	if (ok && sel->sample && sel->sample < *n)
		*n = sel->sample;
	return ok;
}

/* ------------------------------------------------------------------ */
/* jobs                                                                */

typedef struct {
	ar_app *app;
	char id[48];
	policy *draft;
	backtest_selection sel;
	pthread_t thread;
	int64_t seen;         /* at the last batch (the job's thread only) */
	int64_t beat_at;      /* db_mono_us of the last heartbeat written */
	atomic_bool finished;
} job;

static pthread_mutex_t jobs_mu = PTHREAD_MUTEX_INITIALIZER;
static job *jobs[BACKTEST_MAX_JOBS];
static atomic_bool stopping;

static bool beat(void *ctx, int64_t seen)
{
	job *j = ctx;
	int64_t now = db_mono_us();
	ar_err err;

	ar_err_init(&err);
	j->seen = seen;
	/* batches of 100 come a dozen a second under the share: the row
	 * moves twice a second, far inside STORE_BACKTEST_STALE_S */
	if (now - j->beat_at < 500000)
		return !atomic_load(&stopping);
	j->beat_at = now;
	if (!store_backtest_update(j->app->db, j->id, "running", seen, NULL, NULL, &err))
		log_kv(LOG_WARN, "backtest progress not recorded", "backtest_id", j->id,
		       "error", err.detail, NULL);
	return !atomic_load(&stopping);
}

static void *job_main(void *arg)
{
	job *j = arg;
	json_t *report = NULL;
	char *text = NULL, seen[24];
	ar_err err, werr;
	bool ok;

	ar_err_init(&err);
	ar_err_init(&werr);
	/* Linux nices a thread by its id: the replay yields the CPU to
	 * requests (best effort; an unprivileged process may always lower
	 * its own priority) */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), BACKTEST_NICE) != 0)
		log_kv(LOG_DEBUG, "backtest thread not niced", "backtest_id", j->id, NULL);
	ok = backtest_run(backtest_read_url(j->app), j->draft, &j->sel,
			  j->app->cfg.backtest_share, app_now(), beat, j, &report, &err);
	text = ok ? codec_dumps(report) : NULL;
	if (ok && text) {
		json_t *cases = json_object_get(report, "cases");
		snprintf(seen, sizeof(seen), "%lld",
			 (long long)json_integer_value(json_object_get(cases, "seen")));
		if (!store_backtest_update(j->app->db, j->id, "done",
					   (int64_t)json_integer_value(json_object_get(cases, "seen")),
					   text, NULL, &werr))
			log_kv(LOG_ERROR, "backtest report not recorded", "backtest_id", j->id,
			       "error", werr.detail, NULL);
		else
			log_kv(LOG_INFO, "backtest done", "backtest_id", j->id, "cases", seen, NULL);
	} else {
		if (ok)
			ar_err_set(&err, 503, "overloaded", "Out of memory", "encoding the report");
		if (!store_backtest_update(j->app->db, j->id, "failed", j->seen, NULL, err.detail,
					   &werr))
			log_kv(LOG_ERROR, "backtest failure not recorded", "backtest_id", j->id,
			       "error", werr.detail, NULL);
		log_kv(LOG_WARN, "backtest failed", "backtest_id", j->id, "error", err.detail, NULL);
	}
	free(text);
	json_decref(report);
	atomic_store(&j->finished, true);
	return NULL;
}

static void job_free(job *j)
{
	if (!j)
		return;
	policy_free(j->draft);
	free(j);
}

/* Joins finished jobs' threads and frees their slots; jobs_mu held. */
static void reap(void)
{
	for (int i = 0; i < BACKTEST_MAX_JOBS; i++)
		if (jobs[i] && atomic_load(&jobs[i]->finished)) {
			pthread_join(jobs[i]->thread, NULL);
			job_free(jobs[i]);
			jobs[i] = NULL;
		}
}

bool backtest_job_start(ar_app *app, const char *id, policy *draft,
			const backtest_selection *sel, ar_err *err)
{
	job *j = calloc(1, sizeof(*j));
	int slot = -1;
	bool ok = false;

	if (!j) {
		policy_free(draft);
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		return false;
	}
	j->app = app;
	j->draft = draft;
	j->sel = *sel;
	snprintf(j->id, sizeof(j->id), "%s", id);
	pthread_mutex_lock(&jobs_mu);
	reap();
	for (int i = 0; i < BACKTEST_MAX_JOBS && slot < 0; i++)
		if (!jobs[i])
			slot = i;
	if (atomic_load(&stopping)) {
		ar_err_setk(err, 503, "draining", "detail.shutting_down", NULL);
	} else if (slot < 0) {
		ar_err_setk(err, 409, "backtest-limit", "detail.backtest_limit", "max",
			    AR_INT(BACKTEST_MAX_JOBS), NULL);
	} else if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
		ar_err_setk(err, 503, "overloaded", "detail.no_thread", NULL);
	} else {
		jobs[slot] = j;
		ok = true;
	}
	pthread_mutex_unlock(&jobs_mu);
	if (!ok)
		job_free(j);
	return ok;
}

void backtest_jobs_sweep(ar_app *app)
{
	ar_err err;
	int n = 0;
	char buf[16];

	ar_err_init(&err);
	if (!store_backtest_sweep(app->db, &n, &err)) {
		log_kv(LOG_WARN, "stopped backtests not swept", "error", err.detail, NULL);
		return;
	}
	if (n > 0) {
		snprintf(buf, sizeof(buf), "%d", n);
		log_kv(LOG_INFO, "backtests whose process stopped marked failed", "count", buf, NULL);
	}
}

void backtest_jobs_stop(void)
{
	atomic_store(&stopping, true);
	pthread_mutex_lock(&jobs_mu);
	for (int i = 0; i < BACKTEST_MAX_JOBS; i++)
		if (jobs[i]) {
			pthread_join(jobs[i]->thread, NULL);
			job_free(jobs[i]);
			jobs[i] = NULL;
		}
	pthread_mutex_unlock(&jobs_mu);
}
