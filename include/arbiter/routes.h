/* The route table: every endpoint the service serves, in one array. */
#ifndef ARBITER_ROUTES_H
#define ARBITER_ROUTES_H
#include "arbiter/router.h"

extern const ar_route ar_routes[];
extern const size_t ar_n_routes;
#endif
