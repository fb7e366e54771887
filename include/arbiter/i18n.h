/*
 * Languages of the texts a reply carries (pure): Accept-Language
 * negotiation (RFC 9110 12.5.4, q-values), message catalogues (one flat
 * JSON object of key -> text per language, the same keys in each) and
 * their lookup with {name} placeholders, and money as a reader sees it.
 *
 * Ownership: a catalogue owns its texts; i18n_text's result lives as long
 * as the catalogue. Nothing here logs; errors go to the caller's ar_err.
 */
#ifndef ARBITER_I18N_H
#define ARBITER_I18N_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arbiter/model.h"

typedef enum {
	AR_LANG_EN,
	AR_LANG_ZH_CN,
	AR_LANG__COUNT
} ar_lang;

/* "en", "zh-CN": the Content-Language of a reply. */
const char *i18n_lang_tag(ar_lang l);
/* A language tag or range this service answers in: en and en-*; zh,
 * zh-CN, zh-SG, zh-Hans(-*). Traditional Chinese (zh-TW, zh-HK, zh-MO,
 * zh-Hant) is not zh-CN. Case-insensitive. */
bool i18n_lang_parse(const char *tag, ar_lang *out) AR_MUSTCHECK;
/* The language an Accept-Language value asks for: the highest q among
 * the ranges we speak ("*" stands for dflt), the earlier one on a tie;
 * dflt when the header is absent, malformed, or names nothing we speak. */
ar_lang i18n_negotiate(const char *accept_language, ar_lang dflt);

typedef struct i18n_cat i18n_cat;

/* texts[l] is language l's catalogue, a JSON object of strings. NULL (err
 * 500 "internal") when one is not such an object. */
i18n_cat *i18n_cat_load(const char *const texts[AR_LANG__COUNT], ar_err *err);
void i18n_cat_free(i18n_cat *c);
/* Completeness: every key in every language, the same placeholders in
 * each language's text of a key. false with one field error per fault
 * (pointer "/<lang>/<key>"). */
bool i18n_cat_check(const i18n_cat *c, ar_err *err) AR_MUSTCHECK;
/* Language l's text for key, NULL when there is none. */
const char *i18n_text(const i18n_cat *c, ar_lang l, const char *key);

typedef struct {
	const char *name;
	const char *value;
} i18n_arg;

/* Language l's text for key into out with each {name} replaced by its
 * argument. false when the key is missing, a placeholder has no
 * argument, or the text does not fit in len bytes. */
bool i18n_format(const i18n_cat *c, ar_lang l, const char *key, const i18n_arg *args,
		 size_t n_args, char *out, size_t len) AR_MUSTCHECK;

/* Integer fen as a reader sees it: 1290 -> "¥12.90", -5 -> "-¥0.05"
 * (len >= 32). */
void i18n_money(int64_t fen, char *out, size_t len);
/* Milliseconds as a reader sees a span, the way the policy's English
 * reasons write it: 7 days -> "7 days" / "7 天", 5 h -> "5 h" / "5 小时",
 * else "9 days 00:00:01" / "9 天 00:00:01" (len >= 48). */
void i18n_duration(int64_t ms, ar_lang l, char *out, size_t len);

#endif
