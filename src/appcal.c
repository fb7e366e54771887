/* The active policy's working-day calendar: loaded from the database, swapped under the policy lock, used to arm working-day deadlines. */
#include "arbiter/appcal.h"

#include <stdio.h>
#include <string.h>

#include "arbiter/errmsg.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/store_calendars.h"

bool app_calendar_refresh(ar_app *app, ar_err *err)
{
	char id[STORE_CALENDAR_ID_MAX];
	json_t *doc = NULL;
	workcal *cal = NULL, *old = NULL;
	int version;
	bool ok = false;

	pthread_rwlock_rdlock(&app->policy_lock);
	snprintf(id, sizeof id, "%s", policy_calendar(app->policy));
	pthread_rwlock_unlock(&app->policy_lock);
	if (!store_calendar_latest(app->db, id, &version, &doc, err))
		goto done;
	if (!doc)
		doc = json_pack("{s:s,s:{}}", "id", id, "years");
	pthread_rwlock_rdlock(&app->policy_lock);
	ok = app->calendar && version == app->calendar_version &&
	     strcmp(workcal_id(app->calendar), id) == 0;
	pthread_rwlock_unlock(&app->policy_lock);
	if (ok)
		goto done;
	cal = doc ? workcal_load(doc, err) : NULL;
	if (!cal) {
		if (!ar_err_is_set(err))
			ar_err_setk(err, 500, "internal", "detail.oom_calendar_load", NULL);
		log_kv(LOG_ERROR, "the calendar in the database does not load; keeping the previous one",
		       "calendar", id, "error", err->detail, NULL);
		goto done;
	}
	if (version == 0)
		log_kv(LOG_WARN, "the policy's calendar is not in the database: working-day "
		       "deadlines count Monday to Friday (calendar_incomplete)", "calendar", id, NULL);
	pthread_rwlock_wrlock(&app->policy_lock);
	old = app->calendar;
	app->calendar = cal;
	app->calendar_version = version;
	pthread_rwlock_unlock(&app->policy_lock);
	workcal_free(old);
	ok = true;
done:
	if (ok) {
		pthread_rwlock_rdlock(&app->policy_lock);
		metrics_calendar_days_left(workcal_days_left(app->calendar, app_now()));
		pthread_rwlock_unlock(&app->policy_lock);
	}
	json_decref(doc);
	return ok;
}

void app_calendar_follow(ar_app *app, int64_t interval_ms)
{
	ar_time now = app_now();
	ar_err err;

	if (!app->db || now - app->calendar_checked_ms < interval_ms)
		return;
	app->calendar_checked_ms = now;
	ar_err_init(&err);
	if (!app_calendar_refresh(app, &err) && err.status == 503)
		log_kv(LOG_WARN, "calendar not refreshed: database unavailable", NULL);
}

bool app_calendar_due(const ar_app *app, ar_time now, const policy_dur *d, store_deadline *out,
		      ar_err *err)
{
	workcal_due due;

	if (!app->calendar) {
		ar_err_setk(err, 503, "calendar-unavailable", "detail.workcal_not_loaded", NULL);
		return false;
	}
	if (!workcal_add_working_days(app->calendar, now, d->working_days, d->at, &due, err))
		return false;
	out->due_at = due.due;
	out->after_ms = due.due - now;
	out->working_days = d->working_days;
	snprintf(out->calendar_id, sizeof out->calendar_id, "%s", workcal_id(app->calendar));
	out->calendar_version = app->calendar_version;
	out->calendar_incomplete = due.calendar_incomplete;
	return true;
}

bool app_calendar_extend(const ar_app *app, ar_time now, int min_days, store_deadline *out,
			 ar_err *err)
{
	ar_time moved;
	int days;

	if (!app->calendar) {
		ar_err_setk(err, 503, "calendar-unavailable", "detail.holidays_not_loaded", NULL);
		return false;
	}
	workcal_extend_over_holiday(app->calendar, now + out->after_ms, min_days, &moved, &days);
	if (days == 0)
		return true;
	out->due_at = moved;
	out->after_ms = moved - now;
	out->holiday_extended_days = days;
	snprintf(out->calendar_id, sizeof out->calendar_id, "%s", workcal_id(app->calendar));
	out->calendar_version = app->calendar_version;
	return true;
}

void app_calendar_free(ar_app *app)
{
	workcal_free(app->calendar);
	app->calendar = NULL;
}
