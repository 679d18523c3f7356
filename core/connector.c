/*
 * connector.c - connector lifecycle, instances and guarded plugin calls.
 *
 * Reference structure: the registry holds one reference on each live
 * connector; the connector holds one on its current instance; each instance
 * holds one on its connector and one on its generation; a step in flight
 * holds one on its instance. So a destroyed connector, or a replaced
 * instance, lives exactly as long as the last step using it, and a
 * generation closes when its last instance is gone.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "host.h"
#include "jsonschema.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"

static void seterr(struct hub_error *err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(struct hub_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

static void connector_unref(struct connector *c)
{
	if (--c->refs)
		return;
	json_decref(c->config);
	json_decref(c->cursors);
	if (c->access_token) {
		memset(c->access_token, 0, strlen(c->access_token));
		free(c->access_token);
	}
	free(c->name);
	free(c->merchant);
	free(c);
}

const char *connector_name(const struct connector *c)
{
	return c->name;
}

/* The instance whose reentrant webhook callback runs on this thread, when
 * it is not the loop thread: the connector's fields belong to the loop, so
 * host calls answer from the instance alone. */
static _Thread_local const struct conn_instance *worker_calling;

const char *connector_secret(const struct connector *c, const char *name)
{
	/* the instance whose callback asks (its config lives as long as it
	 * does, even after a swap or destroy), else the current one */
	const struct conn_instance *inst = worker_calling ? worker_calling
				       : c->calling ? c->calling : c->inst;
	json_t *v;

	if (!inst || (worker_calling && worker_calling->conn != c))
		return NULL;
	v = json_object_get(inst->config, name);
	if (!plugin_gen_is_secret(inst->gen, name)) {
		log_warn("plugin", "%s: secret(\"%s\") refused: the field is not marked "
			 "\"x-secret\": true in the plugin's config schema", c->name, name);
		return NULL;
	}
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *connector_access_token(const struct connector *c)
{
	if (worker_calling)
		return NULL;
	return c->access_token;
}

const json_t *connector_cursor(const struct connector *c, const char *stream)
{
	if (worker_calling)
		return NULL;
	json_t *v = json_object_get(c->cursors, stream);

	return json_is_null(v) ? NULL : v;
}

int connector_set_cursor(struct connector *c, const char *stream, json_t *cursor)
{
	if (!stream)
		return -1;
	if (!cursor)
		return json_object_del(c->cursors, stream) < 0 ? 0 : 0;
	return json_object_set(c->cursors, stream, cursor);
}

int connector_set_access_token(struct connector *c, const char *token, int64_t expires_at_ms)
{
	char *copy = NULL;

	if (token && !(copy = strdup(token)))
		return -1;
	if (c->access_token) {
		memset(c->access_token, 0, strlen(c->access_token));
		free(c->access_token);
	}
	c->access_token = copy;
	c->access_token_expires_ms = copy ? expires_at_ms : 0;
	return 0;
}

/*
 * `config` with gen's top-level defaults applied, validated against its
 * config schema. New reference or NULL with err (field prefixed with
 * "config."). Configs are never changed in place, so the result shares what
 * it can: `config` itself when no default is missing, else a new top-level
 * object whose values (and the defaults, owned by the schema) are shared.
 * 10,000 connectors do not hold their configs twice.
 */
static json_t *prepare_config(const struct connector *c, const struct plugin_gen *gen,
			      const json_t *config, struct hub_error *err)
{
	json_t *out, *props, *def, *dflt;
	struct hub_error verr;
	const char *key;

	if (!json_is_object(config)) {
		seterr(err, "config", "connector %s: the config must be a JSON object", c->name);
		return NULL;
	}
	out = json_incref((json_t *)config);
	props = json_object_get(gen->config_schema, "properties");
	json_object_foreach(props, key, def) {
		dflt = json_object_get(def, "default");
		if (!dflt || json_object_get(out, key))
			continue;
		if (out == config) {
			json_decref(out);
			out = json_copy((json_t *)config);
		}
		if (!out || json_object_set(out, key, dflt) < 0) {
			json_decref(out);
			seterr(err, "config", "out of memory");
			return NULL;
		}
	}
	memset(&verr, 0, sizeof(verr));
	if (js_validate(plugin_registry_schemas(c->reg), gen->config_schema, out, &verr) < 0) {
		const char *f = verr.field;

		if (*f == '$')
			f++;
		if (*f == '.')
			f++;
		seterr(err, "", "connector %s: config%s%s: %s", c->name, *f && *f != '[' ? "." : "",
		       f, verr.message);
		snprintf(err->field, sizeof(err->field), "config%s%.100s", *f && *f != '[' ? "." : "",
			 f);
		json_decref(out);
		return NULL;
	}
	return out;
}

int connector_instance_new(struct connector *c, struct plugin_gen *gen, const json_t *config,
			   struct conn_instance **out, struct hub_error *err)
{
	struct conn_instance *inst = NULL, *prev;
	json_t *cfg, *stored = NULL;
	struct hub_error perr;
	int st, rc = -1;

	*out = NULL;
	cfg = prepare_config(c, gen, config ? config : c->config, err);
	if (!cfg)
		return -1;
	inst = calloc(1, sizeof(*inst));
	if (config)
		stored = json_incref((json_t *)config); /* never changed in place: shared, not copied */
	if (!inst || !cfg) {
		seterr(err, c->name, "out of memory");
		goto out;
	}
	inst->gen = gen;
	inst->config = cfg;
	memset(&perr, 0, sizeof(perr));
	prev = c->calling;
	c->calling = inst;
	st = gen->desc.create(host_table(), (struct hub_conn *)c, cfg, &inst->state, &perr);
	c->calling = prev;
	perr.field[sizeof(perr.field) - 1] = '\0';
	perr.message[sizeof(perr.message) - 1] = '\0';
	if (st != HUB_OK) {
		const char *name = host_status_name(st);

		seterr(err, perr.field[0] ? perr.field : c->name,
		       "connector %s: %s %s create() returned %s%s%s", c->name, gen->name,
		       gen->desc.version, name ? name : "an unknown status",
		       perr.message[0] ? ": " : "", perr.message);
		goto out;
	}
	inst->refs = 1;
	inst->conn = c;
	c->refs++;
	plugin_gen_acquire(gen);
	cfg = NULL;
	/* a config given anew becomes the connector's stored form */
	if (stored) {
		json_decref(c->config);
		c->config = stored;
		stored = NULL;
	}
	*out = inst;
	inst = NULL;
	rc = 0;
out:
	free(inst);
	json_decref(cfg);
	json_decref(stored);
	return rc;
}

void instance_release(struct conn_instance *inst)
{
	struct connector *c;

	if (!inst || --inst->refs)
		return;
	c = inst->conn;
	inst->gen->desc.destroy(inst->state);
	plugin_gen_release(inst->gen);
	json_decref(inst->config);
	free(inst);
	connector_unref(c);
}

struct conn_instance *connector_acquire(struct connector *c)
{
	if (!c || !c->inst)
		return NULL;
	c->inst->refs++;
	return c->inst;
}

void connector_swap(struct connector *c, struct conn_instance *inst)
{
	struct conn_instance *old = c->inst;

	c->inst = inst;
	c->swaps++;
	instance_release(old);
}

struct connector *connector_find(struct plugin_registry *reg, const char *name)
{
	return plugin_registry_connector(reg, name);
}

int connector_create(struct plugin_registry *reg, const char *name, const char *merchant,
		     const char *plugin_name, const json_t *config, struct connector **out,
		     struct hub_error *err)
{
	struct connector *c = NULL;
	struct conn_instance *inst = NULL;
	struct plugin *p;
	int rc = -1;

	if (out)
		*out = NULL;
	if (!plugin_name_valid(name)) {
		seterr(err, "name", "invalid connector name \"%s\": use 1 to %d lower-case letters, "
		       "digits or '_'", name ? name : "(null)", PLUGIN_NAME_MAX);
		return -1;
	}
	if (!merchant || !*merchant) {
		seterr(err, "merchant", "connector %s: a merchant is required", name);
		return -1;
	}
	p = plugin_find(reg, plugin_name);
	if (!p) {
		seterr(err, "plugin", "connector %s: plugin %s is not loaded: load it first", name,
		       plugin_name ? plugin_name : "(null)");
		return -1;
	}
	if (plugin_registry_connector(reg, name)) {
		seterr(err, "name", "connector %s already exists: update it or pick another name",
		       name);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name)) || !(c->merchant = strdup(merchant)) ||
	    !(c->cursors = json_object())) {
		seterr(err, name, "out of memory");
		goto out;
	}
	c->refs = 1;
	c->reg = reg;
	if (connector_instance_new(c, p->cur, config, &inst, err) < 0)
		goto out;
	if (plugin_attach_connector(p, c, err) < 0)
		goto out;
	c->plugin = p;
	c->inst = inst;
	inst = NULL;
	if (out)
		*out = c;
	log_info("connector", "created %s (merchant %s, plugin %s %s)", name, merchant,
		 p->name, p->cur->desc.version);
	c = NULL;
	rc = 0;
out:
	if (inst)
		instance_release(inst); /* drops its reference on c */
	if (c)
		connector_unref(c);
	return rc;
}

int connector_update(struct connector *c, const json_t *config, struct hub_error *err)
{
	struct conn_instance *inst = NULL;
	json_t *merged;
	size_t i;
	int rc;

	if (!c->plugin || !c->inst) {
		seterr(err, c->name, "connector %s was destroyed", c->name);
		return -1;
	}
	if (!json_is_object(config)) {
		seterr(err, "config", "connector %s: the config must be a JSON object", c->name);
		return -1;
	}
	merged = json_deep_copy(config);
	if (!merged) {
		seterr(err, c->name, "out of memory");
		return -1;
	}
	/* keep secrets the caller did not resend */
	for (i = 0; i < c->inst->gen->nsecret_fields; i++) {
		const char *f = c->inst->gen->secret_fields[i];
		json_t *old = json_object_get(c->config, f);

		if (old && !json_object_get(merged, f))
			json_object_set(merged, f, old);
	}
	rc = connector_instance_new(c, c->plugin->cur, merged, &inst, err);
	json_decref(merged);
	if (rc < 0)
		return -1;
	connector_swap(c, inst);
	log_info("connector", "updated %s config (plugin %s generation %llu)", c->name,
		 c->plugin->name, (unsigned long long)c->plugin->cur->id);
	return 0;
}

void connector_teardown(struct connector *c)
{
	struct conn_instance *inst = c->inst;

	if (c->plugin)
		plugin_detach_connector(c->plugin, c);
	c->plugin = NULL;
	c->inst = NULL;
	instance_release(inst);
	connector_unref(c);
}

int connector_destroy(struct plugin_registry *reg, const char *name, struct hub_error *err)
{
	struct connector *c = plugin_registry_connector(reg, name);

	if (!c) {
		seterr(err, "name", "connector %s does not exist", name ? name : "(null)");
		return -1;
	}
	log_info("connector", "destroyed %s", c->name);
	connector_teardown(c);
	return 0;
}

json_t *connector_secret_keys(struct connector *c)
{
	json_t *keys = json_array();
	struct conn_instance *inst = connector_acquire(c);

	if (inst) {
		for (size_t i = 0; i < inst->gen->nsecret_fields; i++)
			json_array_append_new(keys, json_string(inst->gen->secret_fields[i]));
		instance_release(inst);
	}
	return keys;
}

json_t *connector_to_json(const struct connector *c)
{
	const struct plugin_gen *gen = c->inst ? c->inst->gen : NULL;
	json_t *out, *config, *secrets;
	const char *key;
	json_t *v;
	void *tmp;

	config = json_deep_copy(c->config);
	secrets = json_array();
	if (!config || !secrets)
		goto fail;
	json_object_foreach_safe(config, tmp, key, v) {
		if (gen && plugin_gen_is_secret(gen, key)) {
			if (!json_is_null(v))
				json_array_append_new(secrets, json_string(key));
			json_object_del(config, key);
		}
	}
	out = json_pack("{s:s,s:s,s:s?,s:I,s:s?,s:o,s:o,s:b,s:I,s:O,s:i}", "name", c->name,
			"merchant", c->merchant, "plugin", c->plugin ? c->plugin->name : NULL,
			"generation", (json_int_t)(gen ? gen->id : 0), "plugin_version",
			gen ? gen->desc.version : NULL, "config", config, "secrets_set", secrets,
			"access_token_set", c->access_token != NULL, "access_token_expires_ms",
			(json_int_t)c->access_token_expires_ms, "cursors", c->cursors, "swaps",
			(int)c->swaps);
	return out;
fail:
	json_decref(config);
	json_decref(secrets);
	return NULL;
}

/* ---- guarded calls ----------------------------------------------------- */

uint32_t instance_stream_kinds(const struct conn_instance *inst, const char *stream)
{
	const struct hub_stream_def *s = plugin_gen_stream(inst->gen, stream);

	return s ? s->record_kinds : 0;
}

static void err_begin(struct hub_error *err)
{
	memset(err, 0, sizeof(*err));
}

/* Marks `inst` as the instance calling into the host for the duration of
 * one callback; returns the previous one for enter/leave nesting. */
static struct conn_instance *enter(struct conn_instance *inst)
{
	struct conn_instance *prev = inst->conn->calling;

	inst->conn->calling = inst;
	return prev;
}

static void leave(struct conn_instance *inst, struct conn_instance *prev)
{
	inst->conn->calling = prev;
}

/* Terminates the plugin's strings and maps unknown statuses to HUB_FATAL. */
static int err_end(const struct conn_instance *inst, const char *what, int st,
		   struct hub_error *err)
{
	err->field[sizeof(err->field) - 1] = '\0';
	err->message[sizeof(err->message) - 1] = '\0';
	if (!host_status_name(st)) {
		seterr(err, what, "plugin %s %s: %s returned unknown status %d", inst->gen->name,
		       inst->gen->desc.version, what, st);
		return HUB_FATAL;
	}
	return st;
}

static int missing(const struct conn_instance *inst, const char *what, int st,
		   struct hub_error *err)
{
	seterr(err, what, "plugin %s %s has no %s callback", inst->gen->name,
	       inst->gen->desc.version, what);
	return st;
}

int instance_build_request(struct conn_instance *inst, const char *stream, const json_t *cursor,
			   struct hub_msg *req, struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	const struct hub_stream_def *s = plugin_gen_stream(inst->gen, stream);
	struct conn_instance *prev;
	int st;

	if (!d->build_request)
		return missing(inst, "build_request", HUB_FATAL, err);
	if (!s) {
		seterr(err, "stream", "plugin %s %s has no stream \"%s\"", inst->gen->name,
		       d->version, stream ? stream : "(null)");
		return HUB_FATAL;
	}
	err_begin(err);
	prev = enter(inst);
	st = d->build_request(inst->state, stream, cursor, req, err);
	leave(inst, prev);
	st = err_end(inst, "build_request", st, err);
	if (st == HUB_OK) {
		if (!req->method || !req->url) {
			seterr(err, "build_request", "plugin %s %s returned HUB_OK from "
			       "build_request without calling msg_set_request",
			       inst->gen->name, d->version);
			return HUB_FATAL;
		}
		if (!req->operation && s->operation)
			msg_set_operation(req, s->operation);
	}
	return st;
}

int instance_read_response(struct conn_instance *inst, const char *stream, const json_t *cursor,
			   const struct hub_msg *resp, struct hub_call *call,
			   struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;
	int st;

	if (!d->read_response)
		return missing(inst, "read_response", HUB_FATAL, err);
	err_begin(err);
	prev = enter(inst);
	st = d->read_response(inst->state, stream, cursor, resp, call, err);
	leave(inst, prev);
	return err_end(inst, "read_response", st, err);
}

void instance_read_limits(struct conn_instance *inst, const char *operation,
			  const struct hub_msg *resp, struct hub_call *call)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;

	if (!d->read_limits)
		return;
	prev = enter(inst);
	d->read_limits(inst->state, operation, resp, call);
	leave(inst, prev);
}

int instance_verify_webhook(struct conn_instance *inst, const struct hub_msg *webhook,
			    struct hub_call *call, struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;
	int st;

	if (!d->verify_webhook)
		return missing(inst, "verify_webhook", HUB_UNAUTHORIZED, err);
	err_begin(err);
	prev = enter(inst);
	st = d->verify_webhook(inst->state, webhook, call, err);
	leave(inst, prev);
	return err_end(inst, "verify_webhook", st, err);
}

int instance_read_webhook(struct conn_instance *inst, const struct hub_msg *webhook,
			  struct hub_call *call, struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;
	int st;

	if (!d->read_webhook)
		return missing(inst, "read_webhook", HUB_IGNORED, err);
	err_begin(err);
	prev = enter(inst);
	st = d->read_webhook(inst->state, webhook, call, err);
	leave(inst, prev);
	return err_end(inst, "read_webhook", st, err);
}

int instance_webhooks_reentrant(const struct conn_instance *inst)
{
	return (inst->gen->desc.capabilities & HUB_CAP_WEBHOOKS_REENTRANT) != 0;
}

/* One reentrant webhook callback on this thread (see connector.h). */
static int call_webhook_worker(const struct conn_instance *inst, int verify,
			       const struct hub_msg *webhook, struct hub_call *call,
			       struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	int (*fn)(void *, const struct hub_msg *, struct hub_call *, struct hub_error *) =
		verify ? d->verify_webhook : d->read_webhook;
	const char *what = verify ? "verify_webhook" : "read_webhook";
	const struct conn_instance *prev = worker_calling;
	int st;

	if (!fn)
		return missing(inst, what, verify ? HUB_UNAUTHORIZED : HUB_IGNORED, err);
	err_begin(err);
	worker_calling = inst;
	st = fn(inst->state, webhook, call, err);
	worker_calling = prev;
	return err_end(inst, what, st, err);
}

int instance_verify_webhook_worker(const struct conn_instance *inst, const struct hub_msg *webhook,
				   struct hub_call *call, struct hub_error *err)
{
	return call_webhook_worker(inst, 1, webhook, call, err);
}

int instance_read_webhook_worker(const struct conn_instance *inst, const struct hub_msg *webhook,
				 struct hub_call *call, struct hub_error *err)
{
	return call_webhook_worker(inst, 0, webhook, call, err);
}

int instance_build_action(struct conn_instance *inst, const char *action, const json_t *payload,
			  struct hub_msg *req, struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;
	int st;

	if (!d->build_action)
		return missing(inst, "build_action", HUB_IGNORED, err);
	err_begin(err);
	prev = enter(inst);
	st = d->build_action(inst->state, action, payload, req, err);
	leave(inst, prev);
	st = err_end(inst, "build_action", st, err);
	if (st == HUB_OK && (!req->method || !req->url)) {
		seterr(err, "build_action", "plugin %s %s returned HUB_OK from build_action "
		       "without calling msg_set_request", inst->gen->name, d->version);
		return HUB_FATAL;
	}
	return st;
}

int instance_read_action(struct conn_instance *inst, const char *action, const json_t *payload,
			 const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	const struct hub_plugin *d = &inst->gen->desc;
	struct conn_instance *prev;
	int st;

	if (!d->read_action)
		return missing(inst, "read_action", HUB_FATAL, err);
	err_begin(err);
	prev = enter(inst);
	st = d->read_action(inst->state, action, payload, resp, call, err);
	leave(inst, prev);
	return err_end(inst, "read_action", st, err);
}
