/* Working-day calendars over HTTP: GET /v1/calendars/{id} reads a version, PUT appends one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/app.h"
#include "arbiter/appcal.h"
#include "arbiter/auth.h"
#include "arbiter/codec.h"
#include "arbiter/log.h"
#include "arbiter/store_stats.h"
#include "arbiter/workcal.h"

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
 * equal latest row, so it gets {"row": null} and a 409.
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

/* ?version=N, 1 <= N <= 2^31-1; absent means the latest. */
static bool parse_version(const char *s, int *out, ar_err *err)
{
	char *end;
	long v;

	*out = 0;
	if (!s)
		return true;
	v = strtol(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v < 1 || v > 2147483647L) {
		ar_err_field(err, "/version", "must be a positive integer");
		return false;
	}
	*out = (int)v;
	return true;
}

void api_calendar_get(ar_req *r)
{
	const char *id = req_param(r, 0);
	char vbuf[16];
	const char *vals[2] = { id, vbuf };
	json_t *row = NULL;
	ar_err err;
	int version;

	ar_err_init(&err);
	if (!parse_version(req_query(r, "version"), &version, &err))
		goto fail;
	snprintf(vbuf, sizeof vbuf, "%d", version);
	if (!store_query_json(req_app(r)->db, "calendar_get", get_sql, 2, vals, &row, &err))
		goto fail;
	if (!json_object_get(row, "id")) {
		ar_err_set(&err, 404, "not-found", "Not found", "no calendar %.64s%s", id,
			   version ? " in that version" : "");
		goto fail;
	}
	req_reply_json(r, 200, json_incref(row));
fail:
	json_decref(row);
	if (ar_err_is_set(&err))
		req_reply_problem(r, &err);
}

void api_calendar_put(ar_req *r)
{
	const char *id = req_param(r, 0);
	size_t len;
	const char *body = req_body(r, &len);
	json_t *doc = NULL, *res = NULL, *row;
	workcal *cal = NULL;
	char *text = NULL;
	ar_err err;

	ar_err_init(&err);
	doc = codec_parse_body(body, len, &err);
	if (!doc)
		goto fail;
	/* The path names the calendar; a body may leave its id out. */
	if (!json_object_get(doc, "id"))
		json_object_set_new(doc, "id", json_string(id));
	if (!json_is_string(json_object_get(doc, "id")) ||
	    strcmp(json_string_value(json_object_get(doc, "id")), id) != 0) {
		ar_err_set(&err, 422, "invalid-calendar", "Invalid calendar",
			   "the calendar document is not valid");
		ar_err_field(&err, "/id", "must be the calendar id of the path (%.64s)", id);
		goto fail;
	}
	cal = workcal_load(doc, &err);
	if (!cal)
		goto fail;
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		ar_err_set(&err, 500, "internal", "Out of memory", "encoding the calendar");
		goto fail;
	}
	{
		const char *vals[3] = { id, text, req_identity(r)->key_id };
		if (!store_query_json(req_app(r)->db, "calendar_put", put_sql, 3, vals, &res, &err))
			goto fail;
	}
	row = json_object_get(res, "row");
	if (!json_is_object(row)) {
		ar_err_set(&err, 409, "calendar-conflict", "Calendar changed meanwhile",
			   "another version of calendar %.64s was loaded at the same time; read it and retry",
			   id);
		goto fail;
	}
	if (json_is_true(json_object_get(res, "created"))) {
		ar_err stale;
		log_kv(LOG_INFO, "calendar loaded", "request_id", req_id(r), "calendar", id,
		       "by", req_identity(r)->key_id, NULL);
		/* the version deadlines count on from now; other replicas follow
		 * within CALENDAR_FOLLOW_MS */
		ar_err_init(&stale);
		if (!app_calendar_refresh(req_app(r), &stale))
			log_kv(LOG_WARN, "calendar not reloaded; the periodic follow retries",
			       "calendar", id, "error", stale.detail, NULL);
	}
	req_reply_json(r, json_is_true(json_object_get(res, "created")) ? 201 : 200,
		       json_incref(row));
fail:
	json_decref(res);
	json_decref(doc);
	workcal_free(cal);
	free(text);
	if (ar_err_is_set(&err))
		req_reply_problem(r, &err);
}
