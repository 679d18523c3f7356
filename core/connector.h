/*
 * connector.h - connectors: instances of a plugin with a merchant, a config
 * (secrets included) and per-stream cursors, and the plugin calls made on
 * them.
 *
 * A connector ("acme-shop" using "shopify") owns its config, cursors and
 * access token; the plugin's per-connector state lives in an *instance*
 * (struct conn_instance) tied to one plugin generation. The connector points
 * at its current instance. Work that spans a step - build a request, wait
 * for the response, read it - takes a reference with connector_acquire()
 * and makes every plugin call of that step on the same instance, then
 * releases it. A reload or a config update swaps the connector to a new
 * instance between two steps: new steps use the new one, steps in flight
 * finish on theirs, and the old instance is destroyed (and its generation
 * closed when unused) by the last release. Cursors are never part of an
 * instance, so a swap cannot move them.
 *
 * The plugin sees the connector as its opaque `struct hub_conn *`: the
 * pointer handed to create() is the struct connector itself.
 *
 * Threads: event-loop thread only.
 */
#ifndef HUB_CORE_CONNECTOR_H
#define HUB_CORE_CONNECTOR_H

#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

struct plugin;
struct plugin_gen;
struct plugin_registry;
struct hub_msg;
struct hub_call;

/* One plugin instance of a connector on one generation. */
struct conn_instance {
	unsigned refs;             /* the connector's + one per step in flight */
	struct connector *conn;    /* holds a reference on the connector */
	struct plugin_gen *gen;    /* holds a reference on the generation */
	json_t *config;            /* what create() was given (defaults applied);
	                              kept until destroy() as plugins may borrow
	                              strings from it; shares its values with the
	                              connector's config, never changed in place */
	void *state;               /* what the plugin's create() returned */
};

struct connector {
	unsigned refs;             /* the registry's + one per instance */
	char *name;                /* [a-z0-9_]+, unique in the registry */
	char *merchant;
	struct plugin_registry *reg;
	struct plugin *plugin;     /* NULL once destroyed */
	json_t *config;            /* as given (stored form), secrets in clear;
	                              never changed in place (shared) */
	json_t *cursors;           /* object: stream -> persisted cursor */
	char *access_token;        /* from the refresh_token action, or NULL */
	int64_t access_token_expires_ms;
	struct conn_instance *inst; /* current instance (one reference) */
	struct conn_instance *calling; /* instance whose callback is running:
	                                  host->secret() answers from its config */
	unsigned swaps;            /* instance swaps so far (reloads, updates) */
	void *user;                /* free for the owner (scheduler state) */
	struct metric *webhook_seconds; /* its hub_webhook_duration_seconds (loop) */
	struct metric *webhooks_stored; /* its hub_webhooks_total{result="stored"},
	                                   looked up once (metrics live as long
	                                   as the hub) */
};

/*
 * Creates connector `name` for `merchant` on the loaded plugin
 * `plugin_name`: applies the config schema's top-level defaults, validates
 * `config` against it (err->field names the offending field), and creates an
 * instance on the current generation. `config` is referenced, not copied
 * (configs are never changed in place; the caller must not change it
 * afterwards either). On success
 * *out (if not NULL) borrows the connector, which lives until
 * connector_destroy. Returns 0 or -1 with err.
 */
int connector_create(struct plugin_registry *reg, const char *name, const char *merchant,
		     const char *plugin_name, const json_t *config, struct connector **out,
		     struct hub_error *err);

/*
 * Replaces the config of `c`: validates it, creates an instance with it and
 * swaps to it (cursors kept). Secret fields absent from `config` keep their
 * current value, so a caller that never saw the secrets can change other
 * fields. On failure the connector is unchanged. 0 or -1 with err.
 */
int connector_update(struct connector *c, const json_t *config, struct hub_error *err);

/*
 * Destroys connector `name`: removes it from its plugin (so the plugin can be
 * unloaded) and drops its current instance. Steps still in flight keep their
 * instance - and the connector memory - until they release it. 0 or -1.
 */
int connector_destroy(struct plugin_registry *reg, const char *name, struct hub_error *err);

/* The connector named `name`, or NULL. Borrowed. */
struct connector *connector_find(struct plugin_registry *reg, const char *name);

/* Takes a reference on the connector's current instance for one step;
 * NULL if the connector was destroyed. Release with instance_release. */
struct conn_instance *connector_acquire(struct connector *c);

/* Drops a reference; the last one destroys the plugin state, then releases
 * the generation and the connector. NULL is a no-op. */
void instance_release(struct conn_instance *inst);

/* Accessors backing the host table. Strings are borrowed. */
const char *connector_name(const struct connector *c);
/* Value of config field `name` when it is a string marked "x-secret", read
 * from the config of the instance whose callback is running (else the
 * current instance); NULL otherwise (a warning is logged for fields not
 * marked secret). */
const char *connector_secret(const struct connector *c, const char *name);
const char *connector_access_token(const struct connector *c);
const json_t *connector_cursor(const struct connector *c, const char *stream);

/* Sets the cursor of `stream` as persisted. `cursor` is BORROWED: the
 * connector takes its own reference, the caller keeps (and releases) its
 * own; NULL removes it. 0 or -1. */
int connector_set_cursor(struct connector *c, const char *stream, json_t *cursor);
/* Sets the access token (copied; NULL clears). 0 or -1. */
int connector_set_access_token(struct connector *c, const char *token, int64_t expires_at_ms);

/*
 * The connector for the admin API: name, merchant, plugin, generation,
 * plugin_version, config WITHOUT secret fields, secrets_set (names of the
 * secret fields that have a value), access_token_set, access_token_expires_ms,
 * cursors, swaps. New reference or NULL.
 */
json_t *connector_to_json(const struct connector *c);

/* The names of the connector's secret config fields (its plugin's "x-secret"
 * properties), as a JSON array: what the store seals. New reference. */
json_t *connector_secret_keys(struct connector *c);

/* Mask of record kinds a stream's read_response may emit. */
uint32_t instance_stream_kinds(const struct conn_instance *inst, const char *stream);

/*
 * Plugin calls on one instance. Each checks that the callback exists
 * (otherwise HUB_IGNORED, or HUB_FATAL for streams, with err saying so),
 * clears err before the call and terminates its strings after it, and maps
 * a status outside enum hub_status to HUB_FATAL. `call` must have been set
 * up with call_init. Results are enum hub_status values.
 */
int instance_build_request(struct conn_instance *inst, const char *stream, const json_t *cursor,
			   struct hub_msg *req, struct hub_error *err);
int instance_read_response(struct conn_instance *inst, const char *stream, const json_t *cursor,
			   const struct hub_msg *resp, struct hub_call *call,
			   struct hub_error *err);
void instance_read_limits(struct conn_instance *inst, const char *operation,
			  const struct hub_msg *resp, struct hub_call *call);
int instance_verify_webhook(struct conn_instance *inst, const struct hub_msg *webhook,
			    struct hub_call *call, struct hub_error *err);
int instance_read_webhook(struct conn_instance *inst, const struct hub_msg *webhook,
			  struct hub_call *call, struct hub_error *err);

/*
 * verify_webhook / read_webhook of a plugin declaring
 * HUB_CAP_WEBHOOKS_REENTRANT, from any thread (a worker): as above, but the
 * connector is left alone (the loop thread owns it): during the callback
 * host->secret() answers from inst's own config and host->cursor() and
 * host->access_token() answer NULL. The caller holds a reference on inst
 * (taken and dropped on the loop thread) for the duration.
 */
int instance_verify_webhook_worker(const struct conn_instance *inst, const struct hub_msg *webhook,
				   struct hub_call *call, struct hub_error *err);
int instance_read_webhook_worker(const struct conn_instance *inst, const struct hub_msg *webhook,
				 struct hub_call *call, struct hub_error *err);
/* Whether the instance's plugin declares HUB_CAP_WEBHOOKS_REENTRANT. */
int instance_webhooks_reentrant(const struct conn_instance *inst);

int instance_build_action(struct conn_instance *inst, const char *action, const json_t *payload,
			  struct hub_msg *req, struct hub_error *err);
int instance_read_action(struct conn_instance *inst, const char *action, const json_t *payload,
			 const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

/* ---- for core/plugin.c ------------------------------------------------ */

/*
 * Creates an instance of `c` on `gen` from `config` (NULL: the connector's
 * config), validated against gen's schema first. The instance is not
 * installed. 0 with *out, or -1 with err (field prefixed by the connector).
 */
int connector_instance_new(struct connector *c, struct plugin_gen *gen, const json_t *config,
			   struct conn_instance **out, struct hub_error *err);
/* Makes `inst` the connector's current instance (taking over its
 * reference) and releases the previous one. */
void connector_swap(struct connector *c, struct conn_instance *inst);
/* Detaches and releases everything of a connector the registry is freeing. */
void connector_teardown(struct connector *c);

#endif /* HUB_CORE_CONNECTOR_H */
