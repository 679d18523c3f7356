/*
 * test_sched.c - how hubd paces its upstream requests, seen from the
 * upstream: a stand-in for Shopify's orders endpoint (a child process
 * forked here, loopback only) counts the requests it holds at once and
 * when each connector first asked. Checked: the requests in flight never
 * exceed outbound.max_in_flight, nor outbound.max_host_connections for one
 * host, also under a burst of on-demand syncs; the first syncs of the
 * connectors declared at start are spread over sync.start_spread_s instead
 * of all at once, while an on-demand sync runs at once. And SIGHUP applies
 * the file's changes to declared connectors (hubd keeps only fingerprints
 * of the declarations, not the file's JSON): unchanged ones are left alone,
 * changed ones updated, removed ones deleted, new ones started. Under a low
 * open-files limit, the default connection limit is lowered to fit. Every
 * wait is bounded; the bounds on concurrency hold whatever the machine's
 * speed.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

#define MAX_SHOPS 32

static char dir[256], hubd_bin[512], plugins[512], token[256];
static int hub_port;
static struct proc hub;
static pid_t stub_pid;

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the upstream stand-in (runs in a child process) --------------------------- */

struct stub {
	struct event_base *base;
	int delay_ms;
	int active, max_active, requests;
	int per_shop[MAX_SHOPS];
	int64_t first_ms[MAX_SHOPS];
};

struct held {
	struct stub *st;
	struct evhttp_request *req;
	struct event *ev;
};

static void reply_orders(struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req), "X-Shopify-Shop-Api-Call-Limit", "1/40");
	evbuffer_add_printf(b, "{\"orders\":[]}");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void held_fire(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;
	(void)fd;
	(void)what;

	h->st->active--;
	reply_orders(h->req);
	event_free(h->ev);
	free(h);
}

static void stub_cb(struct evhttp_request *req, void *arg)
{
	struct stub *st = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *tok = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Shopify-Access-Token");
	struct evbuffer *b;

	if (strncmp(uri, "/stats", 6) == 0) {
		b = evbuffer_new();
		evbuffer_add_printf(b, "{\"requests\":%d,\"max_active\":%d,\"per_shop\":[", st->requests,
				    st->max_active);
		for (int i = 0; i < MAX_SHOPS; i++)
			evbuffer_add_printf(b, "%s%d", i ? "," : "", st->per_shop[i]);
		evbuffer_add_printf(b, "],\"first_ms\":[");
		for (int i = 0; i < MAX_SHOPS; i++)
			evbuffer_add_printf(b, "%s%lld", i ? "," : "", (long long)st->first_ms[i]);
		evbuffer_add_printf(b, "]}");
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
		return;
	}
	if (strncmp(uri, "/admin/api/", 11) != 0) {
		evhttp_send_error(req, 404, NULL);
		return;
	}
	st->requests++;
	/* tokens are "shpat_test_<index>" */
	if (tok && strncmp(tok, "shpat_test_", 11) == 0) {
		long i = strtol(tok + 11, NULL, 10);
		if (i >= 0 && i < MAX_SHOPS) {
			if (st->per_shop[i]++ == 0)
				st->first_ms[i] = wall_ms();
		}
	}
	if (++st->active > st->max_active)
		st->max_active = st->active;
	if (st->delay_ms <= 0) {
		st->active--;
		reply_orders(req);
	} else {
		struct held *h = calloc(1, sizeof(*h));
		struct timeval tv = {st->delay_ms / 1000, (st->delay_ms % 1000) * 1000};
		h->st = st;
		h->req = req;
		h->ev = evtimer_new(st->base, held_fire, h);
		evtimer_add(h->ev, &tv);
	}
}

/* Forks the stand-in on a free loopback port (stopped by teardown). */
static void stub_start(int delay_ms, int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	pid_t pid;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 512), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stub st;
		struct evhttp *http;

		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives the test */
		alarm(300);
		memset(&st, 0, sizeof(st));
		st.delay_ms = delay_ms;
		st.base = event_base_new();
		http = evhttp_new(st.base);
		evutil_make_socket_nonblocking(fd);
		if (!st.base || !http || evhttp_accept_socket(http, fd) != 0)
			_exit(2);
		evhttp_set_gencb(http, stub_cb, &st);
		event_base_dispatch(st.base);
		_exit(0);
	}
	close(fd);
	stub_pid = pid;
}

static void stub_stop(void)
{
	if (stub_pid > 0) {
		kill(stub_pid, SIGTERM);
		waitpid(stub_pid, NULL, 0);
	}
	stub_pid = 0;
}

/* The stand-in's counters. New reference. */
static json_t *stub_stats(int port)
{
	struct th_response r;
	char url[96];
	json_t *j = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/stats", port);
	if (th_http("GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200)
		j = json_loads(r.body, 0, NULL);
	th_response_release(&r);
	assert_non_null(j);
	return j;
}

/* Waits (bounded) until the stand-in has seen `n` requests; returns its stats. */
static json_t *stub_wait(int port, int n, int timeout_ms)
{
	int64_t deadline = wall_ms() + timeout_ms;

	for (;;) {
		json_t *s = stub_stats(port);
		int got = (int)json_integer_value(json_object_get(s, "requests"));
		if (got >= n)
			return s;
		json_decref(s);
		if (wall_ms() > deadline)
			fail_msg("the upstream saw %d of %d requests in %d ms", got, n, timeout_ms);
		usleep(50000);
	}
}

/* ---- hubd ------------------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	token[0] = '\0';
	return proc_tmpdir(dir, sizeof(dir), "hub-sched");
}

static int teardown(void **state)
{
	(void)state;
	proc_stop(&hub, SIGTERM, 15000, NULL);
	stub_stop();
	proc_rmtree(dir);
	return 0;
}

/* Starts hubd with `shops` Shopify connectors polling the stand-in hourly
 * and `extra` top-level members ("outbound", "sync"). */
static void hub_start(int shops, int stub_port, const char *extra)
{
	size_t cap = 4096 + (size_t)shops * 400, len;
	char *cfg = malloc(cap), cfg_path[600], logp[600], url[128], path[600];
	char *argv[] = {hubd_bin, "--config", cfg_path, NULL};

	hub_port = proc_free_port();
	len = (size_t)snprintf(cfg, cap,
			       "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
			       "\"log\":{\"level\":\"warn\"},%s,\"connectors\":[",
			       hub_port, dir, plugins, extra);
	for (int i = 0; i < shops; i++)
		len += (size_t)snprintf(cfg + len, cap - len,
					"%s{\"name\":\"s%d\",\"plugin\":\"shopify\",\"merchant\":\"m\","
					"\"poll_interval_s\":3600,\"config\":{\"shop\":\"shop-%d.myshopify.com\","
					"\"access_token\":\"shpat_test_%d\",\"webhook_secret\":\"whsec_%d\","
					"\"api_base\":\"http://127.0.0.1:%d\"}}",
					i ? "," : "", i, i, i, i, stub_port);
	snprintf(cfg + len, cap - len, "]}");
	snprintf(cfg_path, sizeof(cfg_path), "%s/hubd.json", dir);
	assert_int_equal(proc_write_file(cfg_path, cfg), 0);
	free(cfg);
	snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", hub_port);
	if (hubt_start_ready(&hub, argv, logp, url, 60000) < 0)
		fail_msg("hubd did not become ready (its log is above)");
	snprintf(path, sizeof(path), "%s/state", dir);
	assert_int_equal(hubt_admin_token(path, token, sizeof(token)), 0);
}

/* GET /v1/connectors/NAME: the body (new reference), or NULL on 404. */
static json_t *get_connector(const char *name)
{
	struct th_response r;
	char url[160], auth[300];
	const char *h[] = {auth, NULL};
	json_t *j = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/%s", hub_port, name);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	assert_int_equal(th_http("GET", url, h, NULL, 0, &r), 0);
	if (r.status == 200)
		j = json_loads(r.body, 0, NULL);
	else
		assert_int_equal(r.status, 404);
	th_response_release(&r);
	return j;
}

/* POST /v1/connectors/NAME/sync: 202. */
static void trigger(const char *name)
{
	struct th_response r;
	char url[160], auth[300];
	const char *h[] = {auth, NULL};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/%s/sync", hub_port, name);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	assert_int_equal(th_http("POST", url, h, NULL, 0, &r), 0);
	assert_int_equal(r.status, 202);
	th_response_release(&r);
}

/* The value of an unlabelled sample in hubd's /metrics. */
static double hub_metric(const char *name)
{
	struct th_response r;
	char url[96];
	double v = -1;
	size_t n = strlen(name);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", hub_port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	for (const char *l = r.body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, name, n) == 0 && l[n] == ' ')
			v = strtod(l + n + 1, NULL);
	}
	th_response_release(&r);
	assert_true(v >= 0);
	return v;
}

/* ---- tests ------------------------------------------------------------------------ */

/* 12 connectors start at once, then 12 on-demand syncs at once, against an
 * upstream that holds each request 400 ms: never more than 3 at a time. */
static void in_flight_capped(void **state)
{
	int port;
	stub_start(400, &port);
	json_t *s;
	char name[16];
	(void)state;

	hub_start(12, port,
		  "\"outbound\":{\"max_in_flight\":3,\"max_host_connections\":64},\"sync\":{\"start_spread_s\":0}");
	s = stub_wait(port, 12, 30000);
	json_decref(s);
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		trigger(name);
	}
	s = stub_wait(port, 24, 30000);
	assert_in_range(json_integer_value(json_object_get(s, "max_active")), 1, 3);
	assert_int_equal(json_integer_value(json_object_get(s, "requests")), 24);
	assert_in_range((long)hub_metric("hub_upstream_in_flight_peak"), 1, 3);
	json_decref(s);
}

/* The same with many slots but 2 per host: all connectors share one host. */
static void host_capped(void **state)
{
	int port;
	stub_start(400, &port);
	json_t *s;
	char name[16];
	(void)state;

	hub_start(8, port,
		  "\"outbound\":{\"max_in_flight\":64,\"max_host_connections\":2},\"sync\":{\"start_spread_s\":0}");
	json_decref(stub_wait(port, 8, 30000));
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		trigger(name);
	}
	s = stub_wait(port, 16, 30000);
	assert_in_range(json_integer_value(json_object_get(s, "max_active")), 1, 2);
	assert_in_range((long)hub_metric("hub_upstream_in_flight_peak"), 1, 2);
	json_decref(s);
}

/* 10 connectors, an hour's interval, spread over 6 s: their first requests
 * are seconds apart (evenly placed points cover about 94% of the window),
 * all within the window (plus slack for a slow machine), one each; an
 * on-demand sync of the connector placed last runs at once. */
static void first_syncs_spread(void **state)
{
	int port, n = 10;
	stub_start(0, &port);
	json_t *s, *first, *per;
	int64_t t0, lo = INT64_MAX, hi = 0, f8;
	(void)state;

	t0 = wall_ms();
	hub_start(n, port, "\"sync\":{\"start_spread_s\":6}");
	/* s8 is the 9th stream attached: frac(8 * 0.618) = 0.944 of the window. */
	trigger("s8");
	s = stub_wait(port, n, 40000);
	first = json_object_get(s, "first_ms");
	per = json_object_get(s, "per_shop");
	for (int i = 0; i < n; i++) {
		int64_t f = json_integer_value(json_array_get(first, (size_t)i));
		assert_int_equal(json_integer_value(json_array_get(per, (size_t)i)), 1);
		if (i == 8)
			continue;
		lo = f < lo ? f : lo;
		hi = f > hi ? f : hi;
	}
	f8 = json_integer_value(json_array_get(first, 8));
	/* without the spread all would come within the same second */
	assert_true(hi - lo >= 3000);
	assert_true(hi - t0 <= 6000 + 20000);
	/* the on-demand sync came before the connectors placed after 0.5 of
	 * the window (s1 at 0.618, s3 at 0.854) */
	assert_true(f8 < json_integer_value(json_array_get(first, 1)));
	assert_true(f8 < json_integer_value(json_array_get(first, 3)));
	json_decref(s);
}

/* A declaration of connector `name` polling the stand-in with `version`. */
static int decl(char *buf, size_t size, const char *name, int i, const char *version, int port)
{
	return snprintf(buf, size,
			"{\"name\":\"%s\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"poll_interval_s\":3600,"
			"\"config\":{\"shop\":\"shop-%d.myshopify.com\",\"access_token\":\"shpat_test_%d\","
			"\"webhook_secret\":\"whsec_%d\",\"api_version\":\"%s\",\"api_base\":\"http://127.0.0.1:%d\"}}",
			name, i, i, i, version, port);
}

static void declared_connectors_reloaded(void **state)
{
	int port;
	char cfg[4096], path[600], logp[600], d[4][600];
	json_t *c;
	int64_t deadline;
	(void)state;

	stub_start(0, &port);
	hub_start(3, port, "\"sync\":{\"start_spread_s\":0}");
	c = get_connector("s1");
	assert_non_null(c);
	assert_int_equal(json_integer_value(json_object_get(c, "swaps")), 0);
	json_decref(c);

	/* s0 as it was (same members, another order), s1 with another API
	 * version, s2 gone, s3 new. */
	snprintf(d[0], sizeof(d[0]),
		 "{\"plugin\":\"shopify\",\"name\":\"s0\",\"poll_interval_s\":3600,\"merchant\":\"m\","
		 "\"config\":{\"api_base\":\"http://127.0.0.1:%d\",\"shop\":\"shop-0.myshopify.com\","
		 "\"webhook_secret\":\"whsec_0\",\"access_token\":\"shpat_test_0\"}}",
		 port);
	decl(d[1], sizeof(d[1]), "s1", 1, "2024-01", port);
	decl(d[3], sizeof(d[3]), "s3", 3, "2024-01", port);
	snprintf(cfg, sizeof(cfg),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
		 "\"log\":{\"level\":\"info\"},\"sync\":{\"start_spread_s\":0},\"connectors\":[%s,%s,%s]}",
		 hub_port, dir, plugins, d[0], d[1], d[3]);
	snprintf(path, sizeof(path), "%s/hubd.json", dir);
	assert_int_equal(proc_write_file(path, cfg), 0);
	kill(hub.pid, SIGHUP);

	deadline = wall_ms() + 20000;
	while ((c = get_connector("s3")) == NULL && wall_ms() < deadline)
		usleep(50000);
	assert_non_null(c);
	json_decref(c);
	c = get_connector("s2");
	assert_null(c);
	c = get_connector("s1");
	assert_int_equal(json_integer_value(json_object_get(c, "swaps")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(c, "config"), "api_version")),
			    "2024-01");
	json_decref(c);
	c = get_connector("s0");
	assert_int_equal(json_integer_value(json_object_get(c, "swaps")), 0);
	json_decref(c);
	{
		char *log;
		snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
		log = proc_read_file(logp);
		assert_non_null(log);
		assert_non_null(strstr(log, "connector s1 updated"));
		assert_null(strstr(log, "connector s0 updated"));
		assert_non_null(strstr(log, "connector s2 removed"));
		free(log);
	}
}

/* hubd with a hard limit of 600 open files (set in the child before exec):
 * it starts, and says it lowered outbound.max_total_connections. */
static void connection_default_fits_open_files(void **state)
{
	char cfg_path[600], logp[600], url[128], text[1024], *log = NULL;
	pid_t pid;
	int64_t deadline;
	(void)state;

	hub_port = proc_free_port();
	snprintf(text, sizeof(text), "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\"}",
		 hub_port, dir, plugins);
	snprintf(cfg_path, sizeof(cfg_path), "%s/hubd.json", dir);
	assert_int_equal(proc_write_file(cfg_path, text), 0);
	snprintf(logp, sizeof(logp), "%s/hubd.log", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {600, 600};
		char *argv[] = {hubd_bin, "--config", cfg_path, NULL};
		FILE *out = freopen(logp, "a", stderr);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!out || setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(3);
		execv(hubd_bin, argv);
		_exit(4);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", hub_port);
	deadline = wall_ms() + 30000;
	while (th_wait_ok(url, 200) < 0 && wall_ms() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
		;
	log = proc_read_file(logp);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	assert_non_null(log);
	if (!strstr(log, "outbound.max_total_connections lowered from 1024 to 472"))
		fail_msg("no warning in the log:\n%s", log);
	assert_non_null(strstr(log, "listening on"));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(in_flight_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(host_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(first_syncs_spread, setup, teardown),
		cmocka_unit_test_setup_teardown(declared_connectors_reloaded, setup, teardown),
		cmocka_unit_test_setup_teardown(connection_default_fits_open_files, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
