/*
 * The checkpoint writer: a thread of `arbiter serve` that every interval
 * folds the heads of the chains changed since its last checkpoint into a
 * signed checkpoint, appends it to the log file and records it and its
 * leaves in the database. One replica writes at a time (a session advisory
 * lock on its own connection); the others stand by and take over when its
 * connection ends.
 */
#ifndef ARBITER_CHECKPOINT_WRITER_H
#define ARBITER_CHECKPOINT_WRITER_H
#include <stdbool.h>
#include <stddef.h>
#include "arbiter/ckpt_key.h"

typedef struct {
	char key_file[1024];   /* empty: this replica writes no checkpoints */
	char log_path[1024];
	unsigned interval_s;
} ckpt_config;

/* ARBITER_CHECKPOINT_KEY_FILE (else the systemd credential
 * $CREDENTIALS_DIRECTORY/arbiter-checkpoint-key when it exists),
 * ARBITER_CHECKPOINT_LOG, ARBITER_CHECKPOINT_INTERVAL (seconds, 10). A key
 * without a log, or a log without a key, is refused naming the variable. */
bool ckpt_config_load(ckpt_config *cfg, char *msg, size_t msglen) AR_MUSTCHECK;

typedef struct ckpt_writer ckpt_writer;

/* Loads the key, opens the log for appending and starts the thread; NULL
 * with msg on failure (nothing left running). */
ckpt_writer *ckpt_writer_start(const char *conninfo, const ckpt_config *cfg, char *msg,
			       size_t msglen);
/* Writes a last checkpoint when its connection is up, stops and frees;
 * accepts NULL. */
void ckpt_writer_stop(ckpt_writer *w);
/* The signing key (its public half is served at /v1/checkpoints/keys). */
const ckpt_key *ckpt_writer_key(const ckpt_writer *w);
#endif
