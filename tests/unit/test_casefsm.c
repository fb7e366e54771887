/* Unit tests of the case state machine: every (kind, state, action, role, flags) against an explicit list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/casefsm.h"

/*
 * The expectation is written here independently of src/casefsm.c: the
 * reachable states of each kind, the deadline of each state, and a flat
 * list of allowed transitions. Anything not in the list must be refused.
 */

#define KREF (1u << AR_KIND_REFUND)
#define KRET (1u << AR_KIND_RETURN)
#define KEXC (1u << AR_KIND_EXCHANGE)
#define KREP (1u << AR_KIND_REPAIR)
#define KCOM (1u << AR_KIND_COMPLAINT)
#define GOODS (KRET | KEXC | KREP)
#define ORDER (KREF | GOODS)
#define ALLK (ORDER | KCOM)

#define RF (1u << FSM_ROLE_FRONTEND)
#define RS (1u << FSM_ROLE_SELLER)
#define RA (1u << FSM_ROLE_AGENT)
#define RARB (1u << FSM_ROLE_ARBITER)
#define RPAY (1u << FSM_ROLE_PAYMENT)
#define RSYS (1u << FSM_ROLE_SYSTEM)
#define SHOP (RS | RA)

/* Conditions an entry requires, as a set (all must hold). */
enum when {
	ANY = 0, MR = 1, NOT_MR = 2, OFFER = 4, NO_OFFER = 8, AGREE = 16,
	MISSING = 32, NOT_MISSING = 64, ROUNDS = 128,
};

enum {
	X_SETS_OFFER = 1,
	X_CLEARS_OFFER = 2,
	X_SETS_AGREEMENT = 4,
	X_CLEARS_AGREEMENT = 8,
	X_BREACH = 16,
	X_SETS_COUNTER = 32,
	X_CLEARS_COUNTER = 64,
	X_ROUND = 128,
	X_REARMS = 256,
};

#define SAME FSM_STATE__COUNT

struct allowed {
	unsigned kinds;
	fsm_state from;
	fsm_action action;
	unsigned roles;
	unsigned when;
	unsigned to; /* fsm_state or SAME */
	fsm_outcome outcome;
	fsm_refund refund;
	unsigned fx;
};

#define A(k, from, act, roles, when, to, outcome, refund, fx)                   \
	{ k, FSM_STATE_##from, FSM_ACTION_##act, roles, when, to,               \
	  FSM_OUTCOME_##outcome, FSM_REFUND_##refund, fx }
#define ST(x) FSM_STATE_##x

static const struct allowed specific[] = {
	A(KREF, AWAITING_SELLER, ACCEPT, SHOP, ANY, ST(REFUND_PENDING), NONE, DECIDED, 0),
	A(GOODS, AWAITING_SELLER, ACCEPT, SHOP, NOT_MISSING, ST(AWAITING_BUYER_RETURN), NONE, NONE, 0),
	/* 003: goods never received are refunded or resent, never shipped back */
	A(GOODS, AWAITING_SELLER, ACCEPT, SHOP, MISSING, ST(REFUND_PENDING), NONE, DECIDED, 0),
	A(ORDER, AWAITING_SELLER, RESEND, SHOP, MISSING, ST(RESEND_PENDING), NONE, NONE, 0),
	A(ORDER, AWAITING_SELLER, REJECT, SHOP, ANY, ST(AWAITING_BUYER_REPLY), NONE, NONE, X_CLEARS_OFFER),
	A(ORDER, AWAITING_SELLER, OFFER, SHOP, ANY, ST(AWAITING_BUYER_REPLY), NONE, NONE, X_SETS_OFFER | X_ROUND),
	A(ORDER, AWAITING_SELLER, EXPIRE_SELLER_RESPONSE, RSYS, MR, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(KREF, AWAITING_SELLER, EXPIRE_SELLER_RESPONSE, RSYS, NOT_MR, ST(REFUND_PENDING), NONE, DECIDED, 0),
	A(GOODS, AWAITING_SELLER, EXPIRE_SELLER_RESPONSE, RSYS, NOT_MR | NOT_MISSING, ST(AWAITING_BUYER_RETURN), NONE, NONE, 0),
	A(GOODS, AWAITING_SELLER, EXPIRE_SELLER_RESPONSE, RSYS, NOT_MR | MISSING, ST(REFUND_PENDING), NONE, DECIDED, 0),

	A(ORDER, RESEND_PENDING, SHIP_REPLACEMENT, SHOP, ANY, ST(AWAITING_BUYER_CONFIRM), NONE, NONE, 0),
	A(ORDER, RESEND_PENDING, EXPIRE_SELLER_RESEND, RSYS, ANY, ST(REFUND_PENDING), NONE, DECIDED, 0),
	A(ORDER, AWAITING_BUYER_CONFIRM, CONFIRM_DELIVERY, RF, ANY, ST(CLOSED), RESENT, NONE, 0),
	A(ORDER, AWAITING_BUYER_CONFIRM, REPORT_MISSING, RF, ANY, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(ORDER, AWAITING_BUYER_CONFIRM, EXPIRE_BUYER_CONFIRM, RSYS, ANY, ST(CLOSED), RESENT, NONE, 0),

	/* 001: rounds of offers and counters */
	A(ORDER, AWAITING_BUYER_REPLY, OFFER, SHOP, OFFER | ROUNDS, SAME, NONE, NONE, X_SETS_OFFER | X_ROUND | X_REARMS),
	A(ORDER, AWAITING_BUYER_REPLY, COUNTER_OFFER, RF, OFFER, ST(AWAITING_SELLER_REPLY), NONE, NONE, X_SETS_COUNTER | X_CLEARS_OFFER),
	A(ORDER, AWAITING_SELLER_REPLY, ACCEPT, SHOP, ANY, ST(REFUND_PENDING), NONE, COUNTER, X_CLEARS_COUNTER),
	A(ORDER, AWAITING_SELLER_REPLY, OFFER, SHOP, ROUNDS, ST(AWAITING_BUYER_REPLY), NONE, NONE, X_SETS_OFFER | X_CLEARS_COUNTER | X_ROUND),
	A(ORDER, AWAITING_SELLER_REPLY, REJECT, SHOP, ANY, ST(AWAITING_BUYER_REPLY), NONE, NONE, X_CLEARS_COUNTER),
	A(ORDER, AWAITING_SELLER_REPLY, EXPIRE_SELLER_REPLY, RSYS, ANY, ST(REFUND_PENDING), NONE, COUNTER, X_CLEARS_COUNTER),

	A(GOODS, AWAITING_BUYER_RETURN, SHIP_BACK, RF, ANY, ST(AWAITING_SELLER_RECEIPT), NONE, NONE, 0),
	A(GOODS, AWAITING_BUYER_RETURN, EXPIRE_BUYER_SHIP_BACK, RSYS, ANY, ST(CLOSED), EXPIRED, NONE, 0),

	A(KRET, AWAITING_SELLER_RECEIPT, CONFIRM_RECEIPT, SHOP, ANY, ST(REFUND_PENDING), NONE, DECIDED, 0),
	A(KEXC, AWAITING_SELLER_RECEIPT, CONFIRM_RECEIPT, SHOP, ANY, ST(REPLACEMENT_PENDING), NONE, NONE, 0),
	A(KREP, AWAITING_SELLER_RECEIPT, CONFIRM_RECEIPT, SHOP, ANY, ST(REPAIR_PENDING), NONE, NONE, 0),
	A(GOODS, AWAITING_SELLER_RECEIPT, REJECT, SHOP, ANY, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(GOODS, AWAITING_SELLER_RECEIPT, EXPIRE_SELLER_RECEIPT, RSYS, ANY, ST(REFUND_PENDING), NONE, DECIDED, 0),

	A(ORDER, AWAITING_BUYER_REPLY, ACCEPT_OFFER, RF, OFFER, ST(REFUND_PENDING), NONE, OFFER, X_CLEARS_OFFER),
	A(ORDER, AWAITING_BUYER_REPLY, ESCALATE, RF, ANY, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(ORDER, AWAITING_BUYER_REPLY, EXPIRE_BUYER_REPLY, RSYS, OFFER, ST(CLOSED), EXPIRED, NONE, 0),
	A(ORDER, AWAITING_BUYER_REPLY, EXPIRE_BUYER_REPLY, RSYS, NO_OFFER, ST(CLOSED), REJECTED, NONE, 0),

	A(ALLK, IN_ARBITRATION, RULE, RARB, ANY, SAME, NONE, NONE, 0),
	A(ALLK, IN_ARBITRATION, EXPIRE_ARBITRATION, RSYS, ANY, SAME, NONE, NONE, X_BREACH),

	A(ALLK, REFUND_PENDING, REFUND_EXECUTED, RPAY, ANY, ST(REFUNDED), REFUNDED, NONE, 0),
	A(KEXC, REPLACEMENT_PENDING, SHIP_REPLACEMENT, SHOP, ANY, ST(CLOSED), EXCHANGED, NONE, 0),
	A(KREP, REPAIR_PENDING, SHIP_REPLACEMENT, SHOP, ANY, ST(CLOSED), REPAIRED, NONE, 0),

	A(KCOM, AWAITING_AGENT, ACKNOWLEDGE, RA, ANY, ST(ACKNOWLEDGED), NONE, NONE, 0),
	A(KCOM, AWAITING_AGENT, RESOLVE, RA, ANY, ST(RESOLVED), NONE, NONE, 0),
	A(KCOM, ACKNOWLEDGED, RESOLVE, RA, ANY, ST(RESOLVED), NONE, NONE, 0),
	A(KCOM, AWAITING_AGENT, ESCALATE, RF | RA, ANY, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(KCOM, ACKNOWLEDGED, ESCALATE, RF | RA, ANY, ST(IN_ARBITRATION), NONE, NONE, 0),
	A(KCOM, AWAITING_AGENT, EXPIRE_COMPLAINT_FIRST_RESPONSE, RSYS, ANY, SAME, NONE, NONE, X_BREACH),
	A(KCOM, RESOLVED, CONFIRM_RESOLUTION, RF, ANY, ST(CLOSED), RESOLVED, NONE, 0),
	A(KCOM, RESOLVED, REOPEN, RF, ANY, ST(ACKNOWLEDGED), NONE, NONE, 0),
	A(KCOM, RESOLVED, EXPIRE_COMPLAINT_CLOSE, RSYS, ANY, ST(CLOSED), RESOLVED, NONE, 0),
};

/* The live (non-terminal) states each kind can be in. */
#define ORDER_EXTRA ST(RESEND_PENDING), ST(AWAITING_BUYER_CONFIRM), ST(AWAITING_SELLER_REPLY)
static const fsm_state live_refund[] = {
	ST(AWAITING_SELLER), ST(AWAITING_BUYER_REPLY), ST(IN_ARBITRATION),
	ST(REFUND_PENDING), ORDER_EXTRA,
};
static const fsm_state live_return[] = {
	ST(AWAITING_SELLER), ST(AWAITING_BUYER_RETURN), ST(AWAITING_SELLER_RECEIPT),
	ST(AWAITING_BUYER_REPLY), ST(IN_ARBITRATION), ST(REFUND_PENDING), ORDER_EXTRA,
};
static const fsm_state live_exchange[] = {
	ST(AWAITING_SELLER), ST(AWAITING_BUYER_RETURN), ST(AWAITING_SELLER_RECEIPT),
	ST(AWAITING_BUYER_REPLY), ST(IN_ARBITRATION), ST(REFUND_PENDING),
	ST(REPLACEMENT_PENDING), ORDER_EXTRA,
};
static const fsm_state live_repair[] = {
	ST(AWAITING_SELLER), ST(AWAITING_BUYER_RETURN), ST(AWAITING_SELLER_RECEIPT),
	ST(AWAITING_BUYER_REPLY), ST(IN_ARBITRATION), ST(REFUND_PENDING),
	ST(REPAIR_PENDING), ORDER_EXTRA,
};
static const fsm_state live_complaint[] = {
	ST(AWAITING_AGENT), ST(ACKNOWLEDGED), ST(RESOLVED), ST(IN_ARBITRATION), ST(REFUND_PENDING),
};

static const struct {
	const fsm_state *states;
	size_t n;
} live[AR_KIND__COUNT] = {
	[AR_KIND_REFUND] = { live_refund, sizeof live_refund / sizeof live_refund[0] },
	[AR_KIND_RETURN] = { live_return, sizeof live_return / sizeof live_return[0] },
	[AR_KIND_EXCHANGE] = { live_exchange, sizeof live_exchange / sizeof live_exchange[0] },
	[AR_KIND_REPAIR] = { live_repair, sizeof live_repair / sizeof live_repair[0] },
	[AR_KIND_COMPLAINT] = { live_complaint, sizeof live_complaint / sizeof live_complaint[0] },
};

static bool is_live(ar_kind k, fsm_state s)
{
	for (size_t i = 0; i < live[k].n; i++)
		if (live[k].states[i] == s)
			return true;
	return false;
}

static bool is_reachable(ar_kind k, fsm_state s)
{
	return is_live(k, s) || s == FSM_STATE_REFUNDED || s == FSM_STATE_CLOSED;
}

static unsigned expected_deadlines(ar_kind k, fsm_state s)
{
	if (!is_reachable(k, s))
		return 0;
	switch (s) {
	case FSM_STATE_AWAITING_SELLER: return 1u << FSM_DEADLINE_SELLER_RESPONSE;
	case FSM_STATE_AWAITING_BUYER_RETURN: return 1u << FSM_DEADLINE_BUYER_SHIP_BACK;
	case FSM_STATE_AWAITING_SELLER_RECEIPT: return 1u << FSM_DEADLINE_SELLER_RECEIPT;
	case FSM_STATE_AWAITING_BUYER_REPLY: return 1u << FSM_DEADLINE_BUYER_REPLY;
	case FSM_STATE_IN_ARBITRATION: return 1u << FSM_DEADLINE_ARBITRATION;
	case FSM_STATE_AWAITING_AGENT: return 1u << FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE;
	case FSM_STATE_RESOLVED: return 1u << FSM_DEADLINE_COMPLAINT_CLOSE;
	case FSM_STATE_RESEND_PENDING: return 1u << FSM_DEADLINE_SELLER_RESEND;
	case FSM_STATE_AWAITING_BUYER_CONFIRM: return 1u << FSM_DEADLINE_BUYER_CONFIRM;
	case FSM_STATE_AWAITING_SELLER_REPLY: return 1u << FSM_DEADLINE_SELLER_REPLY;
	default: return 0;
	}
}

/* The specific list plus the actions allowed in every live state, one
 * entry per (kind, state). Built once, before the tests run. */
#define MAX_ALLOWED 512
static struct allowed all[MAX_ALLOWED];
static size_t n_all;
static unsigned hits[MAX_ALLOWED];

static void add(struct allowed e)
{
	assert_true(n_all < MAX_ALLOWED);
	all[n_all++] = e;
}

static int build_expectations(void **state)
{
	n_all = 0;
	for (size_t i = 0; i < sizeof specific / sizeof specific[0]; i++)
		add(specific[i]);
	for (unsigned k = 0; k < AR_KIND__COUNT; k++) {
		for (size_t i = 0; i < live[k].n; i++) {
			fsm_state s = live[k].states[i];
			unsigned kb = 1u << k;
			add((struct allowed){ kb, s, FSM_ACTION_ADD_EVIDENCE, RF, ANY, SAME, FSM_OUTCOME_NONE, FSM_REFUND_NONE, 0 });
			add((struct allowed){ kb, s, FSM_ACTION_NOTE, RA, ANY, SAME, FSM_OUTCOME_NONE, FSM_REFUND_NONE, 0 });
			add((struct allowed){ kb, s, FSM_ACTION_RECORD_AGREEMENT, RA, ANY, SAME, FSM_OUTCOME_NONE, FSM_REFUND_NONE, X_SETS_AGREEMENT });
			add((struct allowed){ kb, s, FSM_ACTION_CONFIRM_AGREEMENT, RF, AGREE, SAME, FSM_OUTCOME_NONE, FSM_REFUND_NONE, X_CLEARS_AGREEMENT });
			if (s != FSM_STATE_REFUND_PENDING && s != FSM_STATE_REPLACEMENT_PENDING &&
			    s != FSM_STATE_REPAIR_PENDING)
				add((struct allowed){ kb, s, FSM_ACTION_WITHDRAW, RF, ANY, FSM_STATE_CLOSED, FSM_OUTCOME_WITHDRAWN, FSM_REFUND_NONE, 0 });
		}
	}
	memset(hits, 0, sizeof hits);
	return 0;
}

static bool when_holds(unsigned w, const fsm_case *c)
{
	return (!(w & MR) || c->manual_review) && (!(w & NOT_MR) || !c->manual_review) &&
	       (!(w & OFFER) || c->has_offer) && (!(w & NO_OFFER) || !c->has_offer) &&
	       (!(w & AGREE) || c->agreement_pending) &&
	       (!(w & MISSING) || c->goods_missing) && (!(w & NOT_MISSING) || !c->goods_missing) &&
	       (!(w & ROUNDS) || c->rounds_left);
}

/* Returns the entry index or -1; two matching entries are a bug in the list. */
static int expected_for(const fsm_case *c, fsm_action a, fsm_role r)
{
	int found = -1;
	for (size_t i = 0; i < n_all; i++) {
		const struct allowed *e = &all[i];
		if ((e->kinds & (1u << c->kind)) && e->from == c->state &&
		    e->action == a && (e->roles & (1u << r)) && when_holds(e->when, c)) {
			assert_int_equal(found, -1);
			found = (int)i;
		}
	}
	return found;
}

static fsm_case make_case(ar_kind k, fsm_state s, unsigned flags)
{
	return (fsm_case){ .kind = k, .state = s, .manual_review = flags & 1,
			   .has_offer = flags & 2, .agreement_pending = flags & 4,
			   .goods_missing = flags & 8, .has_counter = flags & 16,
			   .rounds_left = flags & 32 };
}

static unsigned n_failures;

static void report(const fsm_case *c, fsm_action a, fsm_role r, const char *what)
{
	if (n_failures++ < 20)
		print_error("%s/%s mr=%d offer=%d agreement=%d: %s by %s: %s\n",
			    ar_kind_name(c->kind), fsm_state_name(c->state),
			    c->manual_review, c->has_offer, c->agreement_pending,
			    fsm_action_name(a), fsm_role_name(r), what);
}

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			report(&c, a, r, what);                                \
	} while (0)

static void check_one(fsm_case c, fsm_action a, fsm_role r)
{
	ar_err err;
	fsm_result out;
	ar_err_init(&err);
	memset(&out, 0xA5, sizeof out);
	bool ok = fsm_apply(&c, a, r, &out, &err);
	int idx = expected_for(&c, a, r);

	if (idx < 0) {
		char detail[256];
		snprintf(detail, sizeof detail,
			 "action '%s' is not allowed in state '%s' for role '%s'",
			 fsm_action_name(a), fsm_state_name(c.state), fsm_role_name(r));
		CHECK(!ok, "allowed, expected refused");
		CHECK(err.status == 409, "status is not 409");
		CHECK(strcmp(err.type, "action-not-allowed") == 0, "wrong type");
		CHECK(strcmp(err.detail, detail) == 0, "wrong detail");
		CHECK(out.to == c.state && !out.state_changed, "refusal moved the case");
		return;
	}
	hits[idx]++;
	const struct allowed *e = &all[idx];
	fsm_state to = e->to == SAME ? c.state : (fsm_state)e->to;
	CHECK(ok, "refused, expected allowed");
	CHECK(err.status == 0, "error set on success");
	if (!ok)
		return;
	CHECK(out.to == to, "wrong target state");
	CHECK(out.outcome == e->outcome, "wrong outcome");
	CHECK(out.refund == e->refund, "wrong refund");
	CHECK(out.state_changed == (to != c.state), "wrong state_changed");
	CHECK(out.deadlines == expected_deadlines(c.kind, to), "wrong deadlines");
	CHECK(out.sets_offer == !!(e->fx & X_SETS_OFFER), "wrong sets_offer");
	CHECK(out.clears_offer == !!(e->fx & X_CLEARS_OFFER), "wrong clears_offer");
	CHECK(out.sets_agreement == !!(e->fx & X_SETS_AGREEMENT), "wrong sets_agreement");
	CHECK(out.clears_agreement == !!(e->fx & X_CLEARS_AGREEMENT), "wrong clears_agreement");
	CHECK(out.breach == !!(e->fx & X_BREACH), "wrong breach");
	CHECK(out.sets_counter == !!(e->fx & X_SETS_COUNTER), "wrong sets_counter");
	CHECK(out.clears_counter == !!(e->fx & X_CLEARS_COUNTER), "wrong clears_counter");
	CHECK(out.counts_round == !!(e->fx & X_ROUND), "wrong counts_round");
	CHECK(out.rearms == !!(e->fx & X_REARMS), "wrong rearms");
}

static void test_every_combination(void **state)
{
	unsigned combos = 0;
	n_failures = 0;
	for (unsigned k = 0; k < AR_KIND__COUNT; k++)
		for (unsigned s = 0; s < FSM_STATE__COUNT; s++)
			for (unsigned flags = 0; flags < 64; flags++)
				for (unsigned a = 0; a < FSM_ACTION__COUNT; a++)
					for (unsigned r = 0; r < FSM_ROLE__COUNT; r++) {
						check_one(make_case((ar_kind)k, (fsm_state)s, flags),
							  (fsm_action)a, (fsm_role)r);
						combos++;
					}
	assert_int_equal(combos, AR_KIND__COUNT * FSM_STATE__COUNT * 64 *
					 FSM_ACTION__COUNT * FSM_ROLE__COUNT);
	for (size_t i = 0; i < n_all; i++) {
		if (hits[i] == 0) {
			print_error("list entry %zu (%s in %s) never matched\n", i,
				    fsm_action_name(all[i].action), fsm_state_name(all[i].from));
			n_failures++;
		}
	}
	assert_int_equal(n_failures, 0);
}

static void test_list_is_consistent(void **state)
{
	/* A list entry in a state its kind cannot reach would test nothing. */
	for (size_t i = 0; i < n_all; i++)
		for (unsigned k = 0; k < AR_KIND__COUNT; k++)
			if (all[i].kinds & (1u << k))
				assert_true(is_live((ar_kind)k, all[i].from));
}

static void test_rule(void **state)
{
	for (unsigned k = 0; k < AR_KIND__COUNT; k++)
		for (unsigned s = 0; s < FSM_STATE__COUNT; s++)
			for (unsigned r = 0; r < FSM_ROLE__COUNT; r++)
				for (unsigned f = 0; f < FSM_FAVOUR__COUNT; f++) {
					fsm_case c = make_case((ar_kind)k, (fsm_state)s, 0);
					fsm_result out;
					ar_err err;
					ar_err_init(&err);
					bool ok = fsm_apply_rule(&c, (fsm_role)r, (fsm_favour)f, &out, &err);
					if (s != FSM_STATE_IN_ARBITRATION || r != FSM_ROLE_ARBITER) {
						assert_false(ok);
						assert_int_equal(err.status, 409);
						assert_non_null(strstr(err.detail, "action 'rule'"));
						continue;
					}
					assert_true(ok);
					assert_true(out.state_changed);
					assert_int_equal(out.deadlines, 0);
					if (f == FSM_FAVOUR_SELLER) {
						assert_int_equal(out.to, FSM_STATE_CLOSED);
						assert_int_equal(out.outcome, FSM_OUTCOME_REJECTED);
						assert_int_equal(out.refund, FSM_REFUND_NONE);
					} else {
						assert_int_equal(out.to, FSM_STATE_REFUND_PENDING);
						assert_int_equal(out.outcome, FSM_OUTCOME_NONE);
						assert_int_equal(out.refund, FSM_REFUND_RULING);
					}
				}

	fsm_case c = make_case(AR_KIND_RETURN, FSM_STATE_IN_ARBITRATION, 0);
	fsm_result out;
	ar_err err;
	ar_err_init(&err);
	assert_false(fsm_apply_rule(&c, FSM_ROLE_ARBITER, FSM_FAVOUR__COUNT, &out, &err));
	assert_int_equal(err.status, 422);
	assert_int_equal(out.to, FSM_STATE_IN_ARBITRATION);
}

static fsm_result apply_ok(fsm_case c, fsm_action a, fsm_role r)
{
	fsm_result out;
	ar_err err;
	ar_err_init(&err);
	assert_true(fsm_apply(&c, a, r, &out, &err));
	return out;
}

static void apply_refused(fsm_case c, fsm_action a, fsm_role r)
{
	fsm_result out;
	ar_err err;
	ar_err_init(&err);
	assert_false(fsm_apply(&c, a, r, &out, &err));
	assert_int_equal(err.status, 409);
}

static void test_flags(void **state)
{
	fsm_case c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER, 0);
	fsm_result out = apply_ok(c, FSM_ACTION_EXPIRE_SELLER_RESPONSE, FSM_ROLE_SYSTEM);
	assert_int_equal(out.to, FSM_STATE_REFUND_PENDING);
	assert_int_equal(out.refund, FSM_REFUND_DECIDED);

	c.manual_review = true;
	out = apply_ok(c, FSM_ACTION_EXPIRE_SELLER_RESPONSE, FSM_ROLE_SYSTEM);
	assert_int_equal(out.to, FSM_STATE_IN_ARBITRATION);
	assert_int_equal(out.refund, FSM_REFUND_NONE);
	assert_int_equal(out.deadlines, 1u << FSM_DEADLINE_ARBITRATION);

	c = make_case(AR_KIND_EXCHANGE, FSM_STATE_AWAITING_SELLER, 0);
	out = apply_ok(c, FSM_ACTION_EXPIRE_SELLER_RESPONSE, FSM_ROLE_SYSTEM);
	assert_int_equal(out.to, FSM_STATE_AWAITING_BUYER_RETURN);
	assert_int_equal(out.deadlines, 1u << FSM_DEADLINE_BUYER_SHIP_BACK);

	c = make_case(AR_KIND_RETURN, FSM_STATE_AWAITING_BUYER_REPLY, 0);
	apply_refused(c, FSM_ACTION_ACCEPT_OFFER, FSM_ROLE_FRONTEND);
	out = apply_ok(c, FSM_ACTION_EXPIRE_BUYER_REPLY, FSM_ROLE_SYSTEM);
	assert_int_equal(out.outcome, FSM_OUTCOME_REJECTED);
	c.has_offer = true;
	out = apply_ok(c, FSM_ACTION_ACCEPT_OFFER, FSM_ROLE_FRONTEND);
	assert_int_equal(out.to, FSM_STATE_REFUND_PENDING);
	assert_int_equal(out.refund, FSM_REFUND_OFFER);
	assert_true(out.clears_offer);
	out = apply_ok(c, FSM_ACTION_EXPIRE_BUYER_REPLY, FSM_ROLE_SYSTEM);
	assert_int_equal(out.outcome, FSM_OUTCOME_EXPIRED);

	c = make_case(AR_KIND_COMPLAINT, FSM_STATE_ACKNOWLEDGED, 0);
	apply_refused(c, FSM_ACTION_CONFIRM_AGREEMENT, FSM_ROLE_FRONTEND);
	out = apply_ok(c, FSM_ACTION_RECORD_AGREEMENT, FSM_ROLE_AGENT);
	assert_true(out.sets_agreement);
	assert_false(out.state_changed);
	c.agreement_pending = true;
	out = apply_ok(c, FSM_ACTION_CONFIRM_AGREEMENT, FSM_ROLE_FRONTEND);
	assert_true(out.clears_agreement);
	assert_int_equal(out.to, FSM_STATE_ACKNOWLEDGED);
	assert_int_equal(out.deadlines, 0);
	/* The seller does not speak for the buyer. */
	apply_refused(c, FSM_ACTION_CONFIRM_AGREEMENT, FSM_ROLE_SELLER);
}

static void assert_actions(const fsm_action *got, unsigned n, const fsm_action *want,
			   unsigned n_want)
{
	assert_int_equal(n, n_want);
	for (unsigned i = 0; i < n; i++)
		assert_string_equal(fsm_action_name(got[i]), fsm_action_name(want[i]));
}

#define ASSERT_ALLOWED(c, role, ...)                                           \
	do {                                                                   \
		const fsm_action want_[] = { __VA_ARGS__ };                    \
		fsm_action got_[FSM_ACTION__COUNT];                            \
		unsigned n_ = fsm_allowed(&(c), role, got_, FSM_ACTION__COUNT); \
		assert_actions(got_, n_, want_, sizeof want_ / sizeof want_[0]); \
	} while (0)

static void test_allowed_contents(void **state)
{
	fsm_action got[FSM_ACTION__COUNT];
	fsm_case c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER, 0);

	ASSERT_ALLOWED(c, FSM_ROLE_SELLER, FSM_ACTION_ACCEPT, FSM_ACTION_REJECT, FSM_ACTION_OFFER);
	ASSERT_ALLOWED(c, FSM_ROLE_AGENT, FSM_ACTION_ACCEPT, FSM_ACTION_REJECT, FSM_ACTION_OFFER,
		       FSM_ACTION_NOTE, FSM_ACTION_RECORD_AGREEMENT);
	ASSERT_ALLOWED(c, FSM_ROLE_FRONTEND, FSM_ACTION_WITHDRAW, FSM_ACTION_ADD_EVIDENCE);
	c.agreement_pending = true;
	ASSERT_ALLOWED(c, FSM_ROLE_FRONTEND, FSM_ACTION_WITHDRAW, FSM_ACTION_ADD_EVIDENCE,
		       FSM_ACTION_CONFIRM_AGREEMENT);
	/* The scheduler's expiries are never offered as HTTP actions. */
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_SYSTEM, got, FSM_ACTION__COUNT), 0);
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_OPS, got, FSM_ACTION__COUNT), 0);
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_ADMIN, got, FSM_ACTION__COUNT), 0);

	c = make_case(AR_KIND_RETURN, FSM_STATE_AWAITING_BUYER_REPLY, 2);
	{
		/* no rounds left: the seller cannot raise, the buyer may counter */
		const fsm_action want[] = {
			FSM_ACTION_ACCEPT_OFFER, FSM_ACTION_ESCALATE, FSM_ACTION_WITHDRAW,
			FSM_ACTION_ADD_EVIDENCE, FSM_ACTION_NOTE, FSM_ACTION_RECORD_AGREEMENT,
			FSM_ACTION_COUNTER_OFFER,
		};
		unsigned n = fsm_allowed_any(&c, got, FSM_ACTION__COUNT);
		assert_actions(got, n, want, sizeof want / sizeof want[0]);
	}

	c = make_case(AR_KIND_RETURN, FSM_STATE_AWAITING_BUYER_REPLY, 2 | 32);
	ASSERT_ALLOWED(c, FSM_ROLE_SELLER, FSM_ACTION_OFFER);
	ASSERT_ALLOWED(c, FSM_ROLE_FRONTEND, FSM_ACTION_ACCEPT_OFFER, FSM_ACTION_ESCALATE,
		       FSM_ACTION_WITHDRAW, FSM_ACTION_ADD_EVIDENCE, FSM_ACTION_COUNTER_OFFER);
	c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER_REPLY, 16);
	ASSERT_ALLOWED(c, FSM_ROLE_SELLER, FSM_ACTION_ACCEPT, FSM_ACTION_REJECT);
	c.rounds_left = true;
	ASSERT_ALLOWED(c, FSM_ROLE_SELLER, FSM_ACTION_ACCEPT, FSM_ACTION_REJECT, FSM_ACTION_OFFER);
	c = make_case(AR_KIND_EXCHANGE, FSM_STATE_AWAITING_SELLER, 8);
	ASSERT_ALLOWED(c, FSM_ROLE_SELLER, FSM_ACTION_ACCEPT, FSM_ACTION_REJECT, FSM_ACTION_OFFER,
		       FSM_ACTION_RESEND);

	c = make_case(AR_KIND_COMPLAINT, FSM_STATE_IN_ARBITRATION, 0);
	ASSERT_ALLOWED(c, FSM_ROLE_ARBITER, FSM_ACTION_RULE);
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_SELLER, got, FSM_ACTION__COUNT), 0);

	c = make_case(AR_KIND_EXCHANGE, FSM_STATE_REPLACEMENT_PENDING, 7);
	{
		const fsm_action want[] = {
			FSM_ACTION_SHIP_REPLACEMENT, FSM_ACTION_ADD_EVIDENCE, FSM_ACTION_NOTE,
			FSM_ACTION_RECORD_AGREEMENT, FSM_ACTION_CONFIRM_AGREEMENT,
		};
		unsigned n = fsm_allowed_any(&c, got, FSM_ACTION__COUNT);
		assert_actions(got, n, want, sizeof want / sizeof want[0]);
	}

	c = make_case(AR_KIND_REFUND, FSM_STATE_REFUNDED, 7);
	assert_int_equal(fsm_allowed_any(&c, got, FSM_ACTION__COUNT), 0);
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_AGENT, got, FSM_ACTION__COUNT), 0);

	/* A short array is filled up to cap and the full count still returned. */
	c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER, 0);
	got[1] = FSM_ACTION__COUNT;
	assert_int_equal(fsm_allowed(&c, FSM_ROLE_SELLER, got, 1), 3);
	assert_int_equal(got[0], FSM_ACTION_ACCEPT);
	assert_int_equal(got[1], FSM_ACTION__COUNT);
	assert_int_equal(fsm_allowed_any(&c, NULL, 0), 7);
}

/* fsm_allowed() and fsm_allowed_any() must agree with fsm_apply() everywhere. */
static void test_allowed_matches_apply(void **state)
{
	for (unsigned k = 0; k < AR_KIND__COUNT; k++)
		for (unsigned s = 0; s < FSM_STATE__COUNT; s++)
			for (unsigned flags = 0; flags < 64; flags++) {
				fsm_case c = make_case((ar_kind)k, (fsm_state)s, flags);
				bool any[FSM_ACTION__COUNT] = { false };
				for (unsigned r = 0; r < FSM_ROLE__COUNT; r++) {
					fsm_action got[FSM_ACTION__COUNT];
					unsigned n = fsm_allowed(&c, (fsm_role)r, got, FSM_ACTION__COUNT);
					unsigned j = 0;
					for (unsigned a = 0; a < FSM_ACTION__COUNT; a++) {
						fsm_result out;
						ar_err err;
						ar_err_init(&err);
						bool ok = fsm_apply(&c, (fsm_action)a, (fsm_role)r, &out, &err);
						if (!ok || fsm_action_is_system((fsm_action)a))
							continue;
						if (r != FSM_ROLE_SYSTEM)
							any[a] = true;
						assert_true(j < n);
						assert_int_equal(got[j], a);
						j++;
					}
					assert_int_equal(j, n);
				}
				fsm_action got[FSM_ACTION__COUNT];
				unsigned n = fsm_allowed_any(&c, got, FSM_ACTION__COUNT);
				unsigned j = 0;
				for (unsigned a = 0; a < FSM_ACTION__COUNT; a++) {
					if (!any[a])
						continue;
					assert_true(j < n);
					assert_int_equal(got[j], a);
					j++;
				}
				assert_int_equal(j, n);
			}
}

#define ROUND_TRIP(type, prefix, count, ...)                                   \
	do {                                                                   \
		const char *const want_[] = { __VA_ARGS__ };                   \
		assert_int_equal(sizeof want_ / sizeof want_[0], count);       \
		for (unsigned i_ = 0; i_ < (count); i_++) {                    \
			type v_ = (type)(count);                               \
			assert_string_equal(prefix##_name((type)i_), want_[i_]); \
			assert_true(prefix##_parse(want_[i_], &v_));           \
			assert_int_equal(v_, i_);                              \
		}                                                              \
		type v_ = (type)0;                                             \
		assert_false(prefix##_parse("nonsense", &v_));                 \
		assert_false(prefix##_parse("", &v_));                         \
		assert_false(prefix##_parse(NULL, &v_));                       \
		assert_int_equal(v_, 0);                                       \
		assert_string_equal(prefix##_name((type)(count)), "?");        \
	} while (0)

static void test_names(void **state)
{
	ROUND_TRIP(fsm_state, fsm_state, FSM_STATE__COUNT,
		   "awaiting_seller", "awaiting_buyer_return", "awaiting_seller_receipt",
		   "awaiting_buyer_reply", "in_arbitration", "refund_pending",
		   "replacement_pending", "repair_pending", "awaiting_agent",
		   "acknowledged", "resolved", "refunded", "closed", "resend_pending",
		   "awaiting_buyer_confirm", "awaiting_seller_reply");
	ROUND_TRIP(fsm_action, fsm_action, FSM_ACTION__COUNT,
		   "accept", "reject", "offer", "confirm_receipt", "ship_replacement",
		   "ship_back", "accept_offer", "escalate", "withdraw", "add_evidence",
		   "note", "record_agreement", "confirm_agreement", "acknowledge",
		   "resolve", "confirm_resolution", "reopen", "rule", "refund_executed",
		   "resend", "confirm_delivery", "report_missing", "counter_offer",
		   "expire_seller_response", "expire_buyer_ship_back", "expire_seller_receipt",
		   "expire_buyer_reply", "expire_arbitration", "expire_complaint_first_response",
		   "expire_complaint_close", "expire_seller_resend", "expire_buyer_confirm",
		   "expire_seller_reply");
	ROUND_TRIP(fsm_role, fsm_role, FSM_ROLE__COUNT,
		   "frontend", "seller", "agent", "arbiter", "payment", "ops", "admin",
		   "system");
	ROUND_TRIP(fsm_outcome, fsm_outcome, FSM_OUTCOME__COUNT,
		   "none", "refunded", "partially_refunded", "exchanged", "repaired",
		   "rejected", "withdrawn", "expired", "resolved", "resent");
	ROUND_TRIP(fsm_deadline, fsm_deadline, FSM_DEADLINE__COUNT,
		   "seller_response", "buyer_ship_back", "seller_receipt", "buyer_reply",
		   "arbitration", "complaint_first_response", "complaint_close",
		   "seller_resend", "buyer_confirm", "seller_reply");
	ROUND_TRIP(fsm_favour, fsm_favour, FSM_FAVOUR__COUNT, "buyer", "seller", "split");

	for (unsigned a = 0; a < FSM_ACTION__COUNT; a++)
		assert_int_equal(fsm_action_is_system((fsm_action)a),
				 strncmp(fsm_action_name((fsm_action)a), "expire_", 7) == 0);
	assert_false(fsm_action_is_system(FSM_ACTION__COUNT));
}

static void test_initial_terminal_deadlines(void **state)
{
	assert_int_equal(fsm_initial_state(AR_KIND_REFUND), FSM_STATE_AWAITING_SELLER);
	assert_int_equal(fsm_initial_state(AR_KIND_RETURN), FSM_STATE_AWAITING_SELLER);
	assert_int_equal(fsm_initial_state(AR_KIND_EXCHANGE), FSM_STATE_AWAITING_SELLER);
	assert_int_equal(fsm_initial_state(AR_KIND_REPAIR), FSM_STATE_AWAITING_SELLER);
	assert_int_equal(fsm_initial_state(AR_KIND_COMPLAINT), FSM_STATE_AWAITING_AGENT);

	for (unsigned s = 0; s < FSM_STATE__COUNT; s++)
		assert_int_equal(fsm_is_terminal((fsm_state)s),
				 s == FSM_STATE_REFUNDED || s == FSM_STATE_CLOSED);

	for (unsigned k = 0; k < AR_KIND__COUNT; k++)
		for (unsigned s = 0; s < FSM_STATE__COUNT; s++)
			assert_int_equal(fsm_deadlines_for((ar_kind)k, (fsm_state)s),
					 expected_deadlines((ar_kind)k, (fsm_state)s));
	/* Spot checks that the helper itself is not vacuous. */
	assert_int_equal(fsm_deadlines_for(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER),
			 1u << FSM_DEADLINE_SELLER_RESPONSE);
	assert_int_equal(fsm_deadlines_for(AR_KIND_REFUND, FSM_STATE_AWAITING_BUYER_RETURN), 0);
	assert_int_equal(fsm_deadlines_for(AR_KIND_COMPLAINT, FSM_STATE_AWAITING_AGENT),
			 1u << FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE);
}

/* Every deadline a reachable state arms expires from that state through
 * fsm_expiry_action, and fsm_after_expiry shows the state the expiry
 * leads to (the read paths rely on both: a deadline that could not expire
 * would hold its case). */
static void test_every_armed_deadline_expires(void **state)
{
	(void)state;
	for (int k = 0; k < AR_KIND__COUNT; k++) {
		for (int st = 0; st < FSM_STATE__COUNT; st++) {
			unsigned mask = fsm_deadlines_for((ar_kind)k, (fsm_state)st);
			for (int d = 0; d < FSM_DEADLINE__COUNT; d++) {
				fsm_case c = make_case((ar_kind)k, (fsm_state)st, 0), after;
				fsm_result res;
				ar_err err;
				if (!(mask & FSM_DEADLINE_BIT(d)))
					continue;
				ar_err_init(&err);
				assert_true(fsm_apply(&c, fsm_expiry_action((fsm_deadline)d),
						      FSM_ROLE_SYSTEM, &res, &err));
				assert_true(fsm_after_expiry(&c, (fsm_deadline)d, &after));
				assert_int_equal(after.state, res.to);
				assert_int_equal(after.kind, c.kind);
			}
		}
	}
}

static void test_after_expiry(void **state)
{
	fsm_case c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER, 0), after;

	(void)state;
	assert_int_equal(fsm_expiry_action(FSM_DEADLINE_SELLER_RESPONSE),
			 FSM_ACTION_EXPIRE_SELLER_RESPONSE);
	assert_int_equal(fsm_expiry_action(FSM_DEADLINE_COMPLAINT_CLOSE),
			 FSM_ACTION_EXPIRE_COMPLAINT_CLOSE);
	assert_int_equal(fsm_expiry_action(FSM_DEADLINE__COUNT), FSM_ACTION__COUNT);
	assert_true(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_RESPONSE, &after));
	assert_int_equal(after.state, FSM_STATE_REFUND_PENDING);
	/* manual review: silence goes to the platform, not to a refund */
	c.manual_review = true;
	assert_true(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_RESPONSE, &after));
	assert_int_equal(after.state, FSM_STATE_IN_ARBITRATION);
	/* a buyer who lets an offer lapse: the offer goes with the case */
	c = make_case(AR_KIND_REFUND, FSM_STATE_AWAITING_BUYER_REPLY, 2);
	assert_true(fsm_after_expiry(&c, FSM_DEADLINE_BUYER_REPLY, &after));
	assert_int_equal(after.state, FSM_STATE_CLOSED);
	/* a deadline the state does not have: unchanged, false */
	c = make_case(AR_KIND_REFUND, FSM_STATE_REFUND_PENDING, 0);
	assert_false(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_RESPONSE, &after));
	/* a counter left unanswered is granted, and the counter goes with it */
	c = make_case(AR_KIND_RETURN, FSM_STATE_AWAITING_SELLER_REPLY, 16);
	assert_true(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_REPLY, &after));
	assert_int_equal(after.state, FSM_STATE_REFUND_PENDING);
	assert_false(after.has_counter);
	/* a missing item the seller did not resend in time is refunded */
	c = make_case(AR_KIND_EXCHANGE, FSM_STATE_RESEND_PENDING, 8);
	assert_true(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_RESEND, &after));
	assert_int_equal(after.state, FSM_STATE_REFUND_PENDING);
	c = make_case(AR_KIND_REFUND, FSM_STATE_REFUND_PENDING, 0);
	assert_false(fsm_after_expiry(&c, FSM_DEADLINE_SELLER_RESPONSE, &after));
	assert_int_equal(after.state, FSM_STATE_REFUND_PENDING);
	assert_false(fsm_after_expiry(&c, FSM_DEADLINE__COUNT, &after));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_is_consistent),
		cmocka_unit_test(test_every_combination),
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_allowed_contents),
		cmocka_unit_test(test_allowed_matches_apply),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_initial_terminal_deadlines),
		cmocka_unit_test(test_every_armed_deadline_expires),
		cmocka_unit_test(test_after_expiry),
	};
	return cmocka_run_group_tests(tests, build_expectations, NULL);
}
