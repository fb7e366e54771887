/*
 * What a change to a case writes, as domain rules: which deadlines a state
 * arms (durations from the active policy), and what a deadline's expiry
 * changes. The action path and the SLA scheduler both plan with these, so
 * an expiry is the same change whoever applies it.
 *
 * Ownership: callers own every struct they pass; json_t references handed
 * back through out-parameters are new and the caller decrefs them once the
 * change is written. Nothing is retained.
 */
#ifndef ARBITER_CASEPLAN_H
#define ARBITER_CASEPLAN_H

#include "arbiter/app.h"
#include "arbiter/casefsm.h"
#include "arbiter/store_changes.h"

/* The deadlines `mask` arms for a case of this kind and shop, durations
 * from the active policy; out holds STORE_MAX_DEADLINES. */
bool caseplan_deadlines(ar_app *app, ar_kind kind, const char *shop_id, bool major,
			bool manual_review, unsigned mask, store_deadline out[], size_t *n,
			ar_err *err) AR_MUSTCHECK;

/* Who noticed a deadline had passed: its expiry is the same change either
 * way, and the event says which. */
typedef enum { CASEPLAN_BY_SCHEDULER, CASEPLAN_BY_REQUEST } caseplan_by;

/* What one planned expiry does, for the metrics recorded after commit. */
typedef struct {
	bool breach;
	fsm_action action;
	fsm_state to;
	int64_t refund_cents;   /* -1: none */
	char currency[AR_CURRENCY_LEN + 1];
} caseplan_fired;

/*
 * The change deadline `d` (armed at armed_version, due at due_ms) makes to
 * the case c when it expires: state, outcome, events (the expire_* or
 * sla.breached event with {deadline, due_at, fired_at, noticed_by}, and the
 * seller-silent refund.instructed), deadlines re-armed. false: the deadline
 * does not apply to the case as it is (nothing to write), or err is set.
 * *data and *refund are new references for the events' data; the caller
 * decrefs them after the write (also on false).
 */
bool caseplan_expiry(ar_app *app, const store_claimed *c, fsm_deadline d, int armed_version,
		     int64_t due_ms, caseplan_by by, store_change *ch, caseplan_fired *out,
		     json_t **data, json_t **refund, ar_err *err) AR_MUSTCHECK;

#endif
