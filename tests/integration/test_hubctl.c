/*
 * test_hubctl.c - hubctl against a running hubd, as an operator uses it:
 * it finds hubd and the admin token from hubd's config by itself, prints
 * tables by default and JSON with --json, and its errors say what to do.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

static char dir[256], hubd[512], hubctl[512], cfg[600];
static struct proc hub;

static int setup(void **state)
{
	char text[1024], plugins[512], logp[600], url[128];
	char *argv[] = {hubd, "--config", cfg, NULL};
	int port = proc_free_port();

	proc_build_path(hubd, sizeof(hubd), "hubd");
	proc_build_path(hubctl, sizeof(hubctl), "hubctl");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	if (proc_tmpdir(dir, sizeof(dir), "hubctl") < 0)
		return -1;
	snprintf(text, sizeof(text),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
		 "\"log\":{\"level\":\"warn\"}}",
		 port, dir, plugins);
	snprintf(cfg, sizeof(cfg), "%s/hubd.json", dir);
	proc_write_file(cfg, text);
	snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
	return hubt_start_ready(&hub, argv, logp, url, 20000);
}

static int teardown(void **state)
{
	proc_stop(&hub, SIGTERM, 10000, NULL);
	proc_rmtree(dir);
	return 0;
}

/* Runs hubctl --config cfg ARGS...; returns the exit code, output in *out. */
static int ctl(char **out, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;

	argv[n++] = hubctl;
	argv[n++] = "--config";
	argv[n++] = cfg;
	va_start(ap, out);
	for (char *a; n < 31 && (a = va_arg(ap, char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return proc_run(argv, out, 20000);
}

static void status_and_plugins(void **state)
{
	char *out;

	assert_int_equal(ctl(&out, "status", NULL), 0);
	assert_non_null(strstr(out, ": ready"));
	free(out);
	assert_int_equal(ctl(&out, "plugins", "list", NULL), 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "shopify"));
	free(out);
	assert_int_equal(ctl(&out, "--json", "plugins", "list", NULL), 0);
	{
		json_t *j = json_loads(out, 0, NULL);
		assert_non_null(j);
		assert_true(json_array_size(json_object_get(j, "plugins")) >= 1);
		json_decref(j);
	}
	free(out);
}

static void connectors_and_tokens(void **state)
{
	char *out;

	assert_int_equal(ctl(&out, "connectors", "add", "shop_a", "--plugin", "shopify", "--merchant", "acme",
			     "--settings",
			     "{\"shop\":\"a.myshopify.com\",\"access_token\":\"shpat_x\",\"api_base\":\"http://127.0.0.1:1\"}",
			     NULL),
			 0);
	assert_null(strstr(out, "shpat_x"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "list", NULL), 0);
	assert_non_null(strstr(out, "shop_a"));
	assert_non_null(strstr(out, "acme"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "pause", "shop_a", NULL), 0);
	assert_non_null(strstr(out, "shop_a paused"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "status", "shop_a", NULL), 0);
	assert_non_null(strstr(out, "connector shop_a: paused, circuit closed"));
	assert_non_null(strstr(out, "orders"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "sync", "shop_a", "--since", "2026-01-01T00:00:00Z", NULL), 0);
	assert_non_null(strstr(out, "sync of shop_a scheduled"));
	free(out);

	/* Errors say what is wrong and exit non-zero. */
	assert_int_equal(ctl(&out, "connectors", "add", "shop_b", "--plugin", "shopify", NULL), 1);
	assert_non_null(strstr(out, "needs --plugin, --merchant and --settings"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "show", "nope", NULL), 1);
	assert_non_null(strstr(out, "HTTP 404"));
	assert_non_null(strstr(out, "no connector named \"nope\""));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "sync", "shop_a", "--since", "yesterday", NULL), 1);
	assert_non_null(strstr(out, "body.since"));
	free(out);

	/* Tokens: the secret is shown once, then only names. */
	assert_int_equal(ctl(&out, "tokens", "create", "ci", "--role", "viewer", NULL), 0);
	assert_non_null(strstr(out, "token ci (viewer): hub_"));
	free(out);
	assert_int_equal(ctl(&out, "tokens", "list", NULL), 0);
	assert_non_null(strstr(out, "ci"));
	assert_null(strstr(out, "hub_"));
	free(out);
	assert_int_equal(ctl(&out, "tokens", "revoke", "ci", NULL), 0);
	free(out);

	assert_int_equal(ctl(&out, "orders", "list", NULL), 0);
	assert_non_null(strstr(out, "(none)"));
	free(out);
	assert_int_equal(ctl(&out, "connectors", "remove", "shop_a", NULL), 0);
	free(out);
}

static void bad_token_and_unreachable(void **state)
{
	char *out;
	char *argv[] = {hubctl, "--url", "http://127.0.0.1:1", "--token", "x", "plugins", "list", NULL};
	char *argv2[] = {hubctl, "--config", cfg, "--token", "hub_wrong_token_value", "plugins", "list", NULL};

	assert_int_equal(proc_run(argv, &out, 10000), 1);
	assert_non_null(strstr(out, "cannot reach hubd at http://127.0.0.1:1"));
	assert_non_null(strstr(out, "is hubd running?"));
	free(out);
	assert_int_equal(proc_run(argv2, &out, 10000), 1);
	assert_non_null(strstr(out, "the token was refused"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_and_plugins),
		cmocka_unit_test(connectors_and_tokens),
		cmocka_unit_test(bad_token_and_unreachable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
