/* The process-wide context handed to every request handler. */
#ifndef ARBITER_APP_H
#define ARBITER_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include "arbiter/config.h"
#include "arbiter/policy.h"
#include "arbiter/store.h"

typedef struct sla sla;

typedef struct {
	ar_config cfg;
	store *db;
	sla *sla;                     /* NULL in one-shot subcommands */
	pthread_rwlock_t policy_lock; /* guards policy: readers adjudicate, reload swaps */
	policy *policy;
	atomic_bool draining;         /* SIGTERM seen: /readyz says 503 */
	ar_time started_at;
} ar_app;

/* Current wall-clock time in ms (the one clock of the service edge). */
ar_time app_now(void);

/* Reads and validates the policy file; on success swaps it in (the old one
 * is freed) and records the version in the database when db is given. */
bool app_policy_reload(ar_app *app, const char *path, ar_err *err) AR_MUSTCHECK;
#endif
