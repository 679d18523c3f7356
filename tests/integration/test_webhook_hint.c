/*
 * test_webhook_hint.c - a webhook hints the scheduler to reconcile its
 * connector soon (issue 6). hubd polls hub-sandbox's Shopify shop once an
 * hour; after its first sync, nothing asks the shop anything until a signed
 * webhook arrives: then, about two seconds later (the hint's delay), hubd
 * syncs the shop's streams, once for a burst of webhooks. The requests are
 * the sandbox's own count (/_sandbox/stats).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include <hub/sdk.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

#define SECRET "hint-webhook-secret"
#define SHOP "shop-1.myshopify.com"

static struct hubt_env env;

static int setup(void **state)
{
	char cfg[4096];

	*state = &env;
	if (hubt_env_start_sandbox(&env, "hubhint", 11, 3, 1) < 0)
		return -1;
	snprintf(cfg, sizeof(cfg),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
		 "\"log\":{\"level\":\"%s\"},\"sync\":{\"start_spread_s\":0},\"connectors\":["
		 "{\"name\":\"s1\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"poll_interval_s\":3600,"
		 "\"config\":{\"shop\":\"" SHOP "\",\"access_token\":\"shpat_sandbox_1\","
		 "\"webhook_secret\":\"" SECRET "\","
		 "\"api_base\":\"http://127.0.0.1:%d/shops/" SHOP "\"}}]}",
		 env.hub_port, env.dir, env.plugins, hubt_log_level(), env.sb_port);
	if (proc_write_file(env.cfg_path, cfg) < 0)
		return -1;
	return hubt_env_start_hubd(&env);
}

/* Milliseconds on a monotonic clock. */
static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether every stream of s1 has finished a sync and none is running. */
static int streams_settled(void)
{
	char url[160], auth[200];
	const char *hdrs[] = {auth, NULL};
	struct th_response r;
	json_t *status, *streams, *s;
	size_t i;
	int settled;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", env.token);
	hubt_url(url, sizeof(url), env.hub_port, "/v1/connectors/s1/status");
	assert_int_equal(th_http("GET", url, hdrs, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	status = json_loads(r.body, 0, NULL);
	th_response_release(&r);
	assert_non_null(status);
	streams = json_object_get(status, "streams");
	settled = json_array_size(streams) > 0;
	json_array_foreach(streams, i, s) {
		if (json_is_null(json_object_get(s, "last_success")) ||
		    strcmp(json_string_value(json_object_get(s, "state")) ?: "", "running") == 0)
			settled = 0;
	}
	json_decref(status);
	return settled;
}

/* Posts a signed orders/updated webhook (delivery `id`) for the shop. */
static void post_hook(const char *id)
{
	static const char body[] = "{\"id\":820982911946154508,\"name\":\"#1001\","
				   "\"updated_at\":\"2026-11-01T10:00:00-05:00\","
				   "\"created_at\":\"2026-11-01T09:00:00-05:00\",\"currency\":\"USD\","
				   "\"total_price\":\"10.00\",\"financial_status\":\"paid\","
				   "\"fulfillment_status\":null,\"line_items\":[]}";
	char url[160], sig[64], h_sig[128], h_id[128];
	const char *hdrs[] = {h_sig, "X-Shopify-Topic: orders/updated", h_id,
			      "X-Shopify-Shop-Domain: " SHOP, "X-Shopify-API-Version: 2026-07",
			      "Content-Type: application/json", NULL};
	struct th_response r;

	hub_hmac_sha256_base64(SECRET, strlen(SECRET), body, strlen(body), sig, sizeof(sig));
	snprintf(h_sig, sizeof(h_sig), "X-Shopify-Hmac-Sha256: %s", sig);
	snprintf(h_id, sizeof(h_id), "X-Shopify-Webhook-Id: %s", id);
	hubt_url(url, sizeof(url), env.hub_port, "/hooks/s1");
	assert_int_equal(th_http("POST", url, hdrs, body, strlen(body), &r), 0);
	if (r.status != 200)
		fail_msg("webhook %s: %ld %s", id, r.status, r.body ? r.body : "");
	th_response_release(&r);
}

/* Waits (bounded) until the shop has been asked something and the streams
 * are idle again; returns the requests, and when the first came (ms after
 * `from`) in *after_ms. */
static long long wait_for_reconcile(long long from, long long *after_ms)
{
	long long deadline = from + 15000, n;

	*after_ms = -1;
	while (mono_ms() < deadline) {
		n = hubt_sandbox_requests(&env, "shopify");
		assert_true(n >= 0);
		if (n > 0 && *after_ms < 0)
			*after_ms = mono_ms() - from;
		if (n > 0 && streams_settled()) {
			usleep(300000); /* nothing more follows */
			return hubt_sandbox_requests(&env, "shopify");
		}
		usleep(50000);
	}
	fail_msg("no reconcile within 15 s of the webhook");
	return -1;
}

static void webhook_hints_a_reconcile(void **state)
{
	long long t0, after, one, burst;

	(void)state;
	/* The first sync (start_spread_s 0), then quiet: the next poll is an
	 * hour away. */
	t0 = mono_ms();
	while (!streams_settled()) {
		if (mono_ms() - t0 > 20000)
			fail_msg("the first sync did not finish in 20 s");
		usleep(100000);
	}
	assert_int_equal(hubt_sandbox_stats_reset(&env), 200);
	sleep(3);
	assert_int_equal(hubt_sandbox_requests(&env, "shopify"), 0);

	/* One webhook: the shop is asked again, after the hint's delay. */
	t0 = mono_ms();
	post_hook("hint-1");
	one = wait_for_reconcile(t0, &after);
	assert_true(one >= 1);
	assert_true(after >= 1500); /* the hint waits ~2 s for more webhooks */

	/* A burst of five within the delay: one reconcile, as many requests as
	 * for one webhook (the shop has not changed). */
	assert_int_equal(hubt_sandbox_stats_reset(&env), 200);
	t0 = mono_ms();
	for (int i = 0; i < 5; i++) {
		char id[32];

		snprintf(id, sizeof(id), "hint-burst-%d", i);
		post_hook(id);
	}
	burst = wait_for_reconcile(t0, &after);
	assert_int_equal(burst, one);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(webhook_hints_a_reconcile),
	};

	return cmocka_run_group_tests(tests, setup, hubt_env_teardown);
}
