/*
 * test_sandbox_amazon.c - hub-sandbox's Amazon SP-API stand-in, run as a
 * process: Login with Amazon (form and JSON bodies, client and grant
 * errors, tokens expiring on the simulated clock), searchOrders against the
 * Orders API 2026-01-01 model's example (includedData, the two-minute lag,
 * nextToken pagination complete and without overlap, filters), getOrder,
 * per-operation token buckets with x-amzn-RateLimit-Limit and 429 in the
 * SP-API error shape, and shipment confirmation reaching the carrier.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sbt.h"

#define SEARCH "/orders/2026-01-01/orders"
#define LWA_FORM                                                                            \
	"grant_type=refresh_token&refresh_token=Atzr%7Csandbox-refresh-1"                   \
	"&client_id=amzn1.application-oa2-client.sandbox&client_secret=amzn-sandbox-lwa-secret"

static const char *const form_hdr[] = { "Content-Type: application/x-www-form-urlencoded", NULL };

/* Gets an access token for seller 1; fills hdr ("x-amz-access-token: ..."). */
static void token(struct sbt *t, char *hdr, size_t size)
{
	struct sbt_resp r;
	assert_int_equal(sbt_req(t, "POST", "/auth/o2/token", form_hdr, LWA_FORM, &r), 0);
	assert_int_equal(r.status, 200);
	json_t *j = sbt_json(&r);
	snprintf(hdr, size, "x-amz-access-token: %s",
		 json_string_value(json_object_get(j, "access_token")));
	json_decref(j);
	sbt_free(&r);
}

static void test_lwa(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	const char *cfg = "{\"speed\":0,\"seed\":41,\"orders\":10,\"shops\":1,"
			  "\"amazon\":{\"token_ttl_s\":60}}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	assert_int_equal(sbt_req(&t, "POST", "/auth/o2/token", form_hdr, LWA_FORM, &r), 0);
	assert_int_equal(r.status, 200);
	json_t *j = sbt_json(&r);
	const char *at = json_string_value(json_object_get(j, "access_token"));
	assert_non_null(at);
	assert_true(strncmp(at, "Atza|", 5) == 0);
	assert_string_equal(json_string_value(json_object_get(j, "token_type")), "bearer");
	assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 60);
	char hdr[256];
	snprintf(hdr, sizeof(hdr), "x-amz-access-token: %s", at);
	json_decref(j);
	sbt_free(&r);
	/* the same request as JSON */
	const char *const json_hdr[] = { "Content-Type: application/json", NULL };
	assert_int_equal(sbt_req(&t, "POST", "/auth/o2/token", json_hdr,
				 "{\"grant_type\":\"refresh_token\",\"refresh_token\":\"Atzr|sandbox-refresh-1\","
				 "\"client_id\":\"amzn1.application-oa2-client.sandbox\","
				 "\"client_secret\":\"amzn-sandbox-lwa-secret\"}", &r), 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	/* errors */
	assert_int_equal(sbt_req(&t, "POST", "/auth/o2/token", form_hdr,
				 "grant_type=refresh_token&refresh_token=Atzr%7Csandbox-refresh-1"
				 "&client_id=amzn1.application-oa2-client.sandbox&client_secret=nope", &r), 0);
	assert_int_equal(r.status, 401);
	j = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_client");
	assert_non_null(json_object_get(j, "error_description"));
	json_decref(j);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "POST", "/auth/o2/token", form_hdr,
				 "grant_type=refresh_token&refresh_token=Atzr%7Cunknown"
				 "&client_id=amzn1.application-oa2-client.sandbox&client_secret=amzn-sandbox-lwa-secret",
				 &r), 0);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "invalid_grant"));
	sbt_free(&r);
	/* the token works, then expires on the simulated clock */
	const char *const ok[] = { hdr, NULL };
	assert_int_equal(sbt_req(&t, "GET", SEARCH "?createdAfter=2026-01-01T00:00:00Z", ok, NULL, &r),
			 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	assert_int_equal(sbt_tick(&t, 61), 0);
	assert_int_equal(sbt_req(&t, "GET", SEARCH "?createdAfter=2026-01-01T00:00:00Z", ok, NULL, &r),
			 0);
	assert_int_equal(r.status, 403);
	j = sbt_json(&r);
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	assert_string_equal(json_string_value(json_object_get(e0, "code")), "Unauthorized");
	assert_non_null(strstr(json_string_value(json_object_get(e0, "message")), "expired"));
	json_decref(j);
	sbt_free(&r);
	/* no token at all */
	assert_int_equal(sbt_req(&t, "GET", SEARCH "?createdAfter=2026-01-01T00:00:00Z", NULL, NULL, &r),
			 0);
	assert_int_equal(r.status, 403);
	sbt_free(&r);
	sbt_stop(&t);
}

static void test_search_shape_and_pages(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char hdr[256], err[512], url[4096];
	const char *cfg = "{\"speed\":0,\"seed\":42,\"orders\":45,\"shops\":1,"
			  "\"amazon\":{\"search_orders_rate\":100,\"search_orders_burst\":100}}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	token(&t, hdr, sizeof(hdr));
	const char *const h[] = { hdr, NULL };
	/* the model's example of searchOrders */
	json_t *model = sbt_fixture("amazon-sp-api/orders_2026-01-01.json");
	json_t *example = model ? json_object_get(json_object_get(json_object_get(json_object_get(
							  json_object_get(json_object_get(json_object_get(
										  model, "paths"),
									  SEARCH),
									  "get"),
							  "responses"),
						  "200"),
					  "examples"),
				  "application/json")
				: NULL;
	assert_int_equal(sbt_req(&t, "GET",
				 SEARCH "?lastUpdatedAfter=2026-01-01T00:00:00Z&maxResultsPerPage=7"
					"&includedData=BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,PACKAGES,CANCELLATION",
				 h, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	char buf[64];
	assert_string_equal(sbt_hdr(&r, "x-amzn-RateLimit-Limit", buf, sizeof(buf)), "100");
	assert_non_null(sbt_hdr(&r, "x-amzn-RequestId", buf, sizeof(buf)));
	json_t *page = sbt_json(&r);
	sbt_free(&r);
	assert_int_equal(json_array_size(json_object_get(page, "orders")), 7);
	if (model) {
		assert_non_null(json_object_get(example, "orders"));
		if (sbt_shape(example, page, SBT_NO_EXTRA, NULL, err, sizeof(err)))
			fail_msg("searchOrders: %s", err);
	}
	static const char *const required[] = { "orderId", "createdTime", "lastUpdatedTime",
						"salesChannel", "orderItems", "buyer", "recipient",
						"proceeds", "fulfillment", NULL };
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(page, "orders"), i, o)
		if (sbt_has_keys(o, required, err, sizeof(err)))
			fail_msg("order: %s", err);
	/* the upper bound is two minutes before now */
	json_t *hl = sbt_get_json(&t, "/_sandbox/health", NULL, 200);
	long long now = sbt_iso_seconds(json_string_value(json_object_get(hl, "now")));
	json_decref(hl);
	long long lub = sbt_iso_seconds(json_string_value(json_object_get(page, "lastUpdatedBefore")));
	assert_true(lub <= now - 120 && lub >= now - 121);
	/* walk every page: no overlap, complete */
	json_t *seen = json_object();
	int count = 0, pages = 0;
	const char *tokn = json_string_value(json_object_get(json_object_get(page, "pagination"),
							     "nextToken"));
	json_array_foreach(json_object_get(page, "orders"), i, o) {
		json_object_set_new(seen, json_string_value(json_object_get(o, "orderId")), json_true());
		count++;
	}
	char *next = tokn ? strdup(tokn) : NULL;
	json_decref(page);
	while (next) {
		char *enc = curl_easy_escape(t.curl, next, 0);
		snprintf(url, sizeof(url), SEARCH "?paginationToken=%s&maxResultsPerPage=7", enc);
		curl_free(enc);
		free(next);
		next = NULL;
		json_t *p = sbt_get_json(&t, url, h, 200);
		assert_non_null(p);
		json_array_foreach(json_object_get(p, "orders"), i, o) {
			const char *id = json_string_value(json_object_get(o, "orderId"));
			assert_null(json_object_get(seen, id));
			json_object_set_new(seen, id, json_true());
			count++;
		}
		const char *nt = json_string_value(json_object_get(json_object_get(p, "pagination"),
								   "nextToken"));
		if (nt)
			next = strdup(nt);
		json_decref(p);
		pages++;
	}
	assert_int_equal(count, 45);
	assert_int_equal(pages, 6);
	/* filters: fulfillmentStatuses, and the 400s of the model */
	json_t *sh = sbt_get_json(&t, SEARCH "?createdAfter=2026-01-01T00:00:00Z&fulfillmentStatuses=SHIPPED"
					  "&includedData=FULFILLMENT,PACKAGES", h, 200);
	assert_true(json_array_size(json_object_get(sh, "orders")) > 0);
	assert_non_null(json_object_get(sh, "createdBefore"));
	json_array_foreach(json_object_get(sh, "orders"), i, o) {
		assert_string_equal(json_string_value(json_object_get(json_object_get(o, "fulfillment"),
								      "fulfillmentStatus")),
				    "SHIPPED");
		assert_true(json_array_size(json_object_get(o, "packages")) > 0);
	}
	json_decref(sh);
	static const char *const bad[] = {
		SEARCH,
		SEARCH "?createdAfter=2026-01-01T00:00:00Z&lastUpdatedAfter=2026-01-01T00:00:00Z",
		SEARCH "?createdAfter=2026-01-01T00:00:00Z&lastUpdatedBefore=2026-02-01T00:00:00Z",
		SEARCH "?createdAfter=2099-01-01T00:00:00Z",
		SEARCH "?createdAfter=2026-01-01T00:00:00Z&maxResultsPerPage=101",
		SEARCH "?createdAfter=nonsense",
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		assert_int_equal(sbt_req(&t, "GET", bad[k], h, NULL, &r), 0);
		if (r.status != 400)
			fail_msg("%s: %ld", bad[k], r.status);
		json_t *e = sbt_json(&r);
		assert_string_equal(json_string_value(json_object_get(
					    json_array_get(json_object_get(e, "errors"), 0), "code")),
				    "InvalidInput");
		json_decref(e);
		sbt_free(&r);
	}
	json_decref(seen);
	json_decref(model);
	sbt_stop(&t);
}

static void test_rate_limits(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char hdr[256], buf[64];
	const char *cfg = "{\"speed\":0,\"seed\":43,\"orders\":5,\"shops\":1,\"limits_clock\":\"sim\","
			  "\"amazon\":{\"search_orders_rate\":0.5,\"search_orders_burst\":3}}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	token(&t, hdr, sizeof(hdr));
	const char *const h[] = { hdr, NULL };
	const char *q = SEARCH "?createdAfter=2026-01-01T00:00:00Z";
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sbt_req(&t, "GET", q, h, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		assert_string_equal(sbt_hdr(&r, "x-amzn-RateLimit-Limit", buf, sizeof(buf)), "0.5");
		sbt_free(&r);
	}
	assert_int_equal(sbt_req(&t, "GET", q, h, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	json_t *e = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(e, "errors"), 0),
							      "code")),
			    "QuotaExceeded");
	json_decref(e);
	sbt_free(&r);
	/* one token every two simulated seconds */
	assert_int_equal(sbt_tick(&t, 1.9), 0);
	assert_int_equal(sbt_req(&t, "GET", q, h, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	sbt_free(&r);
	assert_int_equal(sbt_tick(&t, 0.2), 0);
	assert_int_equal(sbt_req(&t, "GET", q, h, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	/* buckets are per operation: getOrder still has its burst */
	json_t *tr = sbt_get_json(&t, "/_sandbox/truth/amazon/A1SANDBOXSELLER1/orders", NULL, 200);
	const char *oid = json_string_value(json_object_get(json_array_get(json_object_get(tr, "orders"), 0),
							    "orderId"));
	char path[256];
	snprintf(path, sizeof(path), "/orders/2026-01-01/orders/%s?includedData=BUYER", oid);
	assert_int_equal(sbt_req(&t, "GET", path, h, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(sbt_hdr(&r, "x-amzn-RateLimit-Limit", buf, sizeof(buf)), "0.5");
	e = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "order"), "orderId")),
			    oid);
	json_decref(e);
	sbt_free(&r);
	json_decref(tr);
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(st, "apis"),
									     "amazon"),
							     "throttled")),
			 2);
	json_decref(st);
	sbt_stop(&t);
}

static void test_confirm_shipment(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char hdr[256], path[256], body[1024];
	const char *cfg = "{\"speed\":0,\"seed\":44,\"orders\":30,\"shops\":1,\"auto_fulfill\":0}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	token(&t, hdr, sizeof(hdr));
	const char *const h[] = { hdr, "Content-Type: application/json", NULL };
	json_t *un = sbt_get_json(&t, SEARCH "?createdAfter=2026-01-01T00:00:00Z"
					  "&fulfillmentStatuses=UNSHIPPED&includedData=FULFILLMENT",
				  h, 200);
	json_t *o = json_array_get(json_object_get(un, "orders"), 0);
	assert_non_null(o);
	const char *oid = json_string_value(json_object_get(o, "orderId"));
	json_t *item = json_array_get(json_object_get(o, "orderItems"), 0);
	const char *iid = json_string_value(json_object_get(item, "orderItemId"));
	int qty = (int)json_integer_value(json_object_get(item, "quantityOrdered"));
	snprintf(path, sizeof(path), "/orders/v0/orders/%s/shipmentConfirmation", oid);
	snprintf(body, sizeof(body),
		 "{\"packageDetail\":{\"packageReferenceId\":\"1\",\"carrierCode\":\"UPS\","
		 "\"shippingMethod\":\"UPS Ground\",\"trackingNumber\":\"1ZA0B1C20312345678\","
		 "\"shipDate\":\"2026-03-02T10:00:00Z\",\"orderItems\":[{\"orderItemId\":\"%s\","
		 "\"quantity\":%d}]},\"marketplaceId\":\"ATVPDKIKX0DER\"}",
		 iid, qty);
	assert_int_equal(sbt_req(&t, "POST", path, h, body, &r), 0);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.len, 0);
	sbt_free(&r);
	/* a bad body and an unknown order */
	assert_int_equal(sbt_req(&t, "POST", path, h, "{\"marketplaceId\":\"ATVPDKIKX0DER\"}", &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "POST", "/orders/v0/orders/111-0000000-0000000/shipmentConfirmation",
				 h, body, &r), 0);
	assert_int_equal(r.status, 404);
	sbt_free(&r);
	/* the order shows the package and its new state */
	snprintf(path, sizeof(path), "/orders/2026-01-01/orders/%s?includedData=PACKAGES,FULFILLMENT", oid);
	json_t *g = sbt_get_json(&t, path, h, 200);
	json_t *go = json_object_get(g, "order");
	json_t *pk = json_array_get(json_object_get(go, "packages"), 0);
	assert_string_equal(json_string_value(json_object_get(pk, "trackingNumber")), "1ZA0B1C20312345678");
	assert_string_equal(json_string_value(json_object_get(pk, "packageReferenceId")), "1");
	const char *fs = json_string_value(json_object_get(json_object_get(go, "fulfillment"),
							   "fulfillmentStatus"));
	assert_true(!strcmp(fs, "SHIPPED") || !strcmp(fs, "PARTIALLY_SHIPPED"));
	json_decref(g);
	/* and UPS tracks the number */
	json_t *tr = sbt_get_json(&t, "/_sandbox/truth/ups/shipments/1ZA0B1C20312345678", NULL, 200);
	assert_non_null(tr);
	json_decref(tr);
	json_decref(un);
	sbt_stop(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lwa),
		cmocka_unit_test(test_search_shape_and_pages),
		cmocka_unit_test(test_rate_limits),
		cmocka_unit_test(test_confirm_shipment),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
