/* Route handlers: decode, decide (pure modules), store, encode. */
#ifndef ARBITER_API_H
#define ARBITER_API_H
#include "arbiter/http.h"
#include "arbiter/store_cases.h"

void api_healthz(ar_req *r);
void api_readyz(ar_req *r);
void api_cases_create(ar_req *r);
void api_cases_list(ar_req *r);
void api_case_get(ar_req *r);
void api_case_events(ar_req *r);
/* GET /v1/cases/{id}/verify: the stored chain re-hashed, as arbiter verify does. */
void api_case_verify(ar_req *r);
void api_adjudicate(ar_req *r);
void api_policy_get(ar_req *r);
void api_policy_put(ar_req *r);
void api_case_action(ar_req *r);
void api_events_feed(ar_req *r);
void api_keys_list(ar_req *r);
void api_keys_create(ar_req *r);
void api_key_revoke(ar_req *r);
void api_stats(ar_req *r);
void api_queue(ar_req *r);
void api_sku_flags(ar_req *r);
void api_sku_flag_clear(ar_req *r);
void api_metrics(ar_req *r);
void api_openapi(ar_req *r);
void api_ui(ar_req *r);
void api_checkpoint_latest(ar_req *r);
void api_checkpoint_keys(ar_req *r);
void api_calendar_get(ar_req *r);
void api_calendar_put(ar_req *r);
/* POST /v1/cases/{id}/deadlines/{name}/pause, /resume (api_pauses.c). */
void api_deadline_pause(ar_req *r);
void api_deadline_resume(ar_req *r);
/* Policy backtests (api_backtests.c). */
void api_backtest_create(ar_req *r);
void api_backtest_get(ar_req *r);
/* PUT /v1/policy's ?backtest_id= (the only parameter it takes): NULL when
 * absent; false (422 naming /query/backtest_id) unless it names a finished
 * backtest. */
bool api_policy_backtest_arg(ar_req *r, const char **backtest_id, ar_err *err) AR_MUSTCHECK;
/* Records the activation the request just made, with its backtest (the
 * policy is active either way: a failure is logged). */
void api_policy_activation_record(ar_req *r, const char *backtest_id);
/* Push webhooks (api_webhooks.c). */
void api_webhooks_create(ar_req *r);
void api_webhooks_list(ar_req *r);
void api_webhook_get(ar_req *r);
void api_webhook_update(ar_req *r);
void api_webhook_delete(ar_req *r);
void api_webhook_rotate(ar_req *r);
void api_webhook_deliveries(ar_req *r);
void api_webhook_ops_events(ar_req *r);
void api_webhook_replay_one(ar_req *r);
void api_webhook_replay(ar_req *r);
void api_webhook_ping(ar_req *r);
/* Replies with a case as the store read it: allowed_actions spliced into
 * its text, ETag from its version; a shop's view of it for a key bound to
 * shops (row->json is replaced by that view). */
void api_reply_case_row(ar_req *r, int status, store_case_row *row);
/* Adds allowed_actions (from the state machine) to a case document. */
void api_decorate_case(json_t *c);

/* Every reply that carries a decision shows a key bound to shops the
 * shop's view of it (redact.h), one call per reply kind: a case document
 * as text (replaced in place) or parsed, a list of audit events, a dry
 * run's decision. Keys that see every shop get everything. */
bool api_view_case_text(ar_req *r, char **json, size_t *len, ar_err *err) AR_MUSTCHECK;
bool api_view_case(ar_req *r, json_t *c, ar_err *err) AR_MUSTCHECK;
bool api_view_events(ar_req *r, json_t *items, ar_err *err) AR_MUSTCHECK;
bool api_view_decision(ar_req *r, json_t *decision, ar_err *err) AR_MUSTCHECK;
bool api_view_policy(ar_req *r, json_t *doc, ar_err *err) AR_MUSTCHECK;
#endif
