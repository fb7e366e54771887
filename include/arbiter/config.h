/* Environment variables -> one immutable configuration, read once at start. */
#ifndef ARBITER_CONFIG_H
#define ARBITER_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include "arbiter/casefsm.h"
#include "arbiter/i18n.h"
#include "arbiter/model.h"

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } ar_log_level;

/* A token bucket: rate requests per second, up to burst at once; rate 0
 * means no limit. */
typedef struct {
	double rate;
	double burst;
} ar_rate;

#define AR_MAX_PROXIES 16
/* ARBITER_BACKTEST_SHARE unset: a tenth of one core while the database
 * serves others (README, Policy backtests, has the measurement it was
 * chosen from) */
#define CONFIG_BACKTEST_SHARE 10
#define CONFIG_BACKTEST_SHARE_MIN 1

/* The access log (src/accesslog.c): one line per request at info. */
typedef struct {
	bool on;                  /* ARBITER_ACCESS_LOG=on|off */
	unsigned health_every;    /* log 1 in N /healthz and /readyz requests; 0: none */
	/* ARBITER_TRUSTED_PROXIES: peers whose X-Forwarded-For is believed */
	size_t n_proxies;
	unsigned char proxy[AR_MAX_PROXIES][16];
	unsigned char proxy_len[AR_MAX_PROXIES]; /* 4 (IPv4) or 16 (IPv6) */
} ar_access_log_config;

typedef struct {
	char listen_host[64];
	unsigned listen_port;
	char database_url[1024];  /* empty: unset */
	char read_database_url[1024]; /* empty: every read on the primary */
	unsigned read_after_write_ms; /* a key's reads stay on the primary this long after it wrote */
	char policy_path[1024];
	ar_log_level log_level;
	int db_pool;
	size_t max_body;          /* bytes */
	unsigned max_connections;
	unsigned max_per_ip;
	unsigned request_timeout_s;   /* idle keep-alive connection */
	unsigned header_timeout_s;    /* from accept (or the request line) to the last header */
	unsigned body_timeout_s;      /* from the last header to the last body byte */
	ar_rate rate_key[FSM_ROLE__COUNT]; /* per API key, by the key's role */
	ar_rate rate_address;         /* per client address, requests without a valid key */
	bool evidence_http;           /* accept http:// evidence URLs (else https only) */
	bool metrics_open;        /* /metrics without a key */
	bool policy_follow;       /* run the policy activated by any replica */
	bool scheduler;           /* fire deadlines here (false: another replica does) */
	ar_access_log_config access_log;
	bool db_prepared;         /* named prepared statements (false: unnamed, for poolers) */
	ar_lang default_lang;     /* ARBITER_DEFAULT_LANGUAGE: without Accept-Language */
	int backtest_share;       /* ARBITER_BACKTEST_SHARE: % of the time a backtest may be busy under live traffic */
} ar_config;

/* Fills cfg from the environment; on a bad value returns false with msg
 * naming the variable. */
bool config_load(ar_config *cfg, char *msg, size_t msglen) AR_MUSTCHECK;
#endif
