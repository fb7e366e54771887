/*
 * The request codec: raw HTTP body bytes -> jansson document -> validated
 * ar_case_input, with every problem named by an RFC 6901 JSON pointer in the
 * caller's ar_err; and the canonical JSON form of orders and evidence that the
 * store persists. Pure: no logging, no I/O.
 *
 * Conventions shared by every getter below:
 *  - ptr_prefix is the JSON pointer of obj itself ("" for the root,
 *    "/order" for the order); the field's pointer is ptr_prefix + "/" + key,
 *    with the key escaped per RFC 6901 (~ -> ~0, / -> ~1).
 *  - An optional field that is absent OR JSON null counts as not given.
 *  - Errors are appended with ar_err_field (422 "validation"); the functions
 *    return false when they appended one, so callers may keep going to
 *    collect every bad field in one reply.
 */
#ifndef ARBITER_CODEC_H
#define ARBITER_CODEC_H

#include <jansson.h>

#include "arbiter/model.h"
#include "arbiter/textbuf.h"

#define CODEC_MAX_DEPTH 32
#define CODEC_MAX_CENTS 1000000000000000LL /* 10^15 minor units: sane money bound */
#define CODEC_MAX_QUANTITY 1000000           /* units on one order line */
#define CODEC_CLOCK_SKEW_MS (5 * 60 * 1000)  /* how far a frontend's clock may run ahead */

/* Shop, buyer, order and SKU ids: ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$ */
#define CODEC_IDENT_MAX 64
#define CODEC_IDENT_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:_-"
/* True when s is such an identifier. */
bool codec_ident_ok(const char *s);

/*
 * Process-wide decoding options, set once at start before any decode
 * (not thread-safe against decodes running). Defaults: https:// evidence
 * only, the wall clock.
 */
typedef struct {
	bool allow_http_evidence;  /* also http:// evidence URLs */
	ar_time (*now)(void);      /* NULL: the wall clock; "now" for the order's timeline */
} codec_options;
void codec_configure(const codec_options *o);

/*
 * Parses a request body. Returns a NEW reference (caller json_decref) to a
 * JSON object, or NULL with err set:
 *   400 "malformed-json"  (detail carries jansson's text and the byte offset),
 *   400 "duplicate-key"   (detail names the key),
 *   400 "nesting-too-deep" (more than CODEC_MAX_DEPTH nested arrays/objects;
 *                           checked on the raw bytes before jansson recurses),
 *   422 "validation" with pointer ""  when the top level is not an object.
 */
json_t *codec_parse_body(const char *buf, size_t len, ar_err *err);

/*
 * Validates root as a POST /v1/cases body and fills *out. Strings in *out are
 * BORROWED from root: keep root alive while *out is used. Collects every field
 * error it finds (up to AR_ERR_MAX_FIELDS); returns false if any was found.
 * Shop, buyer, order and SKU ids must be CODEC_IDENT_CHARS identifiers;
 * the order's paid_at <= shipped_at <= delivered_at, none later than now +
 * CODEC_CLOCK_SKEW_MS (422 naming the field); evidence URLs https:// (or
 * http:// when configured) to a public host, no userinfo.
 */
bool codec_decode_case(json_t *root, ar_case_input *out, ar_err *err) AR_MUSTCHECK;

/*
 * String field of 1..max_chars code points. *out is borrowed from obj;
 * set to NULL when an optional field is not given (returns true).
 */
bool codec_get_string(json_t *obj, const char *key, const char *ptr_prefix, bool required,
		      size_t max_chars, const char **out, ar_err *err) AR_MUSTCHECK;

/* Integer amount in 0..CODEC_MAX_CENTS; *out = -1 when an optional field is not given. */
bool codec_get_cents(json_t *obj, const char *key, const char *ptr_prefix, bool required,
		     int64_t *out, ar_err *err) AR_MUSTCHECK;

/*
 * Appends "unknown field" for every key of obj not in allowed (a
 * NULL-terminated list). Returns false if there was any.
 */
bool codec_check_fields(json_t *obj, const char *const allowed[], const char *ptr_prefix,
			ar_err *err) AR_MUSTCHECK;

/* True when s is valid UTF-8 of at most max_chars code points. */
bool codec_utf8_len_ok(const char *s, size_t max_chars);

/*
 * Canonical JSON for persistence, with the same field names as the request.
 * Times are written by ar_time_format; optional fields that were not given
 * are omitted. Both return a NEW reference (caller json_decref), or NULL when
 * memory runs out.
 */
json_t *codec_case_input_evidence_to_json(const ar_case_input *in); /* array of items */
json_t *codec_order_to_json(const ar_order *o);

/* Validates an array of evidence items exactly as case creation does and
 * returns them in canonical form (new reference), or NULL with field errors
 * under /evidence/<i>. */
json_t *codec_evidence_items(json_t *items, size_t max_items, ar_err *err);

/*
 * The compact text of any JSON value, as json_dumps(j, JSON_COMPACT |
 * JSON_ENCODE_ANY) writes it: members in insertion order, no spaces, non-ASCII
 * as UTF-8, reals with 17 significant digits. Returns a NEW string (caller
 * free()s), or NULL when j is NULL, memory runs out, or nesting exceeds
 * CODEC_DUMP_MAX_DEPTH. Every write of a request's JSON to the database goes
 * through it: jansson's dump spent a third of a create's instructions.
 */
#define CODEC_DUMP_MAX_DEPTH 128
char *codec_dumps(const json_t *j);

#endif
