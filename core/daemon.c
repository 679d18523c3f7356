/*
 * daemon.c - hubd's lifecycle: start-up in an order that fails early and
 * cleanly (config, listener, state dir, store, plugins), signal handling
 * (SIGTERM/SIGINT drain then exit 0 within 10 s, SIGHUP re-reads the
 * config), and the operational routes /healthz, /readyz and /metrics.
 */
#include "config.h"
#include "hub.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#define DRAIN_LIMIT_MS 9000

long long hub_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void healthz(struct server_req *r)
{
	server_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct server_req *r)
{
	struct hub *hub = r->route_arg;

	if (hub->stopping) {
		server_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "stopping", "reason",
						    "hubd is shutting down"));
		return;
	}
	server_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

static void metrics_route(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct evbuffer *buf = evbuffer_new();
	size_t len;
	char *text;

	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_uptime_seconds",
			       "Seconds since hubd started", NULL),
		   (double)(hub_mono_ms() - hub->started_ms) / 1000.0);
	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_http_inflight_requests",
			       "Inbound requests being handled", NULL),
		   server_inflight(hub->server) - 1);
	metrics_render(hub->metrics, buf);
	len = evbuffer_get_length(buf);
	text = (char *)evbuffer_pullup(buf, -1);
	server_reply_text(r, 200, "text/plain; version=0.0.4", text ? text : "", len);
	evbuffer_free(buf);
}

static const struct route ops_routes[] = {
	{"GET", "/healthz", healthz, ROLE_NONE, 0},
	{"GET", "/readyz", readyz, ROLE_NONE, 0},
	{"GET", "/metrics", metrics_route, ROLE_NONE, 0},
};

static void print_problems(struct cfg_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		fprintf(stderr, "%s\n", p->lines[i]);
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(const char *path, char *err, size_t err_size)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf)) {
		snprintf(err, err_size, "state dir path too long (%zu bytes)", n);
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
				snprintf(err, err_size, "cannot create %.400s: %s", buf, strerror(errno));
				return -1;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	if (access(path, W_OK | X_OK) != 0) {
		snprintf(err, err_size, "%.400s is not writable: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;
	int busy = server_inflight(hub->server);

	if (busy == 0 || hub_mono_ms() >= hub->stop_deadline_ms) {
		if (busy)
			log_warn("hubd", "stopping with %d requests still in flight after %d ms", busy,
				 DRAIN_LIMIT_MS);
		event_base_loopexit(hub->base, NULL);
		return;
	}
	struct timeval tv = {0, 20000};
	evtimer_add(hub->drain_timer, &tv);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct hub *hub = arg;
	struct timeval now = {0, 0};

	if (hub->stopping) {
		log_warn("hubd", "second stop signal: exiting now");
		event_base_loopexit(hub->base, NULL);
		return;
	}
	hub->stopping = 1;
	hub->stop_deadline_ms = hub_mono_ms() + DRAIN_LIMIT_MS;
	log_info("hubd", "received %s: no longer accepting, finishing in-flight work",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop_accepting(hub->server);
	evtimer_add(hub->drain_timer, &now);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct hub *hub = arg;
	struct hub_config fresh;
	struct cfg_problems problems = {0};

	log_info("hubd", "SIGHUP: re-reading %s", hub->cfg.path);
	if (config_load(hub->cfg.path, &fresh, &problems) < 0) {
		for (size_t i = 0; i < problems.n; i++)
			log_error("config", "%s", problems.lines[i]);
		log_error("hubd", "config not reloaded: %zu problem(s); the running config stays", problems.n);
		goto out;
	}
	if (strcmp(fresh.listen, hub->cfg.listen) != 0 || strcmp(fresh.store, hub->cfg.store) != 0 ||
	    strcmp(fresh.state_dir, hub->cfg.state_dir) != 0)
		log_warn("hubd", "listen, store and state_dir changes take effect at the next restart");
	log_setup(fresh.log_level, fresh.log_format);
	/* Keep what needs a restart, take the rest. */
	{
		struct hub_config old = hub->cfg;
		char *keep_listen = old.listen, *keep_host = old.listen_host;
		char *keep_state = old.state_dir, *keep_store = old.store;
		int keep_port = old.listen_port;
		old.listen = fresh.listen;
		old.listen_host = fresh.listen_host;
		old.state_dir = fresh.state_dir;
		old.store = fresh.store;
		fresh.listen = keep_listen;
		fresh.listen_host = keep_host;
		fresh.listen_port = keep_port;
		fresh.state_dir = keep_state;
		fresh.store = keep_store;
		hub->cfg = fresh;
		config_release(&old);
		memset(&fresh, 0, sizeof(fresh));
	}
	log_info("hubd", "config reloaded");
out:
	config_release(&fresh);
	cfg_problems_release(&problems);
}

int hub_start(struct hub *hub, const char *config_path)
{
	struct cfg_problems problems = {0};
	struct server_opts sopts;
	char err[512];
	int rc = -1;

	memset(hub, 0, sizeof(*hub));
	hub->started_ms = hub_mono_ms();
	if (config_load(config_path, &hub->cfg, &problems) < 0 ||
	    config_check_paths(&hub->cfg, &problems) < 0) {
		print_problems(&problems);
		goto out;
	}
	log_setup(hub->cfg.log_level, hub->cfg.log_format);

	hub->base = event_base_new();
	hub->metrics = metrics_new();
	if (!hub->base || !hub->metrics) {
		fprintf(stderr, "hubd: out of memory\n");
		goto out;
	}

	memset(&sopts, 0, sizeof(sopts));
	sopts.host = hub->cfg.listen_host;
	sopts.port = hub->cfg.listen_port;
	sopts.max_body = hub->cfg.http_max_body;
	sopts.max_headers = hub->cfg.http_max_headers;
	sopts.timeout_s = hub->cfg.http_timeout_s;
	sopts.rate_per_s = hub->cfg.http_rate;
	sopts.burst = hub->cfg.http_burst;
	sopts.tls_cert = hub->cfg.tls_cert;
	sopts.tls_key = hub->cfg.tls_key;
	hub->server = server_new(hub->base, &sopts, err, sizeof(err));
	if (!hub->server) {
		fprintf(stderr, "%s: listen: %s\n", config_path, err);
		goto out;
	}
	if (make_dirs(hub->cfg.state_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: state_dir: %s\n", config_path, err);
		goto out;
	}
	server_add_routes(hub->server, ops_routes, sizeof(ops_routes) / sizeof(ops_routes[0]), hub);

	hub->sig_term = evsignal_new(hub->base, SIGTERM, on_stop_signal, hub);
	hub->sig_int = evsignal_new(hub->base, SIGINT, on_stop_signal, hub);
	hub->sig_hup = evsignal_new(hub->base, SIGHUP, on_hup, hub);
	hub->drain_timer = evtimer_new(hub->base, drain_check, hub);
	if (!hub->sig_term || !hub->sig_int || !hub->sig_hup || !hub->drain_timer ||
	    evsignal_add(hub->sig_term, NULL) || evsignal_add(hub->sig_int, NULL) ||
	    evsignal_add(hub->sig_hup, NULL)) {
		fprintf(stderr, "hubd: cannot install signal handlers\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	log_info("hubd", "listening on %s:%d, state in %s, store %s", hub->cfg.listen_host,
		 server_port(hub->server), hub->cfg.state_dir,
		 strncmp(hub->cfg.store, "sqlite:", 7) == 0 ? hub->cfg.store : "postgresql");
	rc = 0;
out:
	cfg_problems_release(&problems);
	return rc;
}

int hub_run(struct hub *hub)
{
	event_base_dispatch(hub->base);
	log_info("hubd", "stopped");
	return hub->exit_code;
}

void hub_release(struct hub *hub)
{
	if (hub->sig_term)
		event_free(hub->sig_term);
	if (hub->sig_int)
		event_free(hub->sig_int);
	if (hub->sig_hup)
		event_free(hub->sig_hup);
	if (hub->drain_timer)
		event_free(hub->drain_timer);
	server_free(hub->server);
	metrics_free(hub->metrics);
	if (hub->base)
		event_base_free(hub->base);
	config_release(&hub->cfg);
}
