/* Idempotency-Key records: claim, replay, finish, forget. */
#include "arbiter/store_idem.h"

#include "arbiter/errmsg.h"

#include <stdlib.h>
#include <string.h>

/* Reads the record of (scope, key): state and, when done, the reply. A
 * record past its life (a done reply after 24 h, a claim after its lease)
 * reads as absent: IDEM_NEW. */
static bool idem_read(store *s, int idx, const char *const vals[4], idem_state *state,
		      idem_replay *replay, ar_err *err)
{
	PGresult *r = db_exec_sql(s, idx, "idem_get",
		"SELECT fingerprint = decode($3, 'hex'), state, status, response,"
		"       coalesce(etag, ''), coalesce(location, ''),"
		"       created_at > now() - CASE state WHEN 'done' THEN interval '24 hours'"
		"           ELSE $4::int * interval '1 second' END,"
		"       coalesce(applied_case, '')"
		"  FROM idempotency_keys WHERE scope = $1 AND key = $2", 4, vals, err);
	bool ok = false;

	if (!r)
		return false;
	if (PQntuples(r) == 0) {
		*state = IDEM_NEW;
	} else if (strcmp(PQgetvalue(r, 0, 1), "done") != 0 && PQgetvalue(r, 0, 7)[0]) {
		/* committed, whatever the lease says: never run it twice */
		*state = PQgetvalue(r, 0, 0)[0] == 't' ? IDEM_APPLIED : IDEM_MISMATCH;
		snprintf(replay->applied_case, sizeof(replay->applied_case), "%s",
			 PQgetvalue(r, 0, 7));
	} else if (PQgetvalue(r, 0, 6)[0] != 't') {
		*state = IDEM_NEW;
	} else if (PQgetvalue(r, 0, 0)[0] != 't') {
		*state = IDEM_MISMATCH;
	} else if (strcmp(PQgetvalue(r, 0, 1), "done") != 0) {
		*state = IDEM_IN_FLIGHT;
	} else {
		*state = IDEM_REPLAY;
		replay->status = atoi(PQgetvalue(r, 0, 2));
		replay->body = strdup(PQgetvalue(r, 0, 3));
		snprintf(replay->etag, sizeof(replay->etag), "%s", PQgetvalue(r, 0, 4));
		snprintf(replay->location, sizeof(replay->location), "%s", PQgetvalue(r, 0, 5));
		if (!replay->body) {
			db_err_oom(err);
			goto done;
		}
	}
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_idem_begin(store *s, const char *scope, const char *key, const char *fp_hex,
		      int lease_s, idem_state *state, idem_replay *replay, ar_err *err)
{
	char lease[16];
	const char *vals[4] = { scope, key, fp_hex, lease };
	PGresult *r = NULL;
	int idx;
	bool ok = false;

	memset(replay, 0, sizeof(*replay));
	snprintf(lease, sizeof(lease), "%d", lease_s);
	idx = db_acquire(s, err);
	if (idx < 0)
		return false;
	/* Claim the key, or take over a claim whose owner must be dead (older
	 * than the lease) or a reply older than the 24 h retention. */
	r = db_exec_sql(s, idx, "idem_claim",
		"INSERT INTO idempotency_keys AS k (scope, key, fingerprint)"
		" VALUES ($1, $2, decode($3, 'hex'))"
		" ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
		"   state = 'in_flight', status = NULL, response = NULL, created_at = now()"
		" WHERE (k.state = 'in_flight' AND k.applied_case IS NULL"
		"        AND k.created_at < now() - $4::int * interval '1 second')"
		"    OR k.created_at < now() - interval '24 hours'"
		" RETURNING 1", 4, vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 1) {
		*state = IDEM_NEW;
		ok = true;
		goto done;
	}
	ok = idem_read(s, idx, vals, state, replay, err);
	if (ok && *state == IDEM_NEW) {
		/* the record we lost to ended in between */
		ok = false;
		ar_err_setk(err, 409, "idempotency-in-flight", "detail.idempotency_retry", NULL);
	}
done:
	PQclear(r);
	db_release(s, idx);
	return ok;
}

bool store_idem_lookup(store *s, const char *scope, const char *key, const char *fp_hex,
		       int lease_s, idem_state *state, idem_replay *replay, ar_err *err)
{
	char lease[16];
	const char *vals[4] = { scope, key, fp_hex, lease };
	int idx;
	bool ok;

	memset(replay, 0, sizeof(*replay));
	snprintf(lease, sizeof(lease), "%d", lease_s);
	idx = db_acquire(s, err);
	if (idx < 0)
		return false;
	ok = idem_read(s, idx, vals, state, replay, err);
	db_release(s, idx);
	return ok;
}

bool store_idem_finish(store *s, const char *scope, const char *key, int status,
		       const char *body, const char *etag, const char *location, ar_err *err)
{
	char st[8];
	const char *vals[6] = { scope, key, st, body, etag, location };
	PGresult *r;

	snprintf(st, sizeof(st), "%d", status);
	r = db_query_sql(s, "idem_finish",
		"UPDATE idempotency_keys SET state = 'done', status = $3::int, response = $4,"
		"       etag = $5, location = $6 WHERE scope = $1 AND key = $2", 6, vals, err);
	bool ok = r != NULL;

	PQclear(r);
	return ok;
}

void store_idem_abandon(store *s, const char *scope, const char *key)
{
	const char *vals[2] = { scope, key };
	ar_err err;

	ar_err_init(&err);
	PQclear(db_query_sql(s, "idem_abandon",
		"DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_flight'"
		"   AND applied_case IS NULL",
		2, vals, &err));
}

void store_housekeep(store *s)
{
	ar_err err;

	ar_err_init(&err);
	PQclear(db_query_sql(s, "housekeep",
		"DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'",
		0, NULL, &err));
	/* past buyer_history's window (sql/018) */
	ar_err_init(&err);
	PQclear(db_query_sql(s, "housekeep_texts",
		"DELETE FROM text_shop_days"
		" WHERE day < ((now() - interval '32 days') AT TIME ZONE 'UTC')::date",
		0, NULL, &err));
}
