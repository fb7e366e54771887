/* Policy backtests over HTTP: POST /v1/policy/backtests starts a job, GET /v1/policy/backtests/{id} reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/auth.h"
#include "arbiter/backtest_job.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/log.h"
#include "arbiter/store_backtests.h"

#define BACKTEST_ID_RANDOM 20

/* The draft through the policy loader; its field errors are named under
 * /policy. */
static policy *load_draft(json_t *doc, ar_err *err)
{
	char *text;
	policy *p;
	ar_err perr;

	if (!json_is_object(doc)) {
		ar_err_fieldk(err, "/policy", "field.policy_document", NULL);
		return NULL;
	}
	text = codec_dumps(doc);
	if (!text) {
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		return NULL;
	}
	ar_err_init(&perr);
	p = policy_load(text, strlen(text), &perr);
	free(text);
	if (!p) {
		ar_err_nest(err, "/policy", &perr);
	}
	return p;
}

void api_backtest_create(ar_req *r)
{
	static const char *const keys[] = { "policy", "selection", NULL };
	ar_app *app = req_app(r);
	size_t len;
	const char *body = req_body(r, &len);
	json_t *root = NULL, *sel_json = NULL, *job = NULL;
	policy *draft = NULL;
	backtest_selection *sel = malloc(sizeof(*sel));
	char *sel_text = NULL, rnd[BACKTEST_ID_RANDOM + 1], id[48], loc[96];
	ar_err err;
	bool fields_ok;

	ar_err_init(&err);
	if (!sel) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	root = codec_parse_body(body, len, &err);
	if (!root)
		goto fail;
	fields_ok = codec_check_fields(root, keys, "", &err);
	if (!json_object_get(root, "policy"))
		ar_err_fieldk(&err, "/policy", "field.required", NULL);
	if (!backtest_selection_parse(json_object_get(root, "selection"), sel, &err) || !fields_ok ||
	    ar_err_is_set(&err))
		goto fail;
	draft = load_draft(json_object_get(root, "policy"), &err);
	if (!draft)
		goto fail;
	sel_json = backtest_selection_json(sel);
	sel_text = sel_json ? codec_dumps(sel_json) : NULL;
	if (!sel_text) {
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		goto fail;
	}
	if (!auth_random_hex(rnd, BACKTEST_ID_RANDOM)) {
		ar_err_setk(&err, 503, "overloaded", "detail.no_entropy", NULL);
		goto fail;
	}
	snprintf(id, sizeof(id), "bt_%s", rnd);
	if (!store_backtest_create(app->db, id, req_identity(r)->key_id, policy_version(draft),
				   policy_text(draft), sel_text, &err))
		goto fail;
	/* the job owns the draft from here, whatever happens */
	if (!backtest_job_start(app, id, draft, sel, &err)) {
		ar_err werr;
		draft = NULL;
		ar_err_init(&werr);
		if (!store_backtest_update(app->db, id, "failed", 0, NULL, err.detail, &werr))
			log_kv(LOG_WARN, "backtest refusal not recorded", "backtest_id", id, NULL);
		goto fail;
	}
	draft = NULL;
	log_kv(LOG_INFO, "backtest started", "request_id", req_id(r), "backtest_id", id,
	       "policy", json_string_value(json_object_get(json_object_get(root, "policy"), "version")),
	       NULL);
	if (!store_backtest_get(app->db, id, &job, &err))
		goto fail;
	snprintf(loc, sizeof(loc), "/v1/policy/backtests/%s", id);
	req_add_header(r, "Location", loc);
	req_reply_json(r, 202, job);
	goto done;
fail:
	req_reply_problem(r, &err);
done:
	policy_free(draft);
	json_decref(sel_json);
	json_decref(root);
	free(sel_text);
	free(sel);
}

void api_backtest_get(ar_req *r)
{
	const char *id = req_param(r, 0);
	json_t *job = NULL;
	ar_err err;

	ar_err_init(&err);
	if (!store_backtest_get(req_app(r)->db, id, &job, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, job);
}

bool api_policy_backtest_arg(ar_req *r, const char **backtest_id, ar_err *err)
{
	static const char *const allowed[] = { "backtest_id", NULL };
	json_t *job = NULL;
	const char *id;
	bool ok = false;

	*backtest_id = NULL;
	if (!req_query_known(r, allowed, err))
		return false;
	id = req_query(r, "backtest_id");
	if (!id)
		return true;
	if (!codec_ident_ok(id)) {
		ar_err_fieldk(err, "/query/backtest_id", "field.backtest_id", NULL);
		return false;
	}
	if (!store_backtest_get(req_app(r)->db, id, &job, err)) {
		if (err->status != 404)
			return false;
		ar_err_init(err);
		ar_err_fieldk(err, "/query/backtest_id", "field.no_backtest", "id", id, NULL);
		return false;
	}
	if (strcmp(json_string_value(json_object_get(job, "state")) ?
		   json_string_value(json_object_get(job, "state")) : "", "done") != 0)
		ar_err_fieldk(err, "/query/backtest_id", "field.backtest_unfinished", "id", id, NULL);
	else
		ok = true;
	json_decref(job);
	*backtest_id = ok ? id : NULL;
	return ok;
}

void api_policy_activation_record(ar_req *r, const char *backtest_id)
{
	ar_app *app = req_app(r);
	char version[POLICY_VERSION_LEN];
	ar_err err;

	pthread_rwlock_rdlock(&app->policy_lock);
	snprintf(version, sizeof(version), "%s", policy_version(app->policy));
	pthread_rwlock_unlock(&app->policy_lock);
	ar_err_init(&err);
	if (!store_policy_activation(app->db, version, req_identity(r)->key_id, backtest_id, &err))
		log_kv(LOG_ERROR, "policy activation not recorded", "request_id", req_id(r),
		       "version", version, "backtest_id", backtest_id ? backtest_id : "", "error",
		       err.detail, NULL);
}
