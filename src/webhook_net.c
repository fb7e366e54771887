/* Push webhooks' settings, and subscription URLs checked against SSRF (parsed by libcurl, resolved, every address judged). */
#include "arbiter/webhook_net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "arbiter/errmsg.h"
#include "arbiter/webhook.h"

#define URL_MAX 2048

static wh_config cfg = {
	.retry_scale = 1.0, .rotation_overlap_s = 86400, .disable_after_s = 5 * 86400, .lease_s = 30,
	.concurrency = 32, .per_subscription = 8, .worker = true,
};

static bool curl_ready;

void wh_config_free(void)
{
	if (curl_ready)
		curl_global_cleanup();
	curl_ready = false;
}

const wh_config *wh_config_get(void)
{
	return &cfg;
}

static bool env_long(const char *name, long lo, long hi, long *out, char *msg, size_t msglen)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return true;
	n = strtol(v, &end, 10);
	if (*end || n < lo || n > hi) {
		snprintf(msg, msglen, "%s: must be an integer from %ld to %ld", name, lo, hi);
		return false;
	}
	*out = n;
	return true;
}

bool wh_config_load(char *msg, size_t msglen)
{
	const char *v;
	long overlap = (long)cfg.rotation_overlap_s, lease = cfg.lease_s, conc = cfg.concurrency,
	     per = cfg.per_subscription, disable = (long)cfg.disable_after_s;

	v = getenv("ARBITER_WEBHOOK_ALLOW_HOSTS");
	if (v && strlen(v) >= sizeof(cfg.allow_hosts)) {
		snprintf(msg, msglen, "ARBITER_WEBHOOK_ALLOW_HOSTS: longer than %zu bytes",
			 sizeof(cfg.allow_hosts) - 1);
		return false;
	}
	snprintf(cfg.allow_hosts, sizeof(cfg.allow_hosts), "%s", v ? v : "");
	v = getenv("ARBITER_WEBHOOK_RETRY_SCALE");
	if (v && *v) {
		char *end;
		double d = strtod(v, &end);
		if (*end || !(d > 0 && d <= 1000)) {
			snprintf(msg, msglen, "ARBITER_WEBHOOK_RETRY_SCALE: must be a number above 0"
				 " and at most 1000");
			return false;
		}
		cfg.retry_scale = d;
	}
	/* a lease shorter than a transfer's 10 s limit would hand a delivery
	 * still in flight to another worker */
	if (!env_long("ARBITER_WEBHOOK_ROTATION_OVERLAP", 0, 30L * 86400, &overlap, msg, msglen) ||
	    !env_long("ARBITER_WEBHOOK_DISABLE_AFTER", 1, 365L * 86400, &disable, msg, msglen) ||
	    !env_long("ARBITER_WEBHOOK_LEASE", 15, 3600, &lease, msg, msglen) ||
	    !env_long("ARBITER_WEBHOOK_CONCURRENCY", 1, 1024, &conc, msg, msglen) ||
	    !env_long("ARBITER_WEBHOOK_PER_SUBSCRIPTION", 1, 1024, &per, msg, msglen))
		return false;
	cfg.rotation_overlap_s = overlap;
	cfg.disable_after_s = disable;
	cfg.lease_s = (int)lease;
	cfg.concurrency = (int)conc;
	cfg.per_subscription = (int)per;
	v = getenv("ARBITER_WEBHOOK_WORKER");
	if (v && *v) {
		if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
			cfg.worker = true;
		else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
			cfg.worker = false;
		else {
			snprintf(msg, msglen, "ARBITER_WEBHOOK_WORKER: must be true or false");
			return false;
		}
	}
	if (!curl_ready && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(msg, msglen, "libcurl could not be initialised");
		return false;
	}
	curl_ready = true;
	return true;
}

bool wh_connect_allowed(const char *host, const struct sockaddr *sa, const char **why)
{
	char addr[INET6_ADDRSTRLEN] = "";
	const char *refusal = wh_addr_refusal(sa);

	*why = NULL;
	if (!refusal || wh_host_listed(cfg.allow_hosts, host))
		return true;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
			  sizeof(addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr,
			  sizeof(addr));
	if (addr[0] && wh_host_listed(cfg.allow_hosts, addr))
		return true;
	*why = refusal;
	return false;
}

/* key: a field.* catalogue key with the one placeholder {value} */
static void url_err(ar_err *err, const char *key, const char *value)
{
	ar_err_setk(err, 422, "invalid-webhook-url", "detail.webhook_url", NULL);
	ar_err_fieldk(err, "/url", key, "value", value, NULL);
}

bool wh_url_check(const char *url, ar_err *err)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
	char bare[256];
	struct addrinfo hints, *res = NULL;
	size_t hl;
	bool ok = false;
	int rc;

	if (strlen(url) > URL_MAX) {
		url_err(err, "field.webhook_url_long", "2048");
		return false;
	}
	u = curl_url();
	if (!u) {
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		url_err(err, "field.webhook_url_absolute", "https://host/path");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
		url_err(err, "field.webhook_url_credentials", "user:password@");
		goto fail;
	}
	hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(bare, sizeof(bare), "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(bare, sizeof(bare), "%s", host);
	if (strcasecmp(scheme, "https") != 0 &&
	    !(strcasecmp(scheme, "http") == 0 && wh_host_listed(cfg.allow_hosts, bare))) {
		url_err(err, "field.webhook_url_scheme", scheme);
		goto fail;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(bare, NULL, &hints, &res);
	if (rc != 0 || !res) {
		url_err(err, "field.webhook_url_resolve", bare);
		goto fail;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		const char *why;
		if (!wh_connect_allowed(bare, a->ai_addr, &why)) {
			ar_err_setk(err, 422, "invalid-webhook-url", "detail.webhook_url", NULL);
			ar_err_fieldk(err, "/url", "field.webhook_url_address", "host", bare,
				      "kind", why, NULL);
			goto fail;
		}
	}
	ok = true;
fail:
	if (res)
		freeaddrinfo(res);
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(u);
	return ok;
}
