/*
 * ups.c - the UPS carrier plugin (ups.so): tracking through the UPS Track
 * API with OAuth 2.0 client credentials.
 *
 * Requests: GET {api_base}/api/track/v1/details/{inquiryNumber} with the
 * transId and transactionSrc headers UPS requires and the bearer token the
 * host obtained through the "refresh_token" action (POST
 * {api_base}/security/v1/oauth/token, HTTP Basic client_id:client_secret,
 * grant_type=client_credentials). One number per request.
 *
 * Responses: trackResponse.shipment[].package[] become one tracking record
 * per package; a shipment without packages (warning TW0001 "Tracking
 * Information Not Found") or a 404 becomes a not_found record. Each
 * activity's status maps through the statusCode table (UPS Status/
 * Description Codes) and, for informational codes, the activity type; see
 * docs/carriers.md. Activities carry local date and time fields and, when
 * UPS sends them, gmtDate/gmtTime/gmtOffset: with them the event time is
 * exact UTC and the zone is kept, without them the local wall-clock time is
 * stored as UTC with utc_offset_minutes null.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>
#include <hub/sdk.h>

#include "../common/carrier.h"

#define UPS_DEFAULT_BASE "https://onlinetools.ups.com"

struct ups {
	struct carrier_conn cc;
	char *transaction_src;
};

static const char ups_config_schema[] =
	"{\"type\":\"object\","
	"\"required\":[\"client_id\",\"client_secret\"],"
	"\"properties\":{"
	"\"client_id\":{\"type\":\"string\",\"minLength\":1,"
	"\"description\":\"OAuth client ID of the UPS developer app\"},"
	"\"client_secret\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true,"
	"\"description\":\"OAuth client secret of the UPS developer app\"},"
	"\"api_base\":{\"type\":\"string\",\"pattern\":\"^https?://\","
	"\"default\":\"" UPS_DEFAULT_BASE "\","
	"\"description\":\"API root; https://wwwcie.ups.com for the UPS test environment\"},"
	"\"transaction_src\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":32,"
	"\"default\":\"hub\","
	"\"description\":\"transactionSrc header: names the calling application to UPS\"}"
	"}}";

static const struct hub_stream_def ups_streams[] = {
	{"tracking", 1u << HUB_RECORD_TRACKING, 1800, "track", {0}},
	{NULL, 0, 0, NULL, {0}},
};

/* UPS publishes no numeric limit (it answers 429 when exceeded): a modest
 * default, corrected by Retry-After and overridable in the config. */
static const struct hub_bucket_def ups_buckets[] = {
	{"track", 10, 5, {0}},
	{"oauth", 2, 1.0 / 60, {0}},
	{NULL, 0, 0, {0}},
};

static int ups_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		      void **state, struct hub_error *err)
{
	struct ups *u = calloc(1, sizeof(*u));
	int rc;

	*state = NULL;
	if (!u) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	rc = carrier_conn_init(&u->cc, host, conn, "ups", "UPS", config, UPS_DEFAULT_BASE,
			       CARRIER_NEED_OAUTH, err);
	if (rc == HUB_OK)
		rc = carrier_conf_str(config, "transaction_src", 0, "hub", &u->transaction_src, err);
	if (rc == HUB_OK && strlen(u->transaction_src) > 32) {
		hub_error_set(err, "transaction_src", "must be at most 32 characters");
		rc = HUB_INVALID;
	}
	if (rc != HUB_OK) {
		carrier_conn_release(&u->cc);
		free(u->transaction_src);
		free(u);
		return rc;
	}
	*state = u;
	return HUB_OK;
}

static void ups_destroy(void *state)
{
	struct ups *u = state;

	if (!u)
		return;
	carrier_conn_release(&u->cc);
	free(u->transaction_src);
	free(u);
}

/* A transId unique per request yet reproducible for a given clock and
 * number (the kit replays cases): ms clock + FNV-1a of the number. */
static void ups_trans_id(int64_t now_ms, const char *number, char *buf, size_t size)
{
	uint32_t h = 2166136261u;
	const unsigned char *p;

	for (p = (const unsigned char *)number; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	snprintf(buf, size, "hub%llx%08x", (unsigned long long)now_ms, (unsigned)h);
}

static int ups_build_request(void *state, const char *stream, const json_t *cursor,
			     struct hub_msg *req, struct hub_error *err)
{
	struct ups *u = state;
	const struct hub_host *h = u->cc.host;
	const char *numbers[1];
	char trans_id[40];
	struct hub_url url;
	size_t n;
	int rc;

	if (strcmp(stream, "tracking") != 0) {
		hub_error_set(err, "stream", "UPS serves only the tracking stream, not '%s'", stream);
		return HUB_INVALID;
	}
	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	if (n == 0)
		return HUB_DONE;

	hub_url_init(&url, u->cc.api_base);
	hub_url_path(&url, "/api/track/v1/details");
	hub_url_segment(&url, numbers[0]);
	rc = carrier_request(&u->cc, req, "GET", hub_url_str(&url), "track", err);
	hub_url_release(&url);
	if (rc != HUB_OK)
		return rc;
	ups_trans_id(h->now_ms(), numbers[0], trans_id, sizeof(trans_id));
	if (h->msg_add_header(req, "transId", trans_id) != 0 ||
	    h->msg_add_header(req, "transactionSrc", u->transaction_src) != 0) {
		hub_error_set(err, NULL, "could not add the UPS transaction headers");
		return HUB_FATAL;
	}
	return carrier_add_bearer(&u->cc, req, err);
}

/* "003" -> "3"; NULL when code is not all digits. */
static const char *ups_strip_zeros(const char *code, char *buf, size_t size)
{
	size_t i;

	for (i = 0; code[i]; i++)
		if (code[i] < '0' || code[i] > '9')
			return NULL;
	if (i == 0 || i >= size)
		return NULL;
	while (code[0] == '0' && code[1])
		code++;
	snprintf(buf, size, "%s", code);
	return buf;
}

/*
 * The canonical status of a UPS status block (activity[].status or
 * currentStatus): its statusCode through the Status/Description Codes
 * table; informational or unlisted codes fall back to the activity type.
 */
static enum carrier_status ups_status(const struct ups *u, const json_t *st, const char *number)
{
	const char *code = carrier_jstr(st, "statusCode");
	const char *type = carrier_jstr(st, "type");
	enum carrier_status s = CARRIER_DEFER;
	char digits[8];

	if (code) {
		const char *key = ups_strip_zeros(code, digits, sizeof(digits));

		s = carrier_map(&u->cc, &carrier_ups_status_codes, "statusCode", key ? key : code,
				number);
		if (s == CARRIER_UNKNOWN && !carrier_table_find(&carrier_ups_status_codes,
								key ? key : code, &s))
			s = CARRIER_DEFER; /* unlisted (logged): UPS's type still classifies it */
	}
	if (s == CARRIER_DEFER)
		s = type ? carrier_map(&u->cc, &carrier_ups_activity_types, "activity type", type,
				       number)
			 : CARRIER_UNKNOWN;
	return s == CARRIER_DEFER ? CARRIER_UNKNOWN : s;
}

/* One activity -> one event. Returns HUB_OK (also when the activity is
 * skipped for an unreadable time, with a warning) or HUB_FATAL. */
static int ups_add_activity(const struct ups *u, struct carrier_record *rec, const json_t *act,
			    const char *number, struct hub_error *err)
{
	const json_t *st = carrier_jobj(act, "status");
	const json_t *addr = carrier_jobj(carrier_jobj(act, "location"), "address");
	const char *gmt_date = carrier_jstr(act, "gmtDate");
	const char *gmt_time = carrier_jstr(act, "gmtTime");
	const char *gmt_offset = carrier_jstr(act, "gmtOffset");
	struct carrier_time t = {0, 0, 0};
	struct carrier_loc loc;
	enum carrier_status s;
	const char *desc;
	json_t *ev;

	if (gmt_date && gmt_time && carrier_time_compact(gmt_date, gmt_time, &t.utc_ms) == 0) {
		t.has_offset = gmt_offset && carrier_offset_parse(gmt_offset, &t.offset_min) == 0;
	} else if (carrier_time_compact(carrier_jstr(act, "date"), carrier_jstr(act, "time"),
					&t.utc_ms) != 0) {
		carrier_log(&u->cc, HUB_LOG_WARN,
			    "UPS activity of %.64s without a readable date/time skipped", number);
		return HUB_OK;
	}
	s = ups_status(u, st, number);
	desc = carrier_jstr(st, "description");
	if (!desc)
		desc = carrier_jstr(st, "simplifiedTextDescription");
	loc.city = carrier_jstr(addr, "city");
	loc.state = carrier_jstr(addr, "stateProvince");
	loc.postal_code = carrier_jstr(addr, "postalCode");
	loc.country_code = carrier_jstr(addr, "countryCode");
	if (!loc.country_code)
		loc.country_code = carrier_jstr(addr, "country");
	ev = carrier_event_new(&t, s, carrier_jstr(st, "statusCode"), carrier_jstr(st, "type"),
			       desc, &loc);
	if (carrier_record_add_event(rec, ev, t.utc_ms, s) != 0) {
		hub_error_set(err, NULL, "out of memory building a UPS tracking event");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* deliveryDate[] of `type` ("SDD", "RDD", "DEL"), with the deliveryTime
 * end time when its type is one of `time_types`; local time taken as UTC. */
static int ups_delivery_date(const json_t *pkg, const char *type, const char *const *time_types,
			     int64_t *ms)
{
	const json_t *dates = carrier_jarr(pkg, "deliveryDate");
	const json_t *dt = carrier_jobj(pkg, "deliveryTime");
	const char *dtype = carrier_jstr(dt, "type");
	const char *end = NULL;
	size_t i;

	for (i = 0; time_types && time_types[i] && dtype; i++)
		if (strcmp(dtype, time_types[i]) == 0)
			end = carrier_jstr(dt, "endTime");
	for (i = 0; i < json_array_size(dates); i++) {
		const json_t *d = json_array_get(dates, i);
		const char *t = carrier_jstr(d, "type");

		if (t && strcmp(t, type) == 0 &&
		    (carrier_time_compact(carrier_jstr(d, "date"), end, ms) == 0 ||
		     carrier_time_compact(carrier_jstr(d, "date"), NULL, ms) == 0))
			return 0;
	}
	return -1;
}

static int ups_emit_package(const struct ups *u, const json_t *pkg, const char *number,
			    struct hub_call *call, struct hub_error *err)
{
	static const char *const window_types[] = {"EDW", "CDW", "IDW", "CMT", NULL};
	static const char *const delivered_types[] = {"DEL", NULL};
	const json_t *acts = carrier_jarr(pkg, "activity");
	struct carrier_record rec;
	int64_t ms;
	size_t i;
	int rc;

	if (carrier_record_init(&rec, "ups", number) != 0) {
		hub_error_set(err, NULL, "out of memory building a UPS tracking record");
		return HUB_FATAL;
	}
	for (i = 0; i < json_array_size(acts); i++) {
		rc = ups_add_activity(u, &rec, json_array_get(acts, i), number, err);
		if (rc != HUB_OK) {
			carrier_record_release(&rec);
			return rc;
		}
	}
	rc = carrier_record_set_str(&rec, "service",
				    carrier_jstr(carrier_jobj(pkg, "service"), "description"));
	rc |= carrier_record_set_str(&rec, "signed_by",
				     carrier_jstr(carrier_jobj(pkg, "deliveryInformation"),
						  "receivedBy"));
	if (ups_delivery_date(pkg, "RDD", window_types, &ms) == 0 ||
	    ups_delivery_date(pkg, "SDD", window_types, &ms) == 0)
		rc |= carrier_record_set_time(&rec, "estimated_delivery_at", ms);
	/* A delivered activity carries the exact time; the DEL date is local. */
	if (!rec.have_delivered && ups_delivery_date(pkg, "DEL", delivered_types, &ms) == 0)
		rc |= carrier_record_set_time(&rec, "delivered_at", ms);
	if (rc) {
		carrier_record_release(&rec);
		hub_error_set(err, NULL, "out of memory building a UPS tracking record");
		return HUB_FATAL;
	}
	return carrier_record_emit(&u->cc, call, &rec,
				   ups_status(u, carrier_jobj(pkg, "currentStatus"), number), err);
}

/* A shipment: its packages, or not found when it has none. */
static int ups_emit_shipment(const struct ups *u, const json_t *shipment, const char *inquiry,
			     struct hub_call *call, struct hub_error *err)
{
	const json_t *pkgs = carrier_jarr(shipment, "package");
	const json_t *warnings = carrier_jarr(shipment, "warnings");
	size_t i, count = json_array_size(pkgs);
	int rc;

	for (i = 0; i < json_array_size(warnings); i++) {
		const json_t *w = json_array_get(warnings, i);

		carrier_log(&u->cc, HUB_LOG_DEBUG, "UPS warning for %.64s: %.32s %.120s", inquiry,
			    carrier_jstr(w, "code") ? carrier_jstr(w, "code") : "?",
			    carrier_jstr(w, "message") ? carrier_jstr(w, "message") : "");
	}
	if (count == 0)
		return carrier_emit_not_found(&u->cc, call, inquiry, err);
	/* One package answers the inquiry under the number asked (it may have
	 * been a reference or alternate number); several are each their own
	 * record. */
	for (i = 0; i < count; i++) {
		const json_t *pkg = json_array_get(pkgs, i);
		const char *number = carrier_jstr(pkg, "trackingNumber");

		if (count == 1 || !number)
			number = inquiry;
		rc = ups_emit_package(u, pkg, number, call, err);
		if (rc != HUB_OK)
			return rc;
	}
	return HUB_OK;
}

/* A 404 whose body is UPS's error envelope means "no such number". */
static int ups_is_not_found(const struct ups *u, const struct hub_msg *resp)
{
	size_t len = 0;
	const char *body = u->cc.host->msg_body(resp, &len);
	json_t *doc = hub_json_loadb(body, len, 0, NULL);
	int yes = carrier_jarr(carrier_jobj(doc, "response"), "errors") != NULL;

	json_decref(doc);
	return yes;
}

static int ups_read_response(void *state, const char *stream, const json_t *cursor,
			     const struct hub_msg *resp, struct hub_call *call,
			     struct hub_error *err)
{
	struct ups *u = state;
	const struct hub_host *h = u->cc.host;
	const char *numbers[1];
	json_t *doc = NULL;
	const json_t *shipments;
	int status = h->msg_status(resp);
	size_t n, i;
	int rc;

	rc = carrier_cursor_numbers(cursor, numbers, 1, &n, err);
	if (rc != HUB_OK)
		return rc;
	h->set_more(call, 0);
	if (status == 404 && n == 1 && ups_is_not_found(u, resp))
		return carrier_emit_not_found(&u->cc, call, numbers[0], err);
	if (status < 200 || status > 299)
		return carrier_http_error(&u->cc, resp, "tracking request", err);
	rc = carrier_parse_json(&u->cc, resp, "tracking", &doc, err);
	if (rc != HUB_OK)
		return rc;
	shipments = carrier_jarr(carrier_jobj(doc, "trackResponse"), "shipment");
	if (!shipments) {
		hub_error_set(err, "trackResponse.shipment", "missing from the UPS response");
		json_decref(doc);
		return HUB_INVALID;
	}
	for (i = 0; i < json_array_size(shipments); i++) {
		const json_t *sh = json_array_get(shipments, i);
		const char *inquiry = carrier_jstr(sh, "inquiryNumber");

		if (!inquiry && n == 1)
			inquiry = numbers[0];
		if (!inquiry) {
			carrier_log(&u->cc, HUB_LOG_WARN, "UPS shipment without inquiryNumber skipped");
			continue;
		}
		rc = ups_emit_shipment(u, sh, inquiry, call, err);
		if (rc != HUB_OK)
			break;
	}
	if (rc == HUB_OK && n == 1 && json_array_size(shipments) == 0)
		carrier_log(&u->cc, HUB_LOG_WARN, "UPS answered nothing about %.64s", numbers[0]);
	json_decref(doc);
	return rc;
}

static void ups_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			    struct hub_call *call)
{
	struct ups *u = state;

	carrier_read_limits(&u->cc, operation, resp, call);
}

static int ups_build_action(void *state, const char *action, const json_t *payload,
			    struct hub_msg *req, struct hub_error *err)
{
	struct ups *u = state;

	if (strcmp(action, "refresh_token") != 0)
		return HUB_IGNORED;
	return carrier_oauth_build(&u->cc, req, "/security/v1/oauth/token", CARRIER_OAUTH_BASIC,
				   NULL, err);
}

static int ups_read_action(void *state, const char *action, const json_t *payload,
			   const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct ups *u = state;

	if (strcmp(action, "refresh_token") != 0)
		return HUB_IGNORED;
	return carrier_oauth_read(&u->cc, resp, call, err);
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "ups",
	.version = "1.0.0",
	.description = "UPS Track API: package tracking with OAuth client credentials",
	.capabilities = HUB_CAP_TRACKING | HUB_CAP_TOKEN_REFRESH,
	.config_schema = ups_config_schema,
	.streams = ups_streams,
	.buckets = ups_buckets,
	.tracking_batch_max = 1,
	.create = ups_create,
	.destroy = ups_destroy,
	.build_request = ups_build_request,
	.read_response = ups_read_response,
	.read_limits = ups_read_limits,
	.build_action = ups_build_action,
	.read_action = ups_read_action,
};
