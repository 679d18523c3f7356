/*
 * test_sandbox_carriers.c - hub-sandbox's carrier APIs, run as a process:
 * UPS, FedEx, USPS v3 and DHL unified tracking against the reference
 * payloads (UPS and FedEx fixtures) and the providers' documented shapes,
 * OAuth token endpoints and their errors, not-found shapes, tracking number
 * formats, scans moving shipments to delivered on the simulated clock,
 * token expiry and the 429 with Retry-After of a carrier's bucket.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sbt.h"

static const char *const cfg =
	"{\"speed\":0,\"seed\":51,\"orders\":40,\"shops\":2,\"limits_clock\":\"sim\","
	"\"order_interval_s\":3600,"
	"\"carriers\":{\"ups\":{\"token_ttl_s\":100},\"usps\":{\"rate\":1,\"burst\":3}}}";

/* "ups-sandbox-client:ups-sandbox-secret" */
#define UPS_BASIC "Authorization: Basic dXBzLXNhbmRib3gtY2xpZW50OnVwcy1zYW5kYm94LXNlY3JldA=="

static void bearer(struct sbt *t, const char *path, const char *const *hdr, const char *body,
		   char *out, size_t size)
{
	struct sbt_resp r;
	assert_int_equal(sbt_req(t, "POST", path, hdr, body, &r), 0);
	if (r.status != 200)
		fail_msg("%s: %ld %s", path, r.status, r.body);
	json_t *j = sbt_json(&r);
	snprintf(out, size, "Authorization: Bearer %s",
		 json_string_value(json_object_get(j, "access_token")));
	json_decref(j);
	sbt_free(&r);
}

/* Tracking numbers of one carrier from the truth. */
static json_t *numbers(struct sbt *t, const char *carrier)
{
	char path[128];
	snprintf(path, sizeof(path), "/_sandbox/truth/%s/shipments", carrier);
	json_t *j = sbt_get_json(t, path, NULL, 200);
	json_t *out = json_array();
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(j, "shipments"), i, s) {
		const char *n = NULL;
		if (!strcmp(carrier, "ups"))
			n = json_string_value(json_object_get(
				json_array_get(json_object_get(json_object_get(s, "trackResponse"), "shipment"), 0),
				"inquiryNumber"));
		else if (!strcmp(carrier, "fedex"))
			n = json_string_value(json_object_get(
				json_array_get(json_object_get(json_object_get(s, "output"), "completeTrackResults"),
					       0),
				"trackingNumber"));
		else if (!strcmp(carrier, "usps"))
			n = json_string_value(json_object_get(s, "trackingNumber"));
		else
			n = json_string_value(json_object_get(json_array_get(json_object_get(s, "shipments"), 0),
							      "id"));
		if (n)
			json_array_append_new(out, json_string(n));
	}
	json_decref(j);
	return out;
}

static int all_digits(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static void test_formats(void **state)
{
	struct sbt t;
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	static const char *const carriers[] = { "ups", "fedex", "usps", "dhl" };
	for (int c = 0; c < 4; c++) {
		json_t *ns = numbers(&t, carriers[c]);
		assert_true(json_array_size(ns) > 3);
		size_t i;
		json_t *n;
		json_array_foreach(ns, i, n) {
			const char *s = json_string_value(n);
			int ok;
			switch (c) {
			case 0:
				ok = strlen(s) == 18 && !strncmp(s, "1Z", 2);
				for (int k = 2; ok && k < 18; k++)
					ok = isdigit((unsigned char)s[k]) || isupper((unsigned char)s[k]);
				break;
			case 1:
				ok = all_digits(s, 12);
				break;
			case 2:
				ok = all_digits(s, 22) && s[0] == '9';
				break;
			default:
				ok = all_digits(s, 10);
				break;
			}
			if (!ok)
				fail_msg("%s tracking number %s", carriers[c], s);
		}
		json_decref(ns);
	}
	sbt_stop(&t);
}

static void test_ups(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char auth[256], err[512], path[256];
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const basic[] = { UPS_BASIC, "Content-Type: application/x-www-form-urlencoded", NULL };
	const char *const wrong[] = { "Authorization: Basic dXBzOm5vcGU=", NULL };
	assert_int_equal(sbt_req(&t, "POST", "/security/v1/oauth/token", wrong,
				 "grant_type=client_credentials", &r), 0);
	assert_int_equal(r.status, 401);
	json_t *fx = sbt_fixture("ups/karrio_ups_AuthError.json");
	json_t *j = sbt_json(&r);
	if (fx && sbt_shape(fx, j, SBT_ALL_KEYS | SBT_NO_EXTRA, NULL, err, sizeof(err)))
		fail_msg("auth error: %s", err);
	json_decref(j);
	json_decref(fx);
	sbt_free(&r);
	bearer(&t, "/security/v1/oauth/token", basic, "grant_type=client_credentials", auth,
	       sizeof(auth));
	const char *const h[] = { auth, "transId: 42", "transactionSrc: hub", NULL };
	json_t *ns = numbers(&t, "ups");
	snprintf(path, sizeof(path), "/api/track/v1/details/%s?locale=en_US",
		 json_string_value(json_array_get(ns, 0)));
	json_t *tr = sbt_get_json(&t, path, h, 200);
	assert_non_null(tr);
	fx = sbt_fixture("ups/karrio_ups_TrackingResponseJSON.json");
	if (fx && sbt_shape(fx, tr, SBT_NO_EXTRA, NULL, err, sizeof(err)))
		fail_msg("tracking: %s", err);
	json_decref(fx);
	json_t *pkg = json_array_get(json_object_get(json_array_get(json_object_get(json_object_get(tr,
									"trackResponse"), "shipment"), 0), "package"), 0);
	static const char *const keys[] = { "trackingNumber", "activity", "currentStatus",
					    "deliveryDate", "packageAddress", "service", NULL };
	if (sbt_has_keys(pkg, keys, err, sizeof(err)))
		fail_msg("package: %s", err);
	json_t *act = json_array_get(json_object_get(pkg, "activity"), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(act, "date"))), 8);
	assert_int_equal(strlen(json_string_value(json_object_get(act, "time"))), 6);
	json_decref(tr);
	/* not found: the reference warning shape */
	assert_int_equal(sbt_req(&t, "GET", "/api/track/v1/details/1Z0000000000000000", h, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	fx = sbt_fixture("ups/karrio_ups_TrackingNumberNotFoundResponseJSON.json");
	j = sbt_json(&r);
	if (fx && sbt_shape(fx, j, SBT_ALL_KEYS | SBT_NO_EXTRA, NULL, err, sizeof(err)))
		fail_msg("not found: %s", err);
	json_decref(j);
	json_decref(fx);
	sbt_free(&r);
	/* headers required; an expired token */
	const char *const nohdr[] = { auth, NULL };
	assert_int_equal(sbt_req(&t, "GET", path, nohdr, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	assert_int_equal(sbt_tick(&t, 101), 0);
	assert_int_equal(sbt_req(&t, "GET", path, h, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "250002"));
	sbt_free(&r);
	json_decref(ns);
	sbt_stop(&t);
}

static void test_fedex(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char auth[256], err[512], body[1024];
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
	assert_int_equal(sbt_req(&t, "POST", "/oauth/token", form,
				 "grant_type=client_credentials&client_id=x&client_secret=y", &r), 0);
	assert_int_equal(r.status, 401);
	json_t *fx = sbt_fixture("fedex/karrio_fedex_ErrorResponse.json");
	json_t *j = sbt_json(&r);
	static const char *const ign[] = { ".customerTransactionId", NULL };
	if (fx && sbt_shape(fx, j, SBT_ALL_KEYS | SBT_NO_EXTRA, ign, err, sizeof(err)))
		fail_msg("error: %s", err);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0),
							      "code")),
			    "NOT.AUTHORIZED.ERROR");
	json_decref(j);
	json_decref(fx);
	sbt_free(&r);
	bearer(&t, "/oauth/token", form,
	       "grant_type=client_credentials&client_id=fedex-sandbox-key&client_secret=fedex-sandbox-secret",
	       auth, sizeof(auth));
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	json_t *ns = numbers(&t, "fedex");
	snprintf(body, sizeof(body),
		 "{\"includeDetailedScans\":true,\"trackingInfo\":[{\"trackingNumberInfo\":{\"trackingNumber\":\"%s\"}},"
		 "{\"trackingNumberInfo\":{\"trackingNumber\":\"%s\"}},"
		 "{\"trackingNumberInfo\":{\"trackingNumber\":\"39936862321\"}}]}",
		 json_string_value(json_array_get(ns, 0)), json_string_value(json_array_get(ns, 1)));
	assert_int_equal(sbt_req(&t, "POST", "/track/v1/trackingnumbers", h, body, &r), 0);
	assert_int_equal(r.status, 200);
	j = sbt_json(&r);
	sbt_free(&r);
	fx = sbt_fixture("fedex/karrio_fedex_TrackingResponse.json");
	if (fx && sbt_shape(fx, j, SBT_NO_EXTRA, ign, err, sizeof(err)))
		fail_msg("tracking: %s", err);
	json_decref(fx);
	json_t *res = json_object_get(json_object_get(j, "output"), "completeTrackResults");
	assert_int_equal(json_array_size(res), 3);
	json_t *tr0 = json_array_get(json_object_get(json_array_get(res, 0), "trackResults"), 0);
	assert_true(json_array_size(json_object_get(tr0, "scanEvents")) > 0);
	assert_non_null(json_object_get(tr0, "latestStatusDetail"));
	json_t *tr2 = json_array_get(json_object_get(json_array_get(res, 2), "trackResults"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(tr2, "error"), "code")),
			    "TRACKING.TRACKINGNUMBER.NOTFOUND");
	json_decref(j);
	/* empty and too many */
	assert_int_equal(sbt_req(&t, "POST", "/track/v1/trackingnumbers", h, "{\"trackingInfo\":[]}", &r), 0);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "TRACKING.TRACKINGNUMBER.EMPTY"));
	sbt_free(&r);
	char big[8192] = "{\"trackingInfo\":[";
	for (int i = 0; i < 31; i++) {
		size_t l = strlen(big);
		snprintf(big + l, sizeof(big) - l, "%s{\"trackingNumberInfo\":{\"trackingNumber\":\"1%011d\"}}",
			 i ? "," : "", i);
	}
	size_t bl = strlen(big);
	snprintf(big + bl, sizeof(big) - bl, "]}");
	assert_int_equal(sbt_req(&t, "POST", "/track/v1/trackingnumbers", h, big, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	json_decref(ns);
	sbt_stop(&t);
}

static void test_usps_and_limits(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char auth[256], path[256], buf[64], err[256];
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const jh[] = { "Content-Type: application/json", NULL };
	assert_int_equal(sbt_req(&t, "POST", "/oauth2/v3/token", jh,
				 "{\"grant_type\":\"client_credentials\",\"client_id\":\"usps-sandbox-client\","
				 "\"client_secret\":\"nope\"}", &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "invalid_client"));
	sbt_free(&r);
	bearer(&t, "/oauth2/v3/token", jh,
	       "{\"grant_type\":\"client_credentials\",\"client_id\":\"usps-sandbox-client\","
	       "\"client_secret\":\"usps-sandbox-secret\"}",
	       auth, sizeof(auth));
	const char *const h[] = { auth, NULL };
	json_t *ns = numbers(&t, "usps");
	snprintf(path, sizeof(path), "/tracking/v3/tracking/%s?expand=DETAIL",
		 json_string_value(json_array_get(ns, 0)));
	json_t *tr = sbt_get_json(&t, path, h, 200);
	static const char *const keys[] = { "trackingNumber", "status", "statusCategory",
					    "statusSummary", "mailClass", "destinationZIP",
					    "trackingEvents", NULL };
	if (sbt_has_keys(tr, keys, err, sizeof(err)))
		fail_msg("usps: %s", err);
	json_t *ev = json_array_get(json_object_get(tr, "trackingEvents"), 0);
	static const char *const ekeys[] = { "eventType", "eventTimestamp", "GMTTimestamp", "GMTOffset",
					     "eventCity", "eventCode", NULL };
	if (sbt_has_keys(ev, ekeys, err, sizeof(err)))
		fail_msg("usps event: %s", err);
	assert_int_equal(strlen(json_string_value(json_object_get(ev, "eventTimestamp"))), 19);
	json_decref(tr);
	/* not found; then the bucket (burst 3, 1/s): the 4th call is 429 with Retry-After */
	assert_int_equal(sbt_req(&t, "GET", "/tracking/v3/tracking/9400100000000000000000", h, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	json_t *e = sbt_json(&r);
	assert_non_null(json_object_get(json_object_get(e, "error"), "errors"));
	json_decref(e);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", path, h, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", path, h, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	assert_non_null(sbt_hdr(&r, "Retry-After", buf, sizeof(buf)));
	assert_true(strtol(buf, NULL, 10) >= 1);
	sbt_free(&r);
	assert_int_equal(sbt_tick(&t, 1.0), 0);
	assert_int_equal(sbt_req(&t, "GET", path, h, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	/* a bad token */
	const char *const bad[] = { "Authorization: Bearer nope", NULL };
	assert_int_equal(sbt_tick(&t, 5), 0);
	assert_int_equal(sbt_req(&t, "GET", path, bad, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(sbt_hdr(&r, "WWW-Authenticate", buf, sizeof(buf)));
	sbt_free(&r);
	json_decref(ns);
	sbt_stop(&t);
}

static void test_dhl_and_progress(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char buf[128], path[256];
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const key[] = { "DHL-API-Key: dhl-sandbox-key", NULL };
	const char *const bad[] = { "DHL-API-Key: nope", NULL };
	assert_int_equal(sbt_req(&t, "GET", "/track/shipments?trackingNumber=1", bad, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(sbt_hdr(&r, "Content-Type", buf, sizeof(buf)), "problem+json"));
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", "/track/shipments?trackingNumber=1111111111", key, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(sbt_hdr(&r, "Content-Type", buf, sizeof(buf)), "application/problem+json");
	json_t *p = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(p, "title")), "No result found");
	assert_int_equal(json_integer_value(json_object_get(p, "status")), 404);
	assert_non_null(json_object_get(p, "detail"));
	json_decref(p);
	sbt_free(&r);
	/* a new shipment moves from pre-transit to delivered as time passes */
	assert_int_equal(sbt_req(&t, "POST", "/_sandbox/shipments", NULL, "{\"carrier\":\"dhl\"}", &r), 0);
	assert_int_equal(r.status, 201);
	json_t *s = sbt_json(&r);
	sbt_free(&r);
	snprintf(path, sizeof(path), "/track/shipments?trackingNumber=%s&service=express",
		 json_string_value(json_object_get(s, "tracking_number")));
	json_t *a = sbt_get_json(&t, path, key, 200);
	json_t *sh = json_array_get(json_object_get(a, "shipments"), 0);
	static const char *const keys[] = { "id", "service", "origin", "destination", "status",
					    "details", "events", NULL };
	char err[256];
	if (sbt_has_keys(sh, keys, err, sizeof(err)))
		fail_msg("dhl: %s", err);
	assert_string_equal(json_string_value(json_object_get(json_object_get(sh, "status"), "statusCode")),
			    "pre-transit");
	size_t n0 = json_array_size(json_object_get(sh, "events"));
	assert_int_equal(sbt_tick(&t, 12 * 86400), 0);
	json_t *b = sbt_get_json(&t, path, key, 200);
	json_t *sh2 = json_array_get(json_object_get(b, "shipments"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(sh2, "status"), "statusCode")),
			    "delivered");
	assert_true(json_array_size(json_object_get(sh2, "events")) > n0 + 3);
	/* newest first */
	const char *e0 = json_string_value(json_object_get(json_array_get(json_object_get(sh2, "events"), 0),
							   "statusCode"));
	assert_string_equal(e0, "delivered");
	assert_non_null(json_object_get(json_object_get(sh2, "details"), "proofOfDelivery"));
	json_decref(a);
	json_decref(b);
	json_decref(s);
	/* marketplace fulfillments followed their carriers: some Shopify
	 * fulfillments are delivered now */
	json_t *o = sbt_get_json(&t, "/_sandbox/truth/shopify/shop-1.myshopify.com/orders", NULL, 200);
	char *dump = json_dumps(o, 0);
	assert_non_null(strstr(dump, "\"shipment_status\": \"delivered\""));
	free(dump);
	json_decref(o);
	sbt_stop(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_ups),
		cmocka_unit_test(test_fedex),
		cmocka_unit_test(test_usps_and_limits),
		cmocka_unit_test(test_dhl_and_progress),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
