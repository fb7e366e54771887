/*
 * A shop's view of what the policy decided (issue 27, item 4). Two rules
 * read other shops' cases: the buyer's cases everywhere (R-RISK-MANY-CASES)
 * and the same text sent to other shops (R-RISK-SAME-TEXT). They decide a
 * case like every other rule, but a key bound to shops is never told their
 * counts: each keeps its id and result, its reason says only whether the
 * case needs review, and their risk signals are dropped. Outcome, money and
 * every other rule are left as they are. This is a view: the stored
 * decision and the audit chain hold what was decided.
 *
 * Pure (jansson only); every function fills err (503 out of memory, 500 a
 * document that is not JSON) and returns false on failure.
 */
#ifndef ARBITER_REDACT_H
#define ARBITER_REDACT_H

#include <stddef.h>

#include <jansson.h>

#include "arbiter/model.h"

/* A decision object ("rules", "risk"), changed in place. */
bool redact_decision(json_t *decision, ar_err *err) AR_MUSTCHECK;
/* A case document: its "decision", when it has one. */
bool redact_case(json_t *c, ar_err *err) AR_MUSTCHECK;
/* An audit event: the decision in its "data" (the open event's), if any;
 * its "hash" and "prev_hash" become null (digests of the unredacted data). */
bool redact_event(json_t *e, ar_err *err) AR_MUSTCHECK;
/* A policy document: of its per-shop overrides ("shops") only those of the
 * n shops named remain; other shops' names and rules are not the key's to
 * read. */
bool redact_policy(json_t *doc, const char (*shops)[AR_MAX_ID_LEN + 1], size_t n,
		   ar_err *err) AR_MUSTCHECK;
/* A case document as text, replaced by its redacted text: *json (malloc'd)
 * is freed and set to the new text, *len to its length. Unchanged on
 * failure. */
bool redact_case_text(char **json, size_t *len, ar_err *err) AR_MUSTCHECK;

#endif
