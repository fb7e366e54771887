/*
 * Signed checkpoints of the audit trail, pure: RFC 6962 Merkle roots over
 * chain heads, the canonical text a checkpoint's signature covers, and the
 * JSON line of the checkpoint log (README, Security: checkpoints and keys).
 * Errors fill a caller-owned buffer; nothing here touches a file or a database.
 */
#ifndef ARBITER_CHECKPOINT_H
#define ARBITER_CHECKPOINT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arbiter/model.h"
#include "arbiter/sha256.h"

#define CKPT_KEY_ID_LEN 16      /* hex characters: SHA-256 of the raw public key, cut */
#define CKPT_SIG_LEN 64         /* Ed25519 */
#define CKPT_AT_LEN 32
#define CKPT_VERSION 1

typedef struct {
	uint64_t no;                        /* 1, 2, ... */
	char at[CKPT_AT_LEN];               /* RFC 3339, UTC, when it was signed */
	char key_id[CKPT_KEY_ID_LEN + 1];
	uint64_t leaves;
	uint8_t root[SHA256_LEN];
	uint8_t prev[SHA256_LEN];           /* the previous checkpoint's ckpt_hash; zeros for no 1 */
	uint8_t sig[CKPT_SIG_LEN];
} ckpt;

#define CKPT_LEAF_MAX 1024      /* bytes of one leaf's data */

/* RFC 6962 section 2.1: SHA-256(0x00 || data); false above CKPT_LEAF_MAX. */
bool ckpt_leaf_hash(const void *data, size_t len, uint8_t out[SHA256_LEN]) AR_MUSTCHECK;
/* SHA-256(0x01 || left || right). */
void ckpt_node_hash(const uint8_t l[SHA256_LEN], const uint8_t r[SHA256_LEN],
		    uint8_t out[SHA256_LEN]);
/* The Merkle tree hash of n leaf hashes (SHA-256 of nothing for n = 0). */
void ckpt_merkle_root(const uint8_t (*leaf_hashes)[SHA256_LEN], size_t n,
		      uint8_t out[SHA256_LEN]);

/* The leaf of one chain head: "<case_id>\x1f<seq>\x1f<hex digest>", hashed
 * as an RFC 6962 leaf. false when the case id is empty, holds 0x1f or is
 * too long for a leaf. */
bool ckpt_head_leaf(const char *case_id, int64_t seq, const uint8_t digest[SHA256_LEN],
		    uint8_t out[SHA256_LEN]) AR_MUSTCHECK;

/* The text the signature covers (every field but sig, one per line):
 *   arbiter-checkpoint/1\nno N\nat T\nkey K\nleaves L\nroot HEX\nprev HEX\n
 * Returns its length, or 0 when it does not fit in cap. */
size_t ckpt_signing_input(const ckpt *c, char *buf, size_t cap);
/* SHA-256 of the signing input: what the next checkpoint's prev names. */
bool ckpt_hash(const ckpt *c, uint8_t out[SHA256_LEN]) AR_MUSTCHECK;

/* The log line, without a newline: one compact JSON object with keys
 * v, no, at, key_id, leaves, root, prev, sig (hex). malloc'd; NULL on OOM. */
char *ckpt_encode(const ckpt *c);
/* Parses a line as ckpt_encode writes it; unknown or missing keys, wrong
 * types and bad hex are refused with the reason in msg. */
bool ckpt_decode(const char *line, size_t len, ckpt *out, char *msg, size_t msglen) AR_MUSTCHECK;

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void ckpt_hex(const uint8_t *b, size_t n, char *out);
/* Exactly 2n hex digits into n bytes. */
bool ckpt_unhex(const char *s, uint8_t *out, size_t n) AR_MUSTCHECK;
#endif
