/*
 * A share of wall time for background work, and when the work is wanted
 * at all at that share: the policy backtest's throttle (backtest_job.c).
 *
 * Busy time (the worker's CPU and its queries' time) is spent against an
 * allowance of share % of the wall time that passed; when it runs ahead,
 * pacer_wait says how long to sleep until it no longer does. Idle time is
 * banked only up to PACER_CREDIT_US, so a pause is not followed by a long
 * burst at full speed.
 *
 * Whether the share applies: while the database writes (its WAL advances)
 * faster than PACER_LIVE_WAL_BPS, live traffic is there and the share
 * holds (live); below it nobody is served and the work may take what
 * it can. The first window counts as live.
 *
 * Pure: times are the caller's monotonic microseconds, nothing here reads
 * a clock or sleeps. Plain structs, no allocation.
 */
#ifndef ARBITER_PACER_H
#define ARBITER_PACER_H

#include <stdbool.h>
#include <stdint.h>

#define PACER_CREDIT_US 5000          /* idle time that may be banked */
#define PACER_WINDOW_US 500000        /* how often liveness is judged */
#define PACER_LIVE_WAL_BPS (32 * 1024) /* WAL bytes/s above which others are served */

typedef struct {
	int share;          /* percent of wall time that may be busy, 1..100 */
	bool live;          /* the share applies (else no waits) */
	int64_t origin_us;  /* the allowance counts from here */
	int64_t busy_us;    /* spent since origin_us */
	int64_t waited_us;  /* slept, in total (what pacer_wait asked for) */
	int64_t live_us;    /* wall time under the share, in total */
	int64_t window_us;  /* the current liveness window's start; 0: none yet */
	uint64_t window_lsn;
	int64_t since_us;   /* when live last changed */
} pacer;

/* share is clamped to 1..100. */
void pacer_init(pacer *p, int share, int64_t now_us);

/* Busy time spent (CPU, or a query's time until its result arrived). */
void pacer_spend(pacer *p, int64_t busy_us);

/* How long to wait at now before more work: 0 when within the share or
 * not live. The caller sleeps that long; it is counted as waited. */
int64_t pacer_wait(pacer *p, int64_t now_us);

/* Is a liveness reading due at now (a window has passed)? */
bool pacer_reading_due(const pacer *p, int64_t now_us);

/* A reading of the database's WAL position (its insert position on a
 * primary, its replay position on a standby) at now: updates live when a
 * window has passed since the last reading; a position that went back (a
 * failover) counts as live. */
void pacer_reading(pacer *p, int64_t now_us, uint64_t lsn);

/* Wall time spent under the share up to now. */
int64_t pacer_live_us(const pacer *p, int64_t now_us);

#endif
