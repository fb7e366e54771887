/* arbiter verify: every audit chain, and every case row against its events. */
#include "arbiter/verify.h"

#include "arbiter/casefsm.h"
#include "arbiter/chaincheck.h"
#include "arbiter/db.h"

/* One of verify's queries with its n parameters, its result replacing *r
 * (the caller clears the last); false, printed, on an error. */
static bool verify_query(PGconn *c, const char *sql, int n, const char *const *vals,
			 PGresult **r, FILE *out)
{
	PQclear(*r);
	*r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(*r) == PGRES_TUPLES_OK)
		return true;
	fprintf(out, "verify: %s", PQresultErrorMessage(*r));
	return false;
}

int store_verify(const char *conninfo, FILE *out)
{
	PGconn *c = db_connect(conninfo);
	PGresult *r = NULL;
	int rc = 2;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(out, "verify: cannot connect: %s", PQerrorMessage(c));
		goto done;
	}
	/* the chain check of every case: its $1 (one case) is NULL */
	if (!verify_query(c, AR_CHAIN_CHECK_SQL, 1, (const char *const[]){ NULL }, &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s event seq %s: %s\n", PQgetvalue(r, 0, 0),
			PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
		rc = 1;
		goto done;
	}
	if (!verify_query(c, "SELECT c.id FROM cases c WHERE NOT EXISTS"
		      " (SELECT 1 FROM case_events e WHERE e.case_id = c.id) LIMIT 1", 0, NULL, &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s has no events\n", PQgetvalue(r, 0, 0));
		rc = 1;
		goto done;
	}
	/* Replay (issue 18): the row must be what its events made it. Each
	 * change writes one main event (riders: refund and compensation
	 * instructions, reminders, batch-defect flags), so the version is the
	 * count of main events, the state the last one's to_state, and
	 * refund_cents the last refund instruction's total. */
	if (!verify_query(c,
		"WITH ev AS ("
		"  SELECT e.case_id,"
		"    count(*) FILTER (WHERE e.action NOT IN ('refund.instructed',"
		"       'compensation.instructed', 'deadline.approaching', 'sku.batch_defect')) AS n_main,"
		"    (array_agg(e.to_state ORDER BY e.seq DESC) FILTER (WHERE e.action NOT IN"
		"       ('refund.instructed', 'compensation.instructed', 'deadline.approaching',"
		"        'sku.batch_defect')))[1] AS state,"
		"    (array_agg((e.data->>'total_cents')::bigint ORDER BY e.seq DESC)"
		"       FILTER (WHERE e.action = 'refund.instructed'))[1] AS refund"
		"    FROM case_events e GROUP BY e.case_id)"
		" SELECT c.id, CASE WHEN c.state IS DISTINCT FROM ev.state THEN 'state'"
		"   WHEN c.version <> ev.n_main THEN 'version'"
		"   ELSE 'refund_cents' END,"
		"   CASE WHEN c.state IS DISTINCT FROM ev.state THEN c.state || ' (events: ' || ev.state || ')'"
		"   WHEN c.version <> ev.n_main THEN c.version || ' (events: ' || ev.n_main || ')'"
		"   ELSE coalesce(c.refund_cents::text, 'null') || ' (events: '"
		"        || coalesce(ev.refund::text, 'null') || ')' END"
		"  FROM cases c JOIN ev ON ev.case_id = c.id"
		" WHERE c.state IS DISTINCT FROM ev.state OR c.version <> ev.n_main"
		"    OR c.refund_cents IS DISTINCT FROM ev.refund"
		" ORDER BY c.id LIMIT 1", 0, NULL, &r, out))
		goto done;
	if (PQntuples(r) > 0) {
		fprintf(out, "verify: BROKEN case %s: its row's %s is %s\n", PQgetvalue(r, 0, 0),
			PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
		rc = 1;
		goto done;
	}
	/* armed deadlines: only those the state machine arms in the case's
	 * state, armed no later than its version */
	if (!verify_query(c, "SELECT c.id, c.kind, c.state, d.name, d.armed_version > c.version"
		      "  FROM case_deadlines d JOIN cases c ON c.id = d.case_id ORDER BY c.id",
			  0, NULL, &r, out))
		goto done;
	for (int i = 0; i < PQntuples(r); i++) {
		ar_kind kind;
		fsm_state st;
		fsm_deadline dl;
		bool ok = ar_kind_parse(PQgetvalue(r, i, 1), &kind) &&
			  fsm_state_parse(PQgetvalue(r, i, 2), &st) &&
			  fsm_deadline_parse(PQgetvalue(r, i, 3), &dl) &&
			  (fsm_deadlines_for(kind, st) & FSM_DEADLINE_BIT(dl)) &&
			  PQgetvalue(r, i, 4)[0] != 't';
		if (!ok) {
			fprintf(out, "verify: BROKEN case %s: deadline %s is not one its state %s arms"
				" at its version\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 3),
				PQgetvalue(r, i, 2));
			rc = 1;
			goto done;
		}
	}
	if (!verify_query(c, "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM case_events)",
			  0, NULL, &r, out))
		goto done;
	fprintf(out, "verify: ok: %s cases, %s events, every chain intact, every case row"
		" and deadline what its events made it\n",
		PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	rc = 0;
done:
	PQclear(r);
	PQfinish(c);
	return rc;
}
