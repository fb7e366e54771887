/*
 * Policy backtests (issue 28): re-deciding recorded cases under a draft
 * policy, and the report that compares the draft with what was decided.
 *
 * A case is replayed from its open event alone: since this module exists
 * the event's data carries "inputs" (backtest_inputs_json): the create
 * request as it was decoded, the buyer history the risk rules read (and
 * the caps the store counted to), the instant it was decided at, and the
 * deadlines the opening state armed. The replay decodes the request with
 * the same codec, runs the same policy_adjudicate on it with that history
 * and instant, and derives the opening state as a create does
 * (backtest_open_state). An event without "inputs" (a case opened before)
 * is reported as "inputs not recorded", never guessed.
 *
 * Pure: no I/O, no logging, no clock (the caller passes "now"). The report
 * is bounded whatever the number of cases: fixed tables of outcomes,
 * rules, shops (the first BACKTEST_MAX_SHOPS seen; the rest add to
 * "other shops") and days (BACKTEST_MAX_DAYS), and a few example ids.
 */
#ifndef ARBITER_BACKTEST_H
#define ARBITER_BACKTEST_H

#include <jansson.h>

#include "arbiter/casefsm.h"
#include "arbiter/model.h"
#include "arbiter/policy.h"

#define BACKTEST_MAX_SHOPS 200
#define BACKTEST_MAX_DAYS 400
#define BACKTEST_MAX_RULE_IDS 96
#define BACKTEST_MAX_ERROR_KINDS 16
#define BACKTEST_EXAMPLES 5
#define BACKTEST_MAX_ARMED 4

/* Where a new case opens under a decision: its state, whether it goes to
 * manual review, whether its refund is instructed at once. The create path
 * and the replay both use it. */
void backtest_open_state(ar_kind kind, policy_outcome outcome, fsm_state *state,
			 bool *manual_review, bool *instruct_refund);

/* The "inputs" object of an open event: request (a new reference is
 * taken), history, caps, decided_at, and the armings (name, on_expiry, and
 * after_ms or working_days; `at` is not recorded). New reference; NULL
 * when out of memory. */
json_t *backtest_inputs_json(json_t *request, const policy_history *h, int cases_cap,
			     int shops_cap, ar_time decided_at, const policy_arming *armed,
			     size_t n_armed);

/* What happened to a case after it opened, as far as the silence rule
 * needs it (the store reads it from the case's events). */
typedef struct {
	const char *case_id;
	const char *shop_id;
	const json_t *open_data;   /* the open event's data: kind, reason, decision, inputs */
	ar_time opened_at;         /* the open event's time */
	int64_t exit_ms;           /* open -> the first event that left the opening state; -1: none */
	const char *exit_action;   /* that event's action, NULL when none */
	ar_time now;               /* the job's clock: how long a case still open has waited */
} backtest_case;

/* One case re-decided: the draft's decision, where it opens, and what the
 * opening state arms under the draft. */
typedef struct {
	ar_decision dec;
	fsm_state state;
	bool manual_review;
	bool instruct_refund;
	size_t n_armed;
	policy_arming armed[BACKTEST_MAX_ARMED];
} backtest_replayed;

/*
 * Re-decides one case under p. false with err set when it cannot: 422
 * "inputs-not-recorded" (no inputs in the event), "inputs-invalid" (the
 * request no longer decodes), "history-capped" (a risk count reached the
 * cap the store counted to, and p's threshold needs more), or the policy's
 * own refusal (policy-refused, naming the field).
 */
bool backtest_replay(const policy *p, const json_t *open_data, backtest_replayed *out,
		     ar_err *err) AR_MUSTCHECK;

/* Which cases a backtest replays (POST /v1/policy/backtests "selection",
 * the CLI's flags). The lists are PostgreSQL array literals for text[]
 * parameters, NULL for "all"; their items are checked identifiers, kinds
 * and reasons, so they need no escaping. */
#define BACKTEST_MAX_LIST 100
#define BACKTEST_LIST_TEXT (BACKTEST_MAX_LIST * (64 + 3) + 3)   /* ids, kinds, reasons: <= 64 chars */
typedef struct {
	ar_time created_after;      /* AR_TIME_NONE: from the first case */
	ar_time created_before;     /* AR_TIME_NONE: to the last */
	int64_t sample;             /* at most this many cases; 0: all */
	bool has_shops, has_kinds, has_reasons;
	char shops[BACKTEST_LIST_TEXT], kinds[BACKTEST_LIST_TEXT], reasons[BACKTEST_LIST_TEXT];
} backtest_selection;

/* An empty selection: every case. */
void backtest_selection_init(backtest_selection *s);
/* Adds one item to a list ("shops", "kinds" or "reasons"); false with a
 * field error at pointer when it is not one. */
bool backtest_selection_add(backtest_selection *s, const char *list, const char *item,
			    const char *pointer, ar_err *err) AR_MUSTCHECK;
/* Decodes {"created_after", "created_before", "shops", "kinds",
 * "reasons", "sample"} (every key optional; sel may be NULL); field errors
 * name /selection/... */
bool backtest_selection_parse(json_t *sel, backtest_selection *out, ar_err *err) AR_MUSTCHECK;
/* The selection as JSON, for the job's record. New reference or NULL. */
json_t *backtest_selection_json(const backtest_selection *s);

typedef struct backtest_report backtest_report;

/* An empty report keeping up to `examples` example case ids per entry
 * (at most BACKTEST_EXAMPLES). NULL when out of memory. */
backtest_report *backtest_report_new(int examples);
void backtest_report_free(backtest_report *r);   /* accepts NULL */

/* Replays c under draft and adds it to the report (an error counts as an
 * error, with its reason). false only when out of memory. */
bool backtest_report_add(backtest_report *r, const policy *draft, const backtest_case *c)
	AR_MUSTCHECK;

/* Cases seen so far (replayed + errors). */
int64_t backtest_report_seen(const backtest_report *r);

/* The report as JSON (README "Policy backtests" describes every field).
 * New reference; NULL when out of memory. */
json_t *backtest_report_json(const backtest_report *r);

#endif
