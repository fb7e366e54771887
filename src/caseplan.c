/* Domain rules of a case's change: deadlines a state arms, an expiry's effect. */
#include "arbiter/caseplan.h"

#include "arbiter/appcal.h"
#include "arbiter/errmsg.h"

#include <string.h>

bool caseplan_deadlines(ar_app *app, ar_kind kind, const char *shop_id, bool major,
			bool manual_review, unsigned mask, store_deadline out[], size_t *n,
			ar_err *err)
{
	policy_arming arm[STORE_MAX_DEADLINES];
	ar_time now = app_now();
	bool ok;

	pthread_rwlock_rdlock(&app->policy_lock);
	ok = policy_armings(app->policy, kind, shop_id, major, manual_review, mask, arm,
			    STORE_MAX_DEADLINES, n, err);
	for (size_t i = 0; ok && i < *n; i++) {
		out[i] = (store_deadline){ .name = arm[i].name, .after_ms = arm[i].after_ms,
					   .on_expiry = arm[i].on_expiry };
		/* The calendar fixes the instant; the statement's clock runs a few
		 * ms behind this one, which only the horizon check sees. Under the
		 * policy lock: the calendar is swapped under it. */
		if (arm[i].working_days > 0) {
			policy_dur d = { 0, arm[i].working_days, arm[i].at };
			ok = app_calendar_due(app, now, &d, &out[i], err);
		} else if (policy_holiday_extension(app->policy) > 0) {
			ok = app_calendar_extend(app, now, policy_holiday_extension(app->policy),
						 &out[i], err);
		}
	}
	pthread_rwlock_unlock(&app->policy_lock);
	return ok;
}

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

bool caseplan_expiry(ar_app *app, const store_claimed *c, fsm_deadline d, int armed_version,
		     int64_t due_ms, caseplan_by by, store_change *ch, caseplan_fired *out,
		     json_t **data, json_t **refund, ar_err *err)
{
	fsm_case fc = { c->kind, c->state, c->manual_review, c->has_offer, c->agreement_pending,
			c->goods_missing, c->has_counter, c->rounds_left };
	fsm_action act = fsm_expiry_action(d);
	fsm_result res;
	ar_err refused;
	json_t *rf = json_object_get(c->decision, "refund");
	const char *sev = json_string_value(json_object_get(c->decision, "severity"));
	const char *cur_s = json_string_value(json_object_get(rf, "currency"));
	char due[40];

	memset(out, 0, sizeof(*out));
	out->refund_cents = -1;
	*data = *refund = NULL;
	/* a deadline the case has moved past is no error: nothing to write */
	ar_err_init(&refused);
	if (act == FSM_ACTION__COUNT || !fsm_apply(&fc, act, FSM_ROLE_SYSTEM, &res, &refused))
		return false;

	memset(ch, 0, sizeof(*ch));
	ch->case_id = c->id;
	ch->expected_version = c->version;
	ch->state = fsm_state_name(res.to);
	ch->outcome = res.outcome != FSM_OUTCOME_NONE ? fsm_outcome_name(res.outcome) : NULL;
	ch->offer = res.clears_offer ? STORE_CLEAR : STORE_KEEP;
	ch->counter = res.clears_counter ? STORE_CLEAR : STORE_KEEP;
	ch->agreement = STORE_KEEP;
	ch->refund_cents = -1;
	ch->consume_deadline = fsm_deadline_name(d);
	ch->consume_armed_version = armed_version;
	ch->actor_role = "system";
	ch->actor_id = "sla";
	if (res.state_changed) {
		ch->replace_deadlines = true;
		if (!caseplan_deadlines(app, fc.kind, c->shop_id, sev && strcmp(sev, "major") == 0,
					fc.manual_review, res.deadlines, ch->deadlines,
					&ch->n_deadlines, err))
			return false;
	}
	ar_time_format(due_ms, due, sizeof(due));
	/* fired_at: null here, the store writes the database's clock at the
	 * write into it */
	*data = json_pack("{s:s,s:s,s:n,s:s}", "deadline", fsm_deadline_name(d), "due_at", due,
			  "fired_at", "noticed_by",
			  by == CASEPLAN_BY_REQUEST ? "request" : "scheduler");
	if (!*data)
		goto oom;
	if (res.breach)
		json_object_set_new(*data, "escalated_to", json_string(
			d == FSM_DEADLINE_COMPLAINT_FIRST_RESPONSE ? "senior_agent" : "platform_lead"));
	ch->events[ch->n_events++] = (store_event){
		res.breach ? "sla.breached" : fsm_action_name(act),
		fsm_state_name(fc.state), ch->state, *data };
	if (res.refund == FSM_REFUND_DECIDED || (res.refund == FSM_REFUND_COUNTER &&
						     c->counter_cents > 0)) {
		/* silence grants the request: the decided amount, or the
		 * buyer's counter-offer the seller left unanswered */
		int64_t total = res.refund == FSM_REFUND_COUNTER ? c->counter_cents
								 : jint(rf, "total_cents", 0);
		ch->refund_cents = total;
		/* the decided amount with its split and what to restore (004) */
		*refund = policy_refund_instruction(rf, total, "seller_silent");
		if (!*refund)
			goto oom;
		ch->events[ch->n_events++] = (store_event){ "refund.instructed", ch->state, ch->state,
							   *refund };
	}
	out->breach = res.breach;
	out->action = act;
	out->to = res.to;
	out->refund_cents = ch->refund_cents;
	snprintf(out->currency, sizeof(out->currency), "%s", cur_s ? cur_s : "CNY");
	return true;
oom:
	ar_err_setk(err, 503, "overloaded", "detail.try_again", NULL);
	return false;
}
