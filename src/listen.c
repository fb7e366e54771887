/* The listen address: parses ARBITER_LISTEN and builds the IPv4 or IPv6 socket address to bind. */
#include "arbiter/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool listen_parse(const char *s, char *host, size_t hostlen, unsigned *port,
		  char *msg, size_t msglen)
{
	const char *h = s, *colon;
	size_t hl;
	char *end;
	long p;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(msg, msglen, "expected [ipv6]:port, got '%s'", s);
			return false;
		}
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
		if (hl && !memchr(h, ':', hl)) {
			snprintf(msg, msglen, "brackets are for IPv6 addresses only, got '%s'", s);
			return false;
		}
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(msg, msglen, "expected host:port, got '%s'", s);
			return false;
		}
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl)) {
			snprintf(msg, msglen, "an IPv6 address needs brackets, as in [::1]:8080; got '%s'", s);
			return false;
		}
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(msg, msglen, "expected host:port with a host of 1 to %zu characters, got '%s'",
			 hostlen - 1, s);
		return false;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535 || colon[1] == '+' ||
	    colon[1] == '-') {
		snprintf(msg, msglen, "port must be an integer in [0, 65535], got '%s'", colon + 1);
		return false;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return true;
}

bool listen_sockaddr(const char *host, unsigned port, struct sockaddr_storage *out, bool *v6,
		     char *msg, size_t msglen)
{
	memset(out, 0, sizeof(*out));
	if (port > 65535) {
		snprintf(msg, msglen, "port %u out of range", port);
		return false;
	}
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)out;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1) {
			*v6 = true;
			return true;
		}
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)(void *)out;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
			*v6 = false;
			return true;
		}
	}
	snprintf(msg, msglen, "'%s' is not a numeric IPv4 or IPv6 address", host);
	return false;
}
