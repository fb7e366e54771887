/* Environment variables -> one immutable configuration struct. */
#include "arbiter/config.h"

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

static bool parse_listen(const char *s, ar_config *cfg)
{
	const char *colon = strrchr(s, ':');
	long port;
	size_t hl;

	if (!colon || colon == s)
		return false;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(cfg->listen_host))
		return false;
	if (!parse_uint(colon + 1, 0, 65535, &port))
		return false;
	memcpy(cfg->listen_host, s, hl);
	cfg->listen_host[hl] = '\0';
	cfg->listen_port = (unsigned)port;
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
	cfg->metrics_open = true;
	cfg->policy_follow = true;
	cfg->scheduler = true;

	v = getenv("ARBITER_LISTEN");
	if (v && *v && !parse_listen(v, cfg)) {
		snprintf(msg, msglen, "ARBITER_LISTEN: expected host:port, got '%s'", v);
		return false;
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
	n = cfg->db_pool;
	if (!env_uint("ARBITER_DB_POOL", 1, 256, &n, msg, msglen))
		return false;
	cfg->db_pool = (int)n;
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
	if (!env_bool("ARBITER_METRICS_OPEN", &cfg->metrics_open, msg, msglen) ||
	    !env_bool("ARBITER_POLICY_FOLLOW", &cfg->policy_follow, msg, msglen) ||
	    !env_bool("ARBITER_SCHEDULER", &cfg->scheduler, msg, msglen))
		return false;
	return true;
}
