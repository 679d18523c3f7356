/*
 * admin.c - the admin REST API under /v1 (docs/openapi.yaml): plugins,
 * connectors, orders, shipments, dead letters and tokens. Handlers check
 * their input and answer 400 with the field at fault, call the plugin
 * registry, the sync engine or the store, and reply once the store has
 * answered. Merchant-scoped tokens only ever see their merchant's data (an
 * id of another merchant is 404, as if it did not exist). Every mutation is
 * appended to the audit log with the token's name.
 */
#include "config.h"
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "auth.h"
#include "connector.h"
#include "host.h"
#include "hub.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"
#include "store.h"
#include "sync.h"
#include "webhook.h"

/* ---- helpers --------------------------------------------------------------- */

static void audit(struct hub *hub, struct server_req *r, const char *action, const char *target,
		  json_t *detail)
{
	struct hub_error err;

	memset(&err, 0, sizeof(err));
	store_call(hub->store, STORE_OP_AUDIT_APPEND,
		   json_pack("{s:s,s:s,s:s?,s:o?}", "token", r->auth.name, "action", action, "target", target,
			     "detail", detail),
		   NULL, NULL, &err);
}

static int store_http_status(enum store_status s)
{
	switch (s) {
	case STORE_OK: return 200;
	case STORE_NOT_FOUND: return 404;
	case STORE_INVALID: return 400;
	case STORE_DUPLICATE: return 409;
	case STORE_UNAVAILABLE: return 503;
	default: return 500;
	}
}

static void reply_store_error(struct server_req *r, enum store_status s, const struct hub_error *err)
{
	if (s == STORE_UNAVAILABLE)
		server_add_header(r, "Retry-After", "5");
	server_reply_error(r, store_http_status(s), s == STORE_NOT_FOUND ? "not_found" : store_status_name(s),
			   "%s", err && err->message[0] ? err->message : store_status_name(s));
}

/* A visible connector: exists, and belongs to the token's merchant if scoped. */
static struct connector *visible_connector(struct server_req *r, const char *name)
{
	struct hub *hub = r->route_arg;
	struct connector *c = connector_find(hub->reg, name);

	if (!c || (r->auth.merchant[0] && strcmp(c->merchant, r->auth.merchant) != 0)) {
		server_reply_error(r, 404, "not_found", "no connector named \"%s\"", name);
		return NULL;
	}
	return c;
}

static json_t *connector_json(struct hub *hub, struct connector *c)
{
	json_t *j = connector_to_json(c);

	json_object_set_new(j, "paused", json_boolean(sync_paused(hub->sync, c)));
	return j;
}

/* Generic store-op completion: replies with a transform of the result. */
typedef json_t *(*shape_fn)(json_t *result, void *arg);

struct op_ctx {
	struct server_req *r;
	shape_fn shape;
	int ok_status;
	void *arg;
};

static void op_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct op_ctx *oc = arg;

	if (status != STORE_OK)
		reply_store_error(oc->r, status, err);
	else
		server_reply_json(oc->r, oc->ok_status, oc->shape ? oc->shape(result, oc->arg) : json_incref(result));
	free(oc);
}

static void run_op(struct server_req *r, enum store_op op, json_t *params, shape_fn shape, int ok_status,
		   void *arg)
{
	struct hub *hub = r->route_arg;
	struct op_ctx *oc = calloc(1, sizeof(*oc));
	struct hub_error err;

	if (!oc) {
		json_decref(params);
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	oc->r = r;
	oc->shape = shape;
	oc->ok_status = ok_status;
	oc->arg = arg;
	memset(&err, 0, sizeof(err));
	if (store_call(hub->store, op, params, op_done, oc, &err) < 0) {
		free(oc);
		reply_store_error(r, STORE_UNAVAILABLE, &err);
	}
}

/* Reads an optional string field of a body; wrong type -> 400. */
static int body_str(struct server_req *r, json_t *body, const char *key, int required, const char **out)
{
	json_t *v = json_object_get(body, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required) {
			server_reply_error(r, 400, "invalid_request", "body.%s: required", key);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		server_reply_error(r, 400, "invalid_request", "body.%s: must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* Query "limit" and "after" into params; 400 on bad values. */
static int page_params(struct server_req *r, json_t *params)
{
	const char *limit = server_query(r, "limit"), *after = server_query(r, "after");
	char *end;

	if (limit) {
		long v = strtol(limit, &end, 10);
		if (*end || end == limit || v < 1 || v > 500) {
			json_decref(params);
			server_reply_error(r, 400, "invalid_request", "query.limit: must be an integer from 1 to 500");
			return -1;
		}
		json_object_set_new(params, "limit", json_integer(v));
	} else {
		json_object_set_new(params, "limit", json_integer(50)); /* docs/openapi.yaml */
	}
	if (after)
		json_object_set_new(params, "cursor", json_string(after));
	return 0;
}

/* Scope filter: a merchant token sees its merchant only. */
static int scope_params(struct server_req *r, json_t *params)
{
	const char *m = server_query(r, "merchant");

	if (r->auth.merchant[0]) {
		if (m && strcmp(m, r->auth.merchant) != 0) {
			json_decref(params);
			server_reply_error(r, 403, "forbidden", "token %s is scoped to merchant %s", r->auth.name,
					   r->auth.merchant);
			return -1;
		}
		json_object_set_new(params, "merchant", json_string(r->auth.merchant));
	} else if (m) {
		json_object_set_new(params, "merchant", json_string(m));
	}
	return 0;
}

static json_t *shape_list(json_t *result, void *arg)
{
	const char *key = arg;
	json_t *next = json_object_get(result, "next_cursor");

	json_t *items = json_object_get(result, "items");

	return json_pack("{s:o,s:O}", key, items ? json_incref(items) : json_array(), "next",
			 next ? next : json_null());
}

/* A merchant id: 1 to 63 of A-Z a-z 0-9 _ - . (what the store accepts). */
static int merchant_ok(const char *m)
{
	size_t n = m ? strlen(m) : 0;

	if (n == 0 || n > 63)
		return 0;
	for (; *m; m++)
		if (!((*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z') || (*m >= '0' && *m <= '9') ||
		      *m == '_' || *m == '-' || *m == '.'))
			return 0;
	return 1;
}

/* ---- plugins ------------------------------------------------------------------ */

static void plugins_list(struct server_req *r)
{
	struct hub *hub = r->route_arg;

	server_reply_json(r, 200, json_pack("{s:o}", "plugins", plugin_list(hub->reg)));
}

static void plugins_load(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	json_t *body = server_body_json(r);
	const char *name;
	struct hub_error err;

	if (!body || body_str(r, body, "name", 1, &name) < 0)
		goto out;
	if (!plugin_name_valid(name)) {
		server_reply_error(r, 400, "invalid_request",
				   "body.name: \"%s\" is not a plugin name ([a-z0-9_]+, a file in plugin_dir)", name);
		goto out;
	}
	if (plugin_find(hub->reg, name)) {
		server_reply_error(r, 409, "conflict", "plugin %s is already loaded: reload it instead", name);
		goto out;
	}
	memset(&err, 0, sizeof(err));
	if (plugin_load(hub->reg, name, &err) < 0) {
		server_reply_error(r, 422, "plugin_refused", "%s", err.message);
		goto out;
	}
	audit(hub, r, "plugin.load", name, NULL);
	server_reply_json(r, 201, plugin_to_json(plugin_find(hub->reg, name)));
out:
	json_decref(body);
}

struct reload_ctx {
	struct hub *hub;
	struct server_req *r;
	char name[PLUGIN_NAME_MAX + 1];
};

static void reload_done(void *arg, int rc, const struct hub_error *err)
{
	struct reload_ctx *rc_ = arg;
	struct plugin *p = plugin_find(rc_->hub->reg, rc_->name);

	if (rc < 0 || !p)
		server_reply_error(rc_->r, p ? 422 : 404, p ? "reload_failed" : "not_found",
				   "%s (the previous generation keeps serving)",
				   err && err->message[0] ? err->message : "reload failed");
	else
		server_reply_json(rc_->r, 200, plugin_to_json(p));
	free(rc_);
}

static void plugins_reload(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct reload_ctx *rc;
	struct hub_error err;

	if (!plugin_find(hub->reg, r->params[0])) {
		server_reply_error(r, 404, "not_found", "no plugin named \"%s\" is loaded", r->params[0]);
		return;
	}
	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rc->hub = hub;
	rc->r = r;
	snprintf(rc->name, sizeof(rc->name), "%s", r->params[0]);
	audit(hub, r, "plugin.reload", r->params[0], NULL);
	memset(&err, 0, sizeof(err));
	if (plugin_reload_request(hub->reg, r->params[0], reload_done, rc, &err) < 0) {
		free(rc);
		server_reply_error(r, 422, "reload_failed", "%s", err.message);
	}
}

static void plugins_unload(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct hub_error err;

	if (!plugin_find(hub->reg, r->params[0])) {
		server_reply_error(r, 404, "not_found", "no plugin named \"%s\" is loaded", r->params[0]);
		return;
	}
	memset(&err, 0, sizeof(err));
	if (plugin_unload(hub->reg, r->params[0], &err) < 0) {
		server_reply_error(r, 409, "in_use", "%s", err.message);
		return;
	}
	audit(hub, r, "plugin.unload", r->params[0], NULL);
	server_reply_text(r, 204, "application/json", "", 0);
}

/* ---- connectors ------------------------------------------------------------------ */

struct list_ctx {
	struct hub *hub;
	const char *merchant;
	json_t *items;
};

static void collect_connector(struct connector *c, void *arg)
{
	struct list_ctx *lc = arg;

	if (!lc->merchant || strcmp(lc->merchant, c->merchant) == 0)
		json_array_append_new(lc->items, connector_json(lc->hub, c));
}

static void connectors_list(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct list_ctx lc = {hub, r->auth.merchant[0] ? r->auth.merchant : server_query(r, "merchant"),
			      json_array()};

	plugin_registry_foreach_connector(hub->reg, collect_connector, &lc);
	server_reply_json(r, 200, json_pack("{s:o}", "connectors", lc.items));
}

/* A connector change waiting for the store: the request to answer, the
 * connector by name (it may go meanwhile), and what the callback needs. */
struct conn_op {
	struct hub *hub;
	struct server_req *r;
	char name[PLUGIN_NAME_MAX + 8];
	int flag;           /* put: created; pause: paused */
	json_t *old_config; /* put: the config to restore if the store refuses */
};

/* Sends `op` to the store for connector c; `done` answers the request.
 * Steals params and old_config. */
static void conn_op_run(struct server_req *r, struct connector *c, enum store_op op, json_t *params,
			store_op_cb done, int flag, json_t *old_config)
{
	struct hub *hub = r->route_arg;
	struct conn_op *co = calloc(1, sizeof(*co));
	struct hub_error err;

	if (!co) {
		json_decref(params);
		json_decref(old_config);
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	co->hub = hub;
	co->r = r;
	co->flag = flag;
	co->old_config = old_config;
	snprintf(co->name, sizeof(co->name), "%s", connector_name(c));
	memset(&err, 0, sizeof(err));
	if (store_call(hub->store, op, params, done, co, &err) < 0)
		done(co, STORE_UNAVAILABLE, NULL, &err);
}

static void put_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct conn_op *pc = arg;
	struct hub *hub = pc->hub;
	struct connector *c = connector_find(hub->reg, pc->name);
	struct hub_error e2;

	if (status != STORE_OK) {
		if (c && pc->flag) {
			sync_detach(hub->sync, c);
			connector_destroy(hub->reg, pc->name, &e2);
		} else if (c && pc->old_config) {
			connector_update(c, pc->old_config, &e2);
		}
		reply_store_error(pc->r, status, err);
	} else if (!c) {
		server_reply_error(pc->r, 409, "conflict", "connector %s was removed meanwhile", pc->name);
	} else {
		if (pc->flag) {
			struct sync_settings set = {0};
			sync_attach(hub->sync, c, &set);
		}
		audit(hub, pc->r, pc->flag ? "connector.create" : "connector.update", pc->name, NULL);
		server_reply_json(pc->r, pc->flag ? 201 : 200, connector_json(hub, c));
	}
	json_decref(pc->old_config);
	free(pc);
}

static void persist(struct server_req *r, struct connector *c, int created, json_t *old_config)
{
	struct hub *hub = r->route_arg;

	conn_op_run(r, c, STORE_OP_CONNECTOR_PUT,
		    json_pack("{s:s,s:s,s:s,s:O,s:o,s:b}", "name", connector_name(c), "plugin",
			      c->plugin ? c->plugin->name : "", "merchant", c->merchant, "config", c->config,
			      "secret_keys", connector_secret_keys(c), "paused", sync_paused(hub->sync, c)),
		    put_done, created, old_config);
}

static void connectors_create(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	json_t *body = server_body_json(r), *config;
	const char *name, *plugin, *merchant;
	struct connector *c = NULL;
	struct hub_error err;

	if (!body || body_str(r, body, "name", 1, &name) < 0 || body_str(r, body, "plugin", 1, &plugin) < 0 ||
	    body_str(r, body, "merchant", 1, &merchant) < 0)
		goto out;
	config = json_object_get(body, "config");
	if (!json_is_object(config)) {
		server_reply_error(r, 400, "invalid_request", "body.config: required, must be an object");
		goto out;
	}
	if (!merchant_ok(merchant)) {
		server_reply_error(r, 400, "invalid_request",
				   "body.merchant: 1 to 63 characters of A-Z a-z 0-9 _ - .");
		goto out;
	}
	if (r->auth.merchant[0] && strcmp(merchant, r->auth.merchant) != 0) {
		server_reply_error(r, 403, "forbidden", "token %s is scoped to merchant %s", r->auth.name,
				   r->auth.merchant);
		goto out;
	}
	if (!plugin_name_valid(name) || strlen(name) > 63) {
		server_reply_error(r, 400, "invalid_request", "body.name: \"%s\" must be [a-z0-9_]+", name);
		goto out;
	}
	if (connector_find(hub->reg, name)) {
		server_reply_error(r, 409, "conflict", "connector %s already exists: PUT /v1/connectors/%s to change it",
				   name, name);
		goto out;
	}
	if (!plugin_find(hub->reg, plugin)) {
		server_reply_error(r, 422, "invalid_config", "body.plugin: plugin \"%s\" is not loaded (POST /v1/plugins)",
				   plugin);
		goto out;
	}
	memset(&err, 0, sizeof(err));
	if (connector_create(hub->reg, name, merchant, plugin, config, &c, &err) < 0) {
		server_reply_error(r, 422, "invalid_config", "%s%s%s", err.field[0] ? err.field : "",
				   err.field[0] ? ": " : "", err.message);
		goto out;
	}
	persist(r, c, 1, NULL);
out:
	json_decref(body);
}

static void connectors_get(struct server_req *r)
{
	struct connector *c = visible_connector(r, r->params[0]);

	if (c)
		server_reply_json(r, 200, connector_json(r->route_arg, c));
}

static void connectors_put(struct server_req *r)
{
	json_t *body, *config, *old;
	struct connector *c = visible_connector(r, r->params[0]);
	struct hub_error err;

	if (!c || !(body = server_body_json(r)))
		return;
	config = json_object_get(body, "config");
	if (!json_is_object(config)) {
		server_reply_error(r, 400, "invalid_request", "body.config: required, must be an object");
		json_decref(body);
		return;
	}
	old = json_deep_copy(c->config);
	memset(&err, 0, sizeof(err));
	if (connector_update(c, config, &err) < 0) {
		json_decref(old);
		server_reply_error(r, 422, "invalid_config", "%s%s%s (the previous config stays)",
				   err.field[0] ? err.field : "", err.field[0] ? ": " : "", err.message);
		json_decref(body);
		return;
	}
	json_decref(body);
	persist(r, c, 0, old);
}

static void delete_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct conn_op *dc = arg;
	struct connector *c = connector_find(dc->hub->reg, dc->name);
	struct hub_error e2;

	if (status != STORE_OK && status != STORE_NOT_FOUND) {
		reply_store_error(dc->r, status, err);
	} else {
		if (c) {
			sync_detach(dc->hub->sync, c);
			connector_destroy(dc->hub->reg, dc->name, &e2);
		}
		audit(dc->hub, dc->r, "connector.delete", dc->name, NULL);
		server_reply_text(dc->r, 204, "application/json", "", 0);
	}
	free(dc);
}

static void connectors_delete(struct server_req *r)
{
	struct connector *c = visible_connector(r, r->params[0]);

	if (c)
		conn_op_run(r, c, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", connector_name(c)),
			    delete_done, 0, NULL);
}

static void pause_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct conn_op *pc = arg;
	struct connector *c = connector_find(pc->hub->reg, pc->name);

	if (status != STORE_OK && status != STORE_NOT_FOUND) {
		reply_store_error(pc->r, status, err);
	} else if (!c) {
		server_reply_error(pc->r, 404, "not_found", "no connector named \"%s\"", pc->name);
	} else {
		sync_pause(pc->hub->sync, c, pc->flag);
		audit(pc->hub, pc->r, pc->flag ? "connector.pause" : "connector.resume", pc->name, NULL);
		server_reply_json(pc->r, 200, connector_json(pc->hub, c));
	}
	free(pc);
}

static void pause_or_resume(struct server_req *r, int paused)
{
	struct connector *c = visible_connector(r, r->params[0]);

	if (c)
		conn_op_run(r, c, STORE_OP_CONNECTOR_PAUSE,
			    json_pack("{s:s,s:b}", "name", connector_name(c), "paused", paused), pause_done, paused,
			    NULL);
}

static void connectors_pause(struct server_req *r)
{
	pause_or_resume(r, 1);
}

static void connectors_resume(struct server_req *r)
{
	pause_or_resume(r, 0);
}

static void connectors_sync(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct connector *c = visible_connector(r, r->params[0]);
	const char *since = NULL, *stream = NULL;
	int64_t since_ms = 0;
	struct hub_error err;
	json_t *body = NULL;
	size_t len;

	if (!c)
		return;
	server_body(r, &len);
	if (len > 0) {
		if (!(body = server_body_json(r)))
			return;
		if (body_str(r, body, "since", 0, &since) < 0 || body_str(r, body, "stream", 0, &stream) < 0)
			goto out;
	}
	memset(&err, 0, sizeof(err));
	if (since && hub_time_parse(since, 0, &since_ms, "since", &err) < 0) {
		server_reply_error(r, 400, "invalid_request", "body.since: %s", err.message);
		goto out;
	}
	if (sync_trigger(hub->sync, c, stream, since_ms) < 0) {
		server_reply_error(r, 400, "invalid_request", "body.stream: connector %s has no stream \"%s\"",
				   connector_name(c), stream ? stream : "");
		goto out;
	}
	audit(hub, r, "connector.sync", connector_name(c), json_pack("{s:s?,s:s?}", "since", since, "stream", stream));
	server_reply_json(r, 202, json_pack("{s:s,s:s,s:s?,s:s?}", "status", "scheduled", "connector",
					    connector_name(c), "since", since, "stream", stream));
out:
	json_decref(body);
}

static void connectors_status(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct connector *c = visible_connector(r, r->params[0]);

	if (c)
		server_reply_json(r, 200, sync_status(hub->sync, c));
}

/* ---- orders and shipments -------------------------------------------------------- */

static int filter_params(struct server_req *r, json_t *params, int orders)
{
	const char *v;
	int64_t ms;
	struct hub_error err;

	if (scope_params(r, params) < 0)
		return -1;
	if ((v = server_query(r, "connector")))
		json_object_set_new(params, "connector", json_string(v));
	if ((v = server_query(r, "status"))) {
		static const char *const order_st[] = {"open", "closed", "cancelled", NULL};
		static const char *const ship_st[] = {"pre_transit", "in_transit", "out_for_delivery", "delivered",
						      "available_for_pickup", "delivery_failed", "exception",
						      "return_to_sender", "cancelled", "unknown", NULL};
		const char *const *ok = orders ? order_st : ship_st;
		int found = 0;
		for (; *ok; ok++)
			found |= strcmp(*ok, v) == 0;
		if (!found) {
			json_decref(params);
			server_reply_error(r, 400, "invalid_request", "query.status: \"%s\" is not a%s status", v,
					   orders ? "n order" : " shipment");
			return -1;
		}
		json_object_set_new(params, "status", json_string(v));
	}
	if (orders && (v = server_query(r, "sku")))
		json_object_set_new(params, "sku", json_string(v));
	if ((v = server_query(r, "updated_since"))) {
		memset(&err, 0, sizeof(err));
		if (hub_time_parse(v, 0, &ms, "updated_since", &err) < 0) {
			json_decref(params);
			server_reply_error(r, 400, "invalid_request", "query.updated_since: %s", err.message);
			return -1;
		}
		json_object_set_new(params, "updated_since", json_integer(ms));
	}
	return page_params(r, params);
}

static void orders_list(struct server_req *r)
{
	json_t *params = json_object();

	if (filter_params(r, params, 1) == 0)
		run_op(r, STORE_OP_ORDERS_LIST, params, shape_list, 200, "orders");
}

static void shipments_list(struct server_req *r)
{
	json_t *params = json_object();

	if (filter_params(r, params, 0) == 0)
		run_op(r, STORE_OP_SHIPMENTS_LIST, params, shape_list, 200, "shipments");
}

/* {id} params for a get, scoped; 404 for ids that are not positive integers. */
static json_t *id_params(struct server_req *r, const char *what)
{
	char *end;
	long long id = strtoll(r->params[0], &end, 10);
	json_t *p;

	if (*end || end == r->params[0] || id <= 0) {
		server_reply_error(r, 404, "not_found", "no %s with id \"%s\"", what, r->params[0]);
		return NULL;
	}
	p = json_pack("{s:I}", "id", (json_int_t)id);
	if (r->auth.merchant[0])
		json_object_set_new(p, "merchant", json_string(r->auth.merchant));
	return p;
}

static void orders_get(struct server_req *r)
{
	json_t *p = id_params(r, "order");

	if (p)
		run_op(r, STORE_OP_ORDER_GET, p, NULL, 200, NULL);
}

static void shipments_get(struct server_req *r)
{
	json_t *p = id_params(r, "shipment");

	if (p)
		run_op(r, STORE_OP_SHIPMENT_GET, p, NULL, 200, NULL);
}

/* ---- dead letters ----------------------------------------------------------------- */

static void dead_letters_list(struct server_req *r)
{
	json_t *params = json_object();
	const char *v;

	if ((v = server_query(r, "connector")))
		json_object_set_new(params, "connector", json_string(v));
	if ((v = server_query(r, "include_replayed")) && strcmp(v, "true") == 0)
		json_object_set_new(params, "include_replayed", json_true());
	if (page_params(r, params) == 0)
		run_op(r, STORE_OP_DEAD_LETTERS_LIST, params, shape_list, 200, "dead_letters");
}

struct replay_ctx {
	struct hub *hub;
	struct server_req *r;
};

static void replay_unit_done(void *arg, const struct store_unit_result *res)
{
	struct replay_ctx *rc = arg;

	if (res->status == STORE_OK)
		server_reply_json(rc->r, 202, json_pack("{s:s}", "status", "replayed"));
	else
		reply_store_error(rc->r, res->status, &res->err);
	free(rc);
}

/* A replay that could not run puts the entry back as a new dead letter,
 * so nothing is lost (the store marks an entry replayed when it hands it
 * out). Returns 0 when re-queued. */
static int requeue_dead(struct hub *hub, json_t *entry, const char *why)
{
	const char *merchant = json_string_value(json_object_get(entry, "merchant"));
	struct store_unit *u = store_unit_new(merchant ? merchant : "unknown",
					      json_string_value(json_object_get(entry, "connector")) ?: "unknown");
	struct hub_error err;

	if (!u)
		return -1;
	store_unit_add_dead_letter(u, json_string_value(json_object_get(entry, "kind")) ?: "unknown",
				   json_incref(json_object_get(entry, "payload")), why,
				   json_string_value(json_object_get(entry, "field")),
				   (int)json_integer_value(json_object_get(entry, "upstream_status")));
	memset(&err, 0, sizeof(err));
	return store_submit(hub->store, u, NULL, NULL, &err);
}

static void replayed(void *arg, enum store_status status, json_t *entry, const struct hub_error *err)
{
	struct replay_ctx *rc = arg;
	struct hub *hub = rc->hub;
	struct server_req *r = rc->r;
	const char *kind = json_string_value(json_object_get(entry, "kind")) ?: "";
	const char *cname = json_string_value(json_object_get(entry, "connector")) ?: "";
	const char *merchant = json_string_value(json_object_get(entry, "merchant"));
	json_t *payload = json_object_get(entry, "payload");
	struct connector *c = connector_find(hub->reg, cname);
	struct store_unit *u;
	struct hub_error e2;
	char msg[1024];
	int rc2;

	if (status != STORE_OK) {
		if (status == STORE_NOT_FOUND)
			server_reply_error(r, 404, "not_found", "no dead letter %s waiting for a replay", r->params[0]);
		else
			reply_store_error(r, status, err);
		free(rc);
		return;
	}
	audit(hub, r, "dead_letter.replay", r->params[0], json_pack("{s:s}", "kind", kind));
	memset(&e2, 0, sizeof(e2));
	if (strncmp(kind, "record:", 7) == 0 &&
	    host_validate_record(plugin_registry_schemas(hub->reg), call_kind_parse(kind + 7), payload, &e2) < 0) {
		snprintf(msg, sizeof(msg), "still invalid: %s: %s", e2.field, e2.message);
		requeue_dead(hub, entry, msg);
		server_reply_error(r, 409, "replay_failed", "dead letter %s: the record is %s; kept as a new dead letter",
				   r->params[0], msg);
		free(rc);
		return;
	}
	if (strncmp(kind, "job:", 4) == 0 || strncmp(kind, "record:", 7) == 0) {
		u = store_unit_new(merchant ? merchant : (c ? c->merchant : "unknown"), cname);
		if (kind[0] == 'j')
			store_unit_add_job(u, kind + 4, json_incref(payload), 0);
		else
			store_unit_add_record(u, call_kind_parse(kind + 7), json_incref(payload), &e2);
		memset(&e2, 0, sizeof(e2));
		if (store_submit(hub->store, u, replay_unit_done, rc, &e2) < 0) {
			requeue_dead(hub, entry, e2.message);
			reply_store_error(r, STORE_UNAVAILABLE, &e2);
			free(rc);
		}
		sync_kick_jobs(hub->sync);
		return;
	}
	if (strncmp(kind, "stream:", 7) == 0 && c && sync_trigger(hub->sync, c, kind + 7, 0) == 0) {
		server_reply_json(r, 202, json_pack("{s:s,s:s}", "status", "replayed", "message",
						    "the stream was scheduled to sync now"));
		free(rc);
		return;
	}
	if (strcmp(kind, "webhook") == 0) {
		rc2 = webhook_replay(hub, cname, payload, msg, sizeof(msg));
		if (rc2 == 0) {
			server_reply_json(r, 202, json_pack("{s:s}", "status", "replayed"));
		} else {
			if (rc2 < 0)
				requeue_dead(hub, entry, msg);
			server_reply_error(r, 409, "replay_failed", "%s (kept as a new dead letter)", msg);
		}
		free(rc);
		return;
	}
	requeue_dead(hub, entry, c ? "cannot be replayed: unknown kind" : "its connector no longer exists");
	server_reply_error(r, 409, "replay_failed",
			   "dead letter %s (%s of %s) cannot be replayed: %s; kept as a new dead letter", r->params[0],
			   kind, cname, c ? "unknown kind" : "its connector no longer exists");
	free(rc);
}

static void dead_letters_replay(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct replay_ctx *rc;
	struct hub_error err;
	char *end;
	long long id = strtoll(r->params[0], &end, 10);

	if (*end || id <= 0) {
		server_reply_error(r, 404, "not_found", "no dead letter with id \"%s\"", r->params[0]);
		return;
	}
	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rc->hub = hub;
	rc->r = r;
	memset(&err, 0, sizeof(err));
	if (store_call(hub->store, STORE_OP_DEAD_LETTER_REPLAYED, json_pack("{s:I}", "id", (json_int_t)id), replayed,
		       rc, &err) < 0) {
		free(rc);
		reply_store_error(r, STORE_UNAVAILABLE, &err);
	}
}

/* ---- tokens --------------------------------------------------------------------- */

struct token_ctx {
	struct hub *hub;
	struct server_req *r;
	char token[80];
	json_t *shown;
};

static void token_created(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct token_ctx *tc = arg;

	if (status == STORE_INVALID) {
		server_reply_error(tc->r, 409, "conflict", "a token named %s already exists",
				   json_string_value(json_object_get(tc->shown, "name")));
		json_decref(tc->shown);
	} else if (status != STORE_OK) {
		reply_store_error(tc->r, status, err);
		json_decref(tc->shown);
	} else {
		audit(tc->hub, tc->r, "token.create", json_string_value(json_object_get(tc->shown, "name")), NULL);
		json_object_set_new(tc->shown, "token", json_string(tc->token));
		server_reply_json(tc->r, 201, tc->shown);
	}
	memset(tc->token, 0, sizeof(tc->token));
	free(tc);
}

static void tokens_create(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	json_t *body = server_body_json(r), *params;
	const char *name, *role, *merchant;
	struct token_ctx *tc;
	struct hub_error err;
	char hash[65];

	if (!body || body_str(r, body, "name", 1, &name) < 0 || body_str(r, body, "role", 1, &role) < 0 ||
	    body_str(r, body, "merchant", 0, &merchant) < 0)
		goto out;
	if (!*name || strlen(name) > 63) {
		server_reply_error(r, 400, "invalid_request", "body.name: 1 to 63 characters");
		goto out;
	}
	if (auth_role_parse(role) == ROLE_NONE) {
		server_reply_error(r, 400, "invalid_request", "body.role: \"%s\" must be admin, operator or viewer", role);
		goto out;
	}
	if (merchant && !merchant_ok(merchant)) {
		server_reply_error(r, 400, "invalid_request",
				   "body.merchant: 1 to 63 characters of A-Z a-z 0-9 _ - .");
		goto out;
	}
	if (merchant && auth_role_parse(role) == ROLE_ADMIN) {
		server_reply_error(r, 400, "invalid_request", "body.merchant: an admin token cannot be merchant-scoped");
		goto out;
	}
	tc = calloc(1, sizeof(*tc));
	if (!tc || auth_token_new(tc->token, sizeof(tc->token), hash, sizeof(hash)) < 0) {
		free(tc);
		server_reply_error(r, 503, "unavailable", "cannot generate a token");
		goto out;
	}
	tc->hub = hub;
	tc->r = r;
	tc->shown = json_pack("{s:s,s:s,s:s?}", "name", name, "role", role, "merchant", merchant);
	params = json_pack("{s:s,s:s,s:s,s:s?}", "name", name, "hash", hash, "role", role, "merchant", merchant);
	memset(&err, 0, sizeof(err));
	if (store_call(hub->store, STORE_OP_TOKEN_CREATE, params, token_created, tc, &err) < 0)
		token_created(tc, STORE_UNAVAILABLE, NULL, &err);
out:
	json_decref(body);
}

static void tokens_list(struct server_req *r)
{
	run_op(r, STORE_OP_TOKENS_LIST, NULL, shape_list, 200, "tokens");
}

static void token_revoked(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct token_ctx *tc = arg;

	if (status == STORE_OK) {
		auth_flush(tc->hub->auth);
		audit(tc->hub, tc->r, "token.revoke", tc->token, NULL);
		server_reply_text(tc->r, 204, "application/json", "", 0);
	} else if (status == STORE_NOT_FOUND) {
		server_reply_error(tc->r, 404, "not_found", "no active token named %s", tc->token);
	} else {
		reply_store_error(tc->r, status, err);
	}
	free(tc);
}

static void tokens_revoke(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	struct token_ctx *tc = calloc(1, sizeof(*tc));
	struct hub_error err;

	if (!tc) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	tc->hub = hub;
	tc->r = r;
	snprintf(tc->token, sizeof(tc->token), "%s", r->params[0]); /* the name, for messages */
	memset(&err, 0, sizeof(err));
	if (store_call(hub->store, STORE_OP_TOKEN_REVOKE, json_pack("{s:s}", "name", r->params[0]), token_revoked,
		       tc, &err) < 0)
		token_revoked(tc, STORE_UNAVAILABLE, NULL, &err);
}

/* ---- routes ------------------------------------------------------------------- */

static const struct route routes[] = {
	{"GET", "/v1/plugins", plugins_list, ROLE_VIEWER, 0},
	{"POST", "/v1/plugins", plugins_load, ROLE_OPERATOR, 0},
	{"DELETE", "/v1/plugins/{name}", plugins_unload, ROLE_OPERATOR, 0},
	{"POST", "/v1/plugins/{name}/reload", plugins_reload, ROLE_OPERATOR, 0},
	{"GET", "/v1/connectors", connectors_list, ROLE_VIEWER, 1},
	{"POST", "/v1/connectors", connectors_create, ROLE_OPERATOR, 1},
	{"GET", "/v1/connectors/{name}", connectors_get, ROLE_VIEWER, 1},
	{"PUT", "/v1/connectors/{name}", connectors_put, ROLE_OPERATOR, 1},
	{"DELETE", "/v1/connectors/{name}", connectors_delete, ROLE_OPERATOR, 1},
	{"POST", "/v1/connectors/{name}/pause", connectors_pause, ROLE_OPERATOR, 1},
	{"POST", "/v1/connectors/{name}/resume", connectors_resume, ROLE_OPERATOR, 1},
	{"POST", "/v1/connectors/{name}/sync", connectors_sync, ROLE_OPERATOR, 1},
	{"GET", "/v1/connectors/{name}/status", connectors_status, ROLE_VIEWER, 1},
	{"GET", "/v1/orders", orders_list, ROLE_VIEWER, 1},
	{"GET", "/v1/orders/{id}", orders_get, ROLE_VIEWER, 1},
	{"GET", "/v1/shipments", shipments_list, ROLE_VIEWER, 1},
	{"GET", "/v1/shipments/{id}", shipments_get, ROLE_VIEWER, 1},
	{"GET", "/v1/dead-letters", dead_letters_list, ROLE_VIEWER, 0},
	{"POST", "/v1/dead-letters/{id}/replay", dead_letters_replay, ROLE_OPERATOR, 0},
	{"GET", "/v1/tokens", tokens_list, ROLE_ADMIN, 0},
	{"POST", "/v1/tokens", tokens_create, ROLE_ADMIN, 0},
	{"DELETE", "/v1/tokens/{name}", tokens_revoke, ROLE_ADMIN, 0},
};

const struct route *admin_route_table(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

int admin_routes(struct hub *hub)
{
	return server_add_routes(hub->server, routes, sizeof(routes) / sizeof(routes[0]), hub);
}
