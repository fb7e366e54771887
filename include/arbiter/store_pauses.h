/*
 * Pausing and resuming a case's deadline (sql/022): one statement each
 * that locks the case, moves the deadline, counts the change as a new case
 * version and writes the deadline.paused / deadline.resumed event.
 */
#ifndef ARBITER_STORE_PAUSES_H
#define ARBITER_STORE_PAUSES_H

#include "arbiter/db.h"

typedef enum {
	STORE_PAUSE_OK,
	STORE_PAUSE_NO_CASE,        /* no such case (in the key's shops) */
	STORE_PAUSE_NO_DEADLINE,    /* the case has no such deadline armed */
	STORE_PAUSE_PAUSED,         /* pause: it is paused already */
	STORE_PAUSE_RUNNING,        /* resume: it is not paused */
	STORE_PAUSE_DUE,            /* pause: it is due (its expiry comes first) */
} store_pause_result;

typedef struct {
	const char *case_id;
	const char *shop_scope;     /* text[] literal or NULL (every shop) */
	const char *deadline;
	bool resume;
	const char *actor_role, *actor_id;
	const char *reason;         /* NULL: none given */
} store_pause;

bool store_deadline_pause(store *s, const store_pause *p, store_pause_result *out,
			  ar_err *err) AR_MUSTCHECK;

#endif
