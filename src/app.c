/* Process-wide context: the clock and the policy swap. */
#include "arbiter/app.h"
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

/* Reads a whole file; caller frees. NULL with err on failure. */
static char *read_file(const char *path, size_t *len, ar_err *err)
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

bool app_policy_reload(ar_app *app, const char *path, ar_err *err)
{
	size_t len = 0;
	char *text = read_file(path, &len, err);
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
	return app_policy_install(app, p, err);
}

bool app_policy_install(ar_app *app, policy *p, ar_err *err)
{
	policy *old;
	bool recorded = false;

	if (app->db) {
		ar_err e2;
		ar_err_init(&e2);
		recorded = store_policy_record(app->db, policy_version(p), policy_text(p), &e2);
		if (!recorded && e2.status != 503) {
			*err = e2;
			policy_free(p);
			return false;
		}
	}
	pthread_rwlock_wrlock(&app->policy_lock);
	old = app->policy;
	app->policy = p;
	atomic_store(&app->policy_recorded, recorded);
	pthread_rwlock_unlock(&app->policy_lock);
	policy_free(old);
	return true;
}

void app_policy_record(ar_app *app)
{
	ar_err err;
	bool ok;

	if (atomic_load(&app->policy_recorded) || !app->db)
		return;
	ar_err_init(&err);
	pthread_rwlock_rdlock(&app->policy_lock);
	ok = store_policy_record(app->db, policy_version(app->policy), policy_text(app->policy), &err);
	pthread_rwlock_unlock(&app->policy_lock);
	if (ok)
		atomic_store(&app->policy_recorded, true);
	else if (err.status != 503)
		log_kv(LOG_ERROR, "active policy version conflicts with a recorded one",
		       "error", err.detail, NULL);
}
