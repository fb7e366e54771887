/* verify --checkpoints: signatures, links, roots and leaves of a checkpoint log copy. */
#include "arbiter/checkpoint_verify.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/checkpoint.h"
#include "arbiter/ckpt_key.h"
#include "arbiter/db.h"

#define MAX_KEYS 16

typedef struct {
	PGconn *conn;
	FILE *out;
	ckpt_key *keys[MAX_KEYS];
	size_t n_keys;
	uint64_t leaves;
} vctx;

static const ckpt_key *key_for(const vctx *v, const char *id)
{
	for (size_t i = 0; i < v->n_keys; i++)
		if (strcmp(ckpt_key_id(v->keys[i]), id) == 0)
			return v->keys[i];
	return NULL;
}

/* The leaves the database recorded for c against its root and the events. */
static int check_leaves(vctx *v, const ckpt *c)
{
	static const char sql[] =
		"SELECT l.case_id, l.seq, encode(l.digest, 'hex'), encode(e.hash, 'hex')"
		"  FROM checkpoint_leaves l"
		"  LEFT JOIN case_events e ON e.case_id = l.case_id AND e.seq = l.seq"
		" WHERE l.no = $1::bigint ORDER BY l.idx";
	char no_s[24];
	const char *vals[1] = { no_s };
	PGresult *r;
	uint8_t (*h)[SHA256_LEN] = NULL, root[SHA256_LEN];
	int rc = 2, n;

	snprintf(no_s, sizeof(no_s), "%" PRIu64, c->no);
	r = PQexecParams(v->conn, sql, 1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(v->out, "verify: %s", PQresultErrorMessage(r));
		goto fail;
	}
	n = PQntuples(r);
	rc = 1;
	if ((uint64_t)n != c->leaves) {
		fprintf(v->out, "verify: BROKEN checkpoint %" PRIu64 ": the database records %d of"
			" its %" PRIu64 " leaves\n", c->no, n, c->leaves);
		goto fail;
	}
	h = malloc((size_t)(n ? n : 1) * sizeof(*h));
	if (!h) {
		fprintf(v->out, "verify: out of memory\n");
		rc = 2;
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		const char *cid = PQgetvalue(r, i, 0), *seq = PQgetvalue(r, i, 1);
		uint8_t d[SHA256_LEN];
		if (PQgetisnull(r, i, 3)) {
			fprintf(v->out, "verify: BROKEN case %s event seq %s: checkpoint %" PRIu64
				" signed it, and it is gone\n", cid, seq, c->no);
			goto fail;
		}
		if (strcmp(PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)) != 0) {
			fprintf(v->out, "verify: BROKEN case %s event seq %s: its digest is not the"
				" one checkpoint %" PRIu64 " signed: its chain was rewritten\n",
				cid, seq, c->no);
			goto fail;
		}
		if (!ckpt_unhex(PQgetvalue(r, i, 2), d, SHA256_LEN) ||
		    !ckpt_head_leaf(cid, strtoll(seq, NULL, 10), d, h[i])) {
			fprintf(v->out, "verify: BROKEN checkpoint %" PRIu64 ": leaf %d (case %s) is"
				" malformed\n", c->no, i, cid);
			goto fail;
		}
	}
	ckpt_merkle_root((const uint8_t (*)[SHA256_LEN])h, (size_t)n, root);
	if (memcmp(root, c->root, SHA256_LEN) != 0) {
		/* every leaf matches its event, yet not the signed root: the
		 * leaves were edited along with the events they name */
		fprintf(v->out, "verify: BROKEN checkpoint %" PRIu64 ": the leaves the database"
			" records for it do not give its signed root: they and the events they name"
			" were rewritten\n", c->no);
		goto fail;
	}
	v->leaves += (uint64_t)n;
	rc = 0;
fail:
	free(h);
	PQclear(r);
	return rc;
}

/* What the database holds beyond the last checkpoint: not yet anchored. */
static void report_tail(vctx *v, uint64_t last_no, uint64_t first_no, uint64_t count)
{
	char no_s[24];
	const char *vals[1] = { no_s };
	PGresult *r;

	snprintf(no_s, sizeof(no_s), "%" PRIu64, last_no);
	r = PQexecParams(v->conn, "SELECT count(*) FROM case_events e, checkpoints c"
			 " WHERE c.no = $1::bigint AND (e.xid, e.id) > (c.feed_xid, c.feed_id)",
			 1, NULL, vals, NULL, NULL, 0);
	fprintf(v->out, "verify: ok: checkpoints %" PRIu64 " to %" PRIu64 " (%" PRIu64 "),"
		" %" PRIu64 " leaves: every signature, link, root and leaf holds", first_no,
		last_no, count, v->leaves);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		fprintf(v->out, "; %s events since checkpoint %" PRIu64 " are not anchored yet",
			PQgetvalue(r, 0, 0), last_no);
	fputc('\n', v->out);
	PQclear(r);
}

int checkpoint_verify(const char *conninfo, const char *file, const char *const *pub_paths,
		      size_t n_pubs, FILE *out)
{
	vctx v = { .out = out };
	FILE *f = NULL;
	char *line = NULL, msg[512];
	size_t cap = 0;
	ssize_t len;
	uint8_t prev_hash[SHA256_LEN] = { 0 };
	uint64_t prev_no = 0, first_no = 0, count = 0, lineno = 0;
	int rc = 2;

	for (size_t i = 0; i < n_pubs; i++) {
		if (v.n_keys == MAX_KEYS) {
			fprintf(out, "verify: at most %d public keys\n", MAX_KEYS);
			goto fail;
		}
		v.keys[v.n_keys] = ckpt_key_load(pub_paths[i], false, msg, sizeof(msg));
		if (!v.keys[v.n_keys]) {
			fprintf(out, "verify: --public-key %s\n", msg);
			goto fail;
		}
		v.n_keys++;
	}
	f = fopen(file, "r");
	if (!f) {
		fprintf(out, "verify: --checkpoints %s: %s\n", file, strerror(errno));
		goto fail;
	}
	v.conn = db_connect(conninfo);
	if (PQstatus(v.conn) != CONNECTION_OK) {
		fprintf(out, "verify: cannot connect: %s", PQerrorMessage(v.conn));
		goto fail;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		ckpt c;
		const ckpt_key *k;
		int lrc;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		rc = 1;
		if (!ckpt_decode(line, (size_t)len, &c, msg, sizeof(msg))) {
			fprintf(out, "verify: BROKEN checkpoint log line %" PRIu64 ": %s\n", lineno, msg);
			goto fail;
		}
		k = key_for(&v, c.key_id);
		if (!k) {
			fprintf(out, "verify: BROKEN checkpoint %" PRIu64 " (line %" PRIu64 "): signed"
				" by key %s, which no --public-key is\n", c.no, lineno, c.key_id);
			goto fail;
		}
		if (!ckpt_key_verify_checkpoint(k, &c)) {
			fprintf(out, "verify: BROKEN checkpoint %" PRIu64 " (line %" PRIu64 "): its"
				" signature does not verify with key %s\n", c.no, lineno, c.key_id);
			goto fail;
		}
		if (count == 0) {
			static const uint8_t zeros[SHA256_LEN] = { 0 };
			first_no = c.no;
			if (c.no == 1 && memcmp(c.prev, zeros, SHA256_LEN) != 0) {
				fprintf(out, "verify: BROKEN checkpoint 1 (line %" PRIu64 "): it names a"
					" previous checkpoint\n", lineno);
				goto fail;
			}
		} else if (c.no != prev_no + 1 || memcmp(c.prev, prev_hash, SHA256_LEN) != 0) {
			fprintf(out, "verify: BROKEN checkpoint %" PRIu64 " (line %" PRIu64 "): it does"
				" not follow checkpoint %" PRIu64 " (%s)\n", c.no, lineno, prev_no,
				c.no != prev_no + 1 ? "number" : "prev hash");
			goto fail;
		}
		lrc = check_leaves(&v, &c);
		if (lrc) {
			rc = lrc;
			goto fail;
		}
		if (!ckpt_hash(&c, prev_hash)) {
			rc = 2;
			goto fail;
		}
		prev_no = c.no;
		count++;
	}
	if (ferror(f)) {
		fprintf(out, "verify: --checkpoints %s: %s\n", file, strerror(errno));
		rc = 2;
		goto fail;
	}
	if (count == 0) {
		fprintf(out, "verify: --checkpoints %s holds no checkpoint: nothing anchors the"
			" history\n", file);
		rc = 2;
		goto fail;
	}
	report_tail(&v, prev_no, first_no, count);
	rc = 0;
fail:
	free(line);
	if (f)
		fclose(f);
	PQfinish(v.conn);
	for (size_t i = 0; i < v.n_keys; i++)
		ckpt_key_free(v.keys[i]);
	return rc;
}
