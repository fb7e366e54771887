/* `arbiter verify --checkpoints`: the checkpoint log against the database. */
#ifndef ARBITER_CHECKPOINT_VERIFY_H
#define ARBITER_CHECKPOINT_VERIFY_H
#include <stddef.h>
#include <stdio.h>

/*
 * Checks every checkpoint line of file: its signature with the public key
 * its key_id names (one of pub_paths, PEM), its link to the line before,
 * the root recomputed from the leaves the database recorded for it, and
 * each leaf against the event row at (case_id, seq), whose chain
 * store_verify has checked. Prints the first failure with the checkpoint
 * number and, for a leaf, the case and seq. 0 ok, 1 broken, 2 error.
 */
int checkpoint_verify(const char *conninfo, const char *file, const char *const *pub_paths,
		      size_t n_pubs, FILE *out);
#endif
