/*
 * shopify.h - internals shared by the files of the Shopify connector plugin
 * (never installed). plugin.c holds the descriptor and the connector config,
 * api.c the Admin REST requests and responses (orders stream, rate-limit
 * headers, fulfillment actions), webhook.c the webhook checks and topics,
 * and map.c the translation of Shopify orders and fulfillments into
 * canonical records. Everything here has hidden visibility: the plugin
 * exports only `hub_plugin_v1`.
 *
 * Threads: every function runs on the host's event-loop thread, one call at
 * a time per plugin generation (see hub/plugin.h), so nothing locks.
 */
#ifndef SHOPIFY_H
#define SHOPIFY_H

#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

/* The one rate-limit bucket of the REST Admin API (per app and shop). */
#define SHOPIFY_BUCKET "rest"
/* Shopify's documented plans keep bucket size / leak rate at 20 seconds
 * (40 at 2/s, 80 at 4/s, 400 at 20/s). */
#define SHOPIFY_BUCKET_DRAIN_S 20.0
#define SHOPIFY_DEFAULT_BURST 40.0
#define SHOPIFY_DEFAULT_RATE 2.0
#define SHOPIFY_DEFAULT_API_VERSION "2026-07"
#define SHOPIFY_PAGE_LIMIT 250
/* updated_at_min is moved back this much on every sweep so that writes
 * committed around the previous sweep's end are read again, not lost. */
#define SHOPIFY_OVERLAP_MS (60 * 1000)

/* One connector instance, built by create() from its config. */
struct shopify {
	const struct hub_host *host;
	struct hub_conn *conn;
	char *shop;           /* "acme.myshopify.com" */
	char *api_version;    /* "2026-07" */
	char *api_base;       /* "https://acme.myshopify.com", no trailing '/' */
	char *access_token;   /* from the config; the host's refreshed one wins */
	char *webhook_secret; /* NULL: every webhook is refused */
	double burst;         /* the "rest" bucket, possibly overridden */
	double rate;          /* leak per second; <= 0: derive from the size seen */
	int rate_overridden;
};

/* ---- plugin.c ---------------------------------------------------------- */

/* The access token to send: the host's refreshed one when it has one, else
 * the configured one; NULL when neither exists. Borrowed. */
const char *shopify_token(const struct shopify *s);

/* ---- api.c ------------------------------------------------------------- */

/*
 * The hub_plugin callbacks of the orders stream and the actions, as
 * documented in hub/plugin.h. build_request/read_response serve the
 * "orders" stream (cursor format in api.c's opening comment); build_action/
 * read_action serve "push_tracking", "update_tracking" and "push_status"
 * and answer HUB_IGNORED for any other action. read_limits reports
 * X-Shopify-Shop-Api-Call-Limit and Retry-After on bucket "rest". None of
 * them changes the instance; records, cursors and jobs go to `call`.
 */
int shopify_build_request(void *state, const char *stream, const json_t *cursor,
			  struct hub_msg *req, struct hub_error *err);
int shopify_read_response(void *state, const char *stream, const json_t *cursor,
			  const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);
void shopify_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			 struct hub_call *call);
int shopify_build_action(void *state, const char *action, const json_t *payload,
			 struct hub_msg *req, struct hub_error *err);
int shopify_read_action(void *state, const char *action, const json_t *payload,
			const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

/*
 * Classifies a response's HTTP status: HUB_OK for 2xx; HUB_RETRY for 408,
 * 429 and 5xx; HUB_AUTH_EXPIRED for 401; HUB_FATAL for everything else (403
 * and other 4xx, unexpected 1xx/3xx). Fills err with the status and an
 * excerpt of the body unless the status is 2xx. `what` names the request in
 * messages ("orders page", "push_tracking").
 */
int shopify_check_status(const struct shopify *s, const struct hub_msg *resp, const char *what,
			 struct hub_error *err);

/*
 * Parses a response body as JSON. Returns HUB_OK with *out (new reference),
 * or HUB_RETRY with err naming the position of the problem: a malformed or
 * truncated body is usually a cut connection, worth another try.
 */
int shopify_parse_body(const struct shopify *s, const struct hub_msg *msg, const char *what,
		       json_t **out, struct hub_error *err);

/*
 * Emits the canonical order for a Shopify order object and one shipment per
 * embedded fulfillment. *updated_ms (may be NULL) receives the order's
 * updated_at. Returns 0, or -1 with err when the order cannot be mapped
 * (nothing is emitted then) or the host refuses a record.
 */
int shopify_emit_order(const struct shopify *s, struct hub_call *call, const json_t *order,
		       int64_t *updated_ms, struct hub_error *err);

/* ---- webhook.c --------------------------------------------------------- */

/*
 * The webhook callbacks of hub/plugin.h: verify_webhook checks the HMAC and
 * the required headers and reports the delivery id and topic (HUB_OK or
 * HUB_UNAUTHORIZED with err); read_webhook emits the order (and its
 * shipments) or the shipment a topic carries, HUB_IGNORED for other topics,
 * HUB_INVALID for a payload it cannot read. Neither changes the instance.
 */
int shopify_verify_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			   struct hub_error *err);
int shopify_read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			 struct hub_error *err);

/* ---- map.c ------------------------------------------------------------- */

/*
 * Maps a Shopify order (REST resource or webhook payload) to a canonical
 * order record (sdk/schema/order.json). On success *out is a new reference
 * owned by the caller. Returns 0, or -1 with err naming the field at fault.
 * Pure: no host calls, no state.
 */
int shopify_map_order(const json_t *order, json_t **out, struct hub_error *err);

/*
 * Maps a Shopify fulfillment to a canonical shipment record
 * (sdk/schema/shipment.json). `order_id` is used when the fulfillment
 * carries no order_id of its own (may be NULL). On success *out is a new
 * reference owned by the caller. Returns 0, or -1 with err.
 */
int shopify_map_fulfillment(const json_t *fulfillment, const char *order_id, json_t **out,
			    struct hub_error *err);

/*
 * Canonical shipment status for a fulfillment's `status` and
 * `shipment_status` (either may be NULL). Never NULL; "unknown" for values
 * Shopify does not document.
 */
const char *shopify_shipment_status(const char *status, const char *shipment_status);

/*
 * Shopify's fulfillment event status for a canonical shipment status, or a
 * Shopify event status given verbatim; NULL when there is no equivalent.
 */
const char *shopify_event_status(const char *status);

/*
 * The tracking company name Shopify knows for a canonical carrier code
 * ("ups" -> "UPS"); any other text is returned as given.
 */
const char *shopify_tracking_company(const char *carrier);

#endif /* SHOPIFY_H */
