/* Working-day calendars in the database: versions appended, never changed. */
#ifndef ARBITER_STORE_CALENDARS_H
#define ARBITER_STORE_CALENDARS_H

#include <jansson.h>
#include "arbiter/db.h"

/* One version as the API shows it: {id, version, recorded_at, recorded_by,
 * calendar}; version 0 asks for the latest. 404 when there is none. *out is
 * a new reference. */
bool store_calendar_get(store *s, const char *id, int version, json_t **out,
			ar_err *err) AR_MUSTCHECK;

/*
 * Appends doc_text (a validated document whose id is id) as the next
 * version, recorded_by `by`, unless the latest version has the same content:
 * *created says which, *out is that version as store_calendar_get shows it.
 * 409 "calendar-conflict" when another version was appended meanwhile.
 */
bool store_calendar_put(store *s, const char *id, const char *doc_text, const char *by,
			json_t **out, bool *created, ar_err *err) AR_MUSTCHECK;

/* The latest version's number and document (a new reference), or 0 and
 * NULL when the database holds no such calendar. */
bool store_calendar_latest(store *s, const char *id, int *version, json_t **doc,
			   ar_err *err) AR_MUSTCHECK;
#endif
