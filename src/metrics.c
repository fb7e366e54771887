/*
 * Metrics registry: fixed arrays of C11 atomics, recorded without locks or
 * allocation, rendered as Prometheus text exposition format 0.0.4.
 */
#include "arbiter/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/policy.h"
#include "arbiter/textbuf.h"

#define RELAXED memory_order_relaxed

typedef _Atomic uint64_t counter;
typedef _Atomic int64_t gauge;

/* ---- label vocabularies ------------------------------------------------ */

#define N_ROUTES (METRICS_MAX_ROUTES + 1) /* + unmatched */
#define N_METHODS 6
static const char *const method_names[N_METHODS] = {
	"GET", "POST", "PUT", "DELETE", "HEAD", "other",
};

static const int status_codes[] = {
	200, 201, 204, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428, 429, 500, 503,
};
#define N_CODES (sizeof(status_codes) / sizeof(status_codes[0]))
#define N_STATUS (N_CODES + 1) /* + other */

#define N_OUTCOMES 4
_Static_assert(POLICY_OUTCOME_AUTO_APPROVE == 0 && POLICY_OUTCOME_INELIGIBLE == N_OUTCOMES - 1,
	       "policy outcomes are 0..3");

enum { POOL_IDLE, POOL_IN_USE, POOL_BROKEN, N_POOL };
static const char *const pool_names[N_POOL] = { "idle", "in_use", "broken" };

/* ---- histograms ---------------------------------------------------------- */

/* Upper bounds in integer nanoseconds (exact comparisons) and as printed. */
typedef struct {
	uint64_t ns;
	const char *le;
} bound;

static const bound http_bounds[] = {
	{ 500000ull, "0.0005" }, { 1000000ull, "0.001" }, { 2500000ull, "0.0025" },
	{ 5000000ull, "0.005" }, { 10000000ull, "0.01" }, { 25000000ull, "0.025" },
	{ 50000000ull, "0.05" }, { 100000000ull, "0.1" }, { 250000000ull, "0.25" },
	{ 500000000ull, "0.5" }, { 1000000000ull, "1" }, { 2500000000ull, "2.5" },
	{ 5000000000ull, "5" }, { 10000000000ull, "10" },
};
#define N_HTTP_B (sizeof(http_bounds) / sizeof(http_bounds[0]))

static const bound lag_bounds[] = {
	{ 10000000ull, "0.01" }, { 25000000ull, "0.025" }, { 50000000ull, "0.05" },
	{ 100000000ull, "0.1" }, { 250000000ull, "0.25" }, { 500000000ull, "0.5" },
	{ 1000000000ull, "1" }, { 2500000000ull, "2.5" }, { 5000000000ull, "5" },
	{ 10000000000ull, "10" }, { 30000000000ull, "30" }, { 60000000000ull, "60" },
	{ 120000000000ull, "120" }, { 300000000000ull, "300" }, { 600000000000ull, "600" },
};
#define N_LAG_B (sizeof(lag_bounds) / sizeof(lag_bounds[0]))

static const bound db_bounds[] = {
	{ 100000ull, "0.0001" }, { 250000ull, "0.00025" }, { 500000ull, "0.0005" },
	{ 1000000ull, "0.001" }, { 2500000ull, "0.0025" }, { 5000000ull, "0.005" },
	{ 10000000ull, "0.01" }, { 25000000ull, "0.025" }, { 50000000ull, "0.05" },
	{ 100000000ull, "0.1" }, { 250000000ull, "0.25" }, { 500000000ull, "0.5" },
	{ 1000000000ull, "1" }, { 2500000000ull, "2.5" }, { 5000000000ull, "5" },
};
#define N_DB_B (sizeof(db_bounds) / sizeof(db_bounds[0]))

#define MAX_B 16
_Static_assert(N_HTTP_B < MAX_B && N_LAG_B < MAX_B && N_DB_B < MAX_B, "MAX_B too small");

/* Non-cumulative counts per bucket (index nb = above the last bound, i.e.
 * only in +Inf) and the sum in nanoseconds. Cumulated when rendered. */
typedef struct {
	counter bucket[MAX_B];
	counter sum_ns;
} histogram;

/* ---- dynamic label slots (refund reasons, currencies) ------------------- */

enum { SLOT_EMPTY, SLOT_CLAIMED, SLOT_READY };

typedef struct {
	_Atomic int state;
	char name[METRICS_LABEL_MAX + 1]; /* written once, before state = READY */
	counter value;
} label_slot;

typedef struct {
	label_slot slot[METRICS_MAX_LABELS];
	counter other;
} label_table;

/* ---- the registry --------------------------------------------------------- */

static struct {
	char version[128];
	char commit[64];
	double start_time_s;

	counter http[N_ROUTES][N_METHODS][N_STATUS];
	counter throttled[METRICS_THROTTLE__COUNT];
	counter shed[METRICS_SHED__COUNT];
	counter reads[METRICS_READ__COUNT];
	gauge connections;
	histogram http_dur[N_ROUTES][N_METHODS];
	_Atomic(const char *) route_name[N_ROUTES];

	_Atomic bool cases_set;
	gauge cases[FSM_STATE__COUNT][AR_KIND__COUNT];
	counter opened[AR_KIND__COUNT][N_OUTCOMES];
	counter transitions[FSM_ACTION__COUNT][FSM_ROLE__COUNT];

	gauge sla_pending;
	counter sla_fired[FSM_DEADLINE__COUNT];
	histogram sla_lag;
	counter sla_breaches[FSM_DEADLINE__COUNT];
	_Atomic uint64_t sla_oldest_bits; /* a double's bits */
	_Atomic int64_t calendar_days_left; /* INT64_MIN: no calendar loaded yet */

	label_table refund_reasons;
	label_table refund_currencies; /* values are cents */
	counter auto_refunds;

	gauge db_pool[N_POOL];
	histogram db_dur;
	counter db_errors;
} M;

/* ---- recording ------------------------------------------------------------ */

static uint64_t seconds_to_ns(double s)
{
	if (!(s > 0)) /* negative, zero, NaN */
		return 0;
	if (s >= 1e9) /* ~31 years: clamp, keep sums far from overflow */
		return 1000000000ull * 1000000000ull;
	return (uint64_t)(s * 1e9 + 0.5);
}

static void observe(histogram *h, const bound *b, size_t nb, double seconds)
{
	uint64_t ns = seconds_to_ns(seconds);
	size_t i = 0;

	while (i < nb && ns > b[i].ns)
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, RELAXED);
	atomic_fetch_add_explicit(&h->sum_ns, ns, RELAXED);
}

static size_t method_index(route_method m)
{
	switch (m) {
	case M_GET: return 0;
	case M_POST: return 1;
	case M_PUT: return 2;
	case M_DELETE: return 3;
	case M_HEAD: return 4;
	default: return 5;
	}
}

static size_t status_index(int status)
{
	for (size_t i = 0; i < N_CODES; i++)
		if (status_codes[i] == status)
			return i;
	return N_CODES;
}

void metrics_http(int route, const char *tmpl, route_method method, int status,
		  double seconds)
{
	size_t r = route >= 0 && route < METRICS_MAX_ROUTES ? (size_t)route : METRICS_MAX_ROUTES;
	size_t m = method_index(method);

	if (r < METRICS_MAX_ROUTES && tmpl)
		atomic_store_explicit(&M.route_name[r], tmpl, RELAXED);

	atomic_fetch_add_explicit(&M.http[r][m][status_index(status)], 1, RELAXED);
	observe(&M.http_dur[r][m], http_bounds, N_HTTP_B, seconds);
}

void metrics_http_throttled(metrics_throttle scope)
{
	if ((unsigned)scope < METRICS_THROTTLE__COUNT)
		atomic_fetch_add_explicit(&M.throttled[scope], 1, RELAXED);
}

void metrics_http_shed(metrics_shed reason)
{
	if ((unsigned)reason < METRICS_SHED__COUNT)
		atomic_fetch_add_explicit(&M.shed[reason], 1, RELAXED);
}

void metrics_db_read(metrics_read target)
{
	if ((unsigned)target < METRICS_READ__COUNT)
		atomic_fetch_add_explicit(&M.reads[target], 1, RELAXED);
}

void metrics_http_connections(int64_t open)
{
	atomic_store_explicit(&M.connections, open, RELAXED);
}

void metrics_case_opened(ar_kind kind, int outcome)
{
	if ((unsigned)kind >= AR_KIND__COUNT || (unsigned)outcome >= N_OUTCOMES)
		return;
	atomic_fetch_add_explicit(&M.opened[kind][outcome], 1, RELAXED);
}

void metrics_transition(fsm_action action, fsm_role role)
{
	if ((unsigned)action >= FSM_ACTION__COUNT || (unsigned)role >= FSM_ROLE__COUNT)
		return;
	atomic_fetch_add_explicit(&M.transitions[action][role], 1, RELAXED);
}

void metrics_sla_fired(fsm_deadline d, double lag_s)
{
	if ((unsigned)d >= FSM_DEADLINE__COUNT)
		return;
	atomic_fetch_add_explicit(&M.sla_fired[d], 1, RELAXED);
	observe(&M.sla_lag, lag_bounds, N_LAG_B, lag_s);
}

void metrics_sla_breach(fsm_deadline d)
{
	if ((unsigned)d >= FSM_DEADLINE__COUNT)
		return;
	atomic_fetch_add_explicit(&M.sla_breaches[d], 1, RELAXED);
}

void metrics_sla_pending(int64_t pending)
{
	atomic_store_explicit(&M.sla_pending, pending, RELAXED);
}

static uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

void metrics_calendar_days_left(int64_t days)
{
	atomic_store_explicit(&M.calendar_days_left, days, RELAXED);
}

void metrics_sla_oldest_overdue(double seconds)
{
	if (!(seconds > 0)) /* negative, NaN */
		seconds = 0;
	if (isinf(seconds))
		seconds = 1e18;
	atomic_store_explicit(&M.sla_oldest_bits, double_bits(seconds), RELAXED);
}

static bool reason_word(const char *s)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= METRICS_LABEL_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return n > 0 && strcmp(s, "other") != 0;
}

static bool currency_code(const char *s)
{
	return s && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
	       s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

/*
 * The counter of label value s in t, claiming a slot the first time s is
 * seen; t->other when s is not valid or every slot is taken. Slots fill in
 * order and never empty (until metrics_reset), so a scan can stop at the
 * first empty slot.
 */
static counter *label_counter(label_table *t, const char *s, bool valid)
{
	if (!valid)
		return &t->other;
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++) {
		label_slot *sl = &t->slot[i];
		int st = atomic_load_explicit(&sl->state, memory_order_acquire);

		if (st == SLOT_EMPTY) {
			int expect = SLOT_EMPTY;
			if (atomic_compare_exchange_strong_explicit(&sl->state, &expect, SLOT_CLAIMED,
								    memory_order_acquire,
								    memory_order_acquire)) {
				strcpy(sl->name, s); /* fits: checked by the caller */
				atomic_store_explicit(&sl->state, SLOT_READY, memory_order_release);
				return &sl->value;
			}
			st = expect;
		}
		/* Another thread is copying its name into this slot: a few
		 * instructions; wait for it before comparing. */
		while (st == SLOT_CLAIMED)
			st = atomic_load_explicit(&sl->state, memory_order_acquire);
		if (strcmp(sl->name, s) == 0)
			return &sl->value;
	}
	return &t->other;
}

void metrics_refund(const char *reason, const char *currency, int64_t cents, bool automatic)
{
	atomic_fetch_add_explicit(label_counter(&M.refund_reasons, reason, reason_word(reason)),
				  1, RELAXED);
	atomic_fetch_add_explicit(label_counter(&M.refund_currencies, currency,
						currency_code(currency)),
				  cents > 0 ? (uint64_t)cents : 0, RELAXED);
	if (automatic)
		atomic_fetch_add_explicit(&M.auto_refunds, 1, RELAXED);
}

void metrics_db_query(double seconds, bool error)
{
	observe(&M.db_dur, db_bounds, N_DB_B, seconds);
	if (error)
		atomic_fetch_add_explicit(&M.db_errors, 1, RELAXED);
}

void metrics_db_pool(int idle, int in_use, int broken)
{
	atomic_store_explicit(&M.db_pool[POOL_IDLE], idle, RELAXED);
	atomic_store_explicit(&M.db_pool[POOL_IN_USE], in_use, RELAXED);
	atomic_store_explicit(&M.db_pool[POOL_BROKEN], broken, RELAXED);
}

void metrics_set_cases(const int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT])
{
	for (size_t s = 0; s < FSM_STATE__COUNT; s++)
		for (size_t k = 0; k < AR_KIND__COUNT; k++)
			atomic_store_explicit(&M.cases[s][k], counts[s][k], RELAXED);
	atomic_store_explicit(&M.cases_set, true, memory_order_release);
}

/* ---- set-up ---------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

void metrics_init(const char *version, const char *commit, double start_time_s)
{
	copy_str(M.version, sizeof(M.version), version);
	copy_str(M.commit, sizeof(M.commit), commit);
	M.start_time_s = isfinite(start_time_s) ? start_time_s : 0;
	atomic_store_explicit(&M.calendar_days_left, INT64_MIN, RELAXED);
}

static void reset_hist(histogram *h)
{
	for (size_t i = 0; i < MAX_B; i++)
		atomic_store_explicit(&h->bucket[i], 0, RELAXED);
	atomic_store_explicit(&h->sum_ns, 0, RELAXED);
}

static void reset_labels(label_table *t)
{
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++) {
		atomic_store_explicit(&t->slot[i].value, 0, RELAXED);
		memset(t->slot[i].name, 0, sizeof(t->slot[i].name));
		atomic_store_explicit(&t->slot[i].state, SLOT_EMPTY, RELAXED);
	}
	atomic_store_explicit(&t->other, 0, RELAXED);
}

void metrics_reset(void)
{
	for (size_t r = 0; r < N_ROUTES; r++) {
		for (size_t m = 0; m < N_METHODS; m++) {
			for (size_t s = 0; s < N_STATUS; s++)
				atomic_store_explicit(&M.http[r][m][s], 0, RELAXED);
			reset_hist(&M.http_dur[r][m]);
		}
	}
	for (size_t i = 0; i < METRICS_THROTTLE__COUNT; i++)
		atomic_store_explicit(&M.throttled[i], 0, RELAXED);
	for (size_t i = 0; i < METRICS_SHED__COUNT; i++)
		atomic_store_explicit(&M.shed[i], 0, RELAXED);
	for (size_t i = 0; i < METRICS_READ__COUNT; i++)
		atomic_store_explicit(&M.reads[i], 0, RELAXED);
	atomic_store_explicit(&M.connections, 0, RELAXED);
	atomic_store_explicit(&M.cases_set, false, RELAXED);
	for (size_t s = 0; s < FSM_STATE__COUNT; s++)
		for (size_t k = 0; k < AR_KIND__COUNT; k++)
			atomic_store_explicit(&M.cases[s][k], 0, RELAXED);
	for (size_t k = 0; k < AR_KIND__COUNT; k++)
		for (size_t o = 0; o < N_OUTCOMES; o++)
			atomic_store_explicit(&M.opened[k][o], 0, RELAXED);
	for (size_t a = 0; a < FSM_ACTION__COUNT; a++)
		for (size_t r = 0; r < FSM_ROLE__COUNT; r++)
			atomic_store_explicit(&M.transitions[a][r], 0, RELAXED);
	atomic_store_explicit(&M.sla_pending, 0, RELAXED);
	for (size_t d = 0; d < FSM_DEADLINE__COUNT; d++) {
		atomic_store_explicit(&M.sla_fired[d], 0, RELAXED);
		atomic_store_explicit(&M.sla_breaches[d], 0, RELAXED);
	}
	reset_hist(&M.sla_lag);
	atomic_store_explicit(&M.sla_oldest_bits, double_bits(0.0), RELAXED);
	atomic_store_explicit(&M.calendar_days_left, INT64_MIN, RELAXED);
	reset_labels(&M.refund_reasons);
	reset_labels(&M.refund_currencies);
	atomic_store_explicit(&M.auto_refunds, 0, RELAXED);
	for (size_t p = 0; p < N_POOL; p++)
		atomic_store_explicit(&M.db_pool[p], 0, RELAXED);
	reset_hist(&M.db_dur);
	atomic_store_explicit(&M.db_errors, 0, RELAXED);
}

/* ---- rendering --------------------------------------------------------------- */

static void sb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(textbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (!tb_reserve(b, (size_t)n))
			return;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* A label value with \ " and newline escaped (text format 0.0.4). */
static void sb_label_value(textbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\': tb_byte(b, '\\'); tb_byte(b, '\\'); break;
		case '"': tb_byte(b, '\\'); tb_byte(b, '"'); break;
		case '\n': tb_byte(b, '\\'); tb_byte(b, 'n'); break;
		default: tb_byte(b, *s); break;
		}
	}
}

/* HELP texts are constants without \ or newline: no escaping needed. */
static void family(textbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t load(counter *c)
{
	return atomic_load_explicit(c, RELAXED);
}

static int64_t gload(gauge *g)
{
	return atomic_load_explicit(g, RELAXED);
}

/* Renders one histogram series; labels is "" or `a="x",` (trailing comma,
 * already escaped). Returns the count rendered. */
static uint64_t render_hist(textbuf *b, const char *name, const char *labels, histogram *h,
			    const bound *bd, size_t nb)
{
	uint64_t cum = 0, sum_ns;
	size_t llen = strlen(labels);
	/* Labels without the trailing comma, for _sum and _count. */
	int lw = llen ? (int)llen - 1 : 0;

	for (size_t i = 0; i < nb; i++) {
		cum += load(&h->bucket[i]);
		sb_printf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels, bd[i].le,
			  (unsigned long long)cum);
	}
	cum += load(&h->bucket[nb]);
	sb_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
	sum_ns = load(&h->sum_ns);
	if (lw) {
		sb_printf(b, "%s_sum{%.*s} %llu.%09llu\n", name, lw, labels,
			  (unsigned long long)(sum_ns / 1000000000ull),
			  (unsigned long long)(sum_ns % 1000000000ull));
		sb_printf(b, "%s_count{%.*s} %llu\n", name, lw, labels, (unsigned long long)cum);
	} else {
		sb_printf(b, "%s_sum %llu.%09llu\n", name,
			  (unsigned long long)(sum_ns / 1000000000ull),
			  (unsigned long long)(sum_ns % 1000000000ull));
		sb_printf(b, "%s_count %llu\n", name, (unsigned long long)cum);
	}
	return cum;
}

static uint64_t hist_total(histogram *h)
{
	uint64_t n = 0;
	for (size_t i = 0; i < MAX_B; i++)
		n += load(&h->bucket[i]);
	return n;
}

static const char *route_label(size_t r)
{
	const char *name = r < METRICS_MAX_ROUTES ? atomic_load_explicit(&M.route_name[r], RELAXED)
						  : NULL;
	return name ? name : "unmatched";
}

static void render_labels(textbuf *b, const char *name, const char *label, label_table *t)
{
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++) {
		label_slot *sl = &t->slot[i];
		if (atomic_load_explicit(&sl->state, memory_order_acquire) != SLOT_READY)
			continue; /* empty, or being claimed (its value is still 0) */
		/* The name is [a-z0-9_] or [A-Z]{3}: nothing to escape. */
		sb_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, sl->name,
			  (unsigned long long)load(&sl->value));
	}
	if (load(&t->other))
		sb_printf(b, "%s{%s=\"other\"} %llu\n", name, label,
			  (unsigned long long)load(&t->other));
}

static void render_all(textbuf *b)
{
	char labels[256];

	family(b, "arbiter_build_info", "gauge",
	       "Build of the running arbiter; the value is always 1.");
	sb_printf(b, "arbiter_build_info{version=\"");
	sb_label_value(b, M.version);
	sb_printf(b, "\",commit=\"");
	sb_label_value(b, M.commit);
	sb_printf(b, "\"} 1\n");

	family(b, "process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch in seconds.");
	sb_printf(b, "process_start_time_seconds %.3f\n", M.start_time_s);

	family(b, "arbiter_http_requests_total", "counter",
	       "HTTP requests answered, by route template, method and status code.");
	for (size_t r = 0; r < N_ROUTES; r++)
		for (size_t m = 0; m < N_METHODS; m++)
			for (size_t s = 0; s < N_STATUS; s++) {
				uint64_t v = load(&M.http[r][m][s]);
				if (!v)
					continue;
				sb_printf(b, "arbiter_http_requests_total{route=\"");
				sb_label_value(b, route_label(r));
				if (s < N_CODES)
					sb_printf(b, "\",method=\"%s\",status=\"%d\"} %llu\n",
						  method_names[m], status_codes[s],
						  (unsigned long long)v);
				else
					sb_printf(b, "\",method=\"%s\",status=\"other\"} %llu\n",
						  method_names[m], (unsigned long long)v);
			}

	family(b, "arbiter_http_request_duration_seconds", "histogram",
	       "Time from the first byte of a request to its response being queued, by route template and method.");
	for (size_t r = 0; r < N_ROUTES; r++)
		for (size_t m = 0; m < N_METHODS; m++) {
			if (!hist_total(&M.http_dur[r][m]))
				continue;
			/* Route templates hold no \ " or newline. */
			snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",", route_label(r),
				 method_names[m]);
			render_hist(b, "arbiter_http_request_duration_seconds", labels,
				    &M.http_dur[r][m], http_bounds, N_HTTP_B);
		}

	family(b, "arbiter_http_throttled_total", "counter",
	       "Requests refused with 429 by a rate limit, by scope (key or address).");
	{
		static const char *const scopes[METRICS_THROTTLE__COUNT] = { "key", "address" };
		for (size_t i = 0; i < METRICS_THROTTLE__COUNT; i++)
			sb_printf(b, "arbiter_http_throttled_total{scope=\"%s\"} %llu\n", scopes[i],
				  (unsigned long long)load(&M.throttled[i]));
	}

	family(b, "arbiter_http_connections_shed_total", "counter",
	       "Connections closed by the edge: past an absolute deadline, or given up for a new one over a connection budget.");
	{
		static const char *const reasons[METRICS_SHED__COUNT] = {
			"header_deadline", "body_deadline", "idle_deadline", "address_budget",
			"global_budget",
		};
		for (size_t i = 0; i < METRICS_SHED__COUNT; i++)
			sb_printf(b, "arbiter_http_connections_shed_total{reason=\"%s\"} %llu\n",
				  reasons[i], (unsigned long long)load(&M.shed[i]));
	}

	family(b, "arbiter_db_reads_total", "counter",
	       "Reads that may use the replica (ARBITER_READ_DATABASE_URL), by where they ran.");
	{
		static const char *const targets[METRICS_READ__COUNT] = {
			"replica", "primary", "primary_fallback",
		};
		for (size_t i = 0; i < METRICS_READ__COUNT; i++)
			sb_printf(b, "arbiter_db_reads_total{target=\"%s\"} %llu\n",
				  targets[i], (unsigned long long)load(&M.reads[i]));
	}

	family(b, "arbiter_http_connections", "gauge", "Open HTTP connections.");
	sb_printf(b, "arbiter_http_connections %lld\n", (long long)gload(&M.connections));

	family(b, "arbiter_cases", "gauge",
	       "Cases in the database by state and kind (refreshed periodically).");
	if (atomic_load_explicit(&M.cases_set, memory_order_acquire))
		for (size_t s = 0; s < FSM_STATE__COUNT; s++)
			for (size_t k = 0; k < AR_KIND__COUNT; k++)
				sb_printf(b, "arbiter_cases{state=\"%s\",kind=\"%s\"} %lld\n",
					  fsm_state_name((fsm_state)s), ar_kind_name((ar_kind)k),
					  (long long)gload(&M.cases[s][k]));

	family(b, "arbiter_cases_opened_total", "counter",
	       "Cases opened, by kind and the policy's outcome.");
	for (size_t k = 0; k < AR_KIND__COUNT; k++)
		for (size_t o = 0; o < N_OUTCOMES; o++)
			sb_printf(b, "arbiter_cases_opened_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
				  ar_kind_name((ar_kind)k), policy_outcome_name((policy_outcome)o),
				  (unsigned long long)load(&M.opened[k][o]));

	family(b, "arbiter_transitions_total", "counter",
	       "Case actions taken, by action and the actor's role.");
	for (size_t a = 0; a < FSM_ACTION__COUNT; a++)
		for (size_t r = 0; r < FSM_ROLE__COUNT; r++) {
			uint64_t v = load(&M.transitions[a][r]);
			if (v)
				sb_printf(b,
					  "arbiter_transitions_total{action=\"%s\",actor_role=\"%s\"} %llu\n",
					  fsm_action_name((fsm_action)a), fsm_role_name((fsm_role)r),
					  (unsigned long long)v);
		}

	family(b, "arbiter_sla_timers_pending", "gauge",
	       "Deadlines armed and not yet fired.");
	sb_printf(b, "arbiter_sla_timers_pending %lld\n", (long long)gload(&M.sla_pending));

	family(b, "arbiter_sla_fired_total", "counter", "Deadlines fired, by deadline.");
	for (size_t d = 0; d < FSM_DEADLINE__COUNT; d++)
		sb_printf(b, "arbiter_sla_fired_total{deadline=\"%s\"} %llu\n",
			  fsm_deadline_name((fsm_deadline)d),
			  (unsigned long long)load(&M.sla_fired[d]));

	family(b, "arbiter_sla_firing_lag_seconds", "histogram",
	       "Delay between a deadline's due time and its firing.");
	render_hist(b, "arbiter_sla_firing_lag_seconds", "", &M.sla_lag, lag_bounds, N_LAG_B);

	family(b, "arbiter_sla_breaches_total", "counter",
	       "Deadlines breached (e.g. arbitration not ruled in time), by deadline.");
	for (size_t d = 0; d < FSM_DEADLINE__COUNT; d++)
		sb_printf(b, "arbiter_sla_breaches_total{deadline=\"%s\"} %llu\n",
			  fsm_deadline_name((fsm_deadline)d),
			  (unsigned long long)load(&M.sla_breaches[d]));

	family(b, "arbiter_sla_oldest_overdue_seconds", "gauge",
	       "Age of the oldest deadline that is due and not yet fired (0 when none).");
	sb_printf(b, "arbiter_sla_oldest_overdue_seconds %.6f\n",
		  bits_double(atomic_load_explicit(&M.sla_oldest_bits, RELAXED)));

	if (atomic_load_explicit(&M.calendar_days_left, RELAXED) != INT64_MIN) {
		family(b, "arbiter_calendar_remaining_seconds", "gauge",
		       "Whole days (x 86400) from today to the last day the working-day calendar "
		       "covers; negative when today's year is not covered (deadlines count Monday-Friday).");
		sb_printf(b, "arbiter_calendar_remaining_seconds %lld\n",
			  (long long)atomic_load_explicit(&M.calendar_days_left, RELAXED) * 86400);
	}

	family(b, "arbiter_refunds_instructed_total", "counter",
	       "Refund instructions issued, by reason.");
	render_labels(b, "arbiter_refunds_instructed_total", "reason", &M.refund_reasons);

	family(b, "arbiter_refunds_instructed_cents_total", "counter",
	       "Money instructed to be refunded, in minor units (cents, fen), by currency.");
	render_labels(b, "arbiter_refunds_instructed_cents_total", "currency",
		      &M.refund_currencies);

	family(b, "arbiter_auto_refunds_total", "counter",
	       "Refunds instructed with no human decision (auto-approval or SLA expiry).");
	sb_printf(b, "arbiter_auto_refunds_total %llu\n", (unsigned long long)load(&M.auto_refunds));

	family(b, "arbiter_db_pool_connections", "gauge",
	       "Database pool connections by state.");
	for (size_t p = 0; p < N_POOL; p++)
		sb_printf(b, "arbiter_db_pool_connections{state=\"%s\"} %lld\n", pool_names[p],
			  (long long)gload(&M.db_pool[p]));

	family(b, "arbiter_db_query_duration_seconds", "histogram",
	       "Duration of database round trips.");
	render_hist(b, "arbiter_db_query_duration_seconds", "", &M.db_dur, db_bounds, N_DB_B);

	family(b, "arbiter_db_errors_total", "counter",
	       "Database round trips that failed.");
	sb_printf(b, "arbiter_db_errors_total %llu\n", (unsigned long long)load(&M.db_errors));
}

char *metrics_render(size_t *len)
{
	textbuf b = { 0 };

	/* the whole page in one 16 KiB allocation, most of the time */
	if (tb_reserve(&b, 16384 - 1)) {
		b.p[0] = '\0';
		render_all(&b);
	}
	if (b.oom) {
		free(b.p);
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
