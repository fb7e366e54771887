/* What the policy decides on and records: versions, risk history, SKU flags. */
#ifndef ARBITER_STORE_POLICY_H
#define ARBITER_STORE_POLICY_H

#include "arbiter/db.h"

/* What the buyer did lately, for the risk signals: cases opened in the last
 * 7 days, and other shops that got the same (normalised) description in 30. */
typedef struct {
	int64_t cases_7d;
	int64_t same_text_shops_30d;
	int64_t complaints_same_order;
	bool sku_flagged;
} store_history;

/* The counts stop at the caps (policy_risk_caps): a count at its cap means
 * "at least". */
bool store_buyer_history(store *s, const ar_case_input *in, int cases_cap, int shops_cap,
			 store_history *out, ar_err *err) AR_MUSTCHECK;

/* Clears the active flag of (shop, sku); 404 when there is none. */
bool store_sku_clear(store *s, const char *shop_id, const char *sku, const char *by,
		     ar_err *err) AR_MUSTCHECK;

/* Records a policy version with the SHA-256 of its canonical text. A version
 * already recorded with other content is refused (409): versions name one
 * document forever, so old decisions stay explainable. */
bool store_policy_record(store *s, const char *version, const char *canonical_text,
			 bool activate, bool *is_new, ar_err *err) AR_MUSTCHECK;
/* The active policy: its version, and its document (malloc'd into *text,
 * caller frees). 404 when none was ever activated. */
bool store_policy_active(store *s, char *version, size_t version_len, char **text,
			 ar_err *err) AR_MUSTCHECK;
#endif
