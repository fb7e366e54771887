/* Reply languages (pure): Accept-Language negotiation, message catalogues with {name} placeholders, money as ¥. */
#include "arbiter/i18n.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const TAGS[AR_LANG__COUNT] = { "en", "zh-CN" };

struct i18n_cat {
	json_t *lang[AR_LANG__COUNT];
};

const char *i18n_lang_tag(ar_lang l)
{
	return (unsigned)l < AR_LANG__COUNT ? TAGS[l] : TAGS[AR_LANG_EN];
}

/* Does tag start with the subtag prefix p, ending there or at a '-'? */
static bool has_prefix(const char *tag, size_t n, const char *p)
{
	size_t k = strlen(p);

	return n >= k && strncasecmp(tag, p, k) == 0 && (n == k || tag[k] == '-');
}

static bool parse_n(const char *tag, size_t n, ar_lang *out)
{
	static const char *const traditional[] = { "zh-TW", "zh-HK", "zh-MO", "zh-Hant" };

	if (has_prefix(tag, n, "en")) {
		*out = AR_LANG_EN;
		return true;
	}
	if (!has_prefix(tag, n, "zh"))
		return false;
	for (size_t i = 0; i < sizeof(traditional) / sizeof(traditional[0]); i++)
		if (has_prefix(tag, n, traditional[i]))
			return false;
	*out = AR_LANG_ZH_CN;
	return true;
}

bool i18n_lang_parse(const char *tag, ar_lang *out)
{
	return tag && parse_n(tag, strlen(tag), out);
}

/* A qvalue (RFC 9110 12.4.2): 0, 1, 0.ddd or 1.000, as thousandths; -1 if
 * malformed. */
static int parse_q(const char *s, size_t n)
{
	int q, scale = 100;
	size_t i;

	if (n == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = (s[0] - '0') * 1000;
	if (n == 1)
		return q;
	if (s[1] != '.' || n > 5)
		return -1;
	for (i = 2; i < n; i++, scale /= 10) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		q += (s[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

static size_t trim(const char **s, size_t n)
{
	while (n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		n--;
	}
	while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
		n--;
	return n;
}

ar_lang i18n_negotiate(const char *accept_language, ar_lang dflt)
{
	const char *p = accept_language;
	int best_q = 0;
	ar_lang best = dflt;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *semi = memchr(p, ';', len);
		const char *range = p;
		size_t rlen = trim(&range, semi ? (size_t)(semi - p) : len);
		int q = 1000;
		ar_lang l;

		if (semi) {
			const char *param = semi + 1;
			size_t plen = trim(&param, len - (size_t)(semi + 1 - p));

			q = plen > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '='
				? parse_q(param + 2, plen - 2) : -1;
		}
		p = end ? end + 1 : NULL;
		if (q <= best_q)
			continue;
		if (rlen == 1 && range[0] == '*')
			l = dflt;
		else if (!parse_n(range, rlen, &l))
			continue;
		best_q = q;
		best = l;
	}
	return best;
}

i18n_cat *i18n_cat_load(const char *const texts[AR_LANG__COUNT], ar_err *err)
{
	i18n_cat *c = calloc(1, sizeof(*c));
	json_error_t jerr;

	if (!c) {
		ar_err_set(err, 503, "overloaded", "Out of memory", "try again");
		return NULL;
	}
	for (int l = 0; l < AR_LANG__COUNT; l++) {
		const char *k;
		json_t *v;

		c->lang[l] = json_loads(texts[l] ? texts[l] : "", 0, &jerr);
		if (!json_is_object(c->lang[l])) {
			ar_err_set(err, 500, "internal", "Internal error",
				   "catalogue %s is not a JSON object: %s", TAGS[l],
				   c->lang[l] ? "another type" : jerr.text);
			goto fail;
		}
		json_object_foreach(c->lang[l], k, v) {
			if (!json_is_string(v)) {
				ar_err_set(err, 500, "internal", "Internal error",
					   "catalogue %s: %s is not a string", TAGS[l], k);
				goto fail;
			}
		}
	}
	return c;
fail:
	i18n_cat_free(c);
	return NULL;
}

void i18n_cat_free(i18n_cat *c)
{
	if (!c)
		return;
	for (int l = 0; l < AR_LANG__COUNT; l++)
		json_decref(c->lang[l]);
	free(c);
}

const char *i18n_text(const i18n_cat *c, ar_lang l, const char *key)
{
	if (!c || (unsigned)l >= AR_LANG__COUNT || !key)
		return NULL;
	return json_string_value(json_object_get(c->lang[l], key));
}

/* The next {name} in s at or after *pos: its name in name[], true; false
 * at the end. A '{' not opening a name is text. */
static bool next_placeholder(const char *s, size_t *pos, size_t *start, char *name, size_t cap)
{
	for (size_t i = *pos; s[i]; i++) {
		size_t j = i + 1;

		if (s[i] != '{')
			continue;
		while (s[j] == '_' || isalnum((unsigned char)s[j]))
			j++;
		if (s[j] != '}' || j == i + 1 || j - i - 1 >= cap)
			continue;
		memcpy(name, s + i + 1, j - i - 1);
		name[j - i - 1] = '\0';
		*start = i;
		*pos = j + 1;
		return true;
	}
	return false;
}

/* Does every placeholder of a occur in b? */
static bool placeholders_within(const char *a, const char *b)
{
	char name[64], other[64];
	size_t pa = 0, sa;

	while (next_placeholder(a, &pa, &sa, name, sizeof(name))) {
		size_t pb = 0, sb;
		bool found = false;

		while (!found && next_placeholder(b, &pb, &sb, other, sizeof(other)))
			found = strcmp(name, other) == 0;
		if (!found)
			return false;
	}
	return true;
}

bool i18n_cat_check(const i18n_cat *c, ar_err *err)
{
	bool ok = true;

	for (int l = 0; l < AR_LANG__COUNT; l++) {
		const char *k;
		json_t *v;

		json_object_foreach(c->lang[l], k, v) {
			for (int m = 0; m < AR_LANG__COUNT; m++) {
				const char *t = json_string_value(json_object_get(c->lang[m], k));
				char ptr[AR_ERR_TEXT];

				snprintf(ptr, sizeof(ptr), "/%s/%s", TAGS[m], k);
				if (!t) {
					ar_err_field(err, ptr, "missing (present in %s)", TAGS[l]);
					ok = false;
				} else if (m > l && (!placeholders_within(json_string_value(v), t) ||
						     !placeholders_within(t, json_string_value(v)))) {
					ar_err_field(err, ptr, "placeholders differ from %s", TAGS[l]);
					ok = false;
				}
			}
		}
	}
	return ok;
}

bool i18n_format(const i18n_cat *c, ar_lang l, const char *key, const i18n_arg *args,
		 size_t n_args, char *out, size_t len)
{
	const char *t = i18n_text(c, l, key);
	size_t pos = 0, start, done = 0, o = 0;
	char name[64];

	if (!t || len == 0)
		return false;
	while (next_placeholder(t, &pos, &start, name, sizeof(name))) {
		const char *v = NULL;

		for (size_t i = 0; i < n_args && !v; i++)
			if (strcmp(args[i].name, name) == 0)
				v = args[i].value ? args[i].value : "";
		if (!v)
			return false;
		if (o + (start - done) + strlen(v) >= len)
			return false;
		memcpy(out + o, t + done, start - done);
		o += start - done;
		memcpy(out + o, v, strlen(v));
		o += strlen(v);
		done = pos;
	}
	if (o + strlen(t + done) >= len)
		return false;
	memcpy(out + o, t + done, strlen(t + done) + 1);
	return true;
}

void i18n_money(int64_t fen, char *out, size_t len)
{
	uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;

	snprintf(out, len, "%s\xc2\xa5%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", a / 100, a % 100);
}

void i18n_duration(int64_t ms, ar_lang l, char *out, size_t len)
{
	static const char *const day[AR_LANG__COUNT][2] = { { " day", " days" }, { " 天", " 天" } };
	static const char *const hour[AR_LANG__COUNT] = { " h", " 小时" };
	uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	uint64_t days = v / 86400000u, rem = v % 86400000u;
	unsigned h = (unsigned)(rem / 3600000u), m = (unsigned)(rem / 60000u % 60u);
	unsigned s = (unsigned)(rem / 1000u % 60u), frac = (unsigned)(rem % 1000u);
	const char *sign = ms < 0 ? "-" : "";
	char tail[24] = "";

	if ((unsigned)l >= AR_LANG__COUNT)
		l = AR_LANG_EN;
	if (rem == 0) {
		snprintf(out, len, "%s%" PRIu64 "%s", sign, days, day[l][days != 1]);
		return;
	}
	if (days == 0 && rem % 3600000u == 0) {
		snprintf(out, len, "%s%u%s", sign, h, hour[l]);
		return;
	}
	if (frac)
		snprintf(tail, sizeof(tail), ".%03u", frac);
	if (days)
		snprintf(out, len, "%s%" PRIu64 "%s %02u:%02u:%02u%s", sign, days, day[l][days != 1],
			 h, m, s, tail);
	else
		snprintf(out, len, "%s%02u:%02u:%02u%s", sign, h, m, s, tail);
}
