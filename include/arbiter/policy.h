/*
 * The adjudication policy and the engine that applies it.
 *
 * A policy is one JSON document (deploy/policy/default.json documents every
 * key). policy_load() validates it completely and returns an immutable
 * object: it may be shared read-only between threads without locks, and a
 * reload builds a new one and swaps the pointer (the old one is freed by
 * whoever holds the last reference; this module does no reference counting).
 *
 * policy_adjudicate() is pure: (case input, buyer history, policy, now) ->
 * decision. It does no I/O and keeps no state; the caller gathers the inputs.
 */
#ifndef ARBITER_POLICY_H
#define ARBITER_POLICY_H

#include <jansson.h>

#include "arbiter/casefsm.h"
#include "arbiter/model.h"
#include "arbiter/workcal.h"

typedef struct policy policy;

/*
 * Parses and validates a policy document (the text, not a path: the caller
 * reads files). Returns NULL on any invalid content, with err set to 422
 * type "invalid-policy" and one field error per problem found (up to
 * AR_ERR_MAX_FIELDS), each naming the JSON pointer and the reason.
 * The caller frees the result with policy_free().
 */
policy *policy_load(const char *json_text, size_t len, ar_err *err);
void policy_free(policy *p);          /* accepts NULL */

/* The document's "version" string; owned by p. */
const char *policy_version(const policy *p);

/*
 * The canonical text of the document (compact, keys sorted), owned by p.
 * Stable for equal documents, so it is the input for the version hash the
 * store keeps.
 */
const char *policy_text(const policy *p);

/* Batch-defect detection: threshold quality cases on one (shop, SKU) within
 * window_days flag it. */
void policy_batch(const policy *p, int *threshold, int *window_days);

/* How far the store need count the buyer's other cases in 7 days and the
 * other shops that got the same text in 30 days: one past each risk
 * threshold decides the rule, so the counts can stop there (issue 21). At
 * least 1, at most INT_MAX. */
void policy_risk_caps(const policy *p, int *cases_7d, int *other_shops_30d);

/* The active document as JSON (for GET /v1/policy). New reference: the
 * caller json_decref()s it. NULL only when out of memory. */
json_t *policy_to_json(const policy *p);

/*
 * Deadline durations by name: seller_response, buyer_ship_back,
 * seller_receipt, buyer_reply, arbitration, complaint_first_response,
 * complaint_first_response_major, reminder_before, after_sale_watch.
 * A shop listed under "shops" may override any of them; shop_id may be NULL.
 * Returns false for an unknown name.
 */
bool policy_duration(const policy *p, const char *name, const char *shop_id,
		     int64_t *out_ms) AR_MUSTCHECK;

/* A deadline duration as the policy gives it: a span, or working days
 * ({"working_days": n, "at": "end_of_day"}) counted on policy_calendar().
 * policy_duration() is false for a working-day duration: it has no fixed
 * length. reminder_before is always a span. */
typedef struct {
	int64_t ms;          /* the span; 0 for working days */
	int working_days;    /* 0: a span */
	workcal_at at;
} policy_dur;

bool policy_duration_spec(const policy *p, const char *name, const char *shop_id,
			  policy_dur *out) AR_MUSTCHECK;

/* The id of the calendar working-day durations count on ("calendar";
 * default "cn-mainland"). Owned by p. */
const char *policy_calendar(const policy *p);

/* "holiday_extension": {"min_days": n}: a deadline given as a span whose
 * due instant falls on a holiday of the calendar inside a run of at least n
 * days off moves past the run (workcal_extend_over_holiday). 0: off (the
 * default). Working-day deadlines never end on a day off. */
int policy_holiday_extension(const policy *p);

/* One deadline a state arms: due after_ms after it is armed, or, when
 * working_days is set, at the instant that many working days of the
 * policy's calendar fix (the caller counts them: the calendar is data the
 * policy only names); on_expiry names what its expiry does (static strings). */
typedef struct {
	const char *name;
	int64_t after_ms;
	const char *on_expiry;
	int working_days;
	workcal_at at;
} policy_arming;

/*
 * The deadlines entering a state arms, under this policy: mask is the
 * state machine's (fsm_deadlines_for(kind, state)), durations the policy's
 * for the shop (a major complaint's first response has its own), what each
 * expiry does the kind's and the case's (one routed to a human escalates
 * instead of refunding). Pure: the action path and the scheduler both arm
 * with it. At most cap fill out; false (500) when the policy lacks one.
 */
bool policy_armings(const policy *p, ar_kind kind, const char *shop_id, bool major,
		    bool manual_review, unsigned mask, policy_arming out[], size_t cap,
		    size_t *n, ar_err *err) AR_MUSTCHECK;

/*
 * What the store knows about the buyer beyond the case itself; all zero when
 * unknown. The windows (7 and 30 days) are the store's queries, not policy.
 */
typedef struct {
	int64_t cases_last_7d;             /* the buyer's cases in the last 7 days, this one included */
	int64_t same_text_other_shops_30d; /* other shops that got the same description in 30 days */
	int64_t complaints_same_order;     /* earlier complaints on this order */
	bool sku_batch_defect;             /* the (shop, sku) carries a batch-defect flag */
} policy_history;

typedef enum {
	POLICY_OUTCOME_AUTO_APPROVE,
	POLICY_OUTCOME_SELLER_REVIEW,
	POLICY_OUTCOME_MANUAL_REVIEW,
	POLICY_OUTCOME_INELIGIBLE
} policy_outcome;

typedef enum {
	POLICY_FAULT_SELLER,
	POLICY_FAULT_BUYER,
	POLICY_FAULT_CARRIER,
	POLICY_FAULT_UNDETERMINED
} policy_fault;

typedef enum {
	POLICY_PAYER_NONE,
	POLICY_PAYER_SELLER,
	POLICY_PAYER_BUYER,
	POLICY_PAYER_INSURER
} policy_payer;

typedef enum {
	POLICY_RULE_PASS,
	POLICY_RULE_FAIL,
	POLICY_RULE_FIRED,
	POLICY_RULE_SKIPPED
} policy_rule_result;

#define POLICY_MAX_RULES 48
#define POLICY_MAX_SIGNALS 8
#define POLICY_RULE_ID_LEN 80
#define POLICY_RULE_REASON_LEN 201   /* 200 characters + NUL */
#define POLICY_VERSION_LEN 64        /* the loader refuses longer versions */
#define POLICY_REMEDY_LEN 64

#define POLICY_RULE_ARGS 6
#define POLICY_ARG_NAME_LEN 20
#define POLICY_ARG_TEXT_LEN 28

/* One input a rule compared, by name: the catalogues' rule texts take
 * them as {name} placeholders. A number whose name ends in "_cents" is
 * money in fen. */
typedef struct {
	char name[POLICY_ARG_NAME_LEN];
	char text[POLICY_ARG_TEXT_LEN];   /* used when is_text */
	int64_t num;
	bool is_text;
} policy_rule_arg;

typedef struct {
	char id[POLICY_RULE_ID_LEN];
	policy_rule_result result;
	char reason[POLICY_RULE_REASON_LEN];
	size_t n_args;
	policy_rule_arg args[POLICY_RULE_ARGS];
} policy_rule_trace;

/* A plain value: no pointers, copy it freely. */
typedef struct ar_decision {
	policy_outcome outcome;
	policy_fault fault;
	/*
	 * What accepting the case pays. total_cents is min(requested, max):
	 * the buyer's requested_cents when one was given (003: a missing
	 * item is refunded for the short part only), else max_cents, the
	 * most the policy says is owed. item/shipping/penalty split total
	 * item first, then shipping, then penalty, so they always sum to it.
	 * Every payer of a decided refund (seller accepts, seller silent)
	 * pays total_cents; offers and rulings are capped by max_cents.
	 */
	struct {
		int64_t item_cents;
		int64_t shipping_cents;
		int64_t penalty_cents;
		int64_t total_cents;        /* what a decided refund pays */
		int64_t max_cents;          /* the most the buyer is owed */
		int64_t requested_cents;    /* -1 when the buyer asked for no amount */
		bool requested;             /* total_cents is the requested amount */
		char currency[AR_CURRENCY_LEN + 1];
		/* 004: shop points and coupon value to give back with total_cents
		 * (policy_restore_share), and what the order spent, for other amounts */
		int64_t restore_points;
		int64_t restore_coupon_cents;
		int64_t points_used;
		int64_t coupon_cents;
		int64_t goods_cents;        /* the money paid for the goods: the share's base */
	} refund;
	bool return_required;
	policy_payer return_shipping_payer;   /* NONE when nothing goes back */
	int64_t insurance_payout_cents;       /* -1 when no insurance applies */
	policy_payer repair_cost_payer;       /* NONE unless kind is repair */
	char remedy[POLICY_REMEDY_LEN];       /* "" unless a category rule fired */
	bool major;                           /* complaints: severity major */
	char classification[24];              /* complaints: product_quality | service_quality */
	bool batch_defect;                    /* the SKU is flagged as a batch defect */
	struct {
		int score;
		size_t n_signals;
		char signals[POLICY_MAX_SIGNALS][32];
	} risk;
	int max_offer_rounds;                 /* seller offers a negotiation may run to (001) */
	size_t n_rules;
	policy_rule_trace rules[POLICY_MAX_RULES];
	char policy_version[POLICY_VERSION_LEN];
} ar_decision;

/*
 * Decides a case. Returns false only when the policy refuses the input
 * outright (err: 422 type "policy-refused", field errors "/evidence" for
 * missing required evidence, "/requested_cents" above the most owed,
 * "/currency" for a currency other than the policy's, "/order/..." for
 * negative amounts). Ineligibility is not an error: it is an outcome.
 * h may be NULL (no history). out is fully overwritten.
 */
bool policy_adjudicate(const policy *p, const ar_case_input *in,
		       const policy_history *h, ar_time now, ar_decision *out,
		       ar_err *err) AR_MUSTCHECK;

/*
 * 004 (购买时所使用过的店铺积分…退还): what the buyer spent besides money
 * goes back with a refund. A refund of the whole goods price (goods_refunded
 * >= goods_cents, or goods_cents 0: nothing was paid in money) restores all
 * of `used`; a partial one restores the same share of it,
 * used * goods_refunded / goods_cents, rounded down, so partial refunds
 * together never restore more than was spent. Negative inputs count as 0.
 */
int64_t policy_restore_share(int64_t used, int64_t goods_refunded, int64_t goods_cents);

/*
 * The data of a refund.instructed event paying `total` under a decision
 * whose `refund` block (policy_decision_to_json's, as stored) is given:
 * item/shipping/penalty (summing to total), total_cents, max_cents,
 * requested_cents, basis, currency, reason (why: auto_approve, accepted,
 * seller_silent, ...) and restore {points, coupon_cents}. Paying the
 * decision's own total copies its split, basis and restore; any other
 * amount (an offer, a ruling, compensation) counts as goods, with basis
 * "action" and the restore share of it. Decisions stored before these
 * fields existed read as max = total, basis "decided", nothing to restore.
 * New reference; NULL when out of memory.
 */
json_t *policy_refund_instruction(const json_t *refund, int64_t total, const char *reason);

const char *policy_outcome_name(policy_outcome o);
const char *policy_fault_name(policy_fault f);
const char *policy_payer_name(policy_payer p);
const char *policy_rule_result_name(policy_rule_result r);

/* The case's `decision` field. New reference (caller decrefs); NULL only
 * when out of memory. */
json_t *policy_decision_to_json(const ar_decision *d);

#endif
