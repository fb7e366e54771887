/*
 * The vocabulary shared by every module: case kinds, reason codes, times,
 * money, the decoded "open a case" request, and the error collector that
 * pure modules fill instead of logging.
 *
 * Ownership: strings in ar_case_input / ar_order / ar_evidence are BORROWED
 * from the jansson document they were decoded from; they stay valid while the
 * caller keeps that document alive. Nothing here is freed by the callee.
 */
#ifndef ARBITER_MODEL_H
#define ARBITER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AR_MUSTCHECK __attribute__((warn_unused_result))

/* Milliseconds since the Unix epoch, UTC. AR_TIME_NONE means "not given". */
typedef int64_t ar_time;
#define AR_TIME_NONE INT64_MIN
#define AR_MS_PER_SEC 1000LL
#define AR_MS_PER_DAY (86400LL * 1000LL)

typedef enum {
	AR_KIND_REFUND,
	AR_KIND_RETURN,
	AR_KIND_EXCHANGE,
	AR_KIND_REPAIR,
	AR_KIND_COMPLAINT,
	AR_KIND__COUNT
} ar_kind;

typedef enum {
	AR_REASON_QUALITY_DEFECT,
	AR_REASON_NOT_AS_DESCRIBED,
	AR_REASON_WRONG_ITEM,
	AR_REASON_MISSING_ITEM,
	AR_REASON_COUNTERFEIT,
	AR_REASON_LATE_SHIPMENT,
	AR_REASON_OUT_OF_STOCK,
	AR_REASON_DAMAGED_IN_TRANSIT,
	AR_REASON_LOST_IN_TRANSIT,
	AR_REASON_CHANGED_MIND,
	AR_REASON_WRONG_SIZE_CHOSEN,
	AR_REASON_BOUGHT_BY_MISTAKE,
	AR_REASON_DAMAGED_BY_BUYER,
	/* complaint-only grievances about service rather than goods */
	AR_REASON_POOR_SERVICE,
	AR_REASON_SAFETY_HAZARD,
	/* 001 退差: the price dropped inside the shop's price-protection
	 * window; a refund (money back, goods kept) of the difference */
	AR_REASON_PRICE_PROTECTION,
	AR_REASON__COUNT
} ar_reason;

typedef enum {
	AR_EVIDENCE_PHOTO,
	AR_EVIDENCE_VIDEO,
	AR_EVIDENCE_CHAT_LOG,
	AR_EVIDENCE_LOGISTICS,
	AR_EVIDENCE_DOCUMENT,
	AR_EVIDENCE__COUNT
} ar_evidence_kind;

/* Return-shipping insurance (运费险) carried by the order. */
typedef enum {
	AR_INSURANCE_NONE,
	AR_INSURANCE_BUYER,
	AR_INSURANCE_SELLER
} ar_insurance;

#define AR_MAX_EVIDENCE 20
#define AR_MAX_ID_LEN 64          /* order id, shop id, buyer id, sku, category */
#define AR_CASE_ID_LEN 34         /* "c_" and 32 hex digits */
#define AR_CASE_ID_RANDOM 20      /* random hex digits in a case id */
#define AR_MAX_DESCRIPTION 4000   /* characters (code points), not bytes */
#define AR_MAX_URL_LEN 2048
#define AR_CURRENCY_LEN 3

typedef struct {
	ar_evidence_kind kind;
	const char *url;
	const char *sha256; /* 64 lowercase hex digits, or NULL */
} ar_evidence;

typedef struct {
	const char *id;
	const char *shop_id;
	const char *buyer_id;
	const char *sku;
	const char *category;          /* NULL when not given */
	int64_t price_cents;
	int64_t shipping_fee_cents;    /* 0 when not given */
	bool free_shipping;
	ar_time paid_at;
	ar_time promised_ship_by;
	ar_time shipped_at;
	ar_time delivered_at;
	bool customized;
	ar_time warranty_until;
	ar_insurance insurance;        /* "return_shipping_insurance": none|buyer|seller */
	int64_t usage_km;              /* -1 when not given (vehicles) */
	ar_time invoice_at;            /* purchase invoice date (vehicles, 三包); AR_TIME_NONE */
	int64_t quantity;              /* units the price paid for; 1 when not given */
	/* 004: what the buyer spent besides money; price_cents is the money
	 * paid for the goods after both */
	int64_t points_used;           /* shop points spent on the order; 0 when not given */
	int64_t coupon_cents;          /* shop coupon value applied; 0 when not given */
} ar_order;

typedef struct {
	ar_time account_created_at;    /* AR_TIME_NONE when unknown */
	int64_t orders_count;          /* -1 when unknown */
} ar_buyer;

/* A decoded, validated POST /v1/cases (and POST /v1/adjudications) body. */
typedef struct {
	ar_kind kind;
	ar_reason reason;
	const char *description;
	int64_t requested_cents;       /* -1 when not given */
	char currency[AR_CURRENCY_LEN + 1];
	const char *defect;            /* optional component, e.g. "brake"; NULL */
	int64_t new_price_cents;       /* price_protection: the new lower unit price; -1 */
	/* complaints: "complaint": {"category", "public_exposure"} */
	const char *complaint_category; /* product_quality | service_quality | NULL */
	bool public_exposure;           /* the buyer threatens media / public posts */
	ar_order order;
	ar_buyer buyer;
	size_t n_evidence;
	ar_evidence evidence[AR_MAX_EVIDENCE];
} ar_case_input;

/*
 * Error collector. The first ar_err_set() fixes status/type/title/detail
 * (first error wins, like jansson's json_error_t); ar_err_field() appends a
 * field error (JSON pointer + message) up to AR_ERR_MAX_FIELDS, so one reply
 * can name every bad field. The HTTP edge turns it into problem+json.
 */
#define AR_ERR_MAX_FIELDS 16
#define AR_ERR_TEXT 256

/*
 * A text by catalogue key (i18n/en.json, zh-CN.json) and the values of its {name}
 * placeholders, so the HTTP edge can say it in the reader's language; the
 * English rendering sits beside it (detail, message) for logs. An empty
 * key means the text exists only in English (the older ar_err_set path).
 */
#define AR_MSG_MAX_ARGS 3
#define AR_MSG_KEY 64
#define AR_MSG_VALUES 320

typedef struct {
	char key[AR_MSG_KEY];
	size_t n_args;
	const char *name[AR_MSG_MAX_ARGS]; /* string literals, kept by pointer */
	unsigned short at[AR_MSG_MAX_ARGS]; /* offset of each value in values */
	char values[AR_MSG_VALUES];         /* the values, each NUL-terminated */
} ar_msg;

typedef struct {
	char pointer[AR_ERR_TEXT];
	char message[AR_ERR_TEXT];
	ar_msg msg;
} ar_field_error;

typedef struct {
	int status;                    /* 0 = no error */
	char type[64];                 /* short slug, e.g. "validation"; URI built by http */
	char title[96];
	char detail[AR_ERR_TEXT * 2];
	ar_msg msg;                    /* detail by key; see errmsg.h */
	size_t n_fields;
	ar_field_error fields[AR_ERR_MAX_FIELDS];
} ar_err;

void ar_err_init(ar_err *e);
void ar_err_set(ar_err *e, int status, const char *type, const char *title,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Adds a field error; sets status 422 "validation" if no error was set yet. */
void ar_err_field(ar_err *e, const char *pointer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A cursor the service did not hand out (forged, out of range, garbage):
 * 400 invalid-cursor, the query parameter named by pointer ("/query/x"). */
void ar_err_cursor(ar_err *e, const char *pointer);
static inline bool ar_err_is_set(const ar_err *e) { return e->status != 0; }

/* A case id into out: "c_", 12 hex digits of unix_ms (the creation time in
 * milliseconds), then rnd (AR_CASE_ID_RANDOM random hex digits, e.g. from
 * auth_random_hex). Ids made later sort later,
 * so the B-tree entries keyed by a new case's id (the case, its deadlines,
 * its events) land on the rightmost, cached pages rather than on random
 * ones, each of which also costs a full-page image in the WAL after every
 * checkpoint. 80 random bits keep ids unguessable. */
void ar_case_id_format(char out[AR_CASE_ID_LEN + 1], int64_t unix_ms,
		       const char rnd[AR_CASE_ID_RANDOM]);

const char *ar_kind_name(ar_kind k);
bool ar_kind_parse(const char *s, ar_kind *out) AR_MUSTCHECK;
const char *ar_reason_name(ar_reason r);
bool ar_reason_parse(const char *s, ar_reason *out) AR_MUSTCHECK;
const char *ar_evidence_kind_name(ar_evidence_kind k);
bool ar_evidence_kind_parse(const char *s, ar_evidence_kind *out) AR_MUSTCHECK;
const char *ar_insurance_name(ar_insurance i);
bool ar_insurance_parse(const char *s, ar_insurance *out) AR_MUSTCHECK;

/*
 * RFC 3339 timestamps. Parse accepts "2026-11-02T10:00:00Z",
 * fractional seconds and numeric offsets; format writes UTC with
 * millisecond precision "2026-11-02T10:00:00.000Z" into buf (>= 32 bytes).
 */
bool ar_time_parse(const char *s, ar_time *out) AR_MUSTCHECK;
void ar_time_format(ar_time t, char *buf, size_t len);

/*
 * ISO 8601 durations as used in the policy: PnW, PnDTnHnMnS, fractional
 * seconds allowed ("PT0.5S"); years and months are refused (not a fixed
 * length). Result in milliseconds.
 */
bool ar_duration_parse(const char *s, int64_t *out_ms) AR_MUSTCHECK;

/* Proleptic Gregorian date <-> days since 1970-01-01 (negative before). */
int64_t ar_days_from_civil(int64_t y, int m, int d);
void ar_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
