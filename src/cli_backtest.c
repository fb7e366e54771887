/* `arbiter backtest`: a draft policy replayed over recorded cases from the command line, the report on stdout. */
#include "arbiter/cli_backtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arbiter/backtest_job.h"
#include "arbiter/codec.h"
#include "arbiter/log.h"

const char cli_backtest_usage[] =
	"usage: arbiter backtest --policy FILE [--since TS] [--until TS] [--shop S]...\n"
	"                        [--kind K]... [--reason R]... [--sample N] [--share P]\n"
	"                        [--json]\n"
	"\n"
	"Replay recorded cases under the draft policy in FILE (read-only, on one\n"
	"connection to ARBITER_READ_DATABASE_URL when set, else ARBITER_DATABASE_URL)\n"
	"and print what it would change: decisions by from -> to, money before and\n"
	"after (overall, per shop), deadlines, auto-refunds, rules, per-case errors.\n"
	"--since/--until take RFC 3339 times (created_at >= since, < until); --sample N\n"
	"replays at most N cases; --share P (1 to 100): while the database serves\n"
	"others (its WAL moves), the run is busy (CPU and queries) at most P % of the\n"
	"time (default ARBITER_BACKTEST_SHARE, else 10); on a quiet database it runs\n"
	"at full speed. --json\n"
	"prints the report as JSON. A progress bar goes to stderr when it is a\n"
	"terminal. Exit 0 when the run finished (whatever the draft changed), 1\n"
	"when it failed, 2 for bad usage, a bad setting or a draft the policy loader\n"
	"refuses.\n";

typedef struct {
	const char *policy_file;
	bool json;
	int share;      /* 0: the configured one */
	backtest_selection sel;
} cli_args;

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "arbiter backtest: %s '%s'\n%s", what, arg, cli_backtest_usage);
	return 2;
}

/* 0: parsed; else the exit status. */
static int parse(int argc, char **argv, cli_args *a)
{
	ar_err err;

	memset(a, 0, sizeof(*a));
	backtest_selection_init(&a->sel);
	ar_err_init(&err);
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i];
		bool takes = strcmp(o, "--policy") == 0 || strcmp(o, "--since") == 0 ||
			     strcmp(o, "--until") == 0 || strcmp(o, "--shop") == 0 ||
			     strcmp(o, "--kind") == 0 || strcmp(o, "--reason") == 0 ||
			     strcmp(o, "--sample") == 0 || strcmp(o, "--share") == 0;
		const char *v = takes && i + 1 < argc ? argv[i + 1] : NULL;

		if (takes && (!v || !*v || v[0] == '-'))
			return usage_error("missing value after", o);
		if (takes)
			i++;
		if (strcmp(o, "--policy") == 0) {
			a->policy_file = v;
		} else if (strcmp(o, "--since") == 0 || strcmp(o, "--until") == 0) {
			ar_time t;
			if (!ar_time_parse(v, &t))
				return usage_error("not an RFC 3339 time:", v);
			if (o[2] == 's')
				a->sel.created_after = t;
			else
				a->sel.created_before = t;
		} else if (strcmp(o, "--shop") == 0 || strcmp(o, "--kind") == 0 ||
			   strcmp(o, "--reason") == 0) {
			const char *list = o[2] == 's' ? "shops" : o[2] == 'k' ? "kinds" : "reasons";
			if (!backtest_selection_add(&a->sel, list, v, o, &err))
				return usage_error(err.n_fields ? err.fields[0].message : "bad value", v);
		} else if (strcmp(o, "--sample") == 0) {
			char *end;
			long long n = strtoll(v, &end, 10);
			if (*end || n < 1 || n > 1000000000LL)
				return usage_error("--sample must be a positive integer, not", v);
			a->sel.sample = n;
		} else if (strcmp(o, "--share") == 0) {
			char *end;
			long p = strtol(v, &end, 10);
			if (*end || p < BACKTEST_SHARE_MIN || p > 100)
				return usage_error("--share must be a percentage from 1 to 100, not", v);
			a->share = (int)p;
		} else if (strcmp(o, "--json") == 0) {
			a->json = true;
		} else {
			return usage_error(o[0] == '-' ? "unknown argument" : "unexpected argument", o);
		}
	}
	if (!a->policy_file)
		return usage_error("missing", "--policy");
	if (a->sel.created_after != AR_TIME_NONE && a->sel.created_before != AR_TIME_NONE &&
	    a->sel.created_before <= a->sel.created_after)
		return usage_error("--until must be after --since, not", "--until");
	return 0;
}

static bool on_tty;
static int64_t total = -1;   /* the selection's size, for the bar; -1 unknown */

#define BAR 30

static bool progress(void *ctx, int64_t seen)
{
	char bar[BAR + 1];
	int full;

	if (!on_tty)
		return true;
	if (total <= 0) {
		fprintf(stderr, "\rbacktest: %lld cases replayed", (long long)seen);
		return true;
	}
	full = (int)(seen >= total ? BAR : seen * BAR / total);
	memset(bar, '#', (size_t)full);
	memset(bar + full, '.', (size_t)(BAR - full));
	bar[BAR] = '\0';
	fprintf(stderr, "\rbacktest [%s] %3d%% %lld/%lld", bar,
		(int)(seen >= total ? 100 : seen * 100 / total), (long long)seen, (long long)total);
	return true;
}

static long long get(const json_t *j, const char *a, const char *b, const char *c)
{
	const json_t *v = json_object_get(j, a);
	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return (long long)json_integer_value(v);
}

static void print_text(const json_t *rep, const char *version)
{
	const json_t *v;
	size_t i;

	printf("draft %s: %lld cases, %lld replayed, %lld unchanged, %lld changed, %lld errors\n",
	       version, get(rep, "cases", "seen", NULL), get(rep, "cases", "replayed", NULL),
	       get(rep, "cases", "unchanged", NULL), get(rep, "cases", "changed", NULL),
	       get(rep, "cases", "errors", NULL));
	printf("\ndecisions changed:\n");
	json_array_foreach(json_object_get(json_object_get(rep, "outcomes"), "changed"), i, v)
		printf("  %-14s -> %-14s %8lld  e.g. %s\n",
		       json_string_value(json_object_get(v, "from")),
		       json_string_value(json_object_get(v, "to")),
		       (long long)json_integer_value(json_object_get(v, "count")),
		       json_string_value(json_array_get(json_object_get(v, "examples"), 0)));
	printf("\nmoney (%s, fen)       before          after\n",
	       json_string_value(json_object_get(json_object_get(rep, "money"), "currency")));
	printf("  refunds   %15lld %15lld\n", get(rep, "money", "refund_cents", "before"),
	       get(rep, "money", "refund_cents", "after"));
	printf("  penalties %15lld %15lld\n", get(rep, "money", "penalty_cents", "before"),
	       get(rep, "money", "penalty_cents", "after"));
	json_array_foreach(json_object_get(json_object_get(rep, "money"), "per_shop"), i, v) {
		if (json_integer_value(json_object_get(json_object_get(v, "refund_cents"), "before")) ==
			    json_integer_value(json_object_get(json_object_get(v, "refund_cents"), "after")) &&
		    json_integer_value(json_object_get(json_object_get(v, "penalty_cents"), "before")) ==
			    json_integer_value(json_object_get(json_object_get(v, "penalty_cents"), "after")))
			continue;
		printf("  shop %-20s refunds %lld -> %lld, penalties %lld -> %lld\n",
		       json_string_value(json_object_get(v, "shop_id")),
		       get(v, "refund_cents", "before", NULL), get(v, "refund_cents", "after", NULL),
		       get(v, "penalty_cents", "before", NULL), get(v, "penalty_cents", "after", NULL));
	}
	printf("\ndeadlines: %lld longer, %lld shorter, %lld the same; auto-refunds at open %lld -> %lld,"
	       " on seller silence %lld -> %lld (%lld unknown)\n",
	       get(rep, "deadlines", "longer", NULL), get(rep, "deadlines", "shorter", NULL),
	       get(rep, "deadlines", "same", NULL),
	       get(json_object_get(rep, "deadlines"), "auto_refunds", "at_open", "before"),
	       get(json_object_get(rep, "deadlines"), "auto_refunds", "at_open", "after"),
	       get(json_object_get(rep, "deadlines"), "auto_refunds", "on_seller_silence", "before"),
	       get(json_object_get(rep, "deadlines"), "auto_refunds", "on_seller_silence", "after"),
	       get(json_object_get(rep, "deadlines"), "auto_refunds", "on_seller_silence", "unknown"));
	printf("\nrules deciding more often:\n");
	json_array_foreach(json_object_get(json_object_get(rep, "rules"), "more"), i, v)
		printf("  %-28s %lld -> %lld\n", json_string_value(json_object_get(v, "id")),
		       get(v, "before", NULL, NULL), get(v, "after", NULL, NULL));
	printf("rules deciding less often:\n");
	json_array_foreach(json_object_get(json_object_get(rep, "rules"), "less"), i, v)
		printf("  %-28s %lld -> %lld\n", json_string_value(json_object_get(v, "id")),
		       get(v, "before", NULL, NULL), get(v, "after", NULL, NULL));
	printf("\ncases the draft cannot decide:\n");
	json_array_foreach(json_object_get(json_object_get(rep, "errors"), "by_type"), i, v) {
		const json_t *ex = json_array_get(json_object_get(v, "examples"), 0);
		printf("  %-22s %8lld  e.g. %s: %s\n", json_string_value(json_object_get(v, "type")),
		       get(v, "count", NULL, NULL), json_string_value(json_object_get(ex, "case_id")),
		       json_string_value(json_object_get(ex, "reason")));
	}
}

int cli_backtest(int argc, char **argv)
{
	cli_args *a = malloc(sizeof(*a));
	ar_app app;
	char msg[512], *text = NULL, *out = NULL;
	size_t len = 0;
	policy *draft = NULL;
	json_t *report = NULL;
	ar_err err;
	int rc = 2;

	memset(&app, 0, sizeof(app));
	ar_err_init(&err);
	if (!a)
		return 1;
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(cli_backtest_usage, stdout);
			rc = 0;
			goto done;
		}
	if ((rc = parse(argc, argv, a)) != 0)
		goto done;
	rc = 2;
	text = app_read_policy_file(a->policy_file, &len, &err);
	if (!text) {
		fprintf(stderr, "arbiter backtest: %s\n", err.detail);
		goto done;
	}
	draft = policy_load(text, len, &err);
	if (!draft) {
		fprintf(stderr, "arbiter backtest: %s: %s\n", a->policy_file, err.detail);
		for (size_t i = 0; i < err.n_fields; i++)
			fprintf(stderr, "  %s: %s\n", err.fields[i].pointer, err.fields[i].message);
		goto done;
	}
	if (!config_load(&app.cfg, msg, sizeof(msg))) {
		fprintf(stderr, "arbiter: %s\n", msg);
		goto done;
	}
	if (!app.cfg.database_url[0] && !app.cfg.read_database_url[0]) {
		fprintf(stderr, "arbiter: ARBITER_DATABASE_URL is not set\n");
		goto done;
	}
	log_set_level(app.cfg.log_level);
	{
		/* decode the recorded requests as the service accepted them */
		codec_options co = { .allow_http_evidence = app.cfg.evidence_http, .now = NULL };
		codec_configure(&co);
	}
	on_tty = isatty(STDERR_FILENO);
	rc = 1;
	/* a terminal gets a bar: the selection is counted once first */
	if (on_tty && !backtest_count(backtest_read_url(&app), &a->sel, &total, &err)) {
		fprintf(stderr, "arbiter backtest: %s\n", err.detail);
		goto done;
	}
	if (!backtest_run(backtest_read_url(&app), draft, &a->sel,
			  a->share ? a->share : app.cfg.backtest_share, app_now(), progress,
			  NULL, &report, &err)) {
		fprintf(stderr, "%sarbiter backtest: %s\n", on_tty ? "\n" : "", err.detail);
		goto done;
	}
	if (on_tty)
		fputc('\n', stderr);
	if (a->json) {
		out = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (!out)
			goto done;
		puts(out);
	} else {
		print_text(report, policy_version(draft));
	}
	rc = 0;
done:
	free(out);
	json_decref(report);
	policy_free(draft);
	free(text);
	free(a);
	return rc;
}
