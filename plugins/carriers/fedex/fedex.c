/*
 * fedex.c - the FedEx carrier plugin (fedex.so): tracking through the FedEx
 * Track API with OAuth 2.0 client credentials.
 *
 * Requests: POST {api_base}/track/v1/trackingnumbers with up to 30 numbers
 * ({"includeDetailedScans": true, "trackingInfo": [{"trackingNumberInfo":
 * {"trackingNumber": ...}}]}) and the bearer token the host obtained through
 * the "refresh_token" action (POST {api_base}/oauth/token, form
 * grant_type=client_credentials&client_id=...&client_secret=...).
 *
 * Responses: output.completeTrackResults[] has one entry per number asked,
 * each with trackResults[]; every trackResult becomes a record (one result
 * answers under the number asked, several each under their own number). A
 * result whose error is TRACKING.TRACKINGNUMBER.NOTFOUND (or .INVALID)
 * becomes a not_found record. Scan events carry ISO times with offsets;
 * eventType maps through the FedEx Tracking Status Codes table, informational
 * or unlisted types falling back to the scan's derivedStatusCode (see
 * docs/carriers.md).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/plugin.h>
#include <hub/sdk.h>

#include "../common/carrier.h"

#define FEDEX_DEFAULT_BASE "https://apis.fedex.com"
#define FEDEX_BATCH_MAX 30

struct fedex {
	struct carrier_conn cc;
};

static const struct carrier_def fedex_def = {
	.carrier = "fedex",
	.label = "FedEx",
	.default_base = FEDEX_DEFAULT_BASE,
	.need = CARRIER_NEED_OAUTH,
	.token_path = "/oauth/token",
	.token_style = CARRIER_OAUTH_FORM,
};

static const char fedex_config_schema[] =
	"{\"type\":\"object\","
	"\"required\":[\"client_id\",\"client_secret\"],"
	"\"properties\":{"
	CARRIER_SCHEMA_OAUTH("API key (client ID) of the FedEx developer project",
			     "Secret key (client secret) of the FedEx developer project") ","
	CARRIER_SCHEMA_API_BASE(FEDEX_DEFAULT_BASE,
				"API root; https://apis-sandbox.fedex.com for the FedEx sandbox")
	"}}";

static const struct hub_stream_def fedex_streams[] = {
	{"tracking", 1u << HUB_RECORD_TRACKING, 1800, "track", {0}},
	{NULL, 0, 0, NULL, {0}},
};

/* FedEx: 1400 requests per 10 s per project, and a default quota of 100,000
 * Track requests per day: the daily quota is the sustained rate. Token
 * requests are throttled per IP address. */
static const struct hub_bucket_def fedex_buckets[] = {
	{"track", 100, 100000.0 / 86400, {0}},
	{"oauth", 3, 1.0 / 60, {0}},
	{NULL, 0, 0, {0}},
};

static int fedex_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
			void **state, struct hub_error *err)
{
	return carrier_create(&fedex_def, sizeof(struct fedex), host, conn, config, state, err);
}

static int fedex_build_request(void *state, const char *stream, const json_t *cursor,
			       struct hub_msg *req, struct hub_error *err)
{
	struct fedex *f = state;
	const struct hub_host *h = f->cc.host;
	const char *numbers[FEDEX_BATCH_MAX];
	json_t *body = NULL, *info;
	struct hub_url url;
	char *text = NULL;
	size_t n, i;
	int rc;

	rc = carrier_request_numbers(&f->cc, stream, cursor, numbers, FEDEX_BATCH_MAX, &n, err);
	if (rc != HUB_OK)
		return rc;

	hub_url_init(&url, f->cc.api_base);
	hub_url_path(&url, "/track/v1/trackingnumbers");
	rc = carrier_request(&f->cc, req, "POST", hub_url_str(&url), "track", err);
	hub_url_release(&url);
	if (rc != HUB_OK)
		return rc;
	rc = carrier_add_bearer(&f->cc, req, err);
	if (rc != HUB_OK)
		return rc;

	rc = HUB_FATAL;
	info = json_array();
	body = json_pack("{s:b,s:o}", "includeDetailedScans", 1, "trackingInfo", info);
	if (!body)
		goto out;
	for (i = 0; i < n; i++)
		if (json_array_append_new(info, json_pack("{s:{s:s}}", "trackingNumberInfo",
							  "trackingNumber", numbers[i])) != 0)
			goto out;
	text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text || h->msg_add_header(req, "Content-Type", "application/json") != 0 ||
	    h->msg_set_body(req, text, strlen(text)) != 0)
		goto out;
	rc = HUB_OK;
out:
	if (rc != HUB_OK)
		hub_error_set(err, NULL, "could not build the FedEx request (out of memory?)");
	free(text);
	json_decref(body);
	return rc;
}

/* The status of one scan or status block: `code` (eventType / code)
 * through the table; informational or unlisted codes fall back to the
 * derived status code FedEx sends alongside. */
static enum carrier_status fedex_status(const struct fedex *f, const char *code,
					const char *derived, const char *number)
{
	enum carrier_status s = CARRIER_DEFER;

	if (code) {
		s = carrier_map(&f->cc, &carrier_fedex_event_codes, "event type", code, number);
		if (s == CARRIER_UNKNOWN && !carrier_table_find(&carrier_fedex_event_codes, code, &s))
			s = CARRIER_DEFER; /* unlisted (logged): the derived code may say */
	}
	if (s == CARRIER_DEFER && derived && (!code || strcasecmp(derived, code) != 0))
		s = carrier_map(&f->cc, &carrier_fedex_event_codes, "derived status code", derived,
				number);
	return s == CARRIER_DEFER ? CARRIER_UNKNOWN : s;
}

static int fedex_add_scan(const struct fedex *f, struct carrier_record *rec, const json_t *scan,
			  const char *number, struct hub_error *err)
{
	const json_t *where = carrier_jobj(scan, "scanLocation");
	const char *type = carrier_jstr(scan, "eventType");
	const char *derived = carrier_jstr(scan, "derivedStatusCode");
	const char *desc = carrier_jstr(scan, "eventDescription");
	const char *exc = carrier_jstr(scan, "exceptionDescription");
	struct carrier_time t;
	struct carrier_loc loc;
	enum carrier_status s;
	char text[1100];

	if (carrier_time_iso(carrier_jstr(scan, "date"), &t) != 0) {
		carrier_log(&f->cc, HUB_LOG_WARN,
			    "FedEx scan event of %.64s without a readable date skipped", number);
		return HUB_OK;
	}
	s = fedex_status(f, type, derived, number);
	desc = carrier_join_text(desc ? desc : carrier_jstr(scan, "derivedStatus"), exc, text,
				 sizeof(text));
	loc.city = carrier_jstr(where, "city");
	loc.state = carrier_jstr(where, "stateOrProvinceCode");
	loc.postal_code = carrier_jstr(where, "postalCode");
	loc.country_code = carrier_jstr(where, "countryCode");
	return carrier_record_add_scan(&f->cc, rec, &t, s, type, derived, desc, &loc, err);
}

/* dateAndTimes[] entry of `type`, parsed. */
static int fedex_date(const json_t *result, const char *type, struct carrier_time *t)
{
	const json_t *list = carrier_jarr(result, "dateAndTimes");
	size_t i;

	for (i = 0; i < json_array_size(list); i++) {
		const json_t *d = json_array_get(list, i);
		const char *dt = carrier_jstr(d, "type");

		if (dt && strcmp(dt, type) == 0 && carrier_time_iso(carrier_jstr(d, "dateTime"), t) == 0)
			return 0;
	}
	return -1;
}

static int fedex_emit_result(const struct fedex *f, const json_t *result, const char *number,
			     struct hub_call *call, struct hub_error *err)
{
	const json_t *scans = carrier_jarr(result, "scanEvents");
	const json_t *latest = carrier_jobj(result, "latestStatusDetail");
	const json_t *service = carrier_jobj(result, "serviceDetail");
	const json_t *delivery = carrier_jobj(result, "deliveryDetails");
	const json_t *window = carrier_jobj(carrier_jobj(result, "estimatedDeliveryTimeWindow"),
					   "window");
	const char *signed_by;
	struct carrier_record rec;
	struct carrier_time t;
	size_t i;
	int rc;

	rc = carrier_record_start(&f->cc, &rec, number, err);
	if (rc != HUB_OK)
		return rc;
	for (i = 0; i < json_array_size(scans); i++) {
		rc = fedex_add_scan(f, &rec, json_array_get(scans, i), number, err);
		if (rc != HUB_OK) {
			carrier_record_release(&rec);
			return rc;
		}
	}
	carrier_record_set_str(&rec, "service", carrier_jstr(service, "description")
							? carrier_jstr(service, "description")
							: carrier_jstr(service, "type"));
	signed_by = carrier_jstr(delivery, "signedByName");
	carrier_record_set_str(&rec, "signed_by",
			       signed_by ? signed_by : carrier_jstr(delivery, "receivedByName"));
	if (fedex_date(result, "ESTIMATED_DELIVERY", &t) == 0 ||
	    carrier_time_iso(carrier_jstr(window, "ends"), &t) == 0 ||
	    carrier_time_iso(carrier_jstr(window, "begins"), &t) == 0)
		carrier_record_set_time(&rec, "estimated_delivery_at", t.utc_ms);
	/* ACTUAL_DELIVERY with its zone is exact; without one it is local time,
	 * less exact than a delivered scan (which always has an offset). */
	if (fedex_date(result, "ACTUAL_DELIVERY", &t) == 0 && (t.has_offset || !rec.have_delivered))
		carrier_record_set_time(&rec, "delivered_at", t.utc_ms);
	return carrier_record_emit(&f->cc, call, &rec,
				   fedex_status(f, carrier_jstr(latest, "code"),
						carrier_jstr(latest, "derivedCode"), number),
				   err);
}

/* Error codes of a trackResult meaning the number is unknown to FedEx. */
static int fedex_not_found_code(const char *code)
{
	static const char *const codes[] = {
		"TRACKING.TRACKINGNUMBER.NOTFOUND",
		"TRACKING.TRACKINGNUMBER.INVALID",
		"TRACKING.DATA.NOTFOUND",
		NULL,
	};
	size_t i;

	for (i = 0; code && codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return 1;
	return 0;
}

/* One completeTrackResults[] entry: the results for one number asked. */
static int fedex_emit_complete(const struct fedex *f, const json_t *complete, const char *asked,
			       struct hub_call *call, struct hub_error *err)
{
	const json_t *results = carrier_jarr(complete, "trackResults");
	size_t i, j, count = json_array_size(results);
	int rc;

	if (count == 0)
		return carrier_emit_not_found(&f->cc, call, asked, err);
	for (i = 0; i < count; i++) {
		const json_t *res = json_array_get(results, i);
		const json_t *error = carrier_jobj(res, "error");
		const char *code = carrier_jstr(error, "code");
		const char *number = carrier_jstr(carrier_jobj(res, "trackingNumberInfo"),
						  "trackingNumber");
		int dup = 0;

		if (count == 1 || !number)
			number = asked;
		/* A number reused over time yields several results: the first is
		 * kept, the others would contradict it. */
		for (j = 0; j < i && !dup; j++) {
			const char *other = carrier_jstr(
				carrier_jobj(json_array_get(results, j), "trackingNumberInfo"),
				"trackingNumber");
			dup = other && strcmp(other, number) == 0;
		}
		if (dup) {
			carrier_log(&f->cc, HUB_LOG_INFO, "FedEx result %zu for %.64s repeats a number: "
				    "kept the first", i, number);
			continue;
		}
		if (fedex_not_found_code(code)) {
			rc = carrier_emit_not_found(&f->cc, call, number, err);
		} else if (code && !carrier_jobj(res, "latestStatusDetail") &&
			   !carrier_jarr(res, "scanEvents")) {
			carrier_log(&f->cc, HUB_LOG_WARN, "FedEx error for %.64s: %.64s %.160s", number,
				    code, carrier_jstr(error, "message") ? carrier_jstr(error, "message")
									 : "");
			rc = HUB_OK;
		} else {
			if (code)
				carrier_log(&f->cc, HUB_LOG_INFO,
					    "FedEx result for %.64s carries error %.64s next to its data",
					    number, code);
			rc = fedex_emit_result(f, res, number, call, err);
		}
		if (rc != HUB_OK)
			return rc;
	}
	return HUB_OK;
}

static int fedex_read_response(void *state, const char *stream, const json_t *cursor,
			       const struct hub_msg *resp, struct hub_call *call,
			       struct hub_error *err)
{
	struct fedex *f = state;
	const struct hub_host *h = f->cc.host;
	const char *numbers[FEDEX_BATCH_MAX];
	const json_t *output, *completes, *errors;
	json_t *doc = NULL;
	int status = h->msg_status(resp);
	size_t n, i;
	int rc;

	rc = carrier_cursor_numbers(cursor, numbers, FEDEX_BATCH_MAX, &n, err);
	if (rc != HUB_OK)
		return rc;
	h->set_more(call, 0);
	if (status < 200 || status > 299)
		return carrier_http_error(&f->cc, resp, "tracking request", err);
	rc = carrier_parse_json(&f->cc, resp, "tracking", &doc, err);
	if (rc != HUB_OK)
		return rc;
	output = carrier_jobj(doc, "output");
	completes = carrier_jarr(output, "completeTrackResults");
	errors = carrier_jarr(doc, "errors");
	if (!completes) {
		const json_t *e0 = json_array_get(errors, 0);

		if (e0)
			hub_error_set(err, "errors", "FedEx refused the request: %.64s %.200s",
				      carrier_jstr(e0, "code") ? carrier_jstr(e0, "code") : "?",
				      carrier_jstr(e0, "message") ? carrier_jstr(e0, "message") : "");
		else
			hub_error_set(err, "output.completeTrackResults",
				      "missing from the FedEx response");
		if (err)
			err->upstream_status = status;
		json_decref(doc);
		return e0 ? HUB_FATAL : HUB_INVALID;
	}
	for (i = 0; i < json_array_size(completes); i++) {
		const json_t *c = json_array_get(completes, i);
		const char *asked = carrier_jstr(c, "trackingNumber");

		if (!asked && n == 1)
			asked = numbers[0];
		if (!asked) {
			carrier_log(&f->cc, HUB_LOG_WARN, "FedEx result without trackingNumber skipped");
			continue;
		}
		rc = fedex_emit_complete(f, c, asked, call, err);
		if (rc != HUB_OK)
			break;
	}
	for (i = 0; rc == HUB_OK && i < n; i++) {
		size_t j;
		int seen = 0;

		for (j = 0; j < json_array_size(completes) && !seen; j++) {
			const char *asked = carrier_jstr(json_array_get(completes, j), "trackingNumber");
			seen = asked && strcmp(asked, numbers[i]) == 0;
		}
		if (!seen && !(n == 1 && json_array_size(completes) == 1))
			carrier_log(&f->cc, HUB_LOG_WARN, "FedEx answered nothing about %.64s",
				    numbers[i]);
	}
	json_decref(doc);
	return rc;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "fedex",
	.version = "1.0.0",
	.description = "FedEx Track API: package tracking, 30 numbers per request, OAuth client credentials",
	.capabilities = HUB_CAP_TRACKING | HUB_CAP_TOKEN_REFRESH,
	.config_schema = fedex_config_schema,
	.streams = fedex_streams,
	.buckets = fedex_buckets,
	.tracking_batch_max = FEDEX_BATCH_MAX,
	.create = fedex_create,
	.destroy = carrier_destroy,
	.build_request = fedex_build_request,
	.read_response = fedex_read_response,
	.read_limits = carrier_read_limits,
	.build_action = carrier_build_action,
	.read_action = carrier_read_action,
};
