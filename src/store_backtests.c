/* Backtest jobs, policy activations and the read-only stream of recorded cases a job replays. */
#include "arbiter/store_backtests.h"

#include "arbiter/errmsg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Job statements are rare (a start, a beat per batch, a poll): sent
 * unnamed rather than prepared on every pooled connection. */
#define JOB_JSON(t)                                                                     \
	"json_strip_nulls(json_build_object('id', " t ".id, 'state', " t ".state,"      \
	" 'created_at', arbiter_ts(" t ".created_at), 'updated_at', arbiter_ts(" t ".updated_at)," \
	" 'finished_at', arbiter_ts(" t ".finished_at), 'created_by', " t ".created_by,"  \
	" 'policy_version', " t ".policy_version, 'selection', " t ".selection,"        \
	" 'progress', json_build_object('seen', " t ".seen), 'report', " t ".report,"   \
	" 'error', " t ".error))"

#define STALE_ERROR "the process running it stopped before it finished (a restart or a crash)"

static const char create_sql[] =
	"INSERT INTO policy_backtests (id, state, created_by, policy_version, policy, selection)"
	" VALUES ($1, 'running', $2, $3, $4::jsonb, $5::jsonb)";

static const char update_sql[] =
	"UPDATE policy_backtests SET state = $2, seen = $3::bigint, updated_at = now(),"
	"   finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END,"
	"   report = $4::jsonb, error = $5"
	" WHERE id = $1 AND state = 'running'";

/* A stale running job is failed by the read that finds it: the CTE's
 * update is not visible to the rest of the statement, so its row is
 * taken from the CTE when there is one. */
static const char get_sql[] =
	"WITH f AS (UPDATE policy_backtests SET state = 'failed', finished_at = now(),"
	"   error = '" STALE_ERROR "'"
	"  WHERE id = $1 AND state = 'running'"
	"    AND updated_at < now() - $2::int * interval '1 second' RETURNING *)"
	" SELECT " JOB_JSON("f") " FROM f"
	" UNION ALL SELECT " JOB_JSON("b") " FROM policy_backtests b"
	"  WHERE b.id = $1 AND NOT EXISTS (SELECT 1 FROM f)";

static const char sweep_sql[] =
	"UPDATE policy_backtests SET state = 'failed', finished_at = now(),"
	"   error = '" STALE_ERROR "'"
	" WHERE state = 'running' AND updated_at < now() - $1::int * interval '1 second'";

static const char activation_sql[] =
	"INSERT INTO policy_activations (version, actor_id, backtest_id)"
	" SELECT $1, $2, $3 WHERE $3::text IS NULL"
	"     OR EXISTS (SELECT 1 FROM policy_backtests WHERE id = $3)";

/* The open event (seq 1) and the first event that left the opening state,
 * found through case_events' primary key; cases in (created_at, id) order
 * through cases_created_idx. */
static const char batch_sql[] =
	"SELECT c.id, c.shop_id, c.created_at::text,"
	"       floor(extract(epoch FROM e.at) * 1000)::bigint, e.data::text,"
	"       floor(extract(epoch FROM x.at - e.at) * 1000)::bigint, x.action"
	"  FROM cases c"
	"  JOIN case_events e ON e.case_id = c.id AND e.seq = 1"
	"  LEFT JOIN LATERAL (SELECT n.at, n.action FROM case_events n"
	"     WHERE n.case_id = c.id AND n.seq > 1 AND n.from_state IS DISTINCT FROM n.to_state"
	"     ORDER BY n.seq LIMIT 1) x ON true"
	" WHERE (c.created_at, c.id) > ($1::timestamptz, $2::text)"
	"   AND ($3::timestamptz IS NULL OR c.created_at < $3::timestamptz)"
	"   AND ($4::text[] IS NULL OR c.shop_id = ANY ($4::text[]))"
	"   AND ($5::text[] IS NULL OR c.kind = ANY ($5::text[]))"
	"   AND ($6::text[] IS NULL OR c.reason = ANY ($6::text[]))"
	" ORDER BY c.created_at, c.id LIMIT $7::int";

/* For the CLI's progress bar only: the whole selection is counted once. */
static const char count_sql[] =
	"SELECT count(*) FROM cases c"
	" WHERE ($1::timestamptz IS NULL OR c.created_at >= $1::timestamptz)"
	"   AND ($2::timestamptz IS NULL OR c.created_at < $2::timestamptz)"
	"   AND ($3::text[] IS NULL OR c.shop_id = ANY ($3::text[]))"
	"   AND ($4::text[] IS NULL OR c.kind = ANY ($4::text[]))"
	"   AND ($5::text[] IS NULL OR c.reason = ANY ($5::text[]))";

bool store_backtest_create(store *s, const char *id, const char *by, const char *version,
			   const char *policy_text, const char *selection_json, ar_err *err)
{
	const char *vals[5] = { id, by, version, policy_text, selection_json };
	PGresult *r = db_query_sql(s, "backtest_create", create_sql, 5, vals, err);

	PQclear(r);
	return r != NULL;
}

bool store_backtest_update(store *s, const char *id, const char *state, int64_t seen,
			   const char *report_json, const char *error, ar_err *err)
{
	char n[24];
	const char *vals[5] = { id, state, n, report_json, error };
	PGresult *r;

	snprintf(n, sizeof(n), "%" PRId64, seen);
	r = db_query_sql(s, "backtest_update", update_sql, 5, vals, err);
	PQclear(r);
	return r != NULL;
}

bool store_backtest_get(store *s, const char *id, json_t **out, ar_err *err)
{
	char stale[16];
	const char *vals[2] = { id, stale };
	PGresult *r;

	*out = NULL;
	snprintf(stale, sizeof(stale), "%d", STORE_BACKTEST_STALE_S);
	r = db_query_sql(s, "backtest_get", get_sql, 2, vals, err);
	if (!r)
		return false;
	if (PQntuples(r) == 0)
		ar_err_setk(err, 404, "not-found", "detail.no_backtest", "id", id, NULL);
	else
		*out = db_json_cell(r, 0, 0, err);
	PQclear(r);
	return *out != NULL;
}

bool store_backtest_sweep(store *s, int *n_failed, ar_err *err)
{
	char stale[16];
	const char *vals[1] = { stale };
	PGresult *r;

	snprintf(stale, sizeof(stale), "%d", STORE_BACKTEST_STALE_S);
	r = db_query_sql(s, "backtest_sweep", sweep_sql, 1, vals, err);
	if (!r)
		return false;
	*n_failed = atoi(PQcmdTuples(r));
	PQclear(r);
	return true;
}

bool store_policy_activation(store *s, const char *version, const char *actor,
			     const char *backtest_id, ar_err *err)
{
	const char *vals[3] = { version, actor, backtest_id };
	PGresult *r = db_query_sql(s, "policy_activation", activation_sql, 3, vals, err);
	bool ok;

	if (!r)
		return false;
	ok = atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	if (!ok)
		ar_err_fieldk(err, "/query/backtest_id", "field.no_backtest", "id", backtest_id, NULL);
	return ok;
}

bool store_backtest_session(store *s, int idx, ar_err *err)
{
	/* every batch is one statement, so its own implicit transaction: no
	 * snapshot held across the job, and read-only even on a primary, so
	 * it can never write. No parallel workers: they would be backends
	 * beyond the one the share caps (and on 2 cores a parallel plan of a
	 * batch took twice as long as a plain one). */
	PGresult *r = db_exec_sql(s, idx, "backtest_session",
				  "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;"
				  " SET max_parallel_workers_per_gather = 0", 0, NULL, err);

	PQclear(r);
	return r != NULL;
}

bool store_backtest_send(store *s, int idx, const backtest_selection *sel,
			 const char *after_ts, const char *after_id, int limit, ar_err *err)
{
	char before[40], lim[16];
	const char *vals[7] = { after_ts, after_id, NULL, sel->has_shops ? sel->shops : NULL,
				sel->has_kinds ? sel->kinds : NULL,
				sel->has_reasons ? sel->reasons : NULL, lim };
	PGconn *c = db_conn(s, idx);

	if (sel->created_before != AR_TIME_NONE) {
		ar_time_format(sel->created_before, before, sizeof(before));
		vals[2] = before;
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	if (!PQsendQueryParams(c, batch_sql, 7, NULL, vals, NULL, NULL, 0)) {
		db_result_error(c, NULL, "backtest_batch", err);
		return false;
	}
	return true;
}

bool store_backtest_ready(store *s, int idx)
{
	PGconn *c = db_conn(s, idx);

	/* a broken connection reads "ready": store_backtest_recv reports it */
	return !PQconsumeInput(c) || !PQisBusy(c);
}

bool store_backtest_recv(store *s, int idx, PGresult **out, ar_err *err)
{
	PGconn *c = db_conn(s, idx);
	PGresult *r, *first = NULL;

	/* the one result, then the NULL that ends the command */
	while ((r = PQgetResult(c)) != NULL) {
		if (first)
			PQclear(r);
		else
			first = r;
	}
	*out = NULL;
	if (!first || PQresultStatus(first) != PGRES_TUPLES_OK) {
		db_result_error(c, first, "backtest_batch", err);
		PQclear(first);
		return false;
	}
	*out = first;
	return true;
}

bool store_backtest_count(store *s, const backtest_selection *sel, int64_t *n, ar_err *err)
{
	char after[40], before[40];
	const char *vals[5] = { NULL, NULL, sel->has_shops ? sel->shops : NULL,
				sel->has_kinds ? sel->kinds : NULL,
				sel->has_reasons ? sel->reasons : NULL };
	PGresult *r;

	if (sel->created_after != AR_TIME_NONE) {
		ar_time_format(sel->created_after, after, sizeof(after));
		vals[0] = after;
	}
	if (sel->created_before != AR_TIME_NONE) {
		ar_time_format(sel->created_before, before, sizeof(before));
		vals[1] = before;
	}
	r = db_query_sql(s, "backtest_count", count_sql, 5, vals, err);
	if (!r)
		return false;
	*n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return true;
}

bool store_backtest_wal(store *s, int idx, uint64_t *lsn, ar_err *err)
{
	/* a standby cannot insert WAL; what it replays is the primary's
	 * writes reaching it */
	PGresult *r = db_exec_sql(s, idx, "backtest_wal",
				  "SELECT (CASE WHEN pg_is_in_recovery()"
				  "  THEN coalesce(pg_last_wal_replay_lsn(), '0/0')"
				  "  ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::text",
				  0, NULL, err);

	if (!r)
		return false;
	*lsn = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return true;
}
