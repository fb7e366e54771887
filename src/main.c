/* Start-up, subcommands, signals and the shutdown order. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "arbiter/msgs.h"
#include "arbiter/app.h"
#include "arbiter/appcal.h"
#include "arbiter/auth.h"
#include "arbiter/backtest_job.h"
#include "arbiter/checkpoint_verify.h"
#include "arbiter/cli_backtest.h"
#include "arbiter/jsonarena.h"
#include "arbiter/checkpoint_writer.h"
#include "arbiter/http.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/readroute.h"
#include "arbiter/sla.h"
#include "arbiter/migrate.h"
#include "arbiter/store_keys.h"
#include "arbiter/verify.h"
#include "arbiter/webhook_net.h"
#include "arbiter/webhook_worker.h"

#define SHUTDOWN_GRACE_MS 10000

static const char usage[] =
	"usage: arbiter [serve|migrate|verify|checkpoint-key|keys|backtest|version|help] [--help]\n"
	"       arbiter --version\n"
	"\n"
	"  serve    serve the HTTP API (the default)\n"
	"  migrate  apply pending SQL migrations (safe to run from several replicas);\n"
	"           as ARBITER_MIGRATE_DATABASE_URL (the schema's owner) when set, and\n"
	"           with ARBITER_RUNTIME_ROLE or --grant ROLE grants that role the\n"
	"           service's privileges and no more\n"
	"  verify   walk every case's audit hash chain and replay each case's row and\n"
	"           deadlines from its events; exit 1 at the first difference.\n"
	"           verify --checkpoints FILE --public-key PEM [--public-key PEM]...\n"
	"           also checks each signed checkpoint in FILE (a copy of the\n"
	"           ARBITER_CHECKPOINT_LOG) against the events it anchors\n"
	"  checkpoint-key  --out FILE makes an Ed25519 checkpoint signing key (mode\n"
	"           0600) and prints its public key; --public FILE prints a key's\n"
	"           public half\n"
	"  keys     manage API keys: create, list, revoke (arbiter keys --help)\n"
	"  backtest  --policy FILE replays recorded cases under a draft policy, read-only,\n"
	"           and prints what it would change (arbiter backtest --help)\n"
	"  version  print the version and commit (also --version)\n"
	"\n"
	"Every subcommand takes --help. Unknown arguments are errors (exit 2).\n"
	"Configuration is read from the environment: ARBITER_LISTEN (127.0.0.1:8080;\n"
	"[::]:8080 for IPv6 and IPv4), ARBITER_DATABASE_URL (required),\n"
	"ARBITER_POLICY (deploy/policy/default.json), ARBITER_LOG_LEVEL (info),\n"
	"ARBITER_DB_POOL (8 x cores, at most 32); README lists the rest.\n";

static const char serve_usage[] =
	"usage: arbiter serve\n"
	"\n"
	"Serve the HTTP API on ARBITER_LISTEN until SIGTERM or SIGINT (SIGHUP reloads\n"
	"the policy). Takes no arguments: every setting is an environment variable\n"
	"(arbiter --help, README \"Configuration\").\n";

static const char migrate_usage[] =
	"usage: arbiter migrate [--grant ROLE]\n"
	"\n"
	"Apply pending SQL migrations under an advisory lock (safe to run from several\n"
	"replicas at once). Connects as ARBITER_MIGRATE_DATABASE_URL (the schema's\n"
	"owner) when set, else ARBITER_DATABASE_URL. With --grant ROLE (or\n"
	"ARBITER_RUNTIME_ROLE) grants ROLE the service's privileges and no more.\n";

static const char verify_usage[] =
	"usage: arbiter verify [--checkpoints FILE --public-key PEM [--public-key PEM]...]\n"
	"\n"
	"Walk every case's audit hash chain, then replay each case's row and armed\n"
	"deadlines from its events; exit 1 naming the first difference. With\n"
	"--checkpoints, also check each signed checkpoint in FILE (a copy of the\n"
	"ARBITER_CHECKPOINT_LOG) with the public keys given.\n";

static const char checkpoint_key_usage[] =
	"usage: arbiter checkpoint-key --out FILE | --public FILE\n"
	"\n"
	"--out makes an Ed25519 checkpoint signing key in FILE (mode 0600, never\n"
	"overwritten) and prints its public key; --public prints the public half of\n"
	"the key in FILE.\n";

static const char version_usage[] =
	"usage: arbiter version (or arbiter --version)\n"
	"\n"
	"Print the version and the git commit it was built from.\n";

static bool is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Exit status 2 with the subcommand's usage on stderr: what a typo gets. */
static int bad_usage(const char *cmd, const char *what, const char *arg, const char *text)
{
	fprintf(stderr, "arbiter %s: %s '%s'\n%s", cmd, what, arg, text);
	return 2;
}

/* argv[from..] of a subcommand that takes no arguments: 0 to run it, else
 * the exit status (0 after --help, 2 after anything else). */
static int no_args(const char *cmd, int argc, char **argv, int from, const char *text, bool *run)
{
	*run = false;
	for (int i = from; i < argc; i++)
		if (is_help(argv[i])) {
			fputs(text, stdout);
			return 0;
		}
	if (from < argc)
		return bad_usage(cmd, argv[from][0] == '-' ? "unknown argument" : "unexpected argument",
				 argv[from], text);
	*run = true;
	return 0;
}

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
	{
		/* a catalogue missing a key would answer in the wrong language */
		ar_err e;

		ar_err_init(&e);
		if (!msgs_check(&e)) {
			fprintf(stderr, "arbiter: message catalogues: %s%s%s\n", e.detail,
				e.n_fields ? " " : "", e.n_fields ? e.fields[0].pointer : "");
			return 2;
		}
	}
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
		if (is_help(argv[i])) {
			fputs(migrate_usage, stdout);
			return 0;
		}
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--grant") == 0) {
			if (i + 1 >= argc || !argv[i + 1][0] || argv[i + 1][0] == '-')
				return bad_usage("migrate", "missing ROLE after", argv[i], migrate_usage);
			role = argv[++i];
		} else {
			return bad_usage("migrate", argv[i][0] == '-' ? "unknown argument" : "unexpected argument",
					 argv[i], migrate_usage);
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

#define MAX_PUBLIC_KEYS 16

static int cmd_verify(int argc, char **argv)
{
	ar_config cfg;
	const char *file = NULL, *pubs[MAX_PUBLIC_KEYS];
	size_t n_pubs = 0;
	int rc;

	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(verify_usage, stdout);
			return 0;
		}
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--checkpoints") == 0 && i + 1 < argc && !file) {
			file = argv[++i];
		} else if (strcmp(argv[i], "--public-key") == 0 && i + 1 < argc &&
			   n_pubs < MAX_PUBLIC_KEYS) {
			pubs[n_pubs++] = argv[++i];
		} else {
			return bad_usage("verify", argv[i][0] == '-' ? "unknown argument" :
					 "unexpected argument", argv[i], verify_usage);
		}
	}
	if (!file != !n_pubs) {
		fprintf(stderr, "arbiter verify: --checkpoints FILE and --public-key PEM go together\n");
		return 2;
	}
	rc = load_config(&cfg, true);
	if (rc)
		return rc;
	rc = store_verify(cfg.database_url, stdout);
	if (rc || !file)
		return rc;
	return checkpoint_verify(cfg.database_url, file, pubs, n_pubs, stdout);
}

static int cmd_checkpoint_key(int argc, char **argv)
{
	const char *out = NULL, *pub = NULL;
	ckpt_key *k = NULL;
	char msg[512], *pem = NULL;
	int rc = 2;

	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(checkpoint_key_usage, stdout);
			return 0;
		}
	}
	if (argc == 4 && strcmp(argv[2], "--out") == 0) {
		out = argv[3];
	} else if (argc == 4 && strcmp(argv[2], "--public") == 0) {
		pub = argv[3];
	} else {
		fputs(checkpoint_key_usage, stderr);
		return 2;
	}
	k = out ? ckpt_key_generate(msg, sizeof(msg)) : ckpt_key_load(pub, false, msg, sizeof(msg));
	if (!k)
		goto fail;
	if (out && !ckpt_key_write_private(k, out, msg, sizeof(msg)))
		goto fail;
	pem = ckpt_key_public_pem(k);
	if (!pem) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	fputs(pem, stdout);
	fprintf(stderr, "key id %s%s\n", ckpt_key_id(k),
		out ? "; give the service the private key file, keep the public key with"
		      " every copy of the checkpoint log" : "");
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "arbiter checkpoint-key: %s\n", msg);
	rc = 1;
done:
	free(pem);
	ckpt_key_free(k);
	return rc;
}

static int cmd_serve(void)
{
	static ar_app app;
	sigset_t sigs;
	http_server *http = NULL;
	wh_worker *webhooks = NULL;
	char msg[512];
	ar_err err;
	ckpt_config ccfg;
	int rc, sig;

	rc = load_config(&app.cfg, true);
	if (rc)
		return rc;
	if (!ckpt_config_load(&ccfg, msg, sizeof(msg)) || !wh_config_load(msg, sizeof(msg))) {
		fprintf(stderr, "arbiter: %s\n", msg);
		return 2;
	}
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
	if (app.cfg.read_database_url[0]) {
		/* a quarter of the pool: lists and reports, not the hot path */
		int n = app.cfg.db_pool / 4 > 0 ? app.cfg.db_pool / 4 : 1;
		app.read_db = store_open(app.cfg.read_database_url, n);
		app.reads = readroute_new(app.cfg.read_after_write_ms);
		if (!app.read_db || !app.reads) {
			fprintf(stderr, "arbiter: out of memory\n");
			rc = 1;
			goto done;
		}
		store_use_prepared(app.read_db, app.cfg.db_prepared);
		store_reads_only(app.read_db);
		snprintf(msg, sizeof(msg), "%u", app.cfg.read_after_write_ms);
		log_kv(LOG_INFO, "lists and reports read from a replica", "read_after_write_ms", msg,
		       NULL);
	}
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
	backtest_jobs_sweep(&app);
	app.sla = sla_start(&app);
	if (!app.sla) {
		fprintf(stderr, "arbiter: cannot start the SLA scheduler\n");
		rc = 1;
		goto done;
	}
	if (ccfg.key_file[0]) {
		app.checkpoints = ckpt_writer_start(app.cfg.database_url, &ccfg, msg, sizeof(msg));
		if (!app.checkpoints) {
			fprintf(stderr, "arbiter: checkpoints: %s\n", msg);
			rc = 2;
			goto done;
		}
	} else {
		log_kv(LOG_WARN, "no checkpoint key (ARBITER_CHECKPOINT_KEY_FILE): this replica signs"
		       " no checkpoints, and history is anchored only if another replica does", NULL);
	}
	if (wh_config_get()->worker) {
		webhooks = wh_worker_start(app.cfg.database_url, msg, sizeof(msg));
		if (!webhooks) {
			fprintf(stderr, "arbiter: webhooks: %s\n", msg);
			rc = 1;
			goto done;
		}
	}
	http = http_start(&app, msg, sizeof(msg));
	if (!http) {
		fprintf(stderr, "arbiter: %s\n", msg);
		rc = 1;
		goto done;
	}
	snprintf(msg, sizeof(msg), strchr(app.cfg.listen_host, ':') ? "[%s]:%u" : "%s:%u",
		 app.cfg.listen_host, app.cfg.listen_port);
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
	backtest_jobs_stop();
	wh_worker_stop(webhooks);
	webhooks = NULL;
	sla_stop(app.sla);
	app.sla = NULL;
	ckpt_writer_stop(app.checkpoints);
	app.checkpoints = NULL;
	rc = 0;
	log_kv(LOG_INFO, "stopped", NULL);
done:
	wh_worker_stop(webhooks);
	sla_stop(app.sla);
	ckpt_writer_stop(app.checkpoints);
	store_close(app.read_db);
	readroute_free(app.reads);
	store_close(app.db);
	policy_free(app.policy);
	app_calendar_free(&app);
	pthread_rwlock_destroy(&app.policy_lock);
	wh_config_free();
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

/* What `keys create` was asked for, parsed before any database is opened. */
typedef struct {
	const char *role, *name;
	char shops[1100];
	bool senior;
} key_request;

/* 0: parsed; else the exit status (2: bad usage). */
static int parse_key_create(int argc, char **argv, key_request *kr)
{
	size_t pos = 0;

	memset(kr, 0, sizeof(*kr));
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		bool takes = strcmp(a, "--role") == 0 || strcmp(a, "--name") == 0 ||
			     strcmp(a, "--shop") == 0;

		if (takes && (i + 1 >= argc || !argv[i + 1][0] || argv[i + 1][0] == '-'))
			return bad_usage("keys create", "missing value after", a, keys_usage);
		if (strcmp(a, "--role") == 0) {
			kr->role = argv[++i];
		} else if (strcmp(a, "--name") == 0) {
			kr->name = argv[++i];
		} else if (strcmp(a, "--shop") == 0) {
			const char *shop = argv[++i];
			if (pos + strlen(shop) + 2 >= sizeof(kr->shops))
				return bad_usage("keys create", "too many shops at", shop, keys_usage);
			pos += (size_t)snprintf(kr->shops + pos, sizeof(kr->shops) - pos, "%s%s",
						pos ? "," : "", shop);
		} else if (strcmp(a, "--senior") == 0) {
			kr->senior = true;
		} else {
			return bad_usage("keys create", a[0] == '-' ? "unknown argument" : "unexpected argument",
					 a, keys_usage);
		}
	}
	if (!kr->role)
		return bad_usage("keys create", "missing", "--role", keys_usage);
	if (!kr->name)
		return bad_usage("keys create", "missing", "--name", keys_usage);
	return 0;
}

static int cmd_keys(int argc, char **argv)
{
	ar_config cfg;
	store *db = NULL;
	ar_err err;
	key_request kr;
	const char *sub = argc > 2 ? argv[2] : "";
	int rc;

	for (int i = 2; i < argc; i++) {
		if (is_help(argv[i]) || (i == 2 && strcmp(argv[i], "help") == 0)) {
			fputs(keys_usage, stdout);
			return 0;
		}
	}
	if (!*sub) {
		fprintf(stderr, "arbiter keys: missing create, list or revoke\n%s", keys_usage);
		return 2;
	}
	if (strcmp(sub, "create") == 0) {
		if ((rc = parse_key_create(argc, argv, &kr)))
			return rc;
	} else if (strcmp(sub, "list") == 0) {
		if (argc > 3)
			return bad_usage("keys list", argv[3][0] == '-' ? "unknown argument" : "unexpected argument",
					 argv[3], keys_usage);
	} else if (strcmp(sub, "revoke") == 0) {
		if (argc < 4 || argv[3][0] == '-')
			return bad_usage("keys revoke", "expected KEY_ID, got", argc < 4 ? "" : argv[3],
					 keys_usage);
		if (argc > 4)
			return bad_usage("keys revoke", "unexpected argument", argv[4], keys_usage);
	} else {
		return bad_usage("keys", "unknown subcommand", sub, keys_usage);
	}
	if ((rc = load_config(&cfg, true)))
		return rc;
	db = store_open(cfg.database_url, 1);
	if (!db)
		return 1;
	ar_err_init(&err);
	rc = 1;
	if (strcmp(sub, "create") == 0) {
		char key[96], id[AUTH_ID_LEN + 1];
		if (!auth_key_create(db, kr.role, kr.shops, kr.name, kr.senior, key, sizeof(key), id, &err))
			goto fail;
		printf("%s\n", key);
		fprintf(stderr, "created key %s (role %s); store it now, it is not shown again\n", id, kr.role);
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

static int cmd_version(void)
{
	printf("arbiter %s (commit %s)\n", ARBITER_VERSION, ARBITER_COMMIT);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "serve";
	bool run;
	int rc;

	json_arena_install();
	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(argc, argv);
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(cmd, "backtest") == 0)
		return cli_backtest(argc, argv);
	if (strcmp(cmd, "checkpoint-key") == 0)
		return cmd_checkpoint_key(argc, argv);
	if (strcmp(cmd, "help") == 0 || is_help(cmd)) {
		rc = no_args("help", argc, argv, 2, usage, &run);
		if (run)
			fputs(usage, stdout);
		return rc;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		rc = no_args("version", argc, argv, 2, version_usage, &run);
		return run ? cmd_version() : rc;
	}
	if (strcmp(cmd, "serve") == 0) {
		rc = no_args("serve", argc, argv, 2, serve_usage, &run);
		return run ? cmd_serve() : rc;
	}
	fprintf(stderr, "arbiter: unknown %s '%s'\n%s", cmd[0] == '-' ? "option" : "command", cmd, usage);
	return 2;
}
