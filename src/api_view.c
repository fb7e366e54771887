/* What a reply shows a key bound to shops of the decisions its cases carry (redact.h applied at the edge). */
#include "arbiter/api.h"
#include "arbiter/redact.h"

/* Keys that see every shop (platform, agents, admins) read it all. */
static bool shop_view(ar_req *r)
{
	return auth_scope(req_identity(r)) != NULL;
}

bool api_view_case_text(ar_req *r, char **json, size_t *len, ar_err *err)
{
	return !shop_view(r) || redact_case_text(json, len, err);
}

bool api_view_case(ar_req *r, json_t *c, ar_err *err)
{
	return !shop_view(r) || redact_case(c, err);
}

bool api_view_events(ar_req *r, json_t *items, ar_err *err)
{
	json_t *e;
	size_t i;

	if (!shop_view(r))
		return true;
	json_array_foreach(items, i, e) {
		if (!redact_event(e, err))
			return false;
	}
	return true;
}

bool api_view_policy(ar_req *r, json_t *doc, ar_err *err)
{
	const ar_identity *who = req_identity(r);

	return !shop_view(r) || redact_policy(doc, who->shops, who->n_shops, err);
}

bool api_view_decision(ar_req *r, json_t *decision, ar_err *err)
{
	return !shop_view(r) || redact_decision(decision, err);
}
