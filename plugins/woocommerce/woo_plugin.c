/*
 * woo_plugin.c - the WooCommerce connector: descriptor, config, lifecycle.
 *
 * Exports `hub_plugin_v1`, the only visible symbol of woocommerce.so. One
 * stream, "orders", polls /wp-json/wc/v3/orders by modification time; the
 * order.* webhooks deliver the same orders sooner. The rate-limit bucket is
 * a default of our own: WooCommerce publishes no limit (shops are
 * self-hosted, often on small shared hosting where a page of 100 orders
 * takes a second or more to render), so the plugin asks for at most 1
 * request per second with a burst of 3. A connector overrides it under
 * "rate_limits" when its shop can take more.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

#include "woo.h"

static const char config_schema[] =
	"{"
	"\"type\":\"object\","
	"\"required\":[\"store_url\",\"consumer_key\",\"consumer_secret\"],"
	"\"additionalProperties\":false,"
	"\"properties\":{"
	"\"store_url\":{\"type\":\"string\",\"pattern\":\"^https?://[^/?#]+(/[^?#]*)?$\","
	"\"maxLength\":512,"
	"\"description\":\"the shop's WordPress home URL, e.g. https://shop.example; the "
	"REST API is under {store_url}/wp-json/wc/v3\"},"
	"\"consumer_key\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,"
	"\"description\":\"REST API consumer key (ck_...), Read access\"},"
	"\"consumer_secret\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,"
	"\"x-secret\":true,\"description\":\"REST API consumer secret (cs_...)\"},"
	"\"webhook_secret\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256,"
	"\"x-secret\":true,\"description\":\"secret of the order.* webhooks\"},"
	"\"auth\":{\"type\":\"string\",\"enum\":[\"basic\",\"oauth1\"],"
	"\"description\":\"basic (HTTPS only) or oauth1 (plain HTTP only); defaults from the "
	"store_url scheme\"},"
	"\"rate_limits\":{\"type\":\"object\",\"description\":\"per-bucket overrides of "
	"burst and rate\"}"
	"}"
	"}";

static const struct hub_stream_def streams[] = {
	{WOO_STREAM_ORDERS, 1u << HUB_RECORD_ORDER, 300, WOO_BUCKET_ORDERS, {0}},
	{NULL, 0, 0, NULL, {0}},
};

static const struct hub_bucket_def buckets[] = {
	{WOO_BUCKET_ORDERS, 3.0, 1.0, {0}},
	{NULL, 0, 0, {0}},
};

/* Frees an instance, wiping the secrets it held. */
static void woo_destroy(void *state)
{
	struct woo *w = state;

	if (w == NULL)
		return;
	free(w->store_url);
	free(w->consumer_key);
	if (w->consumer_secret != NULL) {
		memset(w->consumer_secret, 0, strlen(w->consumer_secret));
		free(w->consumer_secret);
	}
	if (w->webhook_secret != NULL) {
		memset(w->webhook_secret, 0, strlen(w->webhook_secret));
		free(w->webhook_secret);
	}
	free(w);
}

/* Copies config[key] (a non-empty string) into *out; optional fields that
 * are absent leave *out NULL. Returns 0 or -1 with err set. */
static int dup_field(const json_t *config, const char *key, int required, char **out,
		     struct hub_error *err)
{
	const char *s = NULL;

	if ((required ? hub_json_str(config, key, &s, "config", err)
		      : hub_json_str_opt(config, key, &s, "config", err)) < 0)
		return -1;
	if (s == NULL)
		return 0;
	if (*s == '\0') {
		if (!required)
			return 0;
		return hub_error_set(err, key, "config.%s: must not be empty", key);
	}
	*out = strdup(s);
	if (*out == NULL)
		return hub_error_set(err, key, "out of memory");
	return 0;
}

/* create callback: reads the config, checks that the authentication method
 * fits the URL scheme. Returns HUB_OK or HUB_INVALID with err. */
static int woo_create(const struct hub_host *host, struct hub_conn *conn,
		      const json_t *config, void **state, struct hub_error *err)
{
	struct woo *w = calloc(1, sizeof(*w));
	const char *auth = NULL;
	size_t n;
	int https;

	if (w == NULL) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	w->host = host;
	w->conn = conn;
	if (dup_field(config, "store_url", 1, &w->store_url, err) < 0 ||
	    dup_field(config, "consumer_key", 1, &w->consumer_key, err) < 0 ||
	    dup_field(config, "consumer_secret", 1, &w->consumer_secret, err) < 0 ||
	    dup_field(config, "webhook_secret", 0, &w->webhook_secret, err) < 0 ||
	    hub_json_str_opt(config, "auth", &auth, "config", err) < 0)
		goto invalid;

	n = strlen(w->store_url);
	while (n > 0 && w->store_url[n - 1] == '/')
		w->store_url[--n] = '\0';
	if (strncasecmp(w->store_url, "https://", 8) == 0) {
		https = 1;
	} else if (strncasecmp(w->store_url, "http://", 7) == 0) {
		https = 0;
	} else {
		hub_error_set(err, "store_url", "config.store_url: must start with https:// or "
			      "http://");
		goto invalid;
	}
	if (auth == NULL)
		w->auth = https ? WOO_AUTH_BASIC : WOO_AUTH_OAUTH1;
	else if (strcmp(auth, "basic") == 0)
		w->auth = WOO_AUTH_BASIC;
	else if (strcmp(auth, "oauth1") == 0)
		w->auth = WOO_AUTH_OAUTH1;
	else {
		hub_error_set(err, "auth", "config.auth: \"%s\" is neither basic nor oauth1", auth);
		goto invalid;
	}
	if (w->auth == WOO_AUTH_BASIC && !https) {
		hub_error_set(err, "auth", "config.auth: basic would send the consumer secret in "
			      "clear over http://; use an https:// store_url or auth=oauth1");
		goto invalid;
	}
	if (w->auth == WOO_AUTH_OAUTH1 && https) {
		hub_error_set(err, "auth", "config.auth: WooCommerce checks OAuth 1.0a only over "
			      "plain http; use auth=basic with an https:// store_url");
		goto invalid;
	}
	*state = w;
	return HUB_OK;
invalid:
	woo_destroy(w);
	return HUB_INVALID;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "woocommerce",
	.version = "1.0.0",
	.description = "WooCommerce REST v3 orders (polling by modification time) and "
		       "order webhooks",
	/* verify/read only read the instance (woo_webhook.c): safe on workers */
	.capabilities = HUB_CAP_ORDERS | HUB_CAP_WEBHOOKS | HUB_CAP_WEBHOOKS_REENTRANT |
			HUB_CAP_WEBHOOKS_SCOPED,
	.config_schema = config_schema,
	.streams = streams,
	.buckets = buckets,
	.tracking_batch_max = 0,
	.create = woo_create,
	.destroy = woo_destroy,
	.build_request = woo_build_request,
	.read_response = woo_read_response,
	.read_limits = woo_read_limits,
	.verify_webhook = woo_verify_webhook,
	.read_webhook = woo_read_webhook,
	.build_action = NULL,
	.read_action = NULL,
};
