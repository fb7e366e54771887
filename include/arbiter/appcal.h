/*
 * The active policy's working-day calendar in this process: the latest
 * version of the calendar the policy names, read from the calendars table
 * and swapped under app->policy_lock like the policy itself, and the due
 * instants of working-day deadlines counted on it.
 */
#ifndef ARBITER_APPCAL_H
#define ARBITER_APPCAL_H

#include "arbiter/app.h"
#include "arbiter/store_cases.h"

/*
 * Loads the latest version of policy_calendar(app->policy) unless it is the
 * one already loaded. A calendar the database does not hold is installed as
 * an empty one (version 0): every working-day deadline then counts Monday to
 * Friday and says calendar_incomplete, never a silent guess. false with err
 * set when the database cannot be read or its document does not load (the
 * previous calendar stays).
 */
bool app_calendar_refresh(ar_app *app, ar_err *err) AR_MUSTCHECK;

/* app_calendar_refresh at most every interval_ms (the periodic thread):
 * a calendar another replica loaded is used here within that time. */
#define CALENDAR_FOLLOW_MS 10000
void app_calendar_follow(ar_app *app, int64_t interval_ms);

/*
 * A working-day deadline d started at now: sets out's due_at, after_ms
 * (due_at - now), working_days and calendar fields. The caller holds
 * app->policy_lock for reading.
 */
bool app_calendar_due(const ar_app *app, ar_time now, const policy_dur *d, store_deadline *out,
		      ar_err *err) AR_MUSTCHECK;

/*
 * A span deadline out (after_ms set) armed at now under a policy with a
 * holiday extension of min_days (policy_holiday_extension): when its due
 * instant falls in a long enough holiday of the calendar, moves it past
 * (due_at, after_ms, holiday_extended_days and the calendar fields set).
 * false with err 503 while no calendar is loaded, as for working days.
 * The caller holds app->policy_lock for reading.
 */
bool app_calendar_extend(const ar_app *app, ar_time now, int min_days, store_deadline *out,
			 ar_err *err) AR_MUSTCHECK;

/* Frees the calendar at exit. */
void app_calendar_free(ar_app *app);

#endif
