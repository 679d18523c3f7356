/*
 * test_e2e_shopify.c - the Shopify connector end to end: hub-sandbox with
 * many shops (HUB_E2E_SHOPS, default 1000), faults on (10% 429s, 10% 5xx,
 * dropped connections), signed webhooks delivered twice and out of order,
 * the simulated clock advanced so orders are created, edited, paid,
 * cancelled and fulfilled; hubd polls and receives webhooks. The store must
 * end equal to the sandbox's truth exactly: every order and fulfillment
 * once, every amount, status and tracking number right, nothing stale; and
 * the sandbox must have throttled none of the hub's own requests. The
 * second test does the same while hubd is killed with SIGKILL at random
 * moments and restarted.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"
#include "../harness/truth.h"

static char dir[256], hubd_bin[512], sandbox_bin[512], plugins[512];
static char cfg_path[600], token[128];
static int shops, hub_port, sb_port;
static struct proc hub, sandbox;

static int atoi_like(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *end || v < 0 || v > 100000 ? 0 : (int)v;
}

static void start_hub(void)
{
	char logp[600], url[128];
	char *argv[] = {hubd_bin, "--config", cfg_path, NULL};

	snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", hub_port);
	if (hubt_start_ready(&hub, argv, logp, url, 60000) < 0)
		fail_msg("hubd did not become ready (its log is above)");
	if (!token[0]) {
		char state_dir[300];
		snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
		assert_int_equal(hubt_admin_token(state_dir, token, sizeof(token)), 0);
	}
}

static int setup(void **state)
{
	const char *env = getenv("HUB_E2E_SHOPS"), *store = getenv("HUB_TEST_STORE_URL");
	char sbcfg[600], logp[600], url[128], port_s[32], shops_s[16];
	char *argv[] = {sandbox_bin, "--listen", port_s, "--seed", "7", "--orders", "5", "--shops", shops_s,
			"--speed", "0", "--quiet", "--config", sbcfg, NULL};
	size_t cap = 4 << 20, len = 0;
	char *cfg;

	shops = env && atoi_like(env) > 0 ? atoi_like(env) : 1000;
	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(sandbox_bin, sizeof(sandbox_bin), "hub-sandbox");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	if (proc_tmpdir(dir, sizeof(dir), "hube2e") < 0)
		return -1;
	hub_port = proc_free_port();
	sb_port = proc_free_port();
	snprintf(port_s, sizeof(port_s), "127.0.0.1:%d", sb_port);
	snprintf(shops_s, sizeof(shops_s), "%d", shops);

	/* Sandbox: webhooks to hubd, a fifth delivered twice, a third reordered. */
	snprintf(sbcfg, sizeof(sbcfg), "%s/sandbox.json", dir);
	cfg = malloc(cap);
	snprintf(cfg, cap,
		 "{\"order_interval_s\":1200,"
		 "\"webhooks\":{\"shopify\":\"http://127.0.0.1:%d/hooks/s{n}\",\"duplicate\":0.2,"
		 "\"out_of_order\":0.3}}",
		 hub_port);
	proc_write_file(sbcfg, cfg);
	snprintf(logp, sizeof(logp), "%s/sandbox.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/health", sb_port);
	if (hubt_start_ready(&sandbox, argv, logp, url, 30000) < 0)
		return -1;

	/* hubd: one Shopify connector per shop. Webhooks run on the loop
	 * here (test_api covers the webhook workers). */
	len = (size_t)snprintf(cfg, cap,
			       "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\"%s%s%s,"
			       "\"log\":{\"level\":\"warn\"},\"http\":{\"webhook_workers\":0},\"connectors\":[",
			       hub_port, dir, plugins, store && *store ? ",\"store\":\"" : "",
			       store && *store ? store : "", store && *store ? "\"" : "");
	for (int i = 1; i <= shops; i++)
		len += (size_t)snprintf(cfg + len, cap - len,
					"%s{\"name\":\"s%d\",\"plugin\":\"shopify\",\"merchant\":\"m%d\","
					"\"poll_interval_s\":3,\"config\":{\"shop\":\"shop-%d.myshopify.com\","
					"\"access_token\":\"shpat_sandbox_%d\",\"webhook_secret\":\"shopify-secret-%d\","
					"\"api_base\":\"http://127.0.0.1:%d/shops/shop-%d.myshopify.com\"}}",
					i > 1 ? "," : "", i, i % 7, i, i, i, sb_port, i);
	snprintf(cfg + len, cap - len, "]}");
	snprintf(cfg_path, sizeof(cfg_path), "%s/hubd.json", dir);
	proc_write_file(cfg_path, cfg);
	free(cfg);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/faults", sb_port);
	if (th_post_json(url, NULL, "{\"api\":\"shopify\",\"rate_429\":0.1,\"rate_5xx\":0.1,\"drop\":0.03}") != 200)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	proc_stop(&hub, SIGTERM, 15000, NULL);
	proc_stop(&sandbox, SIGTERM, 5000, NULL);
	proc_rmtree(dir);
	return 0;
}

/* Waits (bounded) until every shop matches on every field, shipments
 * included (tests/harness/truth); fails with the first difference. */
static void converge(int timeout_s)
{
	char why[1024];
	const struct truth_check tc = { .sandbox_port = sb_port, .hub_port = hub_port, .token = token,
					.fields = TRUTH_UPDATED_AT | TRUTH_TOTAL | TRUTH_STATUS | TRUTH_SHIPMENTS,
					.shops = shops, .poll_ms = 500, .resume = 1 };

	if (truth_converge(&tc, timeout_s, why, sizeof(why)) != 0)
		fail_msg("%s", why);
}

static void assert_no_pacing_429(void)
{
	char url[128];
	json_t *st;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/stats", sb_port);
	st = th_get_json(url, NULL);
	assert_non_null(st);
	json_t *s = json_object_get(json_object_get(st, "apis"), "shopify");
	/* The sandbox counts every 429 it sends as throttled, injected ones
	 * included: the hub's own pacing caused the difference. */
	printf("sandbox: %lld Shopify requests, %lld 429s sent of which %lld injected, %lld 5xx, %lld dropped\n",
	       (long long)json_integer_value(json_object_get(s, "requests")),
	       (long long)json_integer_value(json_object_get(s, "throttled")),
	       (long long)json_integer_value(json_object_get(json_object_get(s, "faults"), "rate_429")),
	       (long long)json_integer_value(json_object_get(json_object_get(s, "faults"), "rate_5xx")),
	       (long long)json_integer_value(json_object_get(json_object_get(s, "faults"), "drop")));
	assert_true(json_integer_value(json_object_get(s, "requests")) > shops);
	assert_true(json_integer_value(json_object_get(json_object_get(s, "faults"), "rate_429")) > 0);
	assert_int_equal(json_integer_value(json_object_get(s, "throttled")),
			 json_integer_value(json_object_get(json_object_get(s, "faults"), "rate_429")));
	json_decref(st);
}

static void store_equals_truth(void **state)
{
	start_hub();
	converge(180);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(hubt_tick(sb_port, 1800), 200);
		converge(180);
	}
	assert_no_pacing_429();
}

static void store_equals_truth_across_sigkill(void **state)
{
	srand((unsigned)time(NULL));
	for (int round = 0; round < 3; round++) {
		int status;
		assert_int_equal(hubt_tick(sb_port, 1800), 200);
		/* Kill at a random moment of the catch-up, then restart. */
		usleep((useconds_t)(rand() % 1500) * 1000);
		proc_stop(&hub, SIGKILL, 5000, &status);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		start_hub();
	}
	converge(240);
	assert_no_pacing_429();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(store_equals_truth),
		cmocka_unit_test(store_equals_truth_across_sigkill),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
