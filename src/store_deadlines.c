/* Deadlines as the scheduler loads them, and their figures for metrics. */
#include "arbiter/store_deadlines.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/*
 * The scheduler's refill (sla.c says why these three parts find every
 * deadline). Sent unnamed so that each is planned with its bounds: each
 * part is an index range scan (due_idx, remind_idx, short_idx), reading
 * only the rows it returns. The last row carries the statement's now().
 */
bool store_due_refill(store *s, const store_due_query *q, store_due *out,
		      store_due_result *res, ar_err *err)
{
	char ef[24], rf[24], af[24], hz[24], bf[24], cap[24], acap[24];
	const char *vals[7] = { ef, rf, af, hz, bf, cap, acap };
	PGresult *r;
	size_t n = 0;
	bool ok = false;

	memset(res, 0, sizeof(*res));
	snprintf(ef, sizeof(ef), "%" PRId64, q->exp_from_us);
	snprintf(rf, sizeof(rf), "%" PRId64, q->rem_from_us);
	snprintf(af, sizeof(af), "%" PRId64, q->armed_from_us);
	snprintf(hz, sizeof(hz), "%" PRId64, q->horizon_ms);
	snprintf(bf, sizeof(bf), "%" PRId64, q->before_ms);
	snprintf(cap, sizeof(cap), "%zu", q->cap);
	snprintf(acap, sizeof(acap), "%zu", q->armed_cap);
#define DUE_COLS "case_id, name, armed_version, due_at, reminded, armed_at FROM case_deadlines"
#define DUE_FROM(n) "'epoch'::timestamptz + $" #n "::bigint * interval '1 microsecond'"
	r = db_query_sql(s, "due_refill",
		"SELECT p, case_id, name, armed_version,"
		"       floor(extract(epoch FROM due_at) * 1000000)::bigint, reminded,"
		"       floor(extract(epoch FROM armed_at) * 1000000)::bigint,"
		"       floor(extract(epoch FROM now()) * 1000000)::bigint FROM ("
		" (SELECT 0 AS p, " DUE_COLS
		"   WHERE due_at >= " DUE_FROM(1)
		"     AND due_at < now() + $4::bigint * interval '1 millisecond'"
		"   ORDER BY due_at LIMIT $6::int)"
		" UNION ALL"
		" (SELECT 1, " DUE_COLS
		"   WHERE NOT reminded AND due_at > now() AND due_at >= " DUE_FROM(2)
		"     AND due_at < now() + ($4::bigint + $5::bigint) * interval '1 millisecond'"
		"   ORDER BY due_at LIMIT $6::int)"
		" UNION ALL"
		/* the predicate of case_deadlines_short_idx, word for word
		 * (STORE_SHORT_ARMING_MS) */
		" (SELECT 2, " DUE_COLS
		"   WHERE due_at - armed_at < interval '5 minutes' AND armed_at >= " DUE_FROM(3)
		"   ORDER BY armed_at LIMIT $7::int)"
		" UNION ALL"
		" SELECT 3, NULL, NULL, NULL, NULL, NULL, NULL) x",
		7, vals, err);
#undef DUE_FROM
#undef DUE_COLS
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r); i++) {
		int part = atoi(PQgetvalue(r, i, 0));
		store_due *d;
		if (part < 0 || part > 2) {
			res->now_us = strtoll(PQgetvalue(r, i, 7), NULL, 10);
			continue;
		}
		if (n >= 3 * q->cap)
			continue;
		d = &out[n++];
		snprintf(d->case_id, sizeof(d->case_id), "%s", PQgetvalue(r, i, 1));
		snprintf(d->name, sizeof(d->name), "%s", PQgetvalue(r, i, 2));
		d->armed_version = atoi(PQgetvalue(r, i, 3));
		d->due_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10) / 1000;
		d->reminded = PQgetvalue(r, i, 5)[0] == 't';
		d->armed_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10) / 1000;
		d->part = (uint8_t)part;
		res->n[part]++;
		{
			int64_t us = strtoll(PQgetvalue(r, i, part == 2 ? 6 : 4), NULL, 10);
			if (us > res->last_us[part])
				res->last_us[part] = us;
		}
	}
	ok = res->now_us > 0;
	if (!ok)
		db_err_internal(err);
	PQclear(r);
	return ok;
}

bool store_deadline_stats(store *s, int64_t *pending, double *oldest_overdue_s, ar_err *err)
{
	PGresult *r = db_query_sql(s, "deadline_stats",
		"SELECT count(*), coalesce(extract(epoch FROM now() - min(due_at)), 0)::float8"
		"  FROM case_deadlines", 0, NULL, err);

	if (!r)
		return false;
	*pending = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	*oldest_overdue_s = strtod(PQgetvalue(r, 0, 1), NULL);
	if (*oldest_overdue_s < 0)
		*oldest_overdue_s = 0;
	PQclear(r);
	return true;
}
