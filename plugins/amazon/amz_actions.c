/*
 * amz_actions.c - the connector's actions: "refresh_token" and
 * "push_tracking".
 *
 * refresh_token: POST {lwa_endpoint}/auth/o2/token, form-encoded
 * grant_type=refresh_token, refresh_token, client_id, client_secret. The
 * answer's access_token (valid expires_in seconds, 3600 by default) goes
 * to the host, which stores it encrypted and hands it back through
 * host->access_token() for the x-amz-access-token header.
 *
 * push_tracking: the payload is a canonical shipment (sdk/schema/
 * shipment.json) - order_external_id, carrier, carrier_name, service,
 * tracking_numbers (the first is confirmed), shipped_at and lines
 * (line_external_id = Amazon orderItemId, quantity) - optionally with
 * "marketplace_id" (default: the first configured marketplace) and
 * "package_reference_id" (default: a positive number derived from the
 * tracking number, so a retried confirmation edits the same package instead
 * of adding one). It becomes POST /orders/v0/orders/{orderId}/
 * shipmentConfirmation with {marketplaceId, packageDetail{packageReferenceId,
 * carrierCode, carrierName, shippingMethod, trackingNumber, shipDate,
 * orderItems[{orderItemId, quantity}]}}; 204 means confirmed.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "amz.h"

#define NO_TIME INT64_MIN

/* ---- refresh_token ---------------------------------------------------- */

/* Appends "&k=v" (or "k=v" first) form-encoded to the URL buffer. */
static void form_add(struct hub_url *form, const char *key, const char *value)
{
	char *k = hub_url_escape(key), *v = hub_url_escape(value);

	if (k == NULL || v == NULL) {
		form->failed = 1;
	} else {
		if (form->len > 0)
			hub_url_path(form, "&");
		hub_url_path(form, k);
		hub_url_path(form, "=");
		hub_url_path(form, v);
	}
	if (v != NULL) {
		memset(v, 0, strlen(v));
		free(v);
	}
	free(k);
}

static int build_refresh(struct amz *a, struct hub_msg *req, struct hub_error *err)
{
	const struct hub_host *host = a->host;
	struct hub_url form, url;
	int rc = HUB_FATAL;

	hub_url_init(&form, "");
	hub_url_init(&url, a->lwa_endpoint);
	hub_url_path(&url, "/auth/o2/token");
	form_add(&form, "grant_type", "refresh_token");
	form_add(&form, "refresh_token", a->refresh_token);
	form_add(&form, "client_id", a->client_id);
	form_add(&form, "client_secret", a->client_secret);
	if (hub_url_str(&form) == NULL || hub_url_str(&url) == NULL) {
		hub_error_set(err, NULL, "out of memory while building the token request");
		goto out;
	}
	if (host->msg_set_request(req, "POST", hub_url_str(&url)) < 0 ||
	    host->msg_add_header(req, "Content-Type",
				 "application/x-www-form-urlencoded;charset=UTF-8") < 0 ||
	    host->msg_add_header(req, "Accept", "application/json") < 0 ||
	    host->msg_set_body(req, hub_url_str(&form), form.len) < 0 ||
	    host->msg_set_operation(req, AMZ_BUCKET_LWA) < 0) {
		hub_error_set(err, NULL, "the host refused the request being built");
		goto out;
	}
	rc = HUB_OK;
out:
	if (form.buf != NULL)
		memset(form.buf, 0, form.len);
	hub_url_release(&form);
	hub_url_release(&url);
	return rc;
}

static int read_refresh(struct amz *a, const struct hub_msg *resp, struct hub_call *call,
			struct hub_error *err)
{
	const struct hub_host *host = a->host;
	int status = host->msg_status(resp);
	size_t len = 0;
	const char *body = host->msg_body(resp, &len), *token = NULL;
	json_t *doc = hub_json_loadb(body, len, 0, NULL);
	int64_t expires_in = 3600;
	int rc = HUB_FATAL;

	if (status != 200) {
		/* LWA errors: {"error":"invalid_grant","error_description":"..."}. */
		const char *code = json_string_value(json_object_get(doc, "error"));
		const char *desc = json_string_value(json_object_get(doc, "error_description"));

		if (status == 408 || status == 429 || status >= 500) {
			hub_error_set(err, "status", "Login with Amazon answered %d %s: will retry",
				      status, code != NULL ? code : "");
			rc = HUB_RETRY;
		} else {
			hub_error_set(err, "status", "Login with Amazon refused the refresh token "
				      "(%d %s%s%s): check client_id and client_secret, or have the "
				      "seller authorize the app again for a new refresh_token", status,
				      code != NULL ? code : "", desc != NULL ? ": " : "",
				      desc != NULL ? desc : "");
			rc = HUB_FATAL;
		}
		if (err != NULL)
			err->upstream_status = status;
		goto out;
	}
	if (doc == NULL) {
		hub_error_set(err, "body", "token response is not JSON: will retry");
		rc = HUB_RETRY;
		goto out;
	}
	if (hub_json_str(doc, "access_token", &token, NULL, err) < 0 ||
	    hub_json_int_opt(doc, "expires_in", &expires_in, NULL, err) < 0) {
		rc = HUB_INVALID;
		goto out;
	}
	if (*token == '\0' || expires_in <= 0 || expires_in > 86400 * 366) {
		hub_error_set(err, *token == '\0' ? "access_token" : "expires_in",
			      "token response has an empty token or an unusable lifetime");
		rc = HUB_INVALID;
		goto out;
	}
	host->set_access_token(call, token, host->now_ms() + expires_in * 1000);
	rc = HUB_OK;
out:
	json_decref(doc);
	return rc;
}

/* ---- push_tracking -------------------------------------------------- */

/* Amazon's CarrierCode for a canonical carrier code, or NULL for "Other". */
static const char *carrier_code(const char *carrier)
{
	static const struct {
		const char *hub, *amazon;
	} known[] = {
		{"ups", "UPS"}, {"usps", "USPS"}, {"fedex", "FedEx"}, {"dhl", "DHL"},
	};

	for (size_t i = 0; carrier != NULL && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(carrier, known[i].hub) == 0)
			return known[i].amazon;
	return NULL;
}

/* A positive decimal package reference derived from the tracking number
 * (32-bit FNV-1a), stable across retries. */
static void derive_package_ref(const char *tracking, char *buf, size_t size)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)tracking; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	snprintf(buf, size, "%lu", (unsigned long)(h == 0 ? 1 : h));
}

/* Builds the confirmShipment body from the payload. Returns a new
 * reference and sets *order_id (borrowed from payload), or NULL with err. */
static json_t *confirm_body(struct amz *a, const json_t *payload, const char **order_id,
			    struct hub_error *err)
{
	const char *carrier = NULL, *carrier_name = NULL, *service = NULL, *tracking = NULL;
	const char *marketplace = NULL, *ref = NULL;
	json_t *numbers = NULL, *lines = NULL, *items = NULL, *detail = NULL, *body = NULL, *l;
	int64_t shipped = NO_TIME;
	char refbuf[24], date[32];
	size_t i;

	if (!json_is_object(payload)) {
		hub_error_set(err, "payload", "payload: expected a shipment object");
		return NULL;
	}
	if (hub_json_str(payload, "order_external_id", order_id, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "carrier", &carrier, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "carrier_name", &carrier_name, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "service", &service, "payload", err) < 0 ||
	    hub_json_array_opt(payload, "tracking_numbers", &numbers, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "tracking_number", &tracking, "payload", err) < 0 ||
	    hub_json_time_opt(payload, "shipped_at", 0, &shipped, "payload", err) < 0 ||
	    hub_json_array(payload, "lines", &lines, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "marketplace_id", &marketplace, "payload", err) < 0)
		return NULL;
	if (**order_id == '\0') {
		hub_error_set(err, "payload.order_external_id", "payload.order_external_id: empty");
		return NULL;
	}
	if (tracking == NULL)
		tracking = json_string_value(json_array_get(numbers, 0));
	if (tracking == NULL || *tracking == '\0') {
		hub_error_set(err, "payload.tracking_numbers",
			      "payload.tracking_numbers: no tracking number to confirm");
		return NULL;
	}
	if (json_array_size(lines) == 0) {
		hub_error_set(err, "payload.lines", "payload.lines: Amazon needs the order items "
			      "(line_external_id = orderItemId) and quantities shipped");
		return NULL;
	}
	{
		json_t *r = json_object_get(payload, "package_reference_id");

		if (json_is_integer(r) && json_integer_value(r) > 0) {
			snprintf(refbuf, sizeof(refbuf), "%lld", (long long)json_integer_value(r));
			ref = refbuf;
		} else if (json_is_string(r) && json_string_length(r) > 0 &&
			   strspn(json_string_value(r), "0123456789") == json_string_length(r)) {
			ref = json_string_value(r);
		} else if (r != NULL && !json_is_null(r)) {
			hub_error_set(err, "payload.package_reference_id",
				      "payload.package_reference_id: Amazon accepts only positive "
				      "numbers");
			return NULL;
		} else {
			derive_package_ref(tracking, refbuf, sizeof(refbuf));
			ref = refbuf;
		}
	}
	if (hub_time_format(shipped != NO_TIME ? shipped : a->host->now_ms(), date,
			    sizeof(date)) < 0) {
		hub_error_set(err, "payload.shipped_at", "payload.shipped_at: out of range");
		return NULL;
	}

	items = json_array();
	if (items == NULL)
		goto oom;
	json_array_foreach(lines, i, l) {
		char ctx[48];
		const char *item_id;
		int64_t qty;
		json_t *o;

		snprintf(ctx, sizeof(ctx), "payload.lines[%zu]", i);
		if (hub_json_str(l, "line_external_id", &item_id, ctx, err) < 0 ||
		    hub_json_int(l, "quantity", &qty, ctx, err) < 0)
			goto fail;
		if (qty <= 0) {
			hub_error_set(err, ctx, "%s.quantity: must be at least 1", ctx);
			goto fail;
		}
		o = json_pack("{s:s,s:I}", "orderItemId", item_id, "quantity", (json_int_t)qty);
		if (o == NULL || json_array_append_new(items, o) < 0)
			goto oom;
	}

	detail = json_object();
	if (detail == NULL ||
	    json_object_set_new(detail, "packageReferenceId", json_string(ref)) < 0)
		goto oom;
	if (carrier_code(carrier) != NULL) {
		if (json_object_set_new(detail, "carrierCode",
					json_string(carrier_code(carrier))) < 0)
			goto oom;
	} else {
		const char *name = carrier_name != NULL ? carrier_name : carrier;

		if (name == NULL || *name == '\0') {
			hub_error_set(err, "payload.carrier", "payload.carrier: Amazon requires a "
				      "carrier (code or name)");
			goto fail;
		}
		if (json_object_set_new(detail, "carrierCode", json_string("Other")) < 0 ||
		    json_object_set_new(detail, "carrierName", json_string(name)) < 0)
			goto oom;
	}
	if ((service != NULL && *service != '\0' &&
	     json_object_set_new(detail, "shippingMethod", json_string(service)) < 0) ||
	    json_object_set_new(detail, "trackingNumber", json_string(tracking)) < 0 ||
	    json_object_set_new(detail, "shipDate", json_string(date)) < 0 ||
	    json_object_set(detail, "orderItems", items) < 0)
		goto oom;
	body = json_object();
	if (body == NULL ||
	    json_object_set_new(body, "marketplaceId",
				json_string(marketplace != NULL ? marketplace
								: a->first_marketplace)) < 0 ||
	    json_object_set(body, "packageDetail", detail) < 0)
		goto oom;
	json_decref(items);
	json_decref(detail);
	return body;
oom:
	hub_error_set(err, "payload", "out of memory (or text that is not UTF-8)");
fail:
	json_decref(items);
	json_decref(detail);
	json_decref(body);
	return NULL;
}

static int build_push(struct amz *a, const json_t *payload, struct hub_msg *req,
		      struct hub_error *err)
{
	const struct hub_host *host = a->host;
	const char *token = host->access_token(a->conn), *order_id = NULL;
	json_t *body;
	char *text = NULL, date[20];
	struct hub_url url;
	int rc = HUB_INVALID;

	if (token == NULL || *token == '\0') {
		hub_error_set(err, "access_token", "no LWA access token yet: the refresh_token "
			      "action must run first");
		return HUB_AUTH_EXPIRED;
	}
	body = confirm_body(a, payload, &order_id, err);
	if (body == NULL)
		return HUB_INVALID;
	hub_url_init(&url, a->api_base);
	hub_url_path(&url, "/orders/v0/orders");
	hub_url_segment(&url, order_id);
	hub_url_path(&url, "/shipmentConfirmation");
	text = json_dumps(body, JSON_COMPACT);
	if (text == NULL || hub_url_str(&url) == NULL ||
	    amz_format_amz_date(host->now_ms(), date, sizeof(date)) < 0) {
		hub_error_set(err, NULL, "out of memory while building the request");
		rc = HUB_FATAL;
		goto out;
	}
	if (host->msg_set_request(req, "POST", hub_url_str(&url)) < 0 ||
	    host->msg_add_header(req, "x-amz-access-token", token) < 0 ||
	    host->msg_add_header(req, "x-amz-date", date) < 0 ||
	    host->msg_add_header(req, "Content-Type", "application/json") < 0 ||
	    host->msg_add_header(req, "Accept", "application/json") < 0 ||
	    host->msg_set_body(req, text, strlen(text)) < 0 ||
	    host->msg_set_operation(req, AMZ_BUCKET_CONFIRM) < 0) {
		hub_error_set(err, NULL, "the host refused the request being built");
		rc = HUB_FATAL;
		goto out;
	}
	rc = HUB_OK;
out:
	free(text);
	json_decref(body);
	hub_url_release(&url);
	return rc;
}

/* ---- callbacks ------------------------------------------------------ */

int amz_build_action(void *state, const char *action, const json_t *payload,
		     struct hub_msg *req, struct hub_error *err)
{
	struct amz *a = state;

	if (strcmp(action, AMZ_ACTION_REFRESH) == 0)
		return build_refresh(a, req, err);
	if (strcmp(action, AMZ_ACTION_PUSH) == 0)
		return build_push(a, payload, req, err);
	hub_error_set(err, "action", "action \"%s\" is not supported by amazon", action);
	return HUB_IGNORED;
}

int amz_read_action(void *state, const char *action, const json_t *payload,
		    const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct amz *a = state;
	int status;

	if (strcmp(action, AMZ_ACTION_REFRESH) == 0)
		return read_refresh(a, resp, call, err);
	if (strcmp(action, AMZ_ACTION_PUSH) != 0) {
		hub_error_set(err, "action", "action \"%s\" is not supported by amazon", action);
		return HUB_IGNORED;
	}
	status = a->host->msg_status(resp);
	if (status == 204 || status == 200)
		return HUB_OK;
	return amz_classify_status(a, resp, HUB_NOT_FOUND, "confirmShipment", err);
}
