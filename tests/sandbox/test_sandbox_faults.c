/*
 * test_sandbox_faults.c - hub-sandbox's fault injection, run as a
 * process: faults set at run time (POST /_sandbox/faults) and from the
 * configuration file appear at their configured shares and match the
 * stats; each kind looks as it should on the wire (the API's own 429 and
 * 5xx bodies, dropped connections, truncated and malformed bodies, held
 * requests, slow replies, expired tokens); the sequence of faults follows
 * the seed; bad fault settings are refused.
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

static const char *const cfg =
	"{\"speed\":0,\"seed\":61,\"orders\":10,\"shops\":1,"
	"\"carriers\":{\"dhl\":{\"rate\":1000000,\"burst\":1000000}},"
	"\"shopify\":{\"bucket_size\":1000000}}";

static const char *const dhl_key[] = { "DHL-API-Key: dhl-sandbox-key", NULL };

enum { O_OK, O_429, O_5XX, O_DROP, O_TRUNC, O_MALFORMED, O_OTHER, O_N };

static int classify(const struct sbt_resp *r)
{
	if (r->curl_rc == CURLE_GOT_NOTHING)
		return O_DROP;
	if (r->curl_rc == CURLE_PARTIAL_FILE)
		return O_TRUNC;
	if (r->curl_rc)
		return O_OTHER;
	if (r->status == 429)
		return O_429;
	if (r->status == 500 || r->status == 503)
		return O_5XX;
	if (r->status == 200) {
		json_t *j = sbt_json(r);
		int ok = j != NULL;
		json_decref(j);
		return ok ? O_OK : O_MALFORMED;
	}
	return O_OTHER;
}

static void post_faults(struct sbt *t, const char *json, long expect)
{
	struct sbt_resp r;
	assert_int_equal(sbt_req(t, "POST", "/_sandbox/faults", NULL, json, &r), 0);
	if (r.status != expect)
		fail_msg("faults %s: %ld %s", json, r.status, r.body);
	sbt_free(&r);
}

/* Runs n DHL requests, counting outcomes; also records the sequence. */
static void run(struct sbt *t, const char *path, int n, int *count, char *seq)
{
	for (int i = 0; i < n; i++) {
		struct sbt_resp r;
		sbt_req(t, "GET", path, dhl_key, NULL, &r);
		int k = classify(&r);
		count[k]++;
		if (seq)
			seq[i] = (char)('0' + k);
		sbt_free(&r);
	}
	if (seq)
		seq[n] = '\0';
}

static char *dhl_path(struct sbt *t)
{
	struct sbt_resp r;
	assert_int_equal(sbt_req(t, "POST", "/_sandbox/shipments", NULL, "{\"carrier\":\"dhl\"}", &r), 0);
	json_t *j = sbt_json(&r);
	char *p = malloc(128);
	snprintf(p, 128, "/track/shipments?trackingNumber=%s",
		 json_string_value(json_object_get(j, "tracking_number")));
	json_decref(j);
	sbt_free(&r);
	return p;
}

static void test_shares(void **state)
{
	struct sbt t;
	int c[O_N] = { 0 };
	const int n = 800;
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	char *path = dhl_path(&t);
	/* libcurl silently retries a request whose reused connection closes
	 * before any byte arrives, which would hide dropped connections */
	t.fresh = 1;
	post_faults(&t, "{\"api\":\"dhl\",\"rate_429\":0.2,\"rate_5xx\":0.1,\"drop\":0.05,"
			"\"truncate\":0.05,\"malformed\":0.1}", 200);
	run(&t, path, n, c, NULL);
	/* within about four standard deviations of the configured shares */
	assert_int_equal(c[O_OTHER], 0);
	assert_true(abs(c[O_429] - 160) <= 50);
	assert_true(abs(c[O_5XX] - 80) <= 36);
	assert_true(abs(c[O_DROP] - 40) <= 26);
	assert_true(abs(c[O_TRUNC] - 40) <= 26);
	assert_true(abs(c[O_MALFORMED] - 80) <= 36);
	/* and the stats count exactly what was seen */
	json_t *st = sbt_get_json(&t, "/_sandbox/stats", NULL, 200);
	json_t *f = json_object_get(json_object_get(json_object_get(st, "apis"), "dhl"), "faults");
	assert_int_equal(json_integer_value(json_object_get(f, "rate_429")), c[O_429]);
	assert_int_equal(json_integer_value(json_object_get(f, "rate_5xx")), c[O_5XX]);
	assert_int_equal(json_integer_value(json_object_get(f, "drop")), c[O_DROP]);
	assert_int_equal(json_integer_value(json_object_get(f, "truncate")), c[O_TRUNC]);
	assert_int_equal(json_integer_value(json_object_get(f, "malformed")), c[O_MALFORMED]);
	json_decref(st);
	/* other APIs are untouched; a reset clears the faults */
	const char *const tok[] = { "X-Shopify-Access-Token: shpat_sandbox_1", NULL };
	for (int i = 0; i < 50; i++) {
		struct sbt_resp r;
		assert_int_equal(sbt_req(&t, "GET", "/shops/shop-1.myshopify.com/admin/api/2026-07/shop.json",
					 tok, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
	}
	struct sbt_resp r;
	assert_int_equal(sbt_req(&t, "DELETE", "/_sandbox/faults", NULL, NULL, &r), 0);
	sbt_free(&r);
	memset(c, 0, sizeof(c));
	run(&t, path, 100, c, NULL);
	assert_int_equal(c[O_OK], 100);
	free(path);
	sbt_stop(&t);
}

static void test_kinds_on_the_wire(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	char buf[128];
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const tok[] = { "X-Shopify-Access-Token: shpat_sandbox_1", NULL };
	const char *shop = "/shops/shop-1.myshopify.com/admin/api/2026-07/orders.json";
	/* Shopify's own 429 and 5xx bodies */
	post_faults(&t, "{\"api\":\"shopify\",\"rate_429\":1}", 200);
	assert_int_equal(sbt_req(&t, "GET", shop, tok, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	assert_non_null(sbt_hdr(&r, "Retry-After", buf, sizeof(buf)));
	assert_non_null(strstr(r.body, "Exceeded 2 calls per second"));
	sbt_free(&r);
	post_faults(&t, "{\"api\":\"shopify\",\"rate_429\":0,\"rate_5xx\":1}", 200);
	assert_int_equal(sbt_req(&t, "GET", shop, tok, NULL, &r), 0);
	assert_true(r.status == 500 || r.status == 503);
	json_t *j = sbt_json(&r);
	assert_true(json_is_string(json_object_get(j, "errors")));
	json_decref(j);
	sbt_free(&r);
	/* Amazon's: an error list */
	post_faults(&t, "{\"api\":\"amazon\",\"rate_5xx\":1}", 200);
	assert_int_equal(sbt_req(&t, "GET", "/orders/2026-01-01/orders", NULL, NULL, &r), 0);
	assert_true(r.status == 500 || r.status == 503);
	j = sbt_json(&r);
	assert_true(json_is_array(json_object_get(j, "errors")));
	json_decref(j);
	sbt_free(&r);
	/* a carrier's injected 503 says when to come back: 30 s unless set */
	post_faults(&t, "{\"api\":\"*\",\"reset\":true}", 200);
	int got503 = 0;
	for (int i = 0; i < 2; i++) {
		post_faults(&t, i ? "{\"api\":\"dhl\",\"rate_5xx\":1,\"retry_after_s\":2}"
				  : "{\"api\":\"dhl\",\"rate_5xx\":1}", 200);
		for (int k = 0; k < 40; k++) {
			assert_int_equal(sbt_req(&t, "GET", "/track/shipments?trackingNumber=1", dhl_key, NULL, &r), 0);
			assert_true(r.status == 500 || r.status == 503);
			if (r.status == 503) {
				assert_non_null(sbt_hdr(&r, "Retry-After", buf, sizeof(buf)));
				assert_string_equal(buf, i ? "2" : "30");
				got503++;
				sbt_free(&r);
				break;
			}
			sbt_free(&r);
		}
	}
	assert_int_equal(got503, 2);
	post_faults(&t, "{\"api\":\"dhl\",\"retry_after_s\":-1}", 400);
	/* a held request: the client gives up first */
	post_faults(&t, "{\"api\":\"*\",\"reset\":true}", 200);
	post_faults(&t, "{\"api\":\"ups\",\"timeout\":1,\"timeout_ms\":2000}", 200);
	t.timeout_ms = 300;
	assert_int_equal(sbt_req(&t, "GET", "/api/track/v1/details/1Z", NULL, NULL, &r), -1);
	assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
	sbt_free(&r);
	t.timeout_ms = 10000;
	/* slow replies arrive, late */
	post_faults(&t, "{\"api\":\"dhl\",\"slow_ms\":250}", 200);
	assert_int_equal(sbt_req(&t, "GET", "/track/shipments?trackingNumber=1", dhl_key, NULL, &r), 0);
	assert_int_equal(r.status, 404);
	assert_true(r.seconds >= 0.24);
	sbt_free(&r);
	/* the sandbox is still answering quickly elsewhere meanwhile */
	assert_int_equal(sbt_req(&t, "GET", "/_sandbox/health", NULL, NULL, &r), 0);
	assert_true(r.seconds < 0.2);
	sbt_free(&r);
	/* bad settings are refused */
	post_faults(&t, "{\"api\":\"dhl\",\"rate_429\":0.7,\"rate_5xx\":0.7}", 400);
	post_faults(&t, "{\"api\":\"nope\",\"rate_429\":0.1}", 400);
	post_faults(&t, "{\"api\":\"dhl\",\"rate_428\":0.1}", 400);
	sbt_stop(&t);
}

static void test_expire_tokens(void **state)
{
	struct sbt t;
	struct sbt_resp r;
	assert_int_equal(sbt_start(&t, cfg, NULL), 0);
	const char *const form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
	const char *lwa = "grant_type=refresh_token&refresh_token=Atzr%7Csandbox-refresh-1"
			  "&client_id=amzn1.application-oa2-client.sandbox&client_secret=amzn-sandbox-lwa-secret";
	char hdr[256];
	for (int round = 0; round < 2; round++) {
		assert_int_equal(sbt_req(&t, "POST", "/auth/o2/token", form, lwa, &r), 0);
		json_t *j = sbt_json(&r);
		snprintf(hdr, sizeof(hdr), "x-amz-access-token: %s",
			 json_string_value(json_object_get(j, "access_token")));
		json_decref(j);
		sbt_free(&r);
		const char *const h[] = { hdr, NULL };
		assert_int_equal(sbt_req(&t, "GET", "/orders/2026-01-01/orders?createdAfter=2026-01-01T00:00:00Z",
					 h, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		sbt_free(&r);
		if (round == 0) {
			post_faults(&t, "{\"api\":\"amazon\",\"expire_tokens\":true}", 200);
			assert_int_equal(sbt_req(&t, "GET",
						 "/orders/2026-01-01/orders?createdAfter=2026-01-01T00:00:00Z",
						 h, NULL, &r), 0);
			assert_int_equal(r.status, 403);
			assert_non_null(strstr(r.body, "expired"));
			sbt_free(&r);
		}
	}
	/* a share of requests answered as if the token had expired */
	post_faults(&t, "{\"api\":\"amazon\",\"expire_tokens\":0.5}", 200);
	const char *const h[] = { hdr, NULL };
	int expired = 0;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(sbt_req(&t, "GET", "/orders/2026-01-01/orders?createdAfter=2026-01-01T00:00:00Z",
					 h, NULL, &r), 0);
		expired += r.status == 403;
		sbt_free(&r);
	}
	assert_true(expired > 0 && expired < 10);
	sbt_stop(&t);
}

static void test_config_and_determinism(void **state)
{
	struct sbt a, b, c;
	char sa[301], sb[301], sc[301];
	int ca[O_N] = { 0 }, cb[O_N] = { 0 }, cc[O_N] = { 0 };
	const char *fcfg = "{\"speed\":0,\"seed\":62,\"orders\":1,\"shops\":1,"
			   "\"carriers\":{\"dhl\":{\"rate\":1000000,\"burst\":1000000}},"
			   "\"faults\":[{\"api\":\"dhl\",\"rate_429\":0.3,\"malformed\":0.2}]}";
	const char *fcfg2 = "{\"speed\":0,\"seed\":63,\"orders\":1,\"shops\":1,"
			    "\"carriers\":{\"dhl\":{\"rate\":1000000,\"burst\":1000000}},"
			    "\"faults\":[{\"api\":\"dhl\",\"rate_429\":0.3,\"malformed\":0.2}]}";
	assert_int_equal(sbt_start(&a, fcfg, NULL), 0);
	assert_int_equal(sbt_start(&b, fcfg, NULL), 0);
	assert_int_equal(sbt_start(&c, fcfg2, NULL), 0);
	/* faults from the file are active from the first request */
	json_t *f = sbt_get_json(&a, "/_sandbox/faults", NULL, 200);
	assert_true(json_real_value(json_object_get(json_object_get(f, "dhl"), "rate_429")) == 0.3);
	json_decref(f);
	char *pa = dhl_path(&a), *pb = dhl_path(&b), *pc = dhl_path(&c);
	assert_string_equal(pa, pb);
	run(&a, pa, 300, ca, sa);
	run(&b, pb, 300, cb, sb);
	run(&c, pc, 300, cc, sc);
	free(pa);
	free(pb);
	free(pc);
	assert_true(ca[O_429] > 50 && ca[O_MALFORMED] > 30);
	assert_string_equal(sa, sb);
	assert_true(strcmp(sa, sc) != 0);
	sbt_stop(&a);
	sbt_stop(&b);
	sbt_stop(&c);
	/* a bad fault in the file stops the sandbox with a clear error */
	struct sbt d;
	assert_int_equal(sbt_start(&d, "{\"faults\":{\"api\":\"dhl\",\"drop\":2}}", NULL), -1);
	sbt_stop(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shares),
		cmocka_unit_test(test_kinds_on_the_wire),
		cmocka_unit_test(test_expire_tokens),
		cmocka_unit_test(test_config_and_determinism),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
