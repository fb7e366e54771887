/*
 * Unit tests of the metrics registry: exact values of every family, label
 * escaping and catch-all buckets, histogram bucket edges, and increments from
 * several threads (with a scraper rendering concurrently) summing exactly.
 * Every rendering is also run through a small structural checker of the text
 * format (checked itself against broken inputs at the end).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/metrics.h"
#include "arbiter/policy.h"

/* Routes as a table would give them: an index and its template. */
enum { RT_HEALTHZ, RT_METRICS, RT_CASES, RT_CASE, RT_CASE_ACTIONS, RT__COUNT };
static const char *const rt_tmpl[RT__COUNT] = {
	"/healthz", "/metrics", "/v1/cases", "/v1/cases/{id}", "/v1/cases/{id}/actions",
};
#define HTTP(route, m, status, s) metrics_http(route, rt_tmpl[route], m, status, s)

/* ---- a tiny checker of the exposition text ------------------------------- */

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n > k && memcmp(s + n - k, suf, k) == 0;
}

/* Parses a float as the text format allows; false unless it takes all of s. */
static bool parse_value(const char *s, double *out)
{
	char *end;
	if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0) {
		*out = s[0] == '-' ? -INFINITY : s[0] == '+' ? INFINITY : NAN;
		return true;
	}
	if (!*s)
		return false;
	*out = strtod(s, &end);
	return *end == '\0';
}

/*
 * Checks: text ends with \n; HELP/TYPE at most once per name, TYPE before
 * that family's samples; every sample's name belongs to the family of the
 * last TYPE (histograms: _bucket/_sum/_count); names and label names valid,
 * label values with only \\ \" \n escapes, no duplicate label; values are
 * floats; histogram buckets strictly increasing in le, cumulative, ending in
 * +Inf, and _count equal to the +Inf bucket. Returns NULL or a message
 * (static buffer).
 */
static const char *check_text(const char *text)
{
	static char msg[512];
	char fam[128] = "", ftype[16] = "", seen[64][128], helps[64][128];
	size_t nseen = 0, nhelps = 0, lineno = 0;
	char hkey[512] = "";                  /* labels (without le) of the open histogram series */
	double last_le = -INFINITY, last_cum = -1, inf_cum = -1;
	const char *p = text;
	size_t tl = strlen(text);

	if (tl == 0 || text[tl - 1] != '\n')
		return "text does not end with a newline";
	while (*p) {
		const char *eol = strchr(p, '\n');
		char line[2048];
		size_t n = (size_t)(eol - p);

		lineno++;
		if (n >= sizeof(line))
			return "line too long";
		memcpy(line, p, n);
		line[n] = '\0';
		p = eol + 1;
		if (n == 0)
			continue;
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			char name[128], rest[1024] = "";
			bool help = line[2] == 'H';
			if (sscanf(line + 7, "%127s %1023[^\n]", name, rest) < 1)
				goto bad;
			for (size_t i = 0; name[i]; i++)
				if (!(i ? name_char(name[i]) : name_start(name[i])))
					goto bad;
			if (help) {
				for (size_t i = 0; i < nhelps; i++)
					if (strcmp(helps[i], name) == 0)
						goto bad;
				if (nhelps < 64)
					snprintf(helps[nhelps++], sizeof(helps[0]), "%s", name);
				continue;
			}
			if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
			    strcmp(rest, "summary") && strcmp(rest, "untyped"))
				goto bad;
			for (size_t i = 0; i < nseen; i++)
				if (strcmp(seen[i], name) == 0)
					goto bad; /* second TYPE, or TYPE after its samples */
			if (strcmp(ftype, "histogram") == 0 && last_cum >= 0)
				goto bad; /* previous histogram series not closed by _count */
			if (nseen < 64)
				snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			snprintf(fam, sizeof(fam), "%s", name);
			snprintf(ftype, sizeof(ftype), "%.15s", rest);
			last_cum = -1;
			continue;
		}
		if (line[0] == '#')
			continue;
		{
			/* name{labels} value */
			char key[512] = "", names[16][64], *q = line, vbuf[64];
			size_t nl = 0, nlen;
			double le = NAN, v;
			bool has_le = false;

			if (!name_start(*q))
				goto bad;
			while (name_char(*q))
				q++;
			nlen = (size_t)(q - line);
			if (*q == '{') {
				q++;
				while (*q != '}') {
					char ln[64], lv[256];
					size_t a = 0, b = 0;
					if (!name_start(*q) || *q == ':')
						goto bad;
					while (name_char(*q) && *q != ':' && a < 63)
						ln[a++] = *q++;
					ln[a] = '\0';
					if (*q++ != '=' || *q++ != '"')
						goto bad;
					while (*q != '"') {
						if (!*q || b >= 255)
							goto bad;
						if (*q == '\\') {
							q++;
							if (*q == 'n')
								lv[b++] = '\n';
							else if (*q == '\\' || *q == '"')
								lv[b++] = *q;
							else
								goto bad;
							q++;
						} else {
							lv[b++] = *q++;
						}
					}
					lv[b] = '\0';
					q++;
					for (size_t i = 0; i < nl; i++)
						if (strcmp(names[i], ln) == 0)
							goto bad;
					if (nl == 16)
						goto bad;
					snprintf(names[nl++], sizeof(names[0]), "%s", ln);
					if (strcmp(ln, "le") == 0) {
						has_le = true;
						if (!parse_value(lv, &le))
							goto bad;
					} else {
						size_t kl = strlen(key);
						snprintf(key + kl, sizeof(key) - kl, "%s=%s;", ln, lv);
					}
					if (*q == ',')
						q++;
					else if (*q != '}')
						goto bad;
				}
				q++;
			}
			if (*q != ' ')
				goto bad;
			q++;
			if (sscanf(q, "%63s", vbuf) != 1 || strlen(vbuf) != strlen(q) ||
			    !parse_value(vbuf, &v))
				goto bad;
			if (!fam[0])
				goto bad; /* sample before any TYPE */
			if (strcmp(ftype, "histogram") == 0) {
				size_t fl = strlen(fam);
				if (nlen <= fl || strncmp(line, fam, fl) != 0)
					goto bad;
				if (ends_with(line, nlen, "_bucket") && nlen == fl + 7) {
					if (!has_le)
						goto bad;
					if (last_cum < 0 || strcmp(key, hkey) != 0) {
						if (last_cum >= 0)
							goto bad; /* previous series not closed */
						snprintf(hkey, sizeof(hkey), "%s", key);
						last_le = -INFINITY;
						last_cum = 0;
						inf_cum = -1;
					}
					if (!(le > last_le) || v < last_cum || inf_cum >= 0)
						goto bad;
					last_le = le;
					last_cum = v;
					if (isinf(le))
						inf_cum = v;
				} else if (ends_with(line, nlen, "_sum") && nlen == fl + 4) {
					if (has_le || strcmp(key, hkey) != 0 || inf_cum < 0)
						goto bad;
				} else if (ends_with(line, nlen, "_count") && nlen == fl + 6) {
					if (has_le || strcmp(key, hkey) != 0 || inf_cum < 0 || v != inf_cum)
						goto bad;
					last_cum = -1;
					inf_cum = -1;
					hkey[0] = '\0';
				} else {
					goto bad;
				}
			} else if (nlen != strlen(fam) || strncmp(line, fam, nlen) != 0 || has_le) {
				goto bad;
			}
		}
	}
	if (strcmp(ftype, "histogram") == 0 && last_cum >= 0)
		return "text ends inside a histogram series";
	return NULL;
bad:
	snprintf(msg, sizeof(msg), "line %zu is not valid", lineno);
	return msg;
}

/* The value of the sample line that starts exactly with series + " ", or
 * -1 when there is no such line. */
static double value_of(const char *text, const char *series)
{
	size_t sl = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, sl) == 0 && p[sl] == ' ')
			return strtod(p + sl + 1, NULL);
	}
	return -1;
}

static bool has_line(const char *text, const char *line)
{
	size_t ll = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, ll) == 0 && p[ll] == '\n')
			return true;
	return false;
}

static char *render_checked(void)
{
	size_t len = 0;
	char *t = metrics_render(&len);
	const char *err;

	assert_non_null(t);
	assert_int_equal(len, strlen(t));
	err = check_text(t);
	if (err)
		fail_msg("%s\n%s", err, t);
	return t;
}

static int setup(void **state)
{
	metrics_init("0.1.0", "abc1234", 1700000000.25);
	metrics_reset();
	return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static const char *const families[] = {
	"arbiter_build_info gauge", "process_start_time_seconds gauge",
	"arbiter_http_requests_total counter", "arbiter_http_request_duration_seconds histogram",
	"arbiter_cases gauge", "arbiter_cases_opened_total counter",
	"arbiter_transitions_total counter", "arbiter_sla_timers_pending gauge",
	"arbiter_sla_fired_total counter", "arbiter_sla_firing_lag_seconds histogram",
	"arbiter_sla_breaches_total counter", "arbiter_sla_oldest_overdue_seconds gauge",
	"arbiter_refunds_instructed_total counter", "arbiter_refunds_instructed_cents_total counter",
	"arbiter_auto_refunds_total counter", "arbiter_db_pool_connections gauge",
	"arbiter_db_query_duration_seconds histogram", "arbiter_db_errors_total counter",
};

static void test_initial(void **state)
{
	char *t = render_checked();
	char line[160];

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s", families[i]);
		assert_true(has_line(t, line));
		snprintf(line, sizeof(line), "# HELP %.*s ", (int)strcspn(families[i], " "), families[i]);
		assert_non_null(strstr(t, line));
	}
	assert_true(has_line(t, "arbiter_build_info{version=\"0.1.0\",commit=\"abc1234\"} 1"));
	assert_true(has_line(t, "process_start_time_seconds 1700000000.250"));
	/* Not observed yet: no series (the HTTP ones), unknown (cases). */
	assert_null(strstr(t, "arbiter_http_requests_total{"));
	assert_null(strstr(t, "arbiter_http_request_duration_seconds_bucket"));
	assert_null(strstr(t, "arbiter_cases{"));
	assert_null(strstr(t, "arbiter_transitions_total{"));
	assert_null(strstr(t, "arbiter_refunds_instructed_total{"));
	/* Small fixed label sets: every series, at zero. */
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"refund\",outcome=\"auto_approve\"} 0"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"complaint\",outcome=\"ineligible\"} 0"));
	assert_true(has_line(t, "arbiter_sla_fired_total{deadline=\"seller_response\"} 0"));
	assert_true(has_line(t, "arbiter_sla_breaches_total{deadline=\"arbitration\"} 0"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"idle\"} 0"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"in_use\"} 0"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"broken\"} 0"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"+Inf\"} 0"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_sum 0.000000000"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_count 0"));
	assert_true(has_line(t, "arbiter_db_errors_total 0"));
	assert_true(has_line(t, "arbiter_auto_refunds_total 0"));
	assert_true(has_line(t, "arbiter_sla_timers_pending 0"));
	assert_true(has_line(t, "arbiter_sla_oldest_overdue_seconds 0.000000"));
	free(t);
}

static void test_http(void **state)
{
	char *t;

	HTTP(RT_CASE, M_GET, 200, 0.002);
	HTTP(RT_CASE, M_GET, 200, 0.002);
	HTTP(RT_CASE, M_GET, 404, 0.001);
	HTTP(RT_CASES, M_POST, 201, 0.02);
	HTTP(RT_CASE_ACTIONS, M_POST, 428, 0.001);
	metrics_http(METRICS_ROUTE_UNMATCHED, "unmatched", M_OTHER, 418, 0.0001);
	metrics_http(999, "whatever", (route_method)12345, 302, 0.0001);
	HTTP(RT_METRICS, M_GET, 503, 0.0001);
	t = render_checked();
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"/v1/cases/{id}\",method=\"GET\",status=\"200\"} 2"));
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"/v1/cases/{id}\",method=\"GET\",status=\"404\"} 1"));
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"/v1/cases\",method=\"POST\",status=\"201\"} 1"));
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"/v1/cases/{id}/actions\",method=\"POST\",status=\"428\"} 1"));
	/* Unknown route, method and status share the catch-alls. */
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"unmatched\",method=\"other\",status=\"other\"} 2"));
	assert_true(has_line(t, "arbiter_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"503\"} 1"));
	/* Only observed series. */
	assert_null(strstr(t, "status=\"500\""));
	assert_null(strstr(t, "route=\"/v1/keys\""));
	/* Duration by route and method, whatever the status. */
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_count{route=\"/v1/cases/{id}\",method=\"GET\"} 3"));
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_bucket{route=\"/v1/cases/{id}\",method=\"GET\",le=\"0.001\"} 1"));
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_bucket{route=\"/v1/cases/{id}\",method=\"GET\",le=\"0.0025\"} 3"));
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_sum{route=\"/v1/cases/{id}\",method=\"GET\"} 0.005000000"));
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_count{route=\"unmatched\",method=\"other\"} 2"));
	assert_true(has_line(t, "arbiter_http_request_duration_seconds_count{route=\"/v1/cases\",method=\"POST\"} 1"));
	assert_null(strstr(t, "arbiter_http_request_duration_seconds_count{route=\"/v1/cases/{id}\",method=\"POST\"}"));
	free(t);
}

static void test_histogram_edges(void **state)
{
	static const char *const want[] = {
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.0005\"} 3",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.001\"} 3",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.0025\"} 3",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.005\"} 4",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"0.01\"} 5",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"5\"} 5",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"10\"} 6",
		"arbiter_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"+Inf\"} 7",
		"arbiter_http_request_duration_seconds_sum{route=\"/healthz\",method=\"GET\"} 21.010500100",
		"arbiter_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 7",
	};
	char *t;

	/* le is inclusive: a value equal to a bound lands in that bucket. */
	HTTP(RT_HEALTHZ, M_GET, 200, 0.0005);
	HTTP(RT_HEALTHZ, M_GET, 200, -3.0); /* counted as 0 */
	HTTP(RT_HEALTHZ, M_GET, 200, NAN);  /* counted as 0 */
	HTTP(RT_HEALTHZ, M_GET, 200, 0.005);
	HTTP(RT_HEALTHZ, M_GET, 200, 0.0050001);
	HTTP(RT_HEALTHZ, M_GET, 200, 10.0);
	HTTP(RT_HEALTHZ, M_GET, 200, 11.0);
	t = render_checked();
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!has_line(t, want[i]))
			fail_msg("missing line: %s\n%s", want[i], t);
	free(t);
}

static void test_cases_and_counters(void **state)
{
	int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT] = { { 0 } };
	char *t;

	counts[FSM_STATE_AWAITING_SELLER][AR_KIND_REFUND] = 7;
	counts[FSM_STATE_CLOSED][AR_KIND_COMPLAINT] = 123456789012LL;
	metrics_set_cases(counts);
	metrics_case_opened(AR_KIND_REFUND, POLICY_OUTCOME_AUTO_APPROVE);
	metrics_case_opened(AR_KIND_REFUND, POLICY_OUTCOME_AUTO_APPROVE);
	metrics_case_opened(AR_KIND_RETURN, POLICY_OUTCOME_SELLER_REVIEW);
	metrics_case_opened(AR_KIND_COMPLAINT, POLICY_OUTCOME_MANUAL_REVIEW);
	metrics_case_opened(AR_KIND_EXCHANGE, POLICY_OUTCOME_INELIGIBLE);
	metrics_case_opened(AR_KIND__COUNT, 0);  /* ignored */
	metrics_case_opened(AR_KIND_REFUND, 4);  /* ignored */
	metrics_case_opened(AR_KIND_REFUND, -1); /* ignored */
	metrics_transition(FSM_ACTION_ACCEPT, FSM_ROLE_SELLER);
	metrics_transition(FSM_ACTION_ACCEPT, FSM_ROLE_AGENT);
	metrics_transition(FSM_ACTION_EXPIRE_SELLER_RESPONSE, FSM_ROLE_SYSTEM);
	metrics_transition(FSM_ACTION_EXPIRE_SELLER_RESPONSE, FSM_ROLE_SYSTEM);
	metrics_transition(FSM_ACTION__COUNT, FSM_ROLE_SYSTEM); /* ignored */
	metrics_transition(FSM_ACTION_ACCEPT, FSM_ROLE__COUNT);  /* ignored */
	t = render_checked();
	assert_true(has_line(t, "arbiter_cases{state=\"awaiting_seller\",kind=\"refund\"} 7"));
	assert_true(has_line(t, "arbiter_cases{state=\"closed\",kind=\"complaint\"} 123456789012"));
	assert_true(has_line(t, "arbiter_cases{state=\"refunded\",kind=\"return\"} 0"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"refund\",outcome=\"auto_approve\"} 2"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"return\",outcome=\"seller_review\"} 1"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"complaint\",outcome=\"manual_review\"} 1"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"exchange\",outcome=\"ineligible\"} 1"));
	assert_true(has_line(t, "arbiter_cases_opened_total{kind=\"refund\",outcome=\"seller_review\"} 0"));
	assert_true(has_line(t, "arbiter_transitions_total{action=\"accept\",actor_role=\"seller\"} 1"));
	assert_true(has_line(t, "arbiter_transitions_total{action=\"accept\",actor_role=\"agent\"} 1"));
	assert_true(has_line(t, "arbiter_transitions_total{action=\"expire_seller_response\",actor_role=\"system\"} 2"));
	assert_null(strstr(t, "actor_role=\"frontend\""));
	/* 12 states x 5 kinds, each once. */
	{
		size_t n = 0;
		for (const char *p = t; (p = strstr(p, "\narbiter_cases{")); p++)
			n++;
		assert_int_equal(n, (size_t)FSM_STATE__COUNT * AR_KIND__COUNT);
	}
	free(t);
}

static void test_sla_and_db(void **state)
{
	char *t;

	metrics_sla_pending(42);
	metrics_sla_oldest_overdue(3.5);
	metrics_sla_fired(FSM_DEADLINE_SELLER_RESPONSE, 0.01); /* le 0.01 */
	metrics_sla_fired(FSM_DEADLINE_SELLER_RESPONSE, 0.2);  /* le 0.25 */
	metrics_sla_fired(FSM_DEADLINE_BUYER_REPLY, 700);      /* +Inf only */
	metrics_sla_fired(FSM_DEADLINE__COUNT, 1);             /* ignored */
	metrics_sla_breach(FSM_DEADLINE_ARBITRATION);
	metrics_sla_breach((fsm_deadline)-1);                  /* ignored */
	metrics_db_pool(3, 2, 1);
	metrics_db_query(0.0001, false);
	metrics_db_query(0.003, true);
	metrics_db_query(6, true);
	t = render_checked();
	assert_true(has_line(t, "arbiter_sla_timers_pending 42"));
	assert_true(has_line(t, "arbiter_sla_oldest_overdue_seconds 3.500000"));
	assert_true(has_line(t, "arbiter_sla_fired_total{deadline=\"seller_response\"} 2"));
	assert_true(has_line(t, "arbiter_sla_fired_total{deadline=\"buyer_reply\"} 1"));
	assert_true(has_line(t, "arbiter_sla_fired_total{deadline=\"arbitration\"} 0"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"0.01\"} 1"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"0.1\"} 1"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"0.25\"} 2"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"600\"} 2"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"+Inf\"} 3"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_sum 700.210000000"));
	assert_true(has_line(t, "arbiter_sla_firing_lag_seconds_count 3"));
	assert_true(has_line(t, "arbiter_sla_breaches_total{deadline=\"arbitration\"} 1"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"idle\"} 3"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"in_use\"} 2"));
	assert_true(has_line(t, "arbiter_db_pool_connections{state=\"broken\"} 1"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_bucket{le=\"0.0001\"} 1"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_bucket{le=\"0.0025\"} 1"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_bucket{le=\"0.005\"} 2"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_bucket{le=\"5\"} 2"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_bucket{le=\"+Inf\"} 3"));
	assert_true(has_line(t, "arbiter_db_query_duration_seconds_count 3"));
	assert_true(has_line(t, "arbiter_db_errors_total 2"));
	free(t);

	metrics_sla_oldest_overdue(-1);
	metrics_sla_pending(0);
	t = render_checked();
	assert_true(has_line(t, "arbiter_sla_oldest_overdue_seconds 0.000000"));
	assert_true(has_line(t, "arbiter_sla_timers_pending 0"));
	free(t);
	metrics_sla_oldest_overdue(NAN);
	t = render_checked();
	assert_true(has_line(t, "arbiter_sla_oldest_overdue_seconds 0.000000"));
	free(t);
}

static void test_refunds(void **state)
{
	char *t, name[32];

	metrics_refund("auto_approve", "CNY", 12900, true);
	metrics_refund("auto_approve", "CNY", 100, true);
	metrics_refund("offer_accepted", "USD", 500, false);
	metrics_refund("Bad Reason", "cny", 7, false);       /* both -> other */
	metrics_refund(NULL, NULL, -50, false);               /* other, 0 cents */
	metrics_refund("other", "EURO", 1, false);            /* "other" is not a slot */
	metrics_refund("a_reason_that_is_far_too_long_for_a_label", "EUR", 3, true);
	t = render_checked();
	assert_true(has_line(t, "arbiter_refunds_instructed_total{reason=\"auto_approve\"} 2"));
	assert_true(has_line(t, "arbiter_refunds_instructed_total{reason=\"offer_accepted\"} 1"));
	assert_true(has_line(t, "arbiter_refunds_instructed_total{reason=\"other\"} 4"));
	assert_true(has_line(t, "arbiter_refunds_instructed_cents_total{currency=\"CNY\"} 13000"));
	assert_true(has_line(t, "arbiter_refunds_instructed_cents_total{currency=\"USD\"} 500"));
	assert_true(has_line(t, "arbiter_refunds_instructed_cents_total{currency=\"EUR\"} 3"));
	assert_true(has_line(t, "arbiter_refunds_instructed_cents_total{currency=\"other\"} 8"));
	assert_true(has_line(t, "arbiter_auto_refunds_total 3"));
	free(t);

	/* The table is bounded: past METRICS_MAX_LABELS values, "other". */
	for (int i = 0; i < METRICS_MAX_LABELS + 5; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metrics_refund(name, "CNY", 1, false);
	}
	t = render_checked();
	assert_true(has_line(t, "arbiter_refunds_instructed_total{reason=\"r0\"} 1"));
	snprintf(name, sizeof(name), "r%d", METRICS_MAX_LABELS - 3); /* 2 slots already taken */
	{
		char line[96];
		snprintf(line, sizeof(line), "arbiter_refunds_instructed_total{reason=\"%s\"} 1", name);
		assert_true(has_line(t, line));
		snprintf(line, sizeof(line), "arbiter_refunds_instructed_total{reason=\"r%d\"}",
			 METRICS_MAX_LABELS - 2);
		assert_null(strstr(t, line));
	}
	assert_true(has_line(t, "arbiter_refunds_instructed_total{reason=\"other\"} 11"));
	free(t);
}

static void test_escaping(void **state)
{
	char *t;

	metrics_init("1.0 \"beta\"\\x\nend", "", 0);
	t = render_checked();
	assert_true(has_line(t, "arbiter_build_info{version=\"1.0 \\\"beta\\\"\\\\x\\nend\",commit=\"\"} 1"));
	assert_true(has_line(t, "process_start_time_seconds 0.000"));
	free(t);
	metrics_init(NULL, NULL, NAN);
	t = render_checked();
	assert_true(has_line(t, "arbiter_build_info{version=\"\",commit=\"\"} 1"));
	free(t);
	metrics_init("0.1.0", "abc1234", 1700000000.25);
}

/* ---- threads ---------------------------------------------------------------------- */

#define THREADS 8
#define ITERS 50000

static _Atomic bool stop_scraper;
static pthread_barrier_t start_barrier; /* workers start together: maximal overlap */

static void *worker(void *arg)
{
	static const char *const reasons[] = { "alpha", "beta", "gamma", "delta" };
	int id = (int)(intptr_t)arg;

	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < ITERS; i++) {
		HTTP(RT_CASES, M_POST, 201, 0.003);
		if (i % (RT__COUNT + 1) < RT__COUNT)
			HTTP(i % (RT__COUNT + 1), M_GET, (i & 1) ? 200 : 404, 0.0001 * (i % 50));
		else
			metrics_http(METRICS_ROUTE_UNMATCHED, "unmatched", M_GET, 404, 0.0001);
		metrics_transition(FSM_ACTION_NOTE, FSM_ROLE_AGENT);
		metrics_case_opened(AR_KIND_RETURN, POLICY_OUTCOME_SELLER_REVIEW);
		metrics_sla_fired(FSM_DEADLINE_SELLER_RECEIPT, 0.5);
		metrics_db_query(0.002, i % 10 == 0);
		/* Every thread races to register the same new reasons. */
		metrics_refund(reasons[(i + id) % 4], (i & 1) ? "CNY" : "JPY", 3, i % 2 == 0);
		if (i % 1000 == 0) {
			metrics_sla_pending(i);
			metrics_db_pool(id, i, 0);
		}
	}
	return NULL;
}

static void *scraper(void *arg)
{
	int *renders = arg;
	while (!atomic_load(&stop_scraper) || *renders < 3) {
		size_t len;
		char *t = metrics_render(&len);
		const char *err;
		if (!t)
			return (void *)1;
		err = check_text(t);
		free(t);
		if (err)
			return (void *)2;
		(*renders)++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[THREADS], sc;
	int renders = 0;
	void *sres = NULL;
	char *t;
	const uint64_t total = (uint64_t)THREADS * ITERS;
	char line[160];

	atomic_store(&stop_scraper, false);
	assert_int_equal(pthread_barrier_init(&start_barrier, NULL, THREADS), 0);
	assert_int_equal(pthread_create(&sc, NULL, scraper, &renders), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&start_barrier);
	atomic_store(&stop_scraper, true);
	assert_int_equal(pthread_join(sc, &sres), 0);
	assert_null(sres); /* every concurrent rendering was well formed */
	assert_true(renders >= 3);

	t = render_checked();
	assert_true(value_of(t, "arbiter_http_requests_total{route=\"/v1/cases\",method=\"POST\",status=\"201\"}") ==
		    (double)total);
	assert_true(value_of(t, "arbiter_transitions_total{action=\"note\",actor_role=\"agent\"}") ==
		    (double)total);
	assert_true(value_of(t, "arbiter_cases_opened_total{kind=\"return\",outcome=\"seller_review\"}") ==
		    (double)total);
	assert_true(value_of(t, "arbiter_sla_fired_total{deadline=\"seller_receipt\"}") == (double)total);
	assert_true(value_of(t, "arbiter_sla_firing_lag_seconds_count") == (double)total);
	assert_true(value_of(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"0.25\"}") == 0);
	assert_true(value_of(t, "arbiter_sla_firing_lag_seconds_bucket{le=\"0.5\"}") == (double)total);
	snprintf(line, sizeof(line), "arbiter_sla_firing_lag_seconds_sum %llu.000000000",
		 (unsigned long long)(total / 2));
	assert_true(has_line(t, line));
	assert_true(value_of(t, "arbiter_db_query_duration_seconds_count") == (double)total);
	assert_true(value_of(t, "arbiter_db_errors_total") == (double)(total / 10));
	assert_true(value_of(t, "arbiter_auto_refunds_total") == (double)(total / 2));
	/* Four reasons registered exactly once each despite the race. */
	{
		static const char *const reasons[] = { "alpha", "beta", "gamma", "delta" };
		for (int i = 0; i < 4; i++) {
			size_t n = 0;
			snprintf(line, sizeof(line), "arbiter_refunds_instructed_total{reason=\"%s\"}", reasons[i]);
			for (const char *p = t; (p = strstr(p, line)); p++)
				n++;
			assert_int_equal(n, 1);
			assert_true(value_of(t, line) == (double)(total / 4));
		}
		assert_null(strstr(t, "reason=\"other\""));
	}
	assert_true(value_of(t, "arbiter_refunds_instructed_cents_total{currency=\"CNY\"}") ==
		    (double)(total / 2 * 3));
	assert_true(value_of(t, "arbiter_refunds_instructed_cents_total{currency=\"JPY\"}") ==
		    (double)(total / 2 * 3));
	/* The per-route loop: ITERS/6 rounds per route, some routes one more. */
	{
		double sum = 0;
		char series[128];
		for (int r = 0; r <= RT__COUNT; r++) {
			double v;
			snprintf(series, sizeof(series), "arbiter_http_request_duration_seconds_count{route=\"%s\",method=\"GET\"}",
				 r < RT__COUNT ? rt_tmpl[r] : "unmatched");
			v = value_of(t, series);
			assert_true(v > 0);
			sum += v;
		}
		sum += value_of(t, "arbiter_http_request_duration_seconds_count{route=\"/v1/cases\",method=\"POST\"}");
		/* + the POST /v1/cases observations */
		assert_true(sum == (double)(2 * total));
	}
	free(t);
}

/* New label values registered by racing threads: each lands in exactly one
 * slot and no increment is lost. Many short rounds, started together. */
#define RACE_ROUNDS 200
#define RACE_NAMES 12

static pthread_barrier_t race_barrier;

static void *racer(void *arg)
{
	int id = (int)(intptr_t)arg;
	char name[16];

	pthread_barrier_wait(&race_barrier);
	for (int j = 0; j < RACE_NAMES; j++) {
		snprintf(name, sizeof(name), "n%d", (j + id) % RACE_NAMES);
		metrics_refund(name, (j + id) % 2 ? "AAA" : "BBB", 1, false);
	}
	return NULL;
}

static void test_label_race(void **state)
{
	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_t th[THREADS];
		char *t, series[96];

		metrics_reset();
		assert_int_equal(pthread_barrier_init(&race_barrier, NULL, THREADS), 0);
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i), 0);
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		pthread_barrier_destroy(&race_barrier);
		t = render_checked();
		for (int j = 0; j < RACE_NAMES; j++) {
			size_t n = 0;
			snprintf(series, sizeof(series), "arbiter_refunds_instructed_total{reason=\"n%d\"}", j);
			for (const char *p = t; (p = strstr(p, series)); p++)
				n++;
			if (n != 1 || value_of(t, series) != THREADS)
				fail_msg("round %d: %s appears %zu times, value %g", round, series, n,
					 value_of(t, series));
		}
		assert_null(strstr(t, "\"other\""));
		assert_true(value_of(t, "arbiter_refunds_instructed_cents_total{currency=\"AAA\"}") ==
			    THREADS * RACE_NAMES / 2);
		assert_true(value_of(t, "arbiter_refunds_instructed_cents_total{currency=\"BBB\"}") ==
			    THREADS * RACE_NAMES / 2);
		free(t);
	}
}

/* ---- the checker itself must fail on broken text ----------------------------------- */

static void test_checker_rejects(void **state)
{
	static const char *const bad[] = {
		"# TYPE a counter\na 1",                                        /* no final newline */
		"a 1\n",                                                        /* no TYPE */
		"# TYPE a counter\n# TYPE a counter\na 1\n",                    /* TYPE twice */
		"# HELP a x\n# HELP a y\n# TYPE a counter\na 1\n",              /* HELP twice */
		"# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n",                     /* duplicate label */
		"# TYPE a counter\na{x=\"\\t\"} 1\n",                           /* bad escape */
		"# TYPE a counter\na 1x\n",                                     /* bad float */
		"# TYPE a counter\nb 1\n",                                      /* sample of another family */
		"# TYPE a counter\na{1x=\"1\"} 1\n",                            /* bad label name */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
		"# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n",      /* no _count */
		"# TYPE h histogram\nh_bucket 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* no le */
	};
	static const char *const good[] = {
		"# HELP a x\n# TYPE a counter\na 1\na{x=\"\\\"\\\\\\n\"} 2.5e3\n",
		"# TYPE h histogram\nh_bucket{r=\"a\",le=\"1\"} 1\nh_bucket{r=\"a\",le=\"+Inf\"} 2\nh_sum{r=\"a\"} 1\nh_count{r=\"a\"} 2\n"
		"h_bucket{r=\"b\",le=\"1\"} 0\nh_bucket{r=\"b\",le=\"+Inf\"} 0\nh_sum{r=\"b\"} 0\nh_count{r=\"b\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!check_text(bad[i]))
			fail_msg("checker accepted bad input %zu:\n%s", i, bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *err = check_text(good[i]);
		if (err)
			fail_msg("checker refused good input %zu (%s):\n%s", i, err, good[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_initial, setup),
		cmocka_unit_test_setup(test_http, setup),
		cmocka_unit_test_setup(test_histogram_edges, setup),
		cmocka_unit_test_setup(test_cases_and_counters, setup),
		cmocka_unit_test_setup(test_sla_and_db, setup),
		cmocka_unit_test_setup(test_refunds, setup),
		cmocka_unit_test_setup(test_escaping, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_label_race, setup),
		cmocka_unit_test(test_checker_rejects),
	};
	const char *dump = getenv("METRICS_DUMP");
	int rc = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);

	/* METRICS_DUMP=path writes a sample rendering (for promtool / promparse). */
	if (dump) {
		FILE *f = fopen(dump, "w");
		char *t;
		metrics_reset();
		metrics_init("0.1.0", "abc1234", 1700000000.25);
		HTTP(RT_CASE, M_GET, 200, 0.004);
		metrics_http(METRICS_ROUTE_UNMATCHED, "unmatched", M_GET, 404, 0.0001);
		metrics_refund("auto_approve", "CNY", 12900, true);
		metrics_sla_fired(FSM_DEADLINE_SELLER_RESPONSE, 0.3);
		metrics_transition(FSM_ACTION_ACCEPT, FSM_ROLE_SELLER);
		{
			int64_t c[FSM_STATE__COUNT][AR_KIND__COUNT] = { { 1 } };
			metrics_set_cases(c);
		}
		t = metrics_render(NULL);
		if (!f || !t || fputs(t, f) < 0)
			rc = 1;
		if (f)
			fclose(f);
		free(t);
	}
	return rc;
}
