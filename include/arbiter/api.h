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
/* Replies with a case as the store read it: allowed_actions spliced into
 * its text, ETag from its version. */
void api_reply_case_row(ar_req *r, int status, const store_case_row *row);
/* Adds allowed_actions (from the state machine) to a case document. */
void api_decorate_case(json_t *c);
#endif
