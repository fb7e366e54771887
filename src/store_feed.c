/* The commit-ordered event feed, and its caller-scoped cursors. */
#include "arbiter/store_feed.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/cursor.h"

static db_stmt st_event_feed = { .name = "event_feed", .sql =
	"SELECT e.case_id, e.seq, json_build_object('cursor', '', 'case_id', e.case_id,"
	"   'shop_id', e.shop_id, 'seq', e.seq, 'at', arbiter_ts(e.at),"
	"   'actor', json_build_object('role', e.actor_role, 'id', e.actor_id),"
	"   'action', e.action, 'from_state', e.from_state, 'to_state', e.to_state,"
	"   'data', e.data, 'policy_version', e.policy_version,"
	"   'hash', encode(e.hash, 'hex'))"
	/* a shop key's feed walks each of its shops' events
	 * (case_events_shop_feed_idx, sql/018) and merges them: a filter over
	 * the whole feed read every other shop's events between two of a small
	 * shop's (issue 21) */
	"  FROM ((SELECT a.* FROM case_events a"
	"         WHERE $3::text[] IS NULL AND (a.xid, a.id) > ($1::xid8, $2::bigint)"
	"           AND a.xid < pg_snapshot_xmin(pg_current_snapshot())"
	"         ORDER BY a.xid, a.id LIMIT $4)"
	"        UNION ALL"
	"        SELECT b.* FROM (SELECT DISTINCT unnest($3::text[])) AS s(shop_id) CROSS JOIN LATERAL"
	"         (SELECT * FROM case_events x WHERE x.shop_id = s.shop_id"
	"             AND (x.xid, x.id) > ($1::xid8, $2::bigint)"
	"             AND x.xid < pg_snapshot_xmin(pg_current_snapshot())"
	"           ORDER BY x.xid, x.id LIMIT $4) AS b) AS e"
	" ORDER BY e.xid, e.id LIMIT $4" };
DB_REGISTER(st_event_feed)

/*
 * Feed cursor: the caller's own position, never the global one. It names
 * the last event handed out (its case and seq, sealed like a list cursor),
 * and that event must be one the caller may see: a cursor naming another
 * shop's event is refused exactly like one naming no event, so cursors
 * reveal nothing about other shops (the feed's (xid, id) order stays
 * internal). "", "0" and "0.0" are the start. The "<xid>.<id>" cursors of
 * before are still taken from keys that see every shop (they learn nothing
 * from them), so a payment system resumes across the upgrade.
 */
static bool feed_position(store *s, int idx, const char *after, const char *shop_scope,
			  char *xid, size_t xidlen, char *id, size_t idlen, ar_err *err)
{
	char case_id[AR_MAX_ID_LEN + 1], seq[24];
	const char *vals[3] = { case_id, seq, shop_scope };
	const char *dot = strchr(after, '.');
	int64_t n;
	PGresult *r;
	bool ok = false;

	if (strcmp(after, "0") == 0 || strcmp(after, "0.0") == 0)
		return true;
	if (!shop_scope && dot && dot > after && (size_t)(dot - after) < xidlen &&
	    strlen(dot + 1) > 0 && strlen(dot + 1) < idlen &&
	    strspn(after, "0123456789") == (size_t)(dot - after) &&
	    strspn(dot + 1, "0123456789") == strlen(dot + 1)) {
		memcpy(xid, after, (size_t)(dot - after));
		xid[dot - after] = '\0';
		snprintf(id, idlen, "%s", dot + 1);
		return true;
	}
	if (!cursor_decode(after, &n, case_id, sizeof(case_id)) || n < 1 || n > INT32_MAX) {
		ar_err_cursor(err, "/query/after");
		return false;
	}
	snprintf(seq, sizeof(seq), "%" PRId64, n);
	r = db_exec_sql(s, idx, "feed_position",
		"SELECT e.xid::text, e.id FROM case_events e"
		" WHERE e.case_id = $1 AND e.seq = $2::integer"
		"   AND ($3::text[] IS NULL OR e.shop_id = ANY ($3::text[]))", 3, vals, err);
	if (!r)
		return false;
	if (PQntuples(r) != 1) {
		ar_err_cursor(err, "/query/after");
		goto done;
	}
	snprintf(xid, xidlen, "%s", PQgetvalue(r, 0, 0));
	snprintf(id, idlen, "%s", PQgetvalue(r, 0, 1));
	ok = true;
done:
	PQclear(r);
	return ok;
}

bool store_feed(store *s, const char *after, const char *shop_scope, int limit,
		json_t **items, char *next_cursor, size_t cursor_len, ar_err *err)
{
	char xid[24] = "0", id[24] = "0", lim[16];
	const char *vals[4] = { xid, id, shop_scope, lim };
	PGresult *r = NULL;
	int idx;
	bool ok = false;

	*items = NULL;
	if (after && strlen(after) >= cursor_len) {
		ar_err_cursor(err, "/query/after");
		return false;
	}
	snprintf(next_cursor, cursor_len, "%s", after && *after ? after : "0.0");
	snprintf(lim, sizeof(lim), "%d", limit);
	idx = db_acquire(s, err);
	if (idx < 0)
		return false;
	if (after && *after &&
	    !feed_position(s, idx, after, shop_scope, xid, sizeof(xid), id, sizeof(id), err))
		goto done;
	r = db_exec(s, idx, &st_event_feed, 4, vals, err);
	if (!r)
		goto done;
	*items = json_array();
	if (!*items)
		goto done;
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *e = db_json_cell(r, i, 2, err);
		char cur[2 * AR_MAX_ID_LEN];
		if (!e)
			goto done;
		cursor_encode(strtoll(PQgetvalue(r, i, 1), NULL, 10), PQgetvalue(r, i, 0),
				    cur, sizeof(cur));
		json_object_set_new(e, "cursor", json_string(cur));
		if (json_array_append_new(*items, e))
			goto done;
		snprintf(next_cursor, cursor_len, "%s", cur);
	}
	ok = true;
done:
	if (!ok) {
		json_decref(*items);
		*items = NULL;
	}
	PQclear(r);
	db_release(s, idx);
	return ok;
}
