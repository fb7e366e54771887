/* Armed deadlines as the scheduler loads them (see sla.c), and their figures. */
#ifndef ARBITER_STORE_DEADLINES_H
#define ARBITER_STORE_DEADLINES_H

#include <stdbool.h>
#include <stdint.h>
#include "arbiter/db.h"

/* A pending deadline as the scheduler loads it; part says which part of
 * a refill found it (STORE_DUE_*). */
typedef struct {
	char case_id[AR_MAX_ID_LEN + 1];
	char name[32];
	int armed_version;
	int64_t due_ms;
	int64_t armed_ms;
	bool reminded;
	uint8_t part;
} store_due;

enum { STORE_DUE_EXPIRY, STORE_DUE_REMINDER, STORE_DUE_ARMED };

/*
 * Arming closer than this to due_at puts a deadline into the partial index
 * case_deadlines_short_idx (013_short_armings.sql, whose predicate must
 * say the same): the only deadlines that can enter the scheduler's
 * horizon by being armed rather than by time passing.
 */
#define STORE_SHORT_ARMING_MS 300000

/*
 * One refill of the scheduler, one statement, in three parts of at most
 * cap rows each (out has room for 3 * cap):
 *   expiries:  due_at in [exp_from_us, now + horizon_ms), earliest first;
 *   reminders: not reminded, due_at in [rem_from_us, now + horizon_ms +
 *              before_ms) and still ahead, earliest first;
 *   armed:     short armings (above) with armed_at >= armed_from_us, oldest
 *              first; none when armed_cap is 0.
 * Times are microseconds since the epoch by the database's clock; 0 as a
 * lower bound takes everything.
 */
typedef struct {
	int64_t horizon_ms, before_ms;
	int64_t exp_from_us, rem_from_us, armed_from_us;
	size_t cap, armed_cap;
} store_due_query;
typedef struct {
	int64_t now_us;                         /* the statement's now() */
	size_t n[3];                            /* rows of each part */
	int64_t last_us[3];                     /* the last row's due_at (armed_at for armed) */
} store_due_result;
bool store_due_refill(store *s, const store_due_query *q, store_due *out,
		      store_due_result *res, ar_err *err) AR_MUSTCHECK;
/* Pending deadlines and the oldest overdue one (seconds), for metrics. */
bool store_deadline_stats(store *s, int64_t *pending, double *oldest_overdue_s,
			  ar_err *err) AR_MUSTCHECK;
#endif
