/* What policy decisions read and record: versions, risk history, SKU flags. */
#include "arbiter/store_policy.h"

#include "arbiter/errmsg.h"

#include <stdlib.h>
#include <string.h>

/* Every count stops where the policy's decision is made ($6, $7:
 * policy_risk_caps), so none grows with how many cases share a buyer or a
 * text. A shop has at most 31 text_shop_days rows in the window, so 31 * $7
 * rows hold $7 distinct shops whenever $7 exist (sql/018); the window is
 * whole UTC days, up to one more than 30. */
static db_stmt st_buyer_history = { .name = "buyer_history", .sql =
	"SELECT (SELECT count(*) FROM (SELECT 1 FROM cases WHERE buyer_id = $1"
	"          AND created_at > now() - interval '7 days' LIMIT $6::int) b),"
	"       (SELECT least(count(DISTINCT t.shop_id), $7::int) FROM (SELECT shop_id"
	"          FROM text_shop_days"
	"         WHERE description_hash = md5(lower(regexp_replace($3, '\\s+', ' ', 'g')))"
	"           AND day >= ((now() - interval '30 days') AT TIME ZONE 'UTC')::date"
	"           AND shop_id <> $2 LIMIT 31 * $7::int) t),"
	"       (SELECT count(*) FROM (SELECT 1 FROM cases WHERE order_id = $4"
	"          AND kind = 'complaint' LIMIT 1) o),"
	"       EXISTS (SELECT 1 FROM sku_flags WHERE shop_id = $2 AND sku = $5"
	"               AND cleared_at IS NULL)" };
DB_REGISTER(st_buyer_history)

bool store_buyer_history(store *s, const ar_case_input *in, int cases_cap, int shops_cap,
			 store_history *out, ar_err *err)
{
	char ccap[16], scap[16];
	const char *vals[7] = { in->order.buyer_id, in->order.shop_id, in->description,
				in->order.id, in->order.sku, ccap, scap };
	PGresult *r;

	memset(out, 0, sizeof(*out));
	snprintf(ccap, sizeof(ccap), "%d", cases_cap);
	snprintf(scap, sizeof(scap), "%d", shops_cap);
	r = db_query(s, &st_buyer_history, 7, vals, err);
	if (!r)
		return false;
	out->cases_7d = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->same_text_shops_30d = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->complaints_same_order = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	out->sku_flagged = PQgetvalue(r, 0, 3)[0] == 't';
	PQclear(r);
	return true;
}

bool store_policy_record(store *s, const char *version, const char *canonical_text,
			 bool activate, bool *is_new, ar_err *err)
{
	const char *vals[3] = { version, canonical_text, activate ? "t" : "f" };
	PGresult *r;
	bool ok = false;

	*is_new = false;
	/* A version seen for the first time is activated too: a new policy
	 * file rolled out is meant to run. */
	r = db_query_sql(s, "policy_record",
		"WITH ins AS (INSERT INTO policies (version, sha256, document, activated_at)"
		"   VALUES ($1, sha256(convert_to($2, 'UTF8')), $2::jsonb, clock_timestamp())"
		"   ON CONFLICT (version) DO NOTHING RETURNING 1),"
		" same AS (SELECT 1 FROM policies WHERE version = $1"
		"           AND sha256 = sha256(convert_to($2, 'UTF8'))),"
		" act AS (UPDATE policies SET activated_at = clock_timestamp()"
		"          WHERE version = $1 AND $3::boolean AND EXISTS (SELECT 1 FROM same)"
		"            AND NOT EXISTS (SELECT 1 FROM ins) RETURNING 1)"
		" SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM same)",
		3, vals, err);
	if (!r)
		return false;
	*is_new = PQgetvalue(r, 0, 0)[0] == 't';
	if (!*is_new && PQgetvalue(r, 0, 1)[0] != 't')
		ar_err_setk(err, 409, "policy-version-taken", "detail.policy_version_taken", "version",
			    version, NULL);
	else
		ok = true;
	PQclear(r);
	return ok;
}

bool store_policy_active(store *s, char *version, size_t version_len, char **text, ar_err *err)
{
	PGresult *r = db_query_sql(s, "policy_active",
		"SELECT version, document::text FROM policies WHERE activated_at IS NOT NULL"
		" ORDER BY activated_at DESC LIMIT 1", 0, NULL, err);

	*text = NULL;
	if (!r)
		return false;
	if (PQntuples(r) == 0) {
		ar_err_setk(err, 404, "not-found", "detail.no_policy", NULL);
	} else {
		snprintf(version, version_len, "%s", PQgetvalue(r, 0, 0));
		*text = strdup(PQgetvalue(r, 0, 1));
		if (!*text)
			db_err_oom(err);
	}
	PQclear(r);
	return *text != NULL;
}

bool store_sku_clear(store *s, const char *shop_id, const char *sku, const char *by,
		     ar_err *err)
{
	const char *vals[3] = { shop_id, sku, by };
	PGresult *r = db_query_sql(s, "sku_clear",
		"UPDATE sku_flags SET cleared_at = now(), cleared_by = $3"
		" WHERE shop_id = $1 AND sku = $2 AND cleared_at IS NULL", 3, vals, err);
	bool ok = r && strcmp(PQcmdTuples(r), "0") != 0;

	if (r && !ok)
		ar_err_setk(err, 404, "not-found", "detail.no_batch_flag", "sku", sku, "shop", shop_id,
			    NULL);
	PQclear(r);
	return ok;
}
