/*
 * test_sandbox_shopify.c - hub-sandbox's Shopify Admin REST stand-in, run
 * as a process: order and fulfillment shapes against Shopify's reference
 * payloads, authentication, limit bounds, cursor pagination (complete, no
 * overlap, previous links, page_info rules), updated_at_min, the leaky
 * bucket (exact on the simulated clock, and on the real clock: 2.1 req/s is
 * throttled, 1.9 req/s never), fulfillment creation and tracking updates,
 * fulfillment events, signed webhooks (duplicates, reordering, retries) and
 * determinism from the seed.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sbt.h"

#define SHOP1 "/shops/shop-1.myshopify.com/admin/api/2026-07"
#define SHOP2 "/shops/shop-2.myshopify.com/admin/api/2026-07"

static const char *const tok1[] = { "X-Shopify-Access-Token: shpat_sandbox_1", NULL };
static const char *const tok2[] = { "X-Shopify-Access-Token: shpat_sandbox_2", NULL };

/* a frozen clock and no bucket pressure unless a test asks for it */
static const char *const frozen =
	"{\"speed\":0,\"seed\":11,\"orders\":60,\"shops\":2,\"limits_clock\":\"sim\","
	"\"shopify\":{\"bucket_size\":100000}}";

static json_t *get_orders(struct sbt *t, const char *query)
{
	char path[512];
	snprintf(path, sizeof(path), SHOP1 "/orders.json%s", query);
	return sbt_get_json(t, path, tok1, 200);
}

static void test_order_shape(void **state)
{
	struct sbt t;
	char err[512];
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	json_t *fx = sbt_fixture("shopify/rest_2026-07_orders_list_updated_at_min.response.json");
	if (!fx) {
		sbt_stop(&t);
		skip();
	}
	json_t *page = get_orders(&t, "?status=any&limit=250");
	assert_non_null(page);
	json_t *orders = json_object_get(page, "orders");
	assert_int_equal(json_array_size(orders), 60);
	int with_ful = 0, with_discount = 0;
	size_t i;
	json_t *o;
	json_array_foreach(orders, i, o) {
		with_ful += json_array_size(json_object_get(o, "fulfillments")) > 0;
		with_discount += json_array_size(json_object_get(o, "discount_codes")) > 0;
		if (!fx)
			continue;
		/* the fixture's receipt holds gateway test data we do not invent */
		static const char *const ign[] = { ".fulfillments[].receipt", NULL };
		int rc = sbt_shape(json_array_get(json_object_get(fx, "orders"), 0), o,
				   SBT_ALL_KEYS | SBT_NO_EXTRA, ign, err, sizeof(err));
		if (rc)
			fail_msg("order %lld: %s", (long long)json_integer_value(json_object_get(o, "id")),
				 err);
	}
	/* the data are realistic: shipped orders and discounts exist */
	assert_true(with_ful > 10);
	assert_true(with_discount > 0);
	/* amounts are decimal strings, times carry the shop's offset */
	o = json_array_get(orders, 0);
	const char *total = json_string_value(json_object_get(o, "total_price"));
	assert_non_null(strchr(total, '.'));
	const char *created = json_string_value(json_object_get(o, "created_at"));
	assert_true(strlen(created) == 25 && (created[19] == '-' || created[19] == '+'));
	json_decref(page);
	json_decref(fx);
	sbt_stop(&t);
}

static void test_auth_and_limit_bounds(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	const char *const bad[] = { "X-Shopify-Access-Token: shpat_wrong", NULL };
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json", bad, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	json_t *j = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "errors")),
			    "[API] Invalid API key or access token (unrecognized login or wrong password)");
	json_decref(j);
	sbt_free(&r);
	/* a token of another shop does not open this one */
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json", tok2, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json?limit=251", tok1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json?limit=0", tok1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json?limit=250&status=any", tok1, NULL,
				 &r), 0);
	assert_int_equal(r.status, 200);
	char buf[64];
	assert_non_null(sbt_hdr(&r, "X-Shopify-Shop-Api-Call-Limit", buf, sizeof(buf)));
	assert_non_null(sbt_hdr(&r, "X-Request-Id", buf, sizeof(buf)));
	sbt_free(&r);
	/* unknown shop, unknown order */
	assert_int_equal(sbt_req(&t, "GET", "/shops/nope.myshopify.com/admin/api/2026-07/orders.json",
				 tok1, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/1.json", tok1, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	sbt_free(&r);
	/* Host-based addressing reaches the same shop */
	const char *const hosted[] = { "Host: shop-1.myshopify.com",
				       "X-Shopify-Access-Token: shpat_sandbox_1", NULL };
	assert_int_equal(sbt_req(&t, "GET", "/admin/api/2026-07/orders/count.json?status=any",
				 hosted, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	j = sbt_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 60);
	json_decref(j);
	sbt_free(&r);
	sbt_stop(&t);
}

/* Follows next links from first; returns the ids seen (json array). */
static json_t *walk(struct sbt *t, const char *first, int *pages, int *dups)
{
	json_t *ids = json_array();
	json_t *seen = json_object();
	char *url = strdup(first);
	*pages = *dups = 0;
	while (url) {
		struct sbt_resp r;
		assert_int_equal(sbt_req(t, "GET", url, tok1, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		json_t *j = sbt_json(&r);
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(j, "orders"), i, o) {
			char k[32];
			snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
			if (json_object_get(seen, k))
				(*dups)++;
			json_object_set_new(seen, k, json_true());
			json_array_append(ids, json_object_get(o, "id"));
		}
		json_decref(j);
		free(url);
		url = sbt_link(&r, "next");
		if (url)
			assert_non_null(strstr(url, "page_info="));
		sbt_free(&r);
		(*pages)++;
	}
	json_decref(seen);
	return ids;
}

static void test_pagination(void **state)
{
	struct sbt t;
	int pages, dups;
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	json_t *truth = sbt_get_json(&t, "/_sandbox/truth/shopify/shop-1.myshopify.com/orders", NULL,
				     200);
	size_t total = json_array_size(json_object_get(truth, "orders"));
	assert_int_equal(total, 60);
	static const char *const queries[] = {
		"?status=any&limit=7",
		"?status=any&limit=7&order=updated_at%20asc",
		"?status=any&limit=250",
		"?status=any&limit=1&order=id%20asc",
	};
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
		char first[512];
		snprintf(first, sizeof(first), "%s" SHOP1 "/orders.json%s", t.base, queries[q]);
		json_t *ids = walk(&t, first, &pages, &dups);
		assert_int_equal(dups, 0);
		assert_int_equal(json_array_size(ids), total);
		json_decref(ids);
	}
	/* Link URLs are absolute on the host the client used */
	struct sbt_resp r;
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json?status=any&limit=10", tok1, NULL, &r), 0);
	char *next = sbt_link(&r, "next");
	assert_non_null(next);
	assert_true(strncmp(next, t.base, strlen(t.base)) == 0);
	json_t *p1 = sbt_json(&r);
	sbt_free(&r);
	/* page 2 has a previous link that leads back to page 1 */
	assert_int_equal(sbt_req(&t, "GET", next, tok1, NULL, &r), 0);
	char *prev = sbt_link(&r, "previous");
	assert_non_null(prev);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", prev, tok1, NULL, &r), 0);
	json_t *back = sbt_json(&r);
	assert_true(json_equal(json_object_get(p1, "orders"), json_object_get(back, "orders")));
	assert_null(sbt_link(&r, "previous"));
	sbt_free(&r);
	/* only limit and fields may accompany page_info */
	char bad[4096];
	snprintf(bad, sizeof(bad), "%s&status=any", next);
	assert_int_equal(sbt_req(&t, "GET", bad, tok1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders.json?page_info=garbage", tok1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	free(next);
	free(prev);
	json_decref(p1);
	json_decref(back);
	json_decref(truth);
	sbt_stop(&t);
}

static void test_updated_at_min(void **state)
{
	struct sbt t;
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	json_t *h = sbt_get_json(&t, "/_sandbox/health", NULL, 200);
	char since[64];
	snprintf(since, sizeof(since), "%s", json_string_value(json_object_get(h, "now")));
	long long since_s = sbt_iso_seconds(since);
	json_decref(h);
	assert_int_equal(sbt_tick(&t, 6 * 3600), 0);
	char q[256];
	snprintf(q, sizeof(q), "?status=any&limit=250&updated_at_min=%s", since);
	json_t *page = get_orders(&t, q);
	json_t *all = get_orders(&t, "?status=any&limit=250");
	assert_non_null(page);
	assert_non_null(all);
	/* new orders arrived and some existing ones changed in six hours */
	size_t n = json_array_size(json_object_get(page, "orders"));
	assert_true(json_array_size(json_object_get(all, "orders")) > 60);
	assert_true(n > 0 && n < json_array_size(json_object_get(all, "orders")));
	/* exactly the orders whose updated_at (with its offset) is at or after since */
	json_t *ids = json_object();
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(page, "orders"), i, o) {
		char k[32];
		snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
		json_object_set_new(ids, k, json_true());
		assert_true(sbt_iso_seconds(json_string_value(json_object_get(o, "updated_at"))) >=
			    since_s);
	}
	size_t expect = 0;
	json_array_foreach(json_object_get(all, "orders"), i, o) {
		long long u = sbt_iso_seconds(json_string_value(json_object_get(o, "updated_at")));
		char k[32];
		snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
		if (u >= since_s) {
			expect++;
			assert_non_null(json_object_get(ids, k));
		}
	}
	assert_int_equal(expect, n);
	json_decref(all);
	json_decref(ids);
	json_decref(page);
	sbt_stop(&t);
}

/* The bucket on the simulated clock: exact rates, no sleeping. */
static void test_bucket_exact(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char buf[64];
	const char *cfg = "{\"speed\":0,\"seed\":5,\"orders\":3,\"shops\":2,\"limits_clock\":\"sim\"}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	/* fill the bucket to 39 at one instant */
	for (int i = 0; i < 39; i++) {
		assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
	}
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
	assert_string_equal(sbt_hdr(&r, "X-Shopify-Shop-Api-Call-Limit", buf, sizeof(buf)), "40/40");
	sbt_free(&r);
	/* full: 429 with a fractional Retry-After */
	assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	assert_non_null(sbt_hdr(&r, "Retry-After", buf, sizeof(buf)));
	double ra = strtod(buf, NULL);
	assert_true(ra > 0.4 && ra <= 0.5 + 1e-9);
	assert_non_null(strchr(buf, '.'));
	sbt_free(&r);
	/* 2.1 requests per simulated second: throttled within 30 requests */
	int first429 = -1;
	for (int i = 0; i < 60 && first429 < 0; i++) {
		assert_int_equal(sbt_tick(&t, 1.0 / 2.1), 0);
		assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
		if (r.status == 429)
			first429 = i;
		else
			assert_int_equal(r.status, 200);
		sbt_free(&r);
	}
	assert_true(first429 >= 0);
	/* 1.9 requests per second from a bucket at 40: never throttled */
	for (int i = 0; i < 40; i++) {
		assert_int_equal(sbt_req(&t, "GET", SHOP2 "/orders/count.json", tok2, NULL, &r), 0);
		sbt_free(&r);
	}
	for (int i = 0; i < 300; i++) {
		assert_int_equal(sbt_tick(&t, 1.0 / 1.9), 0);
		assert_int_equal(sbt_req(&t, "GET", SHOP2 "/orders/count.json", tok2, NULL, &r), 0);
		if (r.status != 200)
			fail_msg("1.9 req/s throttled at request %d: %ld", i, r.status);
		sbt_free(&r);
	}
	/* the leak: 20 s later, 40 requests fit again */
	assert_int_equal(sbt_tick(&t, 20), 0);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
	}
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	json_t *shops = json_object_get(json_object_get(st, "stores"), "shopify");
	assert_true(json_integer_value(json_object_get(json_array_get(shops, 0), "throttled")) >= 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(shops, 1), "throttled")), 0);
	json_decref(st);
	sbt_stop(&t);
}

static void sleep_until(long long ms)
{
	long long now = sbt_ms();
	if (ms > now)
		usleep((useconds_t)((ms - now) * 1000));
}

/* The bucket on the real clock, both shops paced at once from a full
 * bucket: 2.1 req/s overflows it, 1.9 req/s drains it. */
static void test_bucket_real_clock(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	const char *cfg = "{\"speed\":1,\"seed\":5,\"orders\":3,\"shops\":2}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	/* fill both buckets (a little leaks away while filling) */
	for (int i = 0; i < 40; i++) {
		assert_int_equal(sbt_req(&t, "GET", SHOP1 "/orders/count.json", tok1, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
		assert_int_equal(sbt_req(&t, "GET", SHOP2 "/orders/count.json", tok2, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
	}
	long long t0 = sbt_ms();
	int n1 = 0, n2 = 0, thr1 = 0, thr2 = 0;
	while (sbt_ms() - t0 < 8000) {
		long long due1 = t0 + (long long)((n1 + 1) * 1000.0 / 2.1);
		long long due2 = t0 + (long long)((n2 + 1) * 1000.0 / 1.9);
		int one = due1 <= due2;
		sleep_until(one ? due1 : due2);
		assert_int_equal(sbt_req(&t, "GET", one ? SHOP1 "/orders/count.json"
							: SHOP2 "/orders/count.json",
					 one ? tok1 : tok2, NULL, &r), 0);
		if (one) {
			n1++;
			thr1 += r.status == 429;
		} else {
			n2++;
			thr2 += r.status == 429;
		}
		sbt_free(&r);
	}
	assert_true(n1 >= 15 && n2 >= 13);
	assert_true(thr1 > 0);
	assert_int_equal(thr2, 0);
	sbt_stop(&t);
}

/* An order with nothing fulfilled yet, paid and not cancelled. */
static json_t *unfulfilled(struct sbt *t)
{
	json_t *page = get_orders(t, "?status=open&financial_status=paid&limit=250");
	size_t i;
	json_t *o, *found = NULL;
	json_array_foreach(json_object_get(page, "orders"), i, o) {
		if (json_is_null(json_object_get(o, "fulfillment_status")) &&
		    json_array_size(json_object_get(o, "line_items")) >= 2) {
			found = json_incref(o);
			break;
		}
	}
	json_decref(page);
	return found;
}

static void test_fulfillment_flow(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char path[512], body[1024], err[512];
	const char *cfg = "{\"speed\":0,\"seed\":11,\"orders\":60,\"shops\":2,\"auto_fulfill\":0,"
			  "\"limits_clock\":\"sim\",\"shopify\":{\"bucket_size\":100000}}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	json_t *o = unfulfilled(&t);
	assert_non_null(o);
	long long oid = json_integer_value(json_object_get(o, "id"));
	snprintf(path, sizeof(path), SHOP1 "/orders/%lld/fulfillment_orders.json", oid);
	json_t *fos = sbt_get_json(&t, path, tok1, 200);
	json_t *fo = json_array_get(json_object_get(fos, "fulfillment_orders"), 0);
	assert_string_equal(json_string_value(json_object_get(fo, "status")), "open");
	long long foid = json_integer_value(json_object_get(fo, "id"));
	json_t *li = json_array_get(json_object_get(fo, "line_items"), 0);
	long long folid = json_integer_value(json_object_get(li, "id"));
	/* the request has the 2026-07 fixture's form; only ids differ */
	snprintf(body, sizeof(body),
		 "{\"fulfillment\":{\"message\":\"The package was shipped this morning.\","
		 "\"notify_customer\":false,\"tracking_info\":{\"number\":\"1Z001985YW99744790\","
		 "\"company\":\"UPS\"},\"line_items_by_fulfillment_order\":[{\"fulfillment_order_id\":%lld,"
		 "\"fulfillment_order_line_items\":[{\"id\":%lld,\"quantity\":1}]}]}}",
		 foid, folid);
	const char *const post[] = { "X-Shopify-Access-Token: shpat_sandbox_1",
				     "Content-Type: application/json", NULL };
	assert_int_equal(sbt_req(&t, "POST", SHOP1 "/fulfillments.json", post, body, &r), 0);
	assert_int_equal(r.status, 201);
	json_t *created = sbt_json(&r);
	sbt_free(&r);
	json_t *ful = json_object_get(created, "fulfillment");
	json_t *fx = sbt_fixture("shopify/rest_2026-07_fulfillment_create_with_tracking_ups.response.json");
	if (fx) {
		if (sbt_shape(json_object_get(fx, "fulfillment"), ful, SBT_ALL_KEYS | SBT_NO_EXTRA,
			      NULL, err, sizeof(err)))
			fail_msg("fulfillment: %s", err);
		json_decref(fx);
	}
	assert_string_equal(json_string_value(json_object_get(ful, "tracking_number")),
			    "1Z001985YW99744790");
	assert_string_equal(json_string_value(json_object_get(ful, "tracking_company")), "UPS");
	assert_int_equal(json_integer_value(json_object_get(ful, "order_id")), oid);
	long long fid = json_integer_value(json_object_get(ful, "id"));
	/* the order moved: partial now, updated_at changed, the fulfillment order in progress */
	snprintf(path, sizeof(path), SHOP1 "/orders/%lld.json", oid);
	json_t *after = sbt_get_json(&t, path, tok1, 200);
	json_t *ao = json_object_get(after, "order");
	assert_string_equal(json_string_value(json_object_get(ao, "fulfillment_status")), "partial");
	assert_int_equal(json_array_size(json_object_get(ao, "fulfillments")), 1);
	/* the same quantity again is refused */
	assert_int_equal(sbt_req(&t, "POST", SHOP1 "/fulfillments.json", post, body, &r), 0);
	assert_true(r.status == 422 || r.status == 201);
	sbt_free(&r);
	/* the carrier knows the pushed number: UPS tracks it */
	const char *const basic[] = {
		"Authorization: Basic dXBzLXNhbmRib3gtY2xpZW50OnVwcy1zYW5kYm94LXNlY3JldA==",
		"Content-Type: application/x-www-form-urlencoded", NULL };
	assert_int_equal(sbt_req(&t, "POST", "/security/v1/oauth/token", basic,
				 "grant_type=client_credentials", &r), 0);
	assert_int_equal(r.status, 200);
	json_t *tk = sbt_json(&r);
	sbt_free(&r);
	char auth[256];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		 json_string_value(json_object_get(tk, "access_token")));
	const char *const ups[] = { auth, "transId: t1", "transactionSrc: hub-test", NULL };
	json_t *tr = sbt_get_json(&t, "/api/track/v1/details/1Z001985YW99744790", ups, 200);
	assert_non_null(tr);
	json_decref(tr);
	/* update_tracking moves the number */
	snprintf(path, sizeof(path), SHOP1 "/fulfillments/%lld/update_tracking.json", fid);
	assert_int_equal(sbt_req(&t, "POST", path, post,
				 "{\"fulfillment\":{\"notify_customer\":true,\"tracking_info\":"
				 "{\"company\":\"FedEx\",\"number\":\"123456789012\"}}}", &r), 0);
	assert_int_equal(r.status, 200);
	json_t *upd = sbt_json(&r);
	sbt_free(&r);
	json_t *uf = json_object_get(upd, "fulfillment");
	assert_string_equal(json_string_value(json_object_get(uf, "tracking_number")), "123456789012");
	assert_string_equal(json_string_value(json_object_get(uf, "tracking_company")), "FedEx");
	assert_non_null(strstr(json_string_value(json_object_get(uf, "tracking_url")), "fedex"));
	/* fulfillment events: create one, read it back, shipment_status moves */
	snprintf(path, sizeof(path), SHOP1 "/orders/%lld/fulfillments/%lld/events.json", oid, fid);
	assert_int_equal(sbt_req(&t, "POST", path, post, "{\"event\":{\"status\":\"in_transit\"}}", &r),
			 0);
	assert_int_equal(r.status, 201);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "POST", path, post, "{\"event\":{\"status\":\"teleported\"}}", &r),
			 0);
	assert_int_equal(r.status, 422);
	sbt_free(&r);
	json_t *evs = sbt_get_json(&t, path, tok1, 200);
	assert_int_equal(json_array_size(json_object_get(evs, "fulfillment_events")), 1);
	snprintf(path, sizeof(path), SHOP1 "/orders/%lld/fulfillments/%lld.json", oid, fid);
	json_t *f2 = sbt_get_json(&t, path, tok1, 200);
	assert_string_equal(json_string_value(json_object_get(json_object_get(f2, "fulfillment"),
							       "shipment_status")),
			    "in_transit");
	/* unknown fulfillment order */
	assert_int_equal(sbt_req(&t, "POST", SHOP1 "/fulfillments.json", post,
				 "{\"fulfillment\":{\"line_items_by_fulfillment_order\":"
				 "[{\"fulfillment_order_id\":1}]}}", &r), 0);
	assert_int_equal(r.status, 404);
	sbt_free(&r);
	json_decref(f2);
	json_decref(evs);
	json_decref(upd);
	json_decref(tk);
	json_decref(after);
	json_decref(created);
	json_decref(fos);
	json_decref(o);
	sbt_stop(&t);
}

static void test_webhooks(void **state)
{
	struct sbt t;
	struct sbt_hooks h;
	char cfg[1024], buf[256], sig[128];
	assert_int_equal(sbt_hooks_start(&h), 0);
	snprintf(cfg, sizeof(cfg),
		 "{\"speed\":0,\"seed\":21,\"orders\":10,\"shopify_shops\":2,\"woocommerce_stores\":0,"
		 "\"amazon_sellers\":0,\"order_interval_s\":300,"
		 "\"webhooks\":{\"shopify\":\"http://127.0.0.1:%d/hooks/{connector}\","
		 "\"duplicate\":0.25,\"out_of_order\":0.25,\"reorder_ms\":200,\"connections\":1}}",
		 h.port);
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	assert_int_equal(sbt_tick(&t, 8 * 3600), 0);
	/* wait until the sandbox has nothing left to send */
	for (int i = 0; i < 200; i++) {
		sbt_hooks_run(&h, 50);
		json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
		json_t *wh = json_object_get(st, "webhooks");
		long pending = (long)json_integer_value(json_object_get(wh, "pending"));
		long sent = (long)json_integer_value(json_object_get(wh, "sent"));
		json_decref(st);
		if (pending == 0 && h.n >= sent)
			break;
	}
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	json_t *wh = json_object_get(st, "webhooks");
	long sent = (long)json_integer_value(json_object_get(wh, "sent"));
	long dup = (long)json_integer_value(json_object_get(wh, "duplicates"));
	long late = (long)json_integer_value(json_object_get(wh, "out_of_order"));
	assert_true(sent >= 80);
	assert_int_equal(h.n, sent);
	long unique_events = sent - dup;
	/* configured shares: 25% each, within a generous binomial band */
	assert_true(dup > unique_events * 0.12 && dup < unique_events * 0.40);
	assert_true(late > unique_events * 0.12 && late < unique_events * 0.40);
	json_t *ids = json_object();
	int repeated = 0, creates = 0, inversions = 0;
	char last_trig[64] = "";
	for (int i = 0; i < h.n; i++) {
		struct sbt_hook *d = &h.items[i];
		char topic[64], domain[128], wid[64], ver[32], trig[64], eid[64], path[128];
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-Topic", topic, sizeof(topic)));
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-Shop-Domain", domain, sizeof(domain)));
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-Webhook-Id", wid, sizeof(wid)));
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-API-Version", ver, sizeof(ver)));
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-Triggered-At", trig, sizeof(trig)));
		assert_non_null(sbt_hook_hdr(d, "X-Shopify-Event-Id", eid, sizeof(eid)));
		assert_non_null(sbt_hook_hdr(d, "X-Test-Path", path, sizeof(path)));
		assert_true(!strcmp(topic, "orders/create") || !strcmp(topic, "orders/updated") ||
			    !strcmp(topic, "orders/cancelled") || !strcmp(topic, "fulfillments/create"));
		creates += !strcmp(topic, "orders/create");
		/* the connector in the URL template matches the shop */
		int n = domain[5] - '0';
		char want[64];
		snprintf(want, sizeof(want), "/hooks/shopify-%d", n);
		assert_string_equal(path, want);
		/* signature: base64 HMAC-SHA256 of the raw body with the shop's secret */
		char secret[64];
		snprintf(secret, sizeof(secret), "shopify-secret-%d", n);
		sbt_hmac_b64(secret, d->body, d->len, sig, sizeof(sig));
		assert_string_equal(sbt_hook_hdr(d, "X-Shopify-Hmac-Sha256", buf, sizeof(buf)), sig);
		json_t *body = json_loadb(d->body, d->len, 0, NULL);
		assert_non_null(body);
		assert_true(json_is_integer(json_object_get(body, "id")));
		json_decref(body);
		if (json_object_get(ids, wid))
			repeated++;
		json_object_set_new(ids, wid, json_true());
		if (last_trig[0] && strcmp(trig, last_trig) < 0)
			inversions++;
		snprintf(last_trig, sizeof(last_trig), "%s", trig);
	}
	assert_true(creates > 0);
	assert_int_equal(repeated, dup);
	assert_true(inversions > 0);
	json_decref(ids);
	json_decref(st);
	sbt_stop(&t);
	sbt_hooks_stop(&h);
}

static void test_webhook_retries(void **state)
{
	struct sbt t;
	struct sbt_hooks h;
	char cfg[1024];
	assert_int_equal(sbt_hooks_start(&h), 0);
	h.reply_status = 503;
	snprintf(cfg, sizeof(cfg),
		 "{\"speed\":0,\"seed\":22,\"orders\":2,\"shopify_shops\":1,\"woocommerce_stores\":0,"
		 "\"amazon_sellers\":0,\"order_interval_s\":3600,"
		 "\"webhooks\":{\"shopify\":\"http://127.0.0.1:%d/h\",\"retries\":2,\"retry_ms\":50}}",
		 h.port);
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	/* one new order at least: orders/create + orders/updated */
	assert_int_equal(sbt_tick(&t, 4 * 3600), 0);
	sbt_hooks_wait(&h, 1, 5000);
	sbt_hooks_run(&h, 1500);
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	json_t *wh = json_object_get(st, "webhooks");
	long failed = (long)json_integer_value(json_object_get(wh, "failed"));
	long retries = (long)json_integer_value(json_object_get(wh, "retries"));
	assert_true(failed > 0);
	assert_int_equal(retries, failed * 2);
	assert_int_equal(h.n, failed * 3);
	/* every attempt of a delivery keeps its webhook id */
	char a[64], b[64];
	sbt_hook_hdr(&h.items[0], "X-Shopify-Webhook-Id", a, sizeof(a));
	int same = 0;
	for (int i = 0; i < h.n; i++)
		same += !strcmp(sbt_hook_hdr(&h.items[i], "X-Shopify-Webhook-Id", b, sizeof(b)), a);
	assert_int_equal(same, 3);
	json_decref(st);
	sbt_stop(&t);
	sbt_hooks_stop(&h);
}

static char *truth_body(struct sbt *t, const char *path)
{
	struct sbt_resp r;
	assert_int_equal(sbt_req(t, "GET", path, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	char *b = r.body;
	r.body = NULL;
	sbt_free(&r);
	return b;
}

static void test_determinism(void **state)
{
	static const char *const paths[] = {
		"/_sandbox/truth/shopify/shop-2.myshopify.com/orders",
		"/_sandbox/truth/woocommerce/woo-1.example.com/orders",
		"/_sandbox/truth/amazon/A1SANDBOXSELLER1/orders",
		"/_sandbox/truth/usps/shipments",
	};
	struct sbt a, b, c;
	const char *cfg = "{\"speed\":0,\"seed\":99,\"orders\":25,\"shops\":2,\"order_interval_s\":1800,"
			  "\"start\":\"2026-03-02T12:00:00Z\"}";
	const char *cfg2 = "{\"speed\":0,\"seed\":100,\"orders\":25,\"shops\":2,\"order_interval_s\":1800,"
			   "\"start\":\"2026-03-02T12:00:00Z\"}";
	assert_int_equal(sbt_start(&a, cfg, NULL), 0);
	assert_int_equal(sbt_start(&b, cfg, NULL), 0);
	assert_int_equal(sbt_start(&c, cfg2, NULL), 0);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			char *x = truth_body(&a, paths[i]), *y = truth_body(&b, paths[i]),
			     *z = truth_body(&c, paths[i]);
			assert_true(strlen(x) > 100);
			if (strcmp(x, y))
				fail_msg("%s differs between two runs with the same seed", paths[i]);
			assert_true(strcmp(x, z) != 0);
			free(x);
			free(y);
			free(z);
		}
		/* and it stays equal as simulated time passes */
		assert_int_equal(sbt_tick(&a, 3 * 86400), 0);
		assert_int_equal(sbt_tick(&b, 3 * 86400), 0);
		assert_int_equal(sbt_tick(&c, 3 * 86400), 0);
	}
	sbt_stop(&a);
	sbt_stop(&b);
	sbt_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_shape),
		cmocka_unit_test(test_auth_and_limit_bounds),
		cmocka_unit_test(test_pagination),
		cmocka_unit_test(test_updated_at_min),
		cmocka_unit_test(test_bucket_exact),
		cmocka_unit_test(test_bucket_real_clock),
		cmocka_unit_test(test_fulfillment_flow),
		cmocka_unit_test(test_webhooks),
		cmocka_unit_test(test_webhook_retries),
		cmocka_unit_test(test_determinism),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
