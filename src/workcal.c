/* Working-day calendars: validation, built-in time zone rules and working-day deadline arithmetic (pure). */
#include "arbiter/workcal.h"

#include "arbiter/errmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_MIN (60LL * AR_MS_PER_SEC)
#define YEAR_MIN 1970
#define YEAR_MAX 9000

/* A DST switch: the week-th Sunday (5 = the last) of month, at utc_min
 * minutes past 00:00 UTC of that date. */
typedef struct {
	int month, week, utc_min;
} dst_switch;

typedef struct {
	const char *name;
	int std_min;          /* standard offset, minutes east of UTC */
	int dst_min;          /* offset in summer; equal to std_min when there is no DST */
	dst_switch start, end;
} zone_rule;

/* The rules as in force since 2007 (US) and 1996 (EU); Asia/Shanghai has
 * had no DST since 1991. Earlier instants get today's rule. */
static const zone_rule zones[] = {
	{"Asia/Shanghai", 480, 480, {0, 0, 0}, {0, 0, 0}},
	{"Asia/Hong_Kong", 480, 480, {0, 0, 0}, {0, 0, 0}},
	{"Asia/Tokyo", 540, 540, {0, 0, 0}, {0, 0, 0}},
	{"UTC", 0, 0, {0, 0, 0}, {0, 0, 0}},
	{"Europe/Berlin", 60, 120, {3, 5, 60}, {10, 5, 60}},
	{"America/New_York", -300, -240, {3, 2, 7 * 60}, {11, 1, 6 * 60}},
};

typedef struct {
	int64_t day;
	bool working;
} listed_day;

struct workcal {
	char id[WORKCAL_ID_MAX];
	const zone_rule *zone;
	listed_day *days;     /* sorted by day, unique */
	int64_t *delta;       /* delta[i]: sum over days[0..i) of (listed working - weekday) */
	size_t n_days;
	int *years;           /* covered years, sorted */
	size_t n_years;
};

static int weekday(int64_t day)   /* 0 = Sunday; 1970-01-01 was a Thursday */
{
	int64_t w = (day + 4) % 7;
	return (int)(w < 0 ? w + 7 : w);
}

static bool is_mon_fri(int64_t day)
{
	int w = weekday(day);
	return w >= 1 && w <= 5;
}

static int year_of(int64_t day)
{
	int64_t y;
	int m, d;
	ar_civil_from_days(day, &y, &m, &d);
	return (int)y;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static const zone_rule *zone_find(const char *name)
{
	for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
		if (strcmp(zones[i].name, name) == 0)
			return &zones[i];
	return NULL;
}

bool workcal_zone_known(const char *name)
{
	return name && zone_find(name);
}

static ar_time switch_instant(int64_t year, const dst_switch *s)
{
	int64_t day;
	if (s->week == 5) {
		int64_t last = (s->month == 12 ? ar_days_from_civil(year + 1, 1, 1)
					       : ar_days_from_civil(year, s->month + 1, 1)) - 1;
		day = last - weekday(last);
	} else {
		int64_t first = ar_days_from_civil(year, s->month, 1);
		day = first + (7 - weekday(first)) % 7 + 7 * (s->week - 1);
	}
	return day * AR_MS_PER_DAY + s->utc_min * MS_PER_MIN;
}

static int64_t zone_offset(const zone_rule *z, ar_time t)
{
	if (z->dst_min == z->std_min)
		return z->std_min * MS_PER_MIN;
	int64_t y = year_of(floor_div(t, AR_MS_PER_DAY));
	bool dst = t >= switch_instant(y, &z->start) && t < switch_instant(y, &z->end);
	return (dst ? z->dst_min : z->std_min) * MS_PER_MIN;
}

int64_t workcal_offset_at(const workcal *c, ar_time t)
{
	return zone_offset(c->zone, t);
}

/*
 * Local wall time (ms since the local epoch) -> instant. A wall time that
 * occurs twice (autumn) is its first occurrence; one that does not occur
 * (the spring gap) is read with the standard offset, i.e. moved forward by
 * the gap, as a clock that was not yet changed would show it.
 */
static ar_time local_to_utc(const zone_rule *z, int64_t local)
{
	int64_t std = z->std_min * MS_PER_MIN, dst = z->dst_min * MS_PER_MIN;
	ar_time in_dst = local - dst, in_std = local - std;
	if (dst != std && zone_offset(z, in_dst) == dst)
		return in_dst;
	return in_std;
}

bool workcal_at_parse(const char *s, workcal_at *out)
{
	if (strcmp(s, "end_of_day") == 0)
		*out = WORKCAL_END_OF_DAY;
	else if (strcmp(s, "same_time") == 0)
		*out = WORKCAL_SAME_TIME;
	else
		return false;
	return true;
}

const char *workcal_at_name(workcal_at at)
{
	return at == WORKCAL_SAME_TIME ? "same_time" : "end_of_day";
}

const char *workcal_id(const workcal *c)
{
	return c->id;
}

const char *workcal_zone(const workcal *c)
{
	return c->zone->name;
}

/* ---- lookups ---- */

static bool year_covered(const workcal *c, int year)
{
	size_t lo = 0, hi = c->n_years;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->years[mid] < year)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_years && c->years[lo] == year;
}

/* Index of the first listed day >= day. */
static size_t listed_lower(const workcal *c, int64_t day)
{
	size_t lo = 0, hi = c->n_days;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->days[mid].day < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool workcal_is_working_day(const workcal *c, int64_t day, bool *covered)
{
	if (covered)
		*covered = year_covered(c, year_of(day));
	size_t i = listed_lower(c, day);
	if (i < c->n_days && c->days[i].day == day)
		return c->days[i].working;
	return is_mon_fri(day);
}

/* Monday-to-Friday days in [0, x), x >= 0: day 0 is a Thursday. */
static int64_t weekdays_before(int64_t x)
{
	static const int head[8] = {0, 1, 2, 2, 2, 3, 4, 5};   /* Thu Fri Sat Sun Mon Tue Wed */
	return x / 7 * 5 + head[x % 7];
}

/* Working days in [0, x): weekdays, corrected by every listed day before x. */
static int64_t working_before(const workcal *c, int64_t x)
{
	return weekdays_before(x) + c->delta[listed_lower(c, x)];
}

bool workcal_add_working_days(const workcal *c, ar_time start, int n, workcal_at at,
			      workcal_due *out, ar_err *err)
{
	const ar_time lo = ar_days_from_civil(YEAR_MIN, 1, 2) * AR_MS_PER_DAY;
	const ar_time hi = ar_days_from_civil(YEAR_MAX, 1, 1) * AR_MS_PER_DAY;

	if (n < 1 || n > WORKCAL_MAX_N) {
		ar_err_fieldk(err, "/working_days", "field.int_range", "min", AR_INT(1),
			      "max", AR_INT(WORKCAL_MAX_N), NULL);
		return false;
	}
	if (start < lo || start >= hi) {
		ar_err_fieldk(err, "/start", "field.year_range", "min", AR_INT(YEAR_MIN), "max",
			      AR_INT(YEAR_MAX), NULL);
		return false;
	}
	int64_t local = start + zone_offset(c->zone, start);
	int64_t d0 = floor_div(local, AR_MS_PER_DAY);
	int64_t time_of_day = local - d0 * AR_MS_PER_DAY;
	int64_t base = working_before(c, d0 + 1);

	/* Smallest k with n working days in (d0, d0 + k]: the count only grows
	 * with k, so double until it is reached, then bisect. */
	int64_t k_hi = n;
	while (working_before(c, d0 + 1 + k_hi) - base < n)
		k_hi *= 2;
	int64_t k_lo = 1;
	while (k_lo < k_hi) {
		int64_t mid = k_lo + (k_hi - k_lo) / 2;
		if (working_before(c, d0 + 1 + mid) - base >= n)
			k_hi = mid;
		else
			k_lo = mid + 1;
	}
	int64_t last = d0 + k_lo;

	out->calendar_incomplete = false;
	for (int y = year_of(d0 + 1); y <= year_of(last); y++)
		if (!year_covered(c, y))
			out->calendar_incomplete = true;
	out->due = at == WORKCAL_END_OF_DAY
			   ? local_to_utc(c->zone, (last + 1) * AR_MS_PER_DAY)
			   : local_to_utc(c->zone, last * AR_MS_PER_DAY + time_of_day);
	return true;
}

void workcal_extend_over_holiday(const workcal *c, ar_time due, int min_days, ar_time *out,
				 int *days)
{
	int64_t local = due + zone_offset(c->zone, due);
	int64_t d = floor_div(local, AR_MS_PER_DAY), lo = d, hi = d;
	size_t i = listed_lower(c, d);

	*out = due;
	*days = 0;
	if (min_days < 1 || i >= c->n_days || c->days[i].day != d || c->days[i].working)
		return;
	while (hi - lo + 1 < WORKCAL_MAX_RUN && !workcal_is_working_day(c, lo - 1, NULL))
		lo--;
	while (hi - lo + 1 < WORKCAL_MAX_RUN && !workcal_is_working_day(c, hi + 1, NULL))
		hi++;
	if (hi - lo + 1 < min_days)
		return;
	*days = (int)(hi - lo + 1);
	*out = local_to_utc(c->zone, local + *days * AR_MS_PER_DAY);
}

int64_t workcal_days_left(const workcal *c, ar_time now)
{
	int64_t today = floor_div(now + zone_offset(c->zone, now), AR_MS_PER_DAY);
	int y = year_of(today);
	if (!year_covered(c, y))
		return -1;
	while (year_covered(c, y + 1))
		y++;
	return ar_days_from_civil(y + 1, 1, 1) - 1 - today;
}

/* ---- loading ---- */

/* A field error of catalogue key (name, value pairs ending in NULL). */
static void bad(ar_err *err, const char *pointer, const char *key, ...)
	__attribute__((sentinel));
static void bad(ar_err *err, const char *pointer, const char *key, ...)
{
	va_list ap;

	ar_err_setk(err, 422, "invalid-calendar", "detail.calendar_invalid", NULL);
	va_start(ap, key);
	ar_err_vfieldk(err, pointer, key, ap);
	va_end(ap);
}

static bool parse_date(const char *s, int64_t *day)
{
	char buf[32];
	ar_time t;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	memcpy(buf, s, 10);
	memcpy(buf + 10, "T00:00:00Z", 11);
	if (!ar_time_parse(buf, &t))
		return false;
	*day = t / AR_MS_PER_DAY;
	return true;
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= WORKCAL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

static int cmp_listed(const void *a, const void *b)
{
	const listed_day *x = a, *y = b;
	return (x->day > y->day) - (x->day < y->day);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static bool check_keys(const json_t *obj, const char *base, const char *const *allowed,
		       ar_err *err)
{
	const char *key;
	json_t *v;
	bool ok = true;
	json_object_foreach((json_t *)obj, key, v) {
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known = known || strcmp(allowed[i], key) == 0;
		if (!known) {
			bad(err, base, "field.unknown_key", "key", key, NULL);
			ok = false;
		}
	}
	return ok;
}

/* Appends the dates of one list of one year; false after naming every bad one. */
static bool load_list(workcal *c, const json_t *list, const char *ptr, int year,
		      bool working, ar_err *err)
{
	size_t i;
	json_t *v;
	bool ok = true;

	if (!list)
		return true;
	if (!json_is_array(list)) {
		bad(err, ptr, "field.dates", NULL);
		return false;
	}
	json_array_foreach(list, i, v) {
		int64_t day;
		if (!json_is_string(v) || !parse_date(json_string_value(v), &day)) {
			bad(err, ptr, "field.item_date", "item", AR_INT(i), NULL);
			ok = false;
			continue;
		}
		/* A notice lists only its own year and the days next to it. */
		int y = year_of(day);
		if (y < year - 1 || y > year + 1) {
			bad(err, ptr, "field.item_year", "item", AR_INT(i), "date", json_string_value(v),
			    "year", AR_INT(year), NULL);
			ok = false;
			continue;
		}
		if (c->n_days >= WORKCAL_MAX_DAYS) {
			bad(err, ptr, "field.too_many_dates", "max", AR_INT(WORKCAL_MAX_DAYS), NULL);
			return false;
		}
		c->days[c->n_days].day = day;
		c->days[c->n_days].working = working;
		c->n_days++;
	}
	return ok;
}

static void load_years(workcal *c, const json_t *years, ar_err *err)
{
	static const char *const year_keys[] = {"holidays", "working_days", "name", NULL};
	const char *key;
	json_t *v;
	char ptr[128];

	json_object_foreach((json_t *)years, key, v) {
		char *end;
		long y = strtol(key, &end, 10);
		snprintf(ptr, sizeof ptr, "/years/%s", key);
		if (strlen(key) != 4 || *end != '\0' || y < YEAR_MIN || y >= YEAR_MAX) {
			bad(err, ptr, "field.year_range", "min", AR_INT(YEAR_MIN), "max",
			    AR_INT(YEAR_MAX - 1), NULL);
			continue;
		}
		if (!json_is_object(v)) {
			bad(err, ptr, "field.object", NULL);
			continue;
		}
		if (!check_keys(v, ptr, year_keys, err))
			continue;
		c->years[c->n_years++] = (int)y;
		snprintf(ptr, sizeof ptr, "/years/%s/holidays", key);
		(void)load_list(c, json_object_get(v, "holidays"), ptr, (int)y, false, err);
		snprintf(ptr, sizeof ptr, "/years/%s/working_days", key);
		(void)load_list(c, json_object_get(v, "working_days"), ptr, (int)y, true, err);
	}
}

/* Sorts the listed days, drops repeats (two notices may list the same
 * holiday), refuses a date listed both ways, and builds the prefix sums. */
static void index_days(workcal *c, ar_err *err)
{
	size_t w = 0;
	qsort(c->days, c->n_days, sizeof c->days[0], cmp_listed);
	for (size_t i = 0; i < c->n_days; i++) {
		if (w > 0 && c->days[w - 1].day == c->days[i].day) {
			if (c->days[w - 1].working != c->days[i].working) {
				char date[32];
				int64_t y;
				int m, d;
				ar_civil_from_days(c->days[i].day, &y, &m, &d);
				snprintf(date, sizeof(date), "%04lld-%02d-%02d", (long long)y, m, d);
				bad(err, "/years", "field.holiday_and_workday", "date", date, NULL);
			}
			continue;
		}
		c->days[w++] = c->days[i];
	}
	c->n_days = w;
	c->delta[0] = 0;
	for (size_t i = 0; i < c->n_days; i++)
		c->delta[i + 1] = c->delta[i] + (int64_t)c->days[i].working -
				  (int64_t)is_mon_fri(c->days[i].day);
	qsort(c->years, c->n_years, sizeof c->years[0], cmp_int);
}

workcal *workcal_load(const json_t *doc, ar_err *err)
{
	static const char *const top_keys[] = {"id", "name", "time_zone", "source",
					       "retrieved", "years", NULL};
	static const char *const text_keys[] = {"name", "source", "retrieved", NULL};
	workcal *c = NULL;
	const json_t *id, *tz, *years;

	if (!json_is_object(doc)) {
		bad(err, "", "field.calendar_object", NULL);
		goto fail;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		ar_err_setk(err, 500, "internal", "detail.oom_calendar_load", NULL);
		goto fail;
	}
	(void)check_keys(doc, "", top_keys, err);
	id = json_object_get(doc, "id");
	if (!json_is_string(id) || !id_ok(json_string_value(id)))
		bad(err, "/id", "field.calendar_id", "max", AR_INT(WORKCAL_ID_MAX - 1), NULL);
	else
		strcpy(c->id, json_string_value(id));
	tz = json_object_get(doc, "time_zone");
	if (!tz)
		c->zone = zone_find("Asia/Shanghai");
	else if (!json_is_string(tz) || !(c->zone = zone_find(json_string_value(tz))))
		bad(err, "/time_zone", "field.one_of", "list",
		    "Asia/Shanghai, Asia/Hong_Kong, Asia/Tokyo, UTC, Europe/Berlin, America/New_York",
		    NULL);
	for (size_t i = 0; text_keys[i]; i++) {
		const json_t *v = json_object_get(doc, text_keys[i]);
		if (v && !json_is_string(v)) {
			char ptr[32];
			snprintf(ptr, sizeof ptr, "/%s", text_keys[i]);
			bad(err, ptr, "field.string", NULL);
		}
	}
	years = json_object_get(doc, "years");
	if (!json_is_object(years)) {
		bad(err, "/years", "field.years_object", NULL);
		goto fail;
	}
	c->days = malloc(WORKCAL_MAX_DAYS * sizeof c->days[0]);
	c->delta = malloc((WORKCAL_MAX_DAYS + 1) * sizeof c->delta[0]);
	c->years = malloc((json_object_size(years) + 1) * sizeof c->years[0]);
	if (!c->days || !c->delta || !c->years) {
		ar_err_setk(err, 500, "internal", "detail.oom_calendar_load", NULL);
		goto fail;
	}
	load_years(c, years, err);
	index_days(c, err);
	if (ar_err_is_set(err))
		goto fail;
	return c;
fail:
	workcal_free(c);
	return NULL;
}

void workcal_free(workcal *c)
{
	if (!c)
		return;
	free(c->days);
	free(c->delta);
	free(c->years);
	free(c);
}
