/*
 * woo_webhook.c - WooCommerce webhook deliveries: signature and records.
 *
 * WooCommerce signs each delivery with X-WC-Webhook-Signature, the base64
 * HMAC-SHA256 of the raw body under the webhook's secret, and names it with
 * X-WC-Webhook-Topic ("order.updated") and X-WC-Webhook-Delivery-ID. When a
 * webhook is saved it first POSTs an unsigned ping whose form body is
 * "webhook_id=N"; WooCommerce refuses to save a webhook whose URL does not
 * answer it with 2xx, so exactly that shape is accepted without signature
 * and then ignored. Neither callback changes instance state.
 */
#include "config.h"

#include <string.h>

#include <hub/sdk.h>

#include "woo.h"

#define SIG_HEADER "X-WC-Webhook-Signature"
#define TOPIC_HEADER "X-WC-Webhook-Topic"
#define DELIVERY_HEADER "X-WC-Webhook-Delivery-ID"

/* Whether body is exactly "webhook_id=<1-20 digits>". */
static int is_ping(const char *body, size_t len)
{
	static const char prefix[] = "webhook_id=";
	size_t plen = sizeof(prefix) - 1;

	if (len <= plen || len > plen + 20 || memcmp(body, prefix, plen) != 0)
		return 0;
	for (size_t i = plen; i < len; i++)
		if (body[i] < '0' || body[i] > '9')
			return 0;
	return 1;
}

int woo_verify_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
		       struct hub_error *err)
{
	const struct woo *w = state;
	const struct hub_host *host = w->host;
	const char *sig = host->msg_header(webhook, SIG_HEADER);
	const char *topic, *delivery;
	size_t len = 0;
	const char *body = host->msg_body(webhook, &len);

	if (sig == NULL || *sig == '\0') {
		if (is_ping(body, len)) {
			host->set_topic(call, "ping");
			return HUB_OK;
		}
		hub_error_set(err, "header " SIG_HEADER,
			      "missing " SIG_HEADER " (and the body is not WooCommerce's "
			      "webhook_id=N ping)");
		return HUB_UNAUTHORIZED;
	}
	if (w->webhook_secret == NULL) {
		hub_error_set(err, "config.webhook_secret",
			      "webhook_secret is not configured: set it to the secret shown in "
			      "WooCommerce > Settings > Advanced > Webhooks");
		return HUB_UNAUTHORIZED;
	}
	if (!hub_hmac_verify_base64(w->webhook_secret, body, len, sig)) {
		hub_error_set(err, "header " SIG_HEADER,
			      SIG_HEADER " does not match the body: check webhook_secret");
		return HUB_UNAUTHORIZED;
	}
	delivery = host->msg_header(webhook, DELIVERY_HEADER);
	if (delivery != NULL && *delivery != '\0')
		host->set_delivery_id(call, delivery);
	topic = host->msg_header(webhook, TOPIC_HEADER);
	if (topic != NULL && *topic != '\0')
		host->set_topic(call, topic);
	return HUB_OK;
}

int woo_read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
		     struct hub_error *err)
{
	const struct woo *w = state;
	const struct hub_host *host = w->host;
	const char *sig = host->msg_header(webhook, SIG_HEADER);
	const char *topic = host->msg_header(webhook, TOPIC_HEADER);
	const char *body;
	size_t len = 0;
	json_t *doc, *rec;
	json_error_t jerr;

	if (sig == NULL || *sig == '\0')
		return HUB_IGNORED; /* the verified ping */
	if (topic == NULL || *topic == '\0') {
		hub_error_set(err, "header " TOPIC_HEADER, "missing " TOPIC_HEADER);
		return HUB_INVALID;
	}
	/* order.deleted carries only {"id":N}: nothing a record can hold. */
	if (strcmp(topic, "order.created") != 0 && strcmp(topic, "order.updated") != 0 &&
	    strcmp(topic, "order.restored") != 0)
		return HUB_IGNORED;

	body = host->msg_body(webhook, &len);
	doc = hub_json_loadb(body, len, 0, &jerr);
	if (doc == NULL) {
		hub_error_set(err, "body", "%s body is not JSON (%s at byte %d)", topic, jerr.text,
			      jerr.position);
		return HUB_INVALID;
	}
	rec = woo_map_order(doc, "order", NULL, err);
	json_decref(doc);
	if (rec == NULL)
		return HUB_INVALID;
	if (host->emit(call, HUB_RECORD_ORDER, rec) < 0) {
		hub_error_set(err, "order", "the host refused the order record");
		return HUB_FATAL;
	}
	return HUB_OK;
}
