/* Checkpoints of the audit trail, pure: Merkle roots, the signed text, the log line. */
#include "arbiter/checkpoint.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ckpt_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool ckpt_unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool ckpt_leaf_hash(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	uint8_t buf[1 + CKPT_LEAF_MAX];

	if (len > CKPT_LEAF_MAX)
		return false;
	buf[0] = 0x00;
	if (len)
		memcpy(buf + 1, data, len);
	sha256(buf, len + 1, out);
	return true;
}

void ckpt_node_hash(const uint8_t l[SHA256_LEN], const uint8_t r[SHA256_LEN],
		    uint8_t out[SHA256_LEN])
{
	uint8_t buf[1 + 2 * SHA256_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, l, SHA256_LEN);
	memcpy(buf + 1 + SHA256_LEN, r, SHA256_LEN);
	sha256(buf, sizeof(buf), out);
}

/* RFC 6962 MTH: split at the largest power of two below n; depth log2(n). */
static void mth(const uint8_t (*h)[SHA256_LEN], size_t n, uint8_t out[SHA256_LEN])
{
	uint8_t l[SHA256_LEN], r[SHA256_LEN];
	size_t k = 1;

	if (n == 1) {
		memcpy(out, h[0], SHA256_LEN);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	mth(h, k, l);
	mth(h + k, n - k, r);
	ckpt_node_hash(l, r, out);
}

void ckpt_merkle_root(const uint8_t (*leaf_hashes)[SHA256_LEN], size_t n,
		      uint8_t out[SHA256_LEN])
{
	if (n == 0) {
		sha256("", 0, out);
		return;
	}
	mth(leaf_hashes, n, out);
}

bool ckpt_head_leaf(const char *case_id, int64_t seq, const uint8_t digest[SHA256_LEN],
		    uint8_t out[SHA256_LEN])
{
	char hex[2 * SHA256_LEN + 1], text[CKPT_LEAF_MAX + 1];
	int n;

	if (!*case_id || strchr(case_id, 0x1f))
		return false;
	ckpt_hex(digest, SHA256_LEN, hex);
	n = snprintf(text, sizeof(text), "%s\x1f%" PRId64 "\x1f%s", case_id, seq, hex);
	return n > 0 && (size_t)n < sizeof(text) && ckpt_leaf_hash(text, (size_t)n, out);
}

size_t ckpt_signing_input(const ckpt *c, char *buf, size_t cap)
{
	char root[2 * SHA256_LEN + 1], prev[2 * SHA256_LEN + 1];
	int n;

	ckpt_hex(c->root, SHA256_LEN, root);
	ckpt_hex(c->prev, SHA256_LEN, prev);
	n = snprintf(buf, cap, "arbiter-checkpoint/%d\nno %" PRIu64 "\nat %s\nkey %s\nleaves %"
		     PRIu64 "\nroot %s\nprev %s\n", CKPT_VERSION, c->no, c->at, c->key_id,
		     c->leaves, root, prev);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool ckpt_hash(const ckpt *c, uint8_t out[SHA256_LEN])
{
	char buf[512];
	size_t n = ckpt_signing_input(c, buf, sizeof(buf));

	if (!n)
		return false;
	sha256(buf, n, out);
	return true;
}

char *ckpt_encode(const ckpt *c)
{
	char root[2 * SHA256_LEN + 1], prev[2 * SHA256_LEN + 1], sig[2 * CKPT_SIG_LEN + 1];
	json_t *o;
	char *line;

	ckpt_hex(c->root, SHA256_LEN, root);
	ckpt_hex(c->prev, SHA256_LEN, prev);
	ckpt_hex(c->sig, CKPT_SIG_LEN, sig);
	o = json_pack("{s:i, s:I, s:s, s:s, s:I, s:s, s:s, s:s}", "v", CKPT_VERSION,
		      "no", (json_int_t)c->no, "at", c->at, "key_id", c->key_id,
		      "leaves", (json_int_t)c->leaves, "root", root, "prev", prev, "sig", sig);
	if (!o)
		return NULL;
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return line;
}

static bool get_count(json_t *o, const char *name, uint64_t min, uint64_t *out, char *msg,
		      size_t msglen)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min) {
		snprintf(msg, msglen, "%s: must be an integer of at least %" PRIu64, name, min);
		return false;
	}
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static bool get_hex(json_t *o, const char *name, uint8_t *out, size_t n, char *msg, size_t msglen)
{
	const char *s = json_string_value(json_object_get(o, name));

	if (!s || !ckpt_unhex(s, out, n)) {
		snprintf(msg, msglen, "%s: must be %zu lowercase hex digits", name, 2 * n);
		return false;
	}
	return true;
}

bool ckpt_decode(const char *line, size_t len, ckpt *out, char *msg, size_t msglen)
{
	static const char *const keys[] = { "v", "no", "at", "key_id", "leaves", "root", "prev", "sig" };
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *at, *kid, *k;
	json_t *v;
	uint64_t ver;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o)) {
		snprintf(msg, msglen, "not a JSON object (%s)", o ? "another type" : jerr.text);
		goto fail;
	}
	json_object_foreach(o, k, v) {
		bool known = false;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			known = known || strcmp(k, keys[i]) == 0;
		if (!known) {
			snprintf(msg, msglen, "unknown key '%.40s'", k);
			goto fail;
		}
	}
	if (!get_count(o, "v", 1, &ver, msg, msglen))
		goto fail;
	if (ver != CKPT_VERSION) {
		snprintf(msg, msglen, "v: version %" PRIu64 " is not %d", ver, CKPT_VERSION);
		goto fail;
	}
	if (!get_count(o, "no", 1, &out->no, msg, msglen) ||
	    !get_count(o, "leaves", 0, &out->leaves, msg, msglen))
		goto fail;
	at = json_string_value(json_object_get(o, "at"));
	if (!at || !*at || strlen(at) >= sizeof(out->at) || strchr(at, '\n')) {
		snprintf(msg, msglen, "at: must be a timestamp");
		goto fail;
	}
	kid = json_string_value(json_object_get(o, "key_id"));
	if (!kid || strlen(kid) != CKPT_KEY_ID_LEN || strspn(kid, "0123456789abcdef") != CKPT_KEY_ID_LEN) {
		snprintf(msg, msglen, "key_id: must be %d lowercase hex digits", CKPT_KEY_ID_LEN);
		goto fail;
	}
	if (!get_hex(o, "root", out->root, SHA256_LEN, msg, msglen) ||
	    !get_hex(o, "prev", out->prev, SHA256_LEN, msg, msglen) ||
	    !get_hex(o, "sig", out->sig, CKPT_SIG_LEN, msg, msglen))
		goto fail;
	snprintf(out->at, sizeof(out->at), "%s", at);
	snprintf(out->key_id, sizeof(out->key_id), "%s", kid);
	ok = true;
fail:
	json_decref(o);
	return ok;
}
