/* Working-day calendars over HTTP: GET /v1/calendars/{id} reads a version, PUT appends one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/app.h"
#include "arbiter/appcal.h"
#include "arbiter/auth.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/log.h"
#include "arbiter/store_calendars.h"
#include "arbiter/workcal.h"

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
		ar_err_fieldk(err, "/version", "field.positive_int", NULL);
		return false;
	}
	*out = (int)v;
	return true;
}

void api_calendar_get(ar_req *r)
{
	const char *id = req_param(r, 0);
	json_t *row = NULL;
	ar_err err;
	int version;

	ar_err_init(&err);
	if (!parse_version(req_query(r, "version"), &version, &err))
		goto done;
	if (!store_calendar_get(req_app(r)->db, id, version, &row, &err))
		goto done;
	req_reply_json(r, 200, json_incref(row));
done:
	json_decref(row);
	if (ar_err_is_set(&err))
		req_reply_problem(r, &err);
}

void api_calendar_put(ar_req *r)
{
	const char *id = req_param(r, 0);
	size_t len;
	const char *body = req_body(r, &len);
	json_t *doc = NULL, *row = NULL;
	workcal *cal = NULL;
	char *text = NULL;
	bool created = false;
	ar_err err;

	ar_err_init(&err);
	doc = codec_parse_body(body, len, &err);
	if (!doc)
		goto done;
	/* The path names the calendar; a body may leave its id out. */
	if (!json_object_get(doc, "id"))
		json_object_set_new(doc, "id", json_string(id));
	if (!json_is_string(json_object_get(doc, "id")) ||
	    strcmp(json_string_value(json_object_get(doc, "id")), id) != 0) {
		ar_err_setk(&err, 422, "invalid-calendar", "detail.calendar_invalid", NULL);
		ar_err_fieldk(&err, "/id", "field.calendar_id_path", "id", id, NULL);
		goto done;
	}
	cal = workcal_load(doc, &err);
	if (!cal)
		goto done;
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		ar_err_setk(&err, 500, "internal", "detail.oom_calendar", NULL);
		goto done;
	}
	if (!store_calendar_put(req_app(r)->db, id, text, req_identity(r)->key_id, &row,
				&created, &err))
		goto done;
	if (created) {
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
	req_reply_json(r, created ? 201 : 200, json_incref(row));
done:
	json_decref(row);
	json_decref(doc);
	workcal_free(cal);
	free(text);
	if (ar_err_is_set(&err))
		req_reply_problem(r, &err);
}
