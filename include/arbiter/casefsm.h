/*
 * The case state machine: (kind, state, flags, action, role) -> next state,
 * outcome, deadlines and side effects. Pure and table-driven: no I/O, no
 * allocation, no globals that change. The HTTP layer and the SLA scheduler
 * both call it; the store persists what it returns.
 *
 * Ownership: every name returned by the *_name() functions is a static
 * string; callers never free it. Callers own every fsm_case, fsm_result,
 * output array and ar_err they pass in; nothing is retained.
 */
#ifndef ARBITER_CASEFSM_H
#define ARBITER_CASEFSM_H

#include <stdbool.h>

#include "arbiter/model.h"

typedef enum {
	FSM_STATE_AWAITING_SELLER,
	FSM_STATE_AWAITING_BUYER_RETURN,
	FSM_STATE_AWAITING_SELLER_RECEIPT,
	FSM_STATE_AWAITING_BUYER_REPLY,
	FSM_STATE_IN_ARBITRATION,
	FSM_STATE_REFUND_PENDING,
	FSM_STATE_REPLACEMENT_PENDING,
	FSM_STATE_REPAIR_PENDING,
	FSM_STATE_AWAITING_AGENT,
	FSM_STATE_ACKNOWLEDGED,
	FSM_STATE_RESOLVED,
	FSM_STATE_REFUNDED,
	FSM_STATE_CLOSED,
	FSM_STATE_RESEND_PENDING,        /* 003 补寄: the seller resends a missing item */
	FSM_STATE_AWAITING_BUYER_CONFIRM,/* ...and the buyer confirms it arrived */
	FSM_STATE_AWAITING_SELLER_REPLY, /* the seller answers a buyer's counter-offer */
	FSM_STATE__COUNT
} fsm_state;

typedef enum {
	FSM_ACTION_ACCEPT,
	FSM_ACTION_REJECT,
	FSM_ACTION_OFFER,
	FSM_ACTION_CONFIRM_RECEIPT,
	FSM_ACTION_SHIP_REPLACEMENT,
	FSM_ACTION_SHIP_BACK,
	FSM_ACTION_ACCEPT_OFFER,
	FSM_ACTION_ESCALATE,
	FSM_ACTION_WITHDRAW,
	FSM_ACTION_ADD_EVIDENCE,
	FSM_ACTION_NOTE,
	FSM_ACTION_RECORD_AGREEMENT,
	FSM_ACTION_CONFIRM_AGREEMENT,
	FSM_ACTION_ACKNOWLEDGE,
	FSM_ACTION_RESOLVE,
	FSM_ACTION_CONFIRM_RESOLUTION,
	FSM_ACTION_REOPEN,
	FSM_ACTION_RULE,
	FSM_ACTION_REFUND_EXECUTED,
	FSM_ACTION_RESEND,
	FSM_ACTION_CONFIRM_DELIVERY,
	FSM_ACTION_REPORT_MISSING,
	FSM_ACTION_COUNTER_OFFER,
	/* Expiries: taken only by the role "system" (the SLA scheduler). */
	FSM_ACTION_EXPIRE_SELLER_RESPONSE,
	FSM_ACTION_EXPIRE_BUYER_SHIP_BACK,
	FSM_ACTION_EXPIRE_SELLER_RECEIPT,
	FSM_ACTION_EXPIRE_BUYER_REPLY,
	FSM_ACTION_EXPIRE_ARBITRATION,
	FSM_ACTION_EXPIRE_COMPLAINT_FIRST_RESPONSE,
	FSM_ACTION_EXPIRE_COMPLAINT_CLOSE,
	FSM_ACTION_EXPIRE_SELLER_RESEND,
	FSM_ACTION_EXPIRE_BUYER_CONFIRM,
	FSM_ACTION_EXPIRE_SELLER_REPLY,
	FSM_ACTION__COUNT
} fsm_action;

typedef enum {
	FSM_ROLE_FRONTEND, /* acts as the buyer */
	FSM_ROLE_SELLER,
	FSM_ROLE_AGENT,    /* may also take the seller's actions: agents act for the shop */
	FSM_ROLE_ARBITER,
	FSM_ROLE_PAYMENT,  /* the payment system reporting refunds executed */
	FSM_ROLE_OPS,      /* read-only */
	FSM_ROLE_ADMIN,    /* read-only as far as cases go */
	FSM_ROLE_SYSTEM,   /* the SLA scheduler; never an API key's role */
	FSM_ROLE__COUNT
} fsm_role;

/* FSM_OUTCOME_NONE ("none") is the outcome of every non-terminal case. */
typedef enum {
	FSM_OUTCOME_NONE,
	FSM_OUTCOME_REFUNDED,
	FSM_OUTCOME_PARTIALLY_REFUNDED,
	FSM_OUTCOME_EXCHANGED,
	FSM_OUTCOME_REPAIRED,
	FSM_OUTCOME_REJECTED,
	FSM_OUTCOME_WITHDRAWN,
	FSM_OUTCOME_EXPIRED,
	FSM_OUTCOME_RESOLVED,
	FSM_OUTCOME_RESENT,
	FSM_OUTCOME__COUNT
} fsm_outcome;

typedef enum {
	FSM_DEADLINE_SELLER_RESPONSE,
	FSM_DEADLINE_BUYER_SHIP_BACK,
	FSM_DEADLINE_SELLER_RECEIPT,
	FSM_DEADLINE_BUYER_REPLY,
	FSM_DEADLINE_ARBITRATION,
	FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE,
	FSM_DEADLINE_COMPLAINT_CLOSE,
	FSM_DEADLINE_SELLER_RESEND,
	FSM_DEADLINE_BUYER_CONFIRM,
	FSM_DEADLINE_SELLER_REPLY,
	FSM_DEADLINE__COUNT
} fsm_deadline;

#define FSM_DEADLINE_BIT(d) (1u << (unsigned)(d))

/* Which amount a refund.instructed event carries. */
typedef enum {
	FSM_REFUND_NONE,
	FSM_REFUND_DECIDED, /* the adjudication decision's full amount */
	FSM_REFUND_OFFER,   /* the pending offer's amount */
	FSM_REFUND_RULING,  /* refund_cents of the arbiter's ruling */
	FSM_REFUND_COUNTER  /* the buyer's counter-offer, accepted */
} fsm_refund;

/* The arbiter's "in_favour_of". */
typedef enum {
	FSM_FAVOUR_BUYER,
	FSM_FAVOUR_SELLER,
	FSM_FAVOUR_SPLIT,
	FSM_FAVOUR__COUNT
} fsm_favour;

/* What the machine needs to know about a case; the store keeps the flags. */
typedef struct {
	ar_kind kind;
	fsm_state state;
	bool manual_review;     /* risk signals routed the case to a human */
	bool has_offer;         /* a seller's partial-refund offer is open */
	bool agreement_pending; /* an agent recorded an agreement the buyer has not confirmed */
	bool goods_missing;     /* reason missing_item: the goods never arrived */
	bool has_counter;       /* the buyer's counter-offer is open */
	bool rounds_left;       /* the seller may make another offer (policy's max rounds) */
} fsm_case;

typedef struct {
	fsm_state to;
	fsm_outcome outcome;    /* FSM_OUTCOME_NONE unless `to` is terminal */
	bool state_changed;     /* to != the case's state */
	/* Bitmask of FSM_DEADLINE_BIT(d) active in `to`; equal to
	 * fsm_deadlines_for(kind, to). On a state change the caller cancels
	 * the deadlines not in it and arms the new ones. */
	unsigned deadlines;
	fsm_refund refund;      /* != NONE: emit a refund.instructed event */
	bool breach;            /* emit sla.breached; the state does not change */
	bool sets_offer;
	bool clears_offer;
	bool sets_agreement;
	bool clears_agreement;
	bool sets_counter;
	bool clears_counter;
	bool counts_round;      /* a seller's offer: one negotiation round more */
	bool rearms;            /* no state change, but the state's deadlines start
				 * again (a raised offer gives the buyer a new
				 * reply window) */
} fsm_result;

const char *fsm_state_name(fsm_state s);
bool fsm_state_parse(const char *s, fsm_state *out) AR_MUSTCHECK;
const char *fsm_action_name(fsm_action a);
bool fsm_action_parse(const char *s, fsm_action *out) AR_MUSTCHECK;
const char *fsm_role_name(fsm_role r);
bool fsm_role_parse(const char *s, fsm_role *out) AR_MUSTCHECK;
const char *fsm_outcome_name(fsm_outcome o);
bool fsm_outcome_parse(const char *s, fsm_outcome *out) AR_MUSTCHECK;
const char *fsm_deadline_name(fsm_deadline d);
bool fsm_deadline_parse(const char *s, fsm_deadline *out) AR_MUSTCHECK;
const char *fsm_favour_name(fsm_favour f);
bool fsm_favour_parse(const char *s, fsm_favour *out) AR_MUSTCHECK;

/* The expire_* actions. fsm_action_parse() accepts them (the scheduler and
 * the store use the names), so the HTTP layer must refuse them itself. */
bool fsm_action_is_system(fsm_action a);

/* The expire_* action a deadline's expiry takes (as the role system). */
fsm_action fsm_expiry_action(fsm_deadline d);

/*
 * The case as it stands once its overdue deadline d has been applied: a
 * deadline is enforced at its due_at whoever gets there first, so a case
 * read between due_at and the write of its expiry is shown (state,
 * allowed actions) as it will be. Returns false when d does not apply to
 * c (then *out is c unchanged).
 */
bool fsm_after_expiry(const fsm_case *c, fsm_deadline d, fsm_case *out) AR_MUSTCHECK;

bool fsm_is_terminal(fsm_state s);
fsm_state fsm_initial_state(ar_kind kind);

/* Deadlines active in state s for this kind (0 for a state the kind can
 * never reach). */
unsigned fsm_deadlines_for(ar_kind kind, fsm_state s);

/*
 * Decides one action. On success fills *out and returns true. On refusal
 * sets err to 409 "action-not-allowed" (detail names the action, state and
 * role), sets *out to "no change" and returns false; the caller lists the
 * allowed actions with fsm_allowed().
 *
 * Two actions whose result the caller must complete:
 * - FSM_ACTION_RULE: fsm_apply() only answers whether the role may rule now
 *   and returns "no change"; the ruling's effect comes from fsm_apply_rule().
 * - FSM_ACTION_REFUND_EXECUTED: outcome is FSM_OUTCOME_REFUNDED; the caller
 *   downgrades it to FSM_OUTCOME_PARTIALLY_REFUNDED when the amount refunded
 *   was less than the order allowed.
 *
 * A (kind, state) pair the kind can never reach (e.g. a refund case in
 * awaiting_buyer_return) refuses every action.
 */
bool fsm_apply(const fsm_case *c, fsm_action a, fsm_role r, fsm_result *out,
	       ar_err *err) AR_MUSTCHECK;

/* The arbiter's ruling: buyer or split -> refund_pending (FSM_REFUND_RULING),
 * seller -> closed/rejected. Refused like fsm_apply(c, RULE, r). */
bool fsm_apply_rule(const fsm_case *c, fsm_role r, fsm_favour f,
		    fsm_result *out, ar_err *err) AR_MUSTCHECK;

/*
 * The HTTP-callable actions (never expire_*) role r may take on c now, in
 * enum order. Writes at most cap of them into out and returns how many
 * there are (like snprintf: a result > cap means out was too small;
 * FSM_ACTION__COUNT is always enough).
 */
unsigned fsm_allowed(const fsm_case *c, fsm_role r, fsm_action out[],
		     unsigned cap);

/* The union of fsm_allowed() over every role but system, in enum order: the
 * case resource's allowed_actions. Same cap convention. */
unsigned fsm_allowed_any(const fsm_case *c, fsm_action out[], unsigned cap);

#endif
