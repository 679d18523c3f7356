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
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <hub/sdk.h>

#include "admin.h"
#include "auth.h"
#include "connector.h"
#include "crypto.h"
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
	char why[200], reason[256];
	json_t *plugins;

	if (hub->stopping) {
		server_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "stopping", "reason",
						    "hubd is shutting down"));
		return;
	}
	if (!store_available(hub->store, why, sizeof(why))) {
		snprintf(reason, sizeof(reason), "the store is unavailable%s%s", why[0] ? ": " : "", why);
		server_add_header(r, "Retry-After", "5");
		server_reply_json(r, 503, json_pack("{s:s,s:s,s:s}", "status", "not_ready", "store",
						    store_backend(hub->store), "reason", reason));
		return;
	}
	plugins = plugin_list(hub->reg);
	server_reply_json(r, 200, json_pack("{s:s,s:s,s:i}", "status", "ready", "store",
					    store_backend(hub->store), "plugins", (int)json_array_size(plugins)));
	json_decref(plugins);
}

/* The store's counters as metrics: with batches and items, the mean batch
 * size; with the time, the mean batch duration; the max is the longest
 * batch since the previous scrape. */
static void store_metrics(struct hub *hub, const struct store_counters *sc)
{
	static const char *const help_max = "The longest store batch (SQL and commit) since the "
					    "previous scrape";
	struct {
		enum metric_type type;
		const char *name, *help;
		double value;
	} m[] = {
		{METRIC_COUNTER, "hub_store_batches_total", "Store transactions committed",
		 (double)sc->batches},
		{METRIC_COUNTER, "hub_store_items_total", "Units and operations the store completed",
		 (double)sc->items},
		{METRIC_COUNTER, "hub_store_items_failed_total",
		 "Units and operations completed with an outcome other than ok or not found",
		 (double)sc->items_failed},
		{METRIC_COUNTER, "hub_store_batch_reruns_total",
		 "Batches run again without a failed item", (double)sc->reruns},
		{METRIC_COUNTER, "hub_store_batches_overlapped_total",
		 "Batches that ran beside another (PostgreSQL: several store connections)",
		 (double)sc->overlapped},
		{METRIC_COUNTER, "hub_store_batch_seconds_total",
		 "Time spent running batches (summed over the store's connections)", (double)sc->batch_us / 1e6},
		{METRIC_GAUGE, "hub_store_batch_seconds_max", help_max, (double)sc->batch_us_max / 1e6},
		{METRIC_GAUGE, "hub_store_queued", "Units and operations waiting for the store thread",
		 (double)sc->queued},
		{METRIC_COUNTER, "hub_store_syncs_total",
		 "Syncs of committed batches made by the store (SQLite full: the WAL)", (double)sc->syncs},
		{METRIC_COUNTER, "hub_store_sync_seconds_total", "Time those syncs took",
		 (double)sc->sync_us / 1e6},
		{METRIC_GAUGE, "hub_store_sync_seconds_max", "The longest sync since the previous scrape",
		 (double)sc->sync_us_max / 1e6},
		/* As the store sees it at the scrape: the stats op (stats_tick)
		 * is refused while the database is down, so it cannot say so. */
		{METRIC_GAUGE, "hub_store_up", "1 when the store is reachable", sc->up ? 1.0 : 0.0},
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		metric_set(metrics_get(hub->metrics, m[i].type, m[i].name, m[i].help, NULL), m[i].value);
}

static void metrics_route(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct evbuffer *buf = evbuffer_new();
	struct http_stats hs;
	size_t len;
	char *text;

	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_uptime_seconds",
			       "Seconds since hubd started", NULL),
		   (double)(hub_mono_ms() - hub->started_ms) / 1000.0);
	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_http_inflight_requests",
			       "Inbound requests being handled", NULL),
		   server_inflight(hub->server) - 1);
	http_client_stats(hub->http, &hs);
	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_upstream_in_flight",
			       "Upstream requests handed to libcurl now (at most outbound.max_in_flight)", NULL),
		   (double)hs.running);
	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_upstream_in_flight_peak",
			       "The most upstream requests handed to libcurl at once since start", NULL),
		   (double)hs.running_peak);
	metric_set(metrics_get(hub->metrics, METRIC_GAUGE, "hub_upstream_queued",
			       "Upstream requests waiting for a slot (outbound.max_in_flight or max_host_connections)",
			       NULL),
		   (double)hs.queued);
	metric_set(metrics_get(hub->metrics, METRIC_COUNTER, "hub_upstream_queued_total",
			       "Upstream requests that had to wait for a slot", NULL),
		   (double)hs.queued_total);
	if (hub->store) {
		struct store_counters sc;

		store_counters_take(hub->store, &sc);
		store_metrics(hub, &sc);
	}
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
static void declared_applied(struct hub *hub);
static void heap_trim(const char *why);

/* Raises the soft limit of open files to the hard one (each upstream
 * connection is a descriptor), and lowers the default
 * outbound.max_total_connections to what it leaves (a value from the file
 * was checked against the hard limit already). Quiet when `quiet`. */
static void fd_limit_setup(struct hub_config *cfg, int quiet)
{
	struct rlimit rl;
	long fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = rl;
		want.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl = want;
	}
	if (rl.rlim_cur == RLIM_INFINITY || cfg->max_total_connections_set ||
	    (rlim_t)cfg->max_total_connections + HUB_FD_RESERVE <= rl.rlim_cur)
		return;
	fit = rl.rlim_cur > HUB_FD_RESERVE + 16 ? (long)(rl.rlim_cur - HUB_FD_RESERVE) : 16;
	if (!quiet)
		log_warn("hubd", "outbound.max_total_connections lowered from %ld to %ld: the open-files limit is %llu "
			 "(raise it with ulimit -n or LimitNOFILE=)", cfg->max_total_connections, fit,
			 (unsigned long long)rl.rlim_cur);
	cfg->max_total_connections = fit;
	if (cfg->max_host_connections > fit)
		cfg->max_host_connections = fit;
}

static int str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static void swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
}

/*
 * The settings a reload cannot apply (the listener, the state dir, the
 * store and its connections, polling leases and the outbound HTTP client
 * are built once at start): fresh takes running's values of them and
 * running gets fresh's strings, to be freed with it. hub->cfg made from
 * fresh thus keeps describing what runs, and every later reload compares
 * the file with that, warning again as long as the file differs.
 */
static void keep_restart_only(struct hub_config *fresh, struct hub_config *running)
{
	swap_str(&fresh->listen, &running->listen);
	swap_str(&fresh->listen_host, &running->listen_host);
	swap_str(&fresh->state_dir, &running->state_dir);
	swap_str(&fresh->store, &running->store);
	swap_str(&fresh->ca_file, &running->ca_file);
	swap_str(&fresh->proxy, &running->proxy);
	fresh->listen_port = running->listen_port;
	fresh->store_connections = running->store_connections;
	fresh->leases_enabled = running->leases_enabled;
	fresh->lease_ttl_s = running->lease_ttl_s;
	fresh->request_timeout_ms = running->request_timeout_ms;
	fresh->max_response_bytes = running->max_response_bytes;
	fresh->max_in_flight = running->max_in_flight;
	fresh->max_host_connections = running->max_host_connections;
	fresh->max_total_connections = running->max_total_connections;
	fresh->max_total_connections_set = running->max_total_connections_set;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct hub *hub = arg;
	const struct hub_config *run = &hub->cfg;
	struct hub_config fresh;
	struct cfg_problems problems = {0};
	int retry_changed;

	log_info("hubd", "SIGHUP: re-reading %s", hub->cfg.path);
	if (config_load(hub->cfg.path, &fresh, &problems) < 0) {
		for (size_t i = 0; i < problems.n; i++)
			log_error("config", "%s", problems.lines[i]);
		log_error("hubd", "config not reloaded: %zu problem(s); the running config stays", problems.n);
		goto out;
	}
	/* Compared with what runs (hub->cfg keeps it, keep_restart_only), so
	 * each reload of a file that still differs says so again. */
	if (strcmp(fresh.listen, run->listen) != 0 || strcmp(fresh.store, run->store) != 0 ||
	    fresh.store_connections != run->store_connections || strcmp(fresh.state_dir, run->state_dir) != 0 ||
	    fresh.leases_enabled != run->leases_enabled || fresh.lease_ttl_s != run->lease_ttl_s)
		log_warn("hubd", "listen, store, store_connections, state_dir and leases changes take effect at "
				 "the next restart");
	fd_limit_setup(&fresh, 1);
	if (fresh.max_in_flight != run->max_in_flight || fresh.max_host_connections != run->max_host_connections ||
	    fresh.max_total_connections != run->max_total_connections ||
	    fresh.request_timeout_ms != run->request_timeout_ms ||
	    fresh.max_response_bytes != run->max_response_bytes || str_differs(fresh.ca_file, run->ca_file) ||
	    str_differs(fresh.proxy, run->proxy))
		log_warn("hubd", "outbound changes (max_in_flight, max_host_connections, max_total_connections, "
				 "timeout_ms, max_response_bytes, ca_file, proxy) take effect at the next restart");
	retry_changed = fresh.retry_base_ms != run->retry_base_ms || fresh.retry_cap_ms != run->retry_cap_ms ||
			fresh.retry_max_attempts != run->retry_max_attempts;
	log_setup(fresh.log_level, fresh.log_format);
	/* Keep what needs a restart, take the rest. */
	{
		struct hub_config old = hub->cfg;

		keep_restart_only(&fresh, &old);
		hub->cfg = fresh;
		config_release(&old);
		memset(&fresh, 0, sizeof(fresh));
		if (retry_changed && hub->sync) {
			sync_set_retry(hub->sync, hub->cfg.retry_base_ms, hub->cfg.retry_cap_ms,
				       hub->cfg.retry_max_attempts);
			log_info("hubd", "retry policy now base_ms=%d cap_ms=%d max_attempts=%d (from the next failure "
				 "on; backoffs already waiting keep their delay)", hub->cfg.retry_base_ms,
				 hub->cfg.retry_cap_ms, hub->cfg.retry_max_attempts);
		}
		apply_declared(hub, hub->declared);
		declared_applied(hub);
		heap_trim("config reload");
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

#define STATS_EVERY_MS 5000
#define STATS_SHARE 200 /* the stats op takes at most 1/200 of the store thread */

/* Arms the stats timer for the next refresh in ms. */
static void stats_arm(struct hub *hub, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	if (!hub->stopping)
		evtimer_add(hub->stats_timer, &tv);
}

/* Store figures for /metrics, refreshed every few seconds off the loop.
 * The op runs on the store thread between batches, so a slow one delays
 * webhooks: the next refresh waits STATS_SHARE times as long as this one
 * took (at least STATS_EVERY_MS, at most 10 minutes). */
static void stats_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct hub *hub = arg;
	int64_t took = hub_mono_ms() - hub->stats_sent_ms, next = took * STATS_SHARE;
	static const char *const keys[][2] = {
		{"orders", "hub_store_orders"},
		{"shipments", "hub_store_shipments"},
		{"jobs", "hub_jobs_queued"},
		{"dead_letters", "hub_dead_letters_pending"},
	};

	(void)err;
	stats_arm(hub, next < STATS_EVERY_MS ? STATS_EVERY_MS : next > 600000 ? 600000 : next);
	if (status != STORE_OK)
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		metric_set(metrics_get(hub->metrics, METRIC_GAUGE, keys[i][1],
				       "Rows in the store (PostgreSQL: orders and shipments are the "
				       "server's live-row estimate)", NULL),
			   (double)json_integer_value(json_object_get(result, keys[i][0])));
}

/* Gives the free memory inside malloc's heaps back to the system when
 * there is enough of it. Start-up (thousands of stored connectors listed,
 * decrypted and parsed at once, partly on the store thread) and bursts of
 * syncs leave megabytes free in the middle of the heaps, which glibc only
 * returns from their tops by itself: after 10,000 connectors started from
 * the store, 30 MB of the 108 MB RSS. Cheap (a walk over the free lists),
 * and done only when at least TRIM_MIN_FREE bytes are free. */
#define TRIM_MIN_FREE (4u << 20)

static void heap_trim(const char *why)
{
#ifdef __GLIBC__
	struct mallinfo2 mi = mallinfo2();

	if (mi.fordblks < TRIM_MIN_FREE)
		return;
	malloc_trim(0);
	log_debug("hubd", "%s: %zu KB of free heap given back", why, mi.fordblks / 1024);
#else
	(void)why;
#endif
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;
	struct hub_error err;
	int64_t now = hub_mono_ms();

	if (hub->stopping)
		return;
	hub->ticks++;
	if (now - hub->last_trim_ms >= 60000) {
		hub->last_trim_ms = now;
		heap_trim("periodic");
	}
	memset(&err, 0, sizeof(err));
	hub->stats_sent_ms = now;
	/* Estimates where exact counts would scan the tables (PostgreSQL):
	 * a COUNT(*) of a few hundred thousand orders took 20-60 ms, during
	 * which no webhook could commit. */
	if (store_call(hub->store, STORE_OP_STATS, json_pack("{s:b}", "estimate", 1), stats_done,
		       hub, &err) < 0)
		stats_arm(hub, STATS_EVERY_MS);
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

/* A declaration's fingerprint: FNV-1a of its canonical JSON (keys sorted).
 * SIGHUP compares fingerprints, so the file's JSON need not stay in memory
 * after start (with 10,000 connectors it held 14 MB, secrets in clear). */
static json_int_t decl_fingerprint(const json_t *decl)
{
	char *text = json_dumps(decl, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = 1469598103934665603ull;

	for (const char *p = text ? text : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	free(text);
	return (json_int_t)(h >> 1);
}

/* {name: fingerprint} of the declared connectors. New reference. */
static json_t *decl_fingerprints(const json_t *decls)
{
	json_t *fp = json_object(), *decl;
	size_t i;

	json_array_foreach(decls, i, decl) {
		const char *name = json_string_value(json_object_get(decl, "name"));
		if (name)
			json_object_set_new(fp, name, json_integer(decl_fingerprint(decl)));
	}
	return fp;
}

/* Keeps the fingerprints of the declarations just applied and lets the
 * file's JSON go (the connectors share the config objects they use). */
static void declared_applied(struct hub *hub)
{
	json_decref(hub->declared);
	hub->declared = decl_fingerprints(hub->cfg.connectors);
	json_decref(hub->cfg.connectors);
	hub->cfg.connectors = json_array();
}

/* SIGHUP: connectors added to the file start, changed ones are updated
 * (their cursors stay), removed ones stop and are deleted. `old` holds the
 * fingerprints of the previous declarations. */
static void apply_declared(struct hub *hub, const json_t *old)
{
	json_t *decl, *prev, *now = json_object();
	struct hub_error err;
	const char *oname;
	size_t i;

	json_array_foreach(hub->cfg.connectors, i, decl)
		json_object_set_new(now, json_string_value(json_object_get(decl, "name")), json_true());
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
		prev = json_object_get(old, name);
		if (prev && json_integer_value(prev) == decl_fingerprint(decl))
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
	json_object_foreach((json_t *)old, oname, prev) {
		struct connector *c = json_object_get(now, oname) ? NULL : connector_find(hub->reg, oname);
		if (!c)
			continue;
		sync_detach(hub->sync, c);
		memset(&err, 0, sizeof(err));
		connector_destroy(hub->reg, oname, &err);
		store_call(hub->store, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", oname), NULL, NULL, &err);
		log_info("hubd", "connector %s removed (no longer in the config)", oname);
	}
	json_decref(now);
}

/* Starts the connectors kept in the store, then those declared in the
 * config (a declared connector replaces a stored one of the same name). */
static void start_connectors(struct hub *hub)
{
	json_t *stored = NULL, *tokens = json_object(), *declared = json_object(), *items, *item, *decl;
	struct hub_error err;
	size_t i;

	memset(&err, 0, sizeof(err));
	if (store_call_sync(hub->store, STORE_OP_CONNECTORS_LIST, json_pack("{s:b}", "reveal", 1), &stored, &err) !=
	    STORE_OK)
		log_error("hubd", "cannot list the stored connectors: %s", err.message);
	/* Names indexed once, so matching stays linear with thousands of each. */
	json_array_foreach(hub->cfg.connectors, i, decl)
		json_object_set_new(declared, json_string_value(json_object_get(decl, "name")), json_true());
	/* The list (every stored connector, secrets decrypted) goes item by
	 * item as connectors are made from it, and whole before the declared
	 * ones are: 10,000 of each at once would double start-up's memory. */
	items = json_object_get(stored, "items");
	json_array_foreach(items, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		struct sync_settings set = {0};
		if (!name)
			continue;
		if (json_object_get(declared, name)) {
			/* the file's version starts below, with the stored token */
			if (json_object_get(item, "access_token"))
				json_object_set(tokens, name, json_object_get(item, "access_token"));
			continue;
		}
		set.paused = json_is_true(json_object_get(item, "paused"));
		set.spread_start = 1;
		start_connector(hub, name, json_string_value(json_object_get(item, "plugin")),
				json_string_value(json_object_get(item, "merchant")), json_object_get(item, "config"),
				&set, json_object_get(item, "access_token"), 0);
		json_array_set_new(items, i, json_null());
	}
	json_decref(stored);
	json_array_foreach(hub->cfg.connectors, i, decl) {
		struct sync_settings set;
		const char *name = json_string_value(json_object_get(decl, "name"));
		declared_settings(decl, &set);
		set.spread_start = 1;
		if (start_connector(hub, name, json_string_value(json_object_get(decl, "plugin")),
				    json_string_value(json_object_get(decl, "merchant")),
				    json_object_get(decl, "config"), &set, json_object_get(tokens, name), 0) == 0)
			persist_declared(hub, decl, set.paused, 0);
		json_object_del(tokens, name);
	}
	json_decref(declared);
	json_decref(tokens);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/*
 * Claims the state dir for this process: an exclusive flock on
 * <state_dir>/hubd.lock (held until exit; a second hubd on the same state
 * dir is refused, naming the holder's PID), then reads this hubd's
 * instance id from <state_dir>/instance.id, creating it (16 random hex
 * digits, mode 0600) on first start. The id names the process in polling
 * leases, so a restarted hubd takes its own leases straight back. Returns 0,
 * or -1 with err.
 */
static int state_claim(struct hub *hub, char *err, size_t size)
{
	char path[4096], buf[64];
	unsigned char rnd[8];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/hubd.lock", hub->cfg.state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, size, "%.300s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			snprintf(err, size, "%.300s is in use by another hubd (pid %s); give each hubd its own state_dir",
				 hub->cfg.state_dir, buf[0] ? buf : "?");
		else
			snprintf(err, size, "%.300s: cannot lock: %s", path, strerror(e));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("hubd", "%s: cannot record the pid: %s", path, strerror(errno));
	hub->state_lock_fd = fd;

	snprintf(path, sizeof(path), "%s/instance.id", hub->cfg.state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (strlen(buf) >= 8 && strlen(buf) <= 32 && strspn(buf, "0123456789abcdef") == strlen(buf)) {
			snprintf(hub->instance_id, sizeof(hub->instance_id), "%.32s", buf);
			return 0;
		}
		log_warn("hubd", "%s is not an instance id; writing a new one", path);
	}
	if (crypto_random(rnd, sizeof(rnd)) < 0) {
		snprintf(err, size, "%.300s: no random bytes for an instance id", path);
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hub->instance_id + 2 * i, 3, "%02x", rnd[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, size, "%.300s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%s\n", hub->instance_id);
	if (write(fd, buf, (size_t)n) != n) {
		snprintf(err, size, "%.300s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) != 0) {
		snprintf(err, size, "%.300s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
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
	char err[512], owner_name[200];
	int rc = -1;

	memset(hub, 0, sizeof(*hub));
	hub->state_lock_fd = -1;
	hub->started_ms = hub_mono_ms();
	if (config_load(config_path, &hub->cfg, &problems) < 0 ||
	    config_check_paths(&hub->cfg, &problems) < 0) {
		print_problems(&problems);
		goto out;
	}
	log_setup(hub->cfg.log_level, hub->cfg.log_format);
	fd_limit_setup(&hub->cfg, 0);

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
	if (make_dirs(hub->cfg.state_dir, err, sizeof(err)) < 0 || state_claim(hub, err, sizeof(err)) < 0) {
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
	so.lanes = hub->cfg.store_connections;
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
	ho.max_in_flight = hub->cfg.max_in_flight;
	ho.max_host_connections = hub->cfg.max_host_connections;
	ho.max_total_connections = hub->cfg.max_total_connections;
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
	syo.start_spread_s = hub->cfg.start_spread_s;
	syo.retry_base_ms = hub->cfg.retry_base_ms;
	syo.retry_cap_ms = hub->cfg.retry_cap_ms;
	syo.retry_max_attempts = hub->cfg.retry_max_attempts;
	/* Several hubd may share a PostgreSQL store: each polls only what it leases. */
	if (hub->cfg.leases_enabled && strcmp(store_backend(hub->store), "postgresql") == 0) {
		/* Named after the state dir's instance id: a restarted hubd renews
		 * its own leases at once instead of waiting for them to expire. */
		char host[128] = "hubd";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(owner_name, sizeof(owner_name), "%s:%s", host, hub->instance_id);
		syo.lease_ttl_ms = hub->cfg.lease_ttl_s * 1000;
		syo.lease_owner = owner_name;
	}
	hub->sync = sync_new(&syo);
	hub->auth = auth_new(hub->store, hub->server);
	if (!hub->sync || !hub->auth) {
		fprintf(stderr, "hubd: out of memory\n");
		goto out;
	}
	start_connectors(hub);
	declared_applied(hub);
	heap_trim("start-up");

	/* Webhook workers: parsing, mapping and validating deliveries of
	 * plugins that allow it (HUB_CAP_WEBHOOKS_REENTRANT) run beside the
	 * loop. Auto: one from 4 CPUs. On 2 CPUs shared with the database
	 * and the senders, handing a delivery to a worker cost more than the
	 * loop's own time for it: the worker waited 0.6 ms on average to be
	 * scheduled (bench/webhooks; docs/benchmarks.md). */
	workers = hub->cfg.webhook_workers;
	if (workers < 0)
		workers = sysconf(_SC_NPROCESSORS_ONLN) >= 4 ? 1 : 0;
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
	sync_start(hub->sync); /* first syncs spread from here, when the loop runs */
	log_info("hubd", "listening on %s:%d, state in %s, store %s, %zu connector(s), %d webhook worker(s)",
		 hub->cfg.listen_host, server_port(hub->server), hub->cfg.state_dir, store_backend(hub->store),
		 json_object_size(hub->declared), (int)workers);
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
	json_decref(hub->declared);
	if (hub->base)
		event_base_free(hub->base);
	if (hub->state_lock_fd >= 0)
		close(hub->state_lock_fd); /* drops the lock */
	config_release(&hub->cfg);
}
