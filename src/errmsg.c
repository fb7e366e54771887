/* Problems and field errors by catalogue key: records key and arguments in an ar_err and renders them in a language. */
#include "arbiter/errmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arbiter/msgs.h"

static void msg_fill(ar_msg *m, const char *key, va_list ap)
{
	const char *name;
	size_t used = 0;

	snprintf(m->key, sizeof(m->key), "%s", key);
	m->n_args = 0;
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		size_t n = strlen(value ? value : "");

		if (m->n_args >= AR_MSG_MAX_ARGS || used >= sizeof(m->values))
			continue;
		if (n >= sizeof(m->values) - used)
			n = sizeof(m->values) - used - 1;
		memcpy(m->values + used, value ? value : "", n);
		m->values[used + n] = '\0';
		m->name[m->n_args] = name;
		m->at[m->n_args++] = (unsigned short)used;
		used += n + 1;
	}
}

bool ar_msg_render(const ar_msg *m, ar_lang l, char *out, size_t len)
{
	const i18n_cat *c = msgs_catalogue();
	i18n_arg args[AR_MSG_MAX_ARGS];
	char tmp[AR_ERR_TEXT * 2];

	if (!c || !m->key[0] || len == 0)
		return false;
	for (size_t i = 0; i < m->n_args; i++)
		args[i] = (i18n_arg){ m->name[i], m->values + m->at[i] };
	/* i18n_format writes as it goes; a refusal must leave out as it was */
	if (!i18n_format(c, l, m->key, args, m->n_args, tmp, sizeof(tmp)) || strlen(tmp) >= len)
		return false;
	memcpy(out, tmp, strlen(tmp) + 1);
	return true;
}

/* The English text for logs; a key without one shows as itself, which the
 * catalogue test (tests/api/test_i18n_sources.py) keeps from shipping. */
static void english(const ar_msg *m, char *out, size_t len)
{
	char tmp[AR_ERR_TEXT * 2];

	if (ar_msg_render(m, AR_LANG_EN, tmp, sizeof(tmp)))
		snprintf(out, len, "%s", tmp); /* cut to fit, as the printf path did */
	else
		snprintf(out, len, "%s", m->key);
}

void ar_err_vsetk(ar_err *e, int status, const char *type, const char *key, va_list ap)
{
	const i18n_cat *c = msgs_catalogue();
	char tkey[96];
	const char *title;

	if (e->status != 0)
		return;
	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", type);
	snprintf(tkey, sizeof(tkey), "problem.%s.title", type);
	title = c ? i18n_text(c, AR_LANG_EN, tkey) : NULL;
	snprintf(e->title, sizeof(e->title), "%s", title ? title : type);
	msg_fill(&e->msg, key, ap);
	english(&e->msg, e->detail, sizeof(e->detail));
}

void ar_err_setk(ar_err *e, int status, const char *type, const char *key, ...)
{
	va_list ap;

	va_start(ap, key);
	ar_err_vsetk(e, status, type, key, ap);
	va_end(ap);
}

void ar_err_vfieldk(ar_err *e, const char *pointer, const char *key, va_list ap)
{
	ar_field_error *f;

	ar_err_setk(e, 422, "validation", "detail.fields_invalid", NULL);
	if (e->n_fields >= AR_ERR_MAX_FIELDS)
		return;
	f = &e->fields[e->n_fields++];
	snprintf(f->pointer, sizeof(f->pointer), "%s", pointer);
	msg_fill(&f->msg, key, ap);
	english(&f->msg, f->message, sizeof(f->message));
}

void ar_err_fieldk(ar_err *e, const char *pointer, const char *key, ...)
{
	va_list ap;

	va_start(ap, key);
	ar_err_vfieldk(e, pointer, key, ap);
	va_end(ap);
}

void ar_err_field_copy(ar_err *e, const char *prefix, const ar_field_error *f)
{
	ar_field_error *d;

	if (e->n_fields >= AR_ERR_MAX_FIELDS)
		return;
	d = &e->fields[e->n_fields++];
	*d = *f;
	snprintf(d->pointer, sizeof(d->pointer), "%.60s%.190s", prefix, f->pointer);
}

void ar_err_nest(ar_err *e, const char *prefix, const ar_err *inner)
{
	if (e->status == 0) {
		e->status = inner->status;
		memcpy(e->type, inner->type, sizeof(e->type));
		memcpy(e->title, inner->title, sizeof(e->title));
		memcpy(e->detail, inner->detail, sizeof(e->detail));
		e->msg = inner->msg;
	}
	for (size_t i = 0; i < inner->n_fields; i++)
		ar_err_field_copy(e, prefix, &inner->fields[i]);
}

const char *ar_msg_int(char *buf, long long v)
{
	snprintf(buf, 24, "%lld", v);
	return buf;
}

const char *ar_msg_money(char *buf, long long fen)
{
	i18n_money((int64_t)fen, buf, 32);
	return buf;
}
