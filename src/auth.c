/* API key verification (cached, constant-time compare) and key creation. */
#include "arbiter/auth.h"
#include "arbiter/errmsg.h"
#include "arbiter/store_keys.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "arbiter/codec.h"
#include "arbiter/sha256.h"

#define CACHE_SLOTS 256

typedef struct {
	char id[AUTH_ID_LEN + 1];
	store_key key;
	bool missing;        /* no such key: remembered too, so guessing costs no query */
	int64_t fetched_ms;
} cache_entry;

static cache_entry cache[CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned slot_of(const char *id)
{
	unsigned h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % CACHE_SLOTS;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* why: a detail.* catalogue key */
static void unauthorized(ar_err *err, const char *why)
{
	ar_err_setk(err, 401, "unauthorized", why, NULL);
}

/* A shop id as keys accept it: safe inside a PostgreSQL array literal. */
static bool shop_ok(const char *s, size_t n)
{
	if (n == 0 || n > AR_MAX_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static bool fill_identity(const char *id, const store_key *k, ar_identity *out, ar_err *err)
{
	json_t *arr;
	size_t i, pos = 0;
	json_t *v;

	memset(out, 0, sizeof(*out));
	snprintf(out->key_id, sizeof(out->key_id), "%s", id);
	if (!fsm_role_parse(k->role, &out->role) || out->role == FSM_ROLE_SYSTEM) {
		unauthorized(err, "detail.key_role_unknown");
		return false;
	}
	out->senior = k->senior;
	out->all_shops = k->shops[0] == '\0';
	if (out->all_shops)
		return true;
	/* Elements are quoted in the literal: a shop called "null" stays a shop. */
	arr = json_loads(k->shops, 0, NULL);
	out->scope_literal[pos++] = '{';
	json_array_foreach(arr, i, v) {
		const char *shop = json_string_value(v);
		if (!shop || out->n_shops >= AUTH_MAX_SHOPS || !shop_ok(shop, strlen(shop)))
			continue;
		snprintf(out->shops[out->n_shops++], sizeof(out->shops[0]), "%s", shop);
		pos += (size_t)snprintf(out->scope_literal + pos, sizeof(out->scope_literal) - pos,
					"%s\"%s\"", pos > 1 ? "," : "", shop);
	}
	snprintf(out->scope_literal + pos, sizeof(out->scope_literal) - pos, "}");
	json_decref(arr);
	if (out->n_shops == 0) {
		unauthorized(err, "detail.key_scope_unreadable");
		return false;
	}
	return true;
}

bool auth_verify(store *s, const char *authorization, ar_identity *out, ar_err *err)
{
	const char *key, *sep;
	char id[AUTH_ID_LEN + 1];
	uint8_t digest[SHA256_LEN];
	store_key k;
	unsigned slot;
	int64_t now = mono_ms();
	bool cached = false, missing = false;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
		unauthorized(err, "detail.key_required");
		return false;
	}
	key = authorization + 7;
	while (*key == ' ')
		key++;
	sep = strncmp(key, "ak_", 3) == 0 ? strchr(key + 3, '_') : NULL;
	if (!sep || sep - (key + 3) != AUTH_ID_LEN || !is_hex(key + 3, AUTH_ID_LEN) ||
	    strlen(sep + 1) != AUTH_SECRET_LEN || !is_hex(sep + 1, AUTH_SECRET_LEN)) {
		unauthorized(err, "detail.key_malformed");
		return false;
	}
	memcpy(id, key + 3, AUTH_ID_LEN);
	id[AUTH_ID_LEN] = '\0';
	sha256(sep + 1, AUTH_SECRET_LEN, digest);

	slot = slot_of(id);
	pthread_mutex_lock(&cache_mu);
	if (strcmp(cache[slot].id, id) == 0 && now - cache[slot].fetched_ms < AUTH_CACHE_MS) {
		k = cache[slot].key;
		cached = true;
		missing = cache[slot].missing;
	}
	pthread_mutex_unlock(&cache_mu);
	if (missing) {
		unauthorized(err, "detail.key_unknown");
		return false;
	}
	if (!cached) {
		bool found = store_key_get(s, id, &k, err);
		if (!found && err->status != 401)
			return false;
		pthread_mutex_lock(&cache_mu);
		snprintf(cache[slot].id, sizeof(cache[slot].id), "%s", id);
		cache[slot].key = k;
		cache[slot].missing = !found;
		cache[slot].fetched_ms = now;
		pthread_mutex_unlock(&cache_mu);
		if (!found)
			return false;
	}
	if (!sha256_equal(digest, k.secret_hash)) {
		unauthorized(err, "detail.key_unknown");
		return false;
	}
	if (k.revoked) {
		unauthorized(err, "detail.key_revoked");
		return false;
	}
	return fill_identity(id, &k, out, err);
}

bool auth_sees_shop(const ar_identity *id, const char *shop_id)
{
	if (id->all_shops)
		return true;
	for (size_t i = 0; i < id->n_shops; i++) {
		if (strcmp(id->shops[i], shop_id) == 0)
			return true;
	}
	return false;
}

const char *auth_scope(const ar_identity *id)
{
	return id->all_shops ? NULL : id->scope_literal;
}

bool auth_random_hex(char *out, size_t nhex)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	size_t n = nhex / 2;

	if (n > sizeof(b) || getrandom(b, n, 0) != (ssize_t)n)
		return false;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
	return true;
}

bool auth_key_create(store *s, const char *role, const char *shops, const char *name,
		     bool senior, char *key_out, size_t key_len, char *id_out, ar_err *err)
{
	char id[AUTH_ID_LEN + 1], secret[AUTH_SECRET_LEN + 1], literal[1024];
	uint8_t digest[SHA256_LEN];
	fsm_role r;
	size_t pos = 0, count = 0;

	if (!fsm_role_parse(role, &r) || r == FSM_ROLE_SYSTEM) {
		ar_err_fieldk(err, "/role", "field.one_of", "list",
			      "frontend, seller, agent, arbiter, payment, ops, admin", NULL);
		return false;
	}
	if (!name || !*name || !codec_utf8_len_ok(name, 200)) {
		ar_err_fieldk(err, "/name", "field.required_chars", "max", AR_INT(200), NULL);
		return false;
	}
	literal[0] = '\0';
	if (shops && *shops) {
		const char *p = shops;
		literal[pos++] = '{';
		while (*p) {
			size_t n = strcspn(p, ",");
			if (!shop_ok(p, n) || count >= AUTH_MAX_SHOPS || pos + n + 4 >= sizeof(literal)) {
				ar_err_fieldk(err, "/shops", "field.shop_id_syntax", "max",
					      AR_INT(AUTH_MAX_SHOPS), NULL);
				return false;
			}
			if (count)
				literal[pos++] = ',';
			literal[pos++] = '"';
			memcpy(literal + pos, p, n);
			pos += n;
			literal[pos++] = '"';
			count++;
			p += n;
			if (*p == ',')
				p++;
		}
		literal[pos++] = '}';
		literal[pos] = '\0';
	}
	if ((r == FSM_ROLE_ARBITER || r == FSM_ROLE_PAYMENT || r == FSM_ROLE_OPS ||
	     r == FSM_ROLE_ADMIN) && count > 0) {
		ar_err_fieldk(err, "/shops", "field.role_takes_no_shops", "role", role, NULL);
		return false;
	}
	if (r == FSM_ROLE_SELLER && count != 1) {
		ar_err_fieldk(err, "/shops", "field.seller_one_shop", NULL);
		return false;
	}
	if (!auth_random_hex(id, AUTH_ID_LEN) || !auth_random_hex(secret, AUTH_SECRET_LEN)) {
		ar_err_setk(err, 503, "overloaded", "detail.no_entropy", NULL);
		return false;
	}
	sha256(secret, AUTH_SECRET_LEN, digest);
	if (!store_key_insert(s, id, digest, role, literal, name, senior, err))
		return false;
	snprintf(key_out, key_len, "ak_%s_%s", id, secret);
	snprintf(id_out, AUTH_ID_LEN + 1, "%s", id);
	return true;
}
