/* Reporting reads: the stats and queue queries, case counts for metrics,
 * and the folding of the stats counters' deltas (sql/026). */
#include "arbiter/store_stats.h"

#include <stdlib.h>
#include <string.h>

bool store_query_json(store *s, const char *what, const char *sql, int n,
		      const char *const *vals, json_t **out, ar_err *err)
{
	PGresult *r = db_query_sql(s, what, sql, n, vals, err);

	*out = NULL;
	if (!r)
		return false;
	if (PQntuples(r) != 1)
		db_err_internal(err);
	else
		*out = db_json_cell(r, 0, 0, err);
	PQclear(r);
	return *out != NULL;
}

bool store_case_counts(store *s, int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT], ar_err *err)
{
	PGresult *r = NULL;
	int idx = db_acquire(s, err);
	bool ok;

	memset(counts, 0, sizeof(int64_t) * FSM_STATE__COUNT * AR_KIND__COUNT);
	if (idx < 0)
		return false;
	/* A background count: one core, and no JIT compile of a plan that
	 * is thrown away (both showed in profiles of busy servers). */
	r = db_exec_sql(s, idx, "case_counts", "BEGIN; SET LOCAL jit = off;"
			" SET LOCAL max_parallel_workers_per_gather = 0", 0, NULL, err);
	if (r) {
		PQclear(r);
		r = db_exec_sql(s, idx, "case_counts",
				"SELECT state, kind, count(*) FROM cases GROUP BY state, kind", 0, NULL, err);
		PQclear(PQexec(db_conn(s, idx), "COMMIT"));
	}
	for (int i = 0; r && i < PQntuples(r); i++) {
		fsm_state st;
		ar_kind k;
		if (fsm_state_parse(PQgetvalue(r, i, 0), &st) && ar_kind_parse(PQgetvalue(r, i, 1), &k))
			counts[st][k] = strtoll(PQgetvalue(r, i, 2), NULL, 10);
	}
	ok = r != NULL;
	PQclear(r);
	db_release(s, idx);
	return ok;
}

/* Deltas folded per statement: a few seconds of writes at the peak rate,
 * so that one pass of the housekeeping loop empties the table. */
#define STATS_FOLD_BATCH "50000"

bool store_stats_compact(store *s, int64_t *folded, ar_err *err)
{
	static const char *const vals[1] = { STATS_FOLD_BATCH };
	PGresult *r = db_query_sql(s, "stats_compact", "SELECT arbiter_stats_compact($1::int)",
				   1, vals, err);

	*folded = 0;
	if (!r)
		return false;
	if (PQntuples(r) == 1)
		*folded = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return true;
}
