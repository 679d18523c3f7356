/*
 * webhook.h - POST /hooks/{connector}: the connector's plugin verifies the
 * signature over the raw bytes (401, nothing stored, when wrong), the
 * delivery is deduplicated on the sender's delivery id, the plugin reads
 * the records, they are validated and committed, and 200 goes out only
 * after the commit. 503 with Retry-After while the store is unavailable.
 */
#ifndef HUB_WEBHOOK_H
#define HUB_WEBHOOK_H

#include <stddef.h>
#include <jansson.h>

struct hub;

/* Registers the webhook route on hub->server. 0 or -1. */
int webhook_routes(struct hub *hub);

/* The route table (for hubd --print-routes and the spec test). */
struct route;
const struct route *webhook_route_table(size_t *n);

/* Re-runs a stored webhook (a dead letter of kind "webhook": its payload
 * holds the method, url, headers and body) through the connector's plugin
 * and stores the records. Returns 0 when queued, 1 when the payload is
 * still unreadable (kept again as a new dead letter), -1 with a message
 * when nothing could be done (the caller keeps the dead letter). */
int webhook_replay(struct hub *hub, const char *connector, json_t *payload, char *err, size_t size);

#endif
