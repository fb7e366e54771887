/*
 * Problems and field errors by catalogue key (i18n/en.json, zh-CN.json): the caller
 * names a key and the values of its {name} placeholders; the ar_err keeps
 * both (the HTTP edge says them in the reader's language) and the English
 * rendering in detail / message (for logs and the CLI). First error wins,
 * as with ar_err_set. Pure: reads only the compiled-in catalogues.
 *
 *   ar_err_fieldk(err, "/order/quantity", "field.int_range",
 *                 "min", AR_INT(1), "max", AR_INT(100), NULL);
 */
#ifndef ARBITER_ERRMSG_H
#define ARBITER_ERRMSG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "arbiter/i18n.h"
#include "arbiter/model.h"

/* Sets status, type, the title of problem.<type>.title and the detail of
 * key; the variadic part is name, value pairs ending in NULL (names are
 * string literals; values are copied, AR_MSG_VALUES bytes in all). */
void ar_err_setk(ar_err *e, int status, const char *type, const char *key, ...)
	__attribute__((sentinel));
void ar_err_vsetk(ar_err *e, int status, const char *type, const char *key, va_list ap);
/* A field error of key (pairs as above); sets 422 "validation" first if
 * no error was set yet. */
void ar_err_fieldk(ar_err *e, const char *pointer, const char *key, ...)
	__attribute__((sentinel));
void ar_err_vfieldk(ar_err *e, const char *pointer, const char *key, va_list ap);
/* Copies field error f to e under pointer prefix+f->pointer, key and
 * arguments included. */
void ar_err_field_copy(ar_err *e, const char *prefix, const ar_field_error *f);

/* inner's problem as e's (unless e has one already), and inner's field
 * errors under prefix: a document checked inside a request body. */
void ar_err_nest(ar_err *e, const char *prefix, const ar_err *inner);

/* v in decimal into buf (>= 24 bytes); returns buf. */
const char *ar_msg_int(char *buf, long long v);
#define AR_INT(n) ar_msg_int((char[24]){ 0 }, (long long)(n))
/* Fen as a reader sees it ("¥12.90") into buf (>= 32 bytes); returns buf. */
const char *ar_msg_money(char *buf, long long fen);
#define AR_MONEY(n) ar_msg_money((char[32]){ 0 }, (long long)(n))

/* m in language l into out. false (out untouched) when m has no key, the
 * key has no text in l, an argument is missing, or it does not fit. */
bool ar_msg_render(const ar_msg *m, ar_lang l, char *out, size_t len) AR_MUSTCHECK;

#endif
