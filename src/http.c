/* libmicrohttpd server: request state, body limits, routing, problem+json. */
#include "arbiter/http.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "arbiter/api.h"
#include "arbiter/assets.h"
#include "arbiter/codec.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/sha256.h"

struct http_server {
	struct MHD_Daemon *d;
	ar_app *app;
	atomic_int in_flight;
};

struct ar_req {
	http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	route_match route;
	ar_identity ident;
	bool routed;
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	bool late;           /* arrived after SIGTERM: refused, never started */
	char request_id[40];
	char case_id[AR_MAX_ID_LEN + 1];
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

const char *req_id(ar_req *r)
{
	return r->request_id;
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

json_t *http_problem_json(const ar_err *err, const char *instance)
{
	char type[96];
	json_t *p, *errors;

	snprintf(type, sizeof(type), "urn:arbiter:problem:%s", err->type[0] ? err->type : "error");
	p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", err->title,
		      "status", err->status, "detail", err->detail);
	if (!p)
		return NULL;
	if (instance)
		json_object_set_new(p, "instance", json_string(instance));
	errors = json_array();
	for (size_t i = 0; i < err->n_fields; i++)
		json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer",
			err->fields[i].pointer, "message", err->fields[i].message));
	json_object_set_new(p, "errors", errors);
	return p;
}

void req_reply_problem(ar_req *r, const ar_err *err)
{
	json_t *p = http_problem_json(err, NULL);

	if (err->status == 503)
		req_add_header(r, "Retry-After", "1");
	if (p)
		json_object_set_new(p, "request_id", json_string(r->request_id));
	reply_json_typed(r, err->status, p, "application/problem+json");
}

static void problem(ar_req *r, int status, const char *type, const char *title,
		    const char *detail)
{
	ar_err e;

	ar_err_init(&e);
	ar_err_set(&e, status, type, title, "%s", detail);
	req_reply_problem(r, &e);
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

/* Coarse role gates; scope and per-state rules are the handlers' and the
 * state machine's. */
static bool role_may(route_id id, route_method m, fsm_role role)
{
	switch (id) {
	case ROUTE_CASES:
		return m != M_POST || role == FSM_ROLE_FRONTEND;
	case ROUTE_ADJUDICATIONS:
		return role != FSM_ROLE_PAYMENT && role != FSM_ROLE_OPS;
	case ROUTE_POLICY:
		return m != M_PUT || role == FSM_ROLE_ADMIN;
	case ROUTE_KEYS:
	case ROUTE_KEY:
		return role == FSM_ROLE_ADMIN;
	case ROUTE_QUEUE:
		return role != FSM_ROLE_FRONTEND && role != FSM_ROLE_PAYMENT;
	case ROUTE_SKU_FLAG:
		return role == FSM_ROLE_AGENT || role == FSM_ROLE_ADMIN;
	case ROUTE_METRICS:
		return role == FSM_ROLE_OPS || role == FSM_ROLE_ADMIN;
	default:
		return true;
	}
}

static void route(ar_req *r, route_id id, route_method m);

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
		problem(r, 422, "validation", "Invalid Idempotency-Key",
			"Idempotency-Key must be 1 to 255 visible ASCII characters");
		return false;
	}
	buf = malloc(ulen + r->body_len + 8);
	if (!buf) {
		problem(r, 503, "overloaded", "Out of memory", "try again");
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
		problem(r, 409, "idempotency-in-flight", "Conflict",
			"a request with this Idempotency-Key is still being processed");
		return true;
	case IDEM_MISMATCH:
		problem(r, 422, "idempotency-mismatch", "Idempotency-Key reused",
			"this Idempotency-Key was used with a different request");
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
static void idempotent(ar_req *r, route_id id)
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
	if (req_idem_answer(r, st, &rep))
		return;
	route(r, id, M_POST);
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
	route_id id = r->route.id;

	if (strncmp(router_template(id), "/v1/", 4) == 0 ||
	    (id == ROUTE_METRICS && !r->srv->app->cfg.metrics_open)) {
		ar_err err;
		ar_err_init(&err);
		if (!auth_verify(r->srv->app->db, req_header(r, "Authorization"), &r->ident, &err)) {
			if (err.status == 401)
				req_add_header(r, "WWW-Authenticate", "Bearer realm=\"arbiter\"");
			req_reply_problem(r, &err);
			return;
		}
		if ((router_allowed(id) & m) && !role_may(id, m, r->ident.role)) {
			char detail[128];
			snprintf(detail, sizeof(detail), "role '%s' may not %s %s",
				 fsm_role_name(r->ident.role), r->method, router_template(id));
			problem(r, 403, "forbidden", "Forbidden", detail);
			return;
		}
	}
	if (!(router_allowed(id) & m)) {
		char detail[128];
		req_add_header(r, "Allow", router_allow_header(id));
		snprintf(detail, sizeof(detail), "%s is not allowed on %s", r->method,
			 router_template(id));
		problem(r, 405, "method-not-allowed", "Method not allowed", detail);
		return;
	}
	if ((m == M_POST || m == M_PUT) && !json_content_type(req_header(r, "Content-Type"))) {
		problem(r, 415, "unsupported-media-type", "Unsupported media type",
			"the body must be application/json");
		return;
	}
	if (m == M_POST && id == ROUTE_CASE_ACTIONS && req_header(r, "Idempotency-Key")) {
		idempotent(r, id);
		return;
	}
	route(r, id, m);
}

static void route(ar_req *r, route_id id, route_method m)
{
	switch (id) {
	case ROUTE_HEALTHZ: api_healthz(r); break;
	case ROUTE_READYZ: api_readyz(r); break;
	case ROUTE_CASES:
		if (m == M_POST)
			api_cases_create(r);
		else
			api_cases_list(r);
		break;
	case ROUTE_CASE: api_case_get(r); break;
	case ROUTE_CASE_EVENTS: api_case_events(r); break;
	case ROUTE_CASE_ACTIONS: api_case_action(r); break;
	case ROUTE_EVENTS: api_events_feed(r); break;
	case ROUTE_KEYS:
		if (m == M_POST)
			api_keys_create(r);
		else
			api_keys_list(r);
		break;
	case ROUTE_KEY: api_key_revoke(r); break;
	case ROUTE_STATS: api_stats(r); break;
	case ROUTE_METRICS: {
		size_t len = 0;
		char *text = metrics_render(&len);
		if (!text) {
			problem(r, 503, "overloaded", "Out of memory", "try again");
			break;
		}
		req_reply_text(r, 200, METRICS_CONTENT_TYPE, text, len);
		free(text);
		break;
	}
	case ROUTE_QUEUE: api_queue(r); break;
	case ROUTE_SKU_FLAGS: api_sku_flags(r); break;
	case ROUTE_SKU_FLAG: api_sku_flag_clear(r); break;
	case ROUTE_OPENAPI:
		req_reply_text(r, 200, "application/json", ar_openapi_json, ar_openapi_json_len);
		break;
	case ROUTE_UI:
		/* The page holds no data; it asks the API with the key the
		 * operator types in. No inline script from elsewhere may run. */
		req_add_header(r, "Content-Security-Policy",
			       "default-src 'self'; script-src 'self' 'unsafe-inline'; "
			       "style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'");
		req_add_header(r, "Cache-Control", "no-cache");
		req_reply_text(r, 200, "text/html; charset=utf-8", ar_ui_index, ar_ui_index_len);
		break;
	case ROUTE_ADJUDICATIONS: api_adjudicate(r); break;
	case ROUTE_POLICY:
		if (m == M_PUT)
			api_policy_put(r);
		else
			api_policy_get(r);
		break;
	default:
		problem(r, 404, "not-found", "Not found", "this route is not served yet");
		break;
	}
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

	if (!r) {
		const char *cl;
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		atomic_fetch_add(&srv->in_flight, 1);
		r->srv = srv;
		r->conn = conn;
		r->method = method;
		r->url = url;
		r->late = atomic_load(&srv->app->draining);
		clock_gettime(CLOCK_MONOTONIC, &r->start);
		make_request_id(r);
		r->routed = router_match(url, &r->route);
		cl = req_header(r, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > srv->app->cfg.max_body)
			r->too_large = true;
		*req_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->too_large || r->body_len + n > srv->app->cfg.max_body) {
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
	if (r->too_large) {
		char detail[96];
		snprintf(detail, sizeof(detail), "the body is larger than %zu bytes",
			 srv->app->cfg.max_body);
		problem(r, 413, "payload-too-large", "Payload too large", detail);
	} else if (!r->routed) {
		problem(r, 404, "not-found", "Not found", "no such route");
	} else if (r->late && r->route.id != ROUTE_HEALTHZ) {
		/* Arrived after SIGTERM: not started, so not half done; another
		 * replica takes the retry. Requests already in flight finish. */
		problem(r, 503, "draining", "Shutting down",
			"this process is stopping; retry (another replica will answer)");
	} else {
		dispatch(r);
	}
	if (!r->replied)
		problem(r, 500, "internal", "Internal error", "the handler gave no reply");
	return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	http_server *srv = cls;
	ar_req *r = *req_cls;
	struct timespec end;
	char dur[32], status[8];
	ar_log_level lvl;

	if (!r)
		return;
	clock_gettime(CLOCK_MONOTONIC, &end);
	snprintf(dur, sizeof(dur), "%.6f", (double)(end.tv_sec - r->start.tv_sec) +
		 (double)(end.tv_nsec - r->start.tv_nsec) / 1e9);
	snprintf(status, sizeof(status), "%d", r->status);
	metrics_http(r->routed ? r->route.id : METRICS_ROUTE_UNMATCHED, router_method(r->method),
		     r->status, (double)(end.tv_sec - r->start.tv_sec) +
				(double)(end.tv_nsec - r->start.tv_nsec) / 1e9);
	lvl = r->status >= 500 ? LOG_ERROR : LOG_DEBUG;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		lvl = LOG_WARN;
	log_kv(lvl, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "request" : "request aborted",
	       "request_id", r->request_id, "method", r->method,
	       "route", r->routed ? router_template(r->route.id) : "unmatched",
	       "status", status, "duration_s", dur,
	       "case_id", r->case_id[0] ? r->case_id : NULL, NULL);
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
	struct sockaddr_in addr;

	if (!h) {
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	h->app = app;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)app->cfg.listen_port);
	if (inet_pton(AF_INET, app->cfg.listen_host, &addr.sin_addr) != 1) {
		snprintf(msg, msglen, "ARBITER_LISTEN: '%s' is not an IPv4 address",
			 app->cfg.listen_host);
		goto fail;
	}
	h->d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			MHD_USE_ITC,
		0, NULL, NULL, on_request, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_CONNECTION_LIMIT, app->cfg.max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, app->cfg.max_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, app->cfg.request_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
		MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
		MHD_OPTION_END);
	if (!h->d) {
		snprintf(msg, msglen, "cannot listen on %s:%u (in use, or not permitted)",
			 app->cfg.listen_host, app->cfg.listen_port);
		goto fail;
	}
	return h;
fail:
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
	MHD_stop_daemon(h->d);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	free(h);
}
