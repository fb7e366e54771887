/* Start-up, subcommands, signals and the shutdown order. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "arbiter/app.h"
#include "arbiter/auth.h"
#include "arbiter/http.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/sla.h"
#include "arbiter/migrate.h"
#include "arbiter/store_keys.h"
#include "arbiter/verify.h"

#define SHUTDOWN_GRACE_MS 10000

static const char usage[] =
	"usage: arbiter [serve|migrate|verify|version|help]\n"
	"\n"
	"  serve    serve the HTTP API (the default)\n"
	"  migrate  apply pending SQL migrations (safe to run from several replicas);\n"
	"           as ARBITER_MIGRATE_DATABASE_URL (the schema's owner) when set, and\n"
	"           with ARBITER_RUNTIME_ROLE or --grant ROLE grants that role the\n"
	"           service's privileges and no more\n"
	"  verify   walk every case's audit hash chain and replay each case's row and\n"
	"           deadlines from its events; exit 1 at the first difference\n"
	"  keys     manage API keys (arbiter keys --help)\n"
	"  version  print the version and commit\n"
	"\n"
	"Configuration is read from the environment: ARBITER_LISTEN (127.0.0.1:8080),\n"
	"ARBITER_DATABASE_URL (required), ARBITER_POLICY (deploy/policy/default.json),\n"
	"ARBITER_LOG_LEVEL (info), ARBITER_DB_POOL (8 x cores, at most 32); README lists the rest.\n";

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

static int cmd_migrate(int argc, char **argv)
{
	ar_config cfg;
	char msg[1024];
	const char *owner_url = getenv("ARBITER_MIGRATE_DATABASE_URL");
	const char *role = getenv("ARBITER_RUNTIME_ROLE");
	int rc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--grant") == 0 && i + 1 < argc) {
			role = argv[++i];
		} else {
			fprintf(stderr, "arbiter migrate: unknown argument '%s'\n%s", argv[i], usage);
			return 2;
		}
	}
	if (owner_url && *owner_url) {
		rc = load_config(&cfg, false);
		if (rc)
			return rc;
		if (strlen(owner_url) >= sizeof(cfg.database_url)) {
			fprintf(stderr, "arbiter: ARBITER_MIGRATE_DATABASE_URL: too long\n");
			return 2;
		}
		snprintf(cfg.database_url, sizeof(cfg.database_url), "%s", owner_url);
	} else if ((rc = load_config(&cfg, true))) {
		return rc;
	}
	if (!store_migrate(cfg.database_url, stdout, msg, sizeof(msg))) {
		fprintf(stderr, "arbiter migrate: %s\n", msg);
		return 1;
	}
	if (role && *role) {
		if (!store_grant_runtime(cfg.database_url, role, msg, sizeof(msg))) {
			fprintf(stderr, "arbiter migrate: granting %s: %s\n", role, msg);
			return 1;
		}
		printf("migrate: runtime role %s granted the service's privileges only\n", role);
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
	metrics_init(ARBITER_VERSION, ARBITER_COMMIT, (double)app.started_at / 1000.0);
	if (pthread_rwlock_init(&app.policy_lock, NULL) != 0) {
		fprintf(stderr, "arbiter: cannot initialise a lock\n");
		return 1;
	}
	app.db = store_open(app.cfg.database_url, app.cfg.db_pool);
	if (!app.db) {
		fprintf(stderr, "arbiter: out of memory\n");
		rc = 1;
		goto done;
	}
	store_use_prepared(app.db, app.cfg.db_prepared);
	ar_err_init(&err);
	if (!app_policy_reload(&app, app.cfg.policy_path, false, &err)) {
		fprintf(stderr, "arbiter: ARBITER_POLICY: %s\n", err.detail);
		for (size_t i = 0; i < err.n_fields; i++)
			fprintf(stderr, "  %s: %s\n", err.fields[i].pointer, err.fields[i].message);
		rc = 2;
		goto done;
	}
	/* before the scheduler and the listener: a cold backend's first
	 * statements cost tens of ms each, paid here rather than by the first
	 * requests after every restart */
	snprintf(msg, sizeof(msg), "%d of %d", store_warm(app.db), app.cfg.db_pool);
	log_kv(LOG_INFO, "database pool warmed", "connections", msg, NULL);
	{
		bool owner = false;
		ar_err oerr;
		ar_err_init(&oerr);
		/* true to what it is: a service that owns its schema can rewrite
		 * its own audit trail (issue 18); say so where operators look */
		if (store_owns_schema(app.db, &owner, &oerr) && owner)
			log_kv(LOG_WARN, "the service's database login owns the schema: it could "
			       "rewrite the audit trail; migrate as an owner role and serve as a "
			       "runtime role (README, Security)", NULL);
	}
	app.sla = sla_start(&app);
	if (!app.sla) {
		fprintf(stderr, "arbiter: cannot start the SLA scheduler\n");
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
			if (app_policy_reload(&app, app.cfg.policy_path, true, &err))
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
	http_stop(http, SHUTDOWN_GRACE_MS);
	sla_stop(app.sla);
	app.sla = NULL;
	rc = 0;
	log_kv(LOG_INFO, "stopped", NULL);
done:
	sla_stop(app.sla);
	store_close(app.db);
	policy_free(app.policy);
	pthread_rwlock_destroy(&app.policy_lock);
	return rc;
}

static const char keys_usage[] =
	"usage: arbiter keys create --role ROLE --name NAME [--shop SHOP]... [--senior]\n"
	"       arbiter keys list\n"
	"       arbiter keys revoke KEY_ID\n"
	"\n"
	"Roles: frontend, seller, agent, arbiter, payment, ops, admin. A seller key\n"
	"has exactly one --shop; other keys without --shop see every shop (e.g. the\n"
	"marketplace's own frontend). The key is printed once; only its hash is stored.\n";

static int cmd_keys(int argc, char **argv)
{
	ar_config cfg;
	store *db = NULL;
	ar_err err;
	int rc = load_config(&cfg, true);
	const char *sub = argc > 2 ? argv[2] : "";

	if (rc)
		return rc;
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
		fputs(keys_usage, strcmp(sub, "--help") && strcmp(sub, "help") ? stderr : stdout);
		return strcmp(sub, "--help") && strcmp(sub, "help") ? 2 : 0;
	}
	db = store_open(cfg.database_url, 1);
	if (!db)
		return 1;
	ar_err_init(&err);
	rc = 1;
	if (strcmp(sub, "create") == 0) {
		const char *role = NULL, *name = NULL;
		char shops[1100] = "", key[96], id[AUTH_ID_LEN + 1];
		size_t pos = 0;
		bool senior = false;
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
				role = argv[++i];
			} else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
				name = argv[++i];
			} else if (strcmp(argv[i], "--shop") == 0 && i + 1 < argc) {
				i++;
				if (pos + strlen(argv[i]) + 2 < sizeof(shops))
					pos += (size_t)snprintf(shops + pos, sizeof(shops) - pos, "%s%s",
								pos ? "," : "", argv[i]);
			} else if (strcmp(argv[i], "--senior") == 0) {
				senior = true;
			} else {
				fprintf(stderr, "arbiter keys create: unexpected '%s'\n%s", argv[i], keys_usage);
				rc = 2;
				goto done;
			}
		}
		if (!role || !name) {
			fputs(keys_usage, stderr);
			rc = 2;
			goto done;
		}
		if (!auth_key_create(db, role, shops, name, senior, key, sizeof(key), id, &err))
			goto fail;
		printf("%s\n", key);
		fprintf(stderr, "created key %s (role %s); store it now, it is not shown again\n", id, role);
	} else if (strcmp(sub, "list") == 0) {
		json_t *items;
		size_t i;
		json_t *k;
		if (!store_key_list(db, &items, &err))
			goto fail;
		printf("%-12s  %-8s  %-6s  %-24s  %-24s  %s\n", "ID", "ROLE", "SENIOR", "SHOPS", "REVOKED", "NAME");
		json_array_foreach(items, i, k) {
			char *shops = json_dumps(json_object_get(k, "shops"), JSON_COMPACT | JSON_ENCODE_ANY);
			const char *rv = json_string_value(json_object_get(k, "revoked_at"));
			printf("%-12s  %-8s  %-6s  %-24s  %-24s  %s\n",
			       json_string_value(json_object_get(k, "id")),
			       json_string_value(json_object_get(k, "role")),
			       json_is_true(json_object_get(k, "senior")) ? "yes" : "no",
			       shops ? shops : "", rv ? rv : "-",
			       json_string_value(json_object_get(k, "name")));
			free(shops);
		}
		json_decref(items);
	} else {
		if (argc < 4) {
			fputs(keys_usage, stderr);
			rc = 2;
			goto done;
		}
		if (!store_key_revoke(db, argv[3], &err))
			goto fail;
		printf("revoked %s\n", argv[3]);
	}
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "arbiter keys %s: %s\n", sub, err.detail);
	for (size_t i = 0; i < err.n_fields; i++)
		fprintf(stderr, "  %s: %s\n", err.fields[i].pointer, err.fields[i].message);
done:
	store_close(db);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "serve";

	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(argc, argv);
	if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve();
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(argc, argv);
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
