/*
 * daemon.c - hubd's lifecycle: start-up in an order that fails early and
 * cleanly (config, listener, state dir, store, plugins), signal handling
 * (SIGTERM/SIGINT drain then exit 0 within 10 s, SIGHUP re-reads the
 * config), and the operational routes /healthz, /readyz and /metrics.
 */
#include "config.h"
#include "hub.h"
#include "log.h"

#include <ftw.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <hub/sdk.h>

#include "admin.h"
#include "auth.h"
#include "connector.h"
#include "http_client.h"
#include "jsonschema.h"
#include "plugin.h"
#include "ratelimit.h"
#include "store.h"
#include "sync.h"
#include "webhook.h"
#include "wpool.h"

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
	char why[256] = "store unavailable";
	json_t *plugins;

	if (hub->stopping) {
		server_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "stopping", "reason",
						    "hubd is shutting down"));
		return;
	}
	if (!store_available(hub->store, why, sizeof(why))) {
		server_add_header(r, "Retry-After", "5");
		server_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "not_ready", "reason", why));
		return;
	}
	plugins = plugin_list(hub->reg);
	server_reply_json(r, 200, json_pack("{s:s,s:s,s:i}", "status", "ready", "store",
					    store_backend(hub->store), "plugins", (int)json_array_size(plugins)));
	json_decref(plugins);
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

const struct route *ops_route_table(size_t *n)
{
	*n = sizeof(ops_routes) / sizeof(ops_routes[0]);
	return ops_routes;
}

void hub_print_routes(FILE *out)
{
	const struct route *(*tables[])(size_t *) = {ops_route_table, webhook_route_table, admin_route_table};

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		size_t n;
		const struct route *r = tables[t](&n);
		for (size_t i = 0; i < n; i++)
			fprintf(out, "%s %s\n", r[i].method, r[i].pattern);
	}
}

/*
 * The event loop. With epoll's change list, the changes made to one fd
 * during a loop iteration reach the kernel as one epoll_ctl at the next
 * wait: evhttp turns reading off and on and writing on and off around every
 * request and reply, which were four epoll_ctl calls per webhook. (The
 * change list must not be used with dup()ed fds; hubd has none.)
 */
static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return event_base_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base != NULL ? base : event_base_new();
}

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
	int busy = server_inflight(hub->server) + sync_busy(hub->sync);

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
	if (hub->sync)
		sync_stop(hub->sync);
	evtimer_add(hub->drain_timer, &now);
}

static void apply_declared(struct hub *hub, const json_t *old);

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
		json_t *old_connectors = json_incref(old.connectors);
		hub->cfg = fresh;
		config_release(&old);
		memset(&fresh, 0, sizeof(fresh));
		apply_declared(hub, old_connectors);
		json_decref(old_connectors);
	}
	log_info("hubd", "config reloaded");
out:
	config_release(&fresh);
	cfg_problems_release(&problems);
}

/* Runs fn(arg) on the loop soon (plugin registry's defer hook). */
struct deferred {
	void (*fn)(void *arg);
	void *arg;
};

static void run_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct deferred *d = arg;

	d->fn(d->arg);
	free(d);
}

static int defer_on_loop(void *ctx, void (*fn)(void *arg), void *arg)
{
	struct hub *hub = ctx;
	struct deferred *d = malloc(sizeof(*d));
	struct timeval now = {0, 0};

	if (!d)
		return -1;
	d->fn = fn;
	d->arg = arg;
	if (event_base_once(hub->base, -1, EV_TIMEOUT, run_deferred, d, &now) < 0) {
		free(d);
		return -1;
	}
	return 0;
}

/* Per-source inbound limit (webhooks and admin API share it). */
static long inbound_limit(void *arg, const char *peer)
{
	struct hub *hub = arg;
	struct rl_params p = {hub->cfg.http_burst, hub->cfg.http_rate};
	char key[96];

	snprintf(key, sizeof(key), "in/%s", peer);
	return (long)rl_check(hub->rl, key, &p);
}

/* Store figures for /metrics, refreshed every few seconds off the loop. */
static void stats_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct hub *hub = arg;
	static const char *const keys[][2] = {
		{"orders", "hub_store_orders"},
		{"shipments", "hub_store_shipments"},
		{"jobs", "hub_jobs_queued"},
		{"dead_letters", "hub_dead_letters_pending"},
	};

	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_store_up", "1 when the store is reachable", NULL),
		   status == STORE_OK);
	if (status != STORE_OK)
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		metric_set(metrics_get(hub->metrics, METRIC_GAUGE, keys[i][1], "Rows in the store", NULL),
			   (double)json_integer_value(json_object_get(result, keys[i][0])));
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;
	struct hub_error err;
	struct timeval tv = {5, 0};

	if (hub->stopping)
		return;
	memset(&err, 0, sizeof(err));
	store_call(hub->store, STORE_OP_STATS, NULL, stats_done, hub, &err);
	evtimer_add(hub->stats_timer, &tv);
}

/* Settings of a declared connector. */
static void declared_settings(const json_t *decl, struct sync_settings *set)
{
	const char *since = json_string_value(json_object_get(decl, "backfill_since"));

	memset(set, 0, sizeof(*set));
	set->paused = json_is_false(json_object_get(decl, "enabled"));
	set->poll_interval_s = (int)json_integer_value(json_object_get(decl, "poll_interval_s"));
	set->rate_limits = json_object_get(decl, "rate_limits");
	if (since)
		hub_time_parse(since, 0, &set->backfill_since_ms, "backfill_since", NULL);
}

static void set_cursors(struct connector *c, json_t *cursors)
{
	const char *stream;
	json_t *v;

	json_object_foreach(cursors, stream, v)
		if (json_object_get(v, "cursor") && !json_is_null(json_object_get(v, "cursor")))
			connector_set_cursor(c, stream, json_object_get(v, "cursor"));
}

struct attach_ctx {
	struct hub *hub;
	char name[72];
	struct sync_settings set;
};

/* On the loop: the stored cursors arrived, start syncing. */
static void cursors_loaded(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct attach_ctx *ac = arg;
	struct connector *c = connector_find(ac->hub->reg, ac->name);

	if (c && !c->user) {
		if (status == STORE_OK)
			set_cursors(c, result);
		sync_attach(ac->hub->sync, c, &ac->set);
	}
	json_decref(ac->set.rate_limits);
	free(ac);
}

/* Creates connector `name` with its stored cursors and starts syncing it.
 * Before the loop runs it waits for the cursors; on the loop it does not. */
static int start_connector(struct hub *hub, const char *name, const char *plugin, const char *merchant,
			   const json_t *config, const struct sync_settings *set, const json_t *token,
			   int on_loop)
{
	struct connector *c = NULL;
	struct hub_error err;
	json_t *cursors = NULL;

	memset(&err, 0, sizeof(err));
	if (!plugin_find(hub->reg, plugin) && plugin_load(hub->reg, plugin, &err) < 0) {
		log_error("hubd", "connector %s not started: %s", name, err.message);
		return -1;
	}
	if (connector_create(hub->reg, name, merchant, plugin, config, &c, &err) < 0) {
		log_error("hubd", "connector %s not started: %s%s%s", name, err.field, err.field[0] ? ": " : "",
			  err.message);
		return -1;
	}
	if (json_is_string(json_object_get(token, "token")))
		connector_set_access_token(c, json_string_value(json_object_get(token, "token")),
					   json_integer_value(json_object_get(token, "expires_at_ms")));
	if (on_loop) {
		struct attach_ctx *ac = calloc(1, sizeof(*ac));
		if (!ac)
			return -1;
		ac->hub = hub;
		ac->set = *set;
		json_incref(ac->set.rate_limits); /* the config may be re-read before the answer */
		snprintf(ac->name, sizeof(ac->name), "%s", name);
		if (store_call(hub->store, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", name),
			       cursors_loaded, ac, &err) < 0)
			cursors_loaded(ac, STORE_UNAVAILABLE, NULL, &err);
		return 0;
	}
	if (store_call_sync(hub->store, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", name), &cursors,
			    &err) == STORE_OK)
		set_cursors(c, cursors);
	json_decref(cursors);
	return sync_attach(hub->sync, c, set);
}

static void persisted(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	if (status != STORE_OK)
		log_error("hubd", "connector %s: cannot store its config: %s", (const char *)arg,
			  err ? err->message : store_status_name(status));
	free(arg);
}

/* Persists a declared connector so the admin API and other hubd see it.
 * Before the loop runs it waits for the store; on the loop it does not. */
static void persist_declared(struct hub *hub, const json_t *decl, int paused, int on_loop)
{
	const char *name = json_string_value(json_object_get(decl, "name"));
	struct connector *c = connector_find(hub->reg, name);
	struct hub_error err;

	if (!c)
		return;
	json_t *params = json_pack("{s:s,s:s,s:s,s:O,s:o,s:b}", "name", name, "plugin",
				   json_string_value(json_object_get(decl, "plugin")), "merchant", c->merchant,
				   "config", c->config, "secret_keys", connector_secret_keys(c), "paused", paused);
	memset(&err, 0, sizeof(err));
	if (on_loop) {
		if (store_call(hub->store, STORE_OP_CONNECTOR_PUT, params, persisted, strdup(name), &err) < 0)
			log_error("hubd", "connector %s: cannot store its config: %s", name, err.message);
	} else if (store_call_sync(hub->store, STORE_OP_CONNECTOR_PUT, params, NULL, &err) != STORE_OK) {
		log_error("hubd", "connector %s: cannot store its config: %s", name, err.message);
	}
}

/* SIGHUP: connectors added to the file start, changed ones are updated
 * (their cursors stay), removed ones stop and are deleted. */
static void apply_declared(struct hub *hub, const json_t *old)
{
	json_t *decl, *prev;
	struct hub_error err;
	size_t i, j;

	json_array_foreach(hub->cfg.connectors, i, decl) {
		const char *name = json_string_value(json_object_get(decl, "name"));
		struct connector *c = connector_find(hub->reg, name);
		struct sync_settings set;
		declared_settings(decl, &set);
		if (!c) {
			if (start_connector(hub, name, json_string_value(json_object_get(decl, "plugin")),
					    json_string_value(json_object_get(decl, "merchant")),
					    json_object_get(decl, "config"), &set, NULL, 1) == 0)
				persist_declared(hub, decl, set.paused, 1);
			continue;
		}
		prev = NULL;
		json_array_foreach(old, j, prev)
			if (strcmp(name, json_string_value(json_object_get(prev, "name"))) == 0)
				break;
		if (prev && j < json_array_size(old) && json_equal(prev, decl))
			continue;
		if (!c->plugin || strcmp(c->plugin->name, json_string_value(json_object_get(decl, "plugin"))) != 0) {
			log_error("hubd", "connector %s: changing its plugin needs a restart (or remove and add it)", name);
			continue;
		}
		memset(&err, 0, sizeof(err));
		if (connector_update(c, json_object_get(decl, "config"), &err) < 0) {
			log_error("hubd", "connector %s not updated: %s%s%s (the previous config stays)", name,
				  err.field, err.field[0] ? ": " : "", err.message);
			continue;
		}
		/* New settings (interval, rate limits, paused) take effect at once;
		 * the cursors stay with the connector. */
		sync_detach(hub->sync, c);
		sync_attach(hub->sync, c, &set);
		persist_declared(hub, decl, set.paused, 1);
		log_info("hubd", "connector %s updated", name);
	}
	json_array_foreach(old, j, prev) {
		const char *name = json_string_value(json_object_get(prev, "name"));
		int kept = 0;
		json_array_foreach(hub->cfg.connectors, i, decl)
			if (strcmp(name, json_string_value(json_object_get(decl, "name"))) == 0)
				kept = 1;
		struct connector *c = kept ? NULL : connector_find(hub->reg, name);
		if (!c)
			continue;
		sync_detach(hub->sync, c);
		memset(&err, 0, sizeof(err));
		connector_destroy(hub->reg, name, &err);
		store_call(hub->store, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", name), NULL, NULL, &err);
		log_info("hubd", "connector %s removed (no longer in the config)", name);
	}
}

/* Starts the connectors kept in the store, then those declared in the
 * config (a declared connector replaces a stored one of the same name). */
static void start_connectors(struct hub *hub)
{
	json_t *stored = NULL, *stored_by_name = json_object(), *declared = json_object(), *item, *decl;
	struct hub_error err;
	size_t i;

	memset(&err, 0, sizeof(err));
	if (store_call_sync(hub->store, STORE_OP_CONNECTORS_LIST, json_pack("{s:b}", "reveal", 1), &stored, &err) !=
	    STORE_OK)
		log_error("hubd", "cannot list the stored connectors: %s", err.message);
	/* Names indexed once, so matching stays linear with thousands of each. */
	json_array_foreach(hub->cfg.connectors, i, decl)
		json_object_set_new(declared, json_string_value(json_object_get(decl, "name")), json_true());
	json_array_foreach(json_object_get(stored, "items"), i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		struct sync_settings set = {0};
		if (!name)
			continue;
		json_object_set(stored_by_name, name, item);
		if (json_object_get(declared, name))
			continue; /* the file's version starts below */
		set.paused = json_is_true(json_object_get(item, "paused"));
		start_connector(hub, name, json_string_value(json_object_get(item, "plugin")),
				json_string_value(json_object_get(item, "merchant")), json_object_get(item, "config"),
				&set, json_object_get(item, "access_token"), 0);
	}
	json_array_foreach(hub->cfg.connectors, i, decl) {
		struct sync_settings set;
		const char *name = json_string_value(json_object_get(decl, "name"));
		json_t *token = json_object_get(json_object_get(stored_by_name, name), "access_token");
		declared_settings(decl, &set);
		if (start_connector(hub, name, json_string_value(json_object_get(decl, "plugin")),
				    json_string_value(json_object_get(decl, "merchant")),
				    json_object_get(decl, "config"), &set, token, 0) == 0)
			persist_declared(hub, decl, set.paused, 0);
	}
	json_decref(declared);
	json_decref(stored_by_name);
	json_decref(stored);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int hub_start(struct hub *hub, const char *config_path)
{
	long workers;
	struct cfg_problems problems = {0};
	struct server_opts sopts;
	struct store_options so;
	struct http_client_opts ho;
	struct rl_opts ro;
	struct sync_opts syo;
	struct hub_error herr;
	struct stat st;
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

	hub->base = new_base();
	hub->metrics = metrics_new();
	if (!hub->base || !hub->metrics) {
		fprintf(stderr, "hubd: out of memory\n");
		goto out;
	}
	/* Signals first: a stop requested during start-up is honoured as soon
	 * as the loop runs. */
	hub->sig_term = evsignal_new(hub->base, SIGTERM, on_stop_signal, hub);
	hub->sig_int = evsignal_new(hub->base, SIGINT, on_stop_signal, hub);
	hub->sig_hup = evsignal_new(hub->base, SIGHUP, on_hup, hub);
	hub->drain_timer = evtimer_new(hub->base, drain_check, hub);
	hub->stats_timer = evtimer_new(hub->base, stats_tick, hub);
	if (!hub->sig_term || !hub->sig_int || !hub->sig_hup || !hub->drain_timer || !hub->stats_timer ||
	    evsignal_add(hub->sig_term, NULL) || evsignal_add(hub->sig_int, NULL) ||
	    evsignal_add(hub->sig_hup, NULL)) {
		fprintf(stderr, "hubd: cannot install signal handlers\n");
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
	hub->created_state_dir = stat(hub->cfg.state_dir, &st) != 0;
	if (make_dirs(hub->cfg.state_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: state_dir: %s\n", config_path, err);
		goto out;
	}

	memset(&herr, 0, sizeof(herr));
	hub->schemas = js_registry_new();
	if (!hub->schemas || js_registry_add_builtin(hub->schemas, &herr) < 0) {
		fprintf(stderr, "hubd: canonical schemas: %s\n", herr.message);
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.url = hub->cfg.store;
	so.state_dir = hub->cfg.state_dir;
	if (store_open(&hub->store, hub->base, &so, &herr) < 0) {
		fprintf(stderr, "%s: store: %s\n", config_path,
			strncmp(herr.message, "store: ", 7) == 0 ? herr.message + 7 : herr.message);
		goto out;
	}
	if (auth_bootstrap(hub->store, hub->cfg.state_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: state_dir: %s\n", config_path, err);
		goto out;
	}

	memset(&ho, 0, sizeof(ho));
	ho.ca_file = hub->cfg.ca_file;
	ho.proxy = hub->cfg.proxy;
	ho.max_response_bytes = hub->cfg.max_response_bytes;
	ho.timeout_ms = hub->cfg.request_timeout_ms;
	hub->http = http_client_new(hub->base, &ho);
	rl_opts_init(&ro);
	ro.redis_url = hub->cfg.redis;
	hub->rl = rl_new(hub->base, &ro);
	if (!hub->http || !hub->rl) {
		fprintf(stderr, "%s: %s\n", config_path,
			!hub->rl && hub->cfg.redis ? "redis: the URL is not usable" : "out of memory");
		goto out;
	}
	memset(&herr, 0, sizeof(herr));
	hub->reg = plugin_registry_new(hub->cfg.plugin_dir, hub->cfg.state_dir, hub->schemas, &herr);
	if (!hub->reg) {
		fprintf(stderr, "%s: plugin_dir: %s\n", config_path, herr.message);
		goto out;
	}
	plugin_registry_set_defer(hub->reg, defer_on_loop, hub);
	plugin_load_all(hub->reg);

	memset(&syo, 0, sizeof(syo));
	syo.base = hub->base;
	syo.store = hub->store;
	syo.reg = hub->reg;
	syo.http = hub->http;
	syo.rl = hub->rl;
	syo.metrics = hub->metrics;
	syo.request_timeout_ms = hub->cfg.request_timeout_ms;
	hub->sync = sync_new(&syo);
	hub->auth = auth_new(hub->store, hub->server);
	if (!hub->sync || !hub->auth) {
		fprintf(stderr, "hubd: out of memory\n");
		goto out;
	}
	start_connectors(hub);

	/* Webhook workers: parsing, mapping and validating deliveries of
	 * plugins that allow it (HUB_CAP_WEBHOOKS_REENTRANT) run beside the
	 * loop. Auto: one when there is a second CPU. */
	workers = hub->cfg.webhook_workers;
	if (workers < 0)
		workers = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0;
	if (workers > 0) {
		hub->hooks = wpool_new(hub->base, (unsigned)workers, err, sizeof(err));
		if (!hub->hooks) {
			fprintf(stderr, "hubd: %s\n", err);
			goto out;
		}
	}

	server_add_routes(hub->server, ops_routes, sizeof(ops_routes) / sizeof(ops_routes[0]), hub);
	webhook_routes(hub);
	admin_routes(hub);
	server_set_limiter(hub->server, inbound_limit, hub);

	stats_tick(-1, 0, hub);
	signal(SIGPIPE, SIG_IGN);
	log_info("hubd", "listening on %s:%d, state in %s, store %s, %zu connector(s)", hub->cfg.listen_host,
		 server_port(hub->server), hub->cfg.state_dir, store_backend(hub->store),
		 json_array_size(hub->cfg.connectors));
	rc = 0;
out:
	if (rc < 0 && hub->created_state_dir && hub->cfg.state_dir) {
		/* Nothing half-way: the state dir this attempt created goes again. */
		if (hub->store)
			store_close(hub->store);
		hub->store = NULL;
		nftw(hub->cfg.state_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
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
	/* Order matters: freeing the HTTP client, the limiter and the store
	 * runs their pending callbacks, which use the sync engine and the
	 * connectors; so those go last. The engine stops first so that no
	 * callback schedules new work. */
	if (hub->sync)
		sync_stop(hub->sync);
	/* Webhooks still on a worker finish now: their answers and units go
	 * out while the server and the store are still there. */
	wpool_free(hub->hooks);
	hub->hooks = NULL;
	if (hub->http)
		http_client_free(hub->http);
	if (hub->rl)
		rl_free(hub->rl);
	if (hub->store)
		store_close(hub->store);
	if (hub->sync)
		sync_free(hub->sync);
	plugin_registry_free(hub->reg);
	auth_free(hub->auth);
	js_registry_free(hub->schemas);
	if (hub->stats_timer)
		event_free(hub->stats_timer);
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
