/* The SQL migrations compiled into the binary, in apply order. */
#ifndef ARBITER_MIGRATIONS_H
#define ARBITER_MIGRATIONS_H
#include <stddef.h>

typedef struct {
	const char *name; /* file name without .sql, e.g. "001_foundation" */
	const char *sql;
} ar_migration;

extern const ar_migration ar_migrations[];
extern const size_t ar_n_migrations;
#endif
