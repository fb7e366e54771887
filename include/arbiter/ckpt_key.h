/*
 * Ed25519 checkpoint keys (libcrypto): the service signs with a private
 * key read from a file (or a systemd credential), never from the database;
 * verify checks with public keys. A key's id is the first CKPT_KEY_ID_LEN
 * hex digits of SHA-256 of its raw 32-byte public key, so a checkpoint
 * names the key that signed it and keys can rotate. Errors fill msg.
 */
#ifndef ARBITER_CKPT_KEY_H
#define ARBITER_CKPT_KEY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arbiter/checkpoint.h"

typedef struct ckpt_key ckpt_key;

/* A fresh private key; NULL on failure. */
ckpt_key *ckpt_key_generate(char *msg, size_t msglen);
/* A PEM file: a private key (PKCS#8) or a public key (SubjectPublicKeyInfo).
 * need_private refuses a public-only file. */
ckpt_key *ckpt_key_load(const char *path, bool need_private, char *msg, size_t msglen);
/* From raw RFC 8032 bytes: a 32-byte private seed, or a 32-byte public key. */
ckpt_key *ckpt_key_from_raw(const uint8_t raw[32], bool is_private, char *msg, size_t msglen);
void ckpt_key_free(ckpt_key *k);

const char *ckpt_key_id(const ckpt_key *k);
bool ckpt_key_has_private(const ckpt_key *k);
/* The public key as PEM (SubjectPublicKeyInfo), malloc'd; NULL on OOM. */
char *ckpt_key_public_pem(const ckpt_key *k);
/* Writes the private key as PKCS#8 PEM to a new file, mode 0600; an
 * existing file is refused rather than overwritten. */
bool ckpt_key_write_private(const ckpt_key *k, const char *path, char *msg,
			    size_t msglen) AR_MUSTCHECK;

bool ckpt_key_sign(const ckpt_key *k, const void *data, size_t len,
		   uint8_t sig[CKPT_SIG_LEN]) AR_MUSTCHECK;
bool ckpt_key_verify(const ckpt_key *k, const void *data, size_t len,
		     const uint8_t sig[CKPT_SIG_LEN]) AR_MUSTCHECK;
/* Sets c->key_id to k's and c->sig over ckpt_signing_input(c). */
bool ckpt_key_sign_checkpoint(const ckpt_key *k, ckpt *c) AR_MUSTCHECK;
/* Whether c->sig is k's signature of c (c->key_id must be k's too). */
bool ckpt_key_verify_checkpoint(const ckpt_key *k, const ckpt *c) AR_MUSTCHECK;
#endif
