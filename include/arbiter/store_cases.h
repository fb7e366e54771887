/*
 * Cases in PostgreSQL: opening one (case, deadlines, events, SKU check and
 * idempotent reply in one group-committed statement), reading, listing.
 *
 * Every function that can fail returns false and fills ar_err (see db.h);
 * JSON results are new references owned by the caller (json_decref).
 */
#ifndef ARBITER_STORE_CASES_H
#define ARBITER_STORE_CASES_H

#include <jansson.h>
#include <libpq-fe.h>
#include "arbiter/casefsm.h"
#include "arbiter/db.h"
#include "arbiter/model.h"

/* One event to append: action, states, data (borrowed). */
typedef struct {
	const char *action;
	const char *from_state;   /* NULL for the opening event */
	const char *to_state;
	json_t *data;             /* borrowed; NULL = {} */
} store_event;

/* One deadline to arm: due `after_ms` after the transaction's time, or at
 * due_at when it is set (a working-day deadline ends at an instant the
 * calendar fixes, not a span after the statement's clock; after_ms is then
 * due_at less the service's clock, for the scheduler's horizon). */
#define STORE_CALENDAR_ID_MAX 64
typedef struct {
	const char *name;
	int64_t after_ms;
	const char *on_expiry;
	ar_time due_at;                             /* 0: now() + after_ms */
	int working_days;                           /* 0: a span */
	char calendar_id[STORE_CALENDAR_ID_MAX];    /* with working_days */
	int calendar_version;                       /* 0: the calendar is not in the database */
	bool calendar_incomplete;                   /* counted Monday-Friday somewhere */
	int holiday_extended_days;                  /* a span moved past a holiday (0: not) */
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
	const char *allowed_actions;         /* JSON array text, then the reply's other computed
					      * members (",\"platform_status\":{..}") */
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
	const char *shop_id, *state, *kind, *buyer_id, *order_id, *sku;
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


/* 404 "not-found" naming the case. */
void store_err_not_found(ar_err *err, const char *id);

/* For the store modules that write cases (store_changes.c): the JSON forms
 * the statements take deadlines and events in (new references, NULL on
 * OOM), and case rows read from columns (json, version, kind, state,
 * manual_review, has_offer, agreement_pending, overdue deadline or NULL,
 * goods_missing, has_counter, rounds_left) starting at col, at most max. */
json_t *store_deadlines_json(const store_deadline *d, size_t n);
json_t *store_events_json(const store_event *e, size_t n);
bool store_rows_from(const PGresult *r, int col, int max, store_case_row **rows, size_t *n,
		     ar_err *err) AR_MUSTCHECK;
#endif
