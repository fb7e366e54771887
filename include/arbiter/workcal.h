/*
 * Working-day calendars and working-day arithmetic (pure: no I/O, no libc
 * time zone state, no logging; errors go into the caller's ar_err).
 *
 * A calendar is data (deploy/calendars/ holds the shipped one):
 *
 *   {"id": "cn-mainland", "time_zone": "Asia/Shanghai",
 *    "source": "...", "retrieved": "2026-12-06",
 *    "years": {"2026": {"holidays": ["2026-10-01", ...],
 *                       "working_days": ["2026-10-10", ...]}}}
 *
 * "years" holds one entry per published schedule (China's State Council
 * publishes one notice a year). A date is a working day when a schedule lists
 * it as one (a make-up working day, 调休), not when one lists it as a
 * holiday, and otherwise when it is Monday to Friday. A schedule may list
 * dates of the neighbouring years: the 2019 notice made Saturday 2018-12-29 a
 * working day, so dates are looked up by date, never by the notice they came
 * in. A year no schedule covers is counted Monday to Friday and the result
 * says so (calendar_incomplete): never a silent guess.
 *
 * Time zones: day boundaries are those of the calendar's zone. The zone is
 * one of a small built-in table (workcal_zone_known) of fixed offsets and
 * table-driven DST rules, not the system tz database: localtime_r/mktime
 * read the process-wide TZ and a TZif parser is more than this needs. Asia/
 * Shanghai has been UTC+8 without DST since 1991, so its rule is exact for
 * every instant this service handles.
 */
#ifndef ARBITER_WORKCAL_H
#define ARBITER_WORKCAL_H

#include <jansson.h>

#include "arbiter/model.h"

#define WORKCAL_ID_MAX 64
#define WORKCAL_MAX_DAYS 3660   /* listed dates over all years */
#define WORKCAL_MAX_N 366       /* working days one deadline may count */
#define WORKCAL_MAX_RUN 60      /* the longest run of days off an extension looks at */

typedef struct workcal workcal;

/*
 * Validates a calendar document and builds the lookup tables. Returns NULL
 * with err set (422 "invalid-calendar", one field error per problem, each a
 * JSON pointer into doc) on invalid content or when out of memory (500).
 * The document is only read; the result does not reference it.
 */
workcal *workcal_load(const json_t *doc, ar_err *err);
void workcal_free(workcal *c);   /* accepts NULL */

const char *workcal_id(const workcal *c);
const char *workcal_zone(const workcal *c);

/* Whether name is one of the built-in time zones. */
bool workcal_zone_known(const char *name);

/* The zone's UTC offset in milliseconds at instant t. */
int64_t workcal_offset_at(const workcal *c, ar_time t);

typedef enum {
	WORKCAL_END_OF_DAY,   /* 24:00 local of the last counted day */
	WORKCAL_SAME_TIME     /* the start's local time of day on the last counted day */
} workcal_at;

bool workcal_at_parse(const char *s, workcal_at *out) AR_MUSTCHECK;
const char *workcal_at_name(workcal_at at);

typedef struct {
	ar_time due;
	bool calendar_incomplete;   /* a counted day lay in a year no schedule covers */
} workcal_due;

/*
 * The instant n working days after start: counting begins with the local day
 * after start's (a request made on a holiday, or at 23:00 on a Friday, gets
 * its n full working days), 1 <= n <= WORKCAL_MAX_N. Returns false with err
 * set (422) for n out of range or a start before 1970 or after 9000.
 */
bool workcal_add_working_days(const workcal *c, ar_time start, int n, workcal_at at,
			      workcal_due *out, ar_err *err) AR_MUSTCHECK;

/* Whether the local date (days since 1970-01-01) is a working day; *covered
 * (may be NULL) says whether a schedule covers its year. */
bool workcal_is_working_day(const workcal *c, int64_t day, bool *covered);

/*
 * Days from now's local date to the last day of the run of consecutive
 * covered years that contains now's year: 0 on 31 December of the last
 * covered year, negative (-1) when now's year is not covered at all.
 */
int64_t workcal_days_left(const workcal *c, ar_time now);

/*
 * The holiday extension of a deadline due at due: when due's local date is a
 * holiday the calendar lists (not a plain weekend) and lies in a run of at
 * least min_days consecutive days off (holidays and weekends that are not
 * make-up working days), the deadline moves later by the run's length in
 * days, to the same local time: *out is the new instant, *days the run's
 * length. Otherwise *out = due and *days = 0. One extension only: a due
 * instant moved into another holiday stays there. Runs longer than
 * WORKCAL_MAX_RUN are counted as WORKCAL_MAX_RUN.
 */
void workcal_extend_over_holiday(const workcal *c, ar_time due, int min_days, ar_time *out,
				 int *days);

#endif
