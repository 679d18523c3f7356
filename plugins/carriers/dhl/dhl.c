/*
 * dhl.c - the DHL carrier plugin (dhl.so): tracking through DHL Shipment
 * Tracking - Unified with an API key.
 *
 * Requests: GET {api_base}/track/shipments?trackingNumber=... with the
 * DHL-API-Key header, plus the optional service and language filters from
 * the config. One number per request.
 *
 * Responses: shipments[] (one per DHL business unit that knows the number);
 * each becomes a record (one shipment answers under the number asked).
 * events[].statusCode is DHL's own five-value vocabulary (pre-transit,
 * transit, delivered, failure, unknown). Not found is a 404
 * application/problem+json: a not_found record. There is no token: a 401
 * means the API key itself is refused.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>
#include <hub/sdk.h>

#include "../common/carrier.h"

#define DHL_DEFAULT_BASE "https://api-eu.dhl.com"

struct dhl {
	struct carrier_conn cc;
	char *service;  /* optional "service" filter (express, parcel-de, ...) */
	char *language; /* optional ISO 639-1 language of descriptions */
};

static const char dhl_config_schema[] =
	"{\"type\":\"object\","
	"\"required\":[\"api_key\"],"
	"\"properties\":{"
	"\"api_key\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true,"
	"\"description\":\"API key (consumer key) of the DHL developer app\"},"
	"\"api_base\":{\"type\":\"string\",\"pattern\":\"^https?://\","
	"\"default\":\"" DHL_DEFAULT_BASE "\","
	"\"description\":\"API root\"},"
	"\"service\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z-]*$\",\"maxLength\":32,"
	"\"description\":\"Restrict lookups to one DHL service (express, parcel-de, ecommerce, "
	"freight, ...) when numbers are ambiguous\"},"
	"\"language\":{\"type\":\"string\",\"pattern\":\"^[a-z]{2}$\","
	"\"description\":\"Language of event descriptions (ISO 639-1)\"}"
	"}}";

static const struct hub_stream_def dhl_streams[] = {
	{"tracking", 1u << HUB_RECORD_TRACKING, 3600, "track", {0}},
	{NULL, 0, 0, NULL, {0}},
};

/* Initial DHL service level: 250 calls per day, at most 1 per second. The
 * daily quota is the sustained rate; raise both in the config after a DHL
 * upgrade. */
static const struct hub_bucket_def dhl_buckets[] = {
	{"track", 1, 250.0 / 86400, {0}},
	{NULL, 0, 0, {0}},
};

static int dhl_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		      void **state, struct hub_error *err)
{
	struct dhl *d = calloc(1, sizeof(*d));
	int rc;

	*state = NULL;
	if (!d) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	rc = carrier_conn_init(&d->cc, host, conn, "dhl", "DHL", config, DHL_DEFAULT_BASE,
			       CARRIER_NEED_API_KEY, err);
	if (rc == HUB_OK)
		rc = carrier_conf_str(config, "service", 0, NULL, &d->service, err);
	if (rc == HUB_OK)
		rc = carrier_conf_str(config, "language", 0, NULL, &d->language, err);
	if (rc != HUB_OK) {
		carrier_conn_release(&d->cc);
		free(d->service);
		free(d->language);
		free(d);
		return rc;
	}
	*state = d;
	return HUB_OK;
}

static void dhl_destroy(void *state)
{
	struct dhl *d = state;

	if (!d)
		return;
	carrier_conn_release(&d->cc);
	free(d->service);
	free(d->language);
	free(d);
}

static int dhl_build_request(void *state, const char *stream, const json_t *cursor,
			     struct hub_msg *req, struct hub_error *err)
{
	struct dhl *d = state;
	const char *numbers[1];
	struct hub_url url;
	size_t n;
	int rc;

	if (strcmp(stream, "tracking") != 0) {
		hub_error_set(err, "stream", "DHL serves only the tracking stream, not '%s'", stream);
		return HUB_INVALID;
	}
	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	if (n == 0)
		return HUB_DONE;
	hub_url_init(&url, d->cc.api_base);
	hub_url_path(&url, "/track/shipments");
	hub_url_query(&url, "trackingNumber", numbers[0]);
	hub_url_query(&url, "service", d->service);
	hub_url_query(&url, "language", d->language);
	rc = carrier_request(&d->cc, req, "GET", hub_url_str(&url), "track", err);
	hub_url_release(&url);
	if (rc != HUB_OK)
		return rc;
	if (d->cc.host->msg_add_header(req, "DHL-API-Key", d->cc.api_key) != 0) {
		hub_error_set(err, NULL, "could not add the DHL-API-Key header");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* A status block or event: time, statusCode, texts, address. */
static int dhl_add_event(const struct dhl *d, struct carrier_record *rec, const json_t *ev,
			 const char *number, struct hub_error *err)
{
	const json_t *addr = carrier_jobj(carrier_jobj(ev, "location"), "address");
	const char *code = carrier_jstr(ev, "statusCode");
	const char *desc = carrier_jstr(ev, "description");
	const char *remark = carrier_jstr(ev, "remark");
	struct carrier_time t;
	struct carrier_loc loc = {NULL, NULL, NULL, NULL};
	enum carrier_status s;
	char text[1100];

	if (carrier_time_iso(carrier_jstr(ev, "timestamp"), &t) != 0) {
		carrier_log(&d->cc, HUB_LOG_WARN,
			    "DHL event of %.64s without a readable timestamp skipped", number);
		return HUB_OK;
	}
	s = carrier_map(&d->cc, &carrier_dhl_status_codes, "statusCode", code, number);
	if (!desc)
		desc = carrier_jstr(ev, "status");
	if (desc && remark && strcmp(desc, remark) != 0) {
		snprintf(text, sizeof(text), "%s - %s", desc, remark);
		desc = text;
	} else if (!desc) {
		desc = remark;
	}
	loc.city = carrier_jstr(addr, "addressLocality");
	loc.postal_code = carrier_jstr(addr, "postalCode");
	loc.country_code = carrier_jstr(addr, "countryCode");
	if (carrier_record_add_event(rec, carrier_event_new(&t, s, code, carrier_jstr(ev, "status"),
							    desc, &loc),
				     t.utc_ms, s) != 0) {
		hub_error_set(err, NULL, "out of memory building a DHL tracking event");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* The signer of a proof of delivery: name, else given + family name. */
static const char *dhl_signer(const json_t *signed_by, char *buf, size_t size)
{
	const char *name = carrier_jstr(signed_by, "name");
	const char *given = carrier_jstr(signed_by, "givenName");
	const char *family = carrier_jstr(signed_by, "familyName");

	if (name)
		return name;
	if (!given && !family)
		return NULL;
	snprintf(buf, size, "%s%s%s", given ? given : "", given && family ? " " : "",
		 family ? family : "");
	return buf;
}

static int dhl_emit_shipment(const struct dhl *d, const json_t *sh, const char *number,
			     struct hub_call *call, struct hub_error *err)
{
	const json_t *events = carrier_jarr(sh, "events");
	const json_t *details = carrier_jobj(sh, "details");
	const json_t *pod = carrier_jobj(details, "proofOfDelivery");
	const json_t *frame = carrier_jobj(sh, "estimatedDeliveryTimeFrame");
	const char *product = carrier_jstr(carrier_jobj(details, "product"), "productName");
	struct carrier_record rec;
	struct carrier_time t;
	char signer[300];
	size_t i;
	int rc;

	if (carrier_record_init(&rec, "dhl", number) != 0) {
		hub_error_set(err, NULL, "out of memory building a DHL tracking record");
		return HUB_FATAL;
	}
	for (i = 0; i < json_array_size(events); i++) {
		rc = dhl_add_event(d, &rec, json_array_get(events, i), number, err);
		if (rc != HUB_OK) {
			carrier_record_release(&rec);
			return rc;
		}
	}
	rc = carrier_record_set_str(&rec, "service", product ? product : carrier_jstr(sh, "service"));
	rc |= carrier_record_set_str(&rec, "signed_by",
				     dhl_signer(carrier_jobj(pod, "signed"), signer, sizeof(signer)));
	if (carrier_time_iso(carrier_jstr(sh, "estimatedTimeOfDelivery"), &t) == 0 ||
	    carrier_time_iso(carrier_jstr(frame, "estimatedThrough"), &t) == 0 ||
	    carrier_time_iso(carrier_jstr(frame, "estimatedFrom"), &t) == 0)
		rc |= carrier_record_set_time(&rec, "estimated_delivery_at", t.utc_ms);
	/* The proof of delivery time with its zone is exact; without one it is
	 * local time, less exact than a delivered event. */
	if (carrier_time_iso(carrier_jstr(pod, "timestamp"), &t) == 0 &&
	    (t.has_offset || !rec.have_delivered))
		rc |= carrier_record_set_time(&rec, "delivered_at", t.utc_ms);
	if (rc) {
		carrier_record_release(&rec);
		hub_error_set(err, NULL, "out of memory building a DHL tracking record");
		return HUB_FATAL;
	}
	return carrier_record_emit(&d->cc, call, &rec,
				   carrier_map(&d->cc, &carrier_dhl_status_codes, "statusCode",
					       carrier_jstr(carrier_jobj(sh, "status"), "statusCode"),
					       number),
				   err);
}

/* A shipment id: DHL sends a string, some examples a number. */
static const char *dhl_id(const json_t *sh, char *buf, size_t size)
{
	const json_t *id = json_object_get(sh, "id");

	if (json_is_string(id) && *json_string_value(id))
		return json_string_value(id);
	if (json_is_integer(id)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
		return buf;
	}
	return NULL;
}

/* 404 application/problem+json ({"title", "status": 404, "detail"}) is
 * DHL's "no result found"; another 404 (wrong api_base) is not. */
static int dhl_is_not_found(const struct dhl *d, const struct hub_msg *resp)
{
	size_t len = 0;
	const char *body = d->cc.host->msg_body(resp, &len);
	json_t *doc = hub_json_loadb(body, len, 0, NULL);
	int yes = json_integer_value(json_object_get(doc, "status")) == 404 ||
		  carrier_jstr(doc, "title") != NULL;

	json_decref(doc);
	return yes;
}

static int dhl_read_response(void *state, const char *stream, const json_t *cursor,
			     const struct hub_msg *resp, struct hub_call *call,
			     struct hub_error *err)
{
	struct dhl *d = state;
	const struct hub_host *h = d->cc.host;
	const char *numbers[1];
	const json_t *shipments;
	json_t *doc = NULL;
	int status = h->msg_status(resp);
	char ids[16][72], idbuf[72];
	size_t n, i, j, count, kept = 0;
	int rc;

	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	if (n == 0) {
		hub_error_set(err, "cursor.tracking_numbers", "no tracking number to read a response for");
		return HUB_INVALID;
	}
	h->set_more(call, 0);
	if (status == 404 && dhl_is_not_found(d, resp))
		return carrier_emit_not_found(&d->cc, call, numbers[0], err);
	if (status == 401 || status == 403) {
		struct hub_error detail;

		memset(&detail, 0, sizeof(detail));
		carrier_http_error(&d->cc, resp, "tracking request", &detail);
		hub_error_set(err, "api_key",
			      "DHL refused the API key: check api_key in the connector config and "
			      "that the app has Shipment Tracking - Unified (%s)", detail.message);
		if (err)
			err->upstream_status = status;
		return status == 401 ? HUB_AUTH_EXPIRED : HUB_FATAL;
	}
	if (status < 200 || status > 299)
		return carrier_http_error(&d->cc, resp, "tracking request", err);
	rc = carrier_parse_json(&d->cc, resp, "tracking", &doc, err);
	if (rc != HUB_OK)
		return rc;
	shipments = carrier_jarr(doc, "shipments");
	if (!shipments) {
		hub_error_set(err, "shipments", "missing from the DHL response");
		json_decref(doc);
		return HUB_INVALID;
	}
	count = json_array_size(shipments);
	if (count == 0)
		rc = carrier_emit_not_found(&d->cc, call, numbers[0], err);
	for (i = 0; rc == HUB_OK && i < count; i++) {
		const json_t *sh = json_array_get(shipments, i);
		const char *id = dhl_id(sh, idbuf, sizeof(idbuf));
		int dup = 0;

		/* One shipment answers the number asked (it may be a piece id);
		 * several are each their own, the first of a repeated id kept. */
		if (count == 1 || !id)
			id = numbers[0];
		for (j = 0; j < kept && !dup; j++)
			dup = strcmp(ids[j], id) == 0;
		if (dup)
			continue;
		if (kept < sizeof(ids) / sizeof(ids[0])) {
			snprintf(ids[kept], sizeof(ids[0]), "%s", id);
			kept++;
		}
		rc = dhl_emit_shipment(d, sh, id, call, err);
	}
	json_decref(doc);
	return rc;
}

static void dhl_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			    struct hub_call *call)
{
	struct dhl *d = state;

	carrier_read_limits(&d->cc, operation, resp, call);
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "dhl",
	.version = "1.0.0",
	.description = "DHL Shipment Tracking - Unified: tracking across DHL services with an API key",
	.capabilities = HUB_CAP_TRACKING,
	.config_schema = dhl_config_schema,
	.streams = dhl_streams,
	.buckets = dhl_buckets,
	.tracking_batch_max = 1,
	.create = dhl_create,
	.destroy = dhl_destroy,
	.build_request = dhl_build_request,
	.read_response = dhl_read_response,
	.read_limits = dhl_read_limits,
};
