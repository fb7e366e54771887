/* A shop's view of a decision: counts other shops' cases gave the policy are withheld (pure). */
#include "arbiter/redact.h"

#include <stdlib.h>
#include <string.h>

#include "arbiter/codec.h"
#include "arbiter/errmsg.h"

static const char *const cross_rules[] = { "R-RISK-MANY-CASES", "R-RISK-SAME-TEXT" };
static const char *const cross_signals[] = { "many_cases_7d", "same_text_other_shops" };

/* Both reasons are the same for every case, so they say nothing a shop
 * could compare across its cases beyond the rule's result. */
#define REASON_FIRED "needs review: the platform's records across shops (details withheld from shop keys)"
#define REASON_OTHER "checked against the platform's records across shops (details withheld from shop keys)"

static bool listed(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++) {
		if (strcmp(s, list[i]) == 0)
			return true;
	}
	return false;
}

static bool oom(ar_err *err)
{
	ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
	return false;
}

bool redact_decision(json_t *decision, ar_err *err)
{
	json_t *rules = json_object_get(decision, "rules");
	json_t *signals = json_object_get(json_object_get(decision, "risk"), "signals");
	json_t *rule;
	size_t i;

	json_array_foreach(rules, i, rule) {
		const char *result = json_string_value(json_object_get(rule, "result"));
		if (!listed(json_string_value(json_object_get(rule, "id")), cross_rules,
			    sizeof(cross_rules) / sizeof(cross_rules[0])))
			continue;
		if (json_object_set_new(rule, "reason", json_string(result && strcmp(result, "fired") == 0
								    ? REASON_FIRED : REASON_OTHER)))
			return oom(err);
		/* the counts themselves are what is withheld */
		json_object_del(rule, "args");
	}
	/* backwards, so that a removal moves only entries already looked at */
	for (i = json_array_size(signals); i > 0; i--) {
		if (listed(json_string_value(json_array_get(signals, i - 1)), cross_signals,
			   sizeof(cross_signals) / sizeof(cross_signals[0])))
			json_array_remove(signals, i - 1);
	}
	return true;
}

bool redact_case(json_t *c, ar_err *err)
{
	json_t *d = json_object_get(c, "decision");

	return !json_is_object(d) || redact_decision(d, err);
}

bool redact_event(json_t *e, ar_err *err)
{
	json_t *data = json_object_get(e, "data");
	json_t *d = json_object_get(data, "decision");
	json_t *h = json_object_get(json_object_get(data, "inputs"), "history");

	/* the open event's replay inputs (backtest.h) hold the same counts */
	json_object_del(h, "cases_7d");
	json_object_del(h, "same_text_other_shops_30d");
	/* The digests are over the data as stored: with the rest of a redacted
	 * event known, a digest would let a shop test guesses of the counts
	 * (small integers) one by one, and every later digest of the chain
	 * hangs on it. A shop has the server check the chain instead
	 * (GET /v1/cases/{id}/verify). */
	if ((json_object_get(e, "hash") && json_object_set_new(e, "hash", json_null())) ||
	    (json_object_get(e, "prev_hash") && json_object_set_new(e, "prev_hash", json_null()))) {
		ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
		return false;
	}
	return !json_is_object(d) || redact_decision(d, err);
}

bool redact_case_text(char **json, size_t *len, ar_err *err)
{
	json_error_t jerr;
	json_t *c = json_loadb(*json, *len, 0, &jerr);
	char *out = NULL;
	bool ok = false;

	if (!c) {
		ar_err_setk(err, 500, "internal", "detail.case_not_json", "error", jerr.text, NULL);
		goto fail;
	}
	if (!redact_case(c, err))
		goto fail;
	out = codec_dumps(c);
	if (!out) {
		oom(err);
		goto fail;
	}
	free(*json);
	*json = out;
	*len = strlen(out);
	ok = true;
fail:
	json_decref(c);
	return ok;
}

bool redact_policy(json_t *doc, const char (*shops)[AR_MAX_ID_LEN + 1], size_t n, ar_err *err)
{
	json_t *over = json_object_get(doc, "shops"), *kept;
	const char *name;
	json_t *v;

	if (!json_is_object(over))
		return true;
	kept = json_object();
	if (!kept)
		goto oom;
	json_object_foreach(over, name, v) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(shops[i], name) == 0 && json_object_set(kept, name, v) != 0) {
				json_decref(kept);
				goto oom;
			}
		}
	}
	if (json_object_set_new(doc, "shops", kept) != 0)
		goto oom;
	return true;
oom:
	ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
	return false;
}
