/* Webhook subscriptions over HTTP: create, list, read, change, delete, rotate the secret, deliveries, operational events, replay, ping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "arbiter/api.h"
#include "arbiter/auth.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/log.h"
#include "arbiter/store_webhooks.h"
#include "arbiter/webhook.h"
#include "arbiter/webhook_net.h"

#define DESCRIPTION_MAX 200
#define LIST_DEFAULT 50
#define LIST_MAX 200
#define REPLAY_MAX 1000
#define SECRET_BYTES 32

static void reply_err(ar_req *r, const ar_err *err)
{
	req_reply_problem(r, err);
}

/* A fresh key: *text "whsec_..." (shown once), *hex for the store. */
static bool new_secret(char text[WH_SECRET_TEXT_MAX], char hex[2 * SECRET_BYTES + 1], ar_err *err)
{
	unsigned char key[SECRET_BYTES];

	if (RAND_bytes(key, sizeof(key)) != 1 || !wh_secret_format(key, sizeof(key), text,
								    WH_SECRET_TEXT_MAX)) {
		ar_err_setk(err, 503, "overloaded", "detail.no_entropy_secret", NULL);
		return false;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	return true;
}

/* event_types as a PostgreSQL array literal (patterns hold no quote or
 * comma: wh_pattern_valid). */
static bool types_literal(json_t *v, char *out, size_t cap, ar_err *err)
{
	size_t i, o = 0;
	json_t *t;

	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > WH_MAX_PATTERNS) {
		ar_err_fieldk(err, "/event_types", "field.patterns", "max", AR_INT(WH_MAX_PATTERNS), NULL);
		return false;
	}
	o += (size_t)snprintf(out, cap, "{");
	json_array_foreach(v, i, t) {
		if (!json_is_string(t) || !wh_pattern_valid(json_string_value(t))) {
			char ptr[40];
			snprintf(ptr, sizeof(ptr), "/event_types/%zu", i);
			ar_err_fieldk(err, ptr, "field.pattern", NULL);
			return false;
		}
		o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", i ? "," : "", json_string_value(t));
	}
	snprintf(out + o, cap - o, "}");
	return true;
}

/* Members of the body other than allowed are refused by name. */
static bool known_members(json_t *doc, const char *const *allowed, ar_err *err)
{
	const char *k;
	json_t *v;
	bool ok = true;

	json_object_foreach(doc, k, v) {
		bool found = false;
		for (size_t i = 0; allowed[i]; i++)
			found = found || strcmp(k, allowed[i]) == 0;
		if (!found) {
			char ptr[80];
			snprintf(ptr, sizeof(ptr), "/%.60s", k);
			ar_err_fieldk(err, ptr, "field.not_subscription_member", NULL);
			ok = false;
		}
	}
	return ok;
}

static bool opt_string(json_t *doc, const char *name, size_t max, const char **out, ar_err *err)
{
	json_t *v = json_object_get(doc, name);
	char ptr[40];

	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	snprintf(ptr, sizeof(ptr), "/%s", name);
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		ar_err_fieldk(err, ptr, "field.string_max_bytes", "max", AR_INT(max), NULL);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

/* The shop a new subscription is for: a key bound to shops names one of
 * them (or has just one); a platform key may name any, or none (every
 * shop). */
static bool pick_shop(ar_req *r, const char *asked, const char **shop, ar_err *err)
{
	const ar_identity *id = req_identity(r);

	*shop = asked;
	if (id->all_shops)
		return true;
	if (!asked) {
		if (id->n_shops == 1) {
			*shop = id->shops[0];
			return true;
		}
		ar_err_fieldk(err, "/shop_id", "field.shop_required", NULL);
		return false;
	}
	if (!auth_sees_shop(id, asked)) {
		ar_err_fieldk(err, "/shop_id", "field.shop_visible", NULL);
		return false;
	}
	return true;
}

void api_webhooks_create(ar_req *r)
{
	static const char *const members[] = { "url", "event_types", "shop_id", "description", NULL };
	size_t len;
	const char *body = req_body(r, &len), *url = NULL, *shop = NULL, *desc = NULL, *asked = NULL;
	char types[WH_MAX_PATTERNS * (WH_PATTERN_MAX + 3) + 4], secret[WH_SECRET_TEXT_MAX];
	char hex[2 * SECRET_BYTES + 1], id[32] = "wh_", loc[64];
	json_t *doc = NULL, *row = NULL, *et;
	ar_err err;

	ar_err_init(&err);
	doc = codec_parse_body(body, len, &err);
	if (!doc)
		goto done;
	if (!json_is_object(doc)) {
		ar_err_fieldk(&err, "", "field.json_object", NULL);
		goto done;
	}
	if (!known_members(doc, members, &err))
		goto done;
	if (!json_is_string(json_object_get(doc, "url")))
		ar_err_fieldk(&err, "/url", "field.webhook_url_required", NULL);
	(void)opt_string(doc, "shop_id", AR_MAX_ID_LEN, &asked, &err);
	(void)opt_string(doc, "description", DESCRIPTION_MAX, &desc, &err);
	et = json_object_get(doc, "event_types");
	if (et)
		(void)types_literal(et, types, sizeof(types), &err);
	else
		snprintf(types, sizeof(types), "{\"*\"}");
	if (ar_err_is_set(&err))
		goto done;
	url = json_string_value(json_object_get(doc, "url"));
	if (!pick_shop(r, asked, &shop, &err) || !wh_url_check(url, &err))
		goto done;
	if (!new_secret(secret, hex, &err) || !auth_random_hex(id + 3, 24)) {
		if (!ar_err_is_set(&err))
			ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto done;
	}
	if (!store_webhook_create(req_app(r)->db, id, shop, url, types, desc, hex,
				  req_identity(r)->key_id, &row, &err))
		goto done;
	/* the only time the secret is shown */
	json_object_set_new(row, "secret", json_string(secret));
	snprintf(loc, sizeof(loc), "/v1/webhooks/%s", id);
	req_add_header(r, "Location", loc);
	log_kv(LOG_INFO, "webhook subscription created", "request_id", req_id(r), "subscription", id,
	       "shop", shop, "by", req_identity(r)->key_id, NULL);
	req_reply_json(r, 201, json_incref(row));
done:
	json_decref(row);
	json_decref(doc);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

static bool parse_limit(ar_req *r, int def, int max, int *out, ar_err *err)
{
	const char *v = req_query(r, "limit");
	char *end;
	long n;

	*out = def;
	if (!v)
		return true;
	n = strtol(v, &end, 10);
	if (!*v || *end || n < 1 || n > max) {
		ar_err_fieldk(err, "/query/limit", "field.int_range", "min", AR_INT(1), "max", AR_INT(max),
			      NULL);
		return false;
	}
	*out = (int)n;
	return true;
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > AR_MAX_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static bool serial_ok(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

/* What a list's ?after= cursor names. */
typedef enum { AFTER_SUBSCRIPTION, AFTER_DELIVERY, AFTER_EVENT } after_kind;

/* A list's ?limit= and ?after= (the query may hold only params): false
 * with err naming the field when after is not a cursor of its kind. */
static bool list_page(ar_req *r, const char *const *params, after_kind kind, int *limit,
		      ar_err *err)
{
	const char *after = req_query(r, "after");

	if (!req_query_known(r, params, err) || !parse_limit(r, LIST_DEFAULT, LIST_MAX, limit, err))
		return false;
	if (!after || (kind == AFTER_SUBSCRIPTION ? id_ok(after) : serial_ok(after)))
		return true;
	if (kind == AFTER_SUBSCRIPTION)
		ar_err_fieldk(err, "/query/after", "field.after_subscription", NULL);
	else if (kind == AFTER_DELIVERY)
		ar_err_fieldk(err, "/query/after", "field.after_delivery", NULL);
	else
		ar_err_fieldk(err, "/query/after", "field.after_event", NULL);
	return false;
}

void api_webhooks_list(ar_req *r)
{
	static const char *const params[] = { "limit", "after", NULL };
	const char *after = req_query(r, "after");
	json_t *out = NULL;
	int limit;
	ar_err err;

	ar_err_init(&err);
	if (!list_page(r, params, AFTER_SUBSCRIPTION, &limit, &err))
		goto done;
	if (!store_webhook_list(req_app(r)->db, auth_scope(req_identity(r)), limit, after, &out, &err))
		goto done;
	req_reply_json(r, 200, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_get(ar_req *r)
{
	json_t *out = NULL;
	ar_err err;

	ar_err_init(&err);
	if (store_webhook_get(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), &out, &err))
		req_reply_json(r, 200, json_incref(out));
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_update(ar_req *r)
{
	static const char *const members[] = { "url", "event_types", "description", "enabled", NULL };
	size_t len;
	const char *body = req_body(r, &len), *url = NULL, *desc = NULL, *enabled = NULL;
	char types[WH_MAX_PATTERNS * (WH_PATTERN_MAX + 3) + 4];
	json_t *doc = NULL, *out = NULL, *v;
	bool has_types = false;
	ar_err err;

	ar_err_init(&err);
	doc = codec_parse_body(body, len, &err);
	if (!doc)
		goto done;
	if (!json_is_object(doc)) {
		ar_err_fieldk(&err, "", "field.json_object", NULL);
		goto done;
	}
	if (!known_members(doc, members, &err))
		goto done;
	if ((v = json_object_get(doc, "url")) && !json_is_string(v))
		ar_err_fieldk(&err, "/url", "field.webhook_url_string", NULL);
	(void)opt_string(doc, "description", DESCRIPTION_MAX, &desc, &err);
	if ((v = json_object_get(doc, "event_types")))
		has_types = types_literal(v, types, sizeof(types), &err);
	if ((v = json_object_get(doc, "enabled"))) {
		if (!json_is_boolean(v))
			ar_err_fieldk(&err, "/enabled", "field.boolean", NULL);
		else
			enabled = json_is_true(v) ? "t" : "f";
	}
	if (ar_err_is_set(&err))
		goto done;
	url = json_string_value(json_object_get(doc, "url"));
	if (url && !wh_url_check(url, &err))
		goto done;
	if (!store_webhook_update(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), url,
				  has_types ? types : NULL, desc, enabled, req_identity(r)->key_id, &out,
				  &err))
		goto done;
	req_reply_json(r, 200, json_incref(out));
done:
	json_decref(out);
	json_decref(doc);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_delete(ar_req *r)
{
	ar_err err;

	ar_err_init(&err);
	if (store_webhook_delete(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), &err)) {
		log_kv(LOG_INFO, "webhook subscription deleted", "request_id", req_id(r),
		       "subscription", req_param(r, 0), "by", req_identity(r)->key_id, NULL);
		req_reply_text(r, 204, NULL, "", 0);
	} else {
		reply_err(r, &err);
	}
}

void api_webhook_rotate(ar_req *r)
{
	char secret[WH_SECRET_TEXT_MAX], hex[2 * SECRET_BYTES + 1];
	json_t *out = NULL;
	ar_err err;

	ar_err_init(&err);
	if (!new_secret(secret, hex, &err) ||
	    !store_webhook_rotate(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), hex,
				  wh_config_get()->rotation_overlap_s, &out, &err))
		goto done;
	json_object_set_new(out, "secret", json_string(secret));
	log_kv(LOG_INFO, "webhook secret rotated", "request_id", req_id(r),
	       "subscription", req_param(r, 0), "by", req_identity(r)->key_id, NULL);
	req_reply_json(r, 200, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_deliveries(ar_req *r)
{
	static const char *const params[] = { "limit", "after", "state", NULL };
	const char *after = req_query(r, "after"), *state = req_query(r, "state");
	json_t *out = NULL;
	int limit;
	ar_err err;

	ar_err_init(&err);
	if (!list_page(r, params, AFTER_DELIVERY, &limit, &err))
		goto done;
	if (state && strcmp(state, "pending") != 0 && strcmp(state, "delivered") != 0 &&
	    strcmp(state, "dead") != 0 && strcmp(state, "skipped") != 0) {
		ar_err_fieldk(&err, "/query/state", "field.one_of", "list",
			      "pending, delivered, dead, skipped", NULL);
		goto done;
	}
	if (!store_webhook_deliveries(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)),
				      state, limit, after, &out, &err))
		goto done;
	req_reply_json(r, 200, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_ops_events(ar_req *r)
{
	static const char *const params[] = { "limit", "after", NULL };
	const char *after = req_query(r, "after");
	json_t *out = NULL;
	int limit;
	ar_err err;

	ar_err_init(&err);
	if (!list_page(r, params, AFTER_EVENT, &limit, &err))
		goto done;
	if (!store_webhook_ops_events(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)),
				      limit, after, &out, &err))
		goto done;
	req_reply_json(r, 200, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_replay_one(ar_req *r)
{
	const char *did = req_param(r, 1);
	json_t *out = NULL;
	ar_err err;

	ar_err_init(&err);
	if (strspn(did, "0123456789") != strlen(did) || strlen(did) > 18) {
		ar_err_setk(&err, 404, "not-found", "detail.no_delivery", NULL);
		goto done;
	}
	if (!store_webhook_replay_one(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)),
				      did, &out, &err))
		goto done;
	req_reply_json(r, 202, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_replay(ar_req *r)
{
	static const char *const params[] = { "since", "limit", NULL };
	const char *since = req_query(r, "since");
	json_t *out = NULL;
	ar_time t;
	int limit;
	ar_err err;

	ar_err_init(&err);
	if (!req_query_known(r, params, &err) || !parse_limit(r, REPLAY_MAX, REPLAY_MAX, &limit, &err))
		goto done;
	if (!since || !ar_time_parse(since, &t)) {
		ar_err_fieldk(&err, "/query/since", "field.since_required", NULL);
		goto done;
	}
	if (!store_webhook_replay_since(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)),
					since, limit, &out, &err))
		goto done;
	req_reply_json(r, 202, json_incref(out));
done:
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}

void api_webhook_ping(ar_req *r)
{
	json_t *out = NULL;
	ar_err err;

	ar_err_init(&err);
	if (store_webhook_ping(req_app(r)->db, req_param(r, 0), auth_scope(req_identity(r)), &out, &err))
		req_reply_json(r, 202, json_incref(out));
	json_decref(out);
	if (ar_err_is_set(&err))
		reply_err(r, &err);
}
