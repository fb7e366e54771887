/* The access log line: who called what, how it ended, in typed JSON fields. */
#include "arbiter/accesslog.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "arbiter/log.h"

#define ADDR_TEXT 48
#define MAX_HOPS 32

static atomic_uint health_seen;

static bool trusted(const ar_access_log_config *cfg, const unsigned char *a, size_t len)
{
	for (size_t i = 0; i < cfg->n_proxies; i++)
		if (cfg->proxy_len[i] == len && memcmp(cfg->proxy[i], a, len) == 0)
			return true;
	return false;
}

/* An address's bytes: 4 (IPv4) or 16 (IPv6); 0 if s is not one. */
static size_t parse_addr(const char *s, unsigned char out[16])
{
	if (inet_pton(AF_INET, s, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, out) == 1)
		return 16;
	return 0;
}

/* The peer's bytes, an IPv4-mapped IPv6 peer as IPv4. */
static size_t peer_addr(const struct sockaddr *sa, unsigned char out[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa && sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			memcpy(out, a + 12, 4);
			return 4;
		}
		memcpy(out, a, 16);
		return 16;
	}
	return 0;
}

void accesslog_client(const ar_access_log_config *cfg, const struct sockaddr *peer,
		      const char *forwarded_for, char *out, size_t outlen)
{
	unsigned char cur[16];
	size_t len = peer_addr(peer, cur);
	char hops[512], *tok[MAX_HOPS], *save = NULL;
	size_t n = 0;

	if (forwarded_for && len && trusted(cfg, cur, len) && strlen(forwarded_for) < sizeof(hops)) {
		snprintf(hops, sizeof(hops), "%s", forwarded_for);
		for (char *t = strtok_r(hops, ", \t", &save); t && n < MAX_HOPS;
		     t = strtok_r(NULL, ", \t", &save))
			tok[n++] = t;
	}
	/* Right to left: each hop was appended by the one after it, so a hop
	 * is believed only while the one that wrote it is a trusted proxy. */
	while (n > 0 && trusted(cfg, cur, len)) {
		unsigned char next[16];
		size_t nlen = parse_addr(tok[--n], next);
		if (!nlen)
			break;
		memcpy(cur, next, nlen);
		len = nlen;
	}
	if (!len || !inet_ntop(len == 4 ? AF_INET : AF_INET6, cur, out, (socklen_t)outlen))
		snprintf(out, outlen, "unknown");
}

/* The "type" of a problem+json reply, or NULL; copied into out. */
static const char *problem_type(const accesslog_entry *e, char *out, size_t outlen)
{
	json_t *doc, *t;
	const char *ret = NULL;

	if (e->status < 400 || !e->body || !e->content_type ||
	    !strstr(e->content_type, "problem+json"))
		return NULL;
	doc = json_loadb(e->body, e->body_len, 0, NULL);
	t = json_object_get(doc, "type");
	if (json_is_string(t)) {
		snprintf(out, outlen, "%s", json_string_value(t));
		ret = out;
	}
	json_decref(doc);
	return ret;
}

/* The key's shops: "*" for every shop, else comma-separated. */
static void scope_text(const ar_identity *id, char *out, size_t outlen)
{
	size_t pos = 0;

	out[0] = '\0';
	if (id->all_shops) {
		snprintf(out, outlen, "*");
		return;
	}
	for (size_t i = 0; i < id->n_shops && pos < outlen; i++)
		pos += (size_t)snprintf(out + pos, outlen - pos, "%s%s", i ? "," : "", id->shops[i]);
}

void accesslog_request(const ar_access_log_config *cfg, const accesslog_entry *e)
{
	ar_log_level lvl = e->status >= 500 ? LOG_ERROR : e->aborted ? LOG_WARN : LOG_INFO;
	bool keyed = e->ident && e->ident->key_id[0];
	char client[ADDR_TEXT], peer[ADDR_TEXT], ptype[128];
	char scope[AUTH_MAX_SHOPS * (AR_MAX_ID_LEN + 1) + 2];
	log_field f[20];
	size_t n = 0;

	/* Off and sampled apply to the routine lines: a failure is always told. */
	if (lvl == LOG_INFO) {
		if (!cfg->on || !log_enabled(LOG_INFO))
			return;
		if (e->health && (cfg->health_every == 0 ||
				  atomic_fetch_add(&health_seen, 1) % cfg->health_every != 0))
			return;
	}
	accesslog_client(cfg, e->peer, e->forwarded_for, client, sizeof(client));
	accesslog_client(&(ar_access_log_config){ 0 }, e->peer, NULL, peer, sizeof(peer));
	if (keyed)
		scope_text(e->ident, scope, sizeof(scope));
	f[n++] = LOG_STR("request_id", e->request_id);
	f[n++] = LOG_STR("method", e->method);
	f[n++] = LOG_STR("route", e->route);
	f[n++] = LOG_STR("path", e->path);
	f[n++] = LOG_INT("status", e->status);
	f[n++] = LOG_NUM("duration_ms", round(e->seconds * 1e6) / 1e3);
	f[n++] = LOG_INT("bytes_in", e->bytes_in);
	f[n++] = LOG_INT("bytes_out", e->bytes_out);
	f[n++] = LOG_STR("client", client);
	if (strcmp(client, peer) != 0)
		f[n++] = LOG_STR("peer", peer);
	f[n++] = LOG_BOOL("authenticated", keyed);
	if (keyed) {
		f[n++] = LOG_STR("key_id", e->ident->key_id);
		f[n++] = LOG_STR("role", fsm_role_name(e->ident->role));
		f[n++] = LOG_STR("shops", scope);
	}
	f[n++] = LOG_STR("problem", problem_type(e, ptype, sizeof(ptype)));
	f[n++] = LOG_STR("case_id", e->case_id && e->case_id[0] ? e->case_id : NULL);
	if (e->aborted)
		f[n++] = LOG_BOOL("aborted", true);
	log_fields(lvl, "access", f, n);
}
