/* The request codec: body bytes -> JSON -> validated ar_case_input, and canonical order/evidence JSON (pure). */
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MSG_ENUM_MAX 240

/* Set once at start (codec_configure), read by every decode after. */
static codec_options opts = { .allow_http_evidence = false, .now = NULL };

void codec_configure(const codec_options *o)
{
	opts = *o;
}

static ar_time codec_now(void)
{
	struct timespec ts;

	if (opts.now)
		return opts.now();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (ar_time)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 6901: "~" and "/" inside a key would otherwise change the pointer's meaning. */
static void ptr_join(char *buf, size_t n, const char *prefix, const char *key)
{
	size_t w = 0;

	if (n == 0)
		return;
	for (const char *p = prefix; *p && w + 1 < n; p++)
		buf[w++] = *p;
	if (w + 1 < n)
		buf[w++] = '/';
	for (const char *p = key; *p && w + 1 < n; p++) {
		if (*p == '~' || *p == '/') {
			if (w + 2 >= n)
				break;
			buf[w++] = '~';
			buf[w++] = *p == '~' ? '0' : '1';
		} else {
			buf[w++] = *p;
		}
	}
	buf[w] = '\0';
}

static void ptr_index(char *buf, size_t n, const char *prefix, size_t i)
{
	snprintf(buf, n, "%s/%zu", prefix, i);
}

/*
 * Counts [ and { outside strings so that a hostile body cannot make jansson's
 * recursive-descent parser go deep. Malformed input is left for jansson to
 * describe; this scan only has to be right about depth.
 */
static bool depth_ok(const char *buf, size_t len, size_t max_depth)
{
	size_t depth = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return false;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

json_t *codec_parse_body(const char *buf, size_t len, ar_err *err)
{
	json_error_t jerr;
	json_t *root;

	if (!buf) {
		buf = "";
		len = 0;
	}
	if (!depth_ok(buf, len, CODEC_MAX_DEPTH)) {
		ar_err_setk(err, 400, "nesting-too-deep", "detail.nesting_too_deep",
			    "max", AR_INT(CODEC_MAX_DEPTH), NULL);
		return NULL;
	}
	/* DECODE_ANY so a scalar top level is a 422 "must be an object", like an array. */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_duplicate_key)
			ar_err_setk(err, 400, "duplicate-key", "detail.json_error", "error", jerr.text,
				    "offset", AR_INT(jerr.position), NULL);
		else
			ar_err_setk(err, 400, "malformed-json", "detail.json_error", "error", jerr.text,
				    "offset", AR_INT(jerr.position), NULL);
		return NULL;
	}
	if (!json_is_object(root)) {
		ar_err_fieldk(err, "", "field.object", NULL);
		json_decref(root);
		return NULL;
	}
	return root;
}

bool codec_utf8_len_ok(const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t count = 0;

	if (!s)
		return false;
	while (*p) {
		unsigned char c = *p;
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			need = 0;
			cp = c;
		} else if (c >= 0xC2 && c <= 0xDF) {
			need = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		p++;
		for (size_t i = 0; i < need; i++, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3F);
		}
		/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
		if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		if (++count > max_chars)
			return false;
	}
	return true;
}

/* C0, DEL and C1 (U+0080..U+009F, encoded C2 80..C2 9F). */
static bool has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7F)
			return true;
		if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			return true;
	}
	return false;
}

static bool given(json_t *v)
{
	return v && !json_is_null(v);
}

/* Reports a missing required field; true when the field is present. */
static bool AR_MUSTCHECK present(json_t *v, bool required, const char *ptr, bool *ok, ar_err *err)
{
	if (given(v))
		return true;
	if (required) {
		ar_err_fieldk(err, ptr, "field.required", NULL);
		*ok = false;
	}
	return false;
}

bool codec_get_string(json_t *obj, const char *key, const char *ptr_prefix, bool required,
		      size_t max_chars, const char **out, ar_err *err)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = json_object_get(obj, key);
	const char *s;
	bool ok = true;

	*out = NULL;
	ptr_join(ptr, sizeof(ptr), ptr_prefix, key);
	if (!present(v, required, ptr, &ok, err))
		return ok;
	if (!json_is_string(v)) {
		ar_err_fieldk(err, ptr, "field.string", NULL);
		return false;
	}
	s = json_string_value(v);
	if (s[0] == '\0' || !codec_utf8_len_ok(s, max_chars)) {
		ar_err_fieldk(err, ptr, "field.chars", "max", AR_INT(max_chars), NULL);
		return false;
	}
	*out = s;
	return true;
}

bool codec_get_cents(json_t *obj, const char *key, const char *ptr_prefix, bool required,
		     int64_t *out, ar_err *err)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = json_object_get(obj, key);
	json_int_t n;
	bool ok = true;

	*out = -1;
	ptr_join(ptr, sizeof(ptr), ptr_prefix, key);
	if (!present(v, required, ptr, &ok, err))
		return ok;
	/* Reals (1.5, and even 1.0) and numeric strings are refused: money is exact. */
	if (!json_is_integer(v) || (n = json_integer_value(v)) < 0) {
		ar_err_fieldk(err, ptr, "field.non_negative", NULL);
		return false;
	}
	if (n > CODEC_MAX_CENTS) {
		ar_err_fieldk(err, ptr, "field.at_most", "max", AR_INT(CODEC_MAX_CENTS), NULL);
		return false;
	}
	*out = n;
	return true;
}

bool codec_check_fields(json_t *obj, const char *const allowed[], const char *ptr_prefix,
			ar_err *err)
{
	const char *key;
	json_t *value;
	bool ok = true;

	json_object_foreach(obj, key, value) {
		size_t i;
		for (i = 0; allowed[i]; i++) {
			if (strcmp(allowed[i], key) == 0)
				break;
		}
		if (!allowed[i]) {
			char ptr[AR_ERR_TEXT];
			ptr_join(ptr, sizeof(ptr), ptr_prefix, key);
			ar_err_fieldk(err, ptr, "field.unknown", NULL);
			ok = false;
		}
	}
	return ok;
}

/* An identifier-like string: 1..max code points, no control characters. */
static bool AR_MUSTCHECK get_id(json_t *obj, const char *key, const char *prefix, bool required,
				size_t max_chars, const char **out, ar_err *err)
{
	if (!codec_get_string(obj, key, prefix, required, max_chars, out, err))
		return false;
	if (*out && has_control(*out)) {
		char ptr[AR_ERR_TEXT];
		ptr_join(ptr, sizeof(ptr), prefix, key);
		ar_err_fieldk(err, ptr, "field.no_control", NULL);
		*out = NULL;
		return false;
	}
	return true;
}

bool codec_ident_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CODEC_IDENT_MAX)
		return false;
	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
	      (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, CODEC_IDENT_CHARS) == n;
}

/* An identifier another system hands out (shop, buyer, order, SKU): the
 * charset of CODEC_IDENT_CHARS, so that it is safe in a path, a log line, a
 * file name or a query of whoever reads it next. */
static bool AR_MUSTCHECK get_ident(json_t *obj, const char *key, const char *prefix,
				   const char **out, ar_err *err)
{
	if (!get_id(obj, key, prefix, true, CODEC_IDENT_MAX, out, err))
		return false;
	if (*out && !codec_ident_ok(*out)) {
		char ptr[AR_ERR_TEXT];
		ptr_join(ptr, sizeof(ptr), prefix, key);
		ar_err_fieldk(err, ptr, "field.ident", "max", AR_INT(CODEC_IDENT_MAX), NULL);
		*out = NULL;
		return false;
	}
	return true;
}

static bool AR_MUSTCHECK get_bool(json_t *obj, const char *key, const char *prefix, bool *out,
				  ar_err *err)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = json_object_get(obj, key);

	if (!given(v))
		return true;
	if (!json_is_boolean(v)) {
		ptr_join(ptr, sizeof(ptr), prefix, key);
		ar_err_fieldk(err, ptr, "field.boolean", NULL);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

static bool AR_MUSTCHECK get_time(json_t *obj, const char *key, const char *prefix, bool required,
				  ar_time *out, ar_err *err)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = json_object_get(obj, key);
	bool ok = true;

	*out = AR_TIME_NONE;
	ptr_join(ptr, sizeof(ptr), prefix, key);
	if (!present(v, required, ptr, &ok, err))
		return ok;
	if (!json_is_string(v) || !ar_time_parse(json_string_value(v), out)) {
		*out = AR_TIME_NONE;
		ar_err_fieldk(err, ptr, "field.timestamp", NULL);
		return false;
	}
	return true;
}

/*
 * A closed vocabulary. The message lists the accepted names so a caller can
 * fix the request without reading documentation. *out is left alone when an
 * optional field is not given, so the caller's default stands.
 */
static bool AR_MUSTCHECK get_enum(json_t *obj, const char *key, const char *prefix, bool required,
				  const char *(*name)(int), int count, int *out, ar_err *err)
{
	char ptr[AR_ERR_TEXT], list[MSG_ENUM_MAX];
	json_t *v = json_object_get(obj, key);
	size_t w = 0;
	bool ok = true;

	ptr_join(ptr, sizeof(ptr), prefix, key);
	if (!present(v, required, ptr, &ok, err))
		return ok;
	if (json_is_string(v)) {
		for (int i = 0; i < count; i++) {
			if (strcmp(name(i), json_string_value(v)) == 0) {
				*out = i;
				return true;
			}
		}
	}
	list[0] = '\0';
	for (int i = 0; i < count && w < sizeof(list); i++) {
		int k = snprintf(list + w, sizeof(list) - w, "%s%s", i ? ", " : "", name(i));
		if (k < 0)
			break;
		w += (size_t)k;
	}
	ar_err_fieldk(err, ptr, "field.one_of", "list", list, NULL);
	return false;
}

static const char *kind_name_i(int i) { return ar_kind_name((ar_kind)i); }
static const char *reason_name_i(int i) { return ar_reason_name((ar_reason)i); }
static const char *evidence_name_i(int i) { return ar_evidence_kind_name((ar_evidence_kind)i); }
static const char *insurance_name_i(int i) { return ar_insurance_name((ar_insurance)i); }

static bool AR_MUSTCHECK get_currency(json_t *obj, char out[AR_CURRENCY_LEN + 1], ar_err *err)
{
	json_t *v = json_object_get(obj, "currency");
	const char *s;

	if (!given(v))
		return true;
	s = json_is_string(v) ? json_string_value(v) : "";
	if (strlen(s) != AR_CURRENCY_LEN || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != AR_CURRENCY_LEN) {
		ar_err_fieldk(err, "/currency", "field.currency", NULL);
		return false;
	}
	memcpy(out, s, AR_CURRENCY_LEN + 1);
	return true;
}

/* A dotted-quad IPv4 literal (each part decimal, 0..255) into *a. */
static bool ipv4_literal(const char *h, size_t n, uint32_t *a)
{
	uint32_t v = 0;
	int parts = 0;
	size_t i = 0;

	while (i < n) {
		uint32_t part = 0;
		size_t d = 0;
		if (i + 1 < n && h[i] == '0' && h[i + 1] >= '0' && h[i + 1] <= '9')
			return false; /* 0177: octal to some parsers */
		while (i < n && h[i] >= '0' && h[i] <= '9' && d < 4) {
			part = part * 10 + (uint32_t)(h[i] - '0');
			i++;
			d++;
		}
		if (d == 0 || part > 255 || ++parts > 4)
			return false;
		v = v << 8 | part;
		if (i < n) {
			if (h[i] != '.')
				return false;
			i++;
			if (i == n)
				return false;
		}
	}
	if (parts != 4)
		return false;
	*a = v;
	return true;
}

/* Loopback, "this network", private (RFC 1918), CGNAT, link-local (and
 * with it the cloud metadata address 169.254.169.254), benchmarking,
 * multicast and reserved. */
static bool ipv4_internal(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
	       (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
	       (a >> 22) == (100u << 2 | 1) || (a >> 16) == (169u << 8 | 254) ||
	       (a >> 17) == (198u << 7 | 9) || (a >> 8) == (192u << 16 | 0 << 8 | 0) ||
	       (a >> 28) >= 14;
}

/*
 * Where an evidence URL may point: a public host named by DNS name or by a
 * public IPv4 literal. Refused: userinfo (https://user@host), IP literals of
 * internal networks, every IPv6 literal ([::1], [fe80::..], [::ffff:..]
 * hide the same addresses), names that are loopback by definition
 * (localhost, *.localhost), and hosts written as a single number (2130706433,
 * 0x7f000001), which some clients read as IPv4. The name is not resolved
 * here (the codec does no I/O): whoever fetches evidence must still refuse
 * internal addresses after resolving.
 */
static const char *url_problem(const char *s, bool allow_http)
{
	const char *host, *end, *at;
	size_t skip, n;
	uint32_t a;
	bool digits_only = true;

	if (strncasecmp(s, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		skip = 7;
	else
		return allow_http ? "field.url_http" : "field.url_https";
	if (skip == 7 && !allow_http)
		return "field.url_https";
	/* A URL with a space or control character is a different URL to every parser. */
	if (s[skip] == '\0' || strchr(s, ' ') || strchr(s, '\\') || has_control(s))
		return "field.url_chars";
	host = s + skip;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (at)
		return "field.url_userinfo";
	if (*host == '[')
		return "field.url_ipv6";
	n = strcspn(host, ":/?#");
	if (host + n > end)
		n = (size_t)(end - host);
	if (n == 0)
		return "field.url_host";
	while (n > 0 && host[n - 1] == '.')
		n--; /* "localhost." is localhost */
	if (n == 0)
		return "field.url_host";
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || (unsigned char)c >= 0x80))
			return "field.url_host_chars";
		if (!(c >= '0' && c <= '9') && c != '.')
			digits_only = false;
	}
	if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0))
		return "field.url_localhost";
	if (ipv4_literal(host, n, &a)) {
		if (ipv4_internal(a))
			return "field.url_internal";
	} else if (digits_only || (n > 2 && host[0] == '0' && (host[1] == 'x' || host[1] == 'X'))) {
		return "field.url_numeric";
	}
	return NULL;
}

static bool sha256_ok(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool AR_MUSTCHECK decode_evidence_item(json_t *item, const char *ptr, ar_evidence *ev,
					      ar_err *err)
{
	static const char *const allowed[] = { "kind", "url", "sha256", NULL };
	char fptr[AR_ERR_TEXT];
	int kind = 0;
	bool ok = true;

	if (!json_is_object(item)) {
		ar_err_fieldk(err, ptr, "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(item, allowed, ptr, err) && ok;
	ok = get_enum(item, "kind", ptr, true, evidence_name_i, AR_EVIDENCE__COUNT, &kind, err) && ok;
	ev->kind = (ar_evidence_kind)kind;
	if (codec_get_string(item, "url", ptr, true, AR_MAX_URL_LEN, &ev->url, err)) {
		const char *why = url_problem(ev->url, opts.allow_http_evidence);
		if (why) {
			ptr_join(fptr, sizeof(fptr), ptr, "url");
			ar_err_fieldk(err, fptr, why, NULL);
			ok = false;
		}
	} else {
		ok = false;
	}
	if (codec_get_string(item, "sha256", ptr, false, 64, &ev->sha256, err)) {
		if (ev->sha256 && !sha256_ok(ev->sha256)) {
			ptr_join(fptr, sizeof(fptr), ptr, "sha256");
			ar_err_fieldk(err, fptr, "field.sha256", NULL);
			ok = false;
		}
	} else {
		ok = false;
	}
	return ok;
}

static bool AR_MUSTCHECK decode_evidence(json_t *root, ar_case_input *out, ar_err *err)
{
	json_t *arr = json_object_get(root, "evidence");
	bool ok = true;

	if (!given(arr))
		return true;
	if (!json_is_array(arr)) {
		ar_err_fieldk(err, "/evidence", "field.array", NULL);
		return false;
	}
	if (json_array_size(arr) > AR_MAX_EVIDENCE) {
		ar_err_fieldk(err, "/evidence", "field.max_items", "max", AR_INT(AR_MAX_EVIDENCE), NULL);
		return false;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		char ptr[AR_ERR_TEXT];
		ptr_index(ptr, sizeof(ptr), "/evidence", i);
		ok = decode_evidence_item(json_array_get(arr, i), ptr, &out->evidence[i], err) && ok;
	}
	out->n_evidence = json_array_size(arr);
	return ok;
}

static bool AR_MUSTCHECK decode_order(json_t *root, ar_order *o, ar_err *err)
{
	static const char *const allowed[] = {
		"id", "shop_id", "buyer_id", "sku", "category", "price_cents",
		"shipping_fee_cents", "free_shipping", "paid_at", "promised_ship_by",
		"shipped_at", "delivered_at", "warranty_until", "customized",
		"return_shipping_insurance", "usage_km", "invoice_at", "quantity",
		"points_used", "coupon_cents", NULL,
	};
	const char *p = "/order";
	json_t *obj = json_object_get(root, "order");
	int insurance = AR_INSURANCE_NONE;
	bool ok = true;

	if (!present(obj, true, p, &ok, err))
		return false;
	if (!json_is_object(obj)) {
		ar_err_fieldk(err, p, "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(obj, allowed, p, err) && ok;
	ok = get_ident(obj, "id", p, &o->id, err) && ok;
	ok = get_ident(obj, "shop_id", p, &o->shop_id, err) && ok;
	ok = get_ident(obj, "buyer_id", p, &o->buyer_id, err) && ok;
	ok = get_ident(obj, "sku", p, &o->sku, err) && ok;
	ok = get_id(obj, "category", p, false, AR_MAX_ID_LEN, &o->category, err) && ok;
	ok = codec_get_cents(obj, "price_cents", p, true, &o->price_cents, err) && ok;
	ok = codec_get_cents(obj, "shipping_fee_cents", p, false, &o->shipping_fee_cents, err) && ok;
	if (o->shipping_fee_cents < 0)
		o->shipping_fee_cents = 0;
	ok = get_bool(obj, "free_shipping", p, &o->free_shipping, err) && ok;
	ok = get_time(obj, "paid_at", p, true, &o->paid_at, err) && ok;
	ok = get_time(obj, "promised_ship_by", p, false, &o->promised_ship_by, err) && ok;
	ok = get_time(obj, "shipped_at", p, false, &o->shipped_at, err) && ok;
	ok = get_time(obj, "delivered_at", p, false, &o->delivered_at, err) && ok;
	ok = get_time(obj, "warranty_until", p, false, &o->warranty_until, err) && ok;
	ok = get_bool(obj, "customized", p, &o->customized, err) && ok;
	ok = get_enum(obj, "return_shipping_insurance", p, false, insurance_name_i,
		      AR_INSURANCE_SELLER + 1, &insurance, err) && ok;
	o->insurance = (ar_insurance)insurance;
	ok = codec_get_cents(obj, "usage_km", p, false, &o->usage_km, err) && ok;
	ok = get_time(obj, "invoice_at", p, false, &o->invoice_at, err) && ok;
	if (codec_get_cents(obj, "quantity", p, false, &o->quantity, err)) {
		if (o->quantity == 0 || o->quantity > CODEC_MAX_QUANTITY) {
			ar_err_fieldk(err, "/order/quantity", "field.int_range", "min", AR_INT(1),
				      "max", AR_INT(CODEC_MAX_QUANTITY), NULL);
			ok = false;
		}
	} else {
		ok = false;
	}
	if (o->quantity < 1)
		o->quantity = 1;
	ok = codec_get_cents(obj, "points_used", p, false, &o->points_used, err) && ok;
	ok = codec_get_cents(obj, "coupon_cents", p, false, &o->coupon_cents, err) && ok;
	if (o->points_used < 0)
		o->points_used = 0;
	if (o->coupon_cents < 0)
		o->coupon_cents = 0;
	return ok;
}

/*
 * The order's history must have happened, in order: paid, then shipped,
 * then delivered, none of it later than now (plus CODEC_CLOCK_SKEW_MS for
 * the frontend's clock). The first field out of order is named.
 */
static bool AR_MUSTCHECK check_timeline(const ar_order *o, ar_time now, ar_err *err)
{
	static const char *const names[] = { "paid_at", "shipped_at", "delivered_at" };
	const ar_time t[] = { o->paid_at, o->shipped_at, o->delivered_at };
	ar_time prev = AR_TIME_NONE;
	int prev_i = -1;
	bool ok = true;

	for (int i = 0; i < 3; i++) {
		char ptr[AR_ERR_TEXT];
		if (t[i] == AR_TIME_NONE)
			continue;
		snprintf(ptr, sizeof(ptr), "/order/%s", names[i]);
		if (t[i] > now + CODEC_CLOCK_SKEW_MS) {
			ar_err_fieldk(err, ptr, "field.not_future", NULL);
			ok = false;
		} else if (prev != AR_TIME_NONE && t[i] < prev) {
			ar_err_fieldk(err, ptr, "field.not_before", "other", names[prev_i], NULL);
			ok = false;
		}
		prev = t[i];
		prev_i = i;
	}
	return ok;
}

static bool AR_MUSTCHECK decode_buyer(json_t *root, ar_buyer *b, ar_err *err)
{
	static const char *const allowed[] = { "account_created_at", "orders_count", NULL };
	json_t *obj = json_object_get(root, "buyer");
	bool ok = true;

	if (!given(obj))
		return true;
	if (!json_is_object(obj)) {
		ar_err_fieldk(err, "/buyer", "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(obj, allowed, "/buyer", err) && ok;
	ok = get_time(obj, "account_created_at", "/buyer", false, &b->account_created_at, err) && ok;
	ok = codec_get_cents(obj, "orders_count", "/buyer", false, &b->orders_count, err) && ok;
	return ok;
}

/* "complaint": {"category": product_quality|service_quality, "public_exposure": bool} */
static bool AR_MUSTCHECK decode_complaint(json_t *root, ar_case_input *in, ar_err *err)
{
	static const char *const allowed[] = { "category", "public_exposure", NULL };
	json_t *obj = json_object_get(root, "complaint"), *pe;
	bool ok = true;

	if (!given(obj))
		return true;
	if (!json_is_object(obj)) {
		ar_err_fieldk(err, "/complaint", "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(obj, allowed, "/complaint", err) && ok;
	if (codec_get_string(obj, "category", "/complaint", false, 32, &in->complaint_category, err)) {
		if (in->complaint_category && strcmp(in->complaint_category, "product_quality") &&
		    strcmp(in->complaint_category, "service_quality")) {
			ar_err_fieldk(err, "/complaint/category", "field.one_of",
				      "list", "product_quality, service_quality", NULL);
			ok = false;
		}
	} else {
		ok = false;
	}
	pe = json_object_get(obj, "public_exposure");
	if (given(pe) && !json_is_boolean(pe)) {
		ar_err_fieldk(err, "/complaint/public_exposure", "field.bool", NULL);
		ok = false;
	}
	in->public_exposure = json_is_true(pe);
	return ok;
}

bool codec_decode_case(json_t *root, ar_case_input *out, ar_err *err)
{
	static const char *const allowed[] = {
		"kind", "reason", "description", "requested_cents", "currency",
		"defect", "order", "evidence", "buyer", "complaint", "new_price_cents", NULL,
	};
	int kind = 0, reason = 0;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	out->requested_cents = -1;
	memcpy(out->currency, "CNY", sizeof(out->currency));
	out->order.paid_at = out->order.promised_ship_by = out->order.shipped_at =
		out->order.delivered_at = out->order.warranty_until = AR_TIME_NONE;
	out->order.usage_km = -1;
	out->order.invoice_at = AR_TIME_NONE;
	out->order.quantity = 1;
	out->new_price_cents = -1;
	out->buyer.account_created_at = AR_TIME_NONE;
	out->buyer.orders_count = -1;

	if (!json_is_object(root)) {
		ar_err_fieldk(err, "", "field.object", NULL);
		return false;
	}
	ok = codec_check_fields(root, allowed, "", err) && ok;
	ok = get_enum(root, "kind", "", true, kind_name_i, AR_KIND__COUNT, &kind, err) && ok;
	out->kind = (ar_kind)kind;
	ok = get_enum(root, "reason", "", true, reason_name_i, AR_REASON__COUNT, &reason, err) && ok;
	out->reason = (ar_reason)reason;
	ok = codec_get_string(root, "description", "", true, AR_MAX_DESCRIPTION, &out->description,
			      err) && ok;
	ok = codec_get_cents(root, "requested_cents", "", false, &out->requested_cents, err) && ok;
	ok = get_currency(root, out->currency, err) && ok;
	ok = get_id(root, "defect", "", false, AR_MAX_ID_LEN, &out->defect, err) && ok;
	if (decode_order(root, &out->order, err))
		ok = check_timeline(&out->order, codec_now(), err) && ok;
	else
		ok = false;
	ok = decode_evidence(root, out, err) && ok;
	ok = decode_buyer(root, &out->buyer, err) && ok;
	ok = decode_complaint(root, out, err) && ok;
	if (codec_get_cents(root, "new_price_cents", "", false, &out->new_price_cents, err)) {
		/* 001 退差: the new lower price is what a price-protection claim is about */
		if (out->new_price_cents >= 0 && out->reason != AR_REASON_PRICE_PROTECTION) {
			ar_err_fieldk(err, "/new_price_cents", "field.only_with_reason", "reason", "price_protection", NULL);
			ok = false;
		}
	} else {
		ok = false;
	}
	return ok;
}

/* json_object_set_new steals v even on failure, and fails on v == NULL. */
static bool AR_MUSTCHECK put(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v) == 0;
}

static bool AR_MUSTCHECK put_str(json_t *obj, const char *key, const char *s)
{
	return !s || put(obj, key, json_string(s));
}

static bool AR_MUSTCHECK put_time(json_t *obj, const char *key, ar_time t)
{
	char buf[32];

	if (t == AR_TIME_NONE)
		return true;
	ar_time_format(t, buf, sizeof(buf));
	return put(obj, key, json_string(buf));
}

json_t *codec_order_to_json(const ar_order *o)
{
	json_t *j = json_object();

	if (!j)
		return NULL;
	if (!put_str(j, "id", o->id) || !put_str(j, "shop_id", o->shop_id) ||
	    !put_str(j, "buyer_id", o->buyer_id) || !put_str(j, "sku", o->sku) ||
	    !put_str(j, "category", o->category) ||
	    !put(j, "price_cents", json_integer(o->price_cents)) ||
	    !put(j, "shipping_fee_cents", json_integer(o->shipping_fee_cents)) ||
	    !put(j, "free_shipping", json_boolean(o->free_shipping)) ||
	    !put_time(j, "paid_at", o->paid_at) ||
	    !put_time(j, "promised_ship_by", o->promised_ship_by) ||
	    !put_time(j, "shipped_at", o->shipped_at) ||
	    !put_time(j, "delivered_at", o->delivered_at) ||
	    !put_time(j, "warranty_until", o->warranty_until) ||
	    !put(j, "customized", json_boolean(o->customized)) ||
	    !put(j, "return_shipping_insurance", json_string(ar_insurance_name(o->insurance))))
		goto fail;
	if (o->usage_km >= 0 && !put(j, "usage_km", json_integer(o->usage_km)))
		goto fail;
	if (!put_time(j, "invoice_at", o->invoice_at) ||
	    !put(j, "quantity", json_integer(o->quantity)) ||
	    !put(j, "points_used", json_integer(o->points_used)) ||
	    !put(j, "coupon_cents", json_integer(o->coupon_cents)))
		goto fail;
	return j;
fail:
	json_decref(j);
	return NULL;
}

json_t *codec_case_input_evidence_to_json(const ar_case_input *in)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < in->n_evidence && i < AR_MAX_EVIDENCE; i++) {
		const ar_evidence *ev = &in->evidence[i];
		json_t *item = json_object();

		/* append_new steals item, so the array's single decref frees it on failure. */
		if (json_array_append_new(arr, item) != 0)
			goto fail;
		if (!put(item, "kind", json_string(ar_evidence_kind_name(ev->kind))) ||
		    !put_str(item, "url", ev->url) || !put_str(item, "sha256", ev->sha256))
			goto fail;
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

json_t *codec_evidence_items(json_t *items, size_t max_items, ar_err *err)
{
	json_t *out, *it;
	size_t i;
	bool ok = true;

	if (!json_is_array(items) || json_array_size(items) == 0) {
		ar_err_fieldk(err, "/evidence", "field.non_empty_array", NULL);
		return NULL;
	}
	if (json_array_size(items) > max_items) {
		ar_err_fieldk(err, "/evidence", "field.at_most_items", "max", AR_INT(max_items), NULL);
		return NULL;
	}
	out = json_array();
	if (!out)
		return NULL;
	json_array_foreach(items, i, it) {
		char ptr[32];
		ar_evidence ev;
		json_t *o;
		snprintf(ptr, sizeof(ptr), "/evidence/%zu", i);
		memset(&ev, 0, sizeof(ev));
		if (!decode_evidence_item(it, ptr, &ev, err)) {
			ok = false;
			continue;
		}
		o = json_pack("{s:s,s:s}", "kind", ar_evidence_kind_name(ev.kind), "url", ev.url);
		if (o && ev.sha256)
			json_object_set_new(o, "sha256", json_string(ev.sha256));
		if (!o || json_array_append_new(out, o))
			ok = false;
	}
	if (!ok) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* ---- compact JSON text ---- */

/* Runs of plain bytes are copied whole; only '"', '\\' and controls are escaped. */
static void dump_string(textbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;

	tb_byte(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		tb_put(b, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		tb_put(b, esc, elen);
	}
	tb_put(b, s + run, n - run);
	tb_byte(b, '"');
}

static void dump_integer(textbuf *b, json_int_t v)
{
	char tmp[24], *e = tmp + sizeof(tmp), *p = e;
	/* in unsigned arithmetic, so that the most negative value negates */
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	tb_put(b, p, (size_t)(e - p));
}

/* As jansson writes a real: %.17g, always with a '.' or an exponent (so it
 * reads back as a real), the exponent without '+' or leading zeros. */
static void dump_real(textbuf *b, double v)
{
	char tmp[40];
	int n = snprintf(tmp, sizeof(tmp) - 2, "%.17g", v);

	if (n < 0 || (size_t)n >= sizeof(tmp) - 2) {
		b->oom = true;
		return;
	}
	char *e = strchr(tmp, 'e');
	if (!e && !strchr(tmp, '.')) {
		memcpy(tmp + n, ".0", 3);
		n += 2;
	}
	if (e) {
		char *start = e + 1, *digits;
		if (*start == '-')
			start++;
		digits = start;
		while (*digits == '+' || (*digits == '0' && digits[1]))
			digits++;
		memmove(start, digits, strlen(digits) + 1);
		n = (int)strlen(tmp);
	}
	tb_put(b, tmp, (size_t)n);
}

static void dump_value(textbuf *b, const json_t *j, int depth)
{
	if (depth > CODEC_DUMP_MAX_DEPTH) {
		b->oom = true;
		return;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		/* const only in name: iteration does not change the object */
		json_t *o = (json_t *)j;
		bool first = true;
		tb_byte(b, '{');
		for (void *it = json_object_iter(o); it && !b->oom;
		     it = json_object_iter_next(o, it)) {
			if (!first)
				tb_byte(b, ',');
			first = false;
			dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
			tb_byte(b, ':');
			dump_value(b, json_object_iter_value(it), depth + 1);
		}
		tb_byte(b, '}');
		break;
	}
	case JSON_ARRAY:
		tb_byte(b, '[');
		for (size_t i = 0; i < json_array_size(j) && !b->oom; i++) {
			if (i)
				tb_byte(b, ',');
			dump_value(b, json_array_get(j, i), depth + 1);
		}
		tb_byte(b, ']');
		break;
	case JSON_STRING:
		dump_string(b, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		dump_integer(b, json_integer_value(j));
		break;
	case JSON_REAL:
		dump_real(b, json_real_value(j));
		break;
	case JSON_TRUE:
		tb_put(b, "true", 4);
		break;
	case JSON_FALSE:
		tb_put(b, "false", 5);
		break;
	case JSON_NULL:
		tb_put(b, "null", 4);
		break;
	}
}

char *codec_dumps(const json_t *j)
{
	textbuf b = { 0 };

	if (!j)
		return NULL;
	dump_value(&b, j, 0);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
