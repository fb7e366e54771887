/* POST /v1/cases/{id}/deadlines/{name}/pause and /resume: a deadline stopped while the case waits on the platform. */
#include <stdlib.h>
#include <string.h>

#include "arbiter/api.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/sla.h"
#include "arbiter/store_pauses.h"

#define PAUSE_REASON_MAX 200

static void pause_or_resume(ar_req *r, bool resume)
{
	static const char *const fields[] = { "reason", NULL };
	ar_app *app = req_app(r);
	const ar_identity *who = req_identity(r);
	size_t len;
	const char *body = req_body(r, &len);
	json_t *root = NULL;
	fsm_deadline dl;
	store_pause p = { .case_id = req_param(r, 0), .shop_scope = auth_scope(who),
			  .deadline = req_param(r, 1), .resume = resume,
			  .actor_role = fsm_role_name(who->role), .actor_id = who->key_id };
	store_pause_result res;
	store_case_row *row = NULL;
	ar_err err;

	ar_err_init(&err);
	req_set_case(r, p.case_id);
	root = codec_parse_body(body, len, &err);
	if (!root)
		goto fail;
	if (!json_is_object(root)) {
		ar_err_fieldk(&err, "", "field.object", NULL);
		goto fail;
	}
	if (!codec_check_fields(root, fields, "", &err) ||
	    !codec_get_string(root, "reason", "", !resume, PAUSE_REASON_MAX, &p.reason, &err))
		goto fail;
	if (!fsm_deadline_parse(p.deadline, &dl)) {
		ar_err_setk(&err, 404, "not-found", "detail.no_deadline_named", "deadline", p.deadline,
			    NULL);
		goto fail;
	}
	if (!store_deadline_pause(app->db, &p, &res, &err))
		goto fail;
	switch (res) {
	case STORE_PAUSE_OK:
		break;
	case STORE_PAUSE_NO_CASE:
		ar_err_setk(&err, 404, "not-found", "detail.no_such_case", NULL);
		goto fail;
	case STORE_PAUSE_NO_DEADLINE:
		ar_err_setk(&err, 404, "not-found", "detail.deadline_not_armed", "deadline", p.deadline,
			    NULL);
		goto fail;
	case STORE_PAUSE_PAUSED:
		ar_err_setk(&err, 409, "deadline-paused", "detail.deadline_paused", "deadline",
			    p.deadline, NULL);
		goto fail;
	case STORE_PAUSE_RUNNING:
		ar_err_setk(&err, 409, "deadline-running", "detail.deadline_running", "deadline",
			    p.deadline, NULL);
		goto fail;
	case STORE_PAUSE_DUE:
		ar_err_setk(&err, 409, "deadline-passed", "detail.deadline_due_first", "deadline",
			    p.deadline, NULL);
		goto fail;
	}
	/* the resumed deadline may fall inside the scheduler's loaded window */
	if (resume)
		sla_poke(app->sla);
	if (!store_case_get_row(app->db, p.case_id, p.shop_scope, &row, &err))
		goto fail;
	api_reply_case_row(r, 200, row);
	store_case_rows_free(row, 1);
	json_decref(root);
	return;
fail:
	json_decref(root);
	req_reply_problem(r, &err);
}

void api_deadline_pause(ar_req *r)
{
	pause_or_resume(r, false);
}

void api_deadline_resume(ar_req *r)
{
	pause_or_resume(r, true);
}
