/*
 * Our case states in the platforms' refund vocabulary (pure): the
 * Taobao/Tmall refund `status` and Pinduoduo's `after_sales_status` code a
 * shop system would show for a case. README "Platform vocabulary" has the
 * table; a state with no counterpart on a platform maps to none.
 */
#ifndef ARBITER_PLATFORM_H
#define ARBITER_PLATFORM_H

#include "arbiter/casefsm.h"
#include "arbiter/model.h"

/* taobao: a static name or NULL (none); pdd: the code or -1 (none). */
void platform_status(ar_kind kind, fsm_state state, fsm_outcome outcome, const char **taobao,
		     int *pdd);

#endif
