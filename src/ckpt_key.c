/* Ed25519 keys of the checkpoint log: generate, load, sign, verify (libcrypto). */
#include "arbiter/ckpt_key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ckpt_key {
	EVP_PKEY *pkey;
	bool priv;
	char id[CKPT_KEY_ID_LEN + 1];
};

static void ssl_msg(char *msg, size_t msglen, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(msg, msglen, "%s%s%s", what, e ? ": " : "", e ? buf : "");
	ERR_clear_error();
}

/* Takes pkey (freed on failure). */
static ckpt_key *wrap(EVP_PKEY *pkey, bool priv, char *msg, size_t msglen)
{
	ckpt_key *k = NULL;
	uint8_t raw[32], d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	size_t n = sizeof(raw);

	if (!pkey)
		goto fail;
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(msg, msglen, "not an Ed25519 key");
		goto fail;
	}
	if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1 || n != sizeof(raw)) {
		ssl_msg(msg, msglen, "cannot read the public key");
		goto fail;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	k->pkey = pkey;
	k->priv = priv;
	sha256(raw, sizeof(raw), d);
	ckpt_hex(d, SHA256_LEN, hex);
	memcpy(k->id, hex, CKPT_KEY_ID_LEN);
	k->id[CKPT_KEY_ID_LEN] = '\0';
	return k;
fail:
	EVP_PKEY_free(pkey);
	return NULL;
}

ckpt_key *ckpt_key_generate(char *msg, size_t msglen)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	if (!pkey) {
		ssl_msg(msg, msglen, "cannot generate an Ed25519 key");
		return NULL;
	}
	return wrap(pkey, true, msg, msglen);
}

ckpt_key *ckpt_key_from_raw(const uint8_t raw[32], bool is_private, char *msg, size_t msglen)
{
	EVP_PKEY *pkey = is_private
		? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32)
		: EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);

	if (!pkey) {
		ssl_msg(msg, msglen, "not a raw Ed25519 key");
		return NULL;
	}
	return wrap(pkey, is_private, msg, msglen);
}

ckpt_key *ckpt_key_load(const char *path, bool need_private, char *msg, size_t msglen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pkey = NULL;
	bool priv = true;

	if (!f) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (!pkey && !need_private) {
		ERR_clear_error();
		rewind(f);
		pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		priv = false;
	}
	fclose(f);
	if (!pkey) {
		char what[300];
		snprintf(what, sizeof(what), "%.200s: not a PEM %s key", path,
			 need_private ? "private" : "private or public");
		ssl_msg(msg, msglen, what);
		return NULL;
	}
	return wrap(pkey, priv, msg, msglen);
}

void ckpt_key_free(ckpt_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *ckpt_key_id(const ckpt_key *k)
{
	return k->id;
}

bool ckpt_key_has_private(const ckpt_key *k)
{
	return k->priv;
}

char *ckpt_key_public_pem(const ckpt_key *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (!b)
		return NULL;
	if (PEM_write_bio_PUBKEY(b, k->pkey) != 1)
		goto fail;
	n = BIO_get_mem_data(b, &data);
	out = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (out) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
fail:
	BIO_free(b);
	return out;
}

bool ckpt_key_write_private(const ckpt_key *k, const char *path, char *msg, size_t msglen)
{
	int fd = -1;
	FILE *f = NULL;
	bool ok = false;

	if (!k->priv) {
		snprintf(msg, msglen, "not a private key");
		goto fail;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (PEM_write_PrivateKey(f, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		ssl_msg(msg, msglen, "cannot write the key");
		goto fail;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	ok = true;
fail:
	if (f && fclose(f) != 0 && ok) {
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		ok = false;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

bool ckpt_key_sign(const ckpt_key *k, const void *data, size_t len, uint8_t sig[CKPT_SIG_LEN])
{
	EVP_MD_CTX *ctx;
	size_t n = CKPT_SIG_LEN;
	bool ok;

	if (!k->priv || !(ctx = EVP_MD_CTX_new()))
		return false;
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, &n, data, len) == 1 && n == CKPT_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

bool ckpt_key_verify(const ckpt_key *k, const void *data, size_t len,
		     const uint8_t sig[CKPT_SIG_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	if (!ctx)
		return false;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, CKPT_SIG_LEN, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

bool ckpt_key_sign_checkpoint(const ckpt_key *k, ckpt *c)
{
	char buf[512];
	size_t n;

	snprintf(c->key_id, sizeof(c->key_id), "%s", k->id);
	n = ckpt_signing_input(c, buf, sizeof(buf));
	return n && ckpt_key_sign(k, buf, n, c->sig);
}

bool ckpt_key_verify_checkpoint(const ckpt_key *k, const ckpt *c)
{
	char buf[512];
	size_t n;

	if (strcmp(c->key_id, k->id) != 0)
		return false;
	n = ckpt_signing_input(c, buf, sizeof(buf));
	return n && ckpt_key_verify(k, buf, n, c->sig);
}
