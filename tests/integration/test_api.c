/*
 * test_api.c - hubd as a process with the Shopify plugin: the admin API
 * (tokens and roles, merchant scope, connectors, orders), the webhook
 * receiver (signature, dedupe, unknown topic, bad payloads) and inbound
 * limits (oversized bodies, slow clients). Each bad input is answered with
 * the right status and a clear message, nothing is stored, and the daemon
 * keeps serving. Runs against the store named by HUB_TEST_STORE
 * ("sqlite" by default, or "postgresql" with a throwaway server).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include <hub/sdk.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

#define SECRET "hush-webhook-secret"

static char dir[256], hubd[512], admin_token[128], base_url[64], logp[512];
static struct proc hub;
static int port;

/* ---- helpers ------------------------------------------------------------- */

static long api(const char *method, const char *path, const char *token, const char *body, json_t **out)
{
	struct th_response r;
	char url[512], auth[256];
	const char *hdrs[3] = {NULL, "Content-Type: application/json", NULL};
	long status;

	snprintf(url, sizeof(url), "%s%s", base_url, path);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdrs[0] = auth;
	} else {
		hdrs[0] = "Content-Type: application/json";
		hdrs[1] = NULL;
	}
	assert_int_equal(th_http(method, url, hdrs, body, body ? strlen(body) : 0, &r), 0);
	status = r.status;
	if (out)
		*out = r.len ? json_loads(r.body, 0, NULL) : NULL;
	th_response_release(&r);
	return status;
}

static const char *err_message(json_t *j)
{
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	return m ? m : "";
}

/* Posts a Shopify webhook; signs the body with `secret` unless NULL. */
static long hook(const char *connector, const char *topic, const char *webhook_id, const char *body,
		 const char *secret, json_t **out)
{
	struct th_response r;
	char url[256], sig[64], h_sig[128], h_topic[128], h_id[128];
	const char *hdrs[8];
	int n = 0;
	long status;

	snprintf(url, sizeof(url), "%s/hooks/%s", base_url, connector);
	if (secret) {
		hub_hmac_sha256_base64(secret, strlen(secret), body, strlen(body), sig, sizeof(sig));
		snprintf(h_sig, sizeof(h_sig), "X-Shopify-Hmac-Sha256: %s", sig);
		hdrs[n++] = h_sig;
	}
	snprintf(h_topic, sizeof(h_topic), "X-Shopify-Topic: %s", topic);
	snprintf(h_id, sizeof(h_id), "X-Shopify-Webhook-Id: %s", webhook_id);
	hdrs[n++] = h_topic;
	hdrs[n++] = h_id;
	hdrs[n++] = "X-Shopify-Shop-Domain: acme.myshopify.com";
	hdrs[n++] = "X-Shopify-API-Version: 2026-07";
	hdrs[n++] = "Content-Type: application/json";
	hdrs[n] = NULL;
	assert_int_equal(th_http("POST", url, hdrs, body, strlen(body), &r), 0);
	status = r.status;
	if (out)
		*out = json_loads(r.body, 0, NULL);
	th_response_release(&r);
	return status;
}

/* Number of orders visible to the admin token. */
static size_t order_count(void)
{
	json_t *res;
	size_t n;

	assert_int_equal(api("GET", "/v1/orders?limit=500", admin_token, NULL, &res), 200);
	n = json_array_size(json_object_get(res, "orders"));
	json_decref(res);
	return n;
}

/* The reference Shopify order with a given id and updated_at. */
static char *order_body(long long id, const char *updated_at)
{
	char path[1024];
	json_t *fx, *order;
	char *text;
	const char *fixtures = getenv("HUB_FIXTURES");

	snprintf(path, sizeof(path), "%s/shopify/python_api_test_fixtures_order.json", fixtures);
	fx = json_load_file(path, 0, NULL);
	if (!fx)
		fail_msg("cannot read %s (set HUB_FIXTURES)", path);
	order = json_incref(json_object_get(fx, "order"));
	json_decref(fx);
	json_object_set_new(order, "id", json_integer(id));
	json_object_set_new(order, "updated_at", json_string(updated_at));
	text = json_dumps(order, JSON_COMPACT);
	json_decref(order);
	return text;
}

/* ---- fixture: one hubd for the whole group ------------------------------------ */

static char plugins[600];

static int setup(void **state)
{
	char cfg[2048], path[600], cfgpath[600], store[700];
	const char *backend = getenv("HUB_TEST_STORE_URL");
	char *argv[] = {hubd, "--config", cfgpath, NULL};

	proc_build_path(hubd, sizeof(hubd), "hubd");
	if (proc_tmpdir(dir, sizeof(dir), "hubapi") < 0)
		return -1;
	/* A private plugin dir holding a copy of the Shopify plugin, so the
	 * reload tests can swap the file. */
	{
		char src[600], *out;
		char *cp[] = {"/bin/cp", src, plugins, NULL};
		snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
		mkdir(plugins, 0755);
		proc_build_path(src, sizeof(src), ".libs/shopify.so");
		if (proc_run(cp, &out, 10000) != 0)
			return -1;
		free(out);
	}
	port = proc_free_port();
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", port);
	if (backend && *backend)
		snprintf(store, sizeof(store), ",\"store\":\"%s\"", backend);
	else
		store[0] = '\0';
	snprintf(cfg, sizeof(cfg),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\"%s,"
		 "\"http\":{\"max_body_bytes\":65536,\"timeout_s\":2,\"webhook_workers\":2},"
		 "\"log\":{\"level\":\"info\"}}",
		 port, dir, plugins, store);
	snprintf(cfgpath, sizeof(cfgpath), "%s/hubd.json", dir);
	proc_write_file(cfgpath, cfg);
	snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
	snprintf(path, sizeof(path), "%s/readyz", base_url);
	if (hubt_start_ready(&hub, argv, logp, path, 20000) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	return hubt_admin_token(path, admin_token, sizeof(admin_token));
}

static int teardown(void **state)
{
	int status = 0;

	if (proc_stop(&hub, SIGTERM, 10000, &status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *log = proc_read_file(logp);
		fprintf(stderr, "hubd did not stop cleanly (status %d):\n%s\n", status, log ? log : "");
		free(log);
		return -1;
	}
	proc_rmtree(dir);
	return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void admin_token_file_is_private(void **state)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s/state/admin.token", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(strncmp(admin_token, "hub_", 4) == 0);
	assert_true(strlen(admin_token) > 40);
}

static void authentication_and_roles(void **state)
{
	json_t *res;
	const char *viewer, *scoped;
	char vtok[128], stok[128];

	assert_int_equal(api("GET", "/v1/plugins", NULL, NULL, &res), 401);
	assert_non_null(strstr(err_message(res), "Authorization: Bearer"));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/plugins", "hub_not-a-real-token-at-all", NULL, &res), 401);
	json_decref(res);

	assert_int_equal(api("GET", "/v1/plugins", admin_token, NULL, &res), 200);
	assert_true(json_array_size(json_object_get(res, "plugins")) >= 1);
	json_decref(res);

	/* Tokens: create a viewer and a merchant-scoped operator. */
	assert_int_equal(api("POST", "/v1/tokens", admin_token, "{\"name\":\"v\",\"role\":\"viewer\"}", &res), 201);
	viewer = json_string_value(json_object_get(res, "token"));
	assert_non_null(viewer);
	snprintf(vtok, sizeof(vtok), "%s", viewer);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/tokens", admin_token,
			     "{\"name\":\"acme-op\",\"role\":\"operator\",\"merchant\":\"acme\"}", &res), 201);
	scoped = json_string_value(json_object_get(res, "token"));
	snprintf(stok, sizeof(stok), "%s", scoped);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/tokens", admin_token, "{\"name\":\"v\",\"role\":\"viewer\"}", &res), 409);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/tokens", admin_token, "{\"name\":\"x\",\"role\":\"god\"}", &res), 400);
	assert_non_null(strstr(err_message(res), "body.role"));
	json_decref(res);

	/* The list never shows secrets or hashes. */
	assert_int_equal(api("GET", "/v1/tokens", admin_token, NULL, &res), 200);
	{
		char *text = json_dumps(res, 0);
		assert_null(strstr(text, vtok));
		assert_null(strstr(text, "hash"));
		free(text);
	}
	json_decref(res);

	/* Viewer: reads, cannot write, cannot manage tokens. */
	assert_int_equal(api("GET", "/v1/connectors", vtok, NULL, &res), 200);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/plugins", vtok, "{\"name\":\"shopify\"}", &res), 403);
	assert_non_null(strstr(err_message(res), "role viewer"));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/tokens", vtok, NULL, &res), 403);
	json_decref(res);

	/* Merchant-scoped: no plugin management, no other merchant. */
	assert_int_equal(api("POST", "/v1/plugins/shopify/reload", stok, NULL, &res), 403);
	assert_non_null(strstr(err_message(res), "scoped to merchant acme"));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/orders?merchant=globex", stok, NULL, &res), 403);
	json_decref(res);

	/* Revocation takes effect at once. */
	assert_int_equal(api("DELETE", "/v1/tokens/v", admin_token, NULL, NULL), 204);
	assert_int_equal(api("GET", "/v1/connectors", vtok, NULL, &res), 401);
	json_decref(res);
	assert_int_equal(api("DELETE", "/v1/tokens/v", admin_token, NULL, &res), 404);
	json_decref(res);
}

static void connectors_lifecycle(void **state)
{
	json_t *res;
	char *text;

	/* Bad inputs: each refused with the field, nothing created. */
	assert_int_equal(api("POST", "/v1/connectors", admin_token, "{\"name\":", &res), 400);
	assert_non_null(strstr(err_message(res), "request body"));
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors", admin_token,
			     "{\"name\":5,\"plugin\":\"shopify\",\"merchant\":\"acme\",\"config\":{}}", &res), 400);
	assert_non_null(strstr(err_message(res), "body.name: must be a string"));
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors", admin_token,
			     "{\"name\":\"acme\",\"plugin\":\"../shopify\",\"merchant\":\"acme\",\"config\":{}}", &res),
			 422);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors", admin_token,
			     "{\"name\":\"acme\",\"plugin\":\"shopify\",\"merchant\":\"acme\","
			     "\"config\":{\"shop\":\"not a shop\",\"access_token\":\"t\"}}", &res), 422);
	assert_non_null(strstr(err_message(res), "shop"));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/connectors/acme", admin_token, NULL, &res), 404);
	json_decref(res);

	/* A good one; secrets are never echoed. */
	assert_int_equal(api("POST", "/v1/connectors", admin_token,
			     "{\"name\":\"acme\",\"plugin\":\"shopify\",\"merchant\":\"acme\","
			     "\"config\":{\"shop\":\"acme.myshopify.com\",\"access_token\":\"shpat_topsecret\","
			     "\"webhook_secret\":\"" SECRET "\",\"api_base\":\"http://127.0.0.1:1\"}}", &res), 201);
	text = json_dumps(res, 0);
	assert_null(strstr(text, "shpat_topsecret"));
	assert_null(strstr(text, SECRET));
	free(text);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors", admin_token,
			     "{\"name\":\"acme\",\"plugin\":\"shopify\",\"merchant\":\"acme\",\"config\":{}}", &res), 409);
	json_decref(res);

	/* The secret is not in the database file either (SQLite). */
	if (!getenv("HUB_TEST_STORE_URL") || !*getenv("HUB_TEST_STORE_URL")) {
		char path[600];
		char *db;
		snprintf(path, sizeof(path), "%s/state/hub.db", dir);
		usleep(200000);
		db = proc_read_file(path);
		assert_non_null(db);
		/* binary file: search the whole length */
		struct stat st;
		stat(path, &st);
		assert_null(memmem(db, (size_t)st.st_size, "shpat_topsecret", 15));
		free(db);
	}

	/* Pause, resume, status, sync with a bad since. */
	assert_int_equal(api("POST", "/v1/connectors/acme/pause", admin_token, NULL, &res), 200);
	assert_true(json_is_true(json_object_get(res, "paused")));
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors/acme/resume", admin_token, NULL, &res), 200);
	assert_true(json_is_false(json_object_get(res, "paused")));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/connectors/acme/status", admin_token, NULL, &res), 200);
	assert_string_equal(json_string_value(json_object_get(json_object_get(res, "circuit"), "state")), "closed");
	assert_true(json_array_size(json_object_get(res, "streams")) >= 1);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors/acme/sync", admin_token, "{\"since\":\"last week\"}", &res), 400);
	assert_non_null(strstr(err_message(res), "body.since"));
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors/acme/sync", admin_token, "{\"stream\":\"nope\"}", &res), 400);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/connectors/acme/sync", admin_token,
			     "{\"since\":\"2026-01-01T00:00:00Z\"}", &res), 202);
	json_decref(res);

	/* Unload refused while in use. */
	assert_int_equal(api("DELETE", "/v1/plugins/shopify", admin_token, NULL, &res), 409);
	assert_non_null(strstr(err_message(res), "acme"));
	json_decref(res);
}

static void webhooks(void **state)
{
	json_t *res;
	char *body = order_body(450789469, "2008-01-10T11:00:00-05:00");
	char *newer = order_body(450789469, "2008-01-11T11:00:00-05:00");
	size_t before;

	before = order_count();
	/* Bad signature, missing signature: 401 and nothing stored. */
	assert_int_equal(hook("acme", "orders/create", "wh-1", body, "wrong-secret", &res), 401);
	json_decref(res);
	assert_int_equal(hook("acme", "orders/create", "wh-1", body, NULL, &res), 401);
	json_decref(res);
	assert_int_equal(order_count(), before);
	/* Unknown connector. */
	assert_int_equal(hook("nobody", "orders/create", "wh-1", body, SECRET, &res), 404);
	json_decref(res);

	/* A good delivery is stored before the 200. */
	assert_int_equal(hook("acme", "orders/create", "wh-1", body, SECRET, &res), 200);
	assert_string_equal(json_string_value(json_object_get(res, "status")), "stored");
	json_decref(res);
	assert_int_equal(order_count(), before + 1);

	/* The same delivery again: duplicate, nothing changes. */
	assert_int_equal(hook("acme", "orders/create", "wh-1", body, SECRET, &res), 200);
	assert_string_equal(json_string_value(json_object_get(res, "status")), "duplicate");
	json_decref(res);

	/* Newer, then an older replay under another id: the newer stays. */
	assert_int_equal(hook("acme", "orders/updated", "wh-2", newer, SECRET, NULL), 200);
	assert_int_equal(hook("acme", "orders/updated", "wh-3", body, SECRET, NULL), 200);
	assert_int_equal(api("GET", "/v1/orders?connector=acme", admin_token, NULL, &res), 200);
	{
		json_t *o = json_array_get(json_object_get(res, "orders"), 0);
		assert_string_equal(json_string_value(json_object_get(o, "updated_at")), "2008-01-11T16:00:00.000Z");
		assert_string_equal(json_string_value(json_object_get(o, "currency")), "USD");
		/* One order, with its lines. */
		char path[64];
		snprintf(path, sizeof(path), "/v1/orders/%lld", (long long)json_integer_value(json_object_get(o, "id")));
		json_t *one;
		assert_int_equal(api("GET", path, admin_token, NULL, &one), 200);
		assert_true(json_array_size(json_object_get(one, "lines")) == 3 ||
			    json_array_size(json_object_get(json_object_get(one, "order"), "lines")) == 3);
		json_decref(one);
	}
	json_decref(res);
	assert_int_equal(order_count(), before + 1);

	/* A topic the plugin does not handle: 200, ignored. */
	assert_int_equal(hook("acme", "products/create", "wh-4", "{\"id\":1}", SECRET, &res), 200);
	assert_string_equal(json_string_value(json_object_get(res, "status")), "ignored");
	json_decref(res);

	/* Authentic but unreadable: 422, kept as a dead letter, nothing else stored. */
	assert_int_equal(hook("acme", "orders/create", "wh-5", "{\"id\":\"x\"}", SECRET, &res), 422);
	assert_non_null(strstr(err_message(res), "dead letter"));
	json_decref(res);
	assert_int_equal(order_count(), before + 1);
	assert_int_equal(api("GET", "/v1/dead-letters", admin_token, NULL, &res), 200);
	assert_true(json_array_size(json_object_get(res, "dead_letters")) >= 1);
	json_decref(res);

	/* Metrics count them. */
	{
		struct th_response r;
		char url[128];
		snprintf(url, sizeof(url), "%s/metrics", base_url);
		assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
		assert_non_null(strstr(r.body, "hub_webhooks_total{connector=\"acme\",result=\"stored\"}"));
		assert_non_null(strstr(r.body, "hub_webhooks_total{connector=\"acme\",result=\"duplicate\"} 1"));
		assert_non_null(strstr(r.body, "hub_webhooks_total{connector=\"acme\",result=\"unauthorized\"} 2"));
		assert_non_null(strstr(r.body, "hub_webhooks_total{connector=\"acme\",result=\"ignored\"} 1"));
		assert_non_null(strstr(r.body, "hub_webhooks_total{connector=\"acme\",result=\"invalid\"} 1"));
		/* The latency of the webhooks the store answered (stored: 3,
		 * duplicate: 1, invalid and kept: 1), as a histogram. */
		assert_non_null(strstr(r.body, "# TYPE hub_webhook_duration_seconds histogram"));
		assert_non_null(strstr(r.body, "hub_webhook_duration_seconds_bucket{connector=\"acme\","
					       "le=\"+Inf\"} 5\n"));
		assert_non_null(strstr(r.body, "hub_webhook_duration_seconds_count{connector=\"acme\"} 5\n"));
		/* The store's own counters: batches ran and took time. */
		{
			const char *b = strstr(r.body, "\nhub_store_batches_total ");
			const char *t = strstr(r.body, "\nhub_store_batch_seconds_total ");

			assert_non_null(b);
			assert_non_null(t);
			assert_true(strtod(b + strlen("\nhub_store_batches_total "), NULL) >= 1);
			assert_true(strtod(t + strlen("\nhub_store_batch_seconds_total "), NULL) > 0);
			assert_non_null(strstr(r.body, "\nhub_store_batch_seconds_max "));
			assert_non_null(strstr(r.body, "\nhub_store_queued "));
			/* test_api's store is SQLite "full": its commits were synced by the store. */
			{
				const char *y = strstr(r.body, "\nhub_store_syncs_total ");

				assert_non_null(y);
				assert_true(strtod(y + strlen("\nhub_store_syncs_total "), NULL) >= 1);
				assert_non_null(strstr(r.body, "\nhub_store_sync_seconds_max "));
			}
		}
		th_response_release(&r);
	}
	free(body);
	free(newer);
}

static void merchant_scope_on_data(void **state)
{
	json_t *res, *o;
	char tok[128], path[64];

	assert_int_equal(api("POST", "/v1/tokens", admin_token,
			     "{\"name\":\"globex-viewer\",\"role\":\"viewer\",\"merchant\":\"globex\"}", &res), 201);
	snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(res, "token")));
	json_decref(res);
	assert_int_equal(api("GET", "/v1/orders", tok, NULL, &res), 200);
	assert_int_equal(json_array_size(json_object_get(res, "orders")), 0);
	json_decref(res);
	assert_int_equal(api("GET", "/v1/connectors", tok, NULL, &res), 200);
	assert_int_equal(json_array_size(json_object_get(res, "connectors")), 0);
	json_decref(res);
	assert_int_equal(api("GET", "/v1/connectors/acme", tok, NULL, &res), 404);
	json_decref(res);
	/* Another merchant's order id is 404, as if it did not exist. */
	assert_int_equal(api("GET", "/v1/orders?connector=acme", admin_token, NULL, &res), 200);
	o = json_array_get(json_object_get(res, "orders"), 0);
	snprintf(path, sizeof(path), "/v1/orders/%lld", (long long)json_integer_value(json_object_get(o, "id")));
	json_decref(res);
	assert_int_equal(api("GET", path, tok, NULL, &res), 404);
	json_decref(res);
}

static void limits_and_bad_requests(void **state)
{
	json_t *res;
	char *big = malloc(70000);
	struct sockaddr_in sa;
	int fd;
	char buf[256];
	time_t t0;

	/* Oversized body: 413. */
	memset(big, 'a', 69999);
	big[69999] = '\0';
	big[0] = '{';
	{
		struct th_response r;
		char url[128];
		const char *h[] = {"Content-Type: application/json", NULL};
		snprintf(url, sizeof(url), "%s/hooks/acme", base_url);
		th_http("POST", url, h, big, strlen(big), &r);
		assert_int_equal(r.status, 413);
		th_response_release(&r);
	}
	free(big);
	/* Unknown routes and methods; path tricks. */
	assert_int_equal(api("GET", "/v1/nothing", admin_token, NULL, &res), 404);
	json_decref(res);
	assert_int_equal(api("PATCH", "/v1/connectors", admin_token, NULL, &res), 405);
	json_decref(res);
	assert_int_equal(api("POST", "/v1/plugins", admin_token, "{\"name\":\"../../etc/passwd\"}", &res), 400);
	assert_non_null(strstr(err_message(res), "body.name"));
	json_decref(res);
	assert_int_equal(api("POST", "/v1/plugins/..%2f..%2fx/reload", admin_token, NULL, &res), 404);
	json_decref(res);

	/* Slow client: sends half a request line and stalls; it is dropped
	 * within the configured timeout (2 s) and others are still served. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(write(fd, "GET /healthz HTT", 16) == 16);
	assert_int_equal(api("GET", "/healthz", NULL, NULL, NULL), 200);
	t0 = time(NULL);
	{
		struct timeval tv = {8, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = read(fd, buf, sizeof(buf));
		assert_true(n <= 0 || (n > 0 && strncmp(buf, "HTTP/1.1 4", 10) == 0));
	}
	assert_true(time(NULL) - t0 <= 6);
	close(fd);
	assert_int_equal(api("GET", "/healthz", NULL, NULL, NULL), 200);
}

/* Reloads the Shopify plugin 20 times while a child process posts signed
 * webhooks without pause: no webhook may fail. */
static void reload_under_webhook_traffic(void **state)
{
	pid_t child;
	int status, reloads = 0;
	json_t *res;

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int failed = 0;
		for (int i = 0; i < 400; i++) {
			char id[32], *body;
			snprintf(id, sizeof(id), "reload-%d", i);
			body = order_body(800000000 + i, "2026-03-01T10:00:00Z");
			if (hook("acme", "orders/create", id, body, SECRET, NULL) != 200)
				failed++;
			free(body);
		}
		_exit(failed > 250 ? 250 : failed);
	}
	for (int i = 0; i < 20; i++) {
		if (api("POST", "/v1/plugins/shopify/reload", admin_token, NULL, &res) == 200)
			reloads++;
		json_decref(res);
		usleep(20000);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(reloads, 20);
	assert_int_equal(api("GET", "/v1/plugins", admin_token, NULL, &res), 200);
	assert_true(json_integer_value(json_object_get(json_array_get(json_object_get(res, "plugins"), 0),
						       "generation")) >= 21);
	json_decref(res);
}

/* A reload to a broken file is refused; the old generation keeps serving. */
static void reload_to_broken_file_keeps_old(void **state)
{
	char so[700], saved[700], *body;
	json_t *res;

	snprintf(so, sizeof(so), "%s/shopify.so", plugins);
	snprintf(saved, sizeof(saved), "%s/shopify.so.good", dir);
	assert_int_equal(rename(so, saved), 0);
	proc_write_file(so, "this is not an ELF file\n");
	assert_int_equal(api("POST", "/v1/plugins/shopify/reload", admin_token, NULL, &res), 422);
	assert_non_null(strstr(err_message(res), "previous generation keeps serving"));
	json_decref(res);
	body = order_body(900000001, "2026-03-02T10:00:00Z");
	assert_int_equal(hook("acme", "orders/create", "after-broken", body, SECRET, NULL), 200);
	free(body);
	assert_int_equal(rename(saved, so), 0);
	assert_int_equal(api("POST", "/v1/plugins/shopify/reload", admin_token, NULL, &res), 200);
	json_decref(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(admin_token_file_is_private),
		cmocka_unit_test(authentication_and_roles),
		cmocka_unit_test(connectors_lifecycle),
		cmocka_unit_test(webhooks),
		cmocka_unit_test(merchant_scope_on_data),
		cmocka_unit_test(limits_and_bad_requests),
		cmocka_unit_test(reload_under_webhook_traffic),
		cmocka_unit_test(reload_to_broken_file_keeps_old),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
