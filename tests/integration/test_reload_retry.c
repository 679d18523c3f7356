/*
 * test_reload_retry.c - SIGHUP applies a changed retry policy. hubd starts
 * with retry.max_attempts 1 against hub-sandbox's Shopify shop, whose every
 * request fails (5xx, no Retry-After): an on-demand sync makes exactly one
 * request and gives up. A reload with an invalid retry section (cap_ms below
 * base_ms) is refused and the next sync still makes one request. A reload
 * with max_attempts 3 is taken (its log line names the new policy): the
 * next sync makes three requests, two of them retries counted in /metrics.
 * The request counts are the sandbox's own (/_sandbox/stats). Between the
 * rounds a sync that succeeds closes the connector's circuit breaker again,
 * so its threshold (5 failures in a row) never cuts a round short.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

static struct hubt_env env;

static void sb_url(char *buf, size_t size, const char *path)
{
	hubt_url(buf, size, env.sb_port, path);
}

static void hub_url(char *buf, size_t size, const char *path)
{
	hubt_url(buf, size, env.hub_port, path);
}

/* Writes hubd's config with `retry` as its retry section. */
static void write_config(const char *retry)
{
	char cfg[4096];

	snprintf(cfg, sizeof(cfg),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
		 "\"log\":{\"level\":\"info\"},\"sync\":{\"start_spread_s\":0},\"retry\":%s,\"connectors\":["
		 "{\"name\":\"s1\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"poll_interval_s\":3600,"
		 "\"config\":{\"shop\":\"shop-1.myshopify.com\",\"access_token\":\"shpat_sandbox_1\","
		 "\"api_base\":\"http://127.0.0.1:%d/shops/shop-1.myshopify.com\"}}]}",
		 env.hub_port, env.dir, env.plugins, retry, env.sb_port);
	assert_int_equal(proc_write_file(env.cfg_path, cfg), 0);
}

static int setup(void **state)
{
	*state = &env;
	if (hubt_env_start_sandbox(&env, "hubreloadretry", 7, 5, 1) < 0)
		return -1;
	write_config("{\"base_ms\":20,\"cap_ms\":100,\"max_attempts\":1}");
	return hubt_env_start_hubd(&env);
}

/* Every Shopify request fails with a 5xx (on), or none (off). */
static void shopify_faults(int on)
{
	char url[160];
	struct th_response resp;

	sb_url(url, sizeof(url), "/_sandbox/faults");
	if (on) {
		assert_int_equal(th_post_json(url, NULL, "{\"api\":\"shopify\",\"rate_5xx\":1}"), 200);
		return;
	}
	assert_int_equal(th_http("DELETE", url, NULL, NULL, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	th_response_release(&resp);
}

/* Resets the sandbox's stats, syncs the shop now and checks that the sync
 * ended `want` ("done" or "failed"). Returns the Shopify requests it made. */
static long long sync_shop(const char *want)
{
	char state[128];
	long long n;

	assert_int_equal(hubt_sandbox_stats_reset(&env), 200);
	if (hubt_env_sync(&env, "s1", 20000, state, sizeof(state)) < 0 || strcmp(state, want) != 0)
		fail_msg("the shop's sync: %s, not %s", state, want);
	n = hubt_sandbox_requests(&env, "shopify");
	assert_true(n >= 0);
	return n;
}

/* Occurrences of `what` in hubd's log. */
static int log_count(const char *what)
{
	int n = proc_file_count(env.hub_log, what);

	assert_true(n >= 0);
	return n;
}

/* Sends SIGHUP and waits until hubd logged `what` once more than before. */
static void reload(const char *what)
{
	int before = log_count(what);
	time_t deadline = time(NULL) + 10;

	assert_int_equal(kill(env.hub.pid, SIGHUP), 0);
	while (log_count(what) == before) {
		if (time(NULL) > deadline)
			fail_msg("hubd did not log \"%s\" after SIGHUP", what);
		usleep(20000);
	}
}

/* The value of hub_retries_total for s1's orders stream (0 when absent). */
static long long retries_metric(void)
{
	const char *name = "hub_retries_total{connector=\"s1\",stream=\"orders\"} ";
	char url[160];
	struct th_response r;
	const char *p;
	long long n = 0;

	hub_url(url, sizeof(url), "/metrics");
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	p = strstr(r.body, name);
	if (p)
		n = strtoll(p + strlen(name), NULL, 10);
	th_response_release(&r);
	return n;
}

static void sighup_applies_retry_policy(void **state)
{
	(void)state;
	shopify_faults(1);
	/* max_attempts 1: no retry. */
	assert_int_equal(sync_shop("failed"), 1);
	assert_int_equal(retries_metric(), 0);

	/* An invalid retry section is refused whole: still no retry. */
	write_config("{\"base_ms\":200,\"cap_ms\":100,\"max_attempts\":3}");
	reload("config not reloaded");
	assert_int_equal(sync_shop("failed"), 1);
	assert_int_equal(retries_metric(), 0);

	/* A success closes the breaker again (2 failures so far). */
	shopify_faults(0);
	assert_true(sync_shop("done") >= 1);
	shopify_faults(1);

	/* max_attempts 3: the first attempt and two retries. */
	write_config("{\"base_ms\":30,\"cap_ms\":120,\"max_attempts\":3}");
	reload("retry policy now base_ms=30 cap_ms=120 max_attempts=3");
	assert_int_equal(log_count("retry changes take effect at the next restart"), 0);
	assert_int_equal(sync_shop("failed"), 3);
	assert_int_equal(retries_metric(), 2);

	/* An unchanged policy is not announced again, and stays. */
	reload("config reloaded");
	assert_int_equal(log_count("retry policy now"), 1);
	shopify_faults(0);
	assert_true(sync_shop("done") >= 1);
	shopify_faults(1);
	assert_int_equal(sync_shop("failed"), 3);
	assert_int_equal(retries_metric(), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sighup_applies_retry_policy),
	};

	return cmocka_run_group_tests(tests, setup, hubt_env_teardown);
}
