/*
 * admin.h - the admin REST API under /v1 (docs/openapi.yaml).
 */
#ifndef HUB_ADMIN_H
#define HUB_ADMIN_H

#include <stddef.h>

struct hub;
struct route;

/* Registers every /v1 route on hub->server. 0 or -1. */
int admin_routes(struct hub *hub);

/* The route table (for hubd --print-routes and the spec test). */
const struct route *admin_route_table(size_t *n);

#endif
