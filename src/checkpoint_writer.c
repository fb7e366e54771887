/* The checkpoint writer thread: changed chain heads -> signed checkpoint -> log file and database. */
#include "arbiter/checkpoint_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arbiter/app.h"
#include "arbiter/db.h"
#include "arbiter/log.h"
#include "arbiter/textbuf.h"

/* migrations hold 714628100; this one only ever by the checkpoint writer */
#define WRITER_LOCK "714628101"
/* events per checkpoint at most: a backlog (a first start on an old
 * database) is worked off over several intervals, each one bounded */
#define MAX_EVENTS "100000"

struct ckpt_writer {
	char *conninfo;
	ckpt_key *key;
	int fd;
	unsigned interval_s;
	PGconn *conn;
	bool locked;           /* this replica holds the writer lock */
	bool warned;           /* the last failure was logged */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

static bool copy_env(const char *name, char *dst, size_t cap, char *msg, size_t msglen)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return true;
	if (strlen(v) >= cap) {
		snprintf(msg, msglen, "%s: longer than %zu bytes", name, cap - 1);
		return false;
	}
	snprintf(dst, cap, "%s", v);
	return true;
}

bool ckpt_config_load(ckpt_config *cfg, char *msg, size_t msglen)
{
	const char *v = getenv("ARBITER_CHECKPOINT_INTERVAL"), *creds = getenv("CREDENTIALS_DIRECTORY");
	char *end;
	long n;

	memset(cfg, 0, sizeof(*cfg));
	cfg->interval_s = 10;
	if (!copy_env("ARBITER_CHECKPOINT_KEY_FILE", cfg->key_file, sizeof(cfg->key_file), msg, msglen) ||
	    !copy_env("ARBITER_CHECKPOINT_LOG", cfg->log_path, sizeof(cfg->log_path), msg, msglen))
		return false;
	if (!cfg->key_file[0] && creds && *creds) {
		char path[1024];
		int len = snprintf(path, sizeof(path), "%s/arbiter-checkpoint-key", creds);
		if (len > 0 && (size_t)len < sizeof(path) && access(path, R_OK) == 0)
			snprintf(cfg->key_file, sizeof(cfg->key_file), "%s", path);
	}
	if (v && *v) {
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 1 || n > 86400) {
			snprintf(msg, msglen, "ARBITER_CHECKPOINT_INTERVAL: expected an integer in"
				 " [1, 86400] (seconds), got '%s'", v);
			return false;
		}
		cfg->interval_s = (unsigned)n;
	}
	if (cfg->key_file[0] && !cfg->log_path[0]) {
		snprintf(msg, msglen, "ARBITER_CHECKPOINT_LOG: must name the checkpoint log file"
			 " when a checkpoint key is given");
		return false;
	}
	if (!cfg->key_file[0] && cfg->log_path[0]) {
		snprintf(msg, msglen, "ARBITER_CHECKPOINT_KEY_FILE: must name the signing key"
			 " when ARBITER_CHECKPOINT_LOG is set (arbiter checkpoint-key --out FILE makes one)");
		return false;
	}
	return true;
}

/* One failure per outage in the log, not one per interval. */
static void warn_once(ckpt_writer *w, const char *what, const char *detail)
{
	if (w->warned)
		return;
	w->warned = true;
	log_kv(LOG_WARN, what, "error", detail, NULL);
}

static void drop_conn(ckpt_writer *w)
{
	PQfinish(w->conn);
	w->conn = NULL;
	if (w->locked)
		log_kv(LOG_INFO, "checkpoint writer lock released", NULL);
	w->locked = false;
}

static PGresult *q(ckpt_writer *w, const char *sql, int n, const char *const *vals,
		   ExecStatusType want)
{
	PGresult *r = PQexecParams(w->conn, sql, n, NULL, vals, NULL, NULL, 0);

	if (PQresultStatus(r) == want)
		return r;
	warn_once(w, "checkpoint not written", PQresultErrorMessage(r));
	PQclear(r);
	if (PQstatus(w->conn) != CONNECTION_OK)
		drop_conn(w);
	return NULL;
}

/* The connection and the writer lock; false while another replica writes. */
static bool hold_lock(ckpt_writer *w, bool reconnect)
{
	PGresult *r;
	bool got;

	if (!w->conn) {
		if (!reconnect)
			return false;
		w->conn = db_connect(w->conninfo);
		if (PQstatus(w->conn) != CONNECTION_OK) {
			warn_once(w, "checkpoint writer cannot connect", PQerrorMessage(w->conn));
			drop_conn(w);
			return false;
		}
	}
	if (w->locked)
		return true;
	r = q(w, "SELECT pg_try_advisory_lock(" WRITER_LOCK ")", 0, NULL, PGRES_TUPLES_OK);
	if (!r)
		return false;
	got = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (got) {
		w->locked = true;
		log_kv(LOG_INFO, "this replica writes the checkpoints", "key_id",
		       ckpt_key_id(w->key), NULL);
	}
	return got;
}

/* Appends one element to a PostgreSQL array literal begun with '{'. */
static void array_add(textbuf *b, const char *s)
{
	if (b->len > 1)
		tb_byte(b, ',');
	tb_byte(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			tb_byte(b, '\\');
		tb_byte(b, *s);
	}
	tb_byte(b, '"');
}

/* Appends line and a newline, durably; on failure the file is cut back. */
static bool append_line(ckpt_writer *w, const char *line, off_t *at)
{
	size_t n = strlen(line), done = 0;
	char *buf = malloc(n + 1);
	bool ok = false;

	*at = lseek(w->fd, 0, SEEK_END);
	if (!buf || *at < 0)
		goto fail;
	memcpy(buf, line, n);
	buf[n] = '\n';
	while (done < n + 1) {
		ssize_t k = write(w->fd, buf + done, n + 1 - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto fail;
		done += (size_t)k;
	}
	ok = fsync(w->fd) == 0;
fail:
	if (!ok) {
		warn_once(w, "checkpoint log not written", strerror(errno));
		if (*at >= 0 && ftruncate(w->fd, *at) != 0)
			log_kv(LOG_ERROR, "checkpoint log: cannot cut back a partial line",
			       "error", strerror(errno), NULL);
	}
	free(buf);
	return ok;
}

/*
 * One checkpoint, if any chain changed since the last. The changed chains
 * come from the event feed's commit order ((xid, id) after the last
 * checkpoint's position, below the oldest running transaction), so the
 * cost follows the events since the last checkpoint, not the cases.
 */
static void cycle(ckpt_writer *w, bool reconnect)
{
	static const char heads_sql[] =
		"WITH ev AS ("
		"  SELECT e.xid, e.id, e.case_id, e.seq FROM case_events e"
		"   WHERE (e.xid, e.id) > ($1::xid8, $2::bigint)"
		"     AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
		"   ORDER BY e.xid, e.id LIMIT " MAX_EVENTS "),"
		" last AS (SELECT xid, id FROM ev ORDER BY xid DESC, id DESC LIMIT 1),"
		" heads AS (SELECT case_id, max(seq) AS seq FROM ev GROUP BY case_id)"
		" SELECT h.case_id, h.seq, encode(e.hash, 'hex'), last.xid::text, last.id"
		"   FROM heads h JOIN case_events e USING (case_id, seq) CROSS JOIN last"
		"  ORDER BY h.case_id COLLATE \"C\"";
	PGresult *r = NULL;
	textbuf ids = { 0 }, seqs = { 0 }, digests = { 0 };
	uint8_t (*leaves)[SHA256_LEN] = NULL, own[SHA256_LEN];
	char prev_xid[32] = "0", prev_id[32] = "0", no_s[24], hash_hex[2 * SHA256_LEN + 1];
	char *line = NULL;
	ckpt c;
	off_t at = -1;
	bool in_tx = false, appended = false;
	int n;

	if (!hold_lock(w, reconnect))
		return;
	memset(&c, 0, sizeof(c));
	if (!(r = q(w, "BEGIN", 0, NULL, PGRES_COMMAND_OK)))
		goto fail;
	in_tx = true;
	PQclear(r);
	r = q(w, "SELECT no, encode(hash, 'hex'), feed_xid::text, feed_id FROM checkpoints"
	      " ORDER BY no DESC LIMIT 1", 0, NULL, PGRES_TUPLES_OK);
	if (!r)
		goto fail;
	if (PQntuples(r) == 1) {
		c.no = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		if (!ckpt_unhex(PQgetvalue(r, 0, 1), c.prev, SHA256_LEN)) {
			warn_once(w, "checkpoint not written", "the last checkpoint's hash is not a digest");
			goto fail;
		}
		snprintf(prev_xid, sizeof(prev_xid), "%s", PQgetvalue(r, 0, 2));
		snprintf(prev_id, sizeof(prev_id), "%s", PQgetvalue(r, 0, 3));
	}
	c.no++;
	PQclear(r);
	{
		const char *vals[2] = { prev_xid, prev_id };
		r = q(w, heads_sql, 2, vals, PGRES_TUPLES_OK);
	}
	if (!r)
		goto fail;
	n = PQntuples(r);
	if (n == 0)
		goto fail;   /* nothing changed: no checkpoint, not an error */
	leaves = malloc((size_t)n * sizeof(*leaves));
	if (!leaves)
		goto fail;
	tb_byte(&ids, '{');
	tb_byte(&seqs, '{');
	tb_byte(&digests, '{');
	for (int i = 0; i < n; i++) {
		uint8_t d[SHA256_LEN];
		if (!ckpt_unhex(PQgetvalue(r, i, 2), d, SHA256_LEN) ||
		    !ckpt_head_leaf(PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10), d,
				    leaves[i])) {
			warn_once(w, "checkpoint not written", "an event's case id or digest cannot be a leaf");
			goto fail;
		}
		array_add(&ids, PQgetvalue(r, i, 0));
		array_add(&seqs, PQgetvalue(r, i, 1));
		array_add(&digests, PQgetvalue(r, i, 2));
	}
	tb_byte(&ids, '}');
	tb_byte(&seqs, '}');
	tb_byte(&digests, '}');
	if (ids.oom || seqs.oom || digests.oom)
		goto fail;
	ckpt_merkle_root((const uint8_t (*)[SHA256_LEN])leaves, (size_t)n, c.root);
	c.leaves = (uint64_t)n;
	ar_time_format(app_now(), c.at, sizeof(c.at));
	if (!ckpt_key_sign_checkpoint(w->key, &c) || !ckpt_hash(&c, own) ||
	    !(line = ckpt_encode(&c)))
		goto fail;
	ckpt_hex(own, SHA256_LEN, hash_hex);
	snprintf(no_s, sizeof(no_s), "%" PRIu64, c.no);
	{
		const char *vals[5] = { no_s, hash_hex, line, PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4) };
		PGresult *ins = q(w, "INSERT INTO checkpoints (no, hash, line, feed_xid, feed_id)"
				  " VALUES ($1::bigint, decode($2, 'hex'), $3, $4::xid8, $5::bigint)",
				  5, vals, PGRES_COMMAND_OK);
		if (!ins)
			goto fail;
		PQclear(ins);
	}
	{
		const char *vals[4] = { no_s, ids.p, seqs.p, digests.p };
		PGresult *ins = q(w, "INSERT INTO checkpoint_leaves (no, idx, case_id, seq, digest)"
				  " SELECT $1::bigint, (u.o - 1)::int, u.c, u.s, decode(u.d, 'hex')"
				  "   FROM unnest($2::text[], $3::int[], $4::text[])"
				  "        WITH ORDINALITY AS u(c, s, d, o)", 4, vals, PGRES_COMMAND_OK);
		if (!ins)
			goto fail;
		PQclear(ins);
	}
	/* the file first: a checkpoint the database has but the log lacks
	 * would chain the next one to a line no outside copy holds */
	if (!append_line(w, line, &at))
		goto fail;
	appended = true;
	PQclear(r);
	r = q(w, "COMMIT", 0, NULL, PGRES_COMMAND_OK);
	in_tx = false;
	if (!r)
		goto fail;
	w->warned = false;
	log_kv(LOG_DEBUG, "checkpoint written", "no", no_s, NULL);
	appended = false;
fail:
	if (appended && at >= 0 && ftruncate(w->fd, at) != 0)
		log_kv(LOG_ERROR, "checkpoint log: cannot take back a line the database refused",
		       "error", strerror(errno), NULL);
	if (in_tx && w->conn)
		PQclear(PQexec(w->conn, "ROLLBACK"));
	PQclear(r);
	free(line);
	free(leaves);
	free(ids.p);
	free(seqs.p);
	free(digests.p);
}

static void *run(void *arg)
{
	ckpt_writer *w = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		next.tv_sec += w->interval_s;
		while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &next) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&w->mu);
		/* the last one on the way out, if the database is there: it
		 * shortens the unanchored tail to the final interval's events */
		cycle(w, !w->stop);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void writer_free(ckpt_writer *w)
{
	drop_conn(w);
	if (w->fd >= 0)
		close(w->fd);
	ckpt_key_free(w->key);
	free(w->conninfo);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

ckpt_writer *ckpt_writer_start(const char *conninfo, const ckpt_config *cfg, char *msg,
			       size_t msglen)
{
	ckpt_writer *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;

	if (!w) {
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	w->fd = -1;
	w->interval_s = cfg->interval_s;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	w->conninfo = strdup(conninfo);
	if (!w->conninfo) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	w->key = ckpt_key_load(cfg->key_file, true, msg, msglen);
	if (!w->key)
		goto fail;
	w->fd = open(cfg->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (w->fd < 0) {
		snprintf(msg, msglen, "ARBITER_CHECKPOINT_LOG %.900s: %s", cfg->log_path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		snprintf(msg, msglen, "cannot start the checkpoint writer thread");
		goto fail;
	}
	w->started = true;
	return w;
fail:
	writer_free(w);
	return NULL;
}

void ckpt_writer_stop(ckpt_writer *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	writer_free(w);
}

const ckpt_key *ckpt_writer_key(const ckpt_writer *w)
{
	return w->key;
}
