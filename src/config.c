/* Environment variables -> one immutable configuration struct. */
#include "arbiter/config.h"
#include "arbiter/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_uint(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool env_uint(const char *name, long lo, long hi, long *out,
		     char *msg, size_t msglen)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return true;
	if (!parse_uint(v, lo, hi, out)) {
		snprintf(msg, msglen, "%s: expected an integer in [%ld, %ld], got '%s'",
			 name, lo, hi, v);
		return false;
	}
	return true;
}

/* "rate[:burst]" with rate in requests per second (0: unlimited); the
 * burst defaults to two seconds' worth. */
static bool parse_rate(const char *s, ar_rate *out)
{
	char *end;
	double rate, burst;

	errno = 0;
	rate = strtod(s, &end);
	if (errno || end == s || !(rate >= 0 && rate <= 1e7))
		return false;
	burst = rate * 2 < 1 ? 1 : rate * 2;
	if (*end == ':') {
		const char *b = end + 1;
		burst = strtod(b, &end);
		if (errno || end == b || !(burst >= 1 && burst <= 1e8))
			return false;
	}
	if (*end)
		return false;
	out->rate = rate;
	out->burst = burst;
	return true;
}

/* ARBITER_RATE_LIMIT_KEY: comma-separated "[role=]rate[:burst]"; an item
 * without a role sets every role, so "5000,seller=100" works. */
static bool parse_key_rates(const char *v, ar_config *cfg, char *msg, size_t msglen)
{
	char buf[512], *save = NULL;

	if (strlen(v) >= sizeof(buf)) {
		snprintf(msg, msglen, "ARBITER_RATE_LIMIT_KEY: longer than %zu bytes", sizeof(buf) - 1);
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		ar_rate r;
		int role = -1;

		if (eq) {
			*eq = '\0';
			for (int i = 0; i < FSM_ROLE_SYSTEM; i++)
				if (strcmp(item, fsm_role_name((fsm_role)i)) == 0)
					role = i;
			if (role < 0) {
				snprintf(msg, msglen, "ARBITER_RATE_LIMIT_KEY: unknown role '%s'", item);
				return false;
			}
		}
		if (!parse_rate(eq ? eq + 1 : item, &r)) {
			snprintf(msg, msglen, "ARBITER_RATE_LIMIT_KEY: expected [role=]rate[:burst] "
				 "(requests per second), got '%s'", eq ? eq + 1 : item);
			return false;
		}
		for (int i = 0; i < FSM_ROLE__COUNT; i++)
			if (role < 0 || i == role)
				cfg->rate_key[i] = r;
	}
	return true;
}

/* The CPUs this process may run on (a container's, not the host's). */
static long usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	return sysconf(_SC_NPROCESSORS_ONLN);
}

static bool env_bool(const char *name, bool *out, char *msg, size_t msglen)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return true;
	if (strcmp(v, "1") && strcmp(v, "0") && strcmp(v, "true") && strcmp(v, "false")) {
		snprintf(msg, msglen, "%s: expected true or false, got '%s'", name, v);
		return false;
	}
	*out = *v == '1' || *v == 't';
	return true;
}

/* "on"/"off", a sampling rate for health checks, and a comma-separated list
 * of proxy addresses (exact IPv4 or IPv6 addresses, no ranges). */
static bool load_access_log(ar_access_log_config *a, char *msg, size_t msglen)
{
	const char *v = getenv("ARBITER_ACCESS_LOG");
	long n = 1;
	char buf[1024], *save = NULL;

	a->on = true;
	if (v && *v) {
		if (strcmp(v, "on") && strcmp(v, "off")) {
			snprintf(msg, msglen, "ARBITER_ACCESS_LOG: expected on or off, got '%s'", v);
			return false;
		}
		a->on = strcmp(v, "on") == 0;
	}
	if (!env_uint("ARBITER_ACCESS_LOG_HEALTH_EVERY", 0, 1000000, &n, msg, msglen))
		return false;
	a->health_every = (unsigned)n;
	v = getenv("ARBITER_TRUSTED_PROXIES");
	if (!v || !*v)
		return true;
	if (strlen(v) >= sizeof(buf)) {
		snprintf(msg, msglen, "ARBITER_TRUSTED_PROXIES: longer than %zu bytes", sizeof(buf) - 1);
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		size_t i = a->n_proxies;
		if (i >= AR_MAX_PROXIES) {
			snprintf(msg, msglen, "ARBITER_TRUSTED_PROXIES: at most %d addresses", AR_MAX_PROXIES);
			return false;
		}
		if (inet_pton(AF_INET, t, a->proxy[i]) == 1) {
			a->proxy_len[i] = 4;
		} else if (inet_pton(AF_INET6, t, a->proxy[i]) == 1) {
			a->proxy_len[i] = 16;
		} else {
			snprintf(msg, msglen, "ARBITER_TRUSTED_PROXIES: '%s' is not an IPv4 or IPv6 address", t);
			return false;
		}
		a->n_proxies++;
	}
	return true;
}

bool config_load(ar_config *cfg, char *msg, size_t msglen)
{
	const char *v;
	long n;
	long cores = usable_cpus();

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = 8080;
	snprintf(cfg->policy_path, sizeof(cfg->policy_path), "deploy/policy/default.json");
	cfg->log_level = LOG_INFO;
	/* A request mostly waits for a commit's WAL flush, not for a CPU; the
	 * server flushes concurrent commits together, so it needs concurrent
	 * committers: 8 per core (pgbench peaks at 16 clients on 2 cores),
	 * capped at what one PostgreSQL serves per replica. */
	cfg->db_pool = (int)(cores > 0 ? 8 * cores : 8);
	if (cfg->db_pool > 32)
		cfg->db_pool = 32;
	cfg->max_body = 64 * 1024;
	cfg->max_connections = 1024;
	cfg->max_per_ip = 256;
	cfg->request_timeout_s = 30;
	cfg->header_timeout_s = 10;
	cfg->body_timeout_s = 30;
	/* Per key: platform services (frontends, payment, the desk's tools)
	 * run thousands a second through one key (make bench: ~7,000/s of
	 * reads on 2 cores); a seller key is one shop's. Per address: only
	 * requests without a valid key (probing, the page, the contract). */
	for (int i = 0; i < FSM_ROLE__COUNT; i++)
		cfg->rate_key[i] = (ar_rate){ 20000, 40000 };
	cfg->rate_key[FSM_ROLE_SELLER] = (ar_rate){ 200, 400 };
	cfg->rate_address = (ar_rate){ 200, 400 };
	cfg->metrics_open = true;
	cfg->policy_follow = true;
	cfg->scheduler = true;
	cfg->db_prepared = true;
	cfg->read_after_write_ms = 5000;
	cfg->backtest_share = CONFIG_BACKTEST_SHARE;

	v = getenv("ARBITER_LISTEN");
	if (v && *v) {
		char why[256];
		struct sockaddr_storage sa;
		bool v6;
		if (!listen_parse(v, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port,
				  why, sizeof(why)) ||
		    !listen_sockaddr(cfg->listen_host, cfg->listen_port, &sa, &v6, why, sizeof(why))) {
			snprintf(msg, msglen, "ARBITER_LISTEN: %s", why);
			return false;
		}
	}
	v = getenv("ARBITER_DATABASE_URL");
	if (v && *v) {
		if (strlen(v) >= sizeof(cfg->database_url)) {
			snprintf(msg, msglen, "ARBITER_DATABASE_URL: longer than %zu bytes",
				 sizeof(cfg->database_url) - 1);
			return false;
		}
		snprintf(cfg->database_url, sizeof(cfg->database_url), "%s", v);
	}
	v = getenv("ARBITER_READ_DATABASE_URL");
	if (v && *v) {
		if (strlen(v) >= sizeof(cfg->read_database_url)) {
			snprintf(msg, msglen, "ARBITER_READ_DATABASE_URL: longer than %zu bytes",
				 sizeof(cfg->read_database_url) - 1);
			return false;
		}
		snprintf(cfg->read_database_url, sizeof(cfg->read_database_url), "%s", v);
	}
	v = getenv("ARBITER_POLICY");
	if (v && *v) {
		if (strlen(v) >= sizeof(cfg->policy_path)) {
			snprintf(msg, msglen, "ARBITER_POLICY: path too long");
			return false;
		}
		snprintf(cfg->policy_path, sizeof(cfg->policy_path), "%s", v);
	}
	v = getenv("ARBITER_LOG_LEVEL");
	if (v && *v) {
		static const char *const names[] = { "debug", "info", "warn", "error" };
		bool ok = false;
		for (int i = 0; i < 4; i++) {
			if (strcmp(v, names[i]) == 0) {
				cfg->log_level = (ar_log_level)i;
				ok = true;
			}
		}
		if (!ok) {
			snprintf(msg, msglen, "ARBITER_LOG_LEVEL: expected debug, info, warn or error, got '%s'", v);
			return false;
		}
	}
	v = getenv("ARBITER_DEFAULT_LANGUAGE");
	if (v && *v && !i18n_lang_parse(v, &cfg->default_lang)) {
		snprintf(msg, msglen, "ARBITER_DEFAULT_LANGUAGE: expected en or zh-CN, got '%.64s'", v);
		return false;
	}
	n = cfg->db_pool;
	if (!env_uint("ARBITER_DB_POOL", 1, 256, &n, msg, msglen))
		return false;
	cfg->db_pool = (int)n;
	n = (long)cfg->read_after_write_ms;
	if (!env_uint("ARBITER_READ_AFTER_WRITE_MS", 0, 3600000, &n, msg, msglen))
		return false;
	cfg->read_after_write_ms = (unsigned)n;
	n = cfg->backtest_share;
	if (!env_uint("ARBITER_BACKTEST_SHARE", CONFIG_BACKTEST_SHARE_MIN, 100, &n, msg, msglen))
		return false;
	cfg->backtest_share = (int)n;
	n = (long)cfg->max_connections;
	if (!env_uint("ARBITER_MAX_CONNECTIONS", 1, 100000, &n, msg, msglen))
		return false;
	cfg->max_connections = (unsigned)n;
	n = (long)cfg->max_per_ip;
	if (!env_uint("ARBITER_MAX_CONNECTIONS_PER_IP", 1, 100000, &n, msg, msglen))
		return false;
	cfg->max_per_ip = (unsigned)n;
	n = (long)cfg->request_timeout_s;
	if (!env_uint("ARBITER_REQUEST_TIMEOUT", 1, 3600, &n, msg, msglen))
		return false;
	cfg->request_timeout_s = (unsigned)n;
	n = (long)cfg->header_timeout_s;
	if (!env_uint("ARBITER_HEADER_TIMEOUT", 1, 3600, &n, msg, msglen))
		return false;
	cfg->header_timeout_s = (unsigned)n;
	n = (long)cfg->body_timeout_s;
	if (!env_uint("ARBITER_BODY_TIMEOUT", 1, 3600, &n, msg, msglen))
		return false;
	cfg->body_timeout_s = (unsigned)n;
	v = getenv("ARBITER_RATE_LIMIT_KEY");
	if (v && *v && !parse_key_rates(v, cfg, msg, msglen))
		return false;
	v = getenv("ARBITER_RATE_LIMIT_ADDRESS");
	if (v && *v && !parse_rate(v, &cfg->rate_address)) {
		snprintf(msg, msglen, "ARBITER_RATE_LIMIT_ADDRESS: expected rate[:burst] "
			 "(requests per second), got '%s'", v);
		return false;
	}
	if (!env_bool("ARBITER_EVIDENCE_HTTP", &cfg->evidence_http, msg, msglen))
		return false;
	if (!env_bool("ARBITER_METRICS_OPEN", &cfg->metrics_open, msg, msglen) ||
	    !env_bool("ARBITER_POLICY_FOLLOW", &cfg->policy_follow, msg, msglen) ||
	    !env_bool("ARBITER_SCHEDULER", &cfg->scheduler, msg, msglen) ||
	    !env_bool("ARBITER_DB_PREPARED", &cfg->db_prepared, msg, msglen))
		return false;
	return load_access_log(&cfg->access_log, msg, msglen);
}
