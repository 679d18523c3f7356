/*
 * plugin.h - the plugin registry: loading connector plugins with libltdl,
 * checking them against ABI v1, and replacing them while traffic flows.
 *
 * A plugin is `<plugin_dir>/<name>.so`. Each load of it is a *generation*:
 * the file is copied to a private directory under a fresh name (dlopen
 * hands back the same handle for a path it already has open, so a reload
 * must open a new file), opened, checked and its copy unlinked. Generations
 * are reference counted: the registry holds the current one, and every
 * connector instance created from a generation holds it too (core/
 * connector.h). An in-flight request keeps its instance, hence its
 * generation, until it is done; the last release closes the library.
 *
 * Reload = open a new generation, check it, create a new instance for each
 * connector of the plugin from its stored config, then swap every connector
 * to its new instance (cursors live in the connector and the store, so they
 * are untouched). If anything fails the new instances are destroyed, the
 * new generation is closed, the old one keeps serving, and the error says
 * what to fix. Reload requests coalesce: requests made while one is pending
 * share its run; requests made while it runs cause exactly one more run.
 *
 * Threads: the registry, its plugins and connectors belong to the event-loop
 * thread; nothing here locks.
 */
#ifndef HUB_CORE_PLUGIN_H
#define HUB_CORE_PLUGIN_H

#include <stdint.h>
#include <time.h>
#include <jansson.h>

#include <hub/plugin.h>

struct js_registry;
struct connector;
struct plugin_registry;

/* Longest plugin or connector name. */
#define PLUGIN_NAME_MAX 64

/* One loaded copy of a plugin. Read-only for everyone but plugin.c. */
struct plugin_gen {
	unsigned refs;             /* registry's current pointer + instances */
	uint64_t id;               /* generation number, 1, 2, ... per plugin */
	char *name;                /* the plugin's name */
	void *handle;              /* lt_dlhandle */
	/* The descriptor as this host knows it: a copy of the plugin's known
	 * prefix, missing tail zeroed. Strings and functions point into the
	 * library and are valid while the generation lives. */
	struct hub_plugin desc;
	json_t *config_schema;     /* parsed desc.config_schema */
	char **secret_fields;      /* top-level properties with "x-secret": true */
	size_t nsecret_fields;
	char sha256[65];           /* hex digest of the file this generation loaded */
	time_t loaded_at;
	struct plugin_registry *reg;
};

/* A plugin the registry knows: its current generation and connectors. */
struct plugin {
	char *name;
	struct plugin_gen *cur;      /* one reference held */
	uint64_t next_gen;           /* id the next generation gets */
	struct connector **conns;    /* connectors using this plugin */
	size_t nconns, cap_conns;
	int reload_state;            /* enum reload_state in plugin.c */
	int reload_again;
	struct reload_waiter *waiters;     /* served by the pending/next run */
	struct hub_error last_reload_error;
	int last_reload_rc;
	unsigned reloads, reload_failures;
	struct plugin *next;
};

/* Called with the result of a requested reload (err NULL on success). */
typedef void (*plugin_done_fn)(void *arg, int rc, const struct hub_error *err);

/*
 * Hook that runs fn(arg) later on the loop (hubd: event_base_once with a
 * zero timeout). Returns 0, or -1 if it cannot schedule (the registry then
 * runs fn now).
 */
typedef int (*plugin_defer_fn)(void *ctx, void (*fn)(void *arg), void *arg);

/*
 * Creates a registry serving plugins from `plugin_dir` (must exist; it is
 * resolved with realpath). Generation copies go to a private directory
 * created with mode 0700 under `state_dir` (NULL: $TMPDIR or /tmp) and
 * removed by plugin_registry_free. `schemas` is the canonical schema
 * registry used to validate emitted records and config schemas (borrowed,
 * must outlive the registry). Returns NULL with err filled on failure.
 */
struct plugin_registry *plugin_registry_new(const char *plugin_dir, const char *state_dir,
					    const struct js_registry *schemas,
					    struct hub_error *err);

/* Destroys every connector, releases every generation (closing libraries
 * still referenced only by in-flight instances is the caller's problem:
 * release them first) and removes the private directory. NULL is a no-op. */
void plugin_registry_free(struct plugin_registry *reg);

/* Installs the hook used by plugin_reload_request (NULL: run at once). */
void plugin_registry_set_defer(struct plugin_registry *reg, plugin_defer_fn defer, void *ctx);

/* The canonical schemas given at creation (borrowed). */
const struct js_registry *plugin_registry_schemas(const struct plugin_registry *reg);

/* The resolved plugin directory (borrowed). */
const char *plugin_registry_dir(const struct plugin_registry *reg);

/* The private directory holding generation copies (borrowed); a mapping
 * of a file under it in /proc/self/maps is an open generation. */
const char *plugin_registry_gen_dir(const struct plugin_registry *reg);

/* Number of generations open right now, across all plugins (tests, metrics). */
unsigned plugin_registry_live_generations(const struct plugin_registry *reg);

/* Whether `name` is a valid plugin or connector name: [a-z0-9_]+, at most
 * PLUGIN_NAME_MAX bytes. */
int plugin_name_valid(const char *name);

/*
 * Loads `<plugin_dir>/<name>.so` as generation 1 of a new plugin. Refuses
 * (returns -1, err->field = the file, err->message = what is wrong and what
 * to do) names that are not [a-z0-9_]+, files outside plugin_dir (symlinks
 * included), a missing hub_plugin_v1 symbol, another ABI major, a too-short
 * descriptor, a name differing from the file's, a capability without its
 * callbacks, an invalid config schema, and a plugin already loaded (use
 * plugin_reload). A refused plugin is closed again; the process is never
 * affected.
 */
int plugin_load(struct plugin_registry *reg, const char *name, struct hub_error *err);

/*
 * Loads every `*.so` in plugin_dir whose name is valid and not loaded yet.
 * Refusals are logged and counted, not fatal. Returns the number refused.
 */
int plugin_load_all(struct plugin_registry *reg);

/*
 * Reloads plugin `name` now (synchronously): new generation, new instances
 * for all its connectors, swap. Returns 0, or -1 with err filled while the
 * old generation keeps serving. Requests pending with plugin_reload_request
 * are served by this run. If called from within a running reload of the
 * same plugin (a done callback), it schedules one more run and returns 0.
 */
int plugin_reload(struct plugin_registry *reg, const char *name, struct hub_error *err);

/*
 * Asks for a reload of `name`, run through the defer hook; `done` (may be
 * NULL) is called with the result of the run that served the request.
 * Coalescing: requests made before the run starts share it; requests made
 * while it runs share one more run. Returns 0, or -1 with err when the
 * plugin is unknown (done is not called then).
 */
int plugin_reload_request(struct plugin_registry *reg, const char *name, plugin_done_fn done,
			  void *arg, struct hub_error *err);

/*
 * Unloads plugin `name`. Refused (-1, err naming the connectors) while any
 * connector uses it. Pending reload requests are answered with an error.
 * Instances still in flight keep the last generation open until released.
 */
int plugin_unload(struct plugin_registry *reg, const char *name, struct hub_error *err);

/* The plugin named `name`, or NULL. Borrowed. */
struct plugin *plugin_find(struct plugin_registry *reg, const char *name);

/*
 * A JSON array describing every loaded plugin, sorted by name: name,
 * version, description, generation, capabilities, streams, buckets,
 * connectors (count), sha256, loaded_at, reloads, reload_failures,
 * last_reload_error. New reference; NULL on allocation failure.
 */
json_t *plugin_list(struct plugin_registry *reg);
/* The same description for one plugin. New reference. */
json_t *plugin_to_json(const struct plugin *p);

/* Takes / drops a reference on a generation; the last release closes it. */
void plugin_gen_acquire(struct plugin_gen *gen);
void plugin_gen_release(struct plugin_gen *gen);

/* The stream definition named `stream`, or NULL. Borrowed. */
const struct hub_stream_def *plugin_gen_stream(const struct plugin_gen *gen,
					       const char *stream);

/* Mask of record kinds (CALL_KIND_BIT) any callback of this generation may
 * emit: its streams' kinds plus those its capabilities imply. */
uint32_t plugin_gen_kinds(const struct plugin_gen *gen);

/* Whether `field` is marked "x-secret" in the generation's config schema. */
int plugin_gen_is_secret(const struct plugin_gen *gen, const char *field);

/* ---- for core/connector.c -------------------------------------------- */

/* Registers / unregisters a connector with its plugin and the registry's
 * name index. 0 or -1 (name taken, memory). */
int plugin_attach_connector(struct plugin *p, struct connector *c, struct hub_error *err);
void plugin_detach_connector(struct plugin *p, struct connector *c);
/* The connector named `name`, or NULL. */
struct connector *plugin_registry_connector(struct plugin_registry *reg, const char *name);
/* Calls fn on every connector, in no particular order. fn must not create
 * or destroy connectors. */
void plugin_registry_foreach_connector(struct plugin_registry *reg,
				       void (*fn)(struct connector *c, void *arg), void *arg);

#endif /* HUB_CORE_PLUGIN_H */
