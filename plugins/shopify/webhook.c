/*
 * webhook.c - Shopify webhook deliveries: authenticity and topics.
 *
 * A delivery is authentic when its Hmac-Sha256 header is the base64
 * HMAC-SHA256 of the raw body under the app's client secret (the connector's
 * webhook_secret), compared in constant time. Like Shopify's own libraries
 * we require the topic, shop domain, API version and webhook id headers too,
 * and read them either all with the legacy "X-Shopify-" prefix or all
 * without it ("Shopify-", sent by newer deliveries, which may also carry
 * the prefixed copies: the unprefixed set wins when its signature header is
 * present). Since one app secret signs the deliveries of every shop the app
 * is installed on, the shop domain must also be this connector's shop.
 *
 * The delivery id (Webhook-Id, or Event-Id on unprefixed event deliveries)
 * is what the host deduplicates on; ordering is the store's business (it
 * keeps the newest updated_at), so each record carries the updated_at of
 * the resource it came from. Verification and reading never change the
 * instance.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

#include "shopify.h"

/* The header names of one delivery style. */
struct names {
	const char *hmac, *topic, *domain, *version, *id, *alt_id;
};

static const struct names prefixed = {
	"X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain",
	"X-Shopify-API-Version", "X-Shopify-Webhook-Id", NULL,
};

static const struct names unprefixed = {
	"Shopify-Hmac-Sha256", "Shopify-Topic", "Shopify-Shop-Domain",
	"Shopify-API-Version", "Shopify-Webhook-Id", "Shopify-Event-Id",
};

/* The header set a delivery uses. */
static const struct names *delivery_names(const struct shopify *s, const struct hub_msg *msg)
{
	return s->host->msg_header(msg, unprefixed.hmac) != NULL ? &unprefixed : &prefixed;
}

/* A header's value, or NULL when absent or empty. */
static const char *header(const struct shopify *s, const struct hub_msg *msg, const char *name)
{
	const char *v;

	if (name == NULL)
		return NULL;
	v = s->host->msg_header(msg, name);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The delivery id: Webhook-Id, or Event-Id when only that is sent. */
static const char *delivery_id(const struct shopify *s, const struct hub_msg *msg,
			       const struct names *n)
{
	const char *id = header(s, msg, n->id);

	return id != NULL ? id : header(s, msg, n->alt_id);
}

int shopify_verify_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			   struct hub_error *err)
{
	struct shopify *s = state;
	const struct names *n = delivery_names(s, webhook);
	const char *sig, *topic, *domain, *id;
	const char *body;
	size_t len = 0;

	if (s->webhook_secret == NULL) {
		hub_error_set(err, "config.webhook_secret",
			      "webhook_secret is not set: put the app's client secret in the "
			      "connector's config to accept Shopify webhooks");
		return HUB_UNAUTHORIZED;
	}
	sig = header(s, webhook, n->hmac);
	if (sig == NULL) {
		hub_error_set(err, "header X-Shopify-Hmac-Sha256",
			      "the delivery has no %s header: it was not sent by Shopify", n->hmac);
		return HUB_UNAUTHORIZED;
	}
	body = s->host->msg_body(webhook, &len);
	if (hub_hmac_verify_base64(s->webhook_secret, body, len, sig) != 1) {
		hub_error_set(err, "header X-Shopify-Hmac-Sha256",
			      "%s does not match the body: wrong webhook_secret (it is the app's "
			      "client secret), or the body was altered", n->hmac);
		return HUB_UNAUTHORIZED;
	}
	topic = header(s, webhook, n->topic);
	domain = header(s, webhook, n->domain);
	id = delivery_id(s, webhook, n);
	if (topic == NULL || domain == NULL || header(s, webhook, n->version) == NULL ||
	    id == NULL) {
		const char *missing = topic == NULL ? n->topic
				      : domain == NULL ? n->domain
				      : id == NULL ? n->id : n->version;
		char field[64];

		snprintf(field, sizeof(field), "header %s", missing);
		hub_error_set(err, field, "the delivery lacks the %s header Shopify always sends",
			      missing);
		return HUB_UNAUTHORIZED;
	}
	if (strcasecmp(domain, s->shop) != 0) {
		char field[64];

		snprintf(field, sizeof(field), "header %s", n->domain);
		hub_error_set(err, field, "the delivery is for shop %.100s, this connector is %s",
			      domain, s->shop);
		return HUB_UNAUTHORIZED;
	}
	s->host->set_delivery_id(call, id);
	s->host->set_topic(call, topic);
	return HUB_OK;
}

/* The resource of a payload: webhooks send it bare, API responses (and some
 * recorded payloads) wrap it as {"order": {...}}. Borrowed. */
static const json_t *unwrap(const json_t *body, const char *key)
{
	const json_t *inner = json_object_get(body, key);

	if (json_object_get(body, "id") == NULL && json_is_object(inner))
		return inner;
	return body;
}

static int is_order_topic(const char *topic)
{
	static const char *const topics[] = {
		"orders/create", "orders/updated", "orders/cancelled", "orders/paid",
		"orders/fulfilled", "orders/partially_fulfilled", NULL,
	};
	size_t i;

	for (i = 0; topics[i] != NULL; i++)
		if (strcmp(topic, topics[i]) == 0)
			return 1;
	return 0;
}

int shopify_read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			 struct hub_error *err)
{
	struct shopify *s = state;
	const struct names *n = delivery_names(s, webhook);
	const char *topic = header(s, webhook, n->topic);
	const char *id = delivery_id(s, webhook, n);
	const char *body;
	size_t len = 0;
	json_t *doc, *ship;
	json_error_t jerr;
	int order, rc = HUB_OK;

	if (topic == NULL) {
		hub_error_set(err, "header X-Shopify-Topic", "the delivery has no %s header",
			      n->topic);
		return HUB_INVALID;
	}
	s->host->set_topic(call, topic);
	if (id != NULL)
		s->host->set_delivery_id(call, id);
	order = is_order_topic(topic);
	if (!order && strcmp(topic, "fulfillments/create") != 0 &&
	    strcmp(topic, "fulfillments/update") != 0)
		return HUB_IGNORED;

	body = s->host->msg_body(webhook, &len);
	doc = hub_json_loadb(body, len, 0, &jerr);
	if (doc == NULL) {
		hub_error_set(err, "body", "the %s payload is malformed JSON at line %d column "
			      "%d: %s", topic, jerr.line, jerr.column, jerr.text);
		return HUB_INVALID;
	}
	if (!json_is_object(doc)) {
		hub_error_set(err, "body", "the %s payload is not a JSON object", topic);
		json_decref(doc);
		return HUB_INVALID;
	}
	if (order) {
		if (shopify_emit_order(s, call, unwrap(doc, "order"), NULL, err) < 0)
			rc = HUB_INVALID;
	} else if (shopify_map_fulfillment(unwrap(doc, "fulfillment"), NULL, &ship, err) < 0) {
		rc = HUB_INVALID;
	} else if (s->host->emit(call, HUB_RECORD_SHIPMENT, ship) < 0) {
		hub_error_set(err, "fulfillment", "the host refused a shipment record");
		rc = HUB_INVALID;
	}
	json_decref(doc);
	return rc;
}
