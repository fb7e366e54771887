/* The process-wide context handed to every request handler. */
#ifndef ARBITER_APP_H
#define ARBITER_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include "arbiter/config.h"
#include "arbiter/policy.h"
#include "arbiter/db.h"

typedef struct sla sla;
typedef struct ckpt_writer ckpt_writer;

typedef struct {
	ar_config cfg;
	store *db;
	store *read_db;               /* NULL: ARBITER_READ_DATABASE_URL unset */
	struct readroute *reads;      /* with read_db: who wrote a moment ago */
	sla *sla;                     /* NULL in one-shot subcommands */
	ckpt_writer *checkpoints;     /* NULL: this replica signs no checkpoints */
	pthread_rwlock_t policy_lock; /* guards policy: readers adjudicate, reload swaps */
	policy *policy;
	workcal *calendar;            /* guarded by policy_lock; see appcal.h */
	int calendar_version;
	int64_t calendar_checked_ms;  /* app_calendar_follow's last look */
	atomic_bool draining;         /* SIGTERM seen: /readyz says 503 */
	atomic_bool policy_recorded;  /* the active version is in the policies table */
	ar_time started_at;
} ar_app;

/* Current wall-clock time in ms (the one clock of the service edge). */
ar_time app_now(void);

/* A policy file's whole text, NUL-terminated (caller frees), its length in
 * *len; NULL with err 422 "policy-invalid" naming the file when it cannot be
 * read. */
char *app_read_policy_file(const char *path, size_t *len, ar_err *err);

/* Reads and validates the policy file and installs it (app_policy_install). */
bool app_policy_reload(ar_app *app, const char *path, bool activate, ar_err *err) AR_MUSTCHECK;

/* Makes p this process's policy (takes ownership; on failure p is freed).
 * A version already recorded with other content is refused. activate makes
 * it the one every replica runs (PUT /v1/policy, SIGHUP); without it (start
 * up) a version seen before yields to the database's active policy. When the
 * database cannot be reached the policy is installed and recorded later
 * (app_policy_record). */
bool app_policy_install(ar_app *app, policy *p, bool activate, ar_err *err) AR_MUSTCHECK;
/* Switches to the policy another replica activated, if any (periodic). */
void app_policy_follow(ar_app *app);
/* Records the active policy version if it is not yet (called periodically). */
void app_policy_record(ar_app *app);
#endif
