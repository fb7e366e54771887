/*
 * Group commit: concurrent requests' single-statement writes share one
 * transaction and one WAL flush (see groupcommit.c for why and how).
 */
#ifndef ARBITER_GROUPCOMMIT_H
#define ARBITER_GROUPCOMMIT_H

#include <pthread.h>
#include "arbiter/db.h"

struct gc_job;

/* Lives inside the pool (db.c embeds it); only groupcommit.c looks inside. */
typedef struct gc_queue {
	pthread_mutex_t mu;
	struct gc_job *head, **tail;
	int leaders;
} gc_queue;

bool gc_queue_init(gc_queue *q) AR_MUSTCHECK;
void gc_queue_destroy(gc_queue *q);

/* Runs one prepared write in a shared transaction, and returns once that
 * committed: its result (caller PQclears) or NULL with err set. Each
 * statement must stand alone (its conditions in its WHERE clauses), so
 * that sharing a transaction changes no outcome. */
PGresult *gc_exec(store *s, const db_stmt *st, int n, const char *const *vals,
		  ar_err *err) AR_MUSTCHECK;
#endif
