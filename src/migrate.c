/* Schema migrations, the runtime role's grants, and readiness. */
#include "arbiter/migrate.h"

#include <stdlib.h>
#include <string.h>

#include "arbiter/errmsg.h"
#include "arbiter/migrations.h"

bool store_ready(store *s, ar_err *err)
{
	int idx = db_acquire(s, err);
	PGresult *r;
	bool ok = false;

	if (idx < 0)
		return false;
	/* unchecked: a missing table is an answer here, not an error */
	r = PQexec(db_conn(s, idx), "SELECT count(*), current_setting('transaction_read_only') = 'on'"
		   " FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "42P01") == 0)
			ar_err_setk(err, 503, "not-migrated", "detail.no_migrations", NULL);
		else
			db_result_error(db_conn(s, idx), r, "ready", err);
		goto done;
	}
	/* ready means writable: a standby (during a failover, or a URL
	 * without target_session_attrs=read-write) serves no write */
	if (strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
		ar_err_setk(err, 503, "database-read-only", "detail.db_standby", NULL);
		goto done;
	}
	if (strtoull(PQgetvalue(r, 0, 0), NULL, 10) < ar_n_migrations) {
		ar_err_setk(err, 503, "not-migrated", "detail.pending_migrations", NULL);
		goto done;
	}
	ok = true;
done:
	PQclear(r);
	db_release(s, idx);
	return ok;
}

static bool exec_ok(PGconn *c, const char *sql, char *msg, size_t msglen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/*
 * Each migration runs in its own transaction under a transaction-scoped
 * advisory lock and re-checks schema_migrations inside it, so replicas
 * starting at once apply each migration once, and no session state is left
 * behind (safe through a transaction-pooling PgBouncer).
 */
bool store_migrate(const char *conninfo, FILE *out, char *msg, size_t msglen)
{
	PGconn *c = db_connect(conninfo);
	bool ok = false;
	size_t applied = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(msg, msglen, "cannot connect: %s", PQerrorMessage(c));
		goto fail;
	}
	if (!exec_ok(c, "BEGIN", msg, msglen) ||
	    !exec_ok(c, "SET LOCAL client_min_messages = warning", msg, msglen) ||
	    !exec_ok(c, "SELECT pg_advisory_xact_lock(714628100)", msg, msglen) ||
	    !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			"name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		     msg, msglen) ||
	    !exec_ok(c, "COMMIT", msg, msglen))
		goto fail;
	for (size_t i = 0; i < ar_n_migrations; i++) {
		const char *name = ar_migrations[i].name;
		PGresult *r;
		bool done;

		if (!exec_ok(c, "BEGIN", msg, msglen) ||
		    !exec_ok(c, "SET LOCAL client_min_messages = warning", msg, msglen) ||
		    !exec_ok(c, "SELECT pg_advisory_xact_lock(714628100)", msg, msglen))
			goto fail;
		r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE name = $1",
				 1, NULL, &name, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
			PQclear(r);
			goto fail;
		}
		done = PQntuples(r) > 0;
		PQclear(r);
		if (done) {
			if (!exec_ok(c, "COMMIT", msg, msglen))
				goto fail;
			continue;
		}
		if (!exec_ok(c, ar_migrations[i].sql, msg, msglen)) {
			char detail[512];
			snprintf(detail, sizeof(detail), "%s", msg);
			snprintf(msg, msglen, "migration %s failed: %s", name, detail);
			goto fail;
		}
		r = PQexecParams(c, "INSERT INTO schema_migrations (name) VALUES ($1)",
				 1, NULL, &name, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
			PQclear(r);
			goto fail;
		}
		PQclear(r);
		if (!exec_ok(c, "COMMIT", msg, msglen))
			goto fail;
		fprintf(out, "migrate: applied %s\n", name);
		applied++;
	}
	fprintf(out, "migrate: %zu applied, %zu total, schema up to date\n", applied,
		ar_n_migrations);
	ok = true;
fail:
	PQfinish(c);
	return ok;
}

bool store_grant_runtime(const char *conninfo, const char *role, char *msg, size_t msglen)
{
	PGconn *c = db_connect(conninfo);
	PGresult *r = NULL;
	bool ok = false;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(msg, msglen, "cannot connect: %s", PQerrorMessage(c));
		goto fail;
	}
	r = PQexecParams(c, "SELECT arbiter_grant_runtime($1)", 1, NULL, &role, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
		goto fail;
	}
	ok = true;
fail:
	PQclear(r);
	PQfinish(c);
	return ok;
}

bool store_owns_schema(store *s, bool *owner, ar_err *err)
{
	PGresult *r = db_query_sql(s, "owns_schema",
		"SELECT pg_has_role(current_user, c.relowner, 'USAGE')"
		"  FROM pg_class c WHERE c.oid = 'case_events'::regclass", 0, NULL, err);

	if (!r)
		return false;
	*owner = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return true;
}
