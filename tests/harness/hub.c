/*
 * hub.c - starting the hub's programs for tests and talking to them (see
 * hub.h).
 */
#include "config.h"
#include "hub.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "http.h"

int hubt_start_ready(struct proc *p, char *const argv[], const char *log_path, const char *ready_url,
		     int timeout_ms)
{
	char *log;

	if (proc_start(p, argv, log_path) == 0 && th_wait_ok(ready_url, timeout_ms) == 0)
		return 0;
	log = proc_read_file(log_path);
	fprintf(stderr, "%s did not become ready (%s) within %d ms:\n%s\n", argv[0], ready_url, timeout_ms,
		log ? log : "");
	free(log);
	return -1;
}

int hubt_admin_token(const char *state_dir, char *token, size_t size)
{
	char path[600], *t;
	int rc;

	snprintf(path, sizeof(path), "%s/admin.token", state_dir);
	t = proc_read_file(path);
	if (t == NULL)
		return -1;
	t[strcspn(t, "\r\n")] = '\0';
	rc = t[0] != '\0' && (size_t)snprintf(token, size, "%s", t) < size ? 0 : -1;
	free(t);
	return rc;
}

long hubt_tick(int port, int seconds)
{
	char url[128], body[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/tick", port);
	snprintf(body, sizeof(body), "{\"seconds\":%d}", seconds);
	return th_post_json(url, NULL, body);
}

char *hubt_url(char *buf, size_t size, int port, const char *path)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", port, path);
	return buf;
}

int hubt_env_start_sandbox(struct hubt_env *e, const char *prefix, int seed, int orders, int shops)
{
	char sbcfg[600], logp[600], url[160], listen[32], seed_s[16], orders_s[16], cfg[256];
	char *argv[] = {e->sandbox_bin, "--listen", listen, "--seed", seed_s, "--orders", orders_s,
			"--speed", "0", "--quiet", "--config", sbcfg, NULL};

	memset(e, 0, sizeof(*e));
	proc_build_path(e->hubd_bin, sizeof(e->hubd_bin), "hubd");
	proc_build_path(e->sandbox_bin, sizeof(e->sandbox_bin), "hub-sandbox");
	proc_build_path(e->plugins, sizeof(e->plugins), ".libs");
	if (proc_tmpdir(e->dir, sizeof(e->dir), prefix) < 0) {
		fprintf(stderr, "cannot make a temporary directory for %s\n", prefix);
		return -1;
	}
	snprintf(e->cfg_path, sizeof(e->cfg_path), "%s/hubd.json", e->dir);
	snprintf(e->hub_log, sizeof(e->hub_log), "%s/hubd.log", e->dir);
	e->hub_port = proc_free_port();
	e->sb_port = proc_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", e->sb_port);
	snprintf(seed_s, sizeof(seed_s), "%d", seed);
	snprintf(orders_s, sizeof(orders_s), "%d", orders);
	snprintf(sbcfg, sizeof(sbcfg), "%s/sandbox.json", e->dir);
	snprintf(cfg, sizeof(cfg),
		 "{\"shopify_shops\":%d,\"woocommerce_stores\":0,\"amazon_sellers\":0,\"order_interval_s\":3600}",
		 shops);
	if (proc_write_file(sbcfg, cfg) < 0) {
		fprintf(stderr, "cannot write %s\n", sbcfg);
		return -1;
	}
	snprintf(logp, sizeof(logp), "%s/sandbox.log", e->dir);
	return hubt_start_ready(&e->sandbox, argv, logp, hubt_url(url, sizeof(url), e->sb_port, "/_sandbox/health"),
				30000);
}

int hubt_env_start_hubd(struct hubt_env *e)
{
	char url[160], state[600];
	char *argv[] = {e->hubd_bin, "--config", e->cfg_path, NULL};

	if (hubt_start_ready(&e->hub, argv, e->hub_log, hubt_url(url, sizeof(url), e->hub_port, "/readyz"), 30000) < 0)
		return -1;
	snprintf(state, sizeof(state), "%s/state", e->dir);
	if (hubt_admin_token(state, e->token, sizeof(e->token)) < 0) {
		fprintf(stderr, "no admin token in %s\n", state);
		return -1;
	}
	return 0;
}

void hubt_env_stop(struct hubt_env *e)
{
	proc_stop(&e->hub, SIGTERM, 15000, NULL);
	proc_stop(&e->sandbox, SIGTERM, 5000, NULL);
	if (!e->dir[0])
		return;
	if (getenv("HUB_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", e->dir);
	else
		proc_rmtree(e->dir);
}

const char *hubt_log_level(void)
{
	return getenv("HUB_TEST_KEEP") ? "debug" : "warn";
}

int hubt_env_teardown(void **state)
{
	struct hubt_env *e = *state;

	if (e)
		hubt_env_stop(e);
	return 0;
}

int hubt_env_sync(const struct hubt_env *e, const char *connector, int timeout_ms, char *state, size_t size)
{
	char url[256], path[160];
	struct timespec t0, t;
	long status;

	snprintf(path, sizeof(path), "/v1/connectors/%s/sync", connector);
	status = th_post_json(hubt_url(url, sizeof(url), e->hub_port, path), e->token, "{}");
	if (status != 202) {
		snprintf(state, size, "POST %s answered %ld, not 202", path, status);
		return -1;
	}
	snprintf(path, sizeof(path), "/v1/connectors/%s/status", connector);
	hubt_url(url, sizeof(url), e->hub_port, path);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		json_t *st = th_get_json(url, e->token);
		const char *s = json_string_value(json_object_get(json_object_get(st, "sync"), "state"));
		int ended = s && strcmp(s, "running") != 0;

		if (ended)
			snprintf(state, size, "%s", s);
		json_decref(st);
		if (ended)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) {
			snprintf(state, size, "still running after %d ms", timeout_ms);
			return -1;
		}
		usleep(50000);
	}
}

long long hubt_sandbox_requests(const struct hubt_env *e, const char *api)
{
	char url[160];
	json_t *s, *n;
	long long v = -1;

	s = th_get_json(hubt_url(url, sizeof(url), e->sb_port, "/_sandbox/stats"), NULL);
	n = json_object_get(json_object_get(json_object_get(s, "apis"), api), "requests");
	if (json_is_integer(n))
		v = (long long)json_integer_value(n);
	json_decref(s);
	return v;
}

long hubt_sandbox_stats_reset(const struct hubt_env *e)
{
	char url[160];

	return th_post_json(hubt_url(url, sizeof(url), e->sb_port, "/_sandbox/stats/reset"), NULL, "{}");
}
