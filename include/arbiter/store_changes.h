/*
 * Changes to existing cases: a request's (optimistic, group-committed) and
 * the scheduler's (claimed and applied in batches inside one transaction).
 *
 * Every function that can fail returns false and fills ar_err (see db.h);
 * JSON results are new references owned by the caller (json_decref).
 */
#ifndef ARBITER_STORE_CHANGES_H
#define ARBITER_STORE_CHANGES_H

#include "arbiter/store_cases.h"

/*
 * One change to an existing case, committed with its audit events and
 * deadline changes in a single statement, and only if the case is still at
 * expected_version (optimistic concurrency: If-Match for HTTP, the version
 * the scheduler read for an expiry). A change that is not an expiry
 * (consume_deadline NULL) also commits only while no deadline of the case
 * is due by the database's clock at the write: the clock rule. Either lost
 * race is 412 "stale"; read the case again to see which.
 */
typedef enum { STORE_KEEP, STORE_SET, STORE_CLEAR } store_op;

typedef struct {
	const char *case_id;
	const char *shop_scope;         /* PostgreSQL array literal of shops, NULL = all */
	int expected_version;
	const char *state;              /* the state after the change */
	const char *outcome;            /* NULL unless terminal */
	store_op offer;                 /* SET uses offer_cents */
	int64_t offer_cents;
	store_op agreement;             /* SET records agreement_cents with it (-1: none) */
	int64_t agreement_cents;
	store_op counter;               /* the buyer's counter-offer; SET uses counter_cents */
	int64_t counter_cents;
	bool counts_round;              /* a seller's offer: offer_rounds + 1 */
	store_op manual_review;         /* SET routes the case to a human */
	int64_t refund_cents;           /* -1: keep */
	json_t *evidence;               /* borrowed; NULL keeps the case's evidence */
	bool replace_deadlines;         /* state changed: cancel all but these, arm these */
	size_t n_deadlines;
	store_deadline deadlines[STORE_MAX_DEADLINES];
	const char *consume_deadline;   /* expiry: this deadline row must still exist */
	int consume_armed_version;
	const char *actor_role, *actor_id;
	/* the request's Idempotency-Key (API key id, key), NULL: none; the
	 * record is marked applied when the change commits */
	const char *idem_scope, *idem_key;
	size_t n_events;
	store_event events[STORE_MAX_EVENTS];
} store_change;

/* The change rides a group commit: it shares a transaction with other
 * requests' writes (groupcommit.h), and returns once that committed. *row is
 * the case as changed (free with store_case_rows_free). */
bool store_case_apply(store *s, const store_change *ch, store_case_row **row,
		      ar_err *err) AR_MUSTCHECK;

/*
 * Several changes in one transaction on one connection (the scheduler
 * commits expiries in batches: one fsync for many). A failed statement
 * aborts the transaction; store_tx_end then rolls back.
 */
typedef struct store_tx store_tx;
bool store_tx_begin(store *s, store_tx **out, ar_err *err) AR_MUSTCHECK;
/* Commits (commit = true) or rolls back, and frees tx. */
bool store_tx_end(store_tx *tx, bool commit, ar_err *err) AR_MUSTCHECK;
/* What the scheduler decides an expiry on. decision is owned: free with
 * store_claimed_clear. */
typedef struct {
	char id[AR_MAX_ID_LEN + 1];
	int version;
	ar_kind kind;
	fsm_state state;
	bool manual_review, has_offer, agreement_pending;
	bool goods_missing, has_counter, rounds_left;
	int64_t counter_cents;          /* -1: none */
	char shop_id[AR_MAX_ID_LEN + 1];
	json_t *decision;
} store_claimed;
void store_claimed_clear(store_claimed *c, size_t n);
/* Locks and reads the cases of ids (n of them, one statement) for the
 * scheduler; a case locked elsewhere (or gone) is skipped at once, never
 * waited for. out has room for n; *n_out of them are filled. */
bool store_tx_claim(store_tx *tx, const char *const *ids, size_t n, store_claimed *out,
		    size_t *n_out, ar_err *err) AR_MUSTCHECK;
/* The scheduler's changes, in one statement inside tx (case_expire). It
 * carries what an expiry changes (state, outcome, offer cleared, refund,
 * the deadline consumed, deadlines replaced, events) by the actor of
 * chs[0]; each case at most once. applied[i] is false for a change whose
 * case had moved on (its conditions failed). */
bool store_tx_apply_many(store_tx *tx, const store_change *chs, size_t n, bool applied[],
			 ar_err *err) AR_MUSTCHECK;
/* Appends a deadline.approaching event once per arming (no version change),
 * inside tx so a tick's reminders share one commit. */
bool store_tx_remind(store_tx *tx, const char *case_id, const char *name, int armed_version,
		     json_t *data, ar_err *err) AR_MUSTCHECK;
#endif
