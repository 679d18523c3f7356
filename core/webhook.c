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
#include "jarena.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"
#include "store.h"
#include "sync.h"
#include "wpool.h"

#include <time.h>

#define RECEIPT_TTL_MS (7LL * 24 * 3600 * 1000)
#define COMMIT_DEADLINE_MS 5000

struct pending {
	struct hub *hub;
	struct server_req *r;
	struct metric *stored; /* the connector's "stored" counter */
	char connector[64];
	char topic[96];
	unsigned records;
	char *invalid;          /* 422: why the payload cannot be read (its raw
	                           delivery is kept as a dead letter), or NULL */
	struct metric *seconds; /* the connector's hub_webhook_duration_seconds */
	long long arrived_us;   /* monotonic, when the hook route took the request */
};

static long long mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct metric *counter(struct hub *hub, const char *connector, const char *result)
{
	return metrics_getf(hub->metrics, METRIC_COUNTER, "hub_webhooks_total",
			    "Webhooks received by connector and result",
			    "connector=\"%s\",result=\"%s\"", connector, result);
}

static void count(struct hub *hub, const char *connector, const char *result)
{
	metric_add(counter(hub, connector, result), 1);
}

static void committed(void *arg, const struct store_unit_result *res)
{
	struct pending *p = arg;
	struct server_req *r = p->r;

	metric_observe(p->seconds, (double)(mono_us() - p->arrived_us) / 1e6);
	if (p->invalid && (res->status == STORE_OK || res->status == STORE_DUPLICATE)) {
		/* Said only once the dead letter is committed. */
		count(p->hub, p->connector, "invalid");
		server_reply_error(r, 422, "invalid_payload", "%s (kept as a dead letter)", p->invalid);
		free(p->invalid);
		free(p);
		return;
	}
	switch (res->status) {
	case STORE_OK: {
		/* The reply of every stored webhook: written directly rather
		 * than built as a JSON value and serialised. */
		char body[128];
		int n = snprintf(body, sizeof(body),
				 "{\"status\":\"stored\",\"records\":%u,\"written\":%u,"
				 "\"dead_letters\":%u}",
				 res->records, res->written, res->dead_letters);

		metric_add(p->stored, 1);
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
	free(p->invalid);
	free(p);
}

/* Builds the plugin's view of the request: method, path+query, headers, raw
 * body (taken over from the request, not copied). The message is complete
 * on its own: a worker may read it while the loop goes on. */
static void request_msg(struct server_req *r, struct hub_msg *m)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(r->req);
	const char *uri = evhttp_request_get_uri(r->req);
	size_t len = 0;
	char *body = server_take_body(r, &len);

	const char *names[32], *values[32];
	size_t n = 0;

	msg_init(m);
	msg_set_webhook(m, "POST", uri ? uri : "/");
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
		if (n == sizeof(names) / sizeof(names[0])) {
			msg_add_headers(m, names, values, n);
			n = 0;
		}
		names[n] = kv->key;
		values[n++] = kv->value;
	}
	msg_add_headers(m, names, values, n);
	if (msg_take_body(m, body, len) < 0)
		msg_set_body(m, "", 0);
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
 * One delivery through the plugin. The loop thread fills the inputs
 * (prepare), run() does the plugin's work and fills the unit, on the loop or
 * on a worker (wpool) when the plugin declares its webhook callbacks
 * reentrant, and the loop thread answers (finish). run() touches nothing
 * but the job: the instance is only read, its reference was taken and is
 * dropped on the loop.
 */
struct job {
	struct wpool_job work;
	/* inputs */
	struct hub *hub;
	struct server_req *r;          /* NULL for a replay */
	struct conn_instance *inst;    /* holds a reference */
	uint32_t kinds;
	const struct js_registry *schemas;
	const char *connector;         /* borrowed from inst's connector */
	struct hub_msg m;
	int verify;
	int on_worker;
	struct metric *stored;         /* the connector's "stored" counter (loop) */
	struct metric *seconds;        /* its webhook latency histogram (loop) */
	long long arrived_us;          /* monotonic */
	int submitted;                 /* the unit went to the store from the worker */
	/* outputs */
	struct store_unit *u;          /* filled by run() */
	int status;                    /* HTTP status to answer */
	char msg[640];                 /* room for a plugin's field and message */
	char topic[96];
	unsigned nrecords;
};

/* Acquires the connector's instance into job. Returns 0, or the HTTP status
 * to answer (503 no instance, 404 no webhooks) with job->msg set. Loop. */
static int prepare(struct job *job, struct hub *hub, struct connector *c)
{
	struct conn_instance *inst = connector_acquire(c);

	job->hub = hub;
	job->connector = connector_name(c);
	if (!inst) {
		snprintf(job->msg, sizeof(job->msg), "connector %s has no running instance",
			 connector_name(c));
		return 503;
	}
	if (!(inst->gen->desc.capabilities & HUB_CAP_WEBHOOKS)) {
		snprintf(job->msg, sizeof(job->msg), "connector %s (plugin %s) does not accept webhooks",
			 connector_name(c), inst->gen->desc.name);
		instance_release(inst);
		return 404;
	}
	job->inst = inst;
	job->kinds = plugin_gen_kinds(inst->gen);
	job->schemas = plugin_registry_schemas(hub->reg);
	return 0;
}

/* Runs verify (when job->verify) + read on job->m and fills job->u; sets
 * job->status (200 on success, 401, 202 ignored, 422 unreadable) and
 * job->msg. Loop thread or worker. */
static void run(struct job *job)
{
	const struct conn_instance *inst = job->inst;
	const char *plugin = inst->gen->desc.name;
	int scoped = (inst->gen->desc.capabilities & HUB_CAP_WEBHOOKS_SCOPED) != 0;
	struct hub_call call;
	struct hub_error err;
	int rc;

	job->status = 200;
	/* What the call makes lives until call_release below: a plugin that
	 * promises so gets the scratch region (jarena.h). */
	if (scoped)
		jarena_begin();
	call_init(&call, job->kinds, job->schemas);
	memset(&err, 0, sizeof(err));
	if (job->verify) {
		rc = job->on_worker ? instance_verify_webhook_worker(inst, &job->m, &call, &err)
				    : instance_verify_webhook(job->inst, &job->m, &call, &err);
		if (rc != HUB_OK) {
			snprintf(job->msg, sizeof(job->msg), "signature check failed: %s%s%s", err.field,
				 err.field[0] ? ": " : "", err.message[0] ? err.message : "not authentic");
			job->status = 401;
			goto out;
		}
	}
	rc = job->on_worker ? instance_read_webhook_worker(inst, &job->m, &call, &err)
			    : instance_read_webhook(job->inst, &job->m, &call, &err);
	snprintf(job->topic, sizeof(job->topic), "%s", call.topic ? call.topic : "");
	if (rc == HUB_IGNORED) {
		job->status = 202;
		snprintf(job->msg, sizeof(job->msg), "topic %s is not handled by plugin %s",
			 call.topic ? call.topic : "(none)", plugin);
		goto out;
	}
	if (rc != HUB_OK) {
		snprintf(job->msg, sizeof(job->msg), "the payload cannot be read: %s%s%s", err.field,
			 err.field[0] ? ": " : "", err.message);
		add_raw_dead_letter(job->u, &job->m, job->msg, err.field[0] ? err.field : NULL);
		job->status = 422;
		goto out;
	}
	job->nrecords = (unsigned)call.nrecords;
	sync_call_to_unit(&call, job->u, job->connector);
	if (job->verify && call.delivery_id && *call.delivery_id)
		store_unit_set_receipt(job->u, call.delivery_id, host_now_ms() + RECEIPT_TTL_MS);
out:
	call_release(&call);
	if (scoped)
		jarena_end();
	/* The delivery is no longer needed: free it where it was used. */
	msg_release(&job->m);
}

static int submit(struct job *job, struct hub_error *err);

/* On a worker: run, then queue a readable delivery's unit for the store
 * from here, rather than after a hop back to the loop (the answer comes
 * from the commit's callback, on the loop, either way). */
static void run_on_worker(struct wpool_job *work)
{
	struct job *job = (struct job *)work;
	struct hub_error err;

	run(job);
	if (job->status != 200 || !job->r)
		return;
	if (submit(job, &err) == 0) {
		job->submitted = 1;
	} else {
		job->status = 503;
		snprintf(job->msg, sizeof(job->msg), "%s", err.message);
	}
}

/* Hands a readable delivery's unit to the store, whose callback answers
 * it after the commit. Returns 0 (the unit is the store's), or -1 with
 * err set (the unit is freed; nothing was queued). Loop thread or worker:
 * it touches only the job, the request pointer and the store's queue. */
static int submit(struct job *job, struct hub_error *err)
{
	struct store_unit *u = job->u;
	struct pending *p = calloc(1, sizeof(*p));

	job->u = NULL;
	if (!p) {
		store_unit_free(u);
		hub_error_set(err, NULL, "out of memory");
		return -1;
	}
	if (job->status == 422 && !(p->invalid = strdup(job->msg))) {
		free(p);
		store_unit_free(u);
		hub_error_set(err, NULL, "out of memory");
		return -1;
	}
	p->hub = job->hub;
	p->r = job->r;
	p->records = job->nrecords;
	p->stored = job->stored;
	p->seconds = job->seconds;
	p->arrived_us = job->arrived_us;
	snprintf(p->connector, sizeof(p->connector), "%s", job->connector);
	snprintf(p->topic, sizeof(p->topic), "%s", job->topic);
	store_unit_set_deadline(u, host_now_ms() + COMMIT_DEADLINE_MS);
	memset(err, 0, sizeof(*err));
	if (store_submit(job->hub->store, u, committed, p, err) < 0) {
		free(p->invalid);
		free(p);
		return -1;
	}
	return 0;
}

/* Answers the delivery once run() is done (or, when the worker already
 * submitted its unit, leaves the answer to the commit). Loop thread; frees
 * job. */
static void finish(struct job *job)
{
	struct hub *hub = job->hub;
	struct server_req *r = job->r;
	struct store_unit *u = job->u;
	struct hub_error err;
	int status = job->status;
	const char *name = job->connector;

	if (status == 401) {
		store_unit_free(u);
		count(hub, name, "unauthorized");
		log_warn("webhook", "%s from %s: %d %s", name, r->peer, status, job->msg);
		server_reply_error(r, 401, "unauthorized", "%s", job->msg);
		goto out;
	}
	if (status == 202) {
		store_unit_free(u);
		count(hub, name, "ignored");
		server_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ignored", "message", job->msg));
		goto out;
	}
	sync_hint(hub->sync, job->inst->conn);
	if (job->submitted)
		goto out;
	/* A readable delivery, or (422) an unreadable one whose raw delivery
	 * goes to the store as a dead letter: either way the answer comes
	 * from the commit (committed). The store may refuse the unit, here or
	 * already on the worker (status 503, why in job->msg; the unit is gone
	 * then): nothing was kept, and the sender is told to retry. */
	if (status == 503 || submit(job, &err) < 0) {
		count(hub, name, "unavailable");
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "store_unavailable",
				   "the store is unavailable; nothing was stored, retry later (%s)",
				   status == 503 ? job->msg : err.message);
	}
out:
	instance_release(job->inst);
	free(job);
}

static void finish_from_worker(struct wpool_job *work)
{
	finish((struct job *)work);
}

static void hook(struct server_req *r)
{
	struct hub *hub = r->route_arg;
	const char *name = r->params[0];
	struct connector *c = connector_find(hub->reg, name);
	struct job *job;
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
	job = calloc(1, sizeof(*job));
	if (!job) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	status = prepare(job, hub, c);
	if (status != 0) {
		count(hub, connector_name(c), "refused");
		log_warn("webhook", "%s from %s: %d %s", connector_name(c), r->peer, status, job->msg);
		server_reply_error(r, status, status == 404 ? "not_found" : "unavailable", "%s", job->msg);
		free(job);
		return;
	}
	job->u = store_unit_new(c->merchant, connector_name(c));
	if (!job->u) {
		instance_release(job->inst);
		free(job);
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	job->r = r;
	job->arrived_us = mono_us();
	job->verify = 1;
	if (!job->inst->conn->webhooks_stored)
		job->inst->conn->webhooks_stored = counter(hub, connector_name(c), "stored");
	job->stored = job->inst->conn->webhooks_stored;
	if (!job->inst->conn->webhook_seconds)
		job->inst->conn->webhook_seconds =
			metrics_getf(hub->metrics, METRIC_HISTOGRAM, "hub_webhook_duration_seconds",
				     "Webhooks answered after the store's outcome (stored, duplicate, "
				     "invalid and kept, unavailable, failed): seconds from the request's "
				     "arrival to the answer",
				     "connector=\"%s\"", connector_name(c));
	job->seconds = job->inst->conn->webhook_seconds;
	request_msg(r, &job->m);
	if (hub->hooks && instance_webhooks_reentrant(job->inst)) {
		job->on_worker = 1;
		job->work.run = run_on_worker;
		job->work.done = finish_from_worker;
		wpool_submit(hub->hooks, &job->work);
		return;
	}
	run(job);
	finish(job);
}

int webhook_replay(struct hub *hub, const char *connector, json_t *payload, char *err, size_t size)
{
	struct connector *c = connector_find(hub->reg, connector);
	struct hub_error herr;
	struct job job;
	const char *key;
	json_t *v;
	int status;

	if (!c) {
		snprintf(err, size, "connector %s no longer exists", connector);
		return -1;
	}
	memset(&job, 0, sizeof(job));
	status = prepare(&job, hub, c);
	if (status != 0) {
		snprintf(err, size, "%s", job.msg);
		return -1;
	}
	msg_init(&job.m);
	msg_set_webhook(&job.m, json_string_value(json_object_get(payload, "method")) ?: "POST",
			json_string_value(json_object_get(payload, "url")) ?: "/");
	json_object_foreach(json_object_get(payload, "headers"), key, v)
		msg_add_header(&job.m, key, json_string_value(v) ? json_string_value(v) : "");
	if (json_is_string(json_object_get(payload, "body"))) {
		msg_set_body(&job.m, json_string_value(json_object_get(payload, "body")),
			     json_string_length(json_object_get(payload, "body")));
	} else if (json_is_string(json_object_get(payload, "body_base64"))) {
		size_t blen = 0;
		unsigned char *raw = hub_base64_decode(json_string_value(json_object_get(payload, "body_base64")),
						       &blen);
		if (raw)
			msg_set_body(&job.m, raw, blen);
		free(raw);
	}
	job.u = store_unit_new(c->merchant, connector_name(c));
	if (!job.u) {
		msg_release(&job.m);
		instance_release(job.inst);
		snprintf(err, size, "out of memory");
		return -1;
	}
	/* Replayed deliveries were verified when they arrived; the loop runs
	 * them (a replay is rare). */
	run(&job);
	instance_release(job.inst);
	status = job.status;
	if (status == 202) {
		store_unit_free(job.u);
		return 0; /* a topic the plugin ignores: nothing to store */
	}
	if (status != 200 && status != 422) {
		snprintf(err, size, "%s", job.msg);
		store_unit_free(job.u);
		return -1;
	}
	memset(&herr, 0, sizeof(herr));
	if (store_submit(hub->store, job.u, NULL, NULL, &herr) < 0) {
		snprintf(err, size, "%s", herr.message);
		return -1;
	}
	/* Still unreadable: run() kept it as a new dead letter. */
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
