/*
 * plugin.c - the Shopify connector's descriptor and configuration.
 *
 * Declares what shopify.so offers the host (ABI v1): one "orders" stream
 * over the Admin REST API, webhooks, and the fulfillment push actions, all
 * drawing from one leaky bucket, "rest" (40 requests, 2 per second on
 * standard plans; a connector's config may raise it for larger plans). It
 * also turns a validated config into a connector instance.
 *
 * Why there is no "fulfillments" stream: the REST Admin API has no list of
 * fulfillments across orders (only per order, per fulfillment order, or one
 * by id), and an order's updated_at moves whenever one of its fulfillments
 * is created, updated or cancelled. The orders list embeds every order's
 * fulfillments, so the "orders" stream emits shipments from those embedded
 * arrays (record kinds order and shipment); a second stream would re-read
 * the same orders and halve the throughput left for the first.
 * fulfillments/create and fulfillments/update webhooks bring changes sooner.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "shopify.h"

/* JSON Schema of a connector's config. Secrets carry "x-secret". */
static const char config_schema[] =
	"{"
	"\"type\":\"object\","
	"\"additionalProperties\":false,"
	"\"required\":[\"shop\",\"access_token\"],"
	"\"properties\":{"
	"\"shop\":{\"type\":\"string\",\"maxLength\":255,"
	"\"pattern\":\"^[a-z0-9][a-z0-9-]*\\\\.myshopify\\\\.com$\"},"
	"\"access_token\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1024,"
	"\"x-secret\":true},"
	"\"webhook_secret\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":1024,"
	"\"x-secret\":true},"
	"\"api_version\":{\"type\":\"string\",\"default\":\"" SHOPIFY_DEFAULT_API_VERSION "\","
	"\"pattern\":\"^([0-9]{4}-(01|04|07|10)|unstable)$\"},"
	"\"api_base\":{\"type\":\"string\",\"maxLength\":512,"
	"\"pattern\":\"^https?://[^/?#]+(/[^?#]*)?$\"},"
	"\"poll_interval\":{\"type\":\"integer\",\"minimum\":5,\"maximum\":86400,\"default\":60},"
	"\"rate_limits\":{\"type\":\"object\",\"additionalProperties\":false,"
	"\"properties\":{\"" SHOPIFY_BUCKET "\":{\"type\":\"object\",\"additionalProperties\":false,"
	"\"properties\":{"
	"\"burst\":{\"type\":\"number\",\"minimum\":1,\"maximum\":100000},"
	"\"rate\":{\"type\":\"number\",\"minimum\":0.01,\"maximum\":10000}"
	"}}}}"
	"}"
	"}";

static const struct hub_stream_def streams[] = {
	{
		.name = "orders",
		.record_kinds = (1u << HUB_RECORD_ORDER) | (1u << HUB_RECORD_SHIPMENT),
		.default_interval_s = 60,
		.operation = SHOPIFY_BUCKET,
	},
	{.name = NULL},
};

static const struct hub_bucket_def buckets[] = {
	{.name = SHOPIFY_BUCKET, .burst = SHOPIFY_DEFAULT_BURST, .rate = SHOPIFY_DEFAULT_RATE},
	{.name = NULL},
};

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void shopify_destroy(void *state)
{
	struct shopify *s = state;

	if (s == NULL)
		return;
	free(s->shop);
	free(s->api_version);
	free(s->api_base);
	free_secret(s->access_token);
	free_secret(s->webhook_secret);
	free(s);
}

/* A copy of config[key], or of the host's secret of that name, or NULL. */
static int secret_copy(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		       const char *key, char **out, struct hub_error *err)
{
	const char *v = NULL;

	*out = NULL;
	if (hub_json_str_opt(config, key, &v, "config", err) < 0)
		return -1;
	if ((v == NULL || v[0] == '\0') && host->secret != NULL)
		v = host->secret(conn, key);
	if (v == NULL || v[0] == '\0')
		return 0;
	*out = strdup(v);
	return *out != NULL ? 0 : hub_error_set(err, key, "out of memory");
}

/* Reads config.rate_limits.rest, when present, over the defaults. */
static int read_rate_limits(struct shopify *s, const json_t *config, struct hub_error *err)
{
	json_t *rl = NULL, *bucket = NULL, *v;

	s->burst = SHOPIFY_DEFAULT_BURST;
	s->rate = SHOPIFY_DEFAULT_RATE;
	if (hub_json_object_opt(config, "rate_limits", &rl, "config", err) < 0)
		return -1;
	if (rl == NULL)
		return 0;
	if (hub_json_object_opt(rl, SHOPIFY_BUCKET, &bucket, "config.rate_limits", err) < 0)
		return -1;
	if (bucket == NULL)
		return 0;
	v = json_object_get(bucket, "burst");
	if (json_is_number(v) && json_number_value(v) >= 1)
		s->burst = json_number_value(v);
	v = json_object_get(bucket, "rate");
	if (json_is_number(v) && json_number_value(v) > 0) {
		s->rate = json_number_value(v);
		s->rate_overridden = 1;
	}
	return 0;
}

/* Whether shop looks like "name.myshopify.com" (the schema's pattern). */
static int shop_valid(const char *shop)
{
	static const char suffix[] = ".myshopify.com";
	size_t len = strlen(shop), n = len - (sizeof(suffix) - 1), i;

	if (len <= sizeof(suffix) - 1 || strcmp(shop + n, suffix) != 0)
		return 0;
	for (i = 0; i < n; i++) {
		char c = shop[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)))
			return 0;
	}
	return 1;
}

static int shopify_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
			  void **state, struct hub_error *err)
{
	struct shopify *s;
	const char *shop = NULL, *version = SHOPIFY_DEFAULT_API_VERSION, *base = NULL;
	size_t len;
	int rc = HUB_INVALID;

	*state = NULL;
	if (host == NULL || host->abi_version != HUB_ABI_VERSION) {
		hub_error_set(err, NULL, "host speaks another plugin ABI than v%u", HUB_ABI_VERSION);
		return HUB_FATAL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	s->host = host;
	s->conn = conn;
	if (hub_json_str(config, "shop", &shop, "config", err) < 0)
		goto out;
	if (!shop_valid(shop)) {
		hub_error_set(err, "config.shop",
			      "shop must be the shop's myshopify.com domain, e.g. acme.myshopify.com");
		goto out;
	}
	if (hub_json_str_opt(config, "api_version", &version, "config", err) < 0 ||
	    hub_json_str_opt(config, "api_base", &base, "config", err) < 0)
		goto out;
	s->shop = strdup(shop);
	s->api_version = strdup(version);
	if (base != NULL && base[0] != '\0') {
		if (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0) {
			hub_error_set(err, "config.api_base",
				      "api_base must be an absolute http(s) URL, e.g. https://%s",
				      shop);
			goto out;
		}
		s->api_base = strdup(base);
	} else {
		len = strlen(shop) + sizeof("https://");
		s->api_base = malloc(len);
		if (s->api_base != NULL)
			snprintf(s->api_base, len, "https://%s", shop);
	}
	if (s->shop == NULL || s->api_version == NULL || s->api_base == NULL) {
		hub_error_set(err, NULL, "out of memory");
		rc = HUB_FATAL;
		goto out;
	}
	len = strlen(s->api_base);
	while (len > 0 && s->api_base[len - 1] == '/')
		s->api_base[--len] = '\0';
	if (secret_copy(host, conn, config, "access_token", &s->access_token, err) < 0 ||
	    secret_copy(host, conn, config, "webhook_secret", &s->webhook_secret, err) < 0 ||
	    read_rate_limits(s, config, err) < 0)
		goto out;
	if (s->access_token == NULL) {
		hub_error_set(err, "config.access_token",
			      "access_token is required: the Admin API access token of the app "
			      "installed on %s", shop);
		goto out;
	}
	*state = s;
	s = NULL;
	rc = HUB_OK;
out:
	shopify_destroy(s);
	return rc;
}

const char *shopify_token(const struct shopify *s)
{
	const char *t = NULL;

	if (s->host->access_token != NULL)
		t = s->host->access_token(s->conn);
	if (t != NULL && t[0] != '\0')
		return t;
	return s->access_token;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "shopify",
	.version = PACKAGE_VERSION,
	.description = "Shopify Admin REST API: orders and fulfillments, webhooks, tracking push",
	/* verify/read only read the instance (webhook.c): safe on workers */
	.capabilities = HUB_CAP_ORDERS | HUB_CAP_SHIPMENTS | HUB_CAP_WEBHOOKS |
			HUB_CAP_FULFILLMENT_PUSH | HUB_CAP_WEBHOOKS_REENTRANT |
			HUB_CAP_WEBHOOKS_SCOPED,
	.config_schema = config_schema,
	.streams = streams,
	.buckets = buckets,
	.tracking_batch_max = 0,
	.create = shopify_create,
	.destroy = shopify_destroy,
	.build_request = shopify_build_request,
	.read_response = shopify_read_response,
	.read_limits = shopify_read_limits,
	.verify_webhook = shopify_verify_webhook,
	.read_webhook = shopify_read_webhook,
	.build_action = shopify_build_action,
	.read_action = shopify_read_action,
};
