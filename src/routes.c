/* The route table: each endpoint's method, path, handler, roles and body limit. */
#include "arbiter/routes.h"

#include "arbiter/api.h"
#include "arbiter/casefsm.h"

#define R(role) ROUTE_ROLE(FSM_ROLE_##role)
/* Adjudicating dry runs: every role that takes part in a case. */
#define DECIDERS (R(FRONTEND) | R(SELLER) | R(AGENT) | R(ARBITER) | R(ADMIN))
/* The desk's queues: everyone who works cases, not the systems. */
#define DESK (R(SELLER) | R(AGENT) | R(ARBITER) | R(OPS) | R(ADMIN))
/* Webhook subscriptions: the systems and shops that receive them; ops reads. */
#define WH_WRITE (R(FRONTEND) | R(SELLER) | R(PAYMENT) | R(ADMIN))
#define WH_READ (WH_WRITE | R(OPS))

/*
 * Scope (which shops a key sees) and the rules of each state (who may take
 * which action) are the handlers' and the state machine's; these are the
 * coarse gates. Entries of one path are adjacent; the first names the path
 * in metrics and logs.
 */
const ar_route ar_routes[] = {
	{ M_GET | M_HEAD, "/healthz", api_healthz, ROUTE_PUBLIC, ROUTE_ANY_ROLE, 0,
	  ROUTE_UNLIMITED | ROUTE_WHILE_DRAINING },
	{ M_GET | M_HEAD, "/readyz", api_readyz, ROUTE_PUBLIC, ROUTE_ANY_ROLE, 0,
	  ROUTE_UNLIMITED },
	{ M_GET, "/metrics", api_metrics, ROUTE_METRICS_KEYED, R(OPS) | R(ADMIN), 0,
	  ROUTE_UNLIMITED },
	{ M_GET, "/openapi.json", api_openapi, ROUTE_PUBLIC, ROUTE_ANY_ROLE, 0, 0 },
	{ M_GET, "/v1/cases", api_cases_list, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_POST, "/v1/cases", api_cases_create, ROUTE_KEYED, R(FRONTEND), ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/cases/{id}", api_case_get, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_GET, "/v1/cases/{id}/events", api_case_events, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_GET, "/v1/cases/{id}/verify", api_case_verify, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_POST, "/v1/cases/{id}/actions", api_case_action, ROUTE_KEYED, ROUTE_ANY_ROLE,
	  ROUTE_BODY_MAX, ROUTE_IDEMPOTENT },
	/* the platform stops a deadline while the case waits on it */
	{ M_POST, "/v1/cases/{id}/deadlines/{id}/pause", api_deadline_pause, ROUTE_KEYED,
	  R(AGENT) | R(ARBITER), ROUTE_BODY_MAX, 0 },
	{ M_POST, "/v1/cases/{id}/deadlines/{id}/resume", api_deadline_resume, ROUTE_KEYED,
	  R(AGENT) | R(ARBITER), ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/events", api_events_feed, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_POST, "/v1/adjudications", api_adjudicate, ROUTE_KEYED, DECIDERS, ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/policy", api_policy_get, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_PUT, "/v1/policy", api_policy_put, ROUTE_KEYED, R(ADMIN), ROUTE_BODY_MAX, 0 },
	/* backtests read every shop's cases: roles whose keys are never bound to shops */
	{ M_POST, "/v1/policy/backtests", api_backtest_create, ROUTE_KEYED, R(OPS) | R(ADMIN),
	  ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/policy/backtests/{id}", api_backtest_get, ROUTE_KEYED, R(OPS) | R(ADMIN), 0, 0 },
	{ M_GET, "/v1/keys", api_keys_list, ROUTE_KEYED, R(ADMIN), 0, 0 },
	{ M_POST, "/v1/keys", api_keys_create, ROUTE_KEYED, R(ADMIN), ROUTE_BODY_MAX, 0 },
	{ M_DELETE, "/v1/keys/{id}", api_key_revoke, ROUTE_KEYED, R(ADMIN), 0, 0 },
	{ M_GET, "/v1/stats", api_stats, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_GET, "/v1/queues/{id}", api_queue, ROUTE_KEYED, DESK, 0, 0 },
	{ M_GET, "/v1/sku-flags", api_sku_flags, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_DELETE, "/v1/sku-flags/{id}/{id}", api_sku_flag_clear, ROUTE_KEYED,
	  R(AGENT) | R(ADMIN), 0, 0 },
	/* the platform's own keys (handlers refuse shop-scoped ones): a
	 * checkpoint counts the chains every shop changed */
	{ M_GET, "/v1/checkpoints/latest", api_checkpoint_latest, ROUTE_KEYED,
	  R(FRONTEND) | R(OPS) | R(ADMIN), 0, 0 },
	{ M_GET, "/v1/checkpoints/keys", api_checkpoint_keys, ROUTE_KEYED,
	  R(FRONTEND) | R(OPS) | R(ADMIN), 0, 0 },
	{ M_GET, "/v1/calendars/{id}", api_calendar_get, ROUTE_KEYED, ROUTE_ANY_ROLE, 0, 0 },
	{ M_PUT, "/v1/calendars/{id}", api_calendar_put, ROUTE_KEYED, R(ADMIN), ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/webhooks", api_webhooks_list, ROUTE_KEYED, WH_READ, 0, 0 },
	{ M_POST, "/v1/webhooks", api_webhooks_create, ROUTE_KEYED, WH_WRITE, ROUTE_BODY_MAX, 0 },
	{ M_GET, "/v1/webhooks/{id}", api_webhook_get, ROUTE_KEYED, WH_READ, 0, 0 },
	{ M_PATCH, "/v1/webhooks/{id}", api_webhook_update, ROUTE_KEYED, WH_WRITE, ROUTE_BODY_MAX, 0 },
	{ M_DELETE, "/v1/webhooks/{id}", api_webhook_delete, ROUTE_KEYED, WH_WRITE, 0, 0 },
	{ M_POST, "/v1/webhooks/{id}/rotate-secret", api_webhook_rotate, ROUTE_KEYED, WH_WRITE, 0, 0 },
	{ M_GET, "/v1/webhooks/{id}/deliveries", api_webhook_deliveries, ROUTE_KEYED, WH_READ, 0, 0 },
	{ M_GET, "/v1/webhooks/{id}/events", api_webhook_ops_events, ROUTE_KEYED, WH_READ, 0, 0 },
	{ M_POST, "/v1/webhooks/{id}/deliveries/{id}/replay", api_webhook_replay_one, ROUTE_KEYED,
	  WH_WRITE, 0, 0 },
	{ M_POST, "/v1/webhooks/{id}/replay", api_webhook_replay, ROUTE_KEYED, WH_WRITE, 0, 0 },
	{ M_POST, "/v1/webhooks/{id}/ping", api_webhook_ping, ROUTE_KEYED, WH_WRITE, 0, 0 },
	{ M_GET | M_HEAD, "/ui/", api_ui, ROUTE_PUBLIC, ROUTE_ANY_ROLE, 0, 0 },
};

const size_t ar_n_routes = sizeof(ar_routes) / sizeof(ar_routes[0]);
