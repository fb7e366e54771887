/* What a reply shows its reader: a key bound to shops sees redacted decisions (redact.h), every reader texts in its language (msgs.h). */
#include "arbiter/api.h"
#include "arbiter/codec.h"
#include "arbiter/errmsg.h"
#include "arbiter/msgs.h"
#include "arbiter/redact.h"

#include <stdlib.h>
#include <string.h>

/* Keys that see every shop (platform, agents, admins) read it all. */
static bool shop_view(ar_req *r)
{
	return auth_scope(req_identity(r)) != NULL;
}

static bool oom(ar_err *err)
{
	ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
	return false;
}

bool api_view_case_text(ar_req *r, char **json, size_t *len, ar_err *err)
{
	json_error_t jerr;
	json_t *c;
	char *out = NULL;

	/* English readers get the stored text as it is (or redacted): the
	 * read paths' no-parse fast path */
	if (req_lang(r) == AR_LANG_EN)
		return !shop_view(r) || redact_case_text(json, len, err);
	c = json_loadb(*json, *len, 0, &jerr);
	if (!c) {
		ar_err_setk(err, 500, "internal", "detail.case_not_json", "error", jerr.text, NULL);
		return false;
	}
	if (api_view_case(r, c, err))
		out = codec_dumps(c);
	json_decref(c);
	if (!out)
		return ar_err_is_set(err) ? false : oom(err);
	free(*json);
	*json = out;
	*len = strlen(out);
	return true;
}

bool api_view_case(ar_req *r, json_t *c, ar_err *err)
{
	json_t *d;

	if (shop_view(r) && !redact_case(c, err))
		return false;
	d = json_object_get(c, "decision");
	return !json_is_object(d) || msgs_decision(d, req_lang(r)) || oom(err);
}

bool api_view_events(ar_req *r, json_t *items, ar_err *err)
{
	json_t *e;
	size_t i;

	if (shop_view(r)) {
		json_array_foreach(items, i, e) {
			if (!redact_event(e, err))
				return false;
		}
	}
	return msgs_events(items, req_lang(r)) || oom(err);
}

bool api_view_policy(ar_req *r, json_t *doc, ar_err *err)
{
	const ar_identity *who = req_identity(r);

	return !shop_view(r) || redact_policy(doc, who->shops, who->n_shops, err);
}

bool api_view_decision(ar_req *r, json_t *decision, ar_err *err)
{
	if (shop_view(r) && !redact_decision(decision, err))
		return false;
	return msgs_decision(decision, req_lang(r)) || oom(err);
}
