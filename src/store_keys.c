/* API keys: only each secret's SHA-256 is stored. */
#include "arbiter/store_keys.h"

#include "arbiter/errmsg.h"

#include <string.h>

static db_stmt st_key_get = { .name = "key_get", .sql =
	"SELECT encode(secret_hash, 'hex'), role, coalesce(array_to_json(shops)::text, ''), senior,"
	"       revoked_at IS NOT NULL FROM api_keys WHERE id = $1" };
DB_REGISTER(st_key_get)

static db_stmt st_key_touch = { .name = "key_touch", .sql =
	"UPDATE api_keys SET last_used_at = now() WHERE id = $1"
	"   AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')" };
DB_REGISTER(st_key_touch)

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool store_key_get(store *s, const char *id, store_key *out, ar_err *err)
{
	const char *vals[1] = { id };
	PGresult *r;
	int idx;
	bool ok = false;
	const char *hex;

	memset(out, 0, sizeof(*out));
	idx = db_acquire(s, err);
	if (idx < 0)
		return false;
	r = db_exec(s, idx, &st_key_get, 1, vals, err);
	if (!r)
		goto done;
	if (PQntuples(r) == 0) {
		ar_err_setk(err, 401, "unauthorized", "detail.key_unknown", NULL);
		goto done;
	}
	hex = PQgetvalue(r, 0, 0);
	if (strlen(hex) != 64) {
		db_err_internal(err);
		goto done;
	}
	for (int i = 0; i < 32; i++)
		out->secret_hash[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	snprintf(out->role, sizeof(out->role), "%s", PQgetvalue(r, 0, 1));
	snprintf(out->shops, sizeof(out->shops), "%s", PQgetvalue(r, 0, 2));
	out->senior = PQgetvalue(r, 0, 3)[0] == 't';
	out->revoked = PQgetvalue(r, 0, 4)[0] == 't';
	PQclear(r);
	r = db_exec(s, idx, &st_key_touch, 1, vals, err);
	ok = r != NULL;
done:
	PQclear(r);
	db_release(s, idx);
	return ok;
}

bool store_key_insert(store *s, const char *id, const unsigned char hash[32],
		      const char *role, const char *shops_literal, const char *name,
		      bool senior, ar_err *err)
{
	char hex[65];
	const char *vals[6] = { id, hex, role, shops_literal && *shops_literal ? shops_literal : NULL,
				name, senior ? "t" : "f" };
	PGresult *r;

	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	r = db_query_sql(s, "key_insert",
		"INSERT INTO api_keys (id, secret_hash, role, shops, name, senior)"
		" VALUES ($1, decode($2, 'hex'), $3, $4::text[], $5, $6)", 6, vals, err);
	bool ok = r != NULL;

	PQclear(r);
	return ok;
}

bool store_key_list(store *s, json_t **items, ar_err *err)
{
	PGresult *r = db_query_sql(s, "key_list",
		"SELECT coalesce(json_agg(json_build_object('id', id, 'role', role,"
		" 'shops', shops, 'name', name, 'senior', senior,"
		" 'created_at', arbiter_ts(created_at),"
		" 'last_used_at', arbiter_ts(last_used_at),"
		" 'revoked_at', arbiter_ts(revoked_at)) ORDER BY created_at, id), '[]'::json)"
		" FROM api_keys", 0, NULL, err);

	*items = r ? db_json_cell(r, 0, 0, err) : NULL;
	PQclear(r);
	return *items != NULL;
}

bool store_key_revoke(store *s, const char *id, ar_err *err)
{
	const char *vals[1] = { id };
	PGresult *r = db_query_sql(s, "key_revoke",
		"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
		1, vals, err);
	bool ok = r && strcmp(PQcmdTuples(r), "0") != 0;

	if (r && !ok)
		ar_err_setk(err, 404, "not-found", "detail.no_key", "id", id, NULL);
	PQclear(r);
	return ok;
}
