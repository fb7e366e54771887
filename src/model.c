/* Names, parsers and the error collector shared by every module (pure). */
#include "arbiter/model.h"

#include "arbiter/errmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[AR_KIND__COUNT] = {
	"refund", "return", "exchange", "repair", "complaint",
};

static const char *const reason_names[AR_REASON__COUNT] = {
	"quality_defect", "not_as_described", "wrong_item", "missing_item",
	"counterfeit", "late_shipment", "out_of_stock", "damaged_in_transit",
	"lost_in_transit", "changed_mind", "wrong_size_chosen",
	"bought_by_mistake", "damaged_by_buyer", "poor_service", "safety_hazard",
	"price_protection",
};

static const char *const evidence_names[AR_EVIDENCE__COUNT] = {
	"photo", "video", "chat_log", "logistics", "document",
};

static const char *const insurance_names[] = { "none", "buyer", "seller" };

static bool lookup(const char *const *names, int n, const char *s, int *out)
{
	if (!s)
		return false;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

const char *ar_kind_name(ar_kind k)
{
	return (unsigned)k < AR_KIND__COUNT ? kind_names[k] : "?";
}

bool ar_kind_parse(const char *s, ar_kind *out)
{
	int i;
	if (!lookup(kind_names, AR_KIND__COUNT, s, &i))
		return false;
	*out = (ar_kind)i;
	return true;
}

const char *ar_reason_name(ar_reason r)
{
	return (unsigned)r < AR_REASON__COUNT ? reason_names[r] : "?";
}

bool ar_reason_parse(const char *s, ar_reason *out)
{
	int i;
	if (!lookup(reason_names, AR_REASON__COUNT, s, &i))
		return false;
	*out = (ar_reason)i;
	return true;
}

const char *ar_evidence_kind_name(ar_evidence_kind k)
{
	return (unsigned)k < AR_EVIDENCE__COUNT ? evidence_names[k] : "?";
}

bool ar_evidence_kind_parse(const char *s, ar_evidence_kind *out)
{
	int i;
	if (!lookup(evidence_names, AR_EVIDENCE__COUNT, s, &i))
		return false;
	*out = (ar_evidence_kind)i;
	return true;
}

const char *ar_insurance_name(ar_insurance i)
{
	return (unsigned)i <= AR_INSURANCE_SELLER ? insurance_names[i] : "?";
}

bool ar_insurance_parse(const char *s, ar_insurance *out)
{
	int i;
	if (!lookup(insurance_names, 3, s, &i))
		return false;
	*out = (ar_insurance)i;
	return true;
}

void ar_case_id_format(char out[AR_CASE_ID_LEN + 1], int64_t unix_ms,
		       const char rnd[AR_CASE_ID_RANDOM])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t t = (uint64_t)unix_ms;

	out[0] = 'c';
	out[1] = '_';
	for (int i = 13; i >= 2; i--, t >>= 4)
		out[i] = hex[t & 15];
	memcpy(out + 14, rnd, AR_CASE_ID_RANDOM);
	out[AR_CASE_ID_LEN] = '\0';
}

void ar_err_init(ar_err *e)
{
	/* Nothing past n_fields is read: clearing the 8 KiB of field slots
	 * showed as a tenth of a create's instructions. */
	e->status = 0;
	e->type[0] = e->title[0] = e->detail[0] = '\0';
	e->msg.key[0] = '\0';
	e->n_fields = 0;
}

void ar_err_set(ar_err *e, int status, const char *type, const char *title,
		const char *fmt, ...)
{
	va_list ap;

	if (e->status != 0)
		return;
	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", type);
	snprintf(e->title, sizeof(e->title), "%s", title);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
}

void ar_err_cursor(ar_err *e, const char *pointer)
{
	ar_err_setk(e, 400, "invalid-cursor", "detail.cursor", NULL);
	ar_err_fieldk(e, pointer, "field.cursor", NULL);
}

void ar_err_field(ar_err *e, const char *pointer, const char *fmt, ...)
{
	va_list ap;
	ar_field_error *f;

	ar_err_setk(e, 422, "validation", "detail.fields_invalid", NULL);
	if (e->n_fields >= AR_ERR_MAX_FIELDS)
		return;
	f = &e->fields[e->n_fields++];
	snprintf(f->pointer, sizeof(f->pointer), "%s", pointer);
	f->msg.key[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(f->message, sizeof(f->message), fmt, ap);
	va_end(ap);
}
