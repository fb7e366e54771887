/* SLA scheduler thread: timer wheel over due deadlines, exactly-once firing. */
#include "arbiter/sla.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arbiter/api.h"
#include "arbiter/casefsm.h"
#include "arbiter/log.h"
#include "arbiter/metrics.h"
#include "arbiter/timerwheel.h"

#define LOAD_CAP 20000       /* rows per refill query */
#define FIRE_BATCH 256       /* expiries per transaction */
#define FIRE_WORKERS 2       /* such transactions at once */
#define FIRE_ROUND (FIRE_BATCH * FIRE_WORKERS)
#define RETRY_MS 1000
#define HOUSEKEEP_MS 60000
#define GAUGES_MS 5000        /* deadline gauges and the pool */
#define CASE_COUNTS_MS 10000  /* arbiter_cases: one GROUP BY over cases, at most */
/* ...and at most 1/CASE_COUNTS_SHARE of a core: the count reads every case,
 * so on a large table it comes as often as its own duration allows */
#define CASE_COUNTS_SHARE 50

/* What one committed expiry did, for the metrics recorded after commit. */
typedef struct {
	bool applied, breach;
	fsm_action action;
	int64_t refund_cents;   /* -1: none */
	char currency[AR_CURRENCY_LEN + 1];
} fired;

enum entry_kind { K_EXPIRY, K_REMINDER };

typedef struct fire_job fire_job;

typedef struct {
	char case_id[AR_MAX_ID_LEN + 1];
	fsm_deadline deadline;
	int armed_version;
	int64_t due_ms;
	uint8_t kind;
	bool used;
	uint32_t next;        /* hash chain, or free list when !used */
} entry;

struct sla {
	ar_app *app;
	pthread_t thread;
	pthread_t keeper;         /* gauges, policy follow, housekeeping */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t kcv;
	bool stop, poke;
	atomic_bool running;
	tw_wheel *wheel;
	entry *e;
	uint32_t n_e, cap_e, free_head;
	uint32_t *buckets;        /* hash -> first entry + 1 (0 = empty) */
	uint32_t n_buckets;
	store_due *due;           /* refill buffer */
	fire_job *jobs;           /* FIRE_WORKERS batches in flight */
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

/* Adds an entry; returns its index + 1, or 0 when memory ran out. */
static uint32_t entry_add(sla *s, const store_due *d, fsm_deadline dl, uint8_t kind)
{
	uint32_t *slot = find_slot(s, d->case_id, dl, d->armed_version, kind), i;
	entry *e;

	if (*slot)
		return 0;
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
	if (!tw_insert(s->wheel, at_ms < 0 ? 0 : (uint64_t)at_ms, key1 - 1, NULL)) {
		log_kv(LOG_ERROR, "sla: timer wheel is full; deadline left to the next refill", NULL);
		entry_del(s, key1 - 1);
	}
}

/*
 * Loads expiries due within the horizon, and reminders whose deadline is
 * still ahead. *added says how many were new to the wheel: a full page of
 * rows already loaded means nothing more can be found until they fire, so
 * the caller must not ask again at once (it would spin).
 */
static bool refill(sla *s, size_t *added)
{
	ar_err err;
	size_t n = 0;
	int64_t before = reminder_ms(s->app), now = app_now();
	bool full;

	*added = 0;
	ar_err_init(&err);
	if (!store_due_deadlines(s->app->db, SLA_HORIZON_MS, false, 0, s->due, LOAD_CAP, &n, &err)) {
		log_kv(LOG_WARN, "sla: cannot load deadlines", "error", err.detail, NULL);
		return false;
	}
	full = n == LOAD_CAP;
	if (log_enabled(LOG_DEBUG)) {
		char nb[24];
		snprintf(nb, sizeof(nb), "%zu", n);
		log_kv(LOG_DEBUG, "sla: refill", "rows", nb, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		const store_due *d = &s->due[i];
		fsm_deadline dl;
		uint32_t k;
		if (!fsm_deadline_parse(d->name, &dl))
			continue;
		k = entry_add(s, d, dl, K_EXPIRY);
		/* due_ms is floored to the ms; never fire before the database's
		 * own due_at (the claim checks it) */
		if (k) {
			arm(s, k, d->due_ms + 1);
			(*added)++;
		}
	}
	n = 0;
	if (!store_due_deadlines(s->app->db, SLA_HORIZON_MS, true, before, s->due, LOAD_CAP, &n, &err)) {
		log_kv(LOG_WARN, "sla: cannot load reminders", "error", err.detail, NULL);
		return full;
	}
	for (size_t i = 0; i < n; i++) {
		const store_due *d = &s->due[i];
		int64_t at = d->due_ms - before, half = d->armed_ms + (d->due_ms - d->armed_ms) / 2;
		fsm_deadline dl;
		uint32_t k;
		if (!fsm_deadline_parse(d->name, &dl) || d->due_ms <= now)
			continue;
		k = entry_add(s, d, dl, K_REMINDER);
		if (k)
			arm(s, k, at > half ? at : half);
	}
	return full;
}

/* Writes a tick's reminders in one transaction; a reminder whose deadline
 * has already come is dropped (the expiry says more). */
static void remind_batch(sla *s, uint32_t *idx, size_t n)
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
			entry *e = &s->e[idx[i]];
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
		entry_del(s, idx[i]);
}

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* The change one expiry makes, decided from its case's facts. false: the
 * case is no longer where this deadline applies (or is unreadable), and
 * nothing is to be written. The events' data (*data, *refund) are new
 * references the caller frees after the write. */
static bool plan_expiry(sla *s, const entry *e, const store_claimed *c, store_change *ch,
			fired *out, json_t **data, json_t **refund)
{
	static const fsm_action expire_of[FSM_DEADLINE__COUNT] = {
		[FSM_DEADLINE_SELLER_RESPONSE] = FSM_ACTION_EXPIRE_SELLER_RESPONSE,
		[FSM_DEADLINE_BUYER_SHIP_BACK] = FSM_ACTION_EXPIRE_BUYER_SHIP_BACK,
		[FSM_DEADLINE_SELLER_RECEIPT] = FSM_ACTION_EXPIRE_SELLER_RECEIPT,
		[FSM_DEADLINE_BUYER_REPLY] = FSM_ACTION_EXPIRE_BUYER_REPLY,
		[FSM_DEADLINE_ARBITRATION] = FSM_ACTION_EXPIRE_ARBITRATION,
		[FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE] = FSM_ACTION_EXPIRE_COMPLAINT_FIRST_RESPONSE,
		[FSM_DEADLINE_COMPLAINT_CLOSE] = FSM_ACTION_EXPIRE_COMPLAINT_CLOSE,
	};
	fsm_case fc = { c->kind, c->state, c->manual_review, c->has_offer, c->agreement_pending };
	fsm_result res;
	ar_err err;
	json_t *rf = json_object_get(c->decision, "refund");
	const char *sev = json_string_value(json_object_get(c->decision, "severity"));
	const char *cur_s = json_string_value(json_object_get(rf, "currency"));
	char due[40];

	memset(out, 0, sizeof(*out));
	out->refund_cents = -1;
	*data = *refund = NULL;
	ar_err_init(&err);
	if (!fsm_apply(&fc, expire_of[e->deadline], FSM_ROLE_SYSTEM, &res, &err))
		return false;

	memset(ch, 0, sizeof(*ch));
	ch->case_id = c->id;
	ch->expected_version = c->version;
	ch->state = fsm_state_name(res.to);
	ch->outcome = res.outcome != FSM_OUTCOME_NONE ? fsm_outcome_name(res.outcome) : NULL;
	ch->offer = res.clears_offer ? STORE_CLEAR : STORE_KEEP;
	ch->agreement = STORE_KEEP;
	ch->refund_cents = -1;
	ch->consume_deadline = fsm_deadline_name(e->deadline);
	ch->consume_armed_version = e->armed_version;
	ch->actor_role = "system";
	ch->actor_id = "sla";
	if (res.state_changed) {
		ch->replace_deadlines = true;
		if (!api_deadlines(s->app, fc.kind, c->shop_id, sev && strcmp(sev, "major") == 0,
				   fc.manual_review, res.deadlines, ch->deadlines, &ch->n_deadlines, &err))
			return false;
	}
	ar_time_format(e->due_ms, due, sizeof(due));
	*data = json_pack("{s:s,s:s}", "deadline", fsm_deadline_name(e->deadline), "due_at", due);
	if (!*data)
		return false;
	if (res.breach)
		json_object_set_new(*data, "escalated_to", json_string(
			e->deadline == FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE ? "senior_agent" : "platform_lead"));
	ch->events[ch->n_events++] = (store_event){
		res.breach ? "sla.breached" : fsm_action_name(expire_of[e->deadline]),
		fsm_state_name(fc.state), ch->state, *data };
	if (res.refund == FSM_REFUND_DECIDED) {
		int64_t total = jint(rf, "total_cents", 0);
		ch->refund_cents = total;
		/* the decided amount with its split and what to restore (004) */
		*refund = policy_refund_instruction(rf, total, "seller_silent");
		if (!*refund)
			return false;
		ch->events[ch->n_events++] = (store_event){ "refund.instructed", ch->state, ch->state,
							   *refund };
	}
	out->breach = res.breach;
	out->action = expire_of[e->deadline];
	out->refund_cents = ch->refund_cents;
	snprintf(out->currency, sizeof(out->currency), "%s", cur_s ? cur_s : "CNY");
	return true;
}

/* One batch of expiries on its way through a transaction: what
 * fire_exec reads and writes while it may run beside another batch (on
 * its own connection and thread), and what fire_finish then records. */
struct fire_job {
	sla *s;
	const uint32_t *idx;
	size_t n;
	bool ok;                  /* committed (or nothing to write) */
	ar_err err;
	fired res[FIRE_BATCH];
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
 * machine decides each, and one writes all their changes.
 * Each change commits only while its deadline row, armed at the same
 * version, still exists and is due, so a lost race writes nothing. Reads
 * the entries and writes only *j: batches of distinct cases may run at
 * once.
 */
static void fire_exec(fire_job *j)
{
	sla *s = j->s;
	const char *ids[FIRE_BATCH];
	store_tx *tx = NULL;
	size_t n_got = 0, n_ch = 0;
	bool ok;

	ar_err_init(&j->err);
	j->ok = false;
	for (size_t i = 0; i < j->n; i++)
		ids[i] = s->e[j->idx[i]].case_id;
	if (!store_tx_begin(s->app->db, &tx, &j->err))
		return;
	ok = store_tx_claim(tx, ids, j->n, j->got, &n_got, &j->err);
	for (size_t k = 0; k < n_got; k++)
		j->planned[k] = false;
	for (size_t i = 0; i < j->n; i++) {
		size_t k = 0;
		j->change_of[i] = -1;
		if (!ok)
			continue;
		while (k < n_got && strcmp(j->got[k].id, ids[i]) != 0)
			k++;
		/* held elsewhere, or a second deadline of a case this batch
		 * changes: it comes round again */
		if (k == n_got || j->planned[k])
			continue;
		j->planned[k] = true;
		if (plan_expiry(s, &s->e[j->idx[i]], &j->got[k], &j->chs[n_ch], &j->res[i],
				&j->owned[2 * n_ch], &j->owned[2 * n_ch + 1])) {
			j->change_of[i] = (int)n_ch++;
		} else {
			json_decref(j->owned[2 * n_ch]);
			json_decref(j->owned[2 * n_ch + 1]);
		}
	}
	ok = ok && store_tx_apply_many(tx, j->chs, n_ch, j->applied, &j->err);
	if (log_enabled(LOG_DEBUG)) {
		char nb[48];
		snprintf(nb, sizeof(nb), "%zu/%zu/%zu", j->n, n_got, n_ch);
		log_kv(LOG_DEBUG, "sla: batch", "due/claimed/changed", nb, NULL);
	}
	ok = store_tx_end(tx, ok, &j->err) && ok;
	for (size_t k = 0; k < 2 * n_ch; k++)
		json_decref(j->owned[k]);
	store_claimed_clear(j->got, n_got);
	j->ok = ok;
}

static void *fire_exec_thread(void *arg)
{
	fire_exec(arg);
	return NULL;
}

/* The scheduler thread's part: metrics of what committed, and the entries
 * dropped, or re-armed to try again when nothing was committed. */
static void fire_finish(fire_job *j)
{
	sla *s = j->s;
	int64_t now = app_now();

	if (!j->ok) {
		log_kv(LOG_WARN, "sla: batch not committed; retrying", "error", j->err.detail, NULL);
		for (size_t i = 0; i < j->n; i++)
			arm(s, j->idx[i] + 1, now + RETRY_MS);
		return;
	}
	for (size_t i = 0; i < j->n; i++) {
		const entry *e = &s->e[j->idx[i]];
		const fired *r = &j->res[i];
		if (j->change_of[i] >= 0 && j->applied[j->change_of[i]]) {
			metrics_transition(r->action, FSM_ROLE_SYSTEM);
			metrics_sla_fired(e->deadline, (double)(now - e->due_ms) / 1000.0);
			if (r->breach)
				metrics_sla_breach(e->deadline);
			if (r->refund_cents >= 0)
				metrics_refund("seller_silent", r->currency, r->refund_cents, true);
		}
		entry_del(s, j->idx[i]);
	}
}

/*
 * Fires up to FIRE_WORKERS batches at once, each in its own transaction on
 * its own connection: the database's work for one batch runs on one core,
 * so a mass expiry drains on as many cores as there are batches. Their
 * cases are distinct (a case locked by one batch is skipped by the other
 * and comes round again). When no second thread can be had, the batches
 * run one after the other.
 */
static void fire_batches(sla *s, uint32_t *idx, size_t n)
{
	pthread_t th[FIRE_WORKERS];
	bool started[FIRE_WORKERS] = { false };
	size_t nj = (n + FIRE_BATCH - 1) / FIRE_BATCH;

	for (size_t k = 0; k < nj; k++) {
		fire_job *j = &s->jobs[k];
		j->s = s;
		j->idx = idx + k * FIRE_BATCH;
		j->n = n - k * FIRE_BATCH < FIRE_BATCH ? n - k * FIRE_BATCH : FIRE_BATCH;
	}
	for (size_t k = 1; k < nj; k++)
		started[k] = pthread_create(&th[k], NULL, fire_exec_thread, &s->jobs[k]) == 0;
	fire_exec(&s->jobs[0]);
	for (size_t k = 1; k < nj; k++) {
		if (started[k])
			pthread_join(th[k], NULL);
		else
			fire_exec(&s->jobs[k]);
	}
	for (size_t k = 0; k < nj; k++)
		fire_finish(&s->jobs[k]);
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
		app_policy_follow(s->app);
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
	tw_expired *buf = malloc(FIRE_ROUND * sizeof(*buf));
	uint32_t *batch = malloc(FIRE_ROUND * sizeof(*batch));
	uint32_t *rem = malloc(FIRE_ROUND * sizeof(*rem));
	int64_t last_refill = 0;
	bool last_full = false;
	size_t last_added = 0;

	if (!buf || !batch || !rem) {
		log_kv(LOG_ERROR, "sla: out of memory; scheduler not running", NULL);
		goto out;
	}
	atomic_store(&s->running, true);
	for (;;) {
		int64_t now = app_now(), wake;
		size_t n, nb = 0, nr = 0;
		bool poked;
		uint64_t hint;
		struct timespec ts;

		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		poked = s->poke;
		s->poke = false;
		pthread_mutex_unlock(&s->mu);

		if (poked || now - last_refill >= SLA_POLL_MS) {
			last_full = refill(s, &last_added);
			last_refill = now;
		}
		n = tw_advance(s->wheel, (uint64_t)now, buf, FIRE_ROUND);
		for (size_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)buf[i].key;
			if (k >= s->n_e || !s->e[k].used)
				continue;
			if (s->e[k].kind == K_REMINDER)
				rem[nr++] = k;
			else
				batch[nb++] = k;
		}
		/* expiries first: a reminder never delays a deadline */
		if (nb)
			fire_batches(s, batch, nb);
		if (nr)
			remind_batch(s, rem, nr);
		app_policy_record(s->app);
		if (n == FIRE_ROUND)
			continue;
		/* The wheel has drained what a full page loaded: the next page is
		 * due now. A page of nothing new means the rest waits its turn. */
		if (last_full && last_added > 0) {
			last_full = refill(s, &last_added);
			last_refill = now;
			continue;
		}

		hint = tw_next_due_hint(s->wheel);
		wake = last_refill + SLA_POLL_MS;
		if (hint != UINT64_MAX && (int64_t)hint < wake)
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
		if (!s->stop && !s->poke)
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		pthread_mutex_unlock(&s->mu);
	}
out:
	atomic_store(&s->running, false);
	free(buf);
	free(batch);
	free(rem);
	return NULL;
}

sla *sla_start(ar_app *app)
{
	sla *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->app = app;
	s->n_buckets = 1u << 16;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	s->due = malloc(LOAD_CAP * sizeof(*s->due));
	s->jobs = malloc(FIRE_WORKERS * sizeof(*s->jobs));
	s->wheel = tw_create(4096, SLA_TICK_MS, (uint64_t)app_now());
	if (!s->buckets || !s->due || !s->jobs || !s->wheel)
		goto fail;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&s->cv, NULL) != 0)
		goto fail_mu;
	if (pthread_cond_init(&s->kcv, NULL) != 0)
		goto fail_cv;
	if (pthread_create(&s->thread, NULL, run, s) != 0)
		goto fail_kcv;
	if (pthread_create(&s->keeper, NULL, keep, s) != 0) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		goto fail_kcv;
	}
	return s;
fail_kcv:
	pthread_cond_destroy(&s->kcv);
fail_cv:
	pthread_cond_destroy(&s->cv);
fail_mu:
	pthread_mutex_destroy(&s->mu);
fail:
	tw_free(s->wheel);
	free(s->jobs);
	free(s->due);
	free(s->buckets);
	free(s);
	return NULL;
}

void sla_stop(sla *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_cond_signal(&s->kcv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_join(s->keeper, NULL);
	pthread_cond_destroy(&s->kcv);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	tw_free(s->wheel);
	free(s->e);
	free(s->jobs);
	free(s->due);
	free(s->buckets);
	free(s);
}

void sla_poke(sla *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->poke = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

bool sla_running(const sla *s)
{
	return s && atomic_load(&s->running);
}
