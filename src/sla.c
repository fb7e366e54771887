/* SLA scheduler: timer wheel over due deadlines, incremental refills, pipelined exactly-once firing. */
#include "arbiter/sla.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arbiter/appcal.h"
#include "arbiter/caseplan.h"
#include "arbiter/casefsm.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/store_deadlines.h"
#include "arbiter/store_idem.h"
#include "arbiter/store_stats.h"
#include "arbiter/timerwheel.h"

/*
 * Three kinds of thread share the work, so that firing never waits for a
 * refill or for another batch:
 *   - the scheduler thread (run) owns the wheel and the entries: it hands
 *     what is due to the workers, merges refills, and re-arms or drops
 *     what the workers finished;
 *   - FIRE_WORKERS workers each take up to FIRE_BATCH due expiries at a
 *     time (whatever is waiting: one at a quiet moment, a full batch in a
 *     burst) and fire them in one transaction on their own connection;
 *   - the refiller queries the database for what is new (below) while the
 *     others fire.
 *
 * What is new, and why a refill misses nothing. Refill k runs at the
 * database's now() n_k and reads three parts (store_due_refill):
 *   (a) expiries with due_at in [L_{k-1}, n_k + H): what time brought into
 *       the horizon H since refill k-1 (L_{k-1} = n_{k-1} + H, or the last
 *       due_at read when that part came back full);
 *   (b) the same for reminders (due_at - reminder_before);
 *   (c) short armings (due_at - armed_at < 5 min, a partial index that
 *       ordinary 5-day armings never enter) with armed_at >= W_{k-1} =
 *       n_{k-1} - TX_SLACK_MS: every deadline armed so close to its due
 *       time that it lands below L at once, by this process (sla_poke
 *       refills at once) or by another replica (the next poll).
 * A row version that refill k-1 could not see was written by a
 * transaction T that had not committed by then. Every statement of the
 * service that arms a deadline sets armed_at = now(), T's start. If T
 * started at most TX_SLACK_MS before refill k-1 and its row has due_at <
 * L_{k-1} <= n_{k-1} + H, then due_at - armed_at < H + TX_SLACK_MS (< 5
 * min) and armed_at >= W_{k-1}: part (c) of a later refill finds it,
 * however late T commits; otherwise its due_at >= L_{k-1} and part (a)
 * finds it once T has committed. That rests on two things the database
 * does not enforce: no arming transaction runs longer than TX_SLACK_MS,
 * and nothing but the service moves a deadline (an UPDATE of due_at by
 * hand, or a test or benchmark moving rows, leaves armed_at alone). So
 * incremental completeness is not proven, and a full reload of the
 * horizon every FULL_MS is the safety net: it finds such a row within
 * FULL_MS (and its expiry is enforced at due_at by the clock rule in any
 * case). A deadline that a batch skipped because another transaction held
 * its case is re-armed by the scheduler itself: a refill would not read
 * it again.
 */
#define LOAD_CAP 20000        /* rows per part of a refill */
/* Expiries per transaction at most. make bench's batched baseline (case_claim
 * + case_expire per batch, c=2, 1 M cases) on the shared 2-core machine:
 * 64 / 256 / 1024 per commit gave 6,016 / 5,344 / 4,992 expiries/s in one
 * run, 4,203 / 4,864 / 5,461, 3,552 / 4,608 / 5,973 and 2,976 / 4,053 /
 * 4,437 in three others. 1024 is worth up to a fifth more, but a batch
 * holds its cases' row locks until it commits (about 0.1 s at 256, 0.4 s
 * at 1024 here), and a seller's action on one of them waits that long;
 * 256 keeps most of the gain. Batches are only this large under a
 * backlog: a worker takes whatever is due. */
#define FIRE_BATCH 256
#define FIRE_WORKERS 2        /* such transactions at once */
/* Due expiries handed to the workers and not yet finished: a batch in
 * flight and one waiting per worker. */
#define OUT_CAP (2 * FIRE_WORKERS * FIRE_BATCH)
#define RETRY_MS 1000         /* after a batch that did not commit */
#define RETRY_HELD_MS 20      /* a case another transaction held */
#define FULL_MS 5000          /* the safety net: a full reload of the horizon */
#define TX_SLACK_MS 5000      /* the longest arming transaction part (c) allows for */
#define LIVE_CAP 200000       /* entries; past this a full page waits for firing */
#define HOUSEKEEP_MS 60000
#define GAUGES_MS 5000        /* deadline gauges and the pool */
#define CASE_COUNTS_MS 10000  /* arbiter_cases: one GROUP BY over cases, at most */
/* ...and at most 1/CASE_COUNTS_SHARE of a core: the count reads every case,
 * so on a large table it comes as often as its own duration allows */
#define CASE_COUNTS_SHARE 50

enum entry_kind { K_EXPIRY, K_REMINDER };
/* What the scheduler does with an entry a worker finished. */
enum { D_DONE, D_SOON, D_LATER };

typedef struct {
	char case_id[AR_MAX_ID_LEN + 1];
	fsm_deadline deadline;
	int armed_version;
	int64_t due_ms;
	tw_handle timer;
	uint8_t kind;
	bool used;
	bool queued;          /* handed to a worker, not finished */
	uint32_t next;        /* hash chain, or free list when !used */
} entry;

/* A due entry as a worker sees it: a copy, because the entry array may
 * move (grow) under the scheduler thread meanwhile. */
typedef struct {
	uint32_t e;
	char case_id[AR_MAX_ID_LEN + 1];
	fsm_deadline deadline;
	int armed_version;
	int64_t due_ms;
	uint8_t kind;
	uint8_t disp;
} item;

typedef struct {
	uint32_t e;
	uint8_t disp;
} done_item;

typedef struct worker worker;

struct sla {
	ar_app *app;
	pthread_t thread;
	pthread_t keeper;         /* gauges, policy follow, housekeeping */
	pthread_t refill_th;
	pthread_t work_th[FIRE_WORKERS];
	bool work_started[FIRE_WORKERS];
	bool thread_started, keeper_started, refill_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* the scheduler: work finished, a refill, stop */
	pthread_cond_t kcv;       /* the keeper */
	pthread_cond_t wcv;       /* the workers: something is due */
	pthread_cond_t rcv;       /* the refiller: poke, its buffer merged */
	bool stop, poke;
	atomic_bool running;
	/* under mu */
	item *ready;              /* ring of OUT_CAP */
	size_t ready_head, ready_n;
	done_item *done;          /* ring of OUT_CAP */
	size_t done_head, done_n;
	bool due_ready;           /* s->due holds a refill to merge */
	size_t due_n;
	int64_t due_before_ms, due_now_ms;
	size_t merged_added;
	/* the scheduler thread's own */
	tw_wheel *wheel;
	entry *e;
	uint32_t n_e, cap_e, free_head;
	uint32_t *buckets;        /* hash -> first entry + 1 (0 = empty) */
	uint32_t n_buckets;
	size_t outstanding;       /* entries queued */
	atomic_size_t live;       /* entries used */
	store_due *due;           /* refill buffer: 3 * LOAD_CAP */
	worker *workers;
};

static uint32_t hash_of(const char *case_id, fsm_deadline d, int version, uint8_t kind)
{
	uint32_t h = 2166136261u;
	for (; *case_id; case_id++)
		h = (h ^ (unsigned char)*case_id) * 16777619u;
	h = (h ^ (uint32_t)d) * 16777619u;
	h = (h ^ (uint32_t)version) * 16777619u;
	return (h ^ kind) * 16777619u;
}

static uint32_t *find_slot(sla *s, const char *case_id, fsm_deadline d, int version,
			   uint8_t kind)
{
	uint32_t *p = &s->buckets[hash_of(case_id, d, version, kind) % s->n_buckets];

	while (*p) {
		entry *e = &s->e[*p - 1];
		if (e->deadline == d && e->armed_version == version && e->kind == kind &&
		    strcmp(e->case_id, case_id) == 0)
			return p;
		p = &e->next;
	}
	return p;
}

/* Adds an entry; returns its index + 1, or 0 when memory ran out. *known
 * says it was there already (then nothing changed). */
static uint32_t entry_add(sla *s, const store_due *d, fsm_deadline dl, uint8_t kind, bool *known)
{
	uint32_t *slot = find_slot(s, d->case_id, dl, d->armed_version, kind), i;
	entry *e;

	*known = *slot != 0;
	if (*slot)
		return *slot;
	if (s->free_head) {
		i = s->free_head - 1;
		s->free_head = s->e[i].next;
	} else {
		if (s->n_e == s->cap_e) {
			uint32_t nc = s->cap_e ? s->cap_e * 2 : 1024;
			entry *ne = realloc(s->e, (size_t)nc * sizeof(*ne));
			if (!ne)
				return 0;
			s->e = ne;
			s->cap_e = nc;
			slot = find_slot(s, d->case_id, dl, d->armed_version, kind);
		}
		i = s->n_e++;
	}
	e = &s->e[i];
	memset(e, 0, sizeof(*e));
	snprintf(e->case_id, sizeof(e->case_id), "%s", d->case_id);
	e->deadline = dl;
	e->armed_version = d->armed_version;
	e->due_ms = d->due_ms;
	e->kind = kind;
	e->used = true;
	*slot = i + 1;
	atomic_fetch_add(&s->live, 1);
	return i + 1;
}

static void entry_del(sla *s, uint32_t i)
{
	entry *e = &s->e[i];
	uint32_t *slot = find_slot(s, e->case_id, e->deadline, e->armed_version, e->kind);

	if (*slot == i + 1)
		*slot = e->next;
	e->used = false;
	e->next = s->free_head;
	s->free_head = i + 1;
	atomic_fetch_sub(&s->live, 1);
}

static int64_t reminder_ms(ar_app *app)
{
	int64_t ms = 24LL * 3600 * 1000;

	pthread_rwlock_rdlock(&app->policy_lock);
	if (!policy_duration(app->policy, "reminder_before", NULL, &ms))
		ms = 24LL * 3600 * 1000;
	pthread_rwlock_unlock(&app->policy_lock);
	return ms;
}

static void arm(sla *s, uint32_t key1, int64_t at_ms)
{
	if (!tw_insert(s->wheel, at_ms < 0 ? 0 : (uint64_t)at_ms, key1 - 1, &s->e[key1 - 1].timer)) {
		log_kv(LOG_ERROR, "sla: timer wheel is full; deadline left to the next full reload", NULL);
		entry_del(s, key1 - 1);
	}
}

/* An entry loaded again with another due time (a deadline moved in the
 * database without a new arming): it is armed anew, unless a worker has it. */
static void rearm(sla *s, uint32_t key1, int64_t due_ms, int64_t at_ms)
{
	entry *e = &s->e[key1 - 1];

	if (e->queued || e->due_ms == due_ms)
		return;
	e->due_ms = due_ms;
	if (tw_cancel(s->wheel, e->timer))
		arm(s, key1, at_ms);
}

/*
 * Merges a refill into the wheel (the scheduler thread). Returns how many
 * entries were new: a full page of rows already loaded means nothing more
 * can be found until they fire, so the refiller must not ask again at once.
 */
static size_t merge(sla *s, const store_due *due, size_t n, int64_t before, int64_t db_now)
{
	size_t added = 0;

	if (log_enabled(LOG_DEBUG)) {
		char nb[24];
		snprintf(nb, sizeof(nb), "%zu", n);
		log_kv(LOG_DEBUG, "sla: refill", "rows", nb, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		const store_due *d = &due[i];
		fsm_deadline dl;
		uint32_t k;
		bool known;
		if (!fsm_deadline_parse(d->name, &dl))
			continue;
		if (d->part == STORE_DUE_EXPIRY ||
		    (d->part == STORE_DUE_ARMED && d->due_ms < db_now + SLA_HORIZON_MS)) {
			k = entry_add(s, d, dl, K_EXPIRY, &known);
			/* due_ms is floored to the ms; never fire before the
			 * database's own due_at (the claim checks it) */
			if (k && !known) {
				arm(s, k, d->due_ms + 1);
				added++;
			} else if (k) {
				rearm(s, k, d->due_ms, d->due_ms + 1);
			}
		}
		if (d->part == STORE_DUE_REMINDER ||
		    (d->part == STORE_DUE_ARMED && !d->reminded)) {
			int64_t at = d->due_ms - before, half = d->armed_ms + (d->due_ms - d->armed_ms) / 2;
			if (d->due_ms <= db_now)
				continue;
			k = entry_add(s, d, dl, K_REMINDER, &known);
			if (k && !known) {
				arm(s, k, at > half ? at : half);
				added++;
			}
		}
	}
	return added;
}

/*
 * The refiller thread: what is new since the last refill (the comment at
 * the top says why nothing is missed), a full reload of the horizon every
 * FULL_MS, and at once after a poke or a full page.
 */
static void *refiller(void *arg)
{
	sla *s = arg;
	int64_t next_poll = 0, next_full = 0, L = 0, Lr = 0, W = 0;
	bool have = false, more = false;

	for (;;) {
		store_due_query q;
		store_due_result res;
		ar_err err;
		int64_t now, slack_us = (int64_t)TX_SLACK_MS * 1000;
		bool full;
		size_t n;

		pthread_mutex_lock(&s->mu);
		for (;;) {
			struct timespec ts;
			int64_t wait;
			now = app_now();
			if (s->stop) {
				pthread_mutex_unlock(&s->mu);
				return NULL;
			}
			if (!s->due_ready && (s->poke || now >= next_poll ||
					      (more && s->merged_added > 0 &&
					       atomic_load(&s->live) < LIVE_CAP)))
				break;
			wait = next_poll > now ? next_poll - now : SLA_TICK_MS;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&s->rcv, &s->mu, &ts);
		}
		s->poke = false;
		pthread_mutex_unlock(&s->mu);

		full = !have || now >= next_full;
		memset(&q, 0, sizeof(q));
		q.horizon_ms = SLA_HORIZON_MS;
		q.before_ms = reminder_ms(s->app);
		q.cap = LOAD_CAP;
		if (!full) {
			q.exp_from_us = L;
			q.rem_from_us = Lr;
			q.armed_from_us = W;
			q.armed_cap = LOAD_CAP;
		}
		ar_err_init(&err);
		if (!store_due_refill(s->app->db, &q, s->due, &res, &err)) {
			log_kv(LOG_WARN, "sla: cannot load deadlines", "error", err.detail, NULL);
			next_poll = now + SLA_POLL_MS;
			more = false;
			continue;
		}
		/* A full part continues from its last row (rows of that instant
		 * come again and are known); otherwise the horizon is loaded. */
		L = res.n[0] == q.cap ? res.last_us[0] : res.now_us + (int64_t)SLA_HORIZON_MS * 1000;
		Lr = res.n[1] == q.cap ? res.last_us[1]
				       : res.now_us + (SLA_HORIZON_MS + q.before_ms) * 1000;
		if (!full && res.n[2] == q.armed_cap && res.last_us[2] < res.now_us - slack_us)
			W = res.last_us[2];
		else
			W = res.now_us - slack_us;
		more = res.n[0] == q.cap || res.n[1] == q.cap || (!full && res.n[2] == q.armed_cap);
		if (full) {
			have = true;
			next_full = now + FULL_MS;
		}
		next_poll = now + SLA_POLL_MS;
		n = res.n[0] + res.n[1] + res.n[2];
		pthread_mutex_lock(&s->mu);
		s->due_n = n;
		s->due_before_ms = q.before_ms;
		s->due_now_ms = res.now_us / 1000;
		s->due_ready = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Writes reminders in one transaction; a reminder whose deadline has
 * already come is dropped (the expiry says more). */
static void remind_batch(sla *s, item **its, size_t n)
{
	store_tx *tx = NULL;
	ar_err err;
	int64_t now = app_now();
	bool ok = true;

	ar_err_init(&err);
	if (!store_tx_begin(s->app->db, &tx, &err)) {
		ok = false;
	} else {
		for (size_t i = 0; i < n && ok; i++) {
			const item *e = its[i];
			char due[40];
			json_t *data;
			if (e->due_ms <= now)
				continue;
			ar_time_format(e->due_ms, due, sizeof(due));
			data = json_pack("{s:s,s:s}", "deadline", fsm_deadline_name(e->deadline),
					 "due_at", due);
			ok = data && store_tx_remind(tx, e->case_id, fsm_deadline_name(e->deadline),
						     e->armed_version, data, &err);
			json_decref(data);
		}
		ok = store_tx_end(tx, ok, &err) && ok;
	}
	if (!ok)
		log_kv(LOG_WARN, "sla: reminders not written", "error", err.detail, NULL);
	for (size_t i = 0; i < n; i++)
		its[i]->disp = D_DONE;
}

/* A worker and what one batch needs on its way through a transaction. */
struct worker {
	sla *s;
	item items[FIRE_BATCH];
	item *exp[FIRE_BATCH], *rem[FIRE_BATCH];
	caseplan_fired res[FIRE_BATCH];
	store_claimed got[FIRE_BATCH];
	store_change chs[FIRE_BATCH];
	json_t *owned[2 * FIRE_BATCH];
	bool applied[FIRE_BATCH];
	int change_of[FIRE_BATCH];
	bool planned[FIRE_BATCH];
};

/*
 * Fires a batch of expiries in one transaction of two statements: one
 * locks and reads every case (skipping those held elsewhere), the state
 * machine decides each, and one writes all their changes. Each change
 * commits only while its deadline row, armed at the same version, still
 * exists and is due, so a lost race writes nothing. Batches of the
 * workers run at once; a case one of them holds is skipped by the other
 * and comes round again (D_SOON).
 */
static void fire_exec(worker *w, size_t n)
{
	sla *s = w->s;
	const char *ids[FIRE_BATCH];
	store_tx *tx = NULL;
	size_t n_got = 0, n_ch = 0;
	int64_t now;
	ar_err err;
	bool ok;

	ar_err_init(&err);
	for (size_t i = 0; i < n; i++) {
		ids[i] = w->exp[i]->case_id;
		w->exp[i]->disp = D_LATER;
	}
	if (!store_tx_begin(s->app->db, &tx, &err))
		goto fail;
	ok = store_tx_claim(tx, ids, n, w->got, &n_got, &err);
	for (size_t k = 0; k < n_got; k++)
		w->planned[k] = false;
	for (size_t i = 0; i < n; i++) {
		const item *e = w->exp[i];
		size_t k = 0;
		ar_err perr;
		w->change_of[i] = -1;
		if (!ok)
			continue;
		while (k < n_got && strcmp(w->got[k].id, ids[i]) != 0)
			k++;
		/* held elsewhere, or a second deadline of a case this batch
		 * changes: it comes round again */
		if (k == n_got || w->planned[k]) {
			w->change_of[i] = -2;
			continue;
		}
		w->planned[k] = true;
		ar_err_init(&perr);
		if (caseplan_expiry(s->app, &w->got[k], e->deadline, e->armed_version, e->due_ms,
				    CASEPLAN_BY_SCHEDULER, &w->chs[n_ch], &w->res[i],
				    &w->owned[2 * n_ch], &w->owned[2 * n_ch + 1], &perr)) {
			w->change_of[i] = (int)n_ch++;
		} else {
			if (ar_err_is_set(&perr))
				log_kv(LOG_WARN, "sla: expiry not planned", "case", e->case_id,
				       "error", perr.detail, NULL);
			json_decref(w->owned[2 * n_ch]);
			json_decref(w->owned[2 * n_ch + 1]);
		}
	}
	ok = ok && store_tx_apply_many(tx, w->chs, n_ch, w->applied, &err);
	if (log_enabled(LOG_DEBUG)) {
		char nb[48];
		snprintf(nb, sizeof(nb), "%zu/%zu/%zu", n, n_got, n_ch);
		log_kv(LOG_DEBUG, "sla: batch", "due/claimed/changed", nb, NULL);
	}
	ok = store_tx_end(tx, ok, &err) && ok;
	for (size_t k = 0; k < 2 * n_ch; k++)
		json_decref(w->owned[k]);
	store_claimed_clear(w->got, n_got);
	if (!ok)
		goto fail;
	now = app_now();
	for (size_t i = 0; i < n; i++) {
		const item *e = w->exp[i];
		const caseplan_fired *r = &w->res[i];
		int c = w->change_of[i];
		w->exp[i]->disp = c == -2 ? D_SOON : D_DONE;
		if (c >= 0 && w->applied[c]) {
			metrics_transition(r->action, FSM_ROLE_SYSTEM);
			metrics_sla_fired(e->deadline, (double)(now - e->due_ms) / 1000.0);
			if (r->breach)
				metrics_sla_breach(e->deadline);
			if (r->refund_cents >= 0)
				metrics_refund("seller_silent", r->currency, r->refund_cents, true);
		}
	}
	return;
fail:
	log_kv(LOG_WARN, "sla: batch not committed; retrying", "error", err.detail, NULL);
}

/* A worker: takes whatever is due (up to FIRE_BATCH), fires it, reports. */
static void *work(void *arg)
{
	worker *w = arg;
	sla *s = w->s;

	for (;;) {
		size_t n = 0, ne = 0, nr = 0;

		pthread_mutex_lock(&s->mu);
		while (!s->stop && s->ready_n == 0)
			pthread_cond_wait(&s->wcv, &s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		while (s->ready_n > 0 && n < FIRE_BATCH) {
			w->items[n++] = s->ready[s->ready_head];
			s->ready_head = (s->ready_head + 1) % OUT_CAP;
			s->ready_n--;
		}
		pthread_mutex_unlock(&s->mu);

		for (size_t i = 0; i < n; i++) {
			if (w->items[i].kind == K_REMINDER)
				w->rem[nr++] = &w->items[i];
			else
				w->exp[ne++] = &w->items[i];
		}
		/* expiries first: a reminder never delays a deadline */
		if (ne)
			fire_exec(w, ne);
		if (nr)
			remind_batch(s, w->rem, nr);

		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < n; i++) {
			s->done[(s->done_head + s->done_n) % OUT_CAP] =
				(done_item){ w->items[i].e, w->items[i].disp };
			s->done_n++;
		}
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Gauges come from here, not from a scrape: a scrape never waits on the
 * database. */
static void refresh_gauges(sla *s, bool with_cases)
{
	static int64_t counts[FSM_STATE__COUNT][AR_KIND__COUNT];
	store_pool_stats ps;
	int64_t pending;
	double overdue;
	ar_err err;

	ar_err_init(&err);
	if (store_deadline_stats(s->app->db, &pending, &overdue, &err)) {
		metrics_sla_pending(pending);
		metrics_sla_oldest_overdue(overdue);
	}
	if (with_cases && store_case_counts(s->app->db, counts, &err))
		metrics_set_cases(counts);
	store_pool_stats_get(s->app->db, &ps);
	metrics_db_pool(ps.size - ps.in_use - ps.broken, ps.in_use, ps.broken);
}

/* The writes append stats deltas (sql/026); the reads sum what is not
 * folded yet, so a pass folds them all, a batch at a time. */
static void fold_stats(sla *s)
{
	int64_t folded;
	ar_err err;

	for (int i = 0; i < 8; i++) {
		ar_err_init(&err);
		if (!store_stats_compact(s->app->db, &folded, &err) || folded == 0)
			return;
	}
}

/* The periodic work that is not firing: a slow GROUP BY over every case
 * or a housekeeping DELETE must never hold a deadline back. */
static void *keep(void *arg)
{
	sla *s = arg;
	int64_t last_house = app_now(), next_counts = 0;

	for (;;) {
		int64_t now = app_now();
		bool counts = now >= next_counts;
		struct timespec ts;

		refresh_gauges(s, counts);
		fold_stats(s);
		app_policy_follow(s->app);
		app_calendar_follow(s->app, CALENDAR_FOLLOW_MS);
		if (counts) {
			int64_t took = app_now() - now;
			next_counts = now + (CASE_COUNTS_SHARE * took > CASE_COUNTS_MS
					     ? CASE_COUNTS_SHARE * took : CASE_COUNTS_MS);
		}
		if (now - last_house >= HOUSEKEEP_MS) {
			store_housekeep(s->app->db);
			last_house = now;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += GAUGES_MS / 1000;
		pthread_mutex_lock(&s->mu);
		if (!s->stop)
			pthread_cond_timedwait(&s->kcv, &s->mu, &ts);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		pthread_mutex_unlock(&s->mu);
	}
}

static void *run(void *arg)
{
	sla *s = arg;
	tw_expired *buf = malloc(OUT_CAP * sizeof(*buf));
	item *push = malloc(OUT_CAP * sizeof(*push));
	done_item *fin = malloc(OUT_CAP * sizeof(*fin));

	if (!buf || !push || !fin) {
		log_kv(LOG_ERROR, "sla: out of memory; scheduler not running", NULL);
		goto out;
	}
	atomic_store(&s->running, true);
	for (;;) {
		int64_t now, wake;
		size_t n = 0, nf, np = 0, room;
		bool refilled, starved;
		uint64_t hint;
		struct timespec ts;

		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		nf = s->done_n;
		for (size_t i = 0; i < nf; i++)
			fin[i] = s->done[(s->done_head + i) % OUT_CAP];
		s->done_head = (s->done_head + nf) % OUT_CAP;
		s->done_n = 0;
		refilled = s->due_ready;
		pthread_mutex_unlock(&s->mu);

		now = app_now();
		for (size_t i = 0; i < nf; i++) {
			entry *e = &s->e[fin[i].e];
			e->queued = false;
			s->outstanding--;
			if (fin[i].disp == D_DONE)
				entry_del(s, fin[i].e);
			else
				arm(s, fin[i].e + 1, now + (fin[i].disp == D_SOON ? RETRY_HELD_MS : RETRY_MS));
		}
		if (refilled) {
			size_t added = merge(s, s->due, s->due_n, s->due_before_ms, s->due_now_ms);
			pthread_mutex_lock(&s->mu);
			s->due_ready = false;
			s->merged_added = added;
			pthread_cond_signal(&s->rcv);
			pthread_mutex_unlock(&s->mu);
		}

		room = OUT_CAP - s->outstanding;
		if (room > 0)
			n = tw_advance(s->wheel, (uint64_t)now, buf, room);
		for (size_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)buf[i].key;
			entry *e;
			if (k >= s->n_e || !s->e[k].used)
				continue;
			e = &s->e[k];
			e->queued = true;
			push[np] = (item){ .e = k, .deadline = e->deadline,
					   .armed_version = e->armed_version, .due_ms = e->due_ms,
					   .kind = e->kind, .disp = D_LATER };
			memcpy(push[np].case_id, e->case_id, sizeof(e->case_id));
			np++;
		}
		s->outstanding += np;
		if (np) {
			pthread_mutex_lock(&s->mu);
			for (size_t i = 0; i < np; i++)
				s->ready[(s->ready_head + s->ready_n + i) % OUT_CAP] = push[i];
			s->ready_n += np;
			pthread_cond_broadcast(&s->wcv);
			pthread_mutex_unlock(&s->mu);
		}
		app_policy_record(s->app);

		/* Sleeps until the next timer, work finished, a refill, a stop.
		 * With no room the wheel still holds due entries: finished work
		 * is what wakes it then. */
		starved = room == 0 || n == room;
		hint = tw_next_due_hint(s->wheel);
		wake = now + SLA_POLL_MS;
		if (!starved && hint != UINT64_MAX && (int64_t)hint < wake)
			wake = (int64_t)hint;
		if (wake <= now)
			wake = now + 1;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (wake - now) / 1000;
		ts.tv_nsec += ((wake - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&s->mu);
		if (!s->stop && s->done_n == 0 && !s->due_ready)
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		pthread_mutex_unlock(&s->mu);
	}
out:
	atomic_store(&s->running, false);
	free(buf);
	free(push);
	free(fin);
	return NULL;
}
/* Stops and joins every thread that was started, then frees everything:
 * the end of sla_stop, and of a sla_start that failed halfway. */
static void teardown(sla *s, bool synced)
{
	if (synced) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_cond_broadcast(&s->kcv);
		pthread_cond_broadcast(&s->wcv);
		pthread_cond_broadcast(&s->rcv);
		pthread_mutex_unlock(&s->mu);
		if (s->thread_started)
			pthread_join(s->thread, NULL);
		if (s->keeper_started)
			pthread_join(s->keeper, NULL);
		if (s->refill_started)
			pthread_join(s->refill_th, NULL);
		for (int i = 0; i < FIRE_WORKERS; i++) {
			if (s->work_started[i])
				pthread_join(s->work_th[i], NULL);
		}
		pthread_cond_destroy(&s->rcv);
		pthread_cond_destroy(&s->wcv);
		pthread_cond_destroy(&s->kcv);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
	}
	tw_free(s->wheel);
	free(s->e);
	free(s->workers);
	free(s->done);
	free(s->ready);
	free(s->due);
	free(s->buckets);
	free(s);
}

sla *sla_start(ar_app *app)
{
	sla *s = calloc(1, sizeof(*s));
	bool synced = false;

	if (!s)
		return NULL;
	s->app = app;
	s->n_buckets = 1u << 16;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	s->due = malloc(3 * LOAD_CAP * sizeof(*s->due));
	s->ready = malloc(OUT_CAP * sizeof(*s->ready));
	s->done = malloc(OUT_CAP * sizeof(*s->done));
	s->workers = calloc(FIRE_WORKERS, sizeof(*s->workers));
	s->wheel = tw_create(4096, SLA_TICK_MS, (uint64_t)app_now());
	if (!s->buckets || !s->due || !s->ready || !s->done || !s->workers || !s->wheel)
		goto fail;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	/* teardown destroys all four: one that failed to initialise is
	 * still zeroed (calloc), which glibc destroys harmlessly */
	synced = true;
	if ((pthread_cond_init(&s->cv, NULL) | pthread_cond_init(&s->kcv, NULL) |
	     pthread_cond_init(&s->wcv, NULL) | pthread_cond_init(&s->rcv, NULL)) != 0)
		goto fail;
	if (pthread_create(&s->keeper, NULL, keep, s) != 0)
		goto fail;
	s->keeper_started = true;
	/* A replica without the scheduler fires nothing (its requests still
	 * apply a due expiry before they are judged, the clock rule); the
	 * keeper thread still runs. */
	if (!app->cfg.scheduler) {
		atomic_store(&s->running, true);
		return s;
	}
	for (int i = 0; i < FIRE_WORKERS; i++) {
		s->workers[i].s = s;
		if (pthread_create(&s->work_th[i], NULL, work, &s->workers[i]) != 0)
			goto fail;
		s->work_started[i] = true;
	}
	if (pthread_create(&s->refill_th, NULL, refiller, s) != 0)
		goto fail;
	s->refill_started = true;
	if (pthread_create(&s->thread, NULL, run, s) != 0)
		goto fail;
	s->thread_started = true;
	return s;
fail:
	teardown(s, synced);
	return NULL;
}

void sla_stop(sla *s)
{
	if (s)
		teardown(s, true);
}

void sla_poke(sla *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->poke = true;
	pthread_cond_signal(&s->rcv);
	pthread_mutex_unlock(&s->mu);
}

bool sla_running(const sla *s)
{
	return s && atomic_load(&s->running);
}
