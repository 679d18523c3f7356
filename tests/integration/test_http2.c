/*
 * test_http2.c - hubd's outbound HTTP really speaks HTTP/2 over TLS with
 * verification on. hub-sandbox (HTTP/1.1 only) sits behind an nginx TLS
 * reverse proxy that offers h2 (tests/harness/nginxserver), with a
 * certificate made for this run; hubd trusts it through outbound.ca_file.
 * Five Shopify connectors poll through nginx; a sixth names the proxy
 * "localhost", which the certificate does not cover, so it must be refused.
 *
 * Asserts: the store equals the sandbox's truth (before and after the
 * simulated clock moves on); nginx saw every request as HTTP/2.0; hubd
 * reused connections (far fewer connections than requests) and multiplexed
 * (requests on one connection overlapping in time, the sandbox holding
 * each for 300 ms); the sixth connector got a TLS error, sent no request
 * and stored nothing. A missing nginx is a failure, not a skip.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/nginxserver.h"
#include "../harness/proc.h"
#include "../harness/truth.h"

#define SHOPS 5        /* polled through nginx */
#define BAD_SHOP 6     /* addressed by a name the certificate does not cover */

static char dir[256], cfg_path[600], token[128];
static int hub_port, sb_port;
static struct proc hub, sandbox;
static struct nginxserver ngx;
static struct truth_check truth; /* shops 1..SHOPS on updated_at and total (tests/harness/truth) */

static int setup(void **state)
{
	char err[4096], upstream[64], sbcfg[600], logp[600], url[160], port_s[32], hubd_bin[512],
		sandbox_bin[512], plugins[512], cfg[8192];
	char *argv[] = { sandbox_bin, "--listen", port_s, "--seed", "11", "--orders", "30", "--shops", "6",
			 "--speed", "0", "--quiet", "--config", sbcfg, NULL };
	size_t len;
	int rc;
	(void)state;

	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(sandbox_bin, sizeof(sandbox_bin), "hub-sandbox");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	if (proc_tmpdir(dir, sizeof(dir), "hubh2") < 0)
		return -1;
	hub_port = proc_free_port();
	sb_port = proc_free_port();

	/* nginx first: the sandbox's Link URLs must name the proxy. */
	snprintf(upstream, sizeof(upstream), "127.0.0.1:%d", sb_port);
	rc = nginxserver_start(&ngx, upstream, 15000, err, sizeof(err));
	if (rc != 0) {
		/* Missing nginx fails the test: HTTP/2 would otherwise go unproven. */
		fprintf(stderr, "test_http2: %s\n", err);
		return -1;
	}

	snprintf(port_s, sizeof(port_s), "127.0.0.1:%d", sb_port);
	snprintf(sbcfg, sizeof(sbcfg), "%s/sandbox.json", dir);
	snprintf(cfg, sizeof(cfg), "{\"public_base\":\"https://127.0.0.1:%d/shops/{shop}\"}", ngx.port);
	proc_write_file(sbcfg, cfg);
	snprintf(logp, sizeof(logp), "%s/sandbox.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/health", sb_port);
	if (hubt_start_ready(&sandbox, argv, logp, url, 30000) < 0)
		return -1;
	/* Every API response held 300 ms: concurrent polls overlap in time. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/faults", sb_port);
	if (th_post_json(url, NULL, "{\"api\":\"shopify\",\"slow\":1,\"slow_ms\":300}") != 200)
		return -1;

	len = (size_t)snprintf(cfg, sizeof(cfg),
			       "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
			       "\"outbound\":{\"ca_file\":\"%s\"},\"log\":{\"level\":\"warn\"},\"connectors\":[",
			       hub_port, dir, plugins, ngx.ca_path);
	for (int i = 1; i <= BAD_SHOP; i++)
		len += (size_t)snprintf(cfg + len, sizeof(cfg) - len,
					"%s{\"name\":\"s%d\",\"plugin\":\"shopify\",\"merchant\":\"m%d\","
					"\"poll_interval_s\":1,\"config\":{\"shop\":\"shop-%d.myshopify.com\","
					"\"access_token\":\"shpat_sandbox_%d\",\"webhook_secret\":\"shopify-secret-%d\","
					"\"api_base\":\"https://%s:%d/shops/shop-%d.myshopify.com\"}}",
					i > 1 ? "," : "", i, i, i, i, i, i == BAD_SHOP ? "localhost" : "127.0.0.1",
					ngx.port, i);
	snprintf(cfg + len, sizeof(cfg) - len, "]}");
	snprintf(cfg_path, sizeof(cfg_path), "%s/hubd.json", dir);
	proc_write_file(cfg_path, cfg);

	{
		char *hargv[] = { hubd_bin, "--config", cfg_path, NULL };
		char state_dir[300];
		snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", hub_port);
		snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
		if (hubt_start_ready(&hub, hargv, logp, url, 30000) < 0 ||
		    hubt_admin_token(state_dir, token, sizeof(token)) < 0)
			return -1;
	}
	truth = (struct truth_check){ .sandbox_port = sb_port, .hub_port = hub_port, .token = token,
				      .fields = TRUTH_UPDATED_AT | TRUTH_TOTAL, .shops = SHOPS, .poll_ms = 300 };
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	proc_stop(&hub, SIGTERM, 15000, NULL);
	proc_stop(&sandbox, SIGTERM, 5000, NULL);
	nginxserver_stop(&ngx);
	proc_rmtree(dir);
	return 0;
}

static void converge(int timeout_s)
{
	char why[1024];

	if (truth_converge(&truth, timeout_s, why, sizeof(why)) != 0) {
		char logp[600], *log;
		snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
		log = proc_read_file(logp);
		fail_msg("%s\nhubd log:\n%s", why, log ? log : "");
	}
}

/* Whether two requests on one connection were in flight at the same time. */
static int overlap(const struct nginx_log_entry *a, const struct nginx_log_entry *b)
{
	double a0 = a->end_s - a->duration_s, b0 = b->end_s - b->duration_s;

	return a->connection == b->connection && a0 < b->end_s - 0.05 && b0 < a->end_s - 0.05;
}

static void orders_arrive_over_http2(void **state)
{
	struct nginx_log_entry *log;
	size_t n, bad_shop_requests = 0, max_per_conn = 0, multiplexed = 0;
	long conns[64];
	size_t nconns = 0;
	char needle[64];
	(void)state;

	converge(40);
	assert_int_equal(hubt_tick(sb_port, 1800), 200);
	converge(30);

	assert_int_equal(nginxserver_log_read(&ngx, &log, &n), 0);
	assert_true(n >= 2 * SHOPS);
	snprintf(needle, sizeof(needle), "/shop-%d.myshopify.com/", BAD_SHOP);
	for (size_t i = 0; i < n; i++) {
		size_t j;
		if (strcmp(log[i].protocol, "HTTP/2.0") != 0)
			fail_msg("nginx saw %s, not HTTP/2.0: %s", log[i].protocol, log[i].request);
		if (strstr(log[i].request, needle) != NULL)
			bad_shop_requests++;
		if ((size_t)log[i].connection_requests > max_per_conn)
			max_per_conn = (size_t)log[i].connection_requests;
		for (j = 0; j < nconns && conns[j] != log[i].connection; j++)
			;
		if (j == nconns && nconns < sizeof(conns) / sizeof(conns[0]))
			conns[nconns++] = log[i].connection;
		for (j = 0; j < i; j++) {
			if (overlap(&log[i], &log[j])) {
				multiplexed++;
				break;
			}
		}
	}
	printf("nginx: %zu requests, all HTTP/2.0, on %zu connections (at most %zu on one); %zu overlapped "
	       "another on its connection\n",
	       n, nconns, max_per_conn, multiplexed);
	/* Reuse: one connection per host serves everything, bar a reconnect. */
	assert_true(nconns <= 2);
	assert_true(max_per_conn >= n / 2);
	/* Multiplexing: concurrent streams on one connection. */
	assert_true(multiplexed > 0);
	/* Verification on: the name the certificate lacks got no request through. */
	assert_int_equal(bad_shop_requests, 0);
	free(log);
}

static void wrong_name_refused(void **state)
{
	char url[160];
	json_t *st, *orders;
	char *text;
	(void)state;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/s%d/status", hub_port, BAD_SHOP);
	st = th_get_json(url, token);
	assert_non_null(st);
	text = json_dumps(st, JSON_COMPACT);
	printf("s%d status: %s\n", BAD_SHOP, text);
	/* The TLS failure is what the status reports, not some other error. */
	assert_non_null(strstr(text, "tls"));
	free(text);
	json_decref(st);
	orders = truth_hub_list(&truth, "orders", BAD_SHOP);
	assert_non_null(orders);
	assert_int_equal(json_array_size(orders), 0);
	json_decref(orders);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(orders_arrive_over_http2),
		cmocka_unit_test(wrong_name_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
