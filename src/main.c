/* Start-up, subcommands, signals and the shutdown order. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/app.h"
#include "arbiter/http.h"
#include "arbiter/log.h"
#include "arbiter/store.h"

#define SHUTDOWN_GRACE_MS 10000

static const char usage[] =
	"usage: arbiter [serve|migrate|verify|version|help]\n"
	"\n"
	"  serve    serve the HTTP API (the default)\n"
	"  migrate  apply pending SQL migrations (safe to run from several replicas)\n"
	"  verify   walk every case's audit hash chain; exit 1 at the first broken link\n"
	"  version  print the version and commit\n"
	"\n"
	"Configuration is read from the environment: ARBITER_LISTEN (127.0.0.1:8080),\n"
	"ARBITER_DATABASE_URL (required), ARBITER_POLICY (deploy/policy/default.json),\n"
	"ARBITER_LOG_LEVEL (info), ARBITER_DB_POOL (2 x cores).\n";

static int load_config(ar_config *cfg, bool need_db)
{
	char msg[512];

	if (!config_load(cfg, msg, sizeof(msg))) {
		fprintf(stderr, "arbiter: %s\n", msg);
		return 2;
	}
	if (need_db && !cfg->database_url[0]) {
		fprintf(stderr, "arbiter: ARBITER_DATABASE_URL is not set "
				"(make run points it at the private cluster)\n");
		return 2;
	}
	log_set_level(cfg->log_level);
	return 0;
}

static int cmd_migrate(void)
{
	ar_config cfg;
	char msg[1024];
	int rc = load_config(&cfg, true);

	if (rc)
		return rc;
	if (!store_migrate(cfg.database_url, stdout, msg, sizeof(msg))) {
		fprintf(stderr, "arbiter migrate: %s\n", msg);
		return 1;
	}
	return 0;
}

static int cmd_verify(void)
{
	ar_config cfg;
	int rc = load_config(&cfg, true);

	return rc ? rc : store_verify(cfg.database_url, stdout);
}

static int cmd_serve(void)
{
	static ar_app app;
	sigset_t sigs;
	http_server *http = NULL;
	char msg[512];
	ar_err err;
	int rc, sig;

	rc = load_config(&app.cfg, true);
	if (rc)
		return rc;
	/* Every thread started from here on inherits the blocked set, so the
	 * signals arrive only at the sigwait loop below. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	app.started_at = app_now();
	if (pthread_rwlock_init(&app.policy_lock, NULL) != 0) {
		fprintf(stderr, "arbiter: cannot initialise a lock\n");
		return 1;
	}
	ar_err_init(&err);
	if (!app_policy_reload(&app, app.cfg.policy_path, &err)) {
		fprintf(stderr, "arbiter: ARBITER_POLICY: %s\n", err.detail);
		for (size_t i = 0; i < err.n_fields; i++)
			fprintf(stderr, "  %s: %s\n", err.fields[i].pointer, err.fields[i].message);
		rc = 2;
		goto done;
	}
	app.db = store_open(app.cfg.database_url, app.cfg.db_pool);
	if (!app.db) {
		fprintf(stderr, "arbiter: out of memory\n");
		rc = 1;
		goto done;
	}
	http = http_start(&app, msg, sizeof(msg));
	if (!http) {
		fprintf(stderr, "arbiter: %s\n", msg);
		rc = 1;
		goto done;
	}
	snprintf(msg, sizeof(msg), "%s:%u", app.cfg.listen_host, app.cfg.listen_port);
	log_kv(LOG_INFO, "serving", "listen", msg, "version", ARBITER_VERSION,
	       "policy", policy_version(app.policy), NULL);

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			ar_err_init(&err);
			if (app_policy_reload(&app, app.cfg.policy_path, &err))
				log_kv(LOG_INFO, "policy reloaded", "version",
				       policy_version(app.policy), NULL);
			else
				log_kv(LOG_ERROR, "policy reload refused; keeping the active policy",
				       "error", err.detail, NULL);
			continue;
		}
		break;
	}
	log_kv(LOG_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	atomic_store(&app.draining, true);
	http_stop(http, SHUTDOWN_GRACE_MS);
	rc = 0;
	log_kv(LOG_INFO, "stopped", NULL);
done:
	store_close(app.db);
	policy_free(app.policy);
	pthread_rwlock_destroy(&app.policy_lock);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "serve";

	if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve();
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate();
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify();
	if (strcmp(cmd, "version") == 0) {
		printf("arbiter %s (%s)\n", ARBITER_VERSION, ARBITER_COMMIT);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "arbiter: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
