/* Process-wide context: the clock and the policy swap. */
#include "arbiter/app.h"
#include "arbiter/appcal.h"
#include "arbiter/store_policy.h"
#include "arbiter/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ar_time app_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (ar_time)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *app_read_policy_file(const char *path, size_t *len, ar_err *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f) {
		ar_err_set(err, 422, "policy-invalid", "Invalid policy", "%s: %s", path,
			   strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	buf[n] = '\0';
	*len = (size_t)n;
	fclose(f);
	return buf;
fail:
	ar_err_set(err, 422, "policy-invalid", "Invalid policy", "%s: cannot read", path);
	free(buf);
	fclose(f);
	return NULL;
}

bool app_policy_reload(ar_app *app, const char *path, bool activate, ar_err *err)
{
	size_t len = 0;
	char *text = app_read_policy_file(path, &len, err);
	policy *p;

	if (!text)
		return false;
	p = policy_load(text, len, err);
	free(text);
	if (!p) {
		char detail[sizeof(err->detail)];
		int n = snprintf(detail, sizeof(detail), "%.200s: ", path);
		snprintf(detail + n, sizeof(detail) - (size_t)n, "%.300s", err->detail);
		memcpy(err->detail, detail, sizeof(detail));
		return false;
	}
	return app_policy_install(app, p, activate, err);
}

/* The database's active policy when it is not p's version (NULL otherwise,
 * or when it cannot be had: p stays). */
static policy *active_other_than(ar_app *app, const char *version)
{
	char active[POLICY_VERSION_LEN];
	char *text = NULL;
	policy *p = NULL;
	ar_err err;

	ar_err_init(&err);
	if (!store_policy_active(app->db, active, sizeof(active), &text, &err))
		return NULL;
	if (strcmp(active, version) != 0) {
		p = policy_load(text, strlen(text), &err);
		if (!p)
			log_kv(LOG_ERROR, "the active policy in the database does not load",
			       "version", active, "error", err.detail, NULL);
	}
	free(text);
	return p;
}

static void swap_in(ar_app *app, policy *p, bool recorded)
{
	policy *old;

	pthread_rwlock_wrlock(&app->policy_lock);
	old = app->policy;
	app->policy = p;
	atomic_store(&app->policy_recorded, recorded);
	pthread_rwlock_unlock(&app->policy_lock);
	policy_free(old);
}

bool app_policy_install(ar_app *app, policy *p, bool activate, ar_err *err)
{
	bool recorded = false, is_new = false;

	if (app->db) {
		ar_err e2;
		ar_err_init(&e2);
		recorded = store_policy_record(app->db, policy_version(p), policy_text(p), activate,
					       &is_new, &e2);
		if (!recorded && e2.status != 503) {
			*err = e2;
			policy_free(p);
			return false;
		}
		if (recorded && !activate && !is_new && app->cfg.policy_follow) {
			policy *active = active_other_than(app, policy_version(p));
			if (active) {
				log_kv(LOG_INFO, "running the active policy, not the file's",
				       "file", policy_version(p), "active", policy_version(active), NULL);
				policy_free(p);
				p = active;
			}
		}
	}
	swap_in(app, p, recorded);
	if (app->db) {
		ar_err e3;
		ar_err_init(&e3);
		/* the policy may name another calendar; a failure is logged and
		 * the periodic follow tries again */
		if (!app_calendar_refresh(app, &e3))
			log_kv(LOG_WARN, "calendar not loaded; the periodic follow retries",
			       "error", e3.detail, NULL);
	}
	return true;
}

void app_policy_record(ar_app *app)
{
	ar_err err;
	bool ok, is_new;

	if (atomic_load(&app->policy_recorded) || !app->db)
		return;
	ar_err_init(&err);
	pthread_rwlock_rdlock(&app->policy_lock);
	ok = store_policy_record(app->db, policy_version(app->policy), policy_text(app->policy),
				 false, &is_new, &err);
	pthread_rwlock_unlock(&app->policy_lock);
	if (ok)
		atomic_store(&app->policy_recorded, true);
	else if (err.status != 503)
		log_kv(LOG_ERROR, "active policy version conflicts with a recorded one",
		       "error", err.detail, NULL);
}

void app_policy_follow(ar_app *app)
{
	char version[POLICY_VERSION_LEN];
	policy *p;

	if (!app->db || !app->cfg.policy_follow || !atomic_load(&app->policy_recorded))
		return;
	pthread_rwlock_rdlock(&app->policy_lock);
	snprintf(version, sizeof(version), "%s", policy_version(app->policy));
	pthread_rwlock_unlock(&app->policy_lock);
	p = active_other_than(app, version);
	if (!p)
		return;
	log_kv(LOG_INFO, "following the policy activated elsewhere", "from", version,
	       "to", policy_version(p), NULL);
	swap_in(app, p, true);
	app->calendar_checked_ms = 0;
}
