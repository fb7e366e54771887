/*
 * The SLA scheduler: a thread that keeps the deadlines due soon in a
 * timer wheel, a refiller thread that adds what is new in PostgreSQL (the
 * truth), and workers that fire expiries in batches through the state
 * machine and the same store path as an HTTP action, as the actor
 * `system` (src/sla.c says how they share the work). A deadline fires once: the change commits only while
 * its deadline row (case, name, armed version) still exists and the case is
 * at the version that was read, so replicas and racing sellers cannot both
 * win.
 */
#ifndef ARBITER_SLA_H
#define ARBITER_SLA_H

#include "arbiter/app.h"

/* The wheel holds the deadlines due within this window ahead of now. */
#define SLA_HORIZON_MS 30000
/* The wheel's resolution: an expiry is handed to a batch at most this long
 * after it is due. Ticks with nothing due cost next to nothing. */
#define SLA_TICK_MS 10
/* Other replicas' new deadlines are found by this poll (an incremental
 * refill; a full reload of the horizon every 5 s is the safety net). */
#define SLA_POLL_MS 1000

/* Starts the thread. NULL on failure (nothing left running). Stop with
 * sla_stop, which joins the thread and frees everything. */
sla *sla_start(ar_app *app);
void sla_stop(sla *s);
/* This process armed a deadline that may be due within the horizon. */
void sla_poke(sla *s);
bool sla_running(const sla *s);
#endif
