/*
 * Process-wide metrics: counters, gauges and histograms kept in fixed arrays
 * of C11 atomics, and their Prometheus text exposition (format 0.0.4).
 *
 * Threads. Every recording function (metrics_http ... metrics_set_cases) may
 * be called from any thread at any time, concurrently with each other and
 * with metrics_render(). They take no lock, never allocate and never block:
 * each is a handful of relaxed atomic adds/stores on a fixed slot. The one
 * exception is the first use of a new refund reason or currency label: it
 * claims a slot of a small fixed table with a compare-and-swap (a second
 * thread racing for the same slot waits for the few instructions of the
 * copy). Past METRICS_MAX_LABELS distinct values, or for a value that is not
 * a plain label word, the sample is counted under "other".
 *
 * metrics_init() and metrics_reset() are NOT thread-safe: call init once at
 * start-up before other threads record or render; reset is for tests only.
 *
 * Consistency of a scrape: each histogram's _count is computed from the same
 * bucket reads as its +Inf bucket, so every rendered histogram is cumulative
 * and _count == +Inf bucket even while other threads record; _sum may lag or
 * lead its buckets by in-flight observations (as in every Prometheus client).
 * metrics_set_cases() stores its cells one by one: a scrape racing with it can
 * mix cells of two refreshes.
 *
 * Ownership: metrics_render() returns a malloc'd NUL-terminated string the
 * caller frees. Every const char * argument is only read during the call
 * (label strings are copied).
 *
 * Labels: enum values are named by their owning modules (fsm_state_name(), fsm_action_name(), fsm_role_name(), fsm_deadline_name(),
 * ar_kind_name(), policy_outcome_name()). An out-of-range enum value passed
 * to a recording function is ignored (nothing is counted), except the HTTP
 * route, method and status, which have catch-all buckets (see below).
 */
#ifndef ARBITER_METRICS_H
#define ARBITER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arbiter/casefsm.h"
#include "arbiter/model.h"
#include "arbiter/router.h"

/* The Content-Type of GET /metrics. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Routes counted apart; a request whose path matched no route is passed as
 * METRICS_ROUTE_UNMATCHED (or any index >= it) and labelled
 * route="unmatched" (never the raw path). */
#define METRICS_MAX_ROUTES 48
#define METRICS_ROUTE_UNMATCHED METRICS_MAX_ROUTES

/* Distinct refund reasons / currencies kept as their own label value. */
#define METRICS_MAX_LABELS 16
/* Longest label value kept for a reason (longer -> "other"). */
#define METRICS_LABEL_MAX 31

/* Sets arbiter_build_info{version,commit} 1 and process_start_time_seconds
 * (seconds since the Unix epoch). NULL strings are taken as "". Does not
 * reset any counter. */
void metrics_init(const char *version, const char *commit, double start_time_s);

/* Zeroes every metric and forgets the reason/currency labels (tests only;
 * no other thread may use metrics meanwhile). Keeps build info. */
void metrics_reset(void);

/*
 * One finished HTTP request: arbiter_http_requests_total{route,method,status}
 * and arbiter_http_request_duration_seconds{route}.
 * route: the route's index in its table, or METRICS_ROUTE_UNMATCHED ->
 * route="unmatched"; tmpl: its path template, the label value, which must
 * live as long as the process (a route table's string: it is not copied).
 * method: a router_method() value (M_GET...); anything else -> method="other".
 * status: one of 200 201 204 400 401 403 404 405 409 412 413 415 422 428 429
 * 500 503 is its own label value; any other code -> status="other".
 * seconds: negative or NaN counts as 0.
 */
void metrics_http(int route, const char *tmpl, route_method method, int status,
		  double seconds);

/* A request refused with 429: arbiter_http_throttled_total{scope}, scope
 * "key" (an API key's bucket) or "address" (a client address's, for
 * requests without a valid key). */
typedef enum { METRICS_THROTTLE_KEY, METRICS_THROTTLE_ADDRESS, METRICS_THROTTLE__COUNT } metrics_throttle;
void metrics_http_throttled(metrics_throttle scope);

/* A connection closed by the edge: arbiter_http_connections_shed_total{reason}:
 * "header_deadline", "body_deadline", "idle_deadline" (past its absolute
 * deadline however it trickled), "address_budget", "global_budget" (the
 * newest idle connection given up for a new one). */
typedef enum {
	METRICS_SHED_HEADER_DEADLINE,
	METRICS_SHED_BODY_DEADLINE,
	METRICS_SHED_IDLE_DEADLINE,
	METRICS_SHED_ADDRESS_BUDGET,
	METRICS_SHED_GLOBAL_BUDGET,
	METRICS_SHED__COUNT
} metrics_shed;
void metrics_http_shed(metrics_shed reason);
/* A read that may use a replica: arbiter_db_reads_total{target}: "replica",
 * "primary" (the key wrote within ARBITER_READ_AFTER_WRITE_MS) or
 * "primary_fallback" (the replica could not answer). */
typedef enum {
	METRICS_READ_REPLICA,
	METRICS_READ_PRIMARY,
	METRICS_READ_FALLBACK,
	METRICS_READ__COUNT
} metrics_read;
void metrics_db_read(metrics_read target);
/* Open HTTP connections: arbiter_http_connections. */
void metrics_http_connections(int64_t open);

/* A case was opened: arbiter_cases_opened_total{kind,outcome}; outcome is a
 * policy_outcome (POLICY_OUTCOME_AUTO_APPROVE ... POLICY_OUTCOME_INELIGIBLE). */
void metrics_case_opened(ar_kind kind, int outcome);

/* A case took an action (any actor, SLA expiries included with role system):
 * arbiter_transitions_total{action,actor_role}. */
void metrics_transition(fsm_action action, fsm_role role);

/* The scheduler fired deadline d lag_s seconds after it was due:
 * arbiter_sla_fired_total{deadline} and arbiter_sla_firing_lag_seconds. */
void metrics_sla_fired(fsm_deadline d, double lag_s);
/* A breach (e.g. the arbitration deadline passed): arbiter_sla_breaches_total{deadline}. */
void metrics_sla_breach(fsm_deadline d);
/* Gauges: deadlines armed and not yet fired; age in seconds of the oldest
 * deadline that is due and not yet fired (0 when none; NaN/negative -> 0). */
void metrics_sla_pending(int64_t pending);
void metrics_sla_oldest_overdue(double seconds);
/* The active working-day calendar's workcal_days_left, rendered as
 * arbiter_calendar_remaining_seconds (days x 86400: Prometheus' base unit;
 * absent until a calendar is loaded). */
void metrics_calendar_days_left(int64_t days);

/*
 * A refund.instructed event: arbiter_refunds_instructed_total{reason} += 1,
 * arbiter_refunds_instructed_cents_total{currency} += cents (negative cents
 * add 0), and arbiter_auto_refunds_total += 1 when automatic (instructed with
 * no human in the loop: auto-approval at open or an SLA expiry).
 * reason: the event's "reason" ([a-z0-9_], 1..METRICS_LABEL_MAX chars, else
 * "other"); currency: an ISO 4217 code (three letters A-Z, else "other").
 */
void metrics_refund(const char *reason, const char *currency, int64_t cents, bool automatic);

/* One database round trip: arbiter_db_query_duration_seconds, and
 * arbiter_db_errors_total += 1 when error. */
void metrics_db_query(double seconds, bool error);
/* Gauge arbiter_db_pool_connections{state="idle"|"in_use"|"broken"}. */
void metrics_db_pool(int idle, int in_use, int broken);

/* Gauge arbiter_cases{state,kind}: the caller's periodic COUNT(*) ... GROUP BY
 * state, kind, every cell (zeros included). Until the first call the family
 * is rendered without samples (unknown, not zero). */
void metrics_set_cases(const int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT]);

/*
 * The exposition text of every metric, HELP and TYPE lines included. Returns
 * a malloc'd NUL-terminated string (caller frees) and its length in *len
 * (len may be NULL); NULL when out of memory. Never blocks recorders.
 * Series rendered: every combination of the small label sets (kinds x
 * outcomes, deadlines, pool states, cases once set); for
 * arbiter_http_requests_total, arbiter_http_request_duration_seconds and
 * arbiter_transitions_total only the series observed at least once; for
 * reasons and currencies the values seen so far.
 */
char *metrics_render(size_t *len);

#endif
