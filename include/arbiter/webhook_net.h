/*
 * Push webhooks' settings and the address checks that need the network:
 * a subscription URL checked when it is created or changed (resolved, and
 * every address judged by wh_addr_refusal), the same judgment again on
 * every connection the delivery worker opens (webhook_worker.c).
 */
#ifndef ARBITER_WEBHOOK_NET_H
#define ARBITER_WEBHOOK_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "arbiter/model.h"

typedef struct {
	char allow_hosts[1024];    /* ARBITER_WEBHOOK_ALLOW_HOSTS: hosts or addresses */
	double retry_scale;        /* ARBITER_WEBHOOK_RETRY_SCALE (1): the schedule times this */
	int64_t rotation_overlap_s; /* ARBITER_WEBHOOK_ROTATION_OVERLAP (86400 s) */
	int64_t disable_after_s;   /* ARBITER_WEBHOOK_DISABLE_AFTER (432000 s): failing this long disables */
	int lease_s;               /* ARBITER_WEBHOOK_LEASE (30 s, at least 15) */
	int concurrency;           /* ARBITER_WEBHOOK_CONCURRENCY (32) in flight per replica */
	int per_subscription;      /* ARBITER_WEBHOOK_PER_SUBSCRIPTION (8) of them to one subscription */
	bool worker;               /* ARBITER_WEBHOOK_WORKER (true): this replica sends */
} wh_config;

/* Reads the settings (once, before any thread starts: it also initialises
 * libcurl); false with msg naming the variable. */
bool wh_config_load(char *msg, size_t msglen) AR_MUSTCHECK;
/* Releases what wh_config_load set up (libcurl), once every thread that
 * used it has stopped. */
void wh_config_free(void);
/* The loaded settings (the defaults before wh_config_load). */
const wh_config *wh_config_get(void);

/* A subscription URL: absolute http or https without credentials, https
 * unless its host is listed, and a host that resolves only to addresses
 * a delivery may reach (wh_connect_allowed). false with err 422 naming
 * /url. */
bool wh_url_check(const char *url, ar_err *err) AR_MUSTCHECK;
/* A connection to sa for a URL of host may be opened: a public address,
 * or the host or the address listed. why: the refusal, when false. */
bool wh_connect_allowed(const char *host, const struct sockaddr *sa, const char **why);
#endif
