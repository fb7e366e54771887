/* GET /v1/checkpoints/latest and /v1/checkpoints/keys: what an outside party copies to anchor the audit trail. */
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/app.h"
#include "arbiter/auth.h"
#include "arbiter/checkpoint_writer.h"
#include "arbiter/errmsg.h"
#include "arbiter/store_stats.h"

/* A checkpoint counts the chains every shop changed: platform keys only. */
static bool unscoped(ar_req *r)
{
	ar_err err;

	if (!auth_scope(req_identity(r)))
		return true;
	ar_err_init(&err);
	ar_err_setk(&err, 403, "forbidden", "detail.checkpoints_shop_key", NULL);
	req_reply_problem(r, &err);
	return false;
}

void api_checkpoint_latest(ar_req *r)
{
	/* any replica answers from the database: the line is signed, so the
	 * database holding it adds no trust, and the writer may be elsewhere */
	static const char sql[] =
		"SELECT json_build_object('checkpoint',"
		" (SELECT line::json FROM checkpoints ORDER BY no DESC LIMIT 1))";
	ar_err err;
	json_t *row, *c;

	if (!unscoped(r))
		return;
	ar_err_init(&err);
	if (!store_query_json(req_app(r)->db, "checkpoint_latest", sql, 0, NULL, &row, &err)) {
		req_reply_problem(r, &err);
		return;
	}
	c = json_incref(json_object_get(row, "checkpoint"));
	json_decref(row);
	if (!json_is_object(c)) {
		json_decref(c);
		ar_err_setk(&err, 404, "not-found", "detail.no_checkpoint", NULL);
		req_reply_problem(r, &err);
		return;
	}
	req_reply_json(r, 200, c);
}

void api_checkpoint_keys(ar_req *r)
{
	ckpt_writer *w = req_app(r)->checkpoints;
	json_t *items = json_array();
	char *pem = NULL;

	if (!unscoped(r)) {
		json_decref(items);
		return;
	}
	if (!items)
		goto fail;
	if (w) {
		const ckpt_key *k = ckpt_writer_key(w);
		pem = ckpt_key_public_pem(k);
		if (!pem || json_array_append_new(items, json_pack("{s:s, s:s, s:s}",
				"key_id", ckpt_key_id(k), "algorithm", "Ed25519",
				"public_key_pem", pem)) != 0)
			goto fail;
	}
	free(pem);
	req_reply_json(r, 200, json_pack("{s:o}", "items", items));
	return;
fail:
	free(pem);
	json_decref(items);
	{
		ar_err err;
		ar_err_init(&err);
		ar_err_setk(&err, 503, "overloaded", "detail.try_again", NULL);
		req_reply_problem(r, &err);
	}
}
