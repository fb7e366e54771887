/*
 * The HTTP edge: libmicrohttpd server, body limits, routing, problem+json.
 * Handlers (api_*.c) see an ar_req and fill its response; they never touch
 * libmicrohttpd themselves.
 */
#ifndef ARBITER_HTTP_H
#define ARBITER_HTTP_H

#include <jansson.h>
#include "arbiter/app.h"
#include "arbiter/auth.h"
#include "arbiter/router.h"
#include "arbiter/sha256.h"
#include "arbiter/store_idem.h"

#define HTTP_MAX_HEADERS 12

typedef struct ar_req ar_req;

/* Request accessors (valid during the handler). */
const char *req_header(ar_req *r, const char *name);
const char *req_query(ar_req *r, const char *name);
/* false (err: 400 unknown-parameter, a field /query/NAME each) when the
 * query names a parameter outside allowed (NULL-terminated): a typo such
 * as ?stat=closed must not silently list everything. */
bool req_query_known(ar_req *r, const char *const *allowed, ar_err *err) AR_MUSTCHECK;
const char *req_body(ar_req *r, size_t *len);
const char *req_param(ar_req *r, size_t i);     /* path parameter i */
ar_app *req_app(ar_req *r);
/* The authenticated caller (every /v1 route has one). */
const ar_identity *req_identity(ar_req *r);
const char *req_id(ar_req *r);
/* The pool a read that tolerates a replica's lag should use: the replica
 * (ARBITER_READ_DATABASE_URL) unless the caller wrote within
 * ARBITER_READ_AFTER_WRITE_MS, else the primary. */
store *req_read_db(ar_req *r);
/* The Idempotency-Key the request runs under (its claim, scope the caller's
 * key id), or NULL: a change that carries it marks the record applied in
 * its own transaction (store_change.idem_key). */
const char *req_idem_claim(ar_req *r);
/* True when the request retries, under its Idempotency-Key, a change that
 * committed but whose reply was never stored: the handler answers with
 * what the change led to (the case as it is now) instead of acting. */
bool req_idem_applied(ar_req *r);
/* After a read on *db failed with err: true (err cleared, *db the primary)
 * when it ran on the replica and the replica could not answer (503), so the
 * caller tries once more; false when err stands. */
bool req_read_fallback(ar_req *r, store **db, ar_err *err) AR_MUSTCHECK;
/* The reply's language: Accept-Language against ARBITER_DEFAULT_LANGUAGE. */
ar_lang req_lang(ar_req *r);

/* Responses. The json body is STOLEN (decref'd by the edge after sending). */
void req_reply_json(ar_req *r, int status, json_t *body);
void req_reply_text(ar_req *r, int status, const char *content_type, const char *text, size_t len);
void req_reply_problem(ar_req *r, const ar_err *err);
/* Adds a response header (name and value copied). */
void req_add_header(ar_req *r, const char *name, const char *value);
/* Remembers the case the request touched, for the log line. */
void req_set_case(ar_req *r, const char *case_id);

/* Idempotency-Key: *key is the header or NULL. A malformed key is
 * answered (422) and false returned; fp gets the hex SHA-256 of method,
 * path and body, the request's fingerprint. */
bool req_idem_key(ar_req *r, const char **key, char fp[2 * SHA256_LEN + 1]) AR_MUSTCHECK;
/* How long an in-flight claim lives before another request may take it. */
int req_idem_lease(ar_req *r);
/* Answers from a key's record: its stored reply (replayed), 409 while it
 * is in flight, 422 for another request's key. false for IDEM_NEW (nothing
 * sent). Frees rep->body. */
bool req_idem_answer(ar_req *r, idem_state st, idem_replay *rep);

typedef struct http_server http_server;

/* Starts serving on cfg->listen_host:listen_port. NULL with msg on failure. */
http_server *http_start(ar_app *app, char *msg, size_t msglen);
/* Stops accepting, lets in-flight requests finish (up to grace_ms), stops. */
void http_stop(http_server *h, int grace_ms);

/* The problem document for an error, its title and detail in lang (new
 * reference). */
json_t *http_problem_json(const ar_err *err, const char *instance, ar_lang lang);
#endif
