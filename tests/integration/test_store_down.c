/*
 * test_store_down.c - POST /hooks/{connector} while the store is
 * unavailable, end to end. hubd stores into a throwaway PostgreSQL
 * (tests/harness/pgserver) and receives signed Shopify order webhooks. A
 * first delivery is stored. The server is stopped by its PID: the next
 * delivery is answered 503 with Retry-After and a JSON error saying the
 * store is unavailable and nothing was stored, right after the stop
 * (hubd may not have noticed yet: then the unit's commit deadline answers)
 * and again once hubd knows (the store refuses the unit at once: the answer
 * must not wait for a deadline); /healthz stays 200, /readyz is not ready and
 * names the store, hub_store_up is 0. The server restarts on the same data
 * directory and port; once hubd has reconnected, the same delivery is
 * stored (not a duplicate: the failed attempts wrote no receipt), and the
 * database holds exactly one row per order, with all its lines. The
 * scenario runs with the loop running the plugin (http.webhook_workers 0)
 * and with a worker running it and queueing the unit itself (1).
 *
 * And SIGHUP: a restart-only setting changed in the file (an outbound one)
 * is warned about at every reload while the file differs from what runs,
 * and no more once the file matches it again.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <hub/sdk.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/pgserver.h"
#include "../harness/proc.h"
#include "../harness/storedb.h"

#define SECRET "store-down-webhook-secret"
#define CONNECTOR "shop"

static struct pgserver pg;
static char hubd_bin[512], plugins[512];

/* One hubd and the place it keeps its data (a fresh database). */
struct run {
	struct storedb db;
	struct proc hub;
	int port;
	char cfg[600], log[600];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes hubd's config: a store at `store` (NULL: SQLite in the state dir),
 * `extra` appended to the top-level object, one Shopify connector that
 * takes webhooks and never polls (paused; its API is a closed port). */
static void write_config(struct run *rn, const char *store, const char *extra)
{
	char text[4096], store_kv[700] = "";

	if (store)
		snprintf(store_kv, sizeof(store_kv), "\"store\":\"%s\",", store);
	snprintf(text, sizeof(text),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\",%s"
		 "\"log\":{\"level\":\"info\"},\"sync\":{\"start_spread_s\":0}%s,\"connectors\":["
		 "{\"name\":\"" CONNECTOR "\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"enabled\":false,"
		 "\"config\":{\"shop\":\"acme.myshopify.com\",\"access_token\":\"shpat_test\","
		 "\"webhook_secret\":\"" SECRET "\",\"api_base\":\"http://127.0.0.1:1\"}}]}",
		 rn->port, rn->db.dir, plugins, store_kv, extra ? extra : "");
	assert_int_equal(proc_write_file(rn->cfg, text), 0);
}

/* Makes a fresh database (when pg runs) and directory for rn, writes the
 * config (store on that database, or SQLite) and starts hubd. */
static void run_start(struct run *rn, int on_pg, const char *extra)
{
	char url[128];
	char *argv[] = {hubd_bin, "--config", rn->cfg, NULL};

	memset(rn, 0, sizeof(*rn));
	assert_int_equal(storedb_make(&rn->db, on_pg ? &pg : NULL, "storedown"), 0);
	rn->port = proc_free_port();
	snprintf(rn->cfg, sizeof(rn->cfg), "%s/hubd.json", rn->db.dir);
	snprintf(rn->log, sizeof(rn->log), "%s/hubd.log", rn->db.dir);
	write_config(rn, on_pg ? rn->db.url : NULL, extra);
	hubt_url(url, sizeof(url), rn->port, "/readyz");
	assert_int_equal(hubt_start_ready(&rn->hub, argv, rn->log, url, 30000), 0);
}

/* Stops hubd (it must exit 0) and removes the database and directory. */
static void run_stop(struct run *rn)
{
	int status = 0;

	assert_int_equal(proc_stop(&rn->hub, SIGTERM, 15000, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *log = proc_read_file(rn->log);

		/* The end of the log: a sanitizer's report is there. */
		fprintf(stderr, "hubd did not stop cleanly (status %d); its log ends:\n%s\n", status,
			log ? log + (strlen(log) > 6000 ? strlen(log) - 6000 : 0) : "");
		free(log);
		fail_msg("hubd did not stop cleanly (status %d)", status);
	}
	assert_int_equal(storedb_remove(&rn->db), 0);
}

/* Occurrences of `what` in hubd's log. */
static int log_count(const struct run *rn, const char *what)
{
	int n = proc_file_count(rn->log, what);

	assert_true(n >= 0);
	return n;
}

/* The fixture's Shopify order (three lines) as order `id`. Caller frees. */
static char *order_body(long long id)
{
	char path[1024];
	const char *fixtures = getenv("HUB_FIXTURES");
	json_t *fx, *order;
	char *text;

	snprintf(path, sizeof(path), "%s/shopify/python_api_test_fixtures_order.json", fixtures ? fixtures : ".");
	fx = json_load_file(path, 0, NULL);
	if (!fx)
		fail_msg("cannot read %s (set HUB_FIXTURES)", path);
	order = json_incref(json_object_get(fx, "order"));
	json_decref(fx);
	assert_int_equal(json_array_size(json_object_get(order, "line_items")), 3);
	json_object_set_new(order, "id", json_integer(id));
	text = json_dumps(order, JSON_COMPACT);
	json_decref(order);
	assert_non_null(text);
	return text;
}

/* Posts order `id` as a signed orders/create delivery `delivery` into r
 * (released by the caller). Waits up to 20 s: an answer may wait for the
 * store's commit deadline. */
static void post_body(const struct run *rn, char *body, const char *delivery, struct th_response *r);

static void post_order(const struct run *rn, long long id, const char *delivery, struct th_response *r)
{
	post_body(rn, order_body(id), delivery, r);
}

/* Posts body (freed here) as a signed orders/create delivery. */
static void post_body(const struct run *rn, char *body, const char *delivery, struct th_response *r)
{
	char url[128], sig[64], h_sig[128], h_id[160];
	const char *hdrs[] = {h_sig, "X-Shopify-Topic: orders/create", h_id,
			      "X-Shopify-Shop-Domain: acme.myshopify.com", "X-Shopify-API-Version: 2026-07",
			      "Content-Type: application/json", NULL};
	struct th_request rq;
	CURL *curl = curl_easy_init();

	assert_int_equal(hub_hmac_sha256_base64(SECRET, strlen(SECRET), body, strlen(body), sig, sizeof(sig)), 0);
	snprintf(h_sig, sizeof(h_sig), "X-Shopify-Hmac-Sha256: %s", sig);
	snprintf(h_id, sizeof(h_id), "X-Shopify-Webhook-Id: %s", delivery);
	hubt_url(url, sizeof(url), rn->port, "/hooks/" CONNECTOR);
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url;
	rq.headers = hdrs;
	rq.body = body;
	rq.body_len = strlen(body);
	rq.timeout_ms = 20000;
	assert_non_null(curl);
	if (th_perform(curl, &rq, r) != 0) {
		char *log = proc_read_file(rn->log);
		int status = 0;
		fprintf(stderr, "hubd's log:\n%s\n", log ? log : "");
		if (waitpid(rn->hub.pid, &status, WNOHANG) == rn->hub.pid)
			fprintf(stderr, "hubd ended: status 0x%x (signal %d)\n", status,
				WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		free(log);
		fail_msg("no answer to delivery %s: %s", delivery, r->error);
	}
	curl_easy_cleanup(curl);
	free(body);
}

/* The "status" of a 200 webhook answer ("stored", "duplicate"). */
static void expect_status(const struct th_response *r, long http, const char *status)
{
	json_t *j = json_loads(r->body, 0, NULL);

	if (r->status != http || !j || strcmp(json_string_value(json_object_get(j, "status")) ?: "", status) != 0)
		fail_msg("expected %ld %s, got %ld %s", http, status, r->status, r->body ? r->body : "");
	json_decref(j);
}

/* A 503 that tells the sender to retry: Retry-After, a JSON error saying
 * the store is unavailable and nothing was stored. */
static void expect_unavailable(const struct th_response *r)
{
	char ra[32];
	json_t *j = json_loads(r->body, 0, NULL), *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (r->status != 503 || !msg)
		fail_msg("expected a 503 JSON error, got %ld %s", r->status, r->body ? r->body : "");
	assert_non_null(th_header(r, "Retry-After", ra, sizeof(ra)));
	assert_true(strtol(ra, NULL, 10) > 0);
	assert_non_null(strstr(r->headers, "application/json"));
	assert_string_equal(json_string_value(json_object_get(e, "code")), "store_unavailable");
	if (!strstr(msg, "store is unavailable") || !strstr(msg, "nothing was stored"))
		fail_msg("the message does not say so: %s", msg);
	json_decref(j);
}

/* GET path on rn's hubd into r. */
static void get(const struct run *rn, const char *path, struct th_response *r)
{
	char url[160];

	hubt_url(url, sizeof(url), rn->port, path);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 0);
}

/* hub_store_up in /metrics: 0, 1, or -1 when absent. */
static int store_up_metric(const struct run *rn)
{
	struct th_response r;
	const char *p;
	int up = -1;

	get(rn, "/metrics", &r);
	assert_int_equal(r.status, 200);
	for (p = r.body; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "hub_store_up ", 13) == 0)
			up = (int)strtol(p + 13, NULL, 10);
	th_response_release(&r);
	return up;
}

/* Waits up to timeout_ms until /readyz answers `want` (200 or 503). */
static void wait_ready(const struct run *rn, long want, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct th_response r;

	for (;;) {
		get(rn, "/readyz", &r);
		if (r.status == want) {
			th_response_release(&r);
			return;
		}
		if (mono_ms() > deadline)
			fail_msg("/readyz did not answer %ld within %d ms: %ld %s", want, timeout_ms, r.status, r.body);
		th_response_release(&r);
		usleep(50000);
	}
}

/* One number from the database behind rn's store (libpq). */
static long long db_count(const struct run *rn, const char *sql, const char *param)
{
	PGconn *c = PQconnectdb(rn->db.url);
	PGresult *res;
	const char *params[1] = {param};
	long long n;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	res = PQexecParams(c, sql, param ? 1 : 0, NULL, param ? params : NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return n;
}

/* Stops PostgreSQL by its postmaster's PID (SIGQUIT: immediate shutdown,
 * the server's processes go at once) and waits (bounded) until it is gone. */
static void pg_kill(void)
{
	int64_t deadline = mono_ms() + 10000;

	assert_true(pg.pid > 0);
	assert_int_equal(kill(pg.pid, SIGQUIT), 0);
	while (kill(pg.pid, 0) == 0) {
		if (mono_ms() > deadline)
			fail_msg("PostgreSQL (pid %ld) did not stop", (long)pg.pid);
		usleep(20000);
	}
	/* The harness learns it is down (nothing left to stop). */
	assert_int_equal(pgserver_pause(&pg), 0);
}

static void store_down_scenario(int workers)
{
	struct run rn;
	struct th_response r;
	char extra[128], line[64], id_a[32], id_b[32], delivery_b[64], delivery_a[64];
	char bad_delivery[64];
	long long a = 1000 + workers * 10 + 1, b = a + 1;
	const char *count_order = "SELECT count(*) FROM orders WHERE connector = '" CONNECTOR "' AND external_id = $1";

	snprintf(extra, sizeof(extra), ",\"http\":{\"webhook_workers\":%d}", workers);
	run_start(&rn, 1, extra);
	snprintf(line, sizeof(line), "%d webhook worker(s)", workers);
	assert_int_equal(log_count(&rn, line), 1);
	snprintf(id_a, sizeof(id_a), "%lld", a);
	snprintf(id_b, sizeof(id_b), "%lld", b);
	snprintf(delivery_a, sizeof(delivery_a), "store-down-%d-a", workers);
	snprintf(delivery_b, sizeof(delivery_b), "store-down-%d-b", workers);
	assert_int_equal(store_up_metric(&rn), 1);

	/* Up: stored. */
	post_order(&rn, a, delivery_a, &r);
	expect_status(&r, 200, "stored");
	th_response_release(&r);
	assert_int_equal(db_count(&rn, count_order, id_a), 1);

	/* Down, whether hubd noticed yet or not: refused at once, or the
	 * unit's commit deadline passes in the queue; 503 either way. */
	pg_kill();
	post_order(&rn, b, delivery_b, &r);
	expect_unavailable(&r);
	th_response_release(&r);

	/* Known down: still alive, not ready (naming the store), store_up 0. */
	wait_ready(&rn, 503, 15000);
	get(&rn, "/healthz", &r);
	assert_int_equal(r.status, 200);
	th_response_release(&r);
	get(&rn, "/readyz", &r);
	assert_int_equal(r.status, 503);
	{
		json_t *j = json_loads(r.body, 0, NULL);
		const char *reason = json_string_value(json_object_get(j, "reason"));
		assert_string_equal(json_string_value(json_object_get(j, "status")), "not_ready");
		assert_string_equal(json_string_value(json_object_get(j, "store")), "postgresql");
		if (!reason || !strstr(reason, "store is unavailable"))
			fail_msg("/readyz does not name the store: %s", r.body);
		json_decref(j);
	}
	th_response_release(&r);
	assert_int_equal(store_up_metric(&rn), 0);

	/* The same delivery again: refused at once (fail-fast), not after the
	 * commit deadline (5 s). */
	post_order(&rn, b, delivery_b, &r);
	expect_unavailable(&r);
	if (r.seconds >= 4.0)
		fail_msg("the refusal took %.1f s: it waited for a deadline", r.seconds);
	th_response_release(&r);

	/* An authentic delivery that cannot be read is kept as a dead letter
	 * and answered 422 - but only once that is committed: now, 503. */
	snprintf(bad_delivery, sizeof(bad_delivery), "store-down-%d-bad", workers);
	post_body(&rn, strdup("{\"id\":\"not a number\"}"), bad_delivery, &r);
	expect_unavailable(&r);
	th_response_release(&r);

	/* Back on the same data dir and port: hubd reconnects by itself. */
	{
		char err[256];
		if (pgserver_resume(&pg, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	}
	wait_ready(&rn, 200, 20000);
	assert_int_equal(store_up_metric(&rn), 1);

	/* The same delivery is stored now (the failed attempts left no
	 * receipt), then is a duplicate. */
	post_order(&rn, b, delivery_b, &r);
	expect_status(&r, 200, "stored");
	th_response_release(&r);
	post_order(&rn, b, delivery_b, &r);
	expect_status(&r, 200, "duplicate");
	th_response_release(&r);
	post_body(&rn, strdup("{\"id\":\"not a number\"}"), bad_delivery, &r);
	if (r.status != 422 || !strstr(r.body, "kept as a dead letter"))
		fail_msg("expected 422 kept as a dead letter, got %ld %s", r.status, r.body ? r.body : "");
	th_response_release(&r);

	/* Exactly one row per order, each with its three lines, one receipt
	 * each, nothing else. */
	assert_int_equal(db_count(&rn, count_order, id_a), 1);
	assert_int_equal(db_count(&rn, count_order, id_b), 1);
	assert_int_equal(db_count(&rn, "SELECT count(*) FROM orders", NULL), 2);
	assert_int_equal(db_count(&rn,
				  "SELECT count(*) FROM order_lines l JOIN orders o ON o.id = l.order_id "
				  "WHERE o.external_id = $1",
				  id_b),
			 3);
	assert_int_equal(db_count(&rn, "SELECT count(*) FROM order_lines", NULL), 6);
	assert_int_equal(db_count(&rn, "SELECT count(*) FROM webhook_receipts WHERE delivery_id = $1", delivery_b),
			 1);
	assert_int_equal(db_count(&rn, "SELECT count(*) FROM webhook_receipts", NULL), 2);
	/* The unreadable delivery: one dead letter, from the attempt after
	 * the restart (the refused one kept nothing). */
	assert_int_equal(db_count(&rn, "SELECT count(*) FROM dead_letters", NULL), 1);
	run_stop(&rn);
}

/* The loop runs the plugin and submits the unit. */
static void store_down_loop(void **state)
{
	(void)state;
	store_down_scenario(0);
}

/* A worker runs the plugin and submits the unit itself. */
static void store_down_worker(void **state)
{
	(void)state;
	store_down_scenario(1);
}

/* Sends SIGHUP and waits (bounded) until hubd logged "config reloaded"
 * once more. */
static void reload(const struct run *rn)
{
	int before = log_count(rn, "config reloaded");
	int64_t deadline = mono_ms() + 10000;

	assert_int_equal(kill(rn->hub.pid, SIGHUP), 0);
	while (log_count(rn, "config reloaded") == before) {
		if (mono_ms() > deadline)
			fail_msg("hubd did not reload after SIGHUP");
		usleep(20000);
	}
}

/* Every reload warns while the file's restart-only setting differs from
 * the running one; none once it matches again. */
static void sighup_warns_until_restart(void **state)
{
	const char *warning = "outbound changes (max_in_flight";
	const char *changed = ",\"outbound\":{\"max_in_flight\":7}";
	struct run rn;
	(void)state;

	run_start(&rn, 0, NULL);
	reload(&rn);
	assert_int_equal(log_count(&rn, warning), 0);

	write_config(&rn, NULL, changed);
	reload(&rn);
	assert_int_equal(log_count(&rn, warning), 1);
	reload(&rn);
	assert_int_equal(log_count(&rn, warning), 2);

	/* The file says what runs again: nothing to warn about. */
	write_config(&rn, NULL, NULL);
	reload(&rn);
	assert_int_equal(log_count(&rn, warning), 2);
	assert_int_equal(log_count(&rn, "take effect at the next restart"), 2);
	run_stop(&rn);
}

static int setup(void **state)
{
	(void)state;
	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	return storedb_server_start(&pg);
}

static int teardown(void **state)
{
	(void)state;
	storedb_server_stop(&pg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(store_down_loop),
		cmocka_unit_test(store_down_worker),
		cmocka_unit_test(sighup_warns_until_restart),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
