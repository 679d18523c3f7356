/*
 * good.c - a complete, well-behaved test plugin "good" against a tiny JSON
 * orders API, used by the loader, reload and kit tests. It depends on the
 * host table and jansson only.
 *
 * Built several times under the same plugin name to act as successive
 * versions of one plugin:
 *   GOOD_VERSION       the version string (default "1.0.0"); it is also
 *                      sent as the X-Plugin-Version request header, so a
 *                      test can tell which generation built a request;
 *   GOOD_BROKEN        declares HUB_CAP_WEBHOOKS without read_webhook (the
 *                      loader must refuse it);
 *   GOOD_CREATE_FAILS  loads fine but refuses every config in create()
 *                      (reload must keep the old generation);
 *   GOOD_STATEFUL      counts its requests in the URL (the kit's second run
 *                      must catch it);
 *   GOOD_TRUSTING      accepts any webhook signature (the kit's mis-signed
 *                      replays must catch it);
 *   GOOD_PROMISES      declares HUB_CAP_WEBHOOKS_REENTRANT and
 *                      HUB_CAP_WEBHOOKS_SCOPED, and keeps both promises
 *                      (the kit's concurrent and scoped checks pass);
 *   GOOD_RACY          declares HUB_CAP_WEBHOOKS_REENTRANT but passes the
 *                      delivery id through a static buffer, with a window
 *                      widened by a busy loop and a yield (the kit's
 *                      concurrent run must catch it);
 *   GOOD_CACHING       declares HUB_CAP_WEBHOOKS_SCOPED but keeps the last
 *                      parsed webhook body in a static cache (the kit's
 *                      scoped check must catch it).
 *
 * API: GET {base_url}/orders?since=..&page=N&limit=N with
 * "Authorization: Bearer {api_key}" returns {"orders":[{"id","currency",
 * "total_cents","created_at","updated_at"}], "next_page": N|null}.
 * Webhooks carry X-Good-Signature = hex HMAC-SHA256(webhook_secret, body),
 * X-Good-Delivery and X-Good-Topic, body {"order":{...}}.
 */
#include "config.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>

#ifndef GOOD_VERSION
#define GOOD_VERSION "1.0.0"
#endif

/* The webhook promises a build declares. */
#if defined(GOOD_PROMISES)
#define GOOD_WEBHOOK_CAPS (HUB_CAP_WEBHOOKS_REENTRANT | HUB_CAP_WEBHOOKS_SCOPED)
#elif defined(GOOD_RACY)
#define GOOD_WEBHOOK_CAPS HUB_CAP_WEBHOOKS_REENTRANT
#elif defined(GOOD_CACHING)
#define GOOD_WEBHOOK_CAPS HUB_CAP_WEBHOOKS_SCOPED
#else
#define GOOD_WEBHOOK_CAPS 0u
#endif

#ifdef GOOD_CACHING
/* The broken promise: the last webhook body parsed, kept past its call. */
static json_t *last_body;
#endif

struct good {
	const struct hub_host *host;
	struct hub_conn *conn;
	const char *base_url; /* borrowed from the config, valid until destroy */
	json_int_t page_size;
	long requests;
};

static int fail(struct hub_error *err, int status, const char *field, const char *message)
{
	snprintf(err->field, sizeof(err->field), "%s", field);
	snprintf(err->message, sizeof(err->message), "%s", message);
	return status;
}

static int good_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		       void **state, struct hub_error *err)
{
#ifdef GOOD_CREATE_FAILS
	(void)host;
	(void)conn;
	(void)config;
	(void)state;
	return fail(err, HUB_INVALID, "config", "this build refuses every config");
#else
	struct good *g;

	if (!host->secret(conn, "api_key"))
		return fail(err, HUB_INVALID, "api_key", "api_key is required");
	g = calloc(1, sizeof(*g));
	if (!g)
		return fail(err, HUB_FATAL, "", "out of memory");
	g->host = host;
	g->conn = conn;
	g->base_url = json_string_value(json_object_get(config, "base_url"));
	g->page_size = json_integer_value(json_object_get(config, "page_size"));
	*state = g;
	return HUB_OK;
#endif
}

static void good_destroy(void *state)
{
#ifdef GOOD_CACHING
	json_decref(last_body);
	last_body = NULL;
#endif
	free(state);
}

static int good_build_request(void *state, const char *stream, const json_t *cursor,
			      struct hub_msg *req, struct hub_error *err)
{
	struct good *g = state;
	const struct hub_host *h = g->host;
	const char *since = json_string_value(json_object_get(cursor, "since"));
	json_int_t page = json_integer_value(json_object_get(cursor, "page"));
	char url[1024], auth[300];

	if (strcmp(stream, "orders") != 0)
		return fail(err, HUB_FATAL, "stream", "only the orders stream exists");
	snprintf(url, sizeof(url), "%s/orders?since=%s&page=%lld&limit=%lld", g->base_url,
		 since ? since : "1970-01-01T00:00:00Z", (long long)(page ? page : 1),
		 (long long)g->page_size);
	g->requests++;
#ifdef GOOD_STATEFUL
	snprintf(url + strlen(url), sizeof(url) - strlen(url), "&n=%ld", g->requests);
#endif
	snprintf(auth, sizeof(auth), "Bearer %s", h->secret(g->conn, "api_key"));
	if (h->msg_set_request(req, "GET", url) < 0 || h->msg_add_header(req, "Authorization", auth) < 0 ||
	    h->msg_add_header(req, "X-Plugin-Version", GOOD_VERSION) < 0)
		return fail(err, HUB_FATAL, "", "cannot build the request");
	return HUB_OK;
}

/* Emits one API order as a canonical order. */
static int emit_order(struct good *g, struct hub_call *call, const json_t *o,
		      struct hub_error *err)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	json_t *rec;

	if (!id)
		return fail(err, HUB_INVALID, "order.id", "missing order id");
	rec = json_pack("{s:s,s:O,s:O,s:s,s:O,s:O,s:[]}", "external_id", id, "currency",
			json_object_get(o, "currency"), "total", json_object_get(o, "total_cents"),
			"status", "open", "created_at", json_object_get(o, "created_at"),
			"updated_at", json_object_get(o, "updated_at"), "lines");
	if (!rec)
		return fail(err, HUB_INVALID, "order", "incomplete order");
	if (g->host->emit(call, HUB_RECORD_ORDER, rec) < 0)
		return fail(err, HUB_FATAL, "order", "emit refused");
	return HUB_OK;
}

static int good_read_response(void *state, const char *stream, const json_t *cursor,
			      const struct hub_msg *resp, struct hub_call *call,
			      struct hub_error *err)
{
	struct good *g = state;
	const struct hub_host *h = g->host;
	size_t len, i;
	const char *body = h->msg_body(resp, &len);
	const char *since = json_string_value(json_object_get(cursor, "since"));
	json_t *doc, *orders, *next, *o;
	const char *max = since;
	int st = HUB_OK;

	(void)stream;
	if (h->msg_status(resp) == 401)
		return fail(err, HUB_AUTH_EXPIRED, "", "401 from the API");
	if (h->msg_status(resp) >= 500)
		return fail(err, HUB_RETRY, "", "server error");
	doc = json_loadb(body, len, 0, NULL);
	orders = json_object_get(doc, "orders");
	if (!json_is_array(orders)) {
		json_decref(doc);
		return fail(err, HUB_RETRY, "orders", "body has no orders array");
	}
	json_array_foreach(orders, i, o) {
		const char *u = json_string_value(json_object_get(o, "updated_at"));

		if ((st = emit_order(g, call, o, err)) != HUB_OK)
			break;
		if (u && (!max || strcmp(u, max) > 0))
			max = u;
	}
	if (st == HUB_OK) {
		next = json_object_get(doc, "next_page");
		if (json_is_integer(next)) {
			h->set_cursor(call, json_pack("{s:s?,s:O}", "since", since, "page", next));
			h->set_more(call, 1);
		} else {
			h->set_cursor(call, json_pack("{s:s?}", "since", max));
			h->set_more(call, 0);
		}
	}
	json_decref(doc);
	return st;
}

static void good_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			     struct hub_call *call)
{
	struct good *g = state;
	const char *v = g->host->msg_header(resp, "X-Limit");
	double used, cap;

	if (v && sscanf(v, "%lf/%lf", &used, &cap) == 2)
		g->host->observe_limit(call, operation, used, cap, 0, 0);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

#ifdef GOOD_RACY
/* Keeps a thread between writing and reading the shared buffer long enough
 * for another one to write it too, even on one core. */
static void widen_window(void)
{
	volatile unsigned spin;

	for (spin = 0; spin < 20000; spin++)
		;
	sched_yield();
	for (spin = 0; spin < 20000; spin++)
		;
}
#endif

static int good_verify_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			       struct hub_error *err)
{
	struct good *g = state;
	const struct hub_host *h = g->host;
	const char *secret = h->secret(g->conn, "webhook_secret");
	const char *sig = h->msg_header(webhook, "X-Good-Signature");
	const char *id = h->msg_header(webhook, "X-Good-Delivery");
	const char *topic = h->msg_header(webhook, "X-Good-Topic");
	unsigned char mac[32];
	char want[65];
	size_t len;
	const char *body = h->msg_body(webhook, &len);

#ifndef GOOD_TRUSTING
	if (!secret || !sig)
		return fail(err, HUB_UNAUTHORIZED, "header X-Good-Signature", "signature missing");
	if (h->hmac_sha256(secret, strlen(secret), body, len, mac) < 0)
		return fail(err, HUB_UNAUTHORIZED, "", "hmac failed");
	hex(mac, sizeof(mac), want);
	if (strlen(sig) != 64 || !h->ct_equal(sig, want, 64))
		return fail(err, HUB_UNAUTHORIZED, "header X-Good-Signature", "signature mismatch");
#else
	(void)secret, (void)sig, (void)mac, (void)want, (void)len, (void)body, (void)hex;
#endif
#ifdef GOOD_RACY
	if (id) {
		/* the broken promise: one buffer for every thread */
		static char last_id[128];

		snprintf(last_id, sizeof(last_id), "%s", id);
		widen_window();
		h->set_delivery_id(call, last_id);
	}
#else
	if (id)
		h->set_delivery_id(call, id);
#endif
	if (topic)
		h->set_topic(call, topic);
	return HUB_OK;
}

#ifndef GOOD_BROKEN
static int good_read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			     struct hub_error *err)
{
	struct good *g = state;
	size_t len;
	const char *body = g->host->msg_body(webhook, &len);
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *o = json_object_get(doc, "order");
	int st;

	if (!o) {
		json_decref(doc);
		return fail(err, HUB_IGNORED, "order", "no order in the webhook");
	}
	st = emit_order(g, call, o, err);
#ifdef GOOD_CACHING
	json_decref(last_body);
	last_body = json_incref(doc);
#endif
	json_decref(doc);
	return st;
}
#endif

static int good_build_action(void *state, const char *action, const json_t *payload,
			     struct hub_msg *req, struct hub_error *err)
{
	struct good *g = state;
	const struct hub_host *h = g->host;
	char url[1024], *body;
	int rc;

	if (strcmp(action, "push_tracking") != 0)
		return fail(err, HUB_IGNORED, "action", "unsupported action");
	snprintf(url, sizeof(url), "%s/orders/%s/tracking", g->base_url,
		 json_string_value(json_object_get(payload, "order_external_id")));
	body = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	if (!body)
		return fail(err, HUB_INVALID, "payload", "payload cannot be serialised");
	rc = h->msg_set_request(req, "POST", url) < 0 ||
	     h->msg_add_header(req, "Content-Type", "application/json") < 0 ||
	     h->msg_set_body(req, body, strlen(body)) < 0 ||
	     h->msg_set_operation(req, "orders") < 0;
	free(body);
	return rc ? fail(err, HUB_FATAL, "", "cannot build the request") : HUB_OK;
}

static int good_read_action(void *state, const char *action, const json_t *payload,
			    const struct hub_msg *resp, struct hub_call *call,
			    struct hub_error *err)
{
	struct good *g = state;

	(void)action;
	(void)call;
	(void)payload;
	if (g->host->msg_status(resp) / 100 != 2)
		return fail(err, HUB_FATAL, "", "push refused");
	return HUB_OK;
}

static const struct hub_stream_def streams[] = {
	{.name = "orders", .record_kinds = 1u << HUB_RECORD_ORDER, .default_interval_s = 60,
	 .operation = "orders"},
	{.name = NULL},
};

static const struct hub_bucket_def buckets[] = {
	{.name = "orders", .burst = 4, .rate = 2},
	{.name = NULL},
};

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "good",
	.version = GOOD_VERSION,
	.description = "test plugin: a tiny JSON orders API",
	.capabilities = HUB_CAP_ORDERS | HUB_CAP_WEBHOOKS | HUB_CAP_FULFILLMENT_PUSH |
			GOOD_WEBHOOK_CAPS,
	.config_schema = "{\"type\":\"object\",\"required\":[\"base_url\",\"api_key\"],"
			 "\"additionalProperties\":false,\"properties\":{"
			 "\"base_url\":{\"type\":\"string\",\"pattern\":\"^https?://\"},"
			 "\"api_key\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true},"
			 "\"webhook_secret\":{\"type\":\"string\",\"x-secret\":true},"
			 "\"page_size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":250,"
			 "\"default\":2}}}",
	.streams = streams,
	.buckets = buckets,
	.create = good_create,
	.destroy = good_destroy,
	.build_request = good_build_request,
	.read_response = good_read_response,
	.read_limits = good_read_limits,
	.verify_webhook = good_verify_webhook,
#ifndef GOOD_BROKEN
	.read_webhook = good_read_webhook,
#endif
	.build_action = good_build_action,
	.read_action = good_read_action,
};
