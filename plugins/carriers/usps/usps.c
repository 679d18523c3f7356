/*
 * usps.c - the USPS carrier plugin (usps.so): tracking through the USPS
 * Tracking API v3 with OAuth 2.0 client credentials.
 *
 * Requests: GET {api_base}/tracking/v3/tracking/{trackingNumber}?expand=DETAIL
 * (DETAIL is what returns structured events; SUMMARY is free text only) with
 * the bearer token the host obtained through the "refresh_token" action
 * (POST {api_base}/oauth2/v3/token, form grant_type=client_credentials,
 * client_id, client_secret, scope=tracking). One number per request.
 *
 * Responses: a TrackingDetails object. trackingEvents[] (newest first) map
 * through the Publication 199 event code table; GMTTimestamp gives the exact
 * UTC time and GMTOffset the zone (eventTimestamp is local time). The record
 * falls back to statusCategory when the latest event's code is unlisted. A
 * 404 with USPS's error envelope is a not_found record.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>
#include <hub/sdk.h>

#include "../common/carrier.h"

#define USPS_DEFAULT_BASE "https://apis.usps.com"

struct usps {
	struct carrier_conn cc;
};

static const char usps_config_schema[] =
	"{\"type\":\"object\","
	"\"required\":[\"client_id\",\"client_secret\"],"
	"\"properties\":{"
	"\"client_id\":{\"type\":\"string\",\"minLength\":1,"
	"\"description\":\"Consumer key of the USPS developer app\"},"
	"\"client_secret\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true,"
	"\"description\":\"Consumer secret of the USPS developer app\"},"
	"\"api_base\":{\"type\":\"string\",\"pattern\":\"^https?://\","
	"\"default\":\"" USPS_DEFAULT_BASE "\","
	"\"description\":\"API root; https://apis-tem.usps.com for the USPS test environment\"}"
	"}}";

static const struct hub_stream_def usps_streams[] = {
	{"tracking", 1u << HUB_RECORD_TRACKING, 3600, "track", {0}},
	{NULL, 0, 0, NULL, {0}},
};

/* New USPS API apps start at 60 requests per hour (429 with Retry-After
 * beyond); raise it in the config once USPS grants more. */
static const struct hub_bucket_def usps_buckets[] = {
	{"track", 5, 60.0 / 3600, {0}},
	{"oauth", 2, 1.0 / 60, {0}},
	{NULL, 0, 0, {0}},
};

static int usps_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		       void **state, struct hub_error *err)
{
	struct usps *u = calloc(1, sizeof(*u));
	int rc;

	*state = NULL;
	if (!u) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	rc = carrier_conn_init(&u->cc, host, conn, "usps", "USPS", config, USPS_DEFAULT_BASE,
			       CARRIER_NEED_OAUTH, err);
	if (rc != HUB_OK) {
		carrier_conn_release(&u->cc);
		free(u);
		return rc;
	}
	*state = u;
	return HUB_OK;
}

static void usps_destroy(void *state)
{
	struct usps *u = state;

	if (!u)
		return;
	carrier_conn_release(&u->cc);
	free(u);
}

static int usps_build_request(void *state, const char *stream, const json_t *cursor,
			      struct hub_msg *req, struct hub_error *err)
{
	struct usps *u = state;
	const char *numbers[1];
	struct hub_url url;
	size_t n;
	int rc;

	if (strcmp(stream, "tracking") != 0) {
		hub_error_set(err, "stream", "USPS serves only the tracking stream, not '%s'", stream);
		return HUB_INVALID;
	}
	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	if (n == 0)
		return HUB_DONE;
	hub_url_init(&url, u->cc.api_base);
	hub_url_path(&url, "/tracking/v3/tracking");
	hub_url_segment(&url, numbers[0]);
	hub_url_query(&url, "expand", "DETAIL");
	rc = carrier_request(&u->cc, req, "GET", hub_url_str(&url), "track", err);
	hub_url_release(&url);
	if (rc != HUB_OK)
		return rc;
	return carrier_add_bearer(&u->cc, req, err);
}

/* The event time: GMTTimestamp (exact UTC) with GMTOffset as the zone; or
 * eventTimestamp, local, made exact by GMTOffset when it has no zone. */
static int usps_event_time(const json_t *ev, struct carrier_time *t)
{
	const char *gmt = carrier_jstr(ev, "GMTTimestamp");
	const char *local = carrier_jstr(ev, "eventTimestamp");
	int offset;
	int have_offset = carrier_offset_parse(carrier_jstr(ev, "GMTOffset"), &offset) == 0;

	if (gmt && carrier_time_iso(gmt, t) == 0 && t->has_offset) {
		t->has_offset = have_offset;
		t->offset_min = have_offset ? offset : 0;
		return 0;
	}
	if (carrier_time_iso(local, t) != 0)
		return -1;
	if (!t->has_offset && have_offset) {
		t->utc_ms -= (int64_t)offset * 60000;
		t->has_offset = 1;
		t->offset_min = offset;
	}
	return 0;
}

/* mailClass without the HTML USPS embeds ("USPS Ground Advantage<SUP>&#153;
 * </SUP>" -> "USPS Ground Advantage"): tags and character references are
 * dropped, surrounding blanks trimmed. */
static void usps_plain(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	if (!s)
		return;
	while (*s && o + 1 < size) {
		const char *end = NULL;

		if (*s == '<')
			end = strchr(s, '>');
		else if (*s == '&')
			end = strchr(s, ';');
		if (end && (*s == '<' || (size_t)(end - s) <= 10)) {
			s = end + 1;
			continue;
		}
		buf[o++] = *s++;
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
}

static int usps_emit(const struct usps *u, const json_t *doc, const char *number,
		     struct hub_call *call, struct hub_error *err)
{
	const json_t *events = carrier_jarr(doc, "trackingEvents");
	const char *signer = NULL;
	struct carrier_record rec;
	struct carrier_time t;
	char service[256];
	size_t i;
	int rc = 0;

	if (carrier_record_init(&rec, "usps", number) != 0) {
		hub_error_set(err, NULL, "out of memory building a USPS tracking record");
		return HUB_FATAL;
	}
	for (i = 0; i < json_array_size(events); i++) {
		const json_t *ev = json_array_get(events, i);
		const char *code = carrier_jstr(ev, "eventCode");
		struct carrier_loc loc;
		enum carrier_status s;

		if (usps_event_time(ev, &t) != 0) {
			carrier_log(&u->cc, HUB_LOG_WARN,
				    "USPS event of %.64s without a readable timestamp skipped", number);
			continue;
		}
		s = carrier_map(&u->cc, &carrier_usps_event_codes, "eventCode", code, number);
		if (s == CARRIER_DELIVERED && !signer)
			signer = carrier_jstr(ev, "name");
		loc.city = carrier_jstr(ev, "eventCity");
		loc.state = carrier_jstr(ev, "eventState");
		loc.postal_code = carrier_jstr(ev, "eventZIP");
		loc.country_code = carrier_jstr(ev, "eventCountry");
		if (carrier_record_add_event(&rec, carrier_event_new(&t, s, code, NULL,
								     carrier_jstr(ev, "eventType"),
								     &loc),
					     t.utc_ms, s) != 0) {
			carrier_record_release(&rec);
			hub_error_set(err, NULL, "out of memory building a USPS tracking event");
			return HUB_FATAL;
		}
	}
	usps_plain(carrier_jstr(doc, "mailClass"), service, sizeof(service));
	rc |= carrier_record_set_str(&rec, "service", service);
	rc |= carrier_record_set_str(&rec, "signed_by", signer);
	if (carrier_time_iso(carrier_jstr(doc, "expectedDeliveryTimeStamp"), &t) == 0 ||
	    carrier_time_iso(carrier_jstr(doc, "guaranteedDeliveryTimeStamp"), &t) == 0 ||
	    carrier_time_iso(carrier_jstr(doc, "predictedDeliveryDate"), &t) == 0)
		rc |= carrier_record_set_time(&rec, "estimated_delivery_at", t.utc_ms);
	if (rc) {
		carrier_record_release(&rec);
		hub_error_set(err, NULL, "out of memory building a USPS tracking record");
		return HUB_FATAL;
	}
	return carrier_record_emit(&u->cc, call, &rec,
				   carrier_map(&u->cc, &carrier_usps_categories, "statusCategory",
					       carrier_jstr(doc, "statusCategory"), number),
				   err);
}

/* A 404 with USPS's ErrorMessage envelope ({"error": {...}}) means the
 * number is unknown; another 404 (wrong api_base) is not. */
static int usps_is_not_found(const struct usps *u, const struct hub_msg *resp)
{
	size_t len = 0;
	const char *body = u->cc.host->msg_body(resp, &len);
	json_t *doc = hub_json_loadb(body, len, 0, NULL);
	int yes = carrier_jobj(doc, "error") != NULL;

	json_decref(doc);
	return yes;
}

static int usps_read_response(void *state, const char *stream, const json_t *cursor,
			      const struct hub_msg *resp, struct hub_call *call,
			      struct hub_error *err)
{
	struct usps *u = state;
	const struct hub_host *h = u->cc.host;
	const char *numbers[1];
	json_t *doc = NULL;
	int status = h->msg_status(resp);
	size_t n;
	int rc;

	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	if (n == 0) {
		hub_error_set(err, "cursor.tracking_numbers", "no tracking number to read a response for");
		return HUB_INVALID;
	}
	h->set_more(call, 0);
	if (status == 404 && usps_is_not_found(u, resp))
		return carrier_emit_not_found(&u->cc, call, numbers[0], err);
	if (status < 200 || status > 299)
		return carrier_http_error(&u->cc, resp, "tracking request", err);
	rc = carrier_parse_json(&u->cc, resp, "tracking", &doc, err);
	if (rc != HUB_OK)
		return rc;
	if (!json_is_object(doc)) {
		hub_error_set(err, "body", "the USPS response is not a TrackingDetails object");
		rc = HUB_INVALID;
	} else {
		rc = usps_emit(u, doc, numbers[0], call, err);
	}
	json_decref(doc);
	return rc;
}

static void usps_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			     struct hub_call *call)
{
	struct usps *u = state;

	carrier_read_limits(&u->cc, operation, resp, call);
}

static int usps_build_action(void *state, const char *action, const json_t *payload,
			     struct hub_msg *req, struct hub_error *err)
{
	struct usps *u = state;

	if (strcmp(action, "refresh_token") != 0)
		return HUB_IGNORED;
	return carrier_oauth_build(&u->cc, req, "/oauth2/v3/token", CARRIER_OAUTH_FORM,
				   "scope=tracking", err);
}

static int usps_read_action(void *state, const char *action, const json_t *payload,
			    const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct usps *u = state;

	if (strcmp(action, "refresh_token") != 0)
		return HUB_IGNORED;
	return carrier_oauth_read(&u->cc, resp, call, err);
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "usps",
	.version = "1.0.0",
	.description = "USPS Tracking API v3: package tracking with OAuth client credentials",
	.capabilities = HUB_CAP_TRACKING | HUB_CAP_TOKEN_REFRESH,
	.config_schema = usps_config_schema,
	.streams = usps_streams,
	.buckets = usps_buckets,
	.tracking_batch_max = 1,
	.create = usps_create,
	.destroy = usps_destroy,
	.build_request = usps_build_request,
	.read_response = usps_read_response,
	.read_limits = usps_read_limits,
	.build_action = usps_build_action,
	.read_action = usps_read_action,
};
