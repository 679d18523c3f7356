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

static char dir[256], hubd_bin[512], sandbox_bin[512], plugins[512], cfg_path[600], hub_log[600], token[128];
static int hub_port, sb_port;
static struct proc hub, sandbox;

static void sb_url(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", sb_port, path);
}

static void hub_url(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", hub_port, path);
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
		 hub_port, dir, plugins, retry, sb_port);
	assert_int_equal(proc_write_file(cfg_path, cfg), 0);
}

static int setup(void **state)
{
	char sbcfg[600], logp[600], url[160], port_s[32], sdir[600];
	char *sargv[] = {sandbox_bin, "--listen", port_s, "--seed", "7", "--orders", "5",
			 "--speed", "0", "--quiet", "--config", sbcfg, NULL};
	char *hargv[] = {hubd_bin, "--config", cfg_path, NULL};

	(void)state;
	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(sandbox_bin, sizeof(sandbox_bin), "hub-sandbox");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	if (proc_tmpdir(dir, sizeof(dir), "hubreloadretry") < 0)
		return -1;
	hub_port = proc_free_port();
	sb_port = proc_free_port();
	snprintf(port_s, sizeof(port_s), "127.0.0.1:%d", sb_port);
	snprintf(sbcfg, sizeof(sbcfg), "%s/sandbox.json", dir);
	proc_write_file(sbcfg, "{\"shopify_shops\":1,\"woocommerce_stores\":0,\"amazon_sellers\":0,"
			       "\"order_interval_s\":3600}");
	snprintf(logp, sizeof(logp), "%s/sandbox.log", dir);
	sb_url(url, sizeof(url), "/_sandbox/health");
	if (hubt_start_ready(&sandbox, sargv, logp, url, 30000) < 0)
		return -1;

	snprintf(cfg_path, sizeof(cfg_path), "%s/hubd.json", dir);
	write_config("{\"base_ms\":20,\"cap_ms\":100,\"max_attempts\":1}");
	snprintf(hub_log, sizeof(hub_log), "%s/hubd.log", dir);
	hub_url(url, sizeof(url), "/readyz");
	if (hubt_start_ready(&hub, hargv, hub_log, url, 30000) < 0)
		return -1;
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	return hubt_admin_token(sdir, token, sizeof(token));
}

static int teardown(void **state)
{
	(void)state;
	proc_stop(&hub, SIGTERM, 15000, NULL);
	proc_stop(&sandbox, SIGTERM, 5000, NULL);
	if (getenv("HUB_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", dir);
	else
		proc_rmtree(dir);
	return 0;
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

/* Requests the sandbox's Shopify API received since the last stats reset. */
static long long shopify_requests(void)
{
	char url[160];
	json_t *s;
	long long n;

	sb_url(url, sizeof(url), "/_sandbox/stats");
	s = th_get_json(url, NULL);
	assert_non_null(s);
	n = (long long)json_integer_value(
		json_object_get(json_object_get(json_object_get(s, "apis"), "shopify"), "requests"));
	json_decref(s);
	return n;
}

/* Resets the sandbox's stats, syncs the shop now and waits until the sync
 * ended `want` ("done" or "failed"). Returns the Shopify requests it made. */
static long long sync_shop(const char *want)
{
	char url[160];
	time_t deadline = time(NULL) + 20;

	sb_url(url, sizeof(url), "/_sandbox/stats/reset");
	assert_int_equal(th_post_json(url, NULL, "{}"), 200);
	hub_url(url, sizeof(url), "/v1/connectors/s1/sync");
	assert_int_equal(th_post_json(url, token, "{}"), 202);
	hub_url(url, sizeof(url), "/v1/connectors/s1/status");
	for (;;) {
		json_t *st = th_get_json(url, token);
		const char *state = json_string_value(json_object_get(json_object_get(st, "sync"), "state"));
		int done = state && strcmp(state, "running") != 0;

		if (done && strcmp(state, want) != 0)
			fail_msg("the shop's sync ended %s, not %s", state, want);
		json_decref(st);
		if (done)
			break;
		if (time(NULL) > deadline)
			fail_msg("the shop's sync did not end");
		usleep(50000);
	}
	return shopify_requests();
}

/* Occurrences of `what` in hubd's log. */
static int log_count(const char *what)
{
	char *log = proc_read_file(hub_log);
	int n = 0;

	assert_non_null(log);
	for (const char *p = strstr(log, what); p; p = strstr(p + 1, what))
		n++;
	free(log);
	return n;
}

/* Sends SIGHUP and waits until hubd logged `what` once more than before. */
static void reload(const char *what)
{
	int before = log_count(what);
	time_t deadline = time(NULL) + 10;

	assert_int_equal(kill(hub.pid, SIGHUP), 0);
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

	return cmocka_run_group_tests(tests, setup, teardown);
}
