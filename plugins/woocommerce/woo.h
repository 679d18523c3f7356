/*
 * woo.h - internals shared by the files of the WooCommerce connector plugin.
 *
 * The plugin is split by concern: woo_plugin.c holds the descriptor, the
 * config schema and the instance lifecycle; woo_api.c builds the REST v3
 * requests (Basic or OAuth 1.0a), reads list responses into records and a
 * cursor, and classifies upstream failures; woo_map.c turns one WooCommerce
 * order into a canonical order record; woo_webhook.c verifies and reads
 * webhook deliveries. Nothing here is exported from the shared object: only
 * `hub_plugin_v1` is.
 *
 * Threads: like every plugin callback, these run on the host's loop thread,
 * one at a time per instance.
 */
#ifndef HUB_WOO_H
#define HUB_WOO_H

#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

/* The stream and bucket names the descriptor declares. */
#define WOO_STREAM_ORDERS "orders"
#define WOO_BUCKET_ORDERS "orders"

/* Orders requested per page: the REST API's maximum. */
#define WOO_PER_PAGE 100

/* How requests authenticate. WooCommerce only accepts Basic over HTTPS and
 * only checks OAuth 1.0a signatures over plain HTTP. */
enum woo_auth {
	WOO_AUTH_BASIC = 0,
	WOO_AUTH_OAUTH1 = 1,
};

/* One connector instance, built by woo_create() from a validated config. */
struct woo {
	const struct hub_host *host;
	struct hub_conn *conn;
	char *store_url;       /* scheme://host[:port][/path], no trailing slash */
	char *consumer_key;
	char *consumer_secret;
	char *webhook_secret;  /* NULL when webhooks are not configured */
	enum woo_auth auth;
};

/* ---- woo_api.c ------------------------------------------------------ */

/* build_request callback: GET /wp-json/wc/v3/orders for the page the cursor
 * names. Returns HUB_OK, or HUB_INVALID for an unknown stream or a malformed
 * cursor, HUB_FATAL when memory runs out. */
int woo_build_request(void *state, const char *stream, const json_t *cursor,
		      struct hub_msg *req, struct hub_error *err);

/* read_response callback: emits one order record per element of the list,
 * sets the next cursor and `more` from X-WP-TotalPages. Returns HUB_OK, or
 * what woo_classify_status() says for a non-200 answer, HUB_RETRY for a body
 * that is not JSON, HUB_INVALID for an order that cannot be mapped. */
int woo_read_response(void *state, const char *stream, const json_t *cursor,
		      const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

/* read_limits callback: reports a Retry-After (seconds) on any response. */
void woo_read_limits(void *state, const char *operation, const struct hub_msg *resp,
		     struct hub_call *call);

/* Classifies a non-2xx response: HUB_RETRY for 408, 425, 429 and 5xx,
 * HUB_FATAL otherwise (401/403 name the credentials, 404 the store URL),
 * with err carrying the status and WooCommerce's own code and message. */
int woo_classify_status(const struct woo *w, const struct hub_msg *resp,
			struct hub_error *err);

/* ---- woo_map.c ------------------------------------------------------ */

/* Maps one WooCommerce REST v3 order object to a canonical order record.
 * `ctx` is the JSON path of `order` for error messages ("orders[3]").
 * Returns a new reference, or NULL with err naming the field at fault. When
 * `modified_ms` is not NULL it receives the order's date_modified_gmt in
 * milliseconds (its date_created_gmt when it has none). */
json_t *woo_map_order(const json_t *order, const char *ctx, int64_t *modified_ms,
		      struct hub_error *err);

/* ---- woo_webhook.c -------------------------------------------------- */

/* verify_webhook callback: base64 HMAC-SHA256 of the raw body under
 * webhook_secret, compared in constant time; the unsigned creation ping
 * (form body "webhook_id=N") is accepted as topic "ping". */
int woo_verify_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
		       struct hub_error *err);

/* read_webhook callback: order.created, order.updated and order.restored
 * carry a full order and yield one record; other topics, order.deleted
 * (whose body is only {"id":N}) and the ping are HUB_IGNORED. */
int woo_read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
		     struct hub_error *err);

#endif /* HUB_WOO_H */
