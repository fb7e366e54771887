/* Group commit: concurrent requests' writes share one transaction. */
#include "arbiter/groupcommit.h"

#include <stdlib.h>
#include <string.h>

#include "arbiter/log.h"
#include "arbiter/metrics.h"

/* At most this many requests' writes share a transaction, and at most
 * GC_LEADERS such transactions run at once (one executing while the other
 * waits for its WAL flush). */
#define GC_MAX_BATCH 64
#define GC_LEADERS 2

/* One request's write waiting for a group commit; lives on its owner's
 * stack until done. res (owner PQclears) or err is its outcome. cv wakes
 * its owner alone: when the job is done, or when it is first in the queue
 * and a leader's place has come free. */
typedef struct gc_job {
	const db_stmt *st;
	int n;
	const char *const *vals;
	PGresult *res;
	ar_err *err;
	bool done;
	pthread_cond_t cv;
	struct gc_job *next;
} gc_job;

bool gc_queue_init(gc_queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->leaders = 0;
	return pthread_mutex_init(&q->mu, NULL) == 0;
}

void gc_queue_destroy(gc_queue *q)
{
	pthread_mutex_destroy(&q->mu);
}

/*
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
	PGconn *c = db_conn(s, idx);
	PGresult *r;
	bool sent, failed = false, began = false;

	if (!PQenterPipelineMode(c))
		return false;
	sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	for (gc_job *j = batch; sent && j; j = j->next)
		sent = db_unnamed(s) ? PQsendQueryParams(c, j->st->sql, j->n, NULL, j->vals,
							 NULL, NULL, 0)
				     : PQsendQueryPrepared(c, j->st->name, j->n, j->vals,
							   NULL, NULL, 0);
	sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
	       PQpipelineSync(c);
	if (!sent) {
		/* a connection that cannot send is gone; db_release drops it */
		db_drop_conn(s, idx);
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
					       st ? st : "?", "statement", j ? j->st->name : "begin/commit", NULL);
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
		db_drop_conn(s, idx);
		failed = true;
	} else if (PQtransactionStatus(c) != PQTRANS_IDLE) {
		PQclear(PQexec(c, "ROLLBACK"));
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
	int64_t t0 = db_mono_us();
	int idx;
	bool ok = true;

	ar_err_init(&aerr);
	idx = db_acquire(s, &aerr);
	for (gc_job *j = batch; ok && j; j = j->next)
		ok = idx >= 0 && db_prepare(s, idx, j->st, &aerr);
	if (!ok) {
		for (gc_job *j = batch; j; j = j->next)
			*j->err = aerr;
		goto done;
	}
	if (batch->next && pipeline_run(s, idx, batch)) {
		double dt = (double)(db_mono_us() - t0) / 1e6;
		for (gc_job *j = batch; j; j = j->next)
			metrics_db_query(dt, false);
		goto done;
	}
	for (gc_job *j = batch; j; j = j->next) {
		if (!db_conn(s, idx)) {
			db_err_unavailable(j->err, "connection lost");
			continue;
		}
		j->res = db_exec(s, idx, j->st, j->n, j->vals, j->err);
	}
done:
	if (idx >= 0)
		db_release(s, idx);
}

PGresult *gc_exec(store *s, const db_stmt *st, int n, const char *const *vals, ar_err *err)
{
	gc_queue *q = db_gc(s);
	gc_job job = { .st = st, .n = n, .vals = vals, .err = err };

	if (pthread_cond_init(&job.cv, NULL) != 0) {
		db_err_unavailable(err, "out of resources");
		return NULL;
	}
	pthread_mutex_lock(&q->mu);
	*q->tail = &job;
	q->tail = &job.next;
	while (!job.done) {
		if (q->leaders < GC_LEADERS && q->head) {
			gc_job *batch = q->head, *last = batch;
			for (int k = 1; last->next && k < GC_MAX_BATCH; k++)
				last = last->next;
			q->head = last->next;
			if (!q->head)
				q->tail = &q->head;
			last->next = NULL;
			q->leaders++;
			pthread_mutex_unlock(&q->mu);
			gc_run_batch(s, batch);
			pthread_mutex_lock(&q->mu);
			q->leaders--;
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
			if (q->head)
				pthread_cond_signal(&q->head->cv);
		} else {
			pthread_cond_wait(&job.cv, &q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	pthread_cond_destroy(&job.cv);
	return job.res;
}
