/*
 * amz_plugin.c - the Amazon SP-API connector: descriptor, config, lifecycle.
 *
 * Exports `hub_plugin_v1`, the only visible symbol of amazon.so. One stream,
 * "orders" (Orders API 2026-01-01 searchOrders, polled by last update), and
 * two actions: "refresh_token" (Login with Amazon) and "push_tracking"
 * (Orders API v0 confirmShipment). Buckets follow the operations' published
 * usage plans: searchOrders 0.0056 requests/s with a burst of 20,
 * confirmShipment 2/s with a burst of 10; x-amzn-RateLimit-Limit corrects
 * the rate per seller. The LWA token call has no published plan; one token
 * lasts an hour, so burst 5 at 1/s is ample.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

#include "amz.h"

static const char config_schema[] =
	"{"
	"\"type\":\"object\","
	"\"required\":[\"api_base\",\"refresh_token\",\"client_id\",\"client_secret\","
	"\"marketplace_ids\"],"
	"\"additionalProperties\":false,"
	"\"properties\":{"
	"\"api_base\":{\"type\":\"string\",\"pattern\":\"^https?://[^/?#]+(/[^?#]*)?$\","
	"\"maxLength\":512,\"description\":\"the region's SP-API endpoint, e.g. "
	"https://sellingpartnerapi-na.amazon.com\"},"
	"\"lwa_endpoint\":{\"type\":\"string\",\"pattern\":\"^https?://[^/?#]+(/[^?#]*)?$\","
	"\"maxLength\":512,\"default\":\"https://api.amazon.com\","
	"\"description\":\"Login with Amazon; the token URL is {lwa_endpoint}/auth/o2/token\"},"
	"\"refresh_token\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":2048,"
	"\"x-secret\":true,\"description\":\"the seller's LWA refresh token (Atzr|...)\"},"
	"\"client_id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,"
	"\"description\":\"the app's LWA client id\"},"
	"\"client_secret\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,"
	"\"x-secret\":true,\"description\":\"the app's LWA client secret\"},"
	"\"marketplace_ids\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":50,\"items\":{\"type\":\"string\","
	"\"pattern\":\"^[A-Z0-9]{1,20}$\"},\"description\":\"1 to 50 marketplace ids, e.g. "
	"[\\\"ATVPDKIKX0DER\\\"]; the first is the default of shipment confirmations\"},"
	"\"seller_id\":{\"type\":\"string\",\"maxLength\":64,"
	"\"description\":\"the seller's merchant token, for operators\"},"
	"\"backfill_days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":730,\"default\":30,"
	"\"description\":\"days of updates read on the first sync without backfill_since\"},"
	"\"rate_limits\":{\"type\":\"object\",\"description\":\"per-bucket overrides of "
	"burst and rate\"}"
	"}"
	"}";

static const struct hub_stream_def streams[] = {
	{AMZ_STREAM_ORDERS, 1u << HUB_RECORD_ORDER, 300, AMZ_BUCKET_SEARCH, {0}},
	{NULL, 0, 0, NULL, {0}},
};

static const struct hub_bucket_def buckets[] = {
	{AMZ_BUCKET_SEARCH, 20.0, 0.0056, {0}},
	{AMZ_BUCKET_CONFIRM, 10.0, 2.0, {0}},
	{AMZ_BUCKET_LWA, 5.0, 1.0, {0}},
	{NULL, 0, 0, {0}},
};

/* Frees a string after wiping it (for secrets). */
static void free_secret(char *s)
{
	if (s != NULL) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

static void amz_destroy(void *state)
{
	struct amz *a = state;

	if (a == NULL)
		return;
	free(a->api_base);
	free(a->lwa_endpoint);
	free_secret(a->refresh_token);
	free(a->client_id);
	free_secret(a->client_secret);
	free(a->seller_id);
	free(a->marketplaces);
	free(a->first_marketplace);
	free(a);
}

/* Copies config[key] into *out (NULL when optional and absent). */
static int dup_field(const json_t *config, const char *key, int required, char **out,
		     struct hub_error *err)
{
	const char *s = NULL;

	if ((required ? hub_json_str(config, key, &s, "config", err)
		      : hub_json_str_opt(config, key, &s, "config", err)) < 0)
		return -1;
	if (s == NULL || (*s == '\0' && !required))
		return 0;
	if (*s == '\0')
		return hub_error_set(err, key, "config.%s: must not be empty", key);
	*out = strdup(s);
	if (*out == NULL)
		return hub_error_set(err, key, "out of memory");
	return 0;
}

/* Drops trailing slashes and checks the scheme. */
static int check_url(char *url, const char *key, struct hub_error *err)
{
	size_t n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
		return hub_error_set(err, key, "config.%s: must start with https:// (or http:// "
				     "for a local stand-in)", key);
	return 0;
}

/* Joins marketplace_ids with commas after checking each id. */
static int read_marketplaces(struct amz *a, const json_t *config, struct hub_error *err)
{
	json_t *ids = NULL, *v;
	size_t i, n, len = 0;

	if (hub_json_array(config, "marketplace_ids", &ids, "config", err) < 0)
		return -1;
	n = json_array_size(ids);
	if (n == 0 || n > 50)
		return hub_error_set(err, "marketplace_ids", "config.marketplace_ids: give 1 to "
				     "50 ids (found %zu)", n);
	json_array_foreach(ids, i, v) {
		const char *s = json_string_value(v);

		if (s == NULL || *s == '\0' || strlen(s) > 20 ||
		    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != strlen(s))
			return hub_error_set(err, "marketplace_ids",
					     "config.marketplace_ids[%zu]: expected an id like "
					     "ATVPDKIKX0DER", i);
		len += strlen(s) + 1;
	}
	a->marketplaces = calloc(1, len);
	a->first_marketplace = strdup(json_string_value(json_array_get(ids, 0)));
	if (a->marketplaces == NULL || a->first_marketplace == NULL)
		return hub_error_set(err, "marketplace_ids", "out of memory");
	len = 0;
	json_array_foreach(ids, i, v) {
		size_t k = strlen(json_string_value(v));

		if (i > 0)
			a->marketplaces[len++] = ',';
		memcpy(a->marketplaces + len, json_string_value(v), k);
		len += k;
	}
	a->marketplaces[len] = '\0';
	return 0;
}

static int amz_create(const struct hub_host *host, struct hub_conn *conn,
		      const json_t *config, void **state, struct hub_error *err)
{
	struct amz *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	a->host = host;
	a->conn = conn;
	a->backfill_days = 30;
	if (dup_field(config, "api_base", 1, &a->api_base, err) < 0 ||
	    dup_field(config, "lwa_endpoint", 0, &a->lwa_endpoint, err) < 0 ||
	    dup_field(config, "refresh_token", 1, &a->refresh_token, err) < 0 ||
	    dup_field(config, "client_id", 1, &a->client_id, err) < 0 ||
	    dup_field(config, "client_secret", 1, &a->client_secret, err) < 0 ||
	    dup_field(config, "seller_id", 0, &a->seller_id, err) < 0 ||
	    hub_json_int_opt(config, "backfill_days", &a->backfill_days, "config", err) < 0 ||
	    read_marketplaces(a, config, err) < 0)
		goto invalid;
	if (a->lwa_endpoint == NULL && (a->lwa_endpoint = strdup("https://api.amazon.com")) == NULL) {
		hub_error_set(err, NULL, "out of memory");
		goto invalid;
	}
	if (check_url(a->api_base, "api_base", err) < 0 ||
	    check_url(a->lwa_endpoint, "lwa_endpoint", err) < 0)
		goto invalid;
	if (a->backfill_days < 1 || a->backfill_days > 730) {
		hub_error_set(err, "backfill_days", "config.backfill_days: must be 1 to 730");
		goto invalid;
	}
	*state = a;
	return HUB_OK;
invalid:
	amz_destroy(a);
	return HUB_INVALID;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "amazon",
	.version = "1.0.0",
	.description = "Amazon SP-API: orders (Orders API 2026-01-01), LWA token refresh, "
		       "shipment confirmation (Orders API v0)",
	.capabilities = HUB_CAP_ORDERS | HUB_CAP_TOKEN_REFRESH | HUB_CAP_FULFILLMENT_PUSH,
	.config_schema = config_schema,
	.streams = streams,
	.buckets = buckets,
	.tracking_batch_max = 0,
	.create = amz_create,
	.destroy = amz_destroy,
	.build_request = amz_build_request,
	.read_response = amz_read_response,
	.read_limits = amz_read_limits,
	.verify_webhook = NULL,
	.read_webhook = NULL,
	.build_action = amz_build_action,
	.read_action = amz_read_action,
};
