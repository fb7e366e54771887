/*
 * PostgreSQL access: a fixed pool of libpq connections, prepared statements,
 * one transaction per change (case row + audit events + deadlines together).
 *
 * Every function that can fail returns false and fills ar_err: 404 for an
 * unknown (or out-of-scope) case, 503 "database-unavailable" when PostgreSQL
 * cannot be reached (the HTTP edge adds Retry-After), 500 only for a bug.
 * JSON results are new references owned by the caller (json_decref).
 */
#ifndef ARBITER_STORE_H
#define ARBITER_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include "arbiter/casefsm.h"
#include "arbiter/model.h"

typedef struct store store;

/* Creates the pool; connections open on first use (or in store_warm), so
 * an unreachable database does not stop start-up (readiness reports it).
 * NULL only on OOM; store_close frees it. */
store *store_open(const char *conninfo, int pool_size);
void store_close(store *s);
/* Opens every pooled connection at once and prepares and plans every
 * statement on each, so that the first requests after a start do not pay
 * each backend's cold start. Returns how many connections are ready; the
 * rest connect on first use. */
int store_warm(store *s);

/* size slots: in_use busy, broken whose last connect failed, the rest idle
 * (connected, or opened on first use). */
typedef struct {
	int size, in_use, broken;
} store_pool_stats;
void store_pool_stats_get(store *s, store_pool_stats *out);

/* Database reachable and every compiled-in migration applied. */
bool store_ready(store *s, ar_err *err) AR_MUSTCHECK;

/* Applies pending migrations under an advisory lock (several replicas may
 * start at once). Progress lines go to out. */
bool store_migrate(const char *conninfo, FILE *out, char *msg, size_t msglen) AR_MUSTCHECK;

/* Grants the runtime role what the service needs and nothing more
 * (sql/014_runtime_role.sql); run as the schema's owner after
 * store_migrate. */
bool store_grant_runtime(const char *conninfo, const char *role, char *msg,
			 size_t msglen) AR_MUSTCHECK;
/* Whether this login owns the schema (may rewrite the audit trail): the
 * service warns when it runs so. */
bool store_owns_schema(store *s, bool *owner, ar_err *err) AR_MUSTCHECK;

/* Walks every audit chain; prints the first broken link. Returns 0 when all
 * chains verify, 1 when one is broken, 2 on a database error. */
int store_verify(const char *conninfo, FILE *out);

/* One event to append: action, states, data (borrowed). */
typedef struct {
	const char *action;
	const char *from_state;   /* NULL for the opening event */
	const char *to_state;
	json_t *data;             /* borrowed; NULL = {} */
} store_event;

/* One deadline to arm: due `after_ms` after the transaction's time. */
typedef struct {
	const char *name;
	int64_t after_ms;
	const char *on_expiry;
} store_deadline;

#define STORE_MAX_EVENTS 4
#define STORE_MAX_DEADLINES 4

typedef struct {
	const ar_case_input *in;
	const char *state;
	const char *outcome;      /* NULL unless the case opens terminal */
	json_t *order_doc;        /* borrowed */
	json_t *evidence;         /* borrowed */
	json_t *decision;         /* borrowed, may be NULL */
	bool manual_review;
	int64_t refund_cents;     /* -1: none decided */
	const char *policy_version;
	const char *actor_role, *actor_id;   /* actor_id is also the idempotency scope */
	const char *idem_key;                /* Idempotency-Key or NULL */
	const char *fingerprint;             /* its request's SHA-256, hex */
	int idem_lease_s;                    /* an in-flight claim older than this is dead */
	const char *id;                      /* the new case's id */
	const char *allowed_actions;         /* JSON array text, for the reply */
	bool sku_check;                      /* a quality reason: count the SKU's cases */
	int sku_window_days, sku_threshold;  /* and flag it at threshold within the window */
	size_t n_events;
	store_event events[STORE_MAX_EVENTS];
	size_t n_deadlines;
	store_deadline deadlines[STORE_MAX_DEADLINES];
} store_new_case;

/* What a create stored. created false: nothing was written, because the
 * Idempotency-Key has a live record or a case already (store_idem_lookup,
 * store_case_by_idem tell which). body: the 201 reply as rendered and
 * stored for replays, malloc'd, the caller frees. */
typedef struct {
	bool created;
	bool sku_flagged;   /* this case brought its SKU to the batch-defect threshold */
	char *body;
	size_t len;
} store_created;

/*
 * Opens a case in one statement (case, deadlines, events, the SKU's
 * batch-defect check, the idempotent reply) that rides a group commit: it
 * shares a transaction with other requests' writes, and returns once that
 * committed.
 */
bool store_case_create(store *s, const store_new_case *nc, store_created *out,
		       ar_err *err) AR_MUSTCHECK;

/* The facts an action is decided on: version, kind, state, shop_id, the
 * state machine's flags, offer/refund amounts, the decision's refund and
 * severity, the order's price_cents and shipping_fee_cents, evidence;
 * acted_version (the version the last change by anyone but the scheduler
 * left it at); due: {name, armed_version, due_ms} of the earliest deadline
 * due by the database's clock now, or null; passed: when the case is no
 * longer at read_version, the data of its last expiry event (deadline,
 * due_at, fired_at, to_state), or null.
 * shop_scope: NULL = every shop, else a PostgreSQL array literal of the
 * shops the caller may see; a case outside it is 404, so ids leak nothing. */
bool store_case_get(store *s, const char *id, const char *shop_scope, int read_version,
		    json_t **out_case, ar_err *err) AR_MUSTCHECK;

typedef struct {
	const char *shop_id, *state, *kind, *buyer_id, *order_id;
	ar_time created_after, created_before;  /* AR_TIME_NONE: unbounded */
	const char *shop_scope;                 /* key's scope, NULL = all */
	int limit;
	bool has_cursor;
	int64_t cursor_us;                      /* created_at of the last item, microseconds */
	char cursor_id[AR_MAX_ID_LEN + 1];
} store_list_query;


/*
 * The read paths' form of a case: the document as PostgreSQL wrote it (not
 * parsed again here) and the few fields the state machine needs, so the
 * edge can add allowed_actions by splicing text. Rows and their json are
 * owned by the array; free with store_case_rows_free.
 */
typedef struct {
	char *json;
	size_t len;
	int version;
	ar_kind kind;
	fsm_state state;
	bool manual_review, has_offer, agreement_pending;
	bool goods_missing, has_counter, rounds_left;
	int overdue;          /* fsm_deadline due but not yet applied, or -1 */
} store_case_row;

void store_case_rows_free(store_case_row *rows, size_t n);
/* One case as a row (404 as store_case_get). */
bool store_case_get_row(store *s, const char *id, const char *shop_scope,
			store_case_row **row, ar_err *err) AR_MUSTCHECK;
/* The case opened under (scope, Idempotency-Key), or *row NULL; its id
 * into id. */
bool store_case_by_idem(store *s, const char *scope, const char *key, store_case_row **row,
			char *id, size_t idlen, ar_err *err) AR_MUSTCHECK;
/* The list as rows; *n of them. */
bool store_case_list_rows(store *s, const store_list_query *q, store_case_row **rows,
			  size_t *n, char *next_cursor, size_t cursor_len,
			  ar_err *err) AR_MUSTCHECK;

bool store_case_events(store *s, const char *id, const char *shop_scope,
		       json_t **items, ar_err *err) AR_MUSTCHECK;

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
	size_t n_events;
	store_event events[STORE_MAX_EVENTS];
} store_change;

/* The change rides a group commit: it shares a transaction with other
 * requests' writes (see store.c), and returns once that committed. *row is
 * the case as changed (free with store_case_rows_free). */
bool store_case_apply(store *s, const store_change *ch, store_case_row **row,
		      ar_err *err) AR_MUSTCHECK;

/* The commit-ordered event feed: events after the cursor that every reader
 * will ever see in this order (see sql/001_foundation.sql, case_events.xid).
 * Cursors name the caller's own last event (see store.c): 422 naming
 * /query/after for one this caller was not handed. */
bool store_feed(store *s, const char *after, const char *shop_scope, int limit,
		json_t **items, char *next_cursor, size_t cursor_len,
		ar_err *err) AR_MUSTCHECK;

/* API keys (only the secret's SHA-256 is stored). */
typedef struct {
	char role[16];
	char shops[1024];   /* JSON array of shop ids, "" = every shop */
	bool senior;
	bool revoked;
	unsigned char secret_hash[32];
} store_key;

/* false + 401-ready err "unknown key" when absent; 503 when unreachable. */
bool store_key_get(store *s, const char *id, store_key *out, ar_err *err) AR_MUSTCHECK;
bool store_key_insert(store *s, const char *id, const unsigned char hash[32],
		      const char *role, const char *shops_literal, const char *name,
		      bool senior, ar_err *err) AR_MUSTCHECK;
/* items: new array of {id, role, shops, name, senior, created_at, last_used_at, revoked_at} */
bool store_key_list(store *s, json_t **items, ar_err *err) AR_MUSTCHECK;
/* 404 when no such key */
bool store_key_revoke(store *s, const char *id, ar_err *err) AR_MUSTCHECK;

/*
 * Idempotency-Key bookkeeping. begin() claims (scope, key) for a request
 * whose fingerprint is the SHA-256 of method, path and body:
 *   IDEM_NEW       claimed: run the request, then finish() or abandon();
 *   IDEM_REPLAY    done before: *replay holds status, body, etag, location;
 *   IDEM_IN_FLIGHT the first request is still running (409);
 *   IDEM_MISMATCH  the key was used with another request (422).
 * A claim older than the request timeout is taken over (its owner died).
 */
typedef enum { IDEM_NEW, IDEM_REPLAY, IDEM_IN_FLIGHT, IDEM_MISMATCH } idem_state;

typedef struct {
	int status;
	char *body;          /* malloc'd; caller frees */
	char etag[32];
	char location[128];
} idem_replay;

bool store_idem_begin(store *s, const char *scope, const char *key, const char *fp_hex,
		      int lease_s, idem_state *state, idem_replay *replay,
		      ar_err *err) AR_MUSTCHECK;
/* Reads without claiming: what begin() would say, with IDEM_NEW for a key
 * that has no live record. */
bool store_idem_lookup(store *s, const char *scope, const char *key, const char *fp_hex,
		       int lease_s, idem_state *state, idem_replay *replay,
		       ar_err *err) AR_MUSTCHECK;
bool store_idem_finish(store *s, const char *scope, const char *key, int status,
		       const char *body, const char *etag, const char *location,
		       ar_err *err) AR_MUSTCHECK;
/* Drops a claim whose request failed without a replayable answer (5xx). */
void store_idem_abandon(store *s, const char *scope, const char *key);

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
/* The scheduler's changes, in one statement inside tx (ST_EXPIRE). It
 * carries what an expiry changes (state, outcome, offer cleared, refund,
 * the deadline consumed, deadlines replaced, events) by the actor of
 * chs[0]; each case at most once. applied[i] is false for a change whose
 * case had moved on (its conditions failed). */
bool store_tx_apply_many(store_tx *tx, const store_change *chs, size_t n, bool applied[],
			 ar_err *err) AR_MUSTCHECK;

/* A pending deadline as the scheduler loads it; part says which part of
 * a refill found it (STORE_DUE_*). */
typedef struct {
	char case_id[AR_MAX_ID_LEN + 1];
	char name[32];
	int armed_version;
	int64_t due_ms;
	int64_t armed_ms;
	bool reminded;
	uint8_t part;
} store_due;

enum { STORE_DUE_EXPIRY, STORE_DUE_REMINDER, STORE_DUE_ARMED };

/*
 * Arming closer than this to due_at puts a deadline into the partial index
 * case_deadlines_short_idx (013_short_armings.sql, whose predicate must
 * say the same): the only deadlines that can enter the scheduler's
 * horizon by being armed rather than by time passing.
 */
#define STORE_SHORT_ARMING_MS 300000

/*
 * One refill of the scheduler, one statement, in three parts of at most
 * cap rows each (out has room for 3 * cap):
 *   expiries:  due_at in [exp_from_us, now + horizon_ms), earliest first;
 *   reminders: not reminded, due_at in [rem_from_us, now + horizon_ms +
 *              before_ms) and still ahead, earliest first;
 *   armed:     short armings (above) with armed_at >= armed_from_us, oldest
 *              first; none when armed_cap is 0.
 * Times are microseconds since the epoch by the database's clock; 0 as a
 * lower bound takes everything.
 */
typedef struct {
	int64_t horizon_ms, before_ms;
	int64_t exp_from_us, rem_from_us, armed_from_us;
	size_t cap, armed_cap;
} store_due_query;
typedef struct {
	int64_t now_us;                         /* the statement's now() */
	size_t n[3];                            /* rows of each part */
	int64_t last_us[3];                     /* the last row's due_at (armed_at for armed) */
} store_due_result;
bool store_due_refill(store *s, const store_due_query *q, store_due *out,
		      store_due_result *res, ar_err *err) AR_MUSTCHECK;
/* Appends a deadline.approaching event once per arming (no version change),
 * inside tx so a tick's reminders share one commit. */
bool store_tx_remind(store_tx *tx, const char *case_id, const char *name, int armed_version,
		     json_t *data, ar_err *err) AR_MUSTCHECK;
/* Deletes idempotency records past their 24 h retention. */
void store_housekeep(store *s);
/* Pending deadlines and the oldest overdue one (seconds), for metrics. */
bool store_deadline_stats(store *s, int64_t *pending, double *oldest_overdue_s,
			  ar_err *err) AR_MUSTCHECK;

/* What the buyer did lately, for the risk signals: cases opened in the last
 * 7 days, and other shops that got the same (normalised) description in 30. */
typedef struct {
	int64_t cases_7d;
	int64_t same_text_shops_30d;
	int64_t complaints_same_order;
	bool sku_flagged;
} store_history;

bool store_buyer_history(store *s, const ar_case_input *in, store_history *out,
			 ar_err *err) AR_MUSTCHECK;

/* Clears the active flag of (shop, sku); 404 when there is none. */
bool store_sku_clear(store *s, const char *shop_id, const char *sku, const char *by,
		     ar_err *err) AR_MUSTCHECK;

/* Records a policy version with the SHA-256 of its canonical text. A version
 * already recorded with other content is refused (409): versions name one
 * document forever, so old decisions stay explainable. */
bool store_policy_record(store *s, const char *version, const char *canonical_text,
			 bool activate, bool *is_new, ar_err *err) AR_MUSTCHECK;
/* The active policy: its version, and its document (malloc'd into *text,
 * caller frees). 404 when none was ever activated. */
bool store_policy_active(store *s, char *version, size_t version_len, char **text,
			 ar_err *err) AR_MUSTCHECK;

/* Runs one read-only statement (parameters only) whose single row and
 * column is JSON; *out is a new reference. For the reporting queries. */
bool store_query_json(store *s, const char *what, const char *sql, int n,
		      const char *const *vals, json_t **out, ar_err *err) AR_MUSTCHECK;

/* Cases by state and kind, for the arbiter_cases gauge (one GROUP BY;
 * the scheduler refreshes it every few seconds, never a scrape). */
bool store_case_counts(store *s, int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT],
		       ar_err *err) AR_MUSTCHECK;

/* Opaque list cursor <-> (created_at µs, id); pure. Decoding refuses µs
 * past 9999-12-31 and ids outside [A-Za-z0-9_-]. */
#define STORE_CURSOR_MAX_US 253402300799999999LL
void store_cursor_encode(int64_t us, const char *id, char *out, size_t outlen);
bool store_cursor_decode(const char *s, int64_t *us, char *id, size_t idlen) AR_MUSTCHECK;

#endif
