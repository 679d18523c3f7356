/*
 * webhook.c - the webhook receiver (see webhook.h). Verification and
 * parsing only read the connector's config, so they are safe during a hot
 * reload: the request uses whichever generation is current when it arrives
 * and holds it until the plugin calls return.
 */
#include "config.h"
#include "webhook.h"

#include <hub/sdk.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "connector.h"
#include "host.h"
#include "hub.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"
#include "store.h"
#include "sync.h"

#define RECEIPT_TTL_MS (7LL * 24 * 3600 * 1000)
#define COMMIT_DEADLINE_MS 5000

struct pending {
	struct hub *hub;
	struct server_req *r;
	char connector[64];
	char topic[96];
	unsigned records;
};

static void count(struct hub *hub, const char *connector, const char *result)
{
	metric_add(metrics_getf(hub->metrics, METRIC_COUNTER, "hub_webhooks_total",
				"Webhooks received by connector and result", "connector=\"%s\",result=\"%s\"",
				connector, result),
		   1);
}

static void committed(void *arg, const struct store_unit_result *res)
{
	struct pending *p = arg;
	struct server_req *r = p->r;

	switch (res->status) {
	case STORE_OK: {
		/* The reply of every stored webhook: written directly rather
		 * than built as a JSON value and serialised. */
		char body[128];
		int n = snprintf(body, sizeof(body),
				 "{\"status\":\"stored\",\"records\":%u,\"written\":%u,"
				 "\"dead_letters\":%u}",
				 res->records, res->written, res->dead_letters);

		count(p->hub, p->connector, "stored");
		server_reply_text(r, 200, "application/json", body, (size_t)n);
		break;
	}
	case STORE_DUPLICATE:
		count(p->hub, p->connector, "duplicate");
		server_reply_json(r, 200, json_pack("{s:s,s:i}", "status", "duplicate", "records", 0));
		break;
	case STORE_UNAVAILABLE:
		count(p->hub, p->connector, "unavailable");
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "store_unavailable",
				   "the store is unavailable; nothing was stored, retry later");
		break;
	default:
		count(p->hub, p->connector, "failed");
		server_reply_error(r, 500, "store_failed", "nothing was stored: %s", res->err.message);
		break;
	}
	free(p);
}

/* Builds the plugin's view of the request: method, path+query, headers, raw body. */
static void request_msg(struct server_req *r, struct hub_msg *m)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
	const char *uri = evhttp_request_get_uri(r->req);
	size_t len;
	const char *body = server_body(r, &len);

	msg_init(m);
	msg_set_webhook(m, "POST", uri ? uri : "/");
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		msg_add_header(m, kv->key, kv->value);
	msg_set_body(m, body, len);
}

/* A dead letter holding the raw delivery, so it can be replayed later. */
static void add_raw_dead_letter(struct store_unit *u, const struct hub_msg *m, const char *reason,
				const char *field)
{
	json_t *headers = json_object();
	size_t len;
	const char *body = msg_body(m, &len);

	for (size_t i = 0; i < m->nheaders; i++)
		json_object_set_new(headers, m->headers[i].name, json_string(m->headers[i].value));
	json_t *payload = json_pack("{s:s,s:s,s:o}", "method", m->method ? m->method : "POST", "url",
				    m->url ? m->url : "/", "headers", headers);
	json_t *text = json_stringn(body, len);

	/* JSON strings are UTF-8: other bodies are kept in base64. */
	if (text) {
		json_object_set_new(payload, "body", text);
	} else {
		char *b64 = hub_base64_encode(body, len);
		json_object_set_new(payload, "body_base64", json_string(b64 ? b64 : ""));
		free(b64);
	}
	store_unit_add_dead_letter(u, "webhook", payload, reason, field, 0);
}

/*
 * Runs verify + read on m with connector c and fills u. Returns the HTTP
 * status to answer (200 on success) with a message in msg.
 */
static int process(struct hub *hub, struct connector *c, const struct hub_msg *m, int verify,
		   struct store_unit *u, char *topic, size_t topic_size, char *msg, size_t size,
		   unsigned *nrecords)
{
	struct conn_instance *inst = connector_acquire(c);
	struct hub_call call;
	struct hub_error err;
	int rc, status = 200;

	if (!inst) {
		snprintf(msg, size, "connector %s has no running instance", connector_name(c));
		return 503;
	}
	if (!(inst->gen->desc.capabilities & HUB_CAP_WEBHOOKS)) {
		snprintf(msg, size, "connector %s (plugin %s) does not accept webhooks", connector_name(c),
			 inst->gen->desc.name);
		instance_release(inst);
		return 404;
	}
	call_init(&call, plugin_gen_kinds(inst->gen), plugin_registry_schemas(hub->reg));
	memset(&err, 0, sizeof(err));
	if (verify) {
		rc = instance_verify_webhook(inst, m, &call, &err);
		if (rc != HUB_OK) {
			snprintf(msg, size, "signature check failed: %s%s%s", err.field, err.field[0] ? ": " : "",
				 err.message[0] ? err.message : "not authentic");
			status = 401;
			goto out;
		}
	}
	rc = instance_read_webhook(inst, m, &call, &err);
	snprintf(topic, topic_size, "%s", call.topic ? call.topic : "");
	if (rc == HUB_IGNORED) {
		status = 202;
		snprintf(msg, size, "topic %s is not handled by plugin %s", call.topic ? call.topic : "(none)",
			 inst->gen->desc.name);
		goto out;
	}
	if (rc != HUB_OK) {
		snprintf(msg, size, "the payload cannot be read: %s%s%s", err.field, err.field[0] ? ": " : "",
			 err.message);
		add_raw_dead_letter(u, m, msg, err.field[0] ? err.field : NULL);
		status = 422;
		goto out;
	}
	*nrecords = (unsigned)call.nrecords;
	sync_call_to_unit(&call, u, connector_name(c));
	if (verify && call.delivery_id && *call.delivery_id)
		store_unit_set_receipt(u, call.delivery_id, host_now_ms() + RECEIPT_TTL_MS);
out:
	call_release(&call);
	instance_release(inst);
	return status;
}

static void hook(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	const char *name = r->params[0];
	struct connector *c = connector_find(hub->reg, name);
	struct store_unit *u;
	struct pending *p;
	struct hub_msg m;
	struct hub_error err;
	char msg[512], topic[96];
	unsigned nrecords = 0;
	int status;

	if (!c || !hub->store) {
		count(hub, "unknown", "not_found");
		server_reply_error(r, 404, "not_found", "no connector named \"%s\"", name);
		return;
	}
	if (hub->stopping) {
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "stopping", "hubd is shutting down; retry shortly");
		return;
	}
	u = store_unit_new(c->merchant, connector_name(c));
	if (!u) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	request_msg(r, &m);
	status = process(hub, c, &m, 1, u, topic, sizeof(topic), msg, sizeof(msg), &nrecords);
	msg_release(&m);
	if (status == 401 || status == 404 || status == 503) {
		store_unit_free(u);
		count(hub, connector_name(c), status == 401 ? "unauthorized" : "refused");
		log_warn("webhook", "%s from %s: %d %s", connector_name(c), r->peer, status, msg);
		server_reply_error(r, status, status == 401 ? "unauthorized" : status == 404 ? "not_found" : "unavailable",
				   "%s", msg);
		return;
	}
	if (status == 202) {
		store_unit_free(u);
		count(hub, connector_name(c), "ignored");
		server_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ignored", "message", msg));
		return;
	}
	sync_hint(hub->sync, c);
	store_unit_set_deadline(u, host_now_ms() + COMMIT_DEADLINE_MS);
	p = calloc(1, sizeof(*p));
	if (!p) {
		store_unit_free(u);
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	p->hub = hub;
	p->r = r;
	p->records = nrecords;
	snprintf(p->connector, sizeof(p->connector), "%s", connector_name(c));
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	if (status == 422) {
		/* Keep the raw delivery as a dead letter, then tell the sender. */
		free(p);
		memset(&err, 0, sizeof(err));
		store_submit(hub->store, u, NULL, NULL, &err);
		count(hub, connector_name(c), "invalid");
		server_reply_error(r, 422, "invalid_payload", "%s (kept as a dead letter)", msg);
		return;
	}
	memset(&err, 0, sizeof(err));
	if (store_submit(hub->store, u, committed, p, &err) < 0) {
		free(p);
		count(hub, connector_name(c), "unavailable");
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "store_unavailable", "nothing was stored: %s; retry later", err.message);
	}
}

int webhook_replay(struct hub *hub, const char *connector, json_t *payload, char *err, size_t size)
{
	struct connector *c = connector_find(hub->reg, connector);
	struct store_unit *u;
	struct hub_msg m;
	struct hub_error herr;
	const char *key;
	json_t *v;
	char topic[96];
	unsigned n = 0;
	int status;

	if (!c) {
		snprintf(err, size, "connector %s no longer exists", connector);
		return -1;
	}
	msg_init(&m);
	msg_set_webhook(&m, json_string_value(json_object_get(payload, "method")) ?: "POST",
			json_string_value(json_object_get(payload, "url")) ?: "/");
	json_object_foreach(json_object_get(payload, "headers"), key, v)
		msg_add_header(&m, key, json_string_value(v) ? json_string_value(v) : "");
	if (json_is_string(json_object_get(payload, "body"))) {
		msg_set_body(&m, json_string_value(json_object_get(payload, "body")),
			     json_string_length(json_object_get(payload, "body")));
	} else if (json_is_string(json_object_get(payload, "body_base64"))) {
		size_t blen = 0;
		unsigned char *raw = hub_base64_decode(json_string_value(json_object_get(payload, "body_base64")),
						       &blen);
		if (raw)
			msg_set_body(&m, raw, blen);
		free(raw);
	}
	u = store_unit_new(c->merchant, connector_name(c));
	/* Replayed deliveries were verified when they arrived. */
	status = u ? process(hub, c, &m, 0, u, topic, sizeof(topic), err, size, &n) : 503;
	msg_release(&m);
	if (status == 202) {
		store_unit_free(u);
		return 0; /* a topic the plugin ignores: nothing to store */
	}
	if (status != 200 && status != 422) {
		store_unit_free(u);
		return -1;
	}
	memset(&herr, 0, sizeof(herr));
	if (store_submit(hub->store, u, NULL, NULL, &herr) < 0) {
		snprintf(err, size, "%s", herr.message);
		return -1;
	}
	/* Still unreadable: process() kept it as a new dead letter. */
	return status == 200 ? 0 : 1;
}

static const struct route routes[] = {
	{"POST", "/hooks/{connector}", hook, ROLE_NONE, 0},
};

const struct route *webhook_route_table(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

int webhook_routes(struct hub *hub)
{
	return server_add_routes(hub->server, routes, sizeof(routes) / sizeof(routes[0]), hub);
}
