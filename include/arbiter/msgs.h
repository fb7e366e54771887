/*
 * The shipped message catalogues (i18n/en.json, i18n/zh-CN.json, compiled in) and the parts
 * of a reply that speak the reader's language: problem titles and details,
 * decision reasons, event summaries. Rule ids, codes and amounts in fen
 * never change with the language.
 */
#ifndef ARBITER_MSGS_H
#define ARBITER_MSGS_H

#include <jansson.h>

#include "arbiter/i18n.h"
#include "arbiter/model.h"

/* The catalogues, loaded on first use; NULL only if they do not load
 * (msgs_check at start-up refuses to serve then). */
const i18n_cat *msgs_catalogue(void);
/* Loads the catalogues and checks them complete (i18n_cat_check). */
bool msgs_check(ar_err *err) AR_MUSTCHECK;

/* A problem's title and detail in l: the catalogue's title by the problem
 * type; the detail from err's key and arguments (errmsg.h), or, for a
 * problem set without a key, the service's English diagnostic in English
 * and the type's general text in other languages. */
void msgs_problem(const ar_err *err, ar_lang l, const char **title, char *detail, size_t len);
/* A field error's message in l: by its key when it has one, else as set. */
void msgs_field(const ar_field_error *f, ar_lang l, char *out, size_t len);
/*
 * A decision rule's (rules[] entry's) reason in l from the catalogue,
 * total_cents being the decision's refund. An entry with args says its
 * numbers by rule.<id>.<result> (rule.<id>.<result>.<when> for the branch
 * args.when names); args ending in _cents show as money, in _ms as a span.
 * An entry without args (decided before they were recorded), or whose args
 * do not fill that text, says rule.<id>; an unknown rule rule._other.
 * false when no text fits in len.
 */
bool msgs_rule_reason(const json_t *rule, ar_lang l, int64_t total_cents, char *out,
		      size_t len) AR_MUSTCHECK;
/* Rewrites each decision.rules[].reason in l (English: left as the
 * engine wrote it). false on out of memory. */
bool msgs_decision(json_t *decision, ar_lang l) AR_MUSTCHECK;
/* Adds "summary" in l to each event of items. false on out of memory. */
bool msgs_events(json_t *items, ar_lang l) AR_MUSTCHECK;

#endif
