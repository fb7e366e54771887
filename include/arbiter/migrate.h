/*
 * The schema: migrations (sql/, embedded), the runtime role's grants, and
 * whether the database is ready to serve.
 */
#ifndef ARBITER_MIGRATE_H
#define ARBITER_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>
#include "arbiter/db.h"

/* Database reachable and every compiled-in migration applied. */
bool store_ready(store *s, ar_err *err) AR_MUSTCHECK;

/* Applies pending migrations under an advisory lock (several replicas may
 * start at once). Progress lines go to out. */
bool store_migrate(const char *conninfo, FILE *out, char *msg, size_t msglen) AR_MUSTCHECK;

/* Grants the runtime role what the service needs and nothing more
 * (sql/014_runtime_role.sql); run as the schema's owner after
 * store_migrate. */
bool store_grant_runtime(const char *conninfo, const char *role, char *msg,
			 size_t msglen) AR_MUSTCHECK;
/* Whether this login owns the schema (may rewrite the audit trail): the
 * service warns when it runs so. */
bool store_owns_schema(store *s, bool *owner, ar_err *err) AR_MUSTCHECK;
#endif
