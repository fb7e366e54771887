/* Idempotency-Key records, so that a retried request is answered once. */
#ifndef ARBITER_STORE_IDEM_H
#define ARBITER_STORE_IDEM_H

#include "arbiter/db.h"

/*
 * Idempotency-Key bookkeeping. begin() claims (scope, key) for a request
 * whose fingerprint is the SHA-256 of method, path and body:
 *   IDEM_NEW       claimed: run the request, then finish() or abandon();
 *   IDEM_REPLAY    done before: *replay holds status, body, etag, location;
 *   IDEM_IN_FLIGHT the first request is still running (409);
 *   IDEM_MISMATCH  the key was used with another request (422);
 *   IDEM_APPLIED   the first request's change committed (its action marked
 *                  the record in its own transaction) but its reply was never
 *                  stored: answer with the case (replay->applied_case) as it
 *                  is now, then finish().
 * A claim older than the request timeout whose change did not commit is
 * taken over (its owner died).
 */
typedef enum { IDEM_NEW, IDEM_REPLAY, IDEM_IN_FLIGHT, IDEM_MISMATCH, IDEM_APPLIED } idem_state;

typedef struct {
	int status;
	char *body;          /* malloc'd; caller frees */
	char etag[32];
	char location[128];
	char applied_case[AR_MAX_ID_LEN + 1];   /* IDEM_APPLIED */
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

/* Deletes idempotency records past their 24 h retention. */
void store_housekeep(store *s);
#endif
