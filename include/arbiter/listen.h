/* The listen address: "host:port" or "[v6-host]:port", parsed and turned into a socket address. */
#ifndef ARBITER_LISTEN_H
#define ARBITER_LISTEN_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "arbiter/model.h"

/* "127.0.0.1:8080", "0.0.0.0:0", "[::]:8080", "[::1]:0" -> host without
 * brackets and port. An IPv6 host needs its brackets ("::1:8080" is
 * ambiguous); false with msg saying why on anything else. */
bool listen_parse(const char *s, char *host, size_t hostlen, unsigned *port,
		  char *msg, size_t msglen) AR_MUSTCHECK;

/* Fills *out (sockaddr_in or sockaddr_in6) from a numeric host as
 * listen_parse leaves it; *v6 says which. false with msg when the host is
 * not a numeric IPv4 or IPv6 address. */
bool listen_sockaddr(const char *host, unsigned port, struct sockaddr_storage *out, bool *v6,
		     char *msg, size_t msglen) AR_MUSTCHECK;
#endif
