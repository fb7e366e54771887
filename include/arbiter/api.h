/* Route handlers: decode, decide (pure modules), store, encode. */
#ifndef ARBITER_API_H
#define ARBITER_API_H
#include "arbiter/http.h"

void api_healthz(ar_req *r);
void api_readyz(ar_req *r);
void api_cases_create(ar_req *r);
void api_cases_list(ar_req *r);
void api_case_get(ar_req *r);
void api_case_events(ar_req *r);
void api_adjudicate(ar_req *r);
void api_policy_get(ar_req *r);
void api_policy_put(ar_req *r);
/* Adds allowed_actions (from the state machine) to a case document. */
void api_decorate_case(json_t *c);
#endif
