/* arbiter verify: the audit chains, and the case rows replayed from them. */
#ifndef ARBITER_VERIFY_H
#define ARBITER_VERIFY_H

#include <stdio.h>

/* Walks every audit chain and checks every case row and armed deadline
 * against what its events made it; prints the first break. Returns 0 when
 * all verify, 1 when one is broken, 2 on a database error. */
int store_verify(const char *conninfo, FILE *out);
#endif
