/* The compiled-in message catalogues and the localised texts of replies: problems, decision reasons, event summaries. */
#include "arbiter/msgs.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "arbiter/assets.h"
#include "arbiter/errmsg.h"
#include "arbiter/policy.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static i18n_cat *catalogue;
static ar_err load_err;

static void load(void)
{
	const char *texts[AR_LANG__COUNT] = { ar_i18n_en, ar_i18n_zh_cn };

	ar_err_init(&load_err);
	catalogue = i18n_cat_load(texts, &load_err);
}

const i18n_cat *msgs_catalogue(void)
{
	pthread_once(&once, load);
	return catalogue;
}

bool msgs_check(ar_err *err)
{
	if (!msgs_catalogue()) {
		*err = load_err;
		return false;
	}
	return i18n_cat_check(catalogue, err);
}

void msgs_problem(const ar_err *err, ar_lang l, const char **title, char *detail, size_t len)
{
	const i18n_cat *c = msgs_catalogue();
	char key[128];
	const char *t;

	snprintf(key, sizeof(key), "problem.%s.title", err->type[0] ? err->type : "_other");
	t = i18n_text(c, l, key);
	*title = t ? t : l == AR_LANG_EN ? err->title : i18n_text(c, l, "problem._other.title");
	if (!*title)
		*title = err->title;
	if (ar_msg_render(&err->msg, l, detail, len))
		return;
	if (l == AR_LANG_EN) {
		snprintf(detail, len, "%s", err->detail);
		return;
	}
	snprintf(key, sizeof(key), "problem.%s.detail", err->type[0] ? err->type : "_other");
	t = i18n_text(c, l, key);
	if (!t)
		t = i18n_text(c, l, "problem._other.detail");
	snprintf(detail, len, "%s", t ? t : err->detail);
}

void msgs_field(const ar_field_error *f, ar_lang l, char *out, size_t len)
{
	if (!ar_msg_render(&f->msg, l, out, len))
		snprintf(out, len, "%s", f->message);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

/* One trace entry's args as placeholder values: fen as ¥, milliseconds as
 * a span in l, other numbers in decimal, names as given. Returns how many
 * of args[] were filled. */
static size_t rule_args(const json_t *obj, ar_lang l, i18n_arg *args, size_t cap,
			char (*vals)[48])
{
	const char *name;
	json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)obj, name, v) {
		if (n >= cap)
			break;
		if (json_is_string(v)) {
			snprintf(vals[n], 48, "%s", json_string_value(v));
		} else if (!json_is_integer(v)) {
			continue;
		} else if (ends_with(name, "_cents")) {
			i18n_money((int64_t)json_integer_value(v), vals[n], 48);
		} else if (ends_with(name, "_ms")) {
			i18n_duration((int64_t)json_integer_value(v), l, vals[n], 48);
		} else {
			snprintf(vals[n], 48, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		}
		args[n] = (i18n_arg){ name, vals[n] };
		n++;
	}
	return n;
}

bool msgs_rule_reason(const json_t *rule, ar_lang l, int64_t total_cents, char *out, size_t len)
{
	const i18n_cat *c = msgs_catalogue();
	char money[32];
	const char *id = json_string_value(json_object_get(rule, "id"));
	const char *result = json_string_value(json_object_get(rule, "result"));
	const json_t *obj = json_object_get(rule, "args");
	const char *when = json_string_value(json_object_get(obj, "when"));
	char key[160], rkey[32], vals[POLICY_RULE_ARGS + 2][48];
	i18n_arg args[POLICY_RULE_ARGS + 5];
	const char *rtext;
	size_t n = 3;

	if (!c || !id || !result)
		return false;
	i18n_money(total_cents, money, sizeof(money));
	snprintf(rkey, sizeof(rkey), "result.%s", result);
	rtext = i18n_text(c, l, rkey);
	args[0] = (i18n_arg){ "result", rtext ? rtext : result };
	args[1] = (i18n_arg){ "total", money };
	args[2] = (i18n_arg){ "id", id };
	if (json_is_object(obj)) {
		n += rule_args(obj, l, args + 3, POLICY_RULE_ARGS + 2, vals);
		if (when)
			snprintf(key, sizeof(key), "rule.%s.%s.%s", id, result, when);
		else
			snprintf(key, sizeof(key), "rule.%s.%s", id, result);
		if (i18n_text(c, l, key) && i18n_format(c, l, key, args, n, out, len))
			return true;
	}
	snprintf(key, sizeof(key), "rule.%s", id);
	if (!i18n_text(c, l, key))
		snprintf(key, sizeof(key), "rule._other");
	return i18n_format(c, l, key, args, 3, out, len);
}

bool msgs_decision(json_t *decision, ar_lang l)
{
	json_t *rules = json_object_get(decision, "rules"), *rule;
	json_t *total = json_object_get(json_object_get(decision, "refund"), "total_cents");
	int64_t fen = json_is_integer(total) ? (int64_t)json_integer_value(total) : 0;
	char text[512];
	size_t i;

	if (l == AR_LANG_EN || !json_is_array(rules))
		return true;
	json_array_foreach(rules, i, rule) {
		if (!msgs_rule_reason(rule, l, fen, text, sizeof(text)))
			continue;
		if (json_object_set_new(rule, "reason", json_string(text)))
			return false;
	}
	return true;
}

bool msgs_events(json_t *items, ar_lang l)
{
	const i18n_cat *c = msgs_catalogue();
	json_t *e;
	size_t i;

	json_array_foreach(items, i, e) {
		const char *action = json_string_value(json_object_get(e, "action"));
		const char *role = json_string_value(json_object_get(json_object_get(e, "actor"), "role"));
		const char *state = json_string_value(json_object_get(e, "to_state"));
		char key[128], text[512];
		const char *actor, *st;
		i18n_arg args[3];

		if (!action)
			continue;
		snprintf(key, sizeof(key), "role.%s", role ? role : "");
		actor = i18n_text(c, l, key);
		snprintf(key, sizeof(key), "state.%s", state ? state : "");
		st = i18n_text(c, l, key);
		args[0] = (i18n_arg){ "actor", actor ? actor : role };
		args[1] = (i18n_arg){ "state", st ? st : state };
		args[2] = (i18n_arg){ "action", action };
		snprintf(key, sizeof(key), "event.%s", action);
		if (!i18n_text(c, l, key))
			snprintf(key, sizeof(key), "event._other");
		if (!i18n_format(c, l, key, args, 3, text, sizeof(text)))
			continue;
		if (json_object_set_new(e, "summary", json_string(text)))
			return false;
	}
	return true;
}
