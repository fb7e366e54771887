/*
 * The access log: one JSON line per request at info (errors at error),
 * written when libmicrohttpd reports the request complete. The edge fills
 * an accesslog_entry; this module decides whether to write it (on/off,
 * health-check sampling), finds the client's address (X-Forwarded-For only
 * from a trusted proxy) and the problem type of an error reply.
 */
#ifndef ARBITER_ACCESSLOG_H
#define ARBITER_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "arbiter/auth.h"
#include "arbiter/config.h"

typedef struct {
	const char *request_id;
	const char *method;
	const char *route;         /* the route template, or "unmatched" */
	const char *path;
	bool health;               /* /healthz or /readyz: sampled */
	int status;
	double seconds;
	size_t bytes_in, bytes_out; /* body bytes */
	const ar_identity *ident;  /* NULL or key_id "" when no key was verified */
	const struct sockaddr *peer;
	const char *forwarded_for; /* the X-Forwarded-For header or NULL */
	const char *content_type;  /* of the reply */
	const char *body;          /* the reply, read for a problem's type */
	size_t body_len;
	const char *case_id;       /* "" or NULL: none */
	bool aborted;              /* the connection went before the reply was sent */
} accesslog_entry;

/* The client's address as text into out (>= 46 bytes): the peer, or with
 * the peer a trusted proxy, the nearest X-Forwarded-For hop that is not. */
void accesslog_client(const ar_access_log_config *cfg, const struct sockaddr *peer,
		      const char *forwarded_for, char *out, size_t outlen);
void accesslog_request(const ar_access_log_config *cfg, const accesslog_entry *e);
#endif
