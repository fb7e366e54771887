/* Reporting reads: the stats and queue queries, case counts for metrics. */
#ifndef ARBITER_STORE_STATS_H
#define ARBITER_STORE_STATS_H

#include <jansson.h>
#include "arbiter/casefsm.h"
#include "arbiter/db.h"

/* Runs one read-only statement (parameters only) whose single row and
 * column is JSON; *out is a new reference. For the reporting queries. */
bool store_query_json(store *s, const char *what, const char *sql, int n,
		      const char *const *vals, json_t **out, ar_err *err) AR_MUSTCHECK;

/* Cases by state and kind, for the arbiter_cases gauge (one GROUP BY;
 * the scheduler refreshes it every few seconds, never a scrape). */
bool store_case_counts(store *s, int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT],
		       ar_err *err) AR_MUSTCHECK;

/* Folds a batch of the stats counters' deltas into the counters (sql/026);
 * *folded says how many (0 also when another replica is folding). */
bool store_stats_compact(store *s, int64_t *folded, ar_err *err) AR_MUSTCHECK;
#endif
