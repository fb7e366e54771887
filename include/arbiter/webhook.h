/*
 * Push webhooks, the pure part (no I/O, no logging): the Standard Webhooks
 * secret and signature, the retry schedule and Retry-After, what a reply's
 * status means, event-type patterns, and which addresses a delivery may
 * never reach (SSRF).
 */
#ifndef ARBITER_WEBHOOK_H
#define ARBITER_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "arbiter/model.h"

#define WH_SECRET_MIN 24              /* random bytes, as the spec asks */
#define WH_SECRET_MAX 64
#define WH_SECRET_TEXT_MAX 100        /* "whsec_" + base64 of 64 bytes + NUL */
#define WH_SIG_TEXT_MAX 48            /* "v1," + base64 of 32 bytes + NUL */
#define WH_MAX_PATTERNS 16
#define WH_PATTERN_MAX 64
#define WH_ATTEMPTS 10                /* the schedule's length: then dead */

/* "whsec_" + base64(key). false when out is too small or n out of range. */
bool wh_secret_format(const unsigned char *key, size_t n, char *out, size_t outlen) AR_MUSTCHECK;
/* The key bytes of a "whsec_..." text (what a receiver does); false when
 * it is not one. key holds WH_SECRET_MAX. */
bool wh_secret_parse(const char *text, unsigned char *key, size_t *n) AR_MUSTCHECK;

/* "v1," + base64(HMAC-SHA256(key, msg_id "." ts "." body)) into out
 * (WH_SIG_TEXT_MAX). */
bool wh_sign(const unsigned char *key, size_t keylen, const char *msg_id, int64_t ts,
	     const char *body, size_t bodylen, char *out, size_t outlen) AR_MUSTCHECK;

/* Milliseconds to wait before attempt attempts + 1, after attempts failed
 * ones: the Standard Webhooks example schedule (now, 5 s, 5 min, 30 min,
 * 2 h, 5 h, 10 h, 14 h, 20 h, 24 h) times scale, +-10 % jitter by rnd
 * (uniform over uint32). -1 once WH_ATTEMPTS have failed (dead). */
int64_t wh_retry_delay_ms(int attempts, double scale, uint32_t rnd);
/* A Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate), as
 * seconds from now_s (0 for a date passed). false when it is neither. */
bool wh_retry_after_parse(const char *v, int64_t now_s, int64_t *seconds) AR_MUSTCHECK;

typedef enum {
	WH_ACK,        /* any 2xx */
	WH_GONE,       /* 410: the receiver wants no more; the subscription is disabled */
	WH_THROTTLED,  /* 429, 502, 503, 504: Retry-After is honoured */
	WH_FAIL,       /* everything else, 3xx included (redirects are not followed) */
} wh_outcome;
/* status 0: no HTTP reply (connect failure, timeout). */
wh_outcome wh_classify(long status);

/* An event-type pattern: "*", a type ("case.accept", [a-z0-9_] words
 * joined by dots), or a prefix and ".*" ("case.*"). */
bool wh_pattern_valid(const char *p);
bool wh_type_matches(const char *pattern, const char *type);

/* Why an address may not be reached ("loopback", "private", "link-local",
 * "metadata", "unspecified", "multicast", "reserved"), or NULL for a
 * public one. IPv4-mapped IPv6 addresses are judged as their IPv4. */
const char *wh_addr_refusal(const struct sockaddr *sa);
/* host appears in list (comma-separated, spaces ignored, case-insensitive). */
bool wh_host_listed(const char *list, const char *host);
#endif
