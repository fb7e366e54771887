/* libmicrohttpd server: request state, body limits, routing, problem+json. */
#include "arbiter/http.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "arbiter/accesslog.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/listen.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/msgs.h"
#include "arbiter/ratelimit.h"
#include "arbiter/readroute.h"
#include "arbiter/routes.h"
#include "arbiter/sha256.h"

#define SWEEP_MS 200
#define RL_SLOTS 8192

/*
 * One TCP connection, from libmicrohttpd's NOTIFY_CONNECTION STARTED to
 * CLOSED (its socket context). libmicrohttpd's own timeout restarts on
 * every byte, so a client trickling a header line every few seconds would
 * hold a connection (a thread, here) for ever: the edge keeps an absolute
 * deadline per phase instead, and the sweeper shuts down the socket of a
 * connection past it (the connection's thread then sees EOF and closes).
 */
typedef enum {
	PH_HEADERS, /* accepted or request line seen: the headers are due */
	PH_BODY,    /* headers in: the body is due */
	PH_BUSY,    /* the request is with a handler or its reply is being sent */
	PH_IDLE     /* kept alive between requests */
} conn_phase;

typedef struct conn_ctx {
	struct conn_ctx *prev, *next; /* the server's list, oldest first */
	unsigned char addr[16];
	uint8_t addrlen;
	MHD_socket fd;
	conn_phase phase;
	int64_t since_us;             /* the phase's start (CLOCK_MONOTONIC) */
	bool doomed;                  /* shut down; no longer counted */
} conn_ctx;

struct http_server {
	struct MHD_Daemon *d;
	ar_app *app;
	atomic_int in_flight;
	/* connections */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	conn_ctx *head, *tail;
	unsigned live;                /* not doomed */
	bool stopping, sweeper_started;
	pthread_t sweeper;
	/* rate limits */
	rl_table *rl_keys, *rl_addrs;
};

struct ar_req {
	http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	route_match route;
	const ar_route *rt;      /* the table entry for path and method, or NULL */
	ar_identity ident;
	bool routed;         /* the path is one the table has */
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	bool late;           /* arrived after SIGTERM: refused, never started */
	bool started;        /* on_request has set the fields below up */
	bool bad_target;     /* a control byte (raw or %-escaped) in the request target */
	char request_id[40];
	ar_lang lang;        /* the reply's language (Accept-Language) */
	char case_id[AR_MAX_ID_LEN + 1];
	const char *idem_claim;  /* the Idempotency-Key this request runs under (idempotent()) */
	bool idem_applied;       /* ... whose first attempt's change committed */
	struct timespec start;
	/* response */
	bool replied;
	int status;
	char *resp;
	size_t resp_len;
	const char *content_type;
	size_t n_headers;
	char *hname[HTTP_MAX_HEADERS], *hvalue[HTTP_MAX_HEADERS];
};

/* ---- accessors ---- */

const char *req_header(ar_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_query(ar_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
	const char *const *allowed;
	ar_err *err;
	bool unknown;
} query_check;

static enum MHD_Result query_known_one(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	query_check *qc = cls;
	char ptr[96];
	size_t n = 0;

	(void)kind;
	(void)value;
	for (const char *const *a = qc->allowed; *a; a++)
		if (strcmp(*a, key) == 0)
			return MHD_YES;
	if (!qc->unknown)
		ar_err_setk(qc->err, 400, "unknown-parameter", "detail.unknown_parameter", NULL);
	qc->unknown = true;
	/* the name as sent, cut to fit: a pointer segment, ~ and / escaped */
	n = (size_t)snprintf(ptr, sizeof(ptr), "/query/");
	for (const char *k = key; *k && n + 3 < sizeof(ptr); k++) {
		if (*k == '~' || *k == '/') {
			ptr[n++] = '~';
			ptr[n++] = *k == '~' ? '0' : '1';
		} else {
			ptr[n++] = *k;
		}
	}
	ptr[n] = '\0';
	ar_err_fieldk(qc->err, ptr, "field.not_a_parameter", NULL);
	return MHD_YES;
}

bool req_query_known(ar_req *r, const char *const *allowed, ar_err *err)
{
	query_check qc = { allowed, err, false };

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_known_one, &qc);
	return !qc.unknown;
}

const char *req_body(ar_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : "";
}

const char *req_param(ar_req *r, size_t i)
{
	return i < r->route.n_params ? r->route.params[i] : "";
}

ar_app *req_app(ar_req *r)
{
	return r->srv->app;
}

const ar_identity *req_identity(ar_req *r)
{
	return &r->ident;
}

const char *req_idem_claim(ar_req *r)
{
	return r->idem_claim;
}

bool req_idem_applied(ar_req *r)
{
	return r->idem_applied;
}

store *req_read_db(ar_req *r)
{
	ar_app *app = r->srv->app;

	if (!app->read_db)
		return app->db;
	if (!readroute_replica_ok(app->reads, r->ident.key_id, db_mono_us() / 1000)) {
		metrics_db_read(METRICS_READ_PRIMARY);
		return app->db;
	}
	metrics_db_read(METRICS_READ_REPLICA);
	return app->read_db;
}

bool req_read_fallback(ar_req *r, store **db, ar_err *err)
{
	ar_app *app = r->srv->app;

	if (*db == app->db || err->status != 503)
		return false;
	log_kv(LOG_WARN, "replica read failed, reading from the primary", "request_id",
	       r->request_id, "detail", err->detail, NULL);
	metrics_db_read(METRICS_READ_FALLBACK);
	*db = app->db;
	ar_err_init(err);
	return true;
}

const char *req_id(ar_req *r)
{
	return r->request_id;
}

ar_lang req_lang(ar_req *r)
{
	return r->lang;
}

void req_set_case(ar_req *r, const char *case_id)
{
	snprintf(r->case_id, sizeof(r->case_id), "%s", case_id ? case_id : "");
}

void req_add_header(ar_req *r, const char *name, const char *value)
{
	if (r->n_headers >= HTTP_MAX_HEADERS)
		return;
	r->hname[r->n_headers] = strdup(name);
	r->hvalue[r->n_headers] = strdup(value);
	if (!r->hname[r->n_headers] || !r->hvalue[r->n_headers]) {
		free(r->hname[r->n_headers]);
		free(r->hvalue[r->n_headers]);
		return;
	}
	r->n_headers++;
}

void req_reply_text(ar_req *r, int status, const char *content_type, const char *text, size_t len)
{
	free(r->resp);
	r->resp = malloc(len ? len : 1);
	if (r->resp)
		memcpy(r->resp, text, len);
	r->resp_len = r->resp ? len : 0;
	r->status = status;
	r->content_type = content_type;
	r->replied = true;
}

static void reply_json_typed(ar_req *r, int status, json_t *body, const char *ctype)
{
	char *s = codec_dumps(body);

	json_decref(body);
	free(r->resp);
	r->resp = s;
	r->resp_len = s ? strlen(s) : 0;
	r->status = s ? status : 500;
	r->content_type = ctype;
	r->replied = true;
}

void req_reply_json(ar_req *r, int status, json_t *body)
{
	reply_json_typed(r, status, body, "application/json");
}

json_t *http_problem_json(const ar_err *err, const char *instance, ar_lang lang)
{
	char type[96], detail[AR_ERR_TEXT * 2], message[AR_ERR_TEXT];
	const char *title;
	json_t *p, *errors;

	snprintf(type, sizeof(type), "urn:arbiter:problem:%s", err->type[0] ? err->type : "error");
	msgs_problem(err, lang, &title, detail, sizeof(detail));
	p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", title,
		      "status", err->status, "detail", detail);
	if (!p)
		return NULL;
	if (instance)
		json_object_set_new(p, "instance", json_string(instance));
	errors = json_array();
	for (size_t i = 0; i < err->n_fields; i++) {
		msgs_field(&err->fields[i], lang, message, sizeof(message));
		json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer",
			err->fields[i].pointer, "message", message));
	}
	json_object_set_new(p, "errors", errors);
	return p;
}

void req_reply_problem(ar_req *r, const ar_err *err)
{
	json_t *p = http_problem_json(err, NULL, r->lang);

	if (err->status == 503)
		req_add_header(r, "Retry-After", "1");
	if (p)
		json_object_set_new(p, "request_id", json_string(r->request_id));
	reply_json_typed(r, err->status, p, "application/problem+json");
}

/* A problem by catalogue key; the variadic part as ar_err_setk's. */
static void problem(ar_req *r, int status, const char *type, const char *key, ...)
	__attribute__((sentinel));

static void problem(ar_req *r, int status, const char *type, const char *key, ...)
{
	ar_err e;
	va_list ap;

	ar_err_init(&e);
	va_start(ap, key);
	ar_err_vsetk(&e, status, type, key, ap);
	va_end(ap);
	req_reply_problem(r, &e);
}

/* ---- connections: absolute deadlines and budgets ---- */

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The client's address as bytes (4 for IPv4, 16 for IPv6); 0 if unknown. */
static uint8_t client_addr(struct MHD_Connection *conn, unsigned char out[16])
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (sa && sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		return 16;
	}
	return 0;
}

static conn_ctx *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void conn_phase_set(http_server *srv, struct MHD_Connection *conn, conn_phase ph)
{
	conn_ctx *c = conn_of(conn);

	if (!c)
		return;
	pthread_mutex_lock(&srv->lock);
	if (!(ph == PH_HEADERS && c->phase == PH_HEADERS)) {
		c->phase = ph;
		c->since_us = mono_us();
	}
	pthread_mutex_unlock(&srv->lock);
}

/* Caller holds srv->lock. The socket stays open (libmicrohttpd closes it
 * after CLOSED, which takes the lock): shutdown only wakes its thread. */
static void conn_doom(http_server *srv, conn_ctx *c, metrics_shed why)
{
	if (c->doomed)
		return;
	c->doomed = true;
	srv->live--;
	shutdown(c->fd, SHUT_RDWR);
	metrics_http_shed(why);
}

static bool conn_idle(const conn_ctx *c)
{
	return !c->doomed && (c->phase == PH_HEADERS || c->phase == PH_IDLE);
}

static bool same_addr(const conn_ctx *a, const conn_ctx *b)
{
	return a->addrlen == b->addrlen && memcmp(a->addr, b->addr, a->addrlen) == 0;
}

/* The newest idle connection of like's address other than the one just
 * accepted (fresh), or NULL. */
static conn_ctx *newest_idle_of(http_server *srv, const conn_ctx *like, const conn_ctx *fresh)
{
	for (conn_ctx *p = srv->tail; p; p = p->prev)
		if (p != fresh && conn_idle(p) && same_addr(p, like))
			return p;
	return NULL;
}

static unsigned live_of(http_server *srv, const conn_ctx *c)
{
	unsigned n = 0;

	for (conn_ctx *p = srv->head; p; p = p->next)
		n += !p->doomed && same_addr(p, c);
	return n;
}

/*
 * Over a budget, the edge gives up the newest idle connection (no request
 * in progress) of the address holding the most, rather than refusing the
 * new one: a health check or a new client gets in while one address's
 * pile of half-open connections shrinks. Only when no connection is idle
 * is the new one closed. Caller holds srv->lock.
 */
static void conn_enforce_budget(http_server *srv, conn_ctx *c)
{
	const ar_config *cfg = &srv->app->cfg;
	conn_ctx *victim = NULL, *heavy = NULL;
	unsigned most = 0;

	if (live_of(srv, c) > cfg->max_per_ip) {
		victim = newest_idle_of(srv, c, c);
		conn_doom(srv, victim ? victim : c, METRICS_SHED_ADDRESS_BUDGET);
		return;
	}
	if (srv->live <= cfg->max_connections)
		return;
	for (conn_ctx *p = srv->head; p; p = p->next) {
		unsigned n;
		if (!conn_idle(p) || p == c)
			continue;
		n = live_of(srv, p);
		if (n > most) {
			most = n;
			heavy = p;
		}
	}
	victim = heavy ? newest_idle_of(srv, heavy, c) : NULL;
	conn_doom(srv, victim ? victim : c, METRICS_SHED_GLOBAL_BUDGET);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	http_server *srv = cls;
	conn_ctx *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = calloc(1, sizeof(*c));
		if (!c || !fi) {
			/* untracked: libmicrohttpd's own limits still hold it */
			free(c);
			*socket_context = NULL;
			return;
		}
		c->fd = fi->connect_fd;
		c->addrlen = client_addr(conn, c->addr);
		c->phase = PH_HEADERS;
		c->since_us = mono_us();
		pthread_mutex_lock(&srv->lock);
		c->prev = srv->tail;
		if (srv->tail)
			srv->tail->next = c;
		else
			srv->head = c;
		srv->tail = c;
		srv->live++;
		conn_enforce_budget(srv, c);
		metrics_http_connections(srv->live);
		pthread_mutex_unlock(&srv->lock);
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	pthread_mutex_lock(&srv->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->tail = c->prev;
	if (!c->doomed)
		srv->live--;
	metrics_http_connections(srv->live);
	pthread_mutex_unlock(&srv->lock);
	free(c);
	*socket_context = NULL;
}

static bool cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	bool ok;

	if (pthread_condattr_init(&ca) != 0)
		return false;
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(cv, &ca) == 0;
	pthread_condattr_destroy(&ca);
	return ok;
}

/* Shuts down every connection past its phase's absolute deadline. */
static void *sweeper(void *arg)
{
	http_server *srv = arg;
	const ar_config *cfg = &srv->app->cfg;
	const int64_t hdr = (int64_t)cfg->header_timeout_s * 1000000;
	const int64_t body = (int64_t)cfg->body_timeout_s * 1000000;
	const int64_t idle = (int64_t)cfg->request_timeout_s * 1000000;

	pthread_mutex_lock(&srv->lock);
	while (!srv->stopping) {
		struct timespec until;
		int64_t now = mono_us();

		for (conn_ctx *c = srv->head; c; c = c->next) {
			int64_t age = now - c->since_us;
			if (c->doomed)
				continue;
			if (c->phase == PH_HEADERS && age > hdr)
				conn_doom(srv, c, METRICS_SHED_HEADER_DEADLINE);
			else if (c->phase == PH_BODY && age > body)
				conn_doom(srv, c, METRICS_SHED_BODY_DEADLINE);
			else if (c->phase == PH_IDLE && age > idle)
				conn_doom(srv, c, METRICS_SHED_IDLE_DEADLINE);
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += SWEEP_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->wake, &srv->lock, &until);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* ---- rate limits ---- */

/*
 * Takes one request from a bucket; false (and a 429 answered, with
 * Retry-After and the RateLimit headers of draft-ietf-httpapi-ratelimit-
 * headers) when it is empty. Requests allowed by a key's bucket carry the
 * same two headers, so clients can pace themselves.
 */
static bool rate_ok(ar_req *r, metrics_throttle scope, const void *key, size_t keylen,
		    ar_rate lim)
{
	const char *name = scope == METRICS_THROTTLE_KEY ? "key" : "address";
	rl_table *t = scope == METRICS_THROTTLE_KEY ? r->srv->rl_keys : r->srv->rl_addrs;
	char pol[96], state[96], detail[160], rate[32], burst[32];
	rl_result res;
	long retry;

	if (lim.rate <= 0)
		return true;
	rl_take(t, key, keylen, lim, mono_us(), &res);
	snprintf(pol, sizeof(pol), "\"%s\";q=%.0f;w=1", name, lim.rate);
	if (res.allowed) {
		if (scope == METRICS_THROTTLE_KEY) {
			snprintf(state, sizeof(state), "\"%s\";r=%.0f;t=%.0f", name, res.remaining,
				 ceil(res.reset_s));
			req_add_header(r, "RateLimit-Policy", pol);
			req_add_header(r, "RateLimit", state);
		}
		return true;
	}
	retry = (long)ceil(res.retry_after_s);
	if (retry < 1)
		retry = 1;
	snprintf(state, sizeof(state), "\"%s\";r=0;t=%ld", name, retry);
	req_add_header(r, "RateLimit-Policy", pol);
	req_add_header(r, "RateLimit", state);
	snprintf(detail, sizeof(detail), "%ld", retry);
	req_add_header(r, "Retry-After", detail);
	metrics_http_throttled(scope);
	snprintf(rate, sizeof(rate), "%.0f", lim.rate);
	snprintf(burst, sizeof(burst), "%.0f", lim.burst);
	problem(r, 429, "rate-limited", scope == METRICS_THROTTLE_KEY
		? "detail.rate_limited_key" : "detail.rate_limited_address",
		"rate", rate, "burst", burst, "retry", AR_INT(retry), NULL);
	return false;
}

static bool rate_ok_address(ar_req *r)
{
	unsigned char a[16];
	uint8_t n = client_addr(r->conn, a);

	return rate_ok(r, METRICS_THROTTLE_ADDRESS, a, n, r->srv->app->cfg.rate_address);
}

/* ---- the request target ---- */

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A control byte (C0 or DEL), raw or %-escaped, anywhere in the target:
 * libmicrohttpd unescapes the path in place, so "/v1/cases/%00x" would
 * reach the router as "/v1/cases/" (the list). */
static bool target_has_control(const char *uri)
{
	for (const unsigned char *p = (const unsigned char *)uri; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return true;
		if (*p == '%' && hexdig((char)p[1]) >= 0 && hexdig((char)p[2]) >= 0) {
			int v = hexdig((char)p[1]) << 4 | hexdig((char)p[2]);
			if (v < 0x20 || v == 0x7f)
				return true;
		}
	}
	return false;
}

static ar_req *req_alloc(http_server *srv)
{
	ar_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	atomic_fetch_add(&srv->in_flight, 1);
	r->srv = srv;
	return r;
}

/* libmicrohttpd calls this with the raw target once the request line is
 * in, before unescaping it: the request's state starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	http_server *srv = cls;
	ar_req *r = req_alloc(srv);

	conn_phase_set(srv, conn, PH_HEADERS);
	if (r)
		r->bad_target = target_has_control(uri);
	return r;
}

/* ---- request lifecycle ---- */

static void make_request_id(ar_req *r)
{
	const char *given = req_header(r, "X-Request-Id");
	unsigned char rnd[12];

	if (given) {
		size_t n = strlen(given);
		bool ok = n > 0 && n < sizeof(r->request_id);
		for (size_t i = 0; ok && i < n; i++)
			ok = given[i] > 0x20 && given[i] < 0x7f && given[i] != '"' && given[i] != '\\';
		if (ok) {
			memcpy(r->request_id, given, n + 1);
			return;
		}
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(r->request_id + 2 * i, 3, "%02x", rnd[i]);
}

static bool json_content_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct || strncasecmp(ct, "application/json", n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static const char *resp_header(ar_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->hname[i], name) == 0)
			return r->hvalue[i];
	}
	return NULL;
}

bool req_idem_key(ar_req *r, const char **keyp, char fp[2 * SHA256_LEN + 1])
{
	const char *key = req_header(r, "Idempotency-Key");
	size_t n, ulen = strlen(r->url);
	uint8_t digest[SHA256_LEN];
	char *buf;
	bool ok;

	*keyp = key;
	fp[0] = '\0';
	if (!key)
		return true;
	n = strlen(key);
	ok = n > 0 && n <= 255;
	for (size_t i = 0; ok && i < n; i++)
		ok = key[i] >= 0x21 && key[i] <= 0x7e;
	if (!ok) {
		problem(r, 422, "validation", "detail.idempotency_key_syntax", NULL);
		return false;
	}
	buf = malloc(ulen + r->body_len + 8);
	if (!buf) {
		problem(r, 503, "overloaded", "detail.try_again", NULL);
		return false;
	}
	n = (size_t)sprintf(buf, "%s %s\n", r->method, r->url);
	if (r->body_len)
		memcpy(buf + n, r->body, r->body_len);
	sha256(buf, n + r->body_len, digest);
	free(buf);
	sha256_hex(digest, fp);
	return true;
}

int req_idem_lease(ar_req *r)
{
	return (int)r->srv->app->cfg.request_timeout_s * 2;
}

bool req_idem_answer(ar_req *r, idem_state st, idem_replay *rep)
{
	switch (st) {
	case IDEM_REPLAY:
		req_reply_text(r, rep->status, rep->status >= 400 ? "application/problem+json"
								 : "application/json",
			       rep->body, strlen(rep->body));
		if (rep->etag[0])
			req_add_header(r, "ETag", rep->etag);
		if (rep->location[0])
			req_add_header(r, "Location", rep->location);
		req_add_header(r, "Idempotent-Replayed", "true");
		free(rep->body);
		rep->body = NULL;
		return true;
	case IDEM_IN_FLIGHT:
		problem(r, 409, "idempotency-in-flight", "detail.idempotency_in_flight", NULL);
		return true;
	case IDEM_MISMATCH:
		problem(r, 422, "idempotency-mismatch", "detail.idempotency_mismatch", NULL);
		return true;
	case IDEM_APPLIED:
		/* only an action's record says so, and idempotent() answers it */
		problem(r, 409, "idempotency-in-flight", "detail.idempotency_in_flight", NULL);
		return true;
	case IDEM_NEW:
		break;
	}
	return false;
}

/*
 * Runs an acting POST at most once per (API key, Idempotency-Key): a retry
 * with the same body gets the stored answer again, another body 422, a
 * retry while the first is running 409. (Creates keep their record in the
 * statement that opens the case: api_cases_create.)
 */
static void idempotent(ar_req *r)
{
	store *db = r->srv->app->db;
	const char *key;
	char fp[2 * SHA256_LEN + 1];
	idem_state st;
	idem_replay rep;
	ar_err err;

	if (!req_idem_key(r, &key, fp))
		return;
	ar_err_init(&err);
	if (!store_idem_begin(db, r->ident.key_id, key, fp, req_idem_lease(r), &st, &rep, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	if (st == IDEM_APPLIED) {
		/* the first attempt's change committed and its reply was lost:
		 * the handler answers with the case as it is now (only a change
		 * that carried the key marks its record so), stored as the
		 * key's reply */
		log_kv(LOG_INFO, "idempotent retry of a committed change", "request_id",
		       r->request_id, "case_id", rep.applied_case, NULL);
		r->idem_applied = true;
	} else if (req_idem_answer(r, st, &rep)) {
		return;
	}
	r->idem_claim = key;
	r->rt->handler(r);
	if (r->status >= 500 || !r->resp) {
		store_idem_abandon(db, r->ident.key_id, key);
		return;
	}
	ar_err_init(&err);
	{
		char *body = strndup(r->resp, r->resp_len);
		const char *etag = resp_header(r, "ETag"), *loc = resp_header(r, "Location");
		if (!body || !store_idem_finish(db, r->ident.key_id, key, r->status, body,
						etag ? etag : "", loc ? loc : "", &err)) {
			/* The change is committed; the client has its answer. A
			 * retry takes the claim over after the lease. */
			log_kv(LOG_WARN, "idempotency reply not stored", "request_id", r->request_id, NULL);
		}
		free(body);
	}
}

static void dispatch(ar_req *r)
{
	route_method m = router_method(r->method);
	const ar_route *path = &ar_routes[r->route.path];
	const ar_route *rt = r->rt;

	if (path->auth == ROUTE_KEYED ||
	    (path->auth == ROUTE_METRICS_KEYED && !r->srv->app->cfg.metrics_open)) {
		ar_err err;
		ar_err_init(&err);
		if (!auth_verify(r->srv->app->db, req_header(r, "Authorization"), &r->ident, &err)) {
			/* guessing keys costs the address's budget */
			if (err.status == 401 && !rate_ok_address(r))
				return;
			if (err.status == 401)
				req_add_header(r, "WWW-Authenticate", "Bearer realm=\"arbiter\"");
			req_reply_problem(r, &err);
			return;
		}
		if (!(path->flags & ROUTE_UNLIMITED) &&
		    !rate_ok(r, METRICS_THROTTLE_KEY, r->ident.key_id, strlen(r->ident.key_id),
			     r->srv->app->cfg.rate_key[r->ident.role]))
			return;
		if (rt && !(rt->roles & ROUTE_ROLE(r->ident.role))) {
			problem(r, 403, "forbidden", "detail.role_may_not", "role",
				fsm_role_name(r->ident.role), "method", r->method, "path", rt->tmpl,
				NULL);
			return;
		}
	} else if (!(path->flags & ROUTE_UNLIMITED)) {
		/* the page and the contract: no key, so the address pays */
		if (!rate_ok_address(r))
			return;
	}
	if (!rt) {
		char allow[48];
		router_allow_header(r->route.allowed, allow, sizeof(allow));
		req_add_header(r, "Allow", allow);
		problem(r, 405, "method-not-allowed", "detail.method_not_allowed", "method",
			r->method, "path", path->tmpl, NULL);
		return;
	}
	/* a POST that takes no body (a webhook ping) needs no Content-Type */
	if ((m == M_POST || m == M_PUT || m == M_PATCH) && rt->body_limit != 0 &&
	    !json_content_type(req_header(r, "Content-Type"))) {
		problem(r, 415, "unsupported-media-type", "detail.json_body", NULL);
		return;
	}
	if ((rt->flags & ROUTE_IDEMPOTENT) && req_header(r, "Idempotency-Key"))
		idempotent(r);
	else
		rt->handler(r);
	/* whatever the answer: a refused action may still have written (an
	 * expiry the clock called for) */
	if (r->srv->app->reads && m != M_GET && m != M_HEAD && r->ident.key_id[0])
		readroute_wrote(r->srv->app->reads, r->ident.key_id, db_mono_us() / 1000);
}

/* The most body the request's route takes. */
static size_t body_limit(const ar_req *r)
{
	size_t max = r->srv->app->cfg.max_body;

	if (!r->rt)
		return max;   /* answered 404 or 405 whatever it sends */
	return r->rt->body_limit < max ? r->rt->body_limit : max;
}

static enum MHD_Result send_reply(ar_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (r->content_type)
		MHD_add_response_header(resp, "Content-Type", r->content_type);
	MHD_add_response_header(resp, "X-Request-Id", r->request_id);
	/* JSON replies carry texts (problems, reasons, summaries) in the
	 * negotiated language; caches must key them by Accept-Language */
	if (r->content_type && strstr(r->content_type, "json")) {
		MHD_add_response_header(resp, "Content-Language", i18n_lang_tag(r->lang));
		MHD_add_response_header(resp, "Vary", "Accept-Language");
	}
	/* Every reply is what its Content-Type says, never sniffed into HTML. */
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	/* Stopping: a kept-alive client must not send its next request here. */
	if (atomic_load(&r->srv->app->draining))
		MHD_add_response_header(resp, "Connection", "close");
	for (size_t i = 0; i < r->n_headers; i++)
		MHD_add_response_header(resp, r->hname[i], r->hvalue[i]);
	ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **req_cls)
{
	http_server *srv = cls;
	ar_req *r = *req_cls;

	if (!r || !r->started) {
		const char *cl;
		if (!r)
			r = req_alloc(srv);
		if (!r)
			return MHD_NO;
		r->started = true;
		r->conn = conn;
		r->method = method;
		r->url = url;
		r->lang = i18n_negotiate(req_header(r, "Accept-Language"),
					 srv->app->cfg.default_lang);
		r->late = atomic_load(&srv->app->draining);
		clock_gettime(CLOCK_MONOTONIC, &r->start);
		make_request_id(r);
		r->routed = router_match(ar_routes, ar_n_routes, url, router_method(method),
					 &r->route);
		r->rt = r->route.entry >= 0 ? &ar_routes[r->route.entry] : NULL;
		cl = req_header(r, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > body_limit(r))
			r->too_large = true;
		*req_cls = r;
		conn_phase_set(srv, conn, PH_BODY);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		conn_ctx *c = conn_of(conn);
		*upload_data_size = 0;
		/* a body trickled past its deadline: close now, not at the next sweep */
		if (c) {
			bool late;
			pthread_mutex_lock(&srv->lock);
			late = mono_us() - c->since_us > (int64_t)srv->app->cfg.body_timeout_s * 1000000;
			if (late)
				conn_doom(srv, c, METRICS_SHED_BODY_DEADLINE);
			pthread_mutex_unlock(&srv->lock);
			if (late)
				return MHD_NO;
		}
		if (r->too_large || r->body_len + n > body_limit(r)) {
			r->too_large = true;
			return MHD_YES;
		}
		if (r->body_len + n + 1 > r->body_cap) {
			size_t cap = r->body_cap ? r->body_cap : 1024;
			char *nb;
			while (cap < r->body_len + n + 1)
				cap *= 2;
			nb = realloc(r->body, cap);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			r->body_cap = cap;
		}
		memcpy(r->body + r->body_len, upload_data, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
		return MHD_YES;
	}
	conn_phase_set(srv, conn, PH_BUSY);
	if (r->bad_target) {
		ar_err e;
		ar_err_init(&e);
		ar_err_setk(&e, 400, "bad-request-target", "detail.bad_target", NULL);
		ar_err_fieldk(&e, "/path", "field.path_control", NULL);
		req_reply_problem(r, &e);
	} else if (r->too_large) {
		if (body_limit(r))
			problem(r, 413, "payload-too-large", "detail.body_too_large", "max",
				AR_INT(body_limit(r)), NULL);
		else
			problem(r, 413, "payload-too-large", "detail.takes_no_body", "method",
				r->method, "path", r->rt->tmpl, NULL);
	} else if (!r->routed) {
		problem(r, 404, "not-found", "detail.no_route", NULL);
	} else if (r->late && !(ar_routes[r->route.path].flags & ROUTE_WHILE_DRAINING)) {
		/* Arrived after SIGTERM: not started, so not half done; another
		 * replica takes the retry. Requests already in flight finish. */
		problem(r, 503, "draining", "detail.stopping_retry", NULL);
	} else {
		dispatch(r);
	}
	if (!r->replied)
		problem(r, 500, "internal", "detail.no_reply", NULL);
	return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	http_server *srv = cls;
	ar_req *r = *req_cls;
	struct timespec end;
	const union MHD_ConnectionInfo *peer;
	const char *tmpl;
	double secs;

	conn_phase_set(srv, conn, PH_IDLE);
	if (!r)
		return;
	if (!r->started) {
		/* the request line came, the headers never did */
		free(r);
		*req_cls = NULL;
		atomic_fetch_sub(&srv->in_flight, 1);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	secs = (double)(end.tv_sec - r->start.tv_sec) + (double)(end.tv_nsec - r->start.tv_nsec) / 1e9;
	tmpl = r->routed ? ar_routes[r->route.path].tmpl : "unmatched";
	metrics_http(r->routed ? r->route.path : METRICS_ROUTE_UNMATCHED, tmpl,
		     router_method(r->method), r->status, secs);
	peer = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	accesslog_request(&srv->app->cfg.access_log, &(accesslog_entry){
		.request_id = r->request_id, .method = r->method, .route = tmpl, .path = r->url,
		.health = strcmp(tmpl, "/healthz") == 0 || strcmp(tmpl, "/readyz") == 0,
		.status = r->status, .seconds = secs, .bytes_in = r->body_len,
		.bytes_out = r->resp_len, .ident = &r->ident, .peer = peer ? peer->client_addr : NULL,
		.forwarded_for = req_header(r, "X-Forwarded-For"), .content_type = r->content_type,
		.body = r->resp, .body_len = r->resp_len, .case_id = r->case_id,
		.aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK });
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->hname[i]);
		free(r->hvalue[i]);
	}
	free(r->resp);
	free(r->body);
	free(r);
	*req_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

http_server *http_start(ar_app *app, char *msg, size_t msglen)
{
	http_server *h = calloc(1, sizeof(*h));
	struct sockaddr_storage addr;
	bool v6 = false;

	if (!h) {
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	h->app = app;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	/* The sweeper's deadlines are CLOCK_MONOTONIC instants: a condition
	 * variable on the default (realtime) clock reads them as long past and
	 * returns at once, so the sweeper spun on a core. */
	if (!cond_init_monotonic(&h->wake)) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	h->rl_keys = rl_new(RL_SLOTS);
	h->rl_addrs = rl_new(RL_SLOTS);
	if (!h->rl_keys || !h->rl_addrs) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	{
		codec_options co = { .allow_http_evidence = app->cfg.evidence_http, .now = NULL };
		codec_configure(&co);
	}
	if (!listen_sockaddr(app->cfg.listen_host, app->cfg.listen_port, &addr, &v6, msg, msglen))
		goto fail;
	/* An IPv6 address also takes IPv4 where it can ([::] is every
	 * address of both families; IPV6_V6ONLY off) */
	h->d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			MHD_USE_ITC | (v6 ? MHD_USE_DUAL_STACK : 0),
		0, NULL, NULL, on_request, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
		/* The budgets are the edge's (conn_enforce_budget: it sheds an
		 * idle connection rather than refuse); these are the backstop
		 * while shed connections close (a sweep may doom hundreds at
		 * once, and their threads take a moment to go). */
		MHD_OPTION_CONNECTION_LIMIT, app->cfg.max_connections * 2 + 64,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, app->cfg.max_per_ip * 2 + 64,
		MHD_OPTION_CONNECTION_TIMEOUT, app->cfg.request_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
		MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
		MHD_OPTION_END);
	if (!h->d) {
		snprintf(msg, msglen, v6 ? "cannot listen on [%s]:%u (in use, or not permitted)"
					 : "cannot listen on %s:%u (in use, or not permitted)",
			 app->cfg.listen_host, app->cfg.listen_port);
		goto fail;
	}
	if (pthread_create(&h->sweeper, NULL, sweeper, h) != 0) {
		snprintf(msg, msglen, "cannot start the connection sweeper thread");
		goto fail;
	}
	h->sweeper_started = true;
	return h;
fail:
	if (h->d)
		MHD_stop_daemon(h->d);
	rl_free(h->rl_keys);
	rl_free(h->rl_addrs);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return NULL;
}

void http_stop(http_server *h, int grace_ms)
{
	MHD_socket lfd;

	if (!h)
		return;
	/* Stop accepting (refusing at once, not leaving connections in the
	 * backlog), then give in-flight requests their time to finish. The
	 * drain is announced (/readyz 503, Connection: close) only once the
	 * listener is shut: a client told "draining" that opens a new
	 * connection is refused, never reset out of the backlog. */
	lfd = MHD_quiesce_daemon(h->d);
	if (lfd != MHD_INVALID_SOCKET)
		shutdown(lfd, SHUT_RDWR);
	atomic_store(&h->app->draining, true);
	for (int waited = 0; waited < grace_ms && atomic_load(&h->in_flight) > 0; waited += 20)
		usleep(20 * 1000);
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	if (h->sweeper_started)
		pthread_join(h->sweeper, NULL);
	MHD_stop_daemon(h->d);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	rl_free(h->rl_keys);
	rl_free(h->rl_addrs);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
