/*
 * test_sandbox_woo.c - hub-sandbox's WooCommerce REST v3 stand-in, run as a
 * process: order shapes against the v3 reference payloads, HTTP Basic and
 * one-legged OAuth 1.0a (HMAC-SHA256 and -SHA1, signature, timestamp and
 * nonce checks, repeated parameters last-wins), page/per_page pagination
 * with X-WP-Total and X-WP-TotalPages, modified_after, status filters,
 * order updates with shipment tracking, signed webhooks with the unsigned
 * ping, and disabling a webhook after more than five failures.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sbt.h"

#define SITE "/stores/woo-1.example.com"
#define ORDERS SITE "/wp-json/wc/v3/orders"

/* "ck_sandbox_1:cs_sandbox_1" */
static const char *const basic1[] = { "Authorization: Basic Y2tfc2FuZGJveF8xOmNzX3NhbmRib3hfMQ==",
				      NULL };

static const char *const frozen =
	"{\"speed\":0,\"seed\":13,\"orders\":40,\"shops\":2,\"order_interval_s\":1200}";

/* ---- an OAuth 1.0a client, as WooCommerce's libraries sign ------------ */

static void enc(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

struct kv {
	char k[64], v[128];
};

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

/* Builds the signed URL for GET base_url with params ("k=v&k=v", not
 * encoded; repeated keys allowed and sent as given, signed last-wins). */
static void oauth_url(const char *base_url, const char *params, const char *method_name,
		      const char *secret, const char *nonce, long ts, int corrupt, char *out,
		      size_t size)
{
	struct kv kv[32];
	int n = 0;
	char copy[512];
	snprintf(copy, sizeof(copy), "%s", params);
	for (char *p = copy, *save = NULL; p && *p; p = save) {
		char *amp = strchr(p, '&');
		save = amp ? amp + 1 : NULL;
		if (amp)
			*amp = '\0';
		char *eq = strchr(p, '=');
		if (!eq)
			continue;
		*eq = '\0';
		int dup = -1;
		for (int i = 0; i < n; i++)
			if (!strcmp(kv[i].k, p))
				dup = i;
		struct kv *slot = dup >= 0 ? &kv[dup] : &kv[n++];
		snprintf(slot->k, sizeof(slot->k), "%.63s", p);
		snprintf(slot->v, sizeof(slot->v), "%.127s", eq + 1);
	}
	snprintf(kv[n].k, sizeof(kv[n].k), "oauth_consumer_key");
	snprintf(kv[n++].v, sizeof(kv[0].v), "ck_sandbox_1");
	snprintf(kv[n].k, sizeof(kv[n].k), "oauth_nonce");
	snprintf(kv[n++].v, sizeof(kv[0].v), "%s", nonce);
	snprintf(kv[n].k, sizeof(kv[n].k), "oauth_signature_method");
	snprintf(kv[n++].v, sizeof(kv[0].v), "%s", method_name);
	snprintf(kv[n].k, sizeof(kv[n].k), "oauth_timestamp");
	snprintf(kv[n++].v, sizeof(kv[0].v), "%ld", ts);
	qsort(kv, (size_t)n, sizeof(kv[0]), kv_cmp);
	char pstr[2048] = "", ek[200], ev[400];
	for (int i = 0; i < n; i++) {
		enc(kv[i].k, ek, sizeof(ek));
		enc(kv[i].v, ev, sizeof(ev));
		size_t l = strlen(pstr);
		snprintf(pstr + l, sizeof(pstr) - l, "%s%s=%s", i ? "&" : "", ek, ev);
	}
	char eurl[1024], eps[4096], base[6000], key[128];
	enc(base_url, eurl, sizeof(eurl));
	enc(pstr, eps, sizeof(eps));
	snprintf(base, sizeof(base), "GET&%s&%s", eurl, eps);
	snprintf(key, sizeof(key), "%s&", secret);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	HMAC(strcmp(method_name, "HMAC-SHA1") ? EVP_sha256() : EVP_sha1(), key, (int)strlen(key),
	     (const unsigned char *)base, strlen(base), mac, &mlen);
	if (corrupt)
		mac[0] ^= 1;
	unsigned char b64[128];
	int bl = EVP_EncodeBlock(b64, mac, (int)mlen);
	char sig[128], esig[256];
	snprintf(sig, sizeof(sig), "%.*s", bl, (const char *)b64);
	enc(sig, esig, sizeof(esig));
	snprintf(out, size, "%s?%s%soauth_consumer_key=ck_sandbox_1&oauth_nonce=%s"
			    "&oauth_signature_method=%s&oauth_timestamp=%ld&oauth_signature=%s",
		 base_url, params, params[0] ? "&" : "", nonce, method_name, ts, esig);
}

/* ---- tests -------------------------------------------------------------- */

static void test_order_shape(void **state)
{
	struct sbt t;
	char err[512];
	json_t *fx = sbt_fixture("woocommerce/v3_orders_list.response.json");
	if (!fx)
		skip();
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	json_t *list = sbt_get_json(&t, ORDERS "?per_page=100", basic1, 200);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 40);
	/* every order against the union of the two reference orders; the
	 * customer link only exists for registered customers, tracking meta
	 * values are arrays */
	static const char *const ign[] = { "[]._links.customer", "[].meta_data[].value", NULL };
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o) {
		json_t *one = json_pack("[O]", o);
		int rc = sbt_shape(fx, one, SBT_ALL_KEYS | SBT_NO_EXTRA, ign, err, sizeof(err));
		json_decref(one);
		if (rc)
			fail_msg("order %lld: %s", (long long)json_integer_value(json_object_get(o, "id")),
				 err);
		/* line item price is a JSON number, *_gmt times have no offset */
		json_t *li = json_array_get(json_object_get(o, "line_items"), 0);
		assert_true(json_is_number(json_object_get(li, "price")));
		assert_int_equal(strlen(json_string_value(json_object_get(o, "date_modified_gmt"))), 19);
		assert_true(json_is_string(json_object_get(o, "total")));
	}
	json_decref(list);
	json_decref(fx);
	sbt_stop(&t);
}

static void test_auth(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char url[4096], path[512];
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	/* no credentials */
	assert_int_equal(sbt_req(&t, "GET", ORDERS, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	json_t *j = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "woocommerce_rest_cannot_view");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "status")), 401);
	json_decref(j);
	sbt_free(&r);
	/* Basic with a wrong secret */
	const char *const wrong[] = { "Authorization: Basic Y2tfc2FuZGJveF8xOm5vcGU=", NULL };
	assert_int_equal(sbt_req(&t, "GET", ORDERS, wrong, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	sbt_free(&r);
	/* OAuth 1.0a over plain HTTP, HMAC-SHA256 and HMAC-SHA1 */
	snprintf(path, sizeof(path), "%s" ORDERS, t.base);
	long now = (long)time(NULL);
	oauth_url(path, "per_page=5", "HMAC-SHA256", "cs_sandbox_1", "n1abc", now, 0, url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	if (r.status != 200)
		fail_msg("oauth: %ld %s", r.status, r.body);
	sbt_free(&r);
	oauth_url(path, "per_page=5", "HMAC-SHA1", "cs_sandbox_1", "n2abc", now, 0, url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	sbt_free(&r);
	/* the same nonce again */
	oauth_url(path, "per_page=5", "HMAC-SHA256", "cs_sandbox_1", "n1abc", now, 0, url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "nonce"));
	sbt_free(&r);
	/* a wrong signature, a wrong secret, an old timestamp */
	oauth_url(path, "per_page=5", "HMAC-SHA256", "cs_sandbox_1", "n3abc", now, 1, url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "Invalid signature"));
	sbt_free(&r);
	oauth_url(path, "per_page=5", "HMAC-SHA256", "cs_other", "n4abc", now, 0, url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	sbt_free(&r);
	oauth_url(path, "per_page=5", "HMAC-SHA256", "cs_sandbox_1", "n5abc", now - 3600, 0, url,
		  sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "timestamp"));
	sbt_free(&r);
	/* a missing OAuth parameter */
	snprintf(url, sizeof(url), "%s?oauth_consumer_key=ck_sandbox_1&oauth_nonce=x", path);
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "woocommerce_rest_authentication_missing_parameter"));
	sbt_free(&r);
	/* repeated parameters: the last wins, for the signature and the query */
	oauth_url(path, "per_page=5&page=1&per_page=3", "HMAC-SHA256", "cs_sandbox_1", "n6abc", now, 0,
		  url, sizeof(url));
	assert_int_equal(sbt_req(&t, "GET", url, NULL, NULL, &r), 0);
	if (r.status != 200)
		fail_msg("repeated params: %ld %s", r.status, r.body);
	j = sbt_json(&r);
	assert_int_equal(json_array_size(j), 3);
	char buf[32];
	assert_string_equal(sbt_hdr(&r, "X-WP-TotalPages", buf, sizeof(buf)), "14");
	json_decref(j);
	sbt_free(&r);
	sbt_stop(&t);
}

static void test_pagination_and_filters(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char path[512], buf[64];
	assert_int_equal(sbt_start(&t, frozen, NULL), 0);
	assert_int_equal(sbt_req(&t, "GET", ORDERS "?per_page=101", basic1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	json_t *j = sbt_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "code")), "rest_invalid_param");
	json_decref(j);
	sbt_free(&r);
	assert_int_equal(sbt_req(&t, "GET", ORDERS "?page=0", basic1, NULL, &r), 0);
	assert_int_equal(r.status, 400);
	sbt_free(&r);
	/* all pages, no overlap, as many as X-WP-Total says */
	json_t *seen = json_object();
	int pages = 0, total = -1, count = 0;
	for (int page = 1;; page++) {
		snprintf(path, sizeof(path), ORDERS "?per_page=7&page=%d", page);
		assert_int_equal(sbt_req(&t, "GET", path, basic1, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		total = (int)strtol(sbt_hdr(&r, "X-WP-Total", buf, sizeof(buf)), NULL, 10);
		pages = (int)strtol(sbt_hdr(&r, "X-WP-TotalPages", buf, sizeof(buf)), NULL, 10);
		j = sbt_json(&r);
		size_t i;
		json_t *o;
		json_array_foreach(j, i, o) {
			char k[32];
			snprintf(k, sizeof(k), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
			assert_null(json_object_get(seen, k));
			json_object_set_new(seen, k, json_true());
			count++;
		}
		char *next = sbt_link(&r, "next");
		assert_true((next != NULL) == (page < pages));
		free(next);
		json_decref(j);
		sbt_free(&r);
		if (page >= pages)
			break;
	}
	assert_int_equal(total, 40);
	assert_int_equal(pages, 6);
	assert_int_equal(count, 40);
	/* beyond the last page: an empty list */
	assert_int_equal(sbt_req(&t, "GET", ORDERS "?per_page=7&page=9", basic1, NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "[]");
	sbt_free(&r);
	/* modified_after (GMT, exclusive) after simulated time passed */
	json_t *h = sbt_get_json(&t, "/_sandbox/health", NULL, 200);
	char since[40];
	snprintf(since, sizeof(since), "%.19s", json_string_value(json_object_get(h, "now")));
	json_decref(h);
	assert_int_equal(sbt_tick(&t, 8 * 3600), 0);
	snprintf(path, sizeof(path), ORDERS "?per_page=100&dates_are_gmt=true&modified_after=%s", since);
	json_t *changed = sbt_get_json(&t, path, basic1, 200);
	json_t *all = sbt_get_json(&t, "/_sandbox/truth/woocommerce/woo-1.example.com/orders", NULL, 200);
	size_t expect = 0, i;
	json_t *o;
	json_array_foreach(all, i, o)
		expect += strcmp(json_string_value(json_object_get(o, "date_modified_gmt")), since) > 0;
	assert_true(expect > 0);
	assert_int_equal(json_array_size(changed), expect);
	/* the status filter */
	json_t *done = sbt_get_json(&t, ORDERS "?per_page=100&status=completed", basic1, 200);
	assert_true(json_array_size(done) > 0);
	json_array_foreach(done, i, o)
		assert_string_equal(json_string_value(json_object_get(o, "status")), "completed");
	json_decref(done);
	json_decref(all);
	json_decref(changed);
	json_decref(seen);
	sbt_stop(&t);
}

static void test_update_with_tracking(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char path[256];
	const char *cfg = "{\"speed\":0,\"seed\":13,\"orders\":40,\"shops\":2,\"auto_fulfill\":0}";
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	json_t *proc = sbt_get_json(&t, ORDERS "?per_page=100&status=processing", basic1, 200);
	assert_true(json_array_size(proc) > 0);
	long long id = json_integer_value(json_object_get(json_array_get(proc, 0), "id"));
	snprintf(path, sizeof(path), ORDERS "/%lld", id);
	const char *const hdr[] = { "Authorization: Basic Y2tfc2FuZGJveF8xOmNzX3NhbmRib3hfMQ==",
				    "Content-Type: application/json", NULL };
	assert_int_equal(sbt_req(&t, "PUT", path, hdr,
				 "{\"status\":\"completed\",\"meta_data\":[{\"key\":\"_wc_shipment_tracking_items\","
				 "\"value\":[{\"tracking_provider\":\"dhl\",\"tracking_number\":\"1234567890\"}]}]}",
				 &r), 0);
	assert_int_equal(r.status, 200);
	json_t *o = sbt_json(&r);
	sbt_free(&r);
	assert_string_equal(json_string_value(json_object_get(o, "status")), "completed");
	char *meta = json_dumps(json_object_get(o, "meta_data"), 0);
	assert_non_null(strstr(meta, "1234567890"));
	free(meta);
	/* the carrier has the shipment now */
	const char *const key[] = { "DHL-API-Key: dhl-sandbox-key", NULL };
	json_t *tr = sbt_get_json(&t, "/track/shipments?trackingNumber=1234567890", key, 200);
	assert_non_null(tr);
	/* GET returns the same order; unknown ids are 404 */
	json_t *again = sbt_get_json(&t, path, basic1, 200);
	assert_string_equal(json_string_value(json_object_get(again, "status")), "completed");
	assert_int_equal(sbt_req(&t, "GET", ORDERS "/1", basic1, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	sbt_free(&r);
	json_decref(again);
	json_decref(tr);
	json_decref(o);
	json_decref(proc);
	sbt_stop(&t);
}

static void test_webhooks(void **state)
{
	struct sbt t;
	struct sbt_hooks h;
	char cfg[1024], buf[256], sig[128];
	assert_int_equal(sbt_hooks_start(&h), 0);
	snprintf(cfg, sizeof(cfg),
		 "{\"speed\":0,\"seed\":31,\"orders\":5,\"shopify_shops\":0,\"woocommerce_stores\":2,"
		 "\"amazon_sellers\":0,\"order_interval_s\":600,"
		 "\"webhooks\":{\"woocommerce\":\"http://127.0.0.1:%d/hooks/{connector}\"}}",
		 h.port);
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	/* the pings come first: two webhooks per site, form body, no signature */
	assert_int_equal(sbt_hooks_wait(&h, 4, 5000), 4);
	for (int i = 0; i < 4; i++) {
		assert_non_null(strstr(h.items[i].body, "webhook_id="));
		assert_null(sbt_hook_hdr(&h.items[i], "X-WC-Webhook-Signature", buf, sizeof(buf)));
		assert_string_equal(sbt_hook_hdr(&h.items[i], "Content-Type", buf, sizeof(buf)),
				    "application/x-www-form-urlencoded");
	}
	assert_int_equal(sbt_tick(&t, 6 * 3600), 0);
	sbt_hooks_wait(&h, 10, 5000);
	sbt_hooks_run(&h, 300);
	assert_true(h.n > 10);
	int created = 0;
	for (int i = 4; i < h.n; i++) {
		struct sbt_hook *d = &h.items[i];
		char src[128], topic[64], path[128], secret[64];
		assert_non_null(sbt_hook_hdr(d, "X-WC-Webhook-Source", src, sizeof(src)));
		assert_non_null(sbt_hook_hdr(d, "X-WC-Webhook-Topic", topic, sizeof(topic)));
		assert_string_equal(sbt_hook_hdr(d, "X-WC-Webhook-Resource", buf, sizeof(buf)), "order");
		assert_non_null(sbt_hook_hdr(d, "X-WC-Webhook-Event", buf, sizeof(buf)));
		assert_non_null(sbt_hook_hdr(d, "X-WC-Webhook-ID", buf, sizeof(buf)));
		assert_non_null(sbt_hook_hdr(d, "X-WC-Webhook-Delivery-ID", buf, sizeof(buf)));
		assert_non_null(sbt_hook_hdr(d, "X-Test-Path", path, sizeof(path)));
		created += !strcmp(topic, "order.created");
		int n = src[11] - '0'; /* http://woo-N.example.com/ */
		snprintf(secret, sizeof(secret), "woo-secret-%d", n);
		char want[64];
		snprintf(want, sizeof(want), "/hooks/woocommerce-%d", n);
		assert_string_equal(path, want);
		sbt_hmac_b64(secret, d->body, d->len, sig, sizeof(sig));
		assert_string_equal(sbt_hook_hdr(d, "X-WC-Webhook-Signature", buf, sizeof(buf)), sig);
	}
	assert_true(created > 0);
	sbt_stop(&t);
	sbt_hooks_stop(&h);
}

static void test_webhook_disabled(void **state)
{
	struct sbt t;
	struct sbt_hooks h;
	char cfg[1024];
	assert_int_equal(sbt_hooks_start(&h), 0);
	h.reply_status = 500;
	snprintf(cfg, sizeof(cfg),
		 "{\"speed\":0,\"seed\":32,\"orders\":5,\"shopify_shops\":0,\"woocommerce_stores\":1,"
		 "\"amazon_sellers\":0,\"order_interval_s\":300,"
		 "\"webhooks\":{\"woocommerce\":\"http://127.0.0.1:%d/h\",\"connections\":1}}",
		 h.port);
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	sbt_hooks_wait(&h, 2, 5000);
	int before = h.n;
	/* many changes: only six deliveries fail before the webhook is disabled */
	for (int i = 0; i < 6; i++) {
		assert_int_equal(sbt_tick(&t, 3600), 0);
		sbt_hooks_run(&h, 150);
	}
	sbt_hooks_run(&h, 300);
	assert_int_equal(h.n - before, 6);
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	json_t *s0 = json_array_get(json_object_get(json_object_get(st, "stores"), "woocommerce"), 0);
	assert_true(json_is_true(json_object_get(s0, "webhooks_disabled")));
	json_decref(st);
	sbt_stop(&t);
	sbt_hooks_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_shape),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_pagination_and_filters),
		cmocka_unit_test(test_update_with_tracking),
		cmocka_unit_test(test_webhooks),
		cmocka_unit_test(test_webhook_disabled),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
