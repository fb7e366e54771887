/* RFC 3339 timestamps and ISO 8601 durations <-> milliseconds (pure, thread-safe, no libc time zone state). */
#include "arbiter/model.h"

#include <stdio.h>

#define MS_PER_MIN (60LL * AR_MS_PER_SEC)
#define MS_PER_HOUR (60LL * MS_PER_MIN)

/*
 * Howard Hinnant's days_from_civil: proleptic Gregorian date -> days since
 * 1970-01-01. Used instead of timegm() because timegm consults the process
 * time zone state and is not in C11.
 */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const int64_t yoe = y - era * 400;
	const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const int64_t doe = z - era * 146097;
	const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits; sscanf/strtol are avoided because they accept signs and spaces. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit((*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

bool ar_time_parse(const char *s, ar_time *out)
{
	const char *p = s;
	int year, mon, day, hour, min, sec, oh = 0, om = 0;
	int64_t frac_ms = 0, offset_ms = 0;

	if (!s)
		return false;
	if (!digits(&p, 4, &year) || !expect(&p, '-') || !digits(&p, 2, &mon) ||
	    !expect(&p, '-') || !digits(&p, 2, &day))
		return false;
	if (*p != 'T' && *p != 't')
		return false;
	p++;
	if (!digits(&p, 2, &hour) || !expect(&p, ':') || !digits(&p, 2, &min) ||
	    !expect(&p, ':') || !digits(&p, 2, &sec))
		return false;
	if (*p == '.') {
		int scale = 100;
		p++;
		if (!is_digit(*p))
			return false;
		/* Any precision is accepted; digits beyond milliseconds are truncated. */
		for (; is_digit(*p); p++) {
			frac_ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
		offset_ms = sign * (oh * MS_PER_HOUR + om * MS_PER_MIN);
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	/* Leap second 60 is refused: milliseconds since the epoch cannot name it. */
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 ||
	    day > days_in_month(year, mon) || hour > 23 || min > 59 || sec > 59)
		return false;
	*out = days_from_civil(year, mon, day) * AR_MS_PER_DAY + hour * MS_PER_HOUR +
	       min * MS_PER_MIN + sec * AR_MS_PER_SEC + frac_ms - offset_ms;
	return true;
}

void ar_time_format(ar_time t, char *buf, size_t len)
{
	int64_t days = t / AR_MS_PER_DAY, ms = t % AR_MS_PER_DAY, year;
	int mon, day;

	if (!buf || len == 0)
		return;
	/* Floor division, so instants before the epoch land on the right day. */
	if (ms < 0) {
		ms += AR_MS_PER_DAY;
		days--;
	}
	civil_from_days(days, &year, &mon, &day);
	snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)year, mon,
		 day, (int)(ms / MS_PER_HOUR), (int)(ms / MS_PER_MIN % 60),
		 (int)(ms / AR_MS_PER_SEC % 60), (int)(ms % AR_MS_PER_SEC));
}

/* Unsigned decimal with overflow check; at least one digit. */
static bool number(const char **p, int64_t *out)
{
	int64_t v = 0;
	if (!is_digit(**p))
		return false;
	for (; is_digit(**p); (*p)++) {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, **p - '0', &v))
			return false;
	}
	*out = v;
	return true;
}

static bool add_scaled(int64_t *acc, int64_t n, int64_t unit_ms)
{
	int64_t part;
	return !__builtin_mul_overflow(n, unit_ms, &part) &&
	       !__builtin_add_overflow(*acc, part, acc);
}

/*
 * Grammar: P [nW] [nD] [T [nH] [nM] [n[.f]S]], each unit at most once and in
 * this order. Years and months are refused because they have no fixed length
 * and a deadline must mean the same thing on every date.
 */
bool ar_duration_parse(const char *s, int64_t *out_ms)
{
	static const struct {
		char unit;
		bool time_part;
		int64_t ms;
	} units[] = {
		{ 'W', false, 7 * AR_MS_PER_DAY }, { 'D', false, AR_MS_PER_DAY },
		{ 'H', true, MS_PER_HOUR },        { 'M', true, MS_PER_MIN },
		{ 'S', true, AR_MS_PER_SEC },
	};
	const size_t n_units = sizeof(units) / sizeof(units[0]);
	const char *p = s;
	int64_t total = 0;
	size_t next = 0; /* first unit still allowed */
	bool in_time = false, any = false, any_time = false;

	if (!s || *p++ != 'P')
		return false;
	while (*p) {
		int64_t n, frac_ms = 0;
		size_t u;

		if (*p == 'T') {
			if (in_time)
				return false;
			in_time = true;
			p++;
			continue;
		}
		if (!number(&p, &n))
			return false;
		if (*p == '.') {
			int scale = 100;
			p++;
			if (!is_digit(*p))
				return false;
			for (; is_digit(*p); p++) {
				frac_ms += (*p - '0') * scale;
				scale /= 10;
			}
			if (*p != 'S')
				return false;
		}
		for (u = next; u < n_units; u++) {
			if (units[u].unit == *p && units[u].time_part == in_time)
				break;
		}
		if (u == n_units)
			return false;
		if (!add_scaled(&total, n, units[u].ms) || __builtin_add_overflow(total, frac_ms, &total))
			return false;
		next = u + 1;
		any = true;
		any_time |= in_time;
		p++;
	}
	if (!any || (in_time && !any_time))
		return false;
	*out_ms = total;
	return true;
}

int64_t ar_days_from_civil(int64_t y, int m, int d)
{
	return days_from_civil(y, m, d);
}

void ar_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	civil_from_days(days, y, m, d);
}
