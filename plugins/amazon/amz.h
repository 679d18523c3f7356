/*
 * amz.h - internals shared by the files of the Amazon SP-API connector.
 *
 * amz_plugin.c holds the descriptor, the config schema and the instance
 * lifecycle; amz_api.c builds the searchOrders requests (Orders API
 * 2026-01-01), reads its pages into records and a cursor, and classifies
 * SP-API failures and rate-limit headers; amz_map.c turns one 2026-01-01
 * Order into a canonical order; amz_actions.c holds the "refresh_token"
 * (Login with Amazon) and "push_tracking" (v0 confirmShipment) actions.
 * Only `hub_plugin_v1` is exported from the shared object.
 *
 * Threads: callbacks run on the host's loop thread, one at a time per
 * instance.
 */
#ifndef HUB_AMZ_H
#define HUB_AMZ_H

#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

#define AMZ_STREAM_ORDERS "orders"
/* Rate-limit buckets: one per SP-API operation, plus the LWA token call. */
#define AMZ_BUCKET_SEARCH "searchOrders"
#define AMZ_BUCKET_CONFIRM "confirmShipment"
#define AMZ_BUCKET_LWA "lwaToken"

#define AMZ_ACTION_REFRESH "refresh_token"
#define AMZ_ACTION_PUSH "push_tracking"

/* Orders per searchOrders page: the API's maximum. */
#define AMZ_PAGE_SIZE 100

/* One connector instance. */
struct amz {
	const struct hub_host *host;
	struct hub_conn *conn;
	char *api_base;        /* https://sellingpartnerapi-na.amazon.com, no trailing '/' */
	char *lwa_endpoint;    /* https://api.amazon.com, no trailing '/' */
	char *refresh_token;
	char *client_id;
	char *client_secret;
	char *seller_id;       /* may be NULL */
	char *marketplaces;    /* marketplace ids, comma-joined */
	char *first_marketplace;
	int64_t backfill_days; /* first sync without a host "since" */
};

/* ---- amz_api.c ------------------------------------------------------ */

/* build_request callback for "orders": GET /orders/2026-01-01/orders with
 * lastUpdatedAfter, marketplaceIds, includedData, maxResultsPerPage and the
 * cursor's paginationToken. HUB_AUTH_EXPIRED when the host holds no access
 * token yet (the host then runs "refresh_token"). */
int amz_build_request(void *state, const char *stream, const json_t *cursor,
		      struct hub_msg *req, struct hub_error *err);

/* read_response callback: one record per order, the next cursor, `more`
 * while pagination.nextToken is present. */
int amz_read_response(void *state, const char *stream, const json_t *cursor,
		      const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

/* read_limits callback: x-amzn-RateLimit-Limit (requests/s) and, from
 * proxies, Retry-After. */
void amz_read_limits(void *state, const char *operation, const struct hub_msg *resp,
		     struct hub_call *call);

/* Classifies a non-2xx SP-API response: 429, 408 and 5xx -> HUB_RETRY;
 * 401, and 403 whose error says Unauthorized or an expired/invalid access
 * token -> HUB_AUTH_EXPIRED; 404 -> `not_found` (HUB_NOT_FOUND for actions,
 * HUB_FATAL for searchOrders); anything else -> HUB_FATAL. err carries the
 * status and the first error's code, message and details. */
int amz_classify_status(const struct amz *a, const struct hub_msg *resp, int not_found,
			const char *what, struct hub_error *err);

/* Writes now as x-amz-date ("20260115T100000Z") into buf (>= 17 bytes). */
int amz_format_amz_date(int64_t ms, char *buf, size_t size);

/* ---- amz_map.c ------------------------------------------------------ */

/* Maps one Orders API 2026-01-01 Order to a canonical order record. `ctx`
 * is its JSON path ("orders[2]"). Returns a new reference; NULL with err
 * set when the order is malformed; NULL with *deferred = 1 (err explains)
 * when the order carries no money yet (a pending order without proceeds or
 * prices), which is not an error: it reappears when it is updated. When
 * `updated_ms` is not NULL it receives lastUpdatedTime. */
json_t *amz_map_order(const json_t *order, const char *ctx, int64_t *updated_ms,
		      int *deferred, struct hub_error *err);

/* ---- amz_actions.c -------------------------------------------------- */

/* build_action callback: "refresh_token" (POST {lwa}/auth/o2/token) and
 * "push_tracking" (POST /orders/v0/orders/{id}/shipmentConfirmation);
 * HUB_IGNORED for other actions. */
int amz_build_action(void *state, const char *action, const json_t *payload,
		     struct hub_msg *req, struct hub_error *err);

/* read_action callback: stores the new access token; a 204 confirms a
 * shipment. */
int amz_read_action(void *state, const char *action, const json_t *payload,
		    const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

#endif /* HUB_AMZ_H */
