/*
 * hub.h - the daemon's context: one struct that ties the modules together
 * (event loop, config, inbound server, metrics and, as they start, the
 * store, the plugin registry, outbound HTTP, rate limits and the
 * scheduler), and the lifecycle functions main() calls.
 */
#ifndef HUB_HUB_H
#define HUB_HUB_H

#include <stdio.h>
#include <event2/event.h>
#include <jansson.h>

#include "conf.h"
#include "metrics.h"
#include "server.h"

struct js_registry;
struct store;
struct plugin_registry;
struct http_client;
struct rl;
struct sync;
struct auth;
struct wpool;

struct hub {
	struct event_base *base;
	struct hub_config cfg;
	struct server *server;
	struct metrics *metrics;
	struct js_registry *schemas;   /* canonical record schemas */
	struct store *store;
	struct plugin_registry *reg;
	struct http_client *http;
	struct rl *rl;
	struct sync *sync;
	struct auth *auth;
	json_t *declared;              /* {name: fingerprint} of the connectors declared in the
					* config file (its JSON is let go after start) */
	struct wpool *hooks;           /* webhook workers, or NULL: all on the loop */
	int created_state_dir;         /* removed again if start-up fails */
	int state_lock_fd;             /* flock on <state_dir>/hubd.lock, -1 when none */
	char instance_id[40];          /* <state_dir>/instance.id: this hubd's name across restarts */
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer, *stats_timer;
	int stopping;            /* SIGTERM/SIGINT received */
	long long stop_deadline_ms;
	int exit_code;
	long long started_ms;
	unsigned ticks;          /* of the stats timer */
	int64_t stats_sent_ms;   /* monotonic: when the last stats op was queued */
	int64_t last_trim_ms;    /* monotonic: the last periodic heap trim */
};

/* Loads the config at `path` into hub->cfg and starts every module: binds
 * the listener first (so a port in use fails before anything is created),
 * then creates the state dir, opens the store, loads plugins. Returns 0, or
 * -1 after printing one clear line per problem to stderr; on failure nothing
 * the call created is left behind except an empty state dir it could not
 * avoid. */
int hub_start(struct hub *hub, const char *config_path);

/* Runs the loop until a graceful stop finishes. Returns the exit code. */
int hub_run(struct hub *hub);

/* Frees everything hub_start created. */
void hub_release(struct hub *hub);

/* Prints every route hubd serves, "METHOD /pattern" per line. */
void hub_print_routes(FILE *out);
/* The operational routes (/healthz, /readyz, /metrics). */
const struct route *ops_route_table(size_t *n);

/* Milliseconds on the monotonic clock. */
long long hub_mono_ms(void);

#endif
