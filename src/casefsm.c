/* The case state machine: one transition table, read by every entry point (pure). */
#include "arbiter/casefsm.h"

#include <string.h>

#include "arbiter/errmsg.h"

static const char *const state_names[FSM_STATE__COUNT] = {
	"awaiting_seller", "awaiting_buyer_return", "awaiting_seller_receipt",
	"awaiting_buyer_reply", "in_arbitration", "refund_pending",
	"replacement_pending", "repair_pending", "awaiting_agent",
	"acknowledged", "resolved", "refunded", "closed", "resend_pending",
	"awaiting_buyer_confirm", "awaiting_seller_reply",
};

static const char *const action_names[FSM_ACTION__COUNT] = {
	"accept", "reject", "offer", "confirm_receipt", "ship_replacement",
	"ship_back", "accept_offer", "escalate", "withdraw", "add_evidence",
	"note", "record_agreement", "confirm_agreement", "acknowledge",
	"resolve", "confirm_resolution", "reopen", "rule", "refund_executed",
	"resend", "confirm_delivery", "report_missing", "counter_offer",
	"expire_seller_response", "expire_buyer_ship_back",
	"expire_seller_receipt", "expire_buyer_reply", "expire_arbitration",
	"expire_complaint_first_response", "expire_complaint_close",
	"expire_seller_resend", "expire_buyer_confirm", "expire_seller_reply",
};

static const char *const role_names[FSM_ROLE__COUNT] = {
	"frontend", "seller", "agent", "arbiter", "payment", "ops", "admin",
	"system",
};

static const char *const outcome_names[FSM_OUTCOME__COUNT] = {
	"none", "refunded", "partially_refunded", "exchanged", "repaired",
	"rejected", "withdrawn", "expired", "resolved", "resent",
};

static const char *const deadline_names[FSM_DEADLINE__COUNT] = {
	"seller_response", "buyer_ship_back", "seller_receipt", "buyer_reply",
	"arbitration", "complaint_first_response", "complaint_close",
	"seller_resend", "buyer_confirm", "seller_reply",
};

static const char *const favour_names[FSM_FAVOUR__COUNT] = {
	"buyer", "seller", "split",
};

static bool lookup(const char *const *names, unsigned n, const char *s,
		   unsigned *out)
{
	if (!s)
		return false;
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* One name/parse pair per enum; the parse writes *out only on success. */
#define NAME_PARSE(type, prefix, names, count)                                 \
	const char *prefix##_name(type v)                                      \
	{                                                                      \
		return (unsigned)v < (count) ? names[v] : "?";                 \
	}                                                                      \
	bool prefix##_parse(const char *s, type *out)                          \
	{                                                                      \
		unsigned i;                                                    \
		if (!lookup(names, (count), s, &i))                            \
			return false;                                          \
		*out = (type)i;                                                \
		return true;                                                   \
	}

NAME_PARSE(fsm_state, fsm_state, state_names, FSM_STATE__COUNT)
NAME_PARSE(fsm_action, fsm_action, action_names, FSM_ACTION__COUNT)
NAME_PARSE(fsm_role, fsm_role, role_names, FSM_ROLE__COUNT)
NAME_PARSE(fsm_outcome, fsm_outcome, outcome_names, FSM_OUTCOME__COUNT)
NAME_PARSE(fsm_deadline, fsm_deadline, deadline_names, FSM_DEADLINE__COUNT)
NAME_PARSE(fsm_favour, fsm_favour, favour_names, FSM_FAVOUR__COUNT)

#define S(x) (1u << FSM_STATE_##x)
#define K(x) (1u << AR_KIND_##x)
#define R(x) (1u << FSM_ROLE_##x)
#define D(x) FSM_DEADLINE_BIT(FSM_DEADLINE_##x)

#define GOODS_KINDS (K(RETURN) | K(EXCHANGE) | K(REPAIR))
#define ORDER_KINDS (K(REFUND) | GOODS_KINDS)
#define ALL_KINDS (ORDER_KINDS | K(COMPLAINT))
#define TERMINAL_STATES (S(REFUNDED) | S(CLOSED))
/* Every order kind may resend a missing item and negotiate in rounds. */
#define ORDER_EXTRA (S(RESEND_PENDING) | S(AWAITING_BUYER_CONFIRM) | S(AWAITING_SELLER_REPLY))
#define LIVE_STATES (((1u << FSM_STATE__COUNT) - 1u) & ~TERMINAL_STATES)
/* The goods (or the money) are already on their way: too late to withdraw. */
#define COMMITTED_STATES (S(REFUND_PENDING) | S(REPLACEMENT_PENDING) | S(REPAIR_PENDING))
/* Agents act for the shop, so every seller action is theirs too. */
#define SHOP (R(SELLER) | R(AGENT))

/*
 * The states each kind can reach from its initial state. A case found in
 * any other state is corrupt data, and the machine refuses to move it
 * rather than guess.
 */
static const unsigned kind_states[AR_KIND__COUNT] = {
	[AR_KIND_REFUND] = S(AWAITING_SELLER) | S(AWAITING_BUYER_REPLY) |
			   S(IN_ARBITRATION) | S(REFUND_PENDING) | ORDER_EXTRA | TERMINAL_STATES,
	[AR_KIND_RETURN] = S(AWAITING_SELLER) | S(AWAITING_BUYER_RETURN) |
			   S(AWAITING_SELLER_RECEIPT) | S(AWAITING_BUYER_REPLY) |
			   S(IN_ARBITRATION) | S(REFUND_PENDING) | ORDER_EXTRA | TERMINAL_STATES,
	[AR_KIND_EXCHANGE] = S(AWAITING_SELLER) | S(AWAITING_BUYER_RETURN) |
			     S(AWAITING_SELLER_RECEIPT) | S(AWAITING_BUYER_REPLY) |
			     S(IN_ARBITRATION) | S(REFUND_PENDING) |
			     S(REPLACEMENT_PENDING) | ORDER_EXTRA | TERMINAL_STATES,
	[AR_KIND_REPAIR] = S(AWAITING_SELLER) | S(AWAITING_BUYER_RETURN) |
			   S(AWAITING_SELLER_RECEIPT) | S(AWAITING_BUYER_REPLY) |
			   S(IN_ARBITRATION) | S(REFUND_PENDING) |
			   S(REPAIR_PENDING) | ORDER_EXTRA | TERMINAL_STATES,
	[AR_KIND_COMPLAINT] = S(AWAITING_AGENT) | S(ACKNOWLEDGED) | S(RESOLVED) |
			      S(IN_ARBITRATION) | S(REFUND_PENDING) | TERMINAL_STATES,
};

static const unsigned state_deadlines[FSM_STATE__COUNT] = {
	[FSM_STATE_AWAITING_SELLER] = D(SELLER_RESPONSE),
	[FSM_STATE_AWAITING_BUYER_RETURN] = D(BUYER_SHIP_BACK),
	[FSM_STATE_AWAITING_SELLER_RECEIPT] = D(SELLER_RECEIPT),
	[FSM_STATE_AWAITING_BUYER_REPLY] = D(BUYER_REPLY),
	[FSM_STATE_IN_ARBITRATION] = D(ARBITRATION),
	[FSM_STATE_AWAITING_AGENT] = D(COMPLAINT_FIRST_RESPONSE),
	[FSM_STATE_RESOLVED] = D(COMPLAINT_CLOSE),
	[FSM_STATE_RESEND_PENDING] = D(SELLER_RESEND),
	[FSM_STATE_AWAITING_BUYER_CONFIRM] = D(BUYER_CONFIRM),
	[FSM_STATE_AWAITING_SELLER_REPLY] = D(SELLER_REPLY),
};

/* Flag conditions a row may require, as a set (all must hold); paired
 * rows use exclusive guards so the table's order never decides anything. */
typedef unsigned guard;
#define G_ANY 0u
#define G_MANUAL_REVIEW (1u << 0)
#define G_NO_MANUAL_REVIEW (1u << 1)
#define G_HAS_OFFER (1u << 2)
#define G_NO_OFFER (1u << 3)
#define G_AGREEMENT_PENDING (1u << 4)
#define G_MISSING (1u << 5)
#define G_NOT_MISSING (1u << 6)
#define G_ROUNDS_LEFT (1u << 7)

enum {
	E_SETS_OFFER = 1u << 0,
	E_CLEARS_OFFER = 1u << 1,
	E_SETS_AGREEMENT = 1u << 2,
	E_CLEARS_AGREEMENT = 1u << 3,
	E_BREACH = 1u << 4,
	E_SETS_COUNTER = 1u << 5,
	E_CLEARS_COUNTER = 1u << 6,
	E_COUNTS_ROUND = 1u << 7,
	E_REARMS = 1u << 8,
};

/* A row's `to` that means "the state the case is in". */
#define STAY FSM_STATE__COUNT

struct transition {
	unsigned states;
	fsm_action action;
	unsigned kinds;
	unsigned roles;
	guard when;
	unsigned to; /* an fsm_state or STAY */
	fsm_outcome outcome;
	fsm_refund refund;
	unsigned effects;
};

#define T(st, act, kinds_, roles_, when_, to_, outcome_, refund_, effects_)     \
	{ st, FSM_ACTION_##act, kinds_, roles_, when_, to_,                    \
	  FSM_OUTCOME_##outcome_, FSM_REFUND_##refund_, effects_ }
#define TO(x) FSM_STATE_##x

static const struct transition table[] = {
	/* Anywhere a case is live. */
	T(LIVE_STATES, ADD_EVIDENCE, ALL_KINDS, R(FRONTEND), G_ANY, STAY, NONE, NONE, 0),
	T(LIVE_STATES, NOTE, ALL_KINDS, R(AGENT), G_ANY, STAY, NONE, NONE, 0),
	T(LIVE_STATES, RECORD_AGREEMENT, ALL_KINDS, R(AGENT), G_ANY, STAY, NONE, NONE, E_SETS_AGREEMENT),
	T(LIVE_STATES, CONFIRM_AGREEMENT, ALL_KINDS, R(FRONTEND), G_AGREEMENT_PENDING, STAY, NONE, NONE, E_CLEARS_AGREEMENT),
	T(LIVE_STATES & ~COMMITTED_STATES, WITHDRAW, ALL_KINDS, R(FRONTEND), G_ANY, TO(CLOSED), WITHDRAWN, NONE, 0),

	/* The seller's first answer (003: five days, then the platform decides).
	 * Goods that never arrived are not shipped back (003): accepting a
	 * missing-item case refunds the short part, or the seller resends it. */
	T(S(AWAITING_SELLER), ACCEPT, K(REFUND), SHOP, G_ANY, TO(REFUND_PENDING), NONE, DECIDED, 0),
	T(S(AWAITING_SELLER), ACCEPT, GOODS_KINDS, SHOP, G_NOT_MISSING, TO(AWAITING_BUYER_RETURN), NONE, NONE, 0),
	T(S(AWAITING_SELLER), ACCEPT, GOODS_KINDS, SHOP, G_MISSING, TO(REFUND_PENDING), NONE, DECIDED, 0),
	T(S(AWAITING_SELLER), RESEND, ORDER_KINDS, SHOP, G_MISSING, TO(RESEND_PENDING), NONE, NONE, 0),
	T(S(AWAITING_SELLER), REJECT, ORDER_KINDS, SHOP, G_ANY, TO(AWAITING_BUYER_REPLY), NONE, NONE, E_CLEARS_OFFER),
	T(S(AWAITING_SELLER), OFFER, ORDER_KINDS, SHOP, G_ANY, TO(AWAITING_BUYER_REPLY), NONE, NONE, E_SETS_OFFER | E_COUNTS_ROUND),
	T(S(AWAITING_SELLER), EXPIRE_SELLER_RESPONSE, ORDER_KINDS, R(SYSTEM), G_MANUAL_REVIEW, TO(IN_ARBITRATION), NONE, NONE, 0),
	T(S(AWAITING_SELLER), EXPIRE_SELLER_RESPONSE, K(REFUND), R(SYSTEM), G_NO_MANUAL_REVIEW, TO(REFUND_PENDING), NONE, DECIDED, 0),
	T(S(AWAITING_SELLER), EXPIRE_SELLER_RESPONSE, GOODS_KINDS, R(SYSTEM), G_NO_MANUAL_REVIEW | G_NOT_MISSING, TO(AWAITING_BUYER_RETURN), NONE, NONE, 0),
	T(S(AWAITING_SELLER), EXPIRE_SELLER_RESPONSE, GOODS_KINDS, R(SYSTEM), G_NO_MANUAL_REVIEW | G_MISSING, TO(REFUND_PENDING), NONE, DECIDED, 0),

	/* A resend (003 补寄, usually within 3 working days): the seller ships
	 * it with a tracking number, or the missing part is refunded at the
	 * deadline; the buyer confirms it arrived or reports it missing again
	 * (the platform then rules on the tracking record); silence confirms. */
	T(S(RESEND_PENDING), SHIP_REPLACEMENT, ORDER_KINDS, SHOP, G_ANY, TO(AWAITING_BUYER_CONFIRM), NONE, NONE, 0),
	T(S(RESEND_PENDING), EXPIRE_SELLER_RESEND, ORDER_KINDS, R(SYSTEM), G_ANY, TO(REFUND_PENDING), NONE, DECIDED, 0),
	T(S(AWAITING_BUYER_CONFIRM), CONFIRM_DELIVERY, ORDER_KINDS, R(FRONTEND), G_ANY, TO(CLOSED), RESENT, NONE, 0),
	T(S(AWAITING_BUYER_CONFIRM), REPORT_MISSING, ORDER_KINDS, R(FRONTEND), G_ANY, TO(IN_ARBITRATION), NONE, NONE, 0),
	T(S(AWAITING_BUYER_CONFIRM), EXPIRE_BUYER_CONFIRM, ORDER_KINDS, R(SYSTEM), G_ANY, TO(CLOSED), RESENT, NONE, 0),

	/* Goods travel back. */
	T(S(AWAITING_BUYER_RETURN), SHIP_BACK, GOODS_KINDS, R(FRONTEND), G_ANY, TO(AWAITING_SELLER_RECEIPT), NONE, NONE, 0),
	T(S(AWAITING_BUYER_RETURN), EXPIRE_BUYER_SHIP_BACK, GOODS_KINDS, R(SYSTEM), G_ANY, TO(CLOSED), EXPIRED, NONE, 0),

	/* confirm_receipt means "as sent"; a disputed receipt is the seller's
	 * reject, which only the arbiter can settle. */
	T(S(AWAITING_SELLER_RECEIPT), CONFIRM_RECEIPT, K(RETURN), SHOP, G_ANY, TO(REFUND_PENDING), NONE, DECIDED, 0),
	T(S(AWAITING_SELLER_RECEIPT), CONFIRM_RECEIPT, K(EXCHANGE), SHOP, G_ANY, TO(REPLACEMENT_PENDING), NONE, NONE, 0),
	T(S(AWAITING_SELLER_RECEIPT), CONFIRM_RECEIPT, K(REPAIR), SHOP, G_ANY, TO(REPAIR_PENDING), NONE, NONE, 0),
	T(S(AWAITING_SELLER_RECEIPT), REJECT, GOODS_KINDS, SHOP, G_ANY, TO(IN_ARBITRATION), NONE, NONE, 0),
	T(S(AWAITING_SELLER_RECEIPT), EXPIRE_SELLER_RECEIPT, GOODS_KINDS, R(SYSTEM), G_ANY, TO(REFUND_PENDING), NONE, DECIDED, 0),

	/* The buyer answers a rejection or an offer; silence accepts a
	 * rejection and lets an offer lapse. */
	T(S(AWAITING_BUYER_REPLY), ACCEPT_OFFER, ORDER_KINDS, R(FRONTEND), G_HAS_OFFER, TO(REFUND_PENDING), NONE, OFFER, E_CLEARS_OFFER),
	T(S(AWAITING_BUYER_REPLY), ESCALATE, ORDER_KINDS, R(FRONTEND), G_ANY, TO(IN_ARBITRATION), NONE, NONE, 0),
	T(S(AWAITING_BUYER_REPLY), EXPIRE_BUYER_REPLY, ORDER_KINDS, R(SYSTEM), G_HAS_OFFER, TO(CLOSED), EXPIRED, NONE, 0),
	T(S(AWAITING_BUYER_REPLY), EXPIRE_BUYER_REPLY, ORDER_KINDS, R(SYSTEM), G_NO_OFFER, TO(CLOSED), REJECTED, NONE, 0),

	/* Negotiation in bounded rounds (001 延迟满足: concede in stages, never
	 * all at once): while the buyer decides, the seller may raise its
	 * offer (a new reply window) and the buyer may counter; the seller
	 * accepts the counter, answers with another offer, or rejects it.
	 * Every seller offer is a round; the policy bounds them. A seller
	 * silent on a counter has accepted it, as silence on the request
	 * grants it (003). */
	T(S(AWAITING_BUYER_REPLY), OFFER, ORDER_KINDS, SHOP, G_HAS_OFFER | G_ROUNDS_LEFT, STAY, NONE, NONE, E_SETS_OFFER | E_COUNTS_ROUND | E_REARMS),
	T(S(AWAITING_BUYER_REPLY), COUNTER_OFFER, ORDER_KINDS, R(FRONTEND), G_HAS_OFFER, TO(AWAITING_SELLER_REPLY), NONE, NONE, E_SETS_COUNTER | E_CLEARS_OFFER),
	T(S(AWAITING_SELLER_REPLY), ACCEPT, ORDER_KINDS, SHOP, G_ANY, TO(REFUND_PENDING), NONE, COUNTER, E_CLEARS_COUNTER),
	T(S(AWAITING_SELLER_REPLY), OFFER, ORDER_KINDS, SHOP, G_ROUNDS_LEFT, TO(AWAITING_BUYER_REPLY), NONE, NONE, E_SETS_OFFER | E_CLEARS_COUNTER | E_COUNTS_ROUND),
	T(S(AWAITING_SELLER_REPLY), REJECT, ORDER_KINDS, SHOP, G_ANY, TO(AWAITING_BUYER_REPLY), NONE, NONE, E_CLEARS_COUNTER),
	T(S(AWAITING_SELLER_REPLY), EXPIRE_SELLER_REPLY, ORDER_KINDS, R(SYSTEM), G_ANY, TO(REFUND_PENDING), NONE, COUNTER, E_CLEARS_COUNTER),

	/* Only permission here: fsm_apply_rule() supplies the target. A late
	 * arbiter is a breach to report, never a decision to make. */
	T(S(IN_ARBITRATION), RULE, ALL_KINDS, R(ARBITER), G_ANY, STAY, NONE, NONE, 0),
	T(S(IN_ARBITRATION), EXPIRE_ARBITRATION, ALL_KINDS, R(SYSTEM), G_ANY, STAY, NONE, NONE, E_BREACH),

	T(S(REFUND_PENDING), REFUND_EXECUTED, ALL_KINDS, R(PAYMENT), G_ANY, TO(REFUNDED), REFUNDED, NONE, 0),
	T(S(REPLACEMENT_PENDING), SHIP_REPLACEMENT, K(EXCHANGE), SHOP, G_ANY, TO(CLOSED), EXCHANGED, NONE, 0),
	T(S(REPAIR_PENDING), SHIP_REPLACEMENT, K(REPAIR), SHOP, G_ANY, TO(CLOSED), REPAIRED, NONE, 0),

	/* Complaints (000, 002): a resolution waits for the buyer's word, who may
	 * reopen it; silence for the close window confirms it. Buyer or agent
	 * may take a complaint to the platform. */
	T(S(AWAITING_AGENT), ACKNOWLEDGE, K(COMPLAINT), R(AGENT), G_ANY, TO(ACKNOWLEDGED), NONE, NONE, 0),
	T(S(AWAITING_AGENT) | S(ACKNOWLEDGED), RESOLVE, K(COMPLAINT), R(AGENT), G_ANY, TO(RESOLVED), NONE, NONE, 0),
	T(S(AWAITING_AGENT) | S(ACKNOWLEDGED), ESCALATE, K(COMPLAINT), R(FRONTEND) | R(AGENT), G_ANY, TO(IN_ARBITRATION), NONE, NONE, 0),
	T(S(AWAITING_AGENT), EXPIRE_COMPLAINT_FIRST_RESPONSE, K(COMPLAINT), R(SYSTEM), G_ANY, STAY, NONE, NONE, E_BREACH),
	T(S(RESOLVED), CONFIRM_RESOLUTION, K(COMPLAINT), R(FRONTEND), G_ANY, TO(CLOSED), RESOLVED, NONE, 0),
	T(S(RESOLVED), REOPEN, K(COMPLAINT), R(FRONTEND), G_ANY, TO(ACKNOWLEDGED), NONE, NONE, 0),
	T(S(RESOLVED), EXPIRE_COMPLAINT_CLOSE, K(COMPLAINT), R(SYSTEM), G_ANY, TO(CLOSED), RESOLVED, NONE, 0),
};

bool fsm_action_is_system(fsm_action a)
{
	return a >= FSM_ACTION_EXPIRE_SELLER_RESPONSE && a < FSM_ACTION__COUNT;
}

fsm_action fsm_expiry_action(fsm_deadline d)
{
	static const fsm_action expire_of[FSM_DEADLINE__COUNT] = {
		[FSM_DEADLINE_SELLER_RESPONSE] = FSM_ACTION_EXPIRE_SELLER_RESPONSE,
		[FSM_DEADLINE_BUYER_SHIP_BACK] = FSM_ACTION_EXPIRE_BUYER_SHIP_BACK,
		[FSM_DEADLINE_SELLER_RECEIPT] = FSM_ACTION_EXPIRE_SELLER_RECEIPT,
		[FSM_DEADLINE_BUYER_REPLY] = FSM_ACTION_EXPIRE_BUYER_REPLY,
		[FSM_DEADLINE_ARBITRATION] = FSM_ACTION_EXPIRE_ARBITRATION,
		[FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE] = FSM_ACTION_EXPIRE_COMPLAINT_FIRST_RESPONSE,
		[FSM_DEADLINE_COMPLAINT_CLOSE] = FSM_ACTION_EXPIRE_COMPLAINT_CLOSE,
		[FSM_DEADLINE_SELLER_RESEND] = FSM_ACTION_EXPIRE_SELLER_RESEND,
		[FSM_DEADLINE_BUYER_CONFIRM] = FSM_ACTION_EXPIRE_BUYER_CONFIRM,
		[FSM_DEADLINE_SELLER_REPLY] = FSM_ACTION_EXPIRE_SELLER_REPLY,
	};

	return (unsigned)d < FSM_DEADLINE__COUNT ? expire_of[d] : FSM_ACTION__COUNT;
}

bool fsm_after_expiry(const fsm_case *c, fsm_deadline d, fsm_case *out)
{
	fsm_result res;
	ar_err err;

	*out = *c;
	ar_err_init(&err);
	if ((unsigned)d >= FSM_DEADLINE__COUNT ||
	    !fsm_apply(c, fsm_expiry_action(d), FSM_ROLE_SYSTEM, &res, &err))
		return false;
	out->state = res.to;
	if (res.clears_offer)
		out->has_offer = false;
	if (res.clears_counter)
		out->has_counter = false;
	return true;
}

bool fsm_is_terminal(fsm_state s)
{
	return s == FSM_STATE_REFUNDED || s == FSM_STATE_CLOSED;
}

fsm_state fsm_initial_state(ar_kind kind)
{
	return kind == AR_KIND_COMPLAINT ? FSM_STATE_AWAITING_AGENT
					 : FSM_STATE_AWAITING_SELLER;
}

static bool reachable(ar_kind kind, fsm_state s)
{
	return (unsigned)kind < AR_KIND__COUNT && (unsigned)s < FSM_STATE__COUNT &&
	       (kind_states[kind] & (1u << s));
}

unsigned fsm_deadlines_for(ar_kind kind, fsm_state s)
{
	return reachable(kind, s) ? state_deadlines[s] : 0;
}

static bool guard_holds(guard g, const fsm_case *c)
{
	return (!(g & G_MANUAL_REVIEW) || c->manual_review) &&
	       (!(g & G_NO_MANUAL_REVIEW) || !c->manual_review) &&
	       (!(g & G_HAS_OFFER) || c->has_offer) &&
	       (!(g & G_NO_OFFER) || !c->has_offer) &&
	       (!(g & G_AGREEMENT_PENDING) || c->agreement_pending) &&
	       (!(g & G_MISSING) || c->goods_missing) &&
	       (!(g & G_NOT_MISSING) || !c->goods_missing) &&
	       (!(g & G_ROUNDS_LEFT) || c->rounds_left);
}

static const struct transition *find(const fsm_case *c, fsm_action a,
				     fsm_role r)
{
	if (!reachable(c->kind, c->state) || (unsigned)r >= FSM_ROLE__COUNT)
		return NULL;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct transition *t = &table[i];
		if (t->action == a && (t->states & (1u << c->state)) &&
		    (t->kinds & (1u << c->kind)) && (t->roles & (1u << r)) &&
		    guard_holds(t->when, c))
			return t;
	}
	return NULL;
}

static void result_to(const fsm_case *c, fsm_state to, fsm_outcome outcome,
		      fsm_refund refund, fsm_result *out)
{
	memset(out, 0, sizeof *out);
	out->to = to;
	out->outcome = outcome;
	out->state_changed = to != c->state;
	out->deadlines = fsm_deadlines_for(c->kind, to);
	out->refund = refund;
}

static void refuse(const fsm_case *c, fsm_action a, fsm_role r,
		   fsm_result *out, ar_err *err)
{
	result_to(c, c->state, FSM_OUTCOME_NONE, FSM_REFUND_NONE, out);
	ar_err_setk(err, 409, "action-not-allowed", "detail.action_not_allowed", "action",
		    fsm_action_name(a), "state", fsm_state_name(c->state), "role", fsm_role_name(r),
		    NULL);
}

bool fsm_apply(const fsm_case *c, fsm_action a, fsm_role r, fsm_result *out,
	       ar_err *err)
{
	const struct transition *t = find(c, a, r);
	if (!t) {
		refuse(c, a, r, out, err);
		return false;
	}
	result_to(c, t->to == STAY ? c->state : (fsm_state)t->to, t->outcome,
		  t->refund, out);
	out->breach = t->effects & E_BREACH;
	out->sets_offer = t->effects & E_SETS_OFFER;
	out->clears_offer = t->effects & E_CLEARS_OFFER;
	out->sets_agreement = t->effects & E_SETS_AGREEMENT;
	out->clears_agreement = t->effects & E_CLEARS_AGREEMENT;
	out->sets_counter = t->effects & E_SETS_COUNTER;
	out->clears_counter = t->effects & E_CLEARS_COUNTER;
	out->counts_round = t->effects & E_COUNTS_ROUND;
	out->rearms = t->effects & E_REARMS;
	return true;
}

bool fsm_apply_rule(const fsm_case *c, fsm_role r, fsm_favour f,
		    fsm_result *out, ar_err *err)
{
	if (!fsm_apply(c, FSM_ACTION_RULE, r, out, err))
		return false;
	switch (f) {
	case FSM_FAVOUR_BUYER:
	case FSM_FAVOUR_SPLIT:
		result_to(c, FSM_STATE_REFUND_PENDING, FSM_OUTCOME_NONE,
			  FSM_REFUND_RULING, out);
		return true;
	case FSM_FAVOUR_SELLER:
		result_to(c, FSM_STATE_CLOSED, FSM_OUTCOME_REJECTED,
			  FSM_REFUND_NONE, out);
		return true;
	case FSM_FAVOUR__COUNT:
		break;
	}
	result_to(c, c->state, FSM_OUTCOME_NONE, FSM_REFUND_NONE, out);
	ar_err_fieldk(err, "/in_favour_of", "field.one_of", "list", "buyer, seller, split", NULL);
	return false;
}

unsigned fsm_allowed(const fsm_case *c, fsm_role r, fsm_action out[],
		     unsigned cap)
{
	unsigned n = 0;
	for (unsigned a = 0; a < FSM_ACTION__COUNT; a++) {
		if (fsm_action_is_system((fsm_action)a) ||
		    !find(c, (fsm_action)a, r))
			continue;
		if (n < cap)
			out[n] = (fsm_action)a;
		n++;
	}
	return n;
}

unsigned fsm_allowed_any(const fsm_case *c, fsm_action out[], unsigned cap)
{
	/* One pass over the table, not a search per (action, role): every
	 * read path asks this, and the searches showed in its profile. */
	bool allowed[FSM_ACTION__COUNT] = { false };
	unsigned n = 0;

	if (!reachable(c->kind, c->state))
		return 0;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct transition *t = &table[i];
		if ((t->states & (1u << c->state)) && (t->kinds & (1u << c->kind)) &&
		    (t->roles & ~(1u << FSM_ROLE_SYSTEM) & ((1u << FSM_ROLE__COUNT) - 1)) &&
		    !fsm_action_is_system(t->action) && guard_holds(t->when, c))
			allowed[t->action] = true;
	}
	for (unsigned a = 0; a < FSM_ACTION__COUNT; a++) {
		if (!allowed[a])
			continue;
		if (n < cap)
			out[n] = (fsm_action)a;
		n++;
	}
	return n;
}
