/* The adjudication policy: loads and validates the JSON document, and decides cases from it (pure, explainable). */
#include "arbiter/policy.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/errmsg.h"

#define MS_PER_HOUR (3600LL * AR_MS_PER_SEC)
#define MAX_AMOUNT_CENTS 100000000000LL   /* 1e9 major units: anything above is a typo */
#define MAX_DAYS 36500
#define MAX_CATEGORY_RULES 16
#define MAX_QUANTITY 1000000LL            /* as the codec's bound */
#define BP_DENOMINATOR 10000              /* penalty rate in basis points */

enum {
	D_SELLER_RESPONSE,
	D_BUYER_SHIP_BACK,
	D_SELLER_RECEIPT,
	D_BUYER_REPLY,
	D_ARBITRATION,
	D_COMPLAINT_FIRST,
	D_COMPLAINT_FIRST_MAJOR,
	D_REMINDER_BEFORE,
	D_AFTER_SALE_WATCH,
	D_COMPLAINT_CLOSE,
	/* optional, with defaults (dur_default): policies written before
	 * these deadlines existed stay valid */
	D_SELLER_RESEND,
	D_BUYER_CONFIRM,
	D_SELLER_REPLY,
	D__COUNT
};

static const char *const duration_names[D__COUNT] = {
	"seller_response", "buyer_ship_back", "seller_receipt", "buyer_reply",
	"arbitration", "complaint_first_response", "complaint_first_response_major",
	"reminder_before", "after_sale_watch", "complaint_close",
	"seller_resend", "buyer_confirm", "seller_reply",
};

#define D_FIRST_OPTIONAL D_SELLER_RESEND
#define DAY_MS (24LL * 3600 * 1000)

/* An optional duration a policy leaves out: 003's resend "usually within 3
 * working days" (3 calendar days until calendars exist), the 10 days a
 * buyer has to confirm a delivery, and a seller's answer to a counter-offer
 * in the time it had to answer the request. */
static policy_dur dur_default(const policy_dur *dur, int i)
{
	switch (i) {
	case D_SELLER_RESEND: return (policy_dur){ 3 * DAY_MS, 0, WORKCAL_END_OF_DAY };
	case D_BUYER_CONFIRM: return (policy_dur){ 10 * DAY_MS, 0, WORKCAL_END_OF_DAY };
	case D_SELLER_REPLY: return dur[D_SELLER_RESPONSE];
	default: return (policy_dur){ 0, 0, WORKCAL_END_OF_DAY };
	}
}

/* Values a category or a shop may override; has_* says which were given. */
typedef struct {
	const char *name;                 /* borrowed from the document */
	bool has_no_reason_days;
	int64_t no_reason_days;
	bool has_return_shipping;
	int64_t return_shipping_cents;
	bool has_price_protection_days;
	int64_t price_protection_days;
	bool has_dur[D__COUNT];
	policy_dur dur[D__COUNT];
} override;

/* Where a category rule's day window starts. */
typedef enum {
	WINDOW_FROM_INVOICE,              /* 三包 第二十条: 自销售者开具购车发票之日起 */
	WINDOW_FROM_PAID,
	WINDOW_FROM_DELIVERED,
	WINDOW_FROM__COUNT
} window_from;

static const char *const window_from_names[WINDOW_FROM__COUNT] = {
	"invoice", "paid", "delivered",
};

typedef struct {
	char id[POLICY_RULE_ID_LEN];
	const char *category;
	unsigned reasons;                 /* bit per ar_reason */
	window_from from;                 /* default invoice */
	int64_t window_days;              /* -1: no day window */
	int64_t window_km;                /* -1: no distance window */
	json_t *defects;                  /* borrowed array of strings */
	const char *remedy;
} category_rule;

/*
 * Strings are borrowed from doc, which is private and never handed out, so
 * concurrent readers only ever read it.
 */
struct policy {
	json_t *doc;
	char *text;
	const char *version;
	char currency[AR_CURRENCY_LEN + 1];
	policy_dur dur[D__COUNT];
	const char *calendar;             /* the calendar working-day durations count on */
	int holiday_min_days;             /* holiday_extension.min_days; 0: off */

	int64_t no_reason_days;
	unsigned no_reason_kinds;
	unsigned no_reason_reasons;
	json_t *excluded_categories;
	bool exclude_customized;

	int64_t missing_item_ms;
	int64_t price_protection_days;    /* -1: the policy offers no price protection */
	int64_t max_offer_rounds;

	unsigned evidence_reasons;
	unsigned evidence_kinds;

	policy_fault fault[AR_REASON__COUNT];
	unsigned return_required_reasons;

	unsigned late_reasons;
	int64_t penalty_bp;
	int64_t penalty_cap_cents;

	int64_t return_shipping_cents;
	int64_t buyer_ins_min_cents;
	int64_t buyer_ins_max_cents;
	int64_t seller_share_cents;

	unsigned major_reasons;
	int64_t major_amount_cents;       /* 0: price never makes a complaint major */

	int64_t new_account_days;
	int64_t max_cases_7d;
	int64_t max_same_text_shops;
	int64_t w_new_account;
	int64_t w_many_cases;
	int64_t w_same_text;
	int64_t manual_review_score;
	int64_t batch_threshold;          /* quality cases on one (shop, sku) ... */
	int64_t batch_window_days;        /* ... within this window flag the SKU */
	bool batch_auto_approve;          /* flagged SKUs' quality cases are approved uniformly */

	category_rule rules[MAX_CATEGORY_RULES];
	size_t n_rules;
	override *categories;
	size_t n_categories;
	override *shops;
	size_t n_shops;
};

static const char *const fault_names[] = { "seller", "buyer", "carrier", "undetermined" };

/* ------------------------------------------------------------------ */
/* validation helpers                                                  */

typedef struct {
	ar_err *err;
	bool bad;
} vctx;

/* A field error of catalogue key (name, value pairs ending in NULL). */
static void bad(vctx *c, const char *pointer, const char *key, ...)
	__attribute__((sentinel));

static void bad(vctx *c, const char *pointer, const char *key, ...)
{
	va_list ap;

	c->bad = true;
	ar_err_setk(c->err, 422, "invalid-policy", "detail.policy_invalid", NULL);
	va_start(ap, key);
	ar_err_vfieldk(c->err, pointer, key, ap);
	va_end(ap);
}

/* RFC 6901: '~' and '/' inside a key must be escaped or the pointer lies. */
static void join(char *out, size_t n, const char *base, const char *key)
{
	size_t o = strlen(base);

	if (o >= n)
		o = n - 1;
	memmove(out, base, o);
	if (o + 1 < n)
		out[o++] = '/';
	for (const char *k = key; *k && o + 1 < n; k++) {
		if ((*k == '~' || *k == '/') && o + 2 < n) {
			out[o++] = '~';
			out[o++] = *k == '~' ? '0' : '1';
		} else if (*k != '~' && *k != '/') {
			out[o++] = *k;
		} else {
			break;
		}
	}
	out[o] = '\0';
}

static void join_index(char *out, size_t n, const char *base, size_t i)
{
	char idx[24];
	snprintf(idx, sizeof(idx), "%zu", i);
	join(out, n, base, idx);
}

static void check_keys(vctx *c, json_t *obj, const char *base,
		       const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known = known || strcmp(allowed[i], key) == 0;
		if (!known) {
			char ptr[AR_ERR_TEXT];
			join(ptr, sizeof(ptr), base, key);
			bad(c, ptr, "field.unknown", NULL);
		}
	}
}

/* Returns the member or NULL; reports "required" when it must exist. */
static json_t *member(vctx *c, json_t *obj, const char *base, const char *key,
		      bool required, char *ptr, size_t ptr_len)
{
	json_t *v = json_object_get(obj, key);

	join(ptr, ptr_len, base, key);
	if (!v && required)
		bad(c, ptr, "field.required", NULL);
	return v;
}

static json_t *get_object(vctx *c, json_t *obj, const char *base,
			  const char *key, bool required, char *ptr, size_t ptr_len)
{
	json_t *v = member(c, obj, base, key, required, ptr, ptr_len);

	if (v && !json_is_object(v)) {
		bad(c, ptr, "field.object", NULL);
		return NULL;
	}
	return v;
}

static bool get_int(vctx *c, json_t *obj, const char *base, const char *key,
		    bool required, int64_t min, int64_t max, int64_t *out)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));
	json_int_t n;

	if (!v)
		return false;
	if (!json_is_integer(v)) {
		bad(c, ptr, "field.integer", NULL);
		return false;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		if (n < 0 && min >= 0)
			bad(c, ptr, "field.not_negative", NULL);
		else
			bad(c, ptr, "field.between", "min", AR_INT(min), "max", AR_INT(max), NULL);
		return false;
	}
	*out = n;
	return true;
}

static bool get_bool(vctx *c, json_t *obj, const char *base, const char *key,
		     bool required, bool *out)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));

	if (!v)
		return false;
	if (!json_is_boolean(v)) {
		bad(c, ptr, "field.boolean", NULL);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

static bool check_name(vctx *c, const char *ptr, json_t *v, size_t max_len,
		       const char **out)
{
	if (!json_is_string(v)) {
		bad(c, ptr, "field.string", NULL);
		return false;
	}
	if (json_string_length(v) == 0 || json_string_length(v) > max_len ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		bad(c, ptr, "field.string_bytes", "max", AR_INT(max_len), NULL);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool get_string(vctx *c, json_t *obj, const char *base, const char *key,
		       bool required, size_t max_len, const char **out)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));

	return v && check_name(c, ptr, v, max_len, out);
}

static bool get_duration(vctx *c, json_t *obj, const char *base,
			 const char *key, bool required, bool allow_zero,
			 int64_t *out_ms)
{
	char ptr[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));
	int64_t ms;

	if (!v)
		return false;
	if (!json_is_string(v)) {
		bad(c, ptr, "field.duration", "example", "P5D", NULL);
		return false;
	}
	if (!ar_duration_parse(json_string_value(v), &ms)) {
		bad(c, ptr, "field.not_duration", "value", json_string_value(v), NULL);
		return false;
	}
	if (ms < 0 || (ms == 0 && !allow_zero)) {
		bad(c, ptr, "field.duration_zero", NULL);
		return false;
	}
	*out_ms = ms;
	return true;
}

/* A deadline's duration: an ISO 8601 span, or {"working_days": n, "at":
 * "end_of_day" | "same_time"} counted on the policy's calendar. */
static bool get_deadline_duration(vctx *c, json_t *obj, const char *base, const char *key,
				  bool required, bool allow_zero, bool allow_working_days,
				  policy_dur *out)
{
	static const char *const wd_keys[] = { "working_days", "at", NULL };
	char ptr[AR_ERR_TEXT];
	json_t *v = json_object_get(obj, key);
	int64_t n;
	const char *at = "end_of_day";

	if (!json_is_object(v)) {
		out->working_days = 0;
		out->at = WORKCAL_END_OF_DAY;
		return get_duration(c, obj, base, key, required, allow_zero, &out->ms);
	}
	join(ptr, sizeof(ptr), base, key);
	if (!allow_working_days) {
		bad(c, ptr, "field.duration", "example", "PT24H", NULL);
		return false;
	}
	check_keys(c, v, ptr, wd_keys);
	if (!get_int(c, v, ptr, "working_days", true, 1, WORKCAL_MAX_N, &n))
		return false;
	if (json_object_get(v, "at") && !get_string(c, v, ptr, "at", true, 16, &at))
		return false;
	if (!workcal_at_parse(at, &out->at)) {
		char sub[AR_ERR_TEXT];
		join(sub, sizeof(sub), ptr, "at");
		bad(c, sub, "field.one_of", "list", "end_of_day, same_time", NULL);
		return false;
	}
	out->ms = 0;
	out->working_days = (int)n;
	return true;
}

/* An array of strings, each accepted by parse(); sets one bit per value. */
static bool get_name_set(vctx *c, json_t *obj, const char *base,
			 const char *key, bool required, const char *what,
			 bool (*parse)(const char *, int *), unsigned *mask)
{
	char ptr[AR_ERR_TEXT], item[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));
	json_t *e;
	size_t i;
	unsigned m = 0;
	bool ok = true;

	if (!v)
		return false;
	if (!json_is_array(v)) {
		bad(c, ptr, "field.names_array", "what", what, NULL);
		return false;
	}
	json_array_foreach(v, i, e) {
		int bit;
		join_index(item, sizeof(item), ptr, i);
		if (!json_is_string(e) || !parse(json_string_value(e), &bit)) {
			bad(c, item, "field.not_known", "what", what, NULL);
			ok = false;
			continue;
		}
		m |= 1u << bit;
	}
	if (ok)
		*mask = m;
	return ok;
}

static bool parse_reason(const char *s, int *out)
{
	ar_reason r;
	if (!ar_reason_parse(s, &r))
		return false;
	*out = (int)r;
	return true;
}

static bool parse_kind(const char *s, int *out)
{
	ar_kind k;
	if (!ar_kind_parse(s, &k))
		return false;
	*out = (int)k;
	return true;
}

static bool parse_evidence(const char *s, int *out)
{
	ar_evidence_kind k;
	if (!ar_evidence_kind_parse(s, &k))
		return false;
	*out = (int)k;
	return true;
}

/* An array of non-empty strings; returns it borrowed. */
static json_t *get_string_array(vctx *c, json_t *obj, const char *base,
				const char *key, bool required, bool non_empty)
{
	char ptr[AR_ERR_TEXT], item[AR_ERR_TEXT];
	json_t *v = member(c, obj, base, key, required, ptr, sizeof(ptr));
	json_t *e;
	size_t i;
	bool ok = true;

	if (!v)
		return NULL;
	if (!json_is_array(v)) {
		bad(c, ptr, "field.strings", NULL);
		return NULL;
	}
	if (non_empty && json_array_size(v) == 0) {
		bad(c, ptr, "field.not_empty", NULL);
		return NULL;
	}
	json_array_foreach(v, i, e) {
		const char *s;
		join_index(item, sizeof(item), ptr, i);
		ok = check_name(c, item, e, AR_MAX_ID_LEN, &s) && ok;
	}
	return ok ? v : NULL;
}

static bool in_string_array(json_t *arr, const char *s)
{
	size_t i;
	json_t *e;

	if (!arr || !s)
		return false;
	json_array_foreach(arr, i, e) {
		if (strcmp(json_string_value(e), s) == 0)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* loader sections                                                     */

static void load_durations(vctx *c, json_t *obj, const char *base,
			   bool required, bool *has, policy_dur *dur)
{
	static const char *const keys[D__COUNT + 1] = {
		"seller_response", "buyer_ship_back", "seller_receipt", "buyer_reply",
		"arbitration", "complaint_first_response",
		"complaint_first_response_major", "reminder_before",
		"after_sale_watch", "complaint_close", "seller_resend",
		"buyer_confirm", "seller_reply", NULL,
	};

	check_keys(c, obj, base, keys);
	for (int i = 0; i < D__COUNT; i++)
		has[i] = get_deadline_duration(c, obj, base, duration_names[i],
					       required && i < D_FIRST_OPTIONAL,
					       i == D_REMINDER_BEFORE,
					       i != D_REMINDER_BEFORE, &dur[i]);
	for (int i = D_FIRST_OPTIONAL; required && i < D__COUNT; i++) {
		if (!has[i])
			dur[i] = dur_default(dur, i);
	}
}

static void load_override(vctx *c, json_t *obj, const char *base, bool is_shop,
			  override *o)
{
	static const char *const shop_keys[] = {
		"no_reason_days", "return_shipping_cents", "price_protection_days",
		"durations", NULL,
	};
	static const char *const category_keys[] = {
		"no_reason_days", "return_shipping_cents", "price_protection_days", NULL,
	};
	char ptr[AR_ERR_TEXT];
	json_t *d;

	check_keys(c, obj, base, is_shop ? shop_keys : category_keys);
	o->has_no_reason_days = get_int(c, obj, base, "no_reason_days", false, 0,
					MAX_DAYS, &o->no_reason_days);
	o->has_return_shipping = get_int(c, obj, base, "return_shipping_cents",
					 false, 0, MAX_AMOUNT_CENTS,
					 &o->return_shipping_cents);
	o->has_price_protection_days = get_int(c, obj, base, "price_protection_days",
					       false, 0, MAX_DAYS,
					       &o->price_protection_days);
	if (is_shop &&
	    (d = get_object(c, obj, base, "durations", false, ptr, sizeof(ptr))))
		load_durations(c, d, ptr, false, o->has_dur, o->dur);
}

static override *load_overrides(vctx *c, json_t *root, const char *key,
				bool is_shop, size_t *n_out)
{
	char base[AR_ERR_TEXT], ptr[AR_ERR_TEXT];
	json_t *obj = get_object(c, root, "", key, false, base, sizeof(base));
	const char *name;
	json_t *v;
	override *list;
	size_t n = 0;

	*n_out = 0;
	if (!obj || json_object_size(obj) == 0)
		return NULL;
	list = calloc(json_object_size(obj), sizeof(*list));
	if (!list) {
		ar_err_setk(c->err, 500, "internal", "detail.oom_policy", NULL);
		c->bad = true;
		return NULL;
	}
	json_object_foreach(obj, name, v) {
		join(ptr, sizeof(ptr), base, name);
		if (*name == '\0' || strlen(name) > AR_MAX_ID_LEN) {
			bad(c, ptr, "field.name_bytes", "max", AR_INT(AR_MAX_ID_LEN), NULL);
			continue;
		}
		if (!json_is_object(v)) {
			bad(c, ptr, "field.object", NULL);
			continue;
		}
		list[n].name = name;
		load_override(c, v, ptr, is_shop, &list[n]);
		n++;
	}
	*n_out = n;
	return list;
}

static bool id_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

static void load_category_rules(vctx *c, json_t *root, policy *p)
{
	static const char *const keys[] = {
		"id", "category", "reasons", "from", "window_days", "window_km",
		"defects", "remedy", NULL,
	};
	char base[AR_ERR_TEXT], ptr[AR_ERR_TEXT];
	json_t *arr = member(c, root, "", "category_rules", false, base, sizeof(base));
	json_t *r;
	size_t i;

	if (!arr)
		return;
	if (!json_is_array(arr)) {
		bad(c, base, "field.rules_array", NULL);
		return;
	}
	if (json_array_size(arr) > MAX_CATEGORY_RULES) {
		bad(c, base, "field.max_rules", "max", AR_INT(MAX_CATEGORY_RULES), NULL);
		return;
	}
	json_array_foreach(arr, i, r) {
		category_rule *cr = &p->rules[p->n_rules];
		const char *id = NULL;
		bool has_days, has_km;

		join_index(ptr, sizeof(ptr), base, i);
		if (!json_is_object(r)) {
			bad(c, ptr, "field.object", NULL);
			continue;
		}
		check_keys(c, r, ptr, keys);
		cr->reasons = 1u << AR_REASON_QUALITY_DEFECT;
		cr->window_days = cr->window_km = -1;
		get_string(c, r, ptr, "category", true, AR_MAX_ID_LEN, &cr->category);
		if (get_string(c, r, ptr, "id", false, AR_MAX_ID_LEN, &id)) {
			for (const char *s = id; *s; s++) {
				if (!id_char_ok(*s)) {
					char idp[AR_ERR_TEXT];
					join(idp, sizeof(idp), ptr, "id");
					bad(c, idp, "field.rule_id_chars", NULL);
					id = NULL;
					break;
				}
			}
		}
		get_name_set(c, r, ptr, "reasons", false, "reason", parse_reason,
			     &cr->reasons);
		cr->from = WINDOW_FROM_INVOICE;
		if (json_object_get(r, "from")) {
			char fp[AR_ERR_TEXT];
			json_t *fv = member(c, r, ptr, "from", false, fp, sizeof(fp));
			int w = -1;
			for (int k = 0; k < WINDOW_FROM__COUNT && json_is_string(fv); k++)
				if (strcmp(json_string_value(fv), window_from_names[k]) == 0)
					w = k;
			if (w < 0)
				bad(c, fp, "field.one_of", "list", "invoice, paid, delivered", NULL);
			else
				cr->from = (window_from)w;
		}
		has_days = get_int(c, r, ptr, "window_days", false, 1, MAX_DAYS,
				   &cr->window_days);
		has_km = get_int(c, r, ptr, "window_km", false, 1, 10000000,
				 &cr->window_km);
		if (!has_days && !has_km && !json_object_get(r, "window_days") &&
		    !json_object_get(r, "window_km"))
			bad(c, ptr, "field.needs_window", NULL);
		cr->defects = get_string_array(c, r, ptr, "defects", true, true);
		get_string(c, r, ptr, "remedy", true, POLICY_REMEDY_LEN - 1, &cr->remedy);
		if (!cr->category || (!id && json_object_get(r, "id")))
			continue;
		snprintf(cr->id, sizeof(cr->id), "R-CATEGORY-%s", id ? id : cr->category);
		for (size_t j = 0; j < p->n_rules; j++) {
			if (strcmp(p->rules[j].id, cr->id) == 0) {
				bad(c, ptr, "field.duplicate_rule", "id", cr->id, NULL);
				break;
			}
		}
		p->n_rules++;
	}
}

static void load_sections(vctx *c, json_t *root, policy *p)
{
	static const char *const root_keys[] = {
		"version", "description", "currency", "durations", "no_reason",
		"missing_item", "evidence", "fault", "return_required_for",
		"late_shipment", "return_shipping", "complaints", "risk",
		"category_rules", "categories", "shops", "batch_defect",
		"price_protection", "negotiation", "calendar", "holiday_extension", NULL,
	};
	char ptr[AR_ERR_TEXT], sub[AR_ERR_TEXT];
	json_t *o, *w;
	const char *s;
	bool has[D__COUNT];

	check_keys(c, root, "", root_keys);
	get_string(c, root, "", "version", true, POLICY_VERSION_LEN - 1, &p->version);
	get_string(c, root, "", "description", false, 4000, &s);
	if (get_string(c, root, "", "currency", true, AR_CURRENCY_LEN, &s)) {
		if (strlen(s) != AR_CURRENCY_LEN || s[0] < 'A' || s[0] > 'Z' ||
		    s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' || s[2] > 'Z')
			bad(c, "/currency", "field.iso4217", NULL);
		else
			memcpy(p->currency, s, AR_CURRENCY_LEN + 1);
	}

	/* Working-day durations count on this calendar (GET /v1/calendars/{id}). */
	p->calendar = "cn-mainland";
	if (get_string(c, root, "", "calendar", false, WORKCAL_ID_MAX - 1, &s))
		p->calendar = s;
	/* Off unless named: a span deadline due inside a long holiday of the
	 * calendar moves past it, as platforms announce for Spring Festival. */
	if ((o = get_object(c, root, "", "holiday_extension", false, ptr, sizeof(ptr)))) {
		static const char *const he_keys[] = { "min_days", NULL };
		int64_t n;
		check_keys(c, o, ptr, he_keys);
		if (get_int(c, o, ptr, "min_days", true, 1, WORKCAL_MAX_RUN, &n))
			p->holiday_min_days = (int)n;
	}
	if ((o = get_object(c, root, "", "durations", true, ptr, sizeof(ptr))))
		load_durations(c, o, ptr, true, has, p->dur);

	if ((o = get_object(c, root, "", "no_reason", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "days", "kinds", "reasons",
			"excluded_categories", "exclude_customized", NULL };
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "days", true, 0, MAX_DAYS, &p->no_reason_days);
		get_name_set(c, o, ptr, "kinds", true, "case kind", parse_kind,
			     &p->no_reason_kinds);
		get_name_set(c, o, ptr, "reasons", true, "reason", parse_reason,
			     &p->no_reason_reasons);
		p->excluded_categories = get_string_array(c, o, ptr,
				"excluded_categories", true, false);
		get_bool(c, o, ptr, "exclude_customized", true, &p->exclude_customized);
	}

	if ((o = get_object(c, root, "", "missing_item", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "report_within", NULL };
		check_keys(c, o, ptr, k);
		get_duration(c, o, ptr, "report_within", true, false, &p->missing_item_ms);
	}

	/* 001 退差: optional; without it no price difference is refunded */
	p->price_protection_days = -1;
	/* 001 延迟满足: a seller concedes in stages; optional, 3 offers by default */
	p->max_offer_rounds = 3;
	if ((o = get_object(c, root, "", "negotiation", false, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "max_rounds", NULL };
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "max_rounds", true, 1, 10, &p->max_offer_rounds);
	}
	if ((o = get_object(c, root, "", "price_protection", false, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "days", NULL };
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "days", true, 0, MAX_DAYS, &p->price_protection_days);
	}

	if ((o = get_object(c, root, "", "evidence", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "required_for", "accepted_kinds", NULL };
		check_keys(c, o, ptr, k);
		get_name_set(c, o, ptr, "required_for", true, "reason", parse_reason,
			     &p->evidence_reasons);
		get_name_set(c, o, ptr, "accepted_kinds", true, "evidence kind",
			     parse_evidence, &p->evidence_kinds);
		if (p->evidence_reasons && json_is_array(json_object_get(o, "accepted_kinds")) &&
		    json_array_size(json_object_get(o, "accepted_kinds")) == 0) {
			join(sub, sizeof(sub), ptr, "accepted_kinds");
			bad(c, sub, "field.evidence_kinds_empty", NULL);
		}
	}

	for (int r = 0; r < AR_REASON__COUNT; r++)
		p->fault[r] = POLICY_FAULT_UNDETERMINED;
	if ((o = get_object(c, root, "", "fault", true, ptr, sizeof(ptr)))) {
		const char *key;
		json_t *v;
		json_object_foreach(o, key, v) {
			ar_reason r;
			int f = -1;
			join(sub, sizeof(sub), ptr, key);
			if (!ar_reason_parse(key, &r)) {
				bad(c, sub, "field.not_reason", NULL);
				continue;
			}
			for (int i = 0; i < 4 && json_is_string(v); i++)
				if (strcmp(json_string_value(v), fault_names[i]) == 0)
					f = i;
			if (f < 0) {
				bad(c, sub, "field.one_of", "list", "seller, buyer, carrier, undetermined", NULL);
				continue;
			}
			p->fault[r] = (policy_fault)f;
		}
	}

	get_name_set(c, root, "", "return_required_for", true, "reason",
		     parse_reason, &p->return_required_reasons);

	if ((o = get_object(c, root, "", "late_shipment", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "reasons", "penalty_basis_points",
			"penalty_cap_cents", NULL };
		check_keys(c, o, ptr, k);
		get_name_set(c, o, ptr, "reasons", true, "reason", parse_reason,
			     &p->late_reasons);
		get_int(c, o, ptr, "penalty_basis_points", true, 0, BP_DENOMINATOR,
			&p->penalty_bp);
		get_int(c, o, ptr, "penalty_cap_cents", true, 0, MAX_AMOUNT_CENTS,
			&p->penalty_cap_cents);
	}

	if ((o = get_object(c, root, "", "return_shipping", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "default_cents",
			"buyer_insurance_min_cents", "buyer_insurance_max_cents",
			"seller_insurance_seller_share_cents", NULL };
		bool ok_min, ok_max;
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "default_cents", true, 0, MAX_AMOUNT_CENTS,
			&p->return_shipping_cents);
		ok_min = get_int(c, o, ptr, "buyer_insurance_min_cents", true, 0,
				 MAX_AMOUNT_CENTS, &p->buyer_ins_min_cents);
		ok_max = get_int(c, o, ptr, "buyer_insurance_max_cents", true, 0,
				 MAX_AMOUNT_CENTS, &p->buyer_ins_max_cents);
		if (ok_min && ok_max && p->buyer_ins_max_cents < p->buyer_ins_min_cents) {
			join(sub, sizeof(sub), ptr, "buyer_insurance_max_cents");
			bad(c, sub, "field.not_below", "other", "buyer_insurance_min_cents", NULL);
		}
		get_int(c, o, ptr, "seller_insurance_seller_share_cents", true, 0,
			MAX_AMOUNT_CENTS, &p->seller_share_cents);
	}

	if ((o = get_object(c, root, "", "complaints", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "major_reasons", "major_amount_cents", NULL };
		check_keys(c, o, ptr, k);
		get_name_set(c, o, ptr, "major_reasons", true, "reason", parse_reason,
			     &p->major_reasons);
		get_int(c, o, ptr, "major_amount_cents", true, 0, MAX_AMOUNT_CENTS,
			&p->major_amount_cents);
	}

	p->batch_threshold = 5;
	p->batch_window_days = 7;
	if ((o = get_object(c, root, "", "batch_defect", false, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "threshold", "window_days", "auto_approve", NULL };
		json_t *aa = json_object_get(o, "auto_approve");
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "threshold", true, 1, 1000000, &p->batch_threshold);
		get_int(c, o, ptr, "window_days", true, 1, MAX_DAYS, &p->batch_window_days);
		if (aa && !json_is_boolean(aa))
			bad(c, "/batch_defect/auto_approve", "field.bool", NULL);
		p->batch_auto_approve = json_is_true(aa);
	}

	if ((o = get_object(c, root, "", "risk", true, ptr, sizeof(ptr)))) {
		static const char *const k[] = { "new_account_days", "max_cases_7d",
			"max_same_text_other_shops_30d", "weights",
			"manual_review_score", NULL };
		check_keys(c, o, ptr, k);
		get_int(c, o, ptr, "new_account_days", true, 0, MAX_DAYS,
			&p->new_account_days);
		get_int(c, o, ptr, "max_cases_7d", true, 0, 1000000, &p->max_cases_7d);
		get_int(c, o, ptr, "max_same_text_other_shops_30d", true, 0, 1000000,
			&p->max_same_text_shops);
		get_int(c, o, ptr, "manual_review_score", true, 1, 1000,
			&p->manual_review_score);
		if ((w = get_object(c, o, ptr, "weights", true, sub, sizeof(sub)))) {
			static const char *const wk[] = { "new_account",
				"many_cases", "same_text", NULL };
			check_keys(c, w, sub, wk);
			get_int(c, w, sub, "new_account", true, 0, 1000, &p->w_new_account);
			get_int(c, w, sub, "many_cases", true, 0, 1000, &p->w_many_cases);
			get_int(c, w, sub, "same_text", true, 0, 1000, &p->w_same_text);
		}
	}

	load_category_rules(c, root, p);
	p->categories = load_overrides(c, root, "categories", false, &p->n_categories);
	p->shops = load_overrides(c, root, "shops", true, &p->n_shops);
}

/* ------------------------------------------------------------------ */
/* load, free, accessors                                               */

policy *policy_load(const char *json_text, size_t len, ar_err *err)
{
	vctx c = { err, false };
	json_error_t je;
	policy *p = calloc(1, sizeof(*p));

	if (!p) {
		ar_err_setk(err, 500, "internal", "detail.oom_policy", NULL);
		return NULL;
	}
	if (!json_text) {
		bad(&c, "", "field.no_policy_text", NULL);
		goto fail;
	}
	p->doc = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &je);
	if (!p->doc) {
		ar_err_setk(err, 422, "invalid-policy", "detail.policy_json", "line", AR_INT(je.line),
			    "column", AR_INT(je.column), "error", je.text, NULL);
		ar_err_fieldk(err, "", "field.json_error", "error", je.text, NULL);
		goto fail;
	}
	if (!json_is_object(p->doc)) {
		bad(&c, "", "field.policy_object", NULL);
		goto fail;
	}
	load_sections(&c, p->doc, p);
	if (c.bad)
		goto fail;
	p->text = json_dumps(p->doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!p->text) {
		ar_err_setk(err, 500, "internal", "detail.oom_policy", NULL);
		goto fail;
	}
	return p;
fail:
	policy_free(p);
	return NULL;
}

void policy_free(policy *p)
{
	if (!p)
		return;
	free(p->categories);
	free(p->shops);
	free(p->text);
	json_decref(p->doc);
	free(p);
}

const char *policy_version(const policy *p)
{
	return p->version;
}

const char *policy_text(const policy *p)
{
	return p->text;
}

/* Parsed again from the text so callers never share (or mutate) p's tree. */
json_t *policy_to_json(const policy *p)
{
	return json_loads(p->text, 0, NULL);
}

static const override *find_override(const override *list, size_t n,
				     const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	return NULL;
}

static const char *on_expiry(ar_kind kind, fsm_deadline d, bool manual_review)
{
	switch (d) {
	case FSM_DEADLINE_SELLER_RESPONSE:
		if (manual_review)
			return "escalate_to_arbitration";
		return kind == AR_KIND_REFUND ? "auto_refund" : "auto_accept";
	case FSM_DEADLINE_BUYER_SHIP_BACK: return "close_expired";
	case FSM_DEADLINE_SELLER_RECEIPT: return "auto_refund";
	case FSM_DEADLINE_BUYER_REPLY: return "close_expired";
	case FSM_DEADLINE_ARBITRATION: return "breach_alert";
	case FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE: return "escalate_to_senior";
	case FSM_DEADLINE_COMPLAINT_CLOSE: return "close_resolved";
	case FSM_DEADLINE_SELLER_RESEND: return "auto_refund";
	case FSM_DEADLINE_BUYER_CONFIRM: return "close_resent";
	case FSM_DEADLINE_SELLER_REPLY: return "accept_counter";
	default: return "none";
	}
}

bool policy_armings(const policy *p, ar_kind kind, const char *shop_id, bool major,
		    bool manual_review, unsigned mask, policy_arming out[], size_t cap,
		    size_t *n, ar_err *err)
{
	*n = 0;
	for (int d = 0; d < FSM_DEADLINE__COUNT; d++) {
		const char *name = fsm_deadline_name((fsm_deadline)d);
		policy_dur dur;
		if (!(mask & FSM_DEADLINE_BIT(d)) || *n >= cap)
			continue;
		if (d == FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE && major)
			name = "complaint_first_response_major";
		if (!policy_duration_spec(p, name, shop_id, &dur)) {
			ar_err_setk(err, 500, "internal", "detail.policy_no_duration", "name", name, NULL);
			return false;
		}
		out[(*n)++] = (policy_arming){ fsm_deadline_name((fsm_deadline)d), dur.ms,
					       on_expiry(kind, (fsm_deadline)d, manual_review),
					       dur.working_days, dur.at };
	}
	return true;
}

bool policy_duration_spec(const policy *p, const char *name, const char *shop_id,
			  policy_dur *out)
{
	const override *shop = find_override(p->shops, p->n_shops, shop_id);

	for (int i = 0; i < D__COUNT; i++) {
		if (strcmp(duration_names[i], name) != 0)
			continue;
		*out = shop && shop->has_dur[i] ? shop->dur[i] : p->dur[i];
		return true;
	}
	return false;
}

bool policy_duration(const policy *p, const char *name, const char *shop_id,
		     int64_t *out_ms)
{
	policy_dur d;

	if (!policy_duration_spec(p, name, shop_id, &d) || d.working_days > 0)
		return false;
	*out_ms = d.ms;
	return true;
}

int policy_holiday_extension(const policy *p)
{
	return p->holiday_min_days;
}

const char *policy_calendar(const policy *p)
{
	return p->calendar;
}

/* ------------------------------------------------------------------ */
/* names                                                               */

const char *policy_outcome_name(policy_outcome o)
{
	static const char *const n[] = { "auto_approve", "seller_review",
		"manual_review", "ineligible" };
	return (unsigned)o < 4 ? n[o] : "?";
}

const char *policy_fault_name(policy_fault f)
{
	return (unsigned)f < 4 ? fault_names[f] : "?";
}

const char *policy_payer_name(policy_payer p)
{
	static const char *const n[] = { "none", "seller", "buyer", "insurer" };
	return (unsigned)p < 4 ? n[p] : "?";
}

const char *policy_rule_result_name(policy_rule_result r)
{
	static const char *const n[] = { "pass", "fail", "fired", "skipped" };
	return (unsigned)r < 4 ? n[r] : "?";
}

/* ------------------------------------------------------------------ */
/* adjudication                                                        */

typedef struct {
	const policy *p;
	const ar_case_input *in;
	const ar_order *o;
	ar_time now;
	const override *shop;
	const override *cat;
	ar_decision *d;
	policy_rule_trace *last;          /* the entry trace() made last; NULL when it was dropped */
	ar_err *err;
	bool refused;
	bool ineligible;
	bool auto_ok;
	bool shipped;
	bool delivered;
	int64_t penalty;
	int64_t price_diff;               /* price_protection: paid - new price x quantity, >= 0 */
} adj;

static void trace(adj *a, const char *id, policy_rule_result r,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void trace(adj *a, const char *id, policy_rule_result r,
		  const char *fmt, ...)
{
	policy_rule_trace *t;
	va_list ap;

	/* Sized for every rule plus MAX_CATEGORY_RULES; cannot overflow. */
	a->last = NULL;
	if (a->d->n_rules >= POLICY_MAX_RULES)
		return;
	t = &a->d->rules[a->d->n_rules++];
	snprintf(t->id, sizeof(t->id), "%s", id);
	t->result = r;
	t->n_args = 0;
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
	a->last = t;
}

static policy_rule_arg *arg_slot(adj *a, const char *name)
{
	policy_rule_arg *g;

	if (!a->last || a->last->n_args >= POLICY_RULE_ARGS)
		return NULL;
	g = &a->last->args[a->last->n_args++];
	snprintf(g->name, sizeof(g->name), "%s", name);
	return g;
}

/* The numbers and names the last trace entry's reason compared, for texts
 * in other languages (the English reason is already written). */
static void arg_int(adj *a, const char *name, int64_t v)
{
	policy_rule_arg *g = arg_slot(a, name);

	if (g) {
		g->is_text = false;
		g->num = v;
		g->text[0] = '\0';
	}
}

static void arg_text(adj *a, const char *name, const char *v)
{
	policy_rule_arg *g = arg_slot(a, name);

	if (g) {
		g->is_text = true;
		g->num = 0;
		snprintf(g->text, sizeof(g->text), "%s", v ? v : "");
	}
}

/* A field error of catalogue key (name, value pairs ending in NULL). */
static void refuse(adj *a, const char *pointer, const char *key, ...)
	__attribute__((sentinel));

static void refuse(adj *a, const char *pointer, const char *key, ...)
{
	va_list ap;

	a->refused = true;
	ar_err_setk(a->err, 422, "policy-refused", "detail.policy_refuses", "version",
		    a->p->version, NULL);
	va_start(ap, key);
	ar_err_vfieldk(a->err, pointer, key, ap);
	va_end(ap);
}

static bool has_bit(unsigned mask, int bit)
{
	return (mask >> bit) & 1u;
}

/* "2026-11-02T10:00:00Z": milliseconds only when there are some. */
static void fmt_time(ar_time t, char *buf, size_t n)
{
	char *dot;

	ar_time_format(t, buf, n);
	dot = strstr(buf, ".000Z");
	if (dot)
		memcpy(dot, "Z", 2);
}

/* "10 days", "5 h", "7 days 00:00:01": exact, so a 1 s miss is visible. */
static void fmt_span(int64_t ms, char *buf, size_t n)
{
	const char *sign = ms < 0 ? "-" : "";
	int64_t v = ms < 0 ? -ms : ms;
	int64_t days = v / AR_MS_PER_DAY, rem = v % AR_MS_PER_DAY;
	int h = (int)(rem / MS_PER_HOUR), m = (int)(rem / 60000 % 60);
	int s = (int)(rem / 1000 % 60), msr = (int)(rem % 1000);
	char frac[8] = "";

	if (rem == 0) {
		snprintf(buf, n, "%s%lld day%s", sign, (long long)days,
			 days == 1 ? "" : "s");
		return;
	}
	if (days == 0 && rem % MS_PER_HOUR == 0) {
		snprintf(buf, n, "%s%d h", sign, h);
		return;
	}
	if (msr)
		snprintf(frac, sizeof(frac), ".%03d", msr);
	if (days)
		snprintf(buf, n, "%s%lld day%s %02d:%02d:%02d%s", sign,
			 (long long)days, days == 1 ? "" : "s", h, m, s, frac);
	else
		snprintf(buf, n, "%s%02d:%02d:%02d%s", sign, h, m, s, frac);
}

/* An exact value with 4 decimals, trailing zeros dropped ("50000.1"). */
static void fmt_fixed4(int64_t whole, int64_t frac4, char *buf, size_t n)
{
	size_t len;

	snprintf(buf, n, "%lld.%04lld", (long long)whole, (long long)frac4);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
}

static void check_inputs(adj *a)
{
	const ar_case_input *in = a->in;
	int accepted = 0;

	if (in->currency[0] && strcmp(in->currency, a->p->currency) != 0)
		refuse(a, "/currency", "field.policy_currency", "version", a->p->version, "currency",
		       a->p->currency, "sent", in->currency, NULL);
	if (a->o->price_cents < 0 || a->o->price_cents > MAX_AMOUNT_CENTS)
		refuse(a, "/order/price_cents", "field.between", "min", AR_INT(0), "max",
		       AR_INT(MAX_AMOUNT_CENTS), NULL);
	if (a->o->shipping_fee_cents < 0 || a->o->shipping_fee_cents > MAX_AMOUNT_CENTS)
		refuse(a, "/order/shipping_fee_cents", "field.between", "min", AR_INT(0), "max",
		       AR_INT(MAX_AMOUNT_CENTS), NULL);
	if (a->o->quantity < 1 || a->o->quantity > MAX_QUANTITY)
		refuse(a, "/order/quantity", "field.between", "min", AR_INT(1), "max",
		       AR_INT(MAX_QUANTITY), NULL);
	if (a->o->points_used < 0 || a->o->points_used > MAX_AMOUNT_CENTS)
		refuse(a, "/order/points_used", "field.between", "min", AR_INT(0), "max",
		       AR_INT(MAX_AMOUNT_CENTS), NULL);
	if (a->o->coupon_cents < 0 || a->o->coupon_cents > MAX_AMOUNT_CENTS)
		refuse(a, "/order/coupon_cents", "field.between", "min", AR_INT(0), "max",
		       AR_INT(MAX_AMOUNT_CENTS), NULL);
	if (in->reason == AR_REASON_PRICE_PROTECTION) {
		/* 001 退差: money back, goods kept: a refund, nothing else */
		if (in->kind != AR_KIND_REFUND)
			refuse(a, "/kind", "field.price_protection_kind", "kind", ar_kind_name(in->kind),
			       NULL);
		if (in->new_price_cents < 0)
			refuse(a, "/new_price_cents", "field.price_protection_price", NULL);
		else if (in->new_price_cents > MAX_AMOUNT_CENTS)
			refuse(a, "/new_price_cents", "field.between", "min", AR_INT(0), "max",
			       AR_INT(MAX_AMOUNT_CENTS), NULL);
	}

	if (!has_bit(a->p->evidence_reasons, (int)in->reason))
		return;
	for (size_t i = 0; i < in->n_evidence && i < AR_MAX_EVIDENCE; i++)
		accepted += has_bit(a->p->evidence_kinds, (int)in->evidence[i].kind);
	if (accepted == 0) {
		trace(a, "R-EVIDENCE", POLICY_RULE_FAIL,
		      "reason %s needs photo or video evidence; %zu item(s) given, none accepted",
		      ar_reason_name(in->reason), in->n_evidence);
		arg_int(a, "given", (int64_t)in->n_evidence);
		refuse(a, "/evidence", "field.evidence_required", "reason",
		       ar_reason_name(in->reason), NULL);
	} else {
		trace(a, "R-EVIDENCE", POLICY_RULE_PASS,
		      "reason %s needs evidence: %d accepted item(s) given",
		      ar_reason_name(in->reason), accepted);
		arg_int(a, "accepted", accepted);
	}
}

static void rule_no_reason(adj *a)
{
	const policy *p = a->p;
	const ar_order *o = a->o;
	char t1[32], t2[32], span[48], src[96] = "";
	int64_t days = p->no_reason_days;

	if (!has_bit(p->no_reason_kinds, (int)a->in->kind) ||
	    !has_bit(p->no_reason_reasons, (int)a->in->reason))
		return;

	/* The shop's own promise is the most specific, then the category's. */
	if (a->shop && a->shop->has_no_reason_days) {
		days = a->shop->no_reason_days;
		snprintf(src, sizeof(src), " (shop %s)", a->shop->name);
	} else if (a->cat && a->cat->has_no_reason_days) {
		days = a->cat->no_reason_days;
		snprintf(src, sizeof(src), " (category %s)", a->cat->name);
	}
	if (!a->delivered) {
		trace(a, "R-NOREASON-7D", POLICY_RULE_PASS,
		      "not delivered yet: the %lld-day window%s has not started",
		      (long long)days, src);
		arg_int(a, "window_days", days);
		arg_text(a, "when", "undelivered");
	} else {
		int64_t elapsed = a->now - o->delivered_at;
		bool ok = elapsed <= days * AR_MS_PER_DAY;

		fmt_time(o->delivered_at, t1, sizeof(t1));
		fmt_time(a->now, t2, sizeof(t2));
		fmt_span(elapsed, span, sizeof(span));
		trace(a, "R-NOREASON-7D", ok ? POLICY_RULE_PASS : POLICY_RULE_FAIL,
		      "delivered %s, requested %s, %s %s %lld days%s: %s", t1, t2,
		      span, ok ? "<=" : ">", (long long)days, src,
		      ok ? "eligible" : "not eligible");
		arg_int(a, "days", elapsed / AR_MS_PER_DAY);
		arg_int(a, "elapsed_ms", elapsed);
		arg_int(a, "window_days", days);
		a->ineligible = a->ineligible || !ok;
	}

	if (o->category && in_string_array(p->excluded_categories, o->category)) {
		trace(a, "R-EXCLUDED-CATEGORY", POLICY_RULE_FAIL,
		      "category %s is excluded from no-reason returns: not eligible",
		      o->category);
		arg_text(a, "category", o->category);
		a->ineligible = true;
	} else {
		trace(a, "R-EXCLUDED-CATEGORY", POLICY_RULE_PASS,
		      "category %s is not excluded", o->category ? o->category : "(none)");
		arg_text(a, "category", o->category ? o->category : "-");
	}

	if (o->customized && p->exclude_customized) {
		trace(a, "R-CUSTOMIZED", POLICY_RULE_FAIL,
		      "customized goods have no no-reason return: not eligible");
		a->ineligible = true;
	} else {
		trace(a, "R-CUSTOMIZED", POLICY_RULE_PASS, "%s",
		      o->customized ? "customized, but this policy does not exclude customized goods"
				    : "goods not customized");
		arg_text(a, "when", o->customized ? "allowed" : "not_customized");
	}
}

static void rule_missing_item(adj *a)
{
	char t1[32], t2[32], span[48], win[48];
	int64_t elapsed;
	bool ok;

	if (a->in->reason != AR_REASON_MISSING_ITEM)
		return;
	fmt_span(a->p->missing_item_ms, win, sizeof(win));
	if (!a->delivered) {
		trace(a, "R-MISSING-24H", POLICY_RULE_SKIPPED,
		      "no delivery recorded: the %s report window cannot be checked", win);
		arg_int(a, "window_ms", a->p->missing_item_ms);
		return;
	}
	elapsed = a->now - a->o->delivered_at;
	ok = elapsed <= a->p->missing_item_ms;
	fmt_time(a->o->delivered_at, t1, sizeof(t1));
	fmt_time(a->now, t2, sizeof(t2));
	fmt_span(elapsed, span, sizeof(span));
	trace(a, "R-MISSING-24H", ok ? POLICY_RULE_PASS : POLICY_RULE_FAIL,
	      "delivered %s, reported %s, %s %s %s: %s", t1, t2, span,
	      ok ? "<=" : ">", win, ok ? "reported in time" : "reported too late");
	arg_int(a, "elapsed_ms", elapsed);
	arg_int(a, "window_ms", a->p->missing_item_ms);
	a->ineligible = a->ineligible || !ok;
}

static void rule_categories(adj *a)
{
	const ar_order *o = a->o;

	if (!o->category)
		return;
	for (size_t i = 0; i < a->p->n_rules; i++) {
		const category_rule *r = &a->p->rules[i];
		char why[256] = "", days_txt[96] = "", km_txt[64] = "";
		bool in_days = true, in_km = true, defect_ok;

		if (strcmp(r->category, o->category) != 0 ||
		    !has_bit(r->reasons, (int)a->in->reason))
			continue;
		if (r->window_days >= 0) {
			/* 三包 第二十条 counts from the invoice; an order without
			 * invoice_at is counted from paid_at (the sale), and says so */
			const char *from = "invoice";
			ar_time start = o->invoice_at;

			if (r->from == WINDOW_FROM_INVOICE && start == AR_TIME_NONE) {
				start = o->paid_at;
				from = "payment (no invoice_at)";
			} else if (r->from == WINDOW_FROM_PAID) {
				start = o->paid_at;
				from = "payment";
			} else if (r->from == WINDOW_FROM_DELIVERED) {
				start = o->delivered_at;
				from = "delivery";
			}
			if (start == AR_TIME_NONE) {
				in_days = false;
				snprintf(days_txt, sizeof(days_txt), "not delivered");
			} else {
				int64_t elapsed = a->now - start;
				char span[48];
				in_days = elapsed <= r->window_days * AR_MS_PER_DAY;
				fmt_span(elapsed, span, sizeof(span));
				snprintf(days_txt, sizeof(days_txt), "%s since %s %s %lld days",
					 span, from, in_days ? "<=" : ">", (long long)r->window_days);
			}
		}
		if (r->window_km >= 0) {
			/* An unknown odometer cannot prove the window was kept. */
			in_km = o->usage_km >= 0 && o->usage_km <= r->window_km;
			if (o->usage_km < 0)
				snprintf(km_txt, sizeof(km_txt), "usage_km not given");
			else
				snprintf(km_txt, sizeof(km_txt), "%lld km %s %lld km",
					 (long long)o->usage_km, in_km ? "<=" : ">",
					 (long long)r->window_km);
		}
		defect_ok = a->in->defect && in_string_array(r->defects, a->in->defect);
		snprintf(why, sizeof(why), "%s%s%s, defect %s %s", days_txt,
			 days_txt[0] && km_txt[0] ? ", " : "", km_txt,
			 a->in->defect ? a->in->defect : "(none)",
			 defect_ok ? "covered" : "not covered");
		if (in_days && in_km && defect_ok) {
			trace(a, r->id, POLICY_RULE_FIRED, "%s: %s", why, r->remedy);
			if (a->in->kind != AR_KIND_COMPLAINT)
				a->auto_ok = true;
			snprintf(a->d->remedy, sizeof(a->d->remedy), "%s", r->remedy);
		} else {
			trace(a, r->id, POLICY_RULE_FAIL, "%s: rule does not apply", why);
		}
	}
}

/* 001 退差: inside the shop's price-protection window (counted from payment)
 * the buyer is refunded the drop, (paid unit price - new price) x quantity
 * = price_cents - new_price_cents x quantity, never more than was paid;
 * no drop, or outside the window, is ineligible. */
static void rule_price_protection(adj *a)
{
	const ar_order *o = a->o;
	char t1[32], t2[32], span[48], src[96] = "";
	int64_t days = a->p->price_protection_days, now_total, elapsed;
	bool in_window;

	if (a->in->reason != AR_REASON_PRICE_PROTECTION)
		return;
	if (a->shop && a->shop->has_price_protection_days) {
		days = a->shop->price_protection_days;
		snprintf(src, sizeof(src), " (shop %s)", a->shop->name);
	} else if (a->cat && a->cat->has_price_protection_days) {
		days = a->cat->price_protection_days;
		snprintf(src, sizeof(src), " (category %s)", a->cat->name);
	}
	/* both bounded by check_inputs: at most 1e11 x 1e6, no overflow */
	now_total = a->in->new_price_cents * o->quantity;
	a->price_diff = o->price_cents > now_total ? o->price_cents - now_total : 0;
	if (days <= 0) {
		trace(a, "R-PRICE-PROTECTION", POLICY_RULE_FAIL,
		      "no price protection offered%s: not eligible", src);
		arg_text(a, "when", "not_offered");
		a->ineligible = true;
		return;
	}
	elapsed = a->now - o->paid_at;
	in_window = elapsed <= days * AR_MS_PER_DAY;
	fmt_time(o->paid_at, t1, sizeof(t1));
	fmt_time(a->now, t2, sizeof(t2));
	fmt_span(elapsed, span, sizeof(span));
	trace(a, "R-PRICE-PROTECTION", in_window && a->price_diff > 0 ? POLICY_RULE_PASS
								   : POLICY_RULE_FAIL,
	      "paid %s, claimed %s, %s %s %lld days%s; paid %lld for %lld, now %lld each: %s",
	      t1, t2, span, in_window ? "<=" : ">", (long long)days, src,
	      (long long)o->price_cents, (long long)o->quantity,
	      (long long)a->in->new_price_cents,
	      !in_window ? "outside the window, not eligible"
	      : a->price_diff > 0 ? "difference owed" : "no drop, not eligible");
	arg_int(a, "days", elapsed / AR_MS_PER_DAY);
	arg_int(a, "elapsed_ms", elapsed);
	arg_int(a, "window_days", days);
	arg_int(a, "paid_cents", o->price_cents);
	arg_int(a, "quantity", o->quantity);
	arg_int(a, "new_price_cents", a->in->new_price_cents);
	a->ineligible = a->ineligible || !in_window || a->price_diff == 0;
}

/* amount * bp / 10000 rounded half up, split so no product can overflow. */
static int64_t apply_bp(int64_t amount, int64_t bp, int64_t *frac4)
{
	int64_t q = amount / BP_DENOMINATOR, r = amount % BP_DENOMINATOR;

	*frac4 = r * bp % BP_DENOMINATOR;
	return q * bp + r * bp / BP_DENOMINATOR;
}

static void rule_late(adj *a)
{
	const policy *p = a->p;
	const ar_order *o = a->o;
	char t1[32], t2[32], raw[40], rate[24];
	int64_t frac4, whole, rounded;
	ar_time ship_ref;
	bool late;

	if (!has_bit(p->late_reasons, (int)a->in->reason))
		return;
	if (o->promised_ship_by == AR_TIME_NONE) {
		trace(a, "R-LATE-PENALTY", POLICY_RULE_SKIPPED,
		      "no promised ship-by time on the order: lateness cannot be shown");
		arg_text(a, "when", "no_promise");
		return;
	}
	if (o->shipped_at == AR_TIME_NONE && o->delivered_at != AR_TIME_NONE) {
		trace(a, "R-LATE-PENALTY", POLICY_RULE_SKIPPED,
		      "delivered but no ship time recorded: lateness cannot be shown");
		arg_text(a, "when", "no_ship_time");
		return;
	}
	/* Unshipped orders are judged at the time of the claim. */
	ship_ref = o->shipped_at != AR_TIME_NONE ? o->shipped_at : a->now;
	late = ship_ref > o->promised_ship_by;
	fmt_time(o->promised_ship_by, t1, sizeof(t1));
	fmt_time(ship_ref, t2, sizeof(t2));
	if (!late) {
		trace(a, "R-LATE-PENALTY", POLICY_RULE_FAIL,
		      "promised ship by %s, %s %s: not late", t1,
		      o->shipped_at != AR_TIME_NONE ? "shipped" : "still unshipped at", t2);
		arg_int(a, "late_ms", ship_ref - o->promised_ship_by);
		return;
	}
	whole = apply_bp(o->price_cents, p->penalty_bp, &frac4);
	rounded = whole + (frac4 * 2 >= BP_DENOMINATOR ? 1 : 0);
	a->penalty = rounded < p->penalty_cap_cents ? rounded : p->penalty_cap_cents;
	fmt_fixed4(whole, frac4, raw, sizeof(raw));
	fmt_fixed4(p->penalty_bp / 100, p->penalty_bp % 100 * 100, rate, sizeof(rate));
	trace(a, "R-LATE-PENALTY", POLICY_RULE_FIRED,
	      "promised ship by %s, %s %s: penalty %s %% of %lld = %s -> %lld%s",
	      t1, o->shipped_at != AR_TIME_NONE ? "shipped" : "unshipped at", t2,
	      rate, (long long)o->price_cents, raw, (long long)a->penalty,
	      whole > p->penalty_cap_cents ||
		      (whole == p->penalty_cap_cents && frac4 > 0) ? " (capped)" : "");
	arg_int(a, "late_ms", ship_ref - o->promised_ship_by);
	arg_text(a, "rate", rate);
	arg_int(a, "price_cents", o->price_cents);
	arg_int(a, "penalty_cents", a->penalty);
	arg_int(a, "cap_cents", p->penalty_cap_cents);
	if (a->in->kind == AR_KIND_REFUND || a->in->kind == AR_KIND_RETURN)
		a->auto_ok = true;
}

static void money(adj *a)
{
	ar_decision *d = a->d;
	const ar_order *o = a->o;
	ar_kind kind = a->in->kind;
	/* What the buyer actually paid for the outbound leg. */
	int64_t paid_shipping = o->free_shipping ? 0 : o->shipping_fee_cents;

	if (a->in->reason == AR_REASON_PRICE_PROTECTION) {
		d->refund.item_cents = a->price_diff;
		trace(a, "R-REFUND-PRICE-DIFFERENCE", POLICY_RULE_FIRED,
		      "price protection: %lld - %lld x %lld = %lld back, goods and shipping stay",
		      (long long)o->price_cents, (long long)a->in->new_price_cents,
		      (long long)o->quantity, (long long)a->price_diff);
		arg_int(a, "paid_cents", o->price_cents);
		arg_int(a, "new_price_cents", a->in->new_price_cents);
		arg_int(a, "quantity", o->quantity);
		arg_int(a, "diff_cents", a->price_diff);
	} else if (a->in->reason == AR_REASON_MISSING_ITEM && kind != AR_KIND_REFUND &&
		   kind != AR_KIND_COMPLAINT) {
		/* 003: goods never received are not shipped back or exchanged:
		 * the short part is refunded (or resent), whatever was asked */
		d->refund.item_cents = o->price_cents;
		trace(a, "R-REFUND-MISSING-PART", POLICY_RULE_FIRED,
		      "missing item: at most the price %lld back for the short part, or a resend; nothing ships back",
		      (long long)o->price_cents);
		arg_int(a, "price_cents", o->price_cents);
	} else if (kind == AR_KIND_REFUND && !a->shipped) {
		d->refund.item_cents = o->price_cents;
		d->refund.shipping_cents = paid_shipping;
		a->auto_ok = true;
		trace(a, "R-UNSHIPPED-REFUND", POLICY_RULE_FIRED,
		      "order never shipped: price %lld + shipping %lld refunded at once",
		      (long long)o->price_cents, (long long)paid_shipping);
		arg_int(a, "price_cents", o->price_cents);
		arg_int(a, "shipping_cents", paid_shipping);
	} else if (kind == AR_KIND_REFUND || kind == AR_KIND_RETURN) {
		d->refund.item_cents = o->price_cents;
		switch (d->fault) {
		case POLICY_FAULT_BUYER:
			trace(a, "R-REFUND-BUYER", POLICY_RULE_FIRED,
			      "buyer at fault: price %lld back; %s",
			      (long long)o->price_cents,
			      o->free_shipping ? "free shipping: each side bears its own leg"
					       : "outbound shipping stays with the seller, buyer pays the return");
			arg_int(a, "price_cents", o->price_cents);
			break;
		case POLICY_FAULT_CARRIER:
			d->refund.shipping_cents = paid_shipping;
			trace(a, "R-REFUND-CARRIER", POLICY_RULE_FIRED,
			      "carrier at fault: seller refunds price %lld + shipping %lld and claims from the carrier",
			      (long long)o->price_cents, (long long)paid_shipping);
			arg_int(a, "price_cents", o->price_cents);
			arg_int(a, "shipping_cents", paid_shipping);
			break;
		case POLICY_FAULT_SELLER:
		case POLICY_FAULT_UNDETERMINED:
			/* Undetermined shows the seller-fault ceiling: the most owed. */
			d->refund.shipping_cents = paid_shipping;
			trace(a, d->fault == POLICY_FAULT_SELLER ? "R-REFUND-SELLER"
							       : "R-REFUND-UNDETERMINED",
			      POLICY_RULE_FIRED,
			      "%s: price %lld + outbound shipping %lld; seller bears the return",
			      d->fault == POLICY_FAULT_SELLER ? "seller at fault"
							      : "fault undetermined, at most",
			      (long long)o->price_cents, (long long)paid_shipping);
			arg_int(a, "price_cents", o->price_cents);
			arg_int(a, "shipping_cents", paid_shipping);
			break;
		}
	} else {
		trace(a, "R-REFUND-NONE", POLICY_RULE_SKIPPED,
		      "a %s case pays no refund%s", ar_kind_name(kind),
		      kind == AR_KIND_COMPLAINT && a->penalty ? "; the late penalty is owed as compensation" : "");
	}
	if (kind == AR_KIND_REFUND || kind == AR_KIND_RETURN || kind == AR_KIND_COMPLAINT)
		d->refund.penalty_cents = a->penalty;
	d->refund.total_cents = d->refund.item_cents + d->refund.shipping_cents +
				d->refund.penalty_cents;
	memcpy(d->refund.currency, a->p->currency, sizeof(d->refund.currency));
}

static void rule_return(adj *a)
{
	ar_decision *d = a->d;
	ar_kind kind = a->in->kind;

	if (a->in->reason == AR_REASON_MISSING_ITEM) {
		/* nothing arrived, nothing goes back (003) */
		d->return_required = false;
	} else if (kind == AR_KIND_RETURN || kind == AR_KIND_EXCHANGE || kind == AR_KIND_REPAIR) {
		d->return_required = true;
	} else if (kind == AR_KIND_REFUND && a->delivered &&
		   has_bit(a->p->return_required_reasons, (int)a->in->reason)) {
		/* A kept defective item invites a second dispute (001). */
		d->return_required = true;
		trace(a, "R-RETURN-REQUIRED", POLICY_RULE_FIRED,
		      "%s on delivered goods: the goods must come back before the refund",
		      ar_reason_name(a->in->reason));
	}
	if (d->return_required)
		d->return_shipping_payer = d->fault == POLICY_FAULT_BUYER
						   ? POLICY_PAYER_BUYER : POLICY_PAYER_SELLER;
}

static void rule_repair(adj *a)
{
	ar_decision *d = a->d;
	char t1[32], t2[32];
	bool buyer_fault, in_warranty;

	if (a->in->kind != AR_KIND_REPAIR)
		return;
	buyer_fault = d->fault == POLICY_FAULT_BUYER;
	in_warranty = a->o->warranty_until != AR_TIME_NONE &&
		      a->now <= a->o->warranty_until;
	d->repair_cost_payer = in_warranty && !buyer_fault ? POLICY_PAYER_SELLER
							   : POLICY_PAYER_BUYER;
	/* Whoever pays the repair pays the way there and back. */
	d->return_shipping_payer = d->repair_cost_payer;
	fmt_time(a->now, t2, sizeof(t2));
	if (a->o->warranty_until == AR_TIME_NONE) {
		trace(a, "R-REPAIR-WARRANTY", POLICY_RULE_FIRED,
		      "no warranty recorded on the order: buyer pays the repair");
		arg_text(a, "when", "no_warranty");
		return;
	}
	fmt_time(a->o->warranty_until, t1, sizeof(t1));
	trace(a, "R-REPAIR-WARRANTY", POLICY_RULE_FIRED,
	      "warranty until %s, requested %s (%s), %s: %s pays the repair", t1, t2,
	      in_warranty ? "inside" : "expired",
	      buyer_fault ? "buyer damage" : "not buyer damage",
	      policy_payer_name(d->repair_cost_payer));
	if (in_warranty)
		arg_int(a, "left_ms", a->o->warranty_until - a->now);
	else
		arg_int(a, "over_ms", a->now - a->o->warranty_until);
	arg_text(a, "when", !in_warranty ? "expired" : buyer_fault ? "buyer_damage" : "seller_pays");
}

static void rule_insurance(adj *a)
{
	const policy *p = a->p;
	const ar_order *o = a->o;
	ar_decision *d = a->d;
	int64_t cost;
	const char *src;

	if (o->insurance == AR_INSURANCE_NONE)
		return;
	if (!d->return_required) {
		trace(a, "R-INSURANCE", POLICY_RULE_SKIPPED,
		      "%s's return-shipping insurance: nothing is shipped back",
		      ar_insurance_name(o->insurance));
		arg_text(a, "when", "nothing_back");
		return;
	}
	/* The outbound fee is the best estimate of the return leg we have. */
	if (o->shipping_fee_cents > 0) {
		cost = o->shipping_fee_cents;
		src = "order shipping fee";
	} else if (a->shop && a->shop->has_return_shipping) {
		cost = a->shop->return_shipping_cents;
		src = "shop default";
	} else if (a->cat && a->cat->has_return_shipping) {
		cost = a->cat->return_shipping_cents;
		src = "category default";
	} else {
		cost = p->return_shipping_cents;
		src = "policy default";
	}
	if (o->insurance == AR_INSURANCE_BUYER) {
		int64_t pay = cost < p->buyer_ins_min_cents ? p->buyer_ins_min_cents
			    : cost > p->buyer_ins_max_cents ? p->buyer_ins_max_cents : cost;
		d->insurance_payout_cents = pay;
		d->return_shipping_payer = POLICY_PAYER_INSURER;
		trace(a, "R-INSURANCE", POLICY_RULE_FIRED,
		      "buyer's insurance: return shipping %lld (%s), payout clamped to [%lld, %lld] = %lld",
		      (long long)cost, src, (long long)p->buyer_ins_min_cents,
		      (long long)p->buyer_ins_max_cents, (long long)pay);
		arg_int(a, "cost_cents", cost);
		arg_int(a, "min_cents", p->buyer_ins_min_cents);
		arg_int(a, "max_cents", p->buyer_ins_max_cents);
		arg_int(a, "payout_cents", pay);
		arg_text(a, "when", "buyer");
	} else {
		int64_t seller = cost < p->seller_share_cents ? cost : p->seller_share_cents;
		d->insurance_payout_cents = cost - seller;
		d->return_shipping_payer = POLICY_PAYER_SELLER;
		trace(a, "R-INSURANCE", POLICY_RULE_FIRED,
		      "seller's insurance: return shipping %lld (%s), seller pays %lld, insurer %lld",
		      (long long)cost, src, (long long)seller,
		      (long long)(cost - seller));
		arg_int(a, "cost_cents", cost);
		arg_int(a, "seller_cents", seller);
		arg_int(a, "insurer_cents", cost - seller);
		arg_text(a, "when", "seller");
	}
}

/* n, at most cap; what is left of n goes to the next part. */
static int64_t take(int64_t *n, int64_t cap)
{
	int64_t t = *n < cap ? *n : cap;

	*n -= t;
	return t;
}

/*
 * What accepting pays: what was asked, never more than the most owed (003:
 * "可对数量不足的部分进行退款处理", a missing item is refunded for the short
 * part). total_cents becomes min(requested, max), split item first, so a
 * seller's accept and the automatic refund on silence pay the same amount.
 */
static void settle_amount(adj *a)
{
	ar_decision *d = a->d;
	int64_t req = a->in->requested_cents;
	int64_t left;

	d->refund.max_cents = d->refund.total_cents;
	d->refund.requested_cents = req;
	if (a->refused || req < 0 || req > d->refund.max_cents ||
	    a->in->kind == AR_KIND_COMPLAINT)
		return;
	d->refund.requested = true;
	if (req == d->refund.max_cents)
		return;
	left = req;
	d->refund.item_cents = take(&left, d->refund.item_cents);
	d->refund.shipping_cents = take(&left, d->refund.shipping_cents);
	d->refund.penalty_cents = take(&left, d->refund.penalty_cents);
	d->refund.total_cents = req;
	trace(a, "R-PAY-REQUESTED", POLICY_RULE_FIRED,
	      "pays the %lld requested of %lld owed: item %lld, shipping %lld, penalty %lld",
	      (long long)req, (long long)d->refund.max_cents, (long long)d->refund.item_cents,
	      (long long)d->refund.shipping_cents, (long long)d->refund.penalty_cents);
	arg_int(a, "requested_cents", req);
	arg_int(a, "max_cents", d->refund.max_cents);
}

int64_t policy_restore_share(int64_t used, int64_t goods_refunded, int64_t goods_cents)
{
	if (used <= 0 || goods_refunded <= 0)
		return 0;
	if (goods_cents <= 0 || goods_refunded >= goods_cents)
		return used;
	/* exact: used and goods may each reach 1e15, their product does not fit 64 bits */
	return (int64_t)((unsigned __int128)used * (unsigned __int128)goods_refunded /
			 (unsigned __int128)goods_cents);
}

/* 004: what the buyer spent besides money comes back with the goods part. */
static void settle_restore(adj *a)
{
	ar_decision *d = a->d;
	const ar_order *o = a->o;

	d->refund.points_used = o->points_used;
	d->refund.coupon_cents = o->coupon_cents;
	d->refund.goods_cents = o->price_cents;
	if (d->refund.total_cents <= 0)
		return;
	d->refund.restore_points = policy_restore_share(o->points_used, d->refund.item_cents,
							o->price_cents);
	d->refund.restore_coupon_cents = policy_restore_share(o->coupon_cents,
							      d->refund.item_cents, o->price_cents);
	if (o->points_used > 0 || o->coupon_cents > 0)
		trace(a, "R-RESTORE", POLICY_RULE_FIRED,
		      "goods %lld of %lld refunded: restore %lld of %lld points, coupon %lld of %lld",
		      (long long)d->refund.item_cents, (long long)o->price_cents,
		      (long long)d->refund.restore_points, (long long)o->points_used,
		      (long long)d->refund.restore_coupon_cents, (long long)o->coupon_cents);
	if (o->points_used > 0 || o->coupon_cents > 0) {
		arg_int(a, "points", d->refund.restore_points);
		arg_int(a, "points_used", o->points_used);
		arg_int(a, "coupon_cents", d->refund.restore_coupon_cents);
		arg_int(a, "coupon_used_cents", o->coupon_cents);
	}
}

static void rule_requested(adj *a)
{
	int64_t req = a->in->requested_cents;
	int64_t max = a->d->refund.total_cents;

	/* A complaint's compensation is negotiated, not capped by a refund. */
	if (req < 0 || a->in->kind == AR_KIND_COMPLAINT)
		return;
	if (req > max) {
		trace(a, "R-REQUESTED", POLICY_RULE_FAIL,
		      "requested %lld > %lld, the most owed under this policy",
		      (long long)req, (long long)max);
		arg_int(a, "requested_cents", req);
		arg_int(a, "max_cents", max);
		refuse(a, "/requested_cents", "field.requested_over_max", "amount", AR_MONEY(req),
		       "max", AR_MONEY(max), "version", a->p->version, NULL);
	} else {
		trace(a, "R-REQUESTED", POLICY_RULE_PASS,
		      "requested %lld <= %lld, the most owed", (long long)req,
		      (long long)max);
		arg_int(a, "requested_cents", req);
		arg_int(a, "max_cents", max);
	}
}

static void rule_severity(adj *a, const policy_history *h)
{
	const policy *p = a->p;
	bool by_reason, by_amount, by_exposure, by_repeat;
	const char *cls;

	if (a->in->kind != AR_KIND_COMPLAINT)
		return;
	/* 000: product quality vs service quality, as declared or by reason */
	cls = a->in->complaint_category ? a->in->complaint_category
		: a->in->reason == AR_REASON_POOR_SERVICE || a->in->reason == AR_REASON_LATE_SHIPMENT
			? "service_quality" : "product_quality";
	snprintf(a->d->classification, sizeof(a->d->classification), "%s", cls);
	trace(a, "R-COMPLAINT-CLASS", POLICY_RULE_FIRED, "%s complaint (%s)", cls,
	      a->in->complaint_category ? "declared" : "from the reason");
	/* 002, 001: large amounts, safety, public exposure, repeat complaints */
	by_reason = has_bit(p->major_reasons, (int)a->in->reason);
	by_amount = p->major_amount_cents > 0 &&
		    a->o->price_cents >= p->major_amount_cents;
	by_exposure = a->in->public_exposure;
	by_repeat = h && h->complaints_same_order > 0;
	a->d->major = by_reason || by_amount || by_exposure || by_repeat;
	trace(a, "R-COMPLAINT-SEVERITY", a->d->major ? POLICY_RULE_FIRED : POLICY_RULE_PASS,
	      "reason %s%s, price %lld %s %lld%s%s: %s", ar_reason_name(a->in->reason),
	      by_reason ? " is a major reason" : "", (long long)a->o->price_cents,
	      by_amount ? ">=" : "<", (long long)p->major_amount_cents,
	      by_exposure ? ", public exposure declared" : "",
	      by_repeat ? ", repeat complaint on this order" : "",
	      a->d->major ? "major" : "general");
	arg_int(a, "price_cents", a->o->price_cents);
	arg_int(a, "major_cents", p->major_amount_cents);
}

/* 001: several quality complaints on one SKU in a short time are a batch
 * problem; its cases are handled uniformly. */
static void rule_batch_defect(adj *a, const policy_history *h)
{
	bool quality = a->in->reason == AR_REASON_QUALITY_DEFECT ||
		       a->in->reason == AR_REASON_NOT_AS_DESCRIBED ||
		       a->in->reason == AR_REASON_SAFETY_HAZARD;

	if (!h || !h->sku_batch_defect) {
		trace(a, "R-BATCH-DEFECT", POLICY_RULE_PASS, "SKU %s is not flagged as a batch defect",
		      a->o->sku ? a->o->sku : "?");
		arg_text(a, "sku", a->o->sku ? a->o->sku : "?");
		return;
	}
	a->d->batch_defect = true;
	if (quality && a->p->batch_auto_approve && a->in->kind != AR_KIND_COMPLAINT) {
		a->auto_ok = true;
		trace(a, "R-BATCH-DEFECT", POLICY_RULE_FIRED,
		      "SKU %s is flagged as a batch defect: quality cases approved uniformly",
		      a->o->sku ? a->o->sku : "?");
		arg_text(a, "sku", a->o->sku ? a->o->sku : "?");
		arg_text(a, "when", "uniform");
	} else {
		trace(a, "R-BATCH-DEFECT", POLICY_RULE_FIRED,
		      "SKU %s is flagged as a batch defect (%d+ quality cases in %d days)",
		      a->o->sku ? a->o->sku : "?", (int)a->p->batch_threshold,
		      (int)a->p->batch_window_days);
		arg_text(a, "sku", a->o->sku ? a->o->sku : "?");
		arg_int(a, "threshold", a->p->batch_threshold);
		arg_int(a, "window_days", a->p->batch_window_days);
	}
}

static void add_signal(adj *a, const char *code, int64_t weight)
{
	ar_decision *d = a->d;

	d->risk.score += (int)weight;
	if (d->risk.n_signals < POLICY_MAX_SIGNALS)
		snprintf(d->risk.signals[d->risk.n_signals++],
			 sizeof(d->risk.signals[0]), "%s", code);
}

static void rule_risk(adj *a, const policy_history *h)
{
	const policy *p = a->p;
	const ar_buyer *b = &a->in->buyer;
	int64_t cases = h ? h->cases_last_7d : 0;
	int64_t texts = h ? h->same_text_other_shops_30d : 0;
	int cases_cap, texts_cap;

	if (b->account_created_at == AR_TIME_NONE) {
		trace(a, "R-RISK-NEW-ACCOUNT", POLICY_RULE_SKIPPED,
		      "account creation time unknown");
		arg_text(a, "when", "age_unknown");
	} else {
		int64_t age = a->now - b->account_created_at;
		bool young = age <= p->new_account_days * AR_MS_PER_DAY;
		bool fired = young && b->orders_count == 0;
		char span[48];

		fmt_span(age, span, sizeof(span));
		trace(a, "R-RISK-NEW-ACCOUNT", fired ? POLICY_RULE_FIRED : POLICY_RULE_PASS,
		      "account age %s %s %lld days, %lld earlier orders%s", span,
		      young ? "<=" : ">", (long long)p->new_account_days,
		      (long long)b->orders_count, fired ? ": new account, +weight" : "");
		arg_int(a, "age_days", age / AR_MS_PER_DAY);
		arg_int(a, "new_account_days", p->new_account_days);
		arg_int(a, "orders", b->orders_count);
		if (fired)
			add_signal(a, "new_account", p->w_new_account);
	}

	/* the store counts only up to policy_risk_caps: a count at its cap
	 * is a floor, and says so */
	policy_risk_caps(p, &cases_cap, &texts_cap);
	trace(a, "R-RISK-MANY-CASES",
	      cases > p->max_cases_7d ? POLICY_RULE_FIRED : POLICY_RULE_PASS,
	      "%s%lld cases by this buyer in 7 days %s %lld",
	      cases > cases_cap ? "at least " : "", (long long)cases,
	      cases > p->max_cases_7d ? ">" : "<=", (long long)p->max_cases_7d);
	arg_int(a, "cases", cases);
	arg_int(a, "max_cases", p->max_cases_7d);
	if (cases > p->max_cases_7d)
		add_signal(a, "many_cases_7d", p->w_many_cases);

	trace(a, "R-RISK-SAME-TEXT",
	      texts > p->max_same_text_shops ? POLICY_RULE_FIRED : POLICY_RULE_PASS,
	      "same description sent to %s%lld other shops in 30 days %s %lld",
	      texts >= texts_cap ? "at least " : "",
	      (long long)texts, texts > p->max_same_text_shops ? ">" : "<=",
	      (long long)p->max_same_text_shops);
	arg_int(a, "shops", texts);
	arg_int(a, "max_shops", p->max_same_text_shops);
	if (texts > p->max_same_text_shops)
		add_signal(a, "same_text_other_shops", p->w_same_text);

	trace(a, "R-RISK-SCORE",
	      a->d->risk.score >= p->manual_review_score ? POLICY_RULE_FIRED : POLICY_RULE_PASS,
	      "risk score %d %s %lld%s", a->d->risk.score,
	      a->d->risk.score >= p->manual_review_score ? ">=" : "<",
	      (long long)p->manual_review_score,
	      a->d->risk.score >= p->manual_review_score ? ": manual review, never auto-rejected" : "");
	arg_int(a, "score", a->d->risk.score);
	arg_int(a, "review_score", p->manual_review_score);
}

bool policy_adjudicate(const policy *p, const ar_case_input *in,
		       const policy_history *h, ar_time now, ar_decision *out,
		       ar_err *err)
{
	adj a = { 0 };

	memset(out, 0, sizeof(*out));
	out->insurance_payout_cents = -1;
	snprintf(out->policy_version, sizeof(out->policy_version), "%s", p->version);
	out->max_offer_rounds = (int)p->max_offer_rounds;
	if (now == AR_TIME_NONE || (unsigned)in->kind >= AR_KIND__COUNT ||
	    (unsigned)in->reason >= AR_REASON__COUNT) {
		ar_err_setk(err, 500, "internal", "detail.adjudicate_misuse", NULL);
		return false;
	}
	a.p = p;
	a.in = in;
	a.o = &in->order;
	a.now = now;
	a.d = out;
	a.err = err;
	a.shop = find_override(p->shops, p->n_shops, in->order.shop_id);
	a.cat = find_override(p->categories, p->n_categories, in->order.category);
	a.shipped = in->order.shipped_at != AR_TIME_NONE ||
		    in->order.delivered_at != AR_TIME_NONE;
	a.delivered = in->order.delivered_at != AR_TIME_NONE;

	check_inputs(&a);
	if (a.refused)
		return false;

	out->fault = p->fault[in->reason];
	trace(&a, "R-FAULT", POLICY_RULE_FIRED, "reason %s: %s at fault",
	      ar_reason_name(in->reason), policy_fault_name(out->fault));

	rule_no_reason(&a);
	rule_missing_item(&a);
	rule_categories(&a);
	rule_price_protection(&a);
	rule_late(&a);
	money(&a);
	rule_return(&a);
	rule_repair(&a);
	rule_insurance(&a);
	rule_requested(&a);
	settle_amount(&a);
	settle_restore(&a);
	rule_severity(&a, h);
	rule_batch_defect(&a, h);
	rule_risk(&a, h);
	if (a.refused)
		return false;

	/* Policy facts beat risk; risk beats speed; complaints always get a human. */
	if (a.ineligible)
		out->outcome = POLICY_OUTCOME_INELIGIBLE;
	else if (out->risk.score >= p->manual_review_score)
		out->outcome = POLICY_OUTCOME_MANUAL_REVIEW;
	else if (a.auto_ok && in->kind != AR_KIND_COMPLAINT)
		out->outcome = POLICY_OUTCOME_AUTO_APPROVE;
	else
		out->outcome = POLICY_OUTCOME_SELLER_REVIEW;
	return true;
}

/* ------------------------------------------------------------------ */
/* encoding                                                            */

/* A trace entry's args as a JSON object; NULL on out of memory. */
static json_t *rule_args(const policy_rule_trace *t)
{
	json_t *o = json_object();

	if (!o)
		goto fail;
	for (size_t k = 0; k < t->n_args && k < POLICY_RULE_ARGS; k++) {
		const policy_rule_arg *g = &t->args[k];
		if (json_object_set_new(o, g->name, g->is_text ? json_string(g->text)
							       : json_integer(g->num)))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *policy_decision_to_json(const ar_decision *d)
{
	json_t *root = json_object(), *refund = json_object(), *risk = json_object();
	json_t *signals = json_array(), *rules = json_array();
	int rc = 0;

	if (!root) {
		json_decref(refund);
		json_decref(risk);
		json_decref(signals);
		json_decref(rules);
		return NULL;
	}
	/* set_new steals each value even when it fails, so every attach runs
	 * (no short-circuit) and then the root's one decref releases all. */
	rc |= json_object_set_new(root, "outcome", json_string(policy_outcome_name(d->outcome)));
	rc |= json_object_set_new(root, "fault", json_string(policy_fault_name(d->fault)));
	rc |= json_object_set_new(refund, "item_cents", json_integer(d->refund.item_cents));
	rc |= json_object_set_new(refund, "shipping_cents", json_integer(d->refund.shipping_cents));
	rc |= json_object_set_new(refund, "penalty_cents", json_integer(d->refund.penalty_cents));
	rc |= json_object_set_new(refund, "total_cents", json_integer(d->refund.total_cents));
	rc |= json_object_set_new(refund, "max_cents", json_integer(d->refund.max_cents));
	rc |= json_object_set_new(refund, "requested_cents",
				  d->refund.requested_cents < 0 ? json_null()
								: json_integer(d->refund.requested_cents));
	rc |= json_object_set_new(refund, "basis",
				  json_string(d->refund.requested ? "requested" : "decided"));
	rc |= json_object_set_new(refund, "currency", json_string(d->refund.currency));
	rc |= json_object_set_new(refund, "restore",
				  json_pack("{s:I,s:I}", "points", (json_int_t)d->refund.restore_points,
					    "coupon_cents", (json_int_t)d->refund.restore_coupon_cents));
	rc |= json_object_set_new(refund, "restorable",
				  json_pack("{s:I,s:I,s:I}",
					    "points_used", (json_int_t)d->refund.points_used,
					    "coupon_cents", (json_int_t)d->refund.coupon_cents,
					    "goods_cents", (json_int_t)d->refund.goods_cents));
	rc |= json_object_set_new(root, "refund", refund);
	rc |= json_object_set_new(root, "return_required", json_boolean(d->return_required));
	rc |= json_object_set_new(root, "return_shipping_payer",
				  json_string(policy_payer_name(d->return_shipping_payer)));
	rc |= json_object_set_new(root, "insurance_payout_cents",
				  d->insurance_payout_cents < 0 ? json_null()
								: json_integer(d->insurance_payout_cents));
	rc |= json_object_set_new(root, "repair_cost_payer",
				  d->repair_cost_payer == POLICY_PAYER_NONE
					  ? json_null()
					  : json_string(policy_payer_name(d->repair_cost_payer)));
	rc |= json_object_set_new(root, "remedy", d->remedy[0] ? json_string(d->remedy) : json_null());
	rc |= json_object_set_new(root, "severity", json_string(d->major ? "major" : "general"));
	rc |= json_object_set_new(root, "classification",
				  d->classification[0] ? json_string(d->classification) : json_null());
	rc |= json_object_set_new(root, "batch_defect", json_boolean(d->batch_defect));
	rc |= json_object_set_new(risk, "score", json_integer(d->risk.score));
	rc |= json_object_set_new(risk, "signals", signals);
	rc |= json_object_set_new(root, "risk", risk);
	rc |= json_object_set_new(root, "rules", rules);
	rc |= json_object_set_new(root, "negotiation",
				  json_pack("{s:i}", "max_rounds", d->max_offer_rounds));
	rc |= json_object_set_new(root, "policy_version", json_string(d->policy_version));
	if (rc)
		goto fail;
	for (size_t i = 0; i < d->risk.n_signals && i < POLICY_MAX_SIGNALS; i++)
		if (json_array_append_new(signals, json_string(d->risk.signals[i])))
			goto fail;
	for (size_t i = 0; i < d->n_rules && i < POLICY_MAX_RULES; i++) {
		const policy_rule_trace *t = &d->rules[i];
		json_t *r = json_pack("{s:s, s:s, s:s}", "id", t->id, "result",
				      policy_rule_result_name(t->result), "reason", t->reason);

		if (json_array_append_new(rules, r))
			goto fail;
		if (t->n_args && json_object_set_new(r, "args", rule_args(t)))
			goto fail;
	}
	return root;
fail:
	json_decref(root);
	return NULL;
}

static int64_t jint(const json_t *o, const char *k, int64_t dflt)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

json_t *policy_refund_instruction(const json_t *refund, int64_t total, const char *reason)
{
	json_t *restorable = json_object_get(refund, "restorable");
	json_t *restore = json_object_get(refund, "restore");
	json_t *req = json_object_get(refund, "requested_cents");
	const char *cur = json_string_value(json_object_get(refund, "currency"));
	const char *basis = json_string_value(json_object_get(refund, "basis"));
	int64_t decided = jint(refund, "total_cents", -1);
	bool same = total == decided;
	int64_t item = same ? jint(refund, "item_cents", 0) : total;
	int64_t points, coupon;

	if (same && json_is_object(restore)) {
		points = jint(restore, "points", 0);
		coupon = jint(restore, "coupon_cents", 0);
	} else {
		int64_t goods = jint(restorable, "goods_cents", 0);
		points = policy_restore_share(jint(restorable, "points_used", 0), item, goods);
		coupon = policy_restore_share(jint(restorable, "coupon_cents", 0), item, goods);
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:s,s:s,s:s,s:{s:I,s:I}}",
			 "item_cents", (json_int_t)item,
			 "shipping_cents", (json_int_t)(same ? jint(refund, "shipping_cents", 0) : 0),
			 "penalty_cents", (json_int_t)(same ? jint(refund, "penalty_cents", 0) : 0),
			 "total_cents", (json_int_t)total,
			 "max_cents", (json_int_t)jint(refund, "max_cents", decided < 0 ? total : decided),
			 "requested_cents", json_is_integer(req) ? json_integer(json_integer_value(req))
								 : json_null(),
			 "basis", !same ? "action" : basis ? basis : "decided",
			 "currency", cur ? cur : "CNY",
			 "reason", reason,
			 "restore", "points", (json_int_t)points, "coupon_cents", (json_int_t)coupon);
}

void policy_batch(const policy *p, int *threshold, int *window_days)
{
	*threshold = (int)p->batch_threshold;
	*window_days = (int)p->batch_window_days;
}

static int cap_past(int64_t threshold)
{
	return threshold < 0 ? 1 : threshold >= INT_MAX ? INT_MAX : (int)threshold + 1;
}

void policy_risk_caps(const policy *p, int *cases_7d, int *other_shops_30d)
{
	*cases_7d = cap_past(p->max_cases_7d);
	*other_shops_30d = cap_past(p->max_same_text_shops);
}
