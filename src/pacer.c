/* A share of wall time for background work, held only while the database serves others: the backtest's throttle. */
#include "arbiter/pacer.h"

void pacer_init(pacer *p, int share, int64_t now_us)
{
	*p = (pacer){ .share = share < 1 ? 1 : share > 100 ? 100 : share, .live = true,
		      .origin_us = now_us, .since_us = now_us };
}

void pacer_spend(pacer *p, int64_t busy_us)
{
	if (busy_us > 0)
		p->busy_us += busy_us;
}

int64_t pacer_wait(pacer *p, int64_t now_us)
{
	int64_t allowed, wait;

	if (!p->live || p->share >= 100)
		return 0;
	allowed = (now_us - p->origin_us) * p->share / 100;
	/* bank at most PACER_CREDIT_US of busy time: move the origin up */
	if (allowed - p->busy_us > PACER_CREDIT_US) {
		p->origin_us = now_us - (p->busy_us + PACER_CREDIT_US) * 100 / p->share;
		allowed = p->busy_us + PACER_CREDIT_US;
	}
	if (p->busy_us <= allowed)
		return 0;
	/* until (t - origin) * share / 100 == busy */
	wait = p->origin_us + p->busy_us * 100 / p->share - now_us;
	if (wait <= 0)
		return 0;
	p->waited_us += wait;
	return wait;
}

bool pacer_reading_due(const pacer *p, int64_t now_us)
{
	return !p->window_us || now_us - p->window_us >= PACER_WINDOW_US;
}

void pacer_reading(pacer *p, int64_t now_us, uint64_t lsn)
{
	bool live;

	if (!p->window_us) {
		p->window_us = now_us;
		p->window_lsn = lsn;
		return;
	}
	if (now_us - p->window_us < PACER_WINDOW_US)
		return;
	live = lsn < p->window_lsn ||
	       (double)(lsn - p->window_lsn) * 1e6 / (double)(now_us - p->window_us) >
		       (double)PACER_LIVE_WAL_BPS;
	if (live != p->live) {
		if (p->live)
			p->live_us += now_us - p->since_us;
		p->since_us = now_us;
		p->live = live;
		/* a new allowance: idle time is not banked into it */
		p->origin_us = now_us;
		p->busy_us = 0;
	}
	p->window_us = now_us;
	p->window_lsn = lsn;
}

int64_t pacer_live_us(const pacer *p, int64_t now_us)
{
	return p->live_us + (p->live ? now_us - p->since_us : 0);
}
