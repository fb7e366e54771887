/* Working-day calendars in the database: read a version, append one, the latest for the scheduler's calendar. */
#include "arbiter/store_calendars.h"

#include "arbiter/errmsg.h"

#include <stdio.h>
#include <string.h>

/* The API's view of one row; the same in both statements. */
#define CAL_ROW_JSON(t)                                                             \
	"json_build_object('id', " t ".id, 'version', " t ".version, 'recorded_at',"  \
	" arbiter_ts(" t ".recorded_at), 'recorded_by', " t ".recorded_by, 'calendar'," \
	" " t ".document)"

/* $1 id, $2 version (0: the latest). {} when there is no such row. */
static const char get_sql[] =
	"SELECT coalesce((SELECT " CAL_ROW_JSON("c") " FROM calendars c"
	"   WHERE c.id = $1 AND ($2::int = 0 OR c.version = $2::int)"
	"   ORDER BY c.version DESC LIMIT 1), '{}'::json)";

/*
 * $1 id, $2 document, $3 the key that loads it. A new version unless the
 * latest has the same content (a repeated PUT changes nothing). Two PUTs
 * racing for the same next version: the loser inserts nothing and finds no
 * equal latest row, so it gets {"row": null}.
 */
static const char put_sql[] =
	"WITH doc AS (SELECT $2::jsonb AS d, sha256(convert_to($2::jsonb::text, 'UTF8')) AS h),"
	" latest AS (SELECT * FROM calendars WHERE id = $1 ORDER BY version DESC LIMIT 1),"
	" ins AS (INSERT INTO calendars (id, version, document, sha256, recorded_by)"
	"   SELECT $1, coalesce((SELECT version FROM latest), 0) + 1, doc.d, doc.h, $3 FROM doc"
	"    WHERE NOT EXISTS (SELECT 1 FROM latest, doc WHERE latest.sha256 = doc.h)"
	"   ON CONFLICT DO NOTHING RETURNING *)"
	" SELECT json_build_object('created', EXISTS (SELECT 1 FROM ins), 'row',"
	"   coalesce((SELECT " CAL_ROW_JSON("ins") " FROM ins),"
	"            (SELECT " CAL_ROW_JSON("latest") " FROM latest, doc WHERE latest.sha256 = doc.h)))";

/* $1 id: {} when the database holds no such calendar. */
static const char latest_sql[] =
	"SELECT coalesce((SELECT json_build_object('version', version, 'calendar', document)"
	"   FROM calendars WHERE id = $1 ORDER BY version DESC LIMIT 1), '{}'::json)";

/* The single JSON cell of a one-row statement; NULL with err set. */
static json_t *query_json(store *s, const char *what, const char *sql, int n,
			  const char *const *vals, ar_err *err)
{
	PGresult *r = db_query_sql(s, what, sql, n, vals, err);
	json_t *out = NULL;

	if (!r)
		return NULL;
	if (PQntuples(r) != 1)
		db_err_internal(err);
	else
		out = db_json_cell(r, 0, 0, err);
	PQclear(r);
	return out;
}

bool store_calendar_get(store *s, const char *id, int version, json_t **out, ar_err *err)
{
	char vbuf[16];
	const char *vals[2] = { id, vbuf };

	snprintf(vbuf, sizeof vbuf, "%d", version);
	*out = query_json(s, "calendar_get", get_sql, 2, vals, err);
	if (*out && !json_object_get(*out, "id")) {
		json_decref(*out);
		*out = NULL;
		ar_err_setk(err, 404, "not-found", version ? "detail.no_calendar_version"
			    : "detail.no_calendar", "id", id, NULL);
	}
	return *out != NULL;
}

bool store_calendar_put(store *s, const char *id, const char *doc_text, const char *by,
			json_t **out, bool *created, ar_err *err)
{
	const char *vals[3] = { id, doc_text, by };
	json_t *res = query_json(s, "calendar_put", put_sql, 3, vals, err);
	json_t *row = json_object_get(res, "row");

	*out = NULL;
	*created = json_is_true(json_object_get(res, "created"));
	if (res && !json_is_object(row))
		ar_err_setk(err, 409, "calendar-conflict", "detail.calendar_conflict", "id", id, NULL);
	else if (res)
		*out = json_incref(row);
	json_decref(res);
	return *out != NULL;
}

bool store_calendar_latest(store *s, const char *id, int *version, json_t **doc, ar_err *err)
{
	const char *vals[1] = { id };
	json_t *res = query_json(s, "calendar_latest", latest_sql, 1, vals, err);

	*version = 0;
	*doc = NULL;
	if (!res)
		return false;
	*version = (int)json_integer_value(json_object_get(res, "version"));
	*doc = json_incref(json_object_get(res, "calendar"));
	json_decref(res);
	return true;
}
