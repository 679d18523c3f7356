/*
 * example.c - a minimal, complete connector plugin: start your own from it.
 *
 * It connects a fictional "Example Shop" JSON API to the hub:
 *
 *   orders stream  GET {base_url}/v1/orders?updated_since=..&limit=N[&page_token=T]
 *                  with "Authorization: Bearer {api_key}"; the answer is
 *                  {"orders":[...], "next_page_token": "T" | null}
 *   webhooks       POST with X-Example-Signature = base64(HMAC-SHA256(
 *                  webhook_secret, raw body)), X-Example-Delivery (unique id)
 *                  and X-Example-Event ("order.created", "order.updated")
 *   push_tracking  POST {base_url}/v1/orders/{id}/shipments
 *                  {"carrier": "...", "tracking_number": "..."} -> 201
 *   rate limits    X-RateLimit-Limit / X-RateLimit-Remaining on every
 *                  response, 429 with Retry-After (seconds)
 *
 * The plugin is a pure translator: it never does I/O. The host calls it to
 * build a request, performs it, and calls it again with the response. Every
 * host service (secrets, HMAC, emitting records, the cursor) comes through
 * the `host` table handed to create(). Build: see Makefile; check: make
 * check (runs hub-plugin-kit on cases/). Walk-through: docs/sdk.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>
#include <hub/sdk.h>

/* One connector instance. Strings borrowed from the config stay valid
 * until destroy(): the host keeps the config alive as long as the instance. */
struct example {
	const struct hub_host *host;
	struct hub_conn *conn;
	const char *base_url;
	int64_t page_size;
};

/* Maps the API's order state to the canonical status words. */
static const char *order_status(const char *state)
{
	if (state && strcmp(state, "cancelled") == 0)
		return "cancelled";
	if (state && strcmp(state, "fulfilled") == 0)
		return "closed";
	return "open";
}

static int example_create(const struct hub_host *host, struct hub_conn *conn,
			  const json_t *config, void **state, struct hub_error *err)
{
	struct example *ex;
	const char *base_url;
	int64_t page_size = 50;

	/* the host validated config against config_schema already; these
	 * getters only fail on what the schema cannot express */
	if (hub_json_str(config, "base_url", &base_url, "config", err) < 0 ||
	    hub_json_int_opt(config, "page_size", &page_size, "config", err) < 0)
		return HUB_INVALID;
	ex = calloc(1, sizeof(*ex));
	if (!ex) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	ex->host = host;
	ex->conn = conn;
	ex->base_url = base_url;
	ex->page_size = page_size;
	*state = ex;
	return HUB_OK;
}

static void example_destroy(void *state)
{
	free(state);
}

/* Adds the headers every API request carries. 0 or -1. */
static int auth_headers(struct example *ex, struct hub_msg *req)
{
	const char *key = ex->host->secret(ex->conn, "api_key");
	char auth[512];

	if (!key)
		return -1;
	snprintf(auth, sizeof(auth), "Bearer %s", key);
	return ex->host->msg_add_header(req, "Authorization", auth) < 0 ||
			       ex->host->msg_add_header(req, "Accept", "application/json") < 0 ?
		       -1 : 0;
}

static int example_build_request(void *state, const char *stream, const json_t *cursor,
				 struct hub_msg *req, struct hub_error *err)
{
	struct example *ex = state;
	const char *since = NULL, *token = NULL;
	struct hub_url url;
	int rc = HUB_OK;

	if (strcmp(stream, "orders") != 0)
		return hub_error_set(err, "stream", "unknown stream %s", stream), HUB_FATAL;
	/* cursor: NULL on the first sync, else what read_response set */
	if (cursor && (hub_json_str_opt(cursor, "updated_since", &since, "cursor", err) < 0 ||
		       hub_json_str_opt(cursor, "page_token", &token, "cursor", err) < 0))
		return HUB_INVALID;
	if (cursor && !since) /* a backfill start the host passes is {"since": ...} */
		hub_json_str_opt(cursor, "since", &since, "cursor", NULL);

	hub_url_init(&url, ex->base_url);
	hub_url_path(&url, "/v1/orders");
	hub_url_query(&url, "updated_since", since ? since : "1970-01-01T00:00:00Z");
	hub_url_query_int(&url, "limit", ex->page_size);
	hub_url_query(&url, "page_token", token); /* skipped when NULL */
	if (!hub_url_str(&url) || ex->host->msg_set_request(req, "GET", hub_url_str(&url)) < 0 ||
	    auth_headers(ex, req) < 0) {
		hub_error_set(err, "base_url", "cannot build the request URL");
		rc = HUB_FATAL;
	}
	hub_url_release(&url);
	return rc;
}

/* Classifies a non-2xx status the way the host expects. */
static int http_failure(int status, const struct hub_msg *resp, const struct hub_host *host,
			struct hub_error *err)
{
	size_t len;
	const char *body = host->msg_body(resp, &len);

	err->upstream_status = status;
	hub_error_set(err, NULL, "HTTP %d from the API: %.200s", status, body);
	if (status == 401)
		return HUB_AUTH_EXPIRED;
	if (status == 404)
		return HUB_NOT_FOUND;
	if (status == 408 || status == 429 || status >= 500)
		return HUB_RETRY;
	return HUB_FATAL;
}

/* Converts one API order into a canonical order record (new reference) or
 * NULL with err naming the field. `ctx` is its JSON path for messages. */
static json_t *map_order(const json_t *o, const char *ctx, struct hub_error *err)
{
	const char *currency, *total, *state = NULL, *number = NULL;
	char id[128], field[256];
	int64_t created, updated, minor;
	json_t *rec = NULL, *items, *lines, *item;
	size_t i;

	if (hub_json_id(o, "id", id, sizeof(id), ctx, err) < 0 ||
	    hub_json_str(o, "currency", &currency, ctx, err) < 0 ||
	    hub_json_str(o, "total", &total, ctx, err) < 0 ||
	    hub_json_str_opt(o, "state", &state, ctx, err) < 0 ||
	    hub_json_str_opt(o, "number", &number, ctx, err) < 0 ||
	    hub_json_array(o, "items", &items, ctx, err) < 0)
		return NULL;
	snprintf(field, sizeof(field), "%.200s.total", ctx);
	if (hub_money_parse(total, currency, &minor, field, err) < 0)
		return NULL;
	created = updated = 0;
	if (hub_json_time_opt(o, "created_at", 0, &created, ctx, err) < 0 ||
	    hub_json_time_opt(o, "updated_at", 0, &updated, ctx, err) < 0)
		return NULL;
	if (!created || !updated) {
		hub_error_set(err, ctx, "created_at and updated_at are required");
		return NULL;
	}

	lines = json_array();
	json_array_foreach(items, i, item) {
		const char *sku = NULL, *name = NULL, *price;
		char line_id[128], lctx[128];
		int64_t qty, unit;
		json_t *line;

		snprintf(lctx, sizeof(lctx), "%.80s.items[%zu]", ctx, i);
		snprintf(field, sizeof(field), "%s.unit_price", lctx);
		if (hub_json_id(item, "id", line_id, sizeof(line_id), lctx, err) < 0 ||
		    hub_json_str_opt(item, "sku", &sku, lctx, err) < 0 ||
		    hub_json_str_opt(item, "name", &name, lctx, err) < 0 ||
		    hub_json_int(item, "quantity", &qty, lctx, err) < 0 ||
		    hub_json_str(item, "unit_price", &price, lctx, err) < 0 ||
		    hub_money_parse(price, currency, &unit, field, err) < 0) {
			json_decref(lines);
			return NULL;
		}
		line = json_pack("{s:s,s:I,s:I}", "external_id", line_id, "quantity",
				 (json_int_t)qty, "unit_price", (json_int_t)unit);
		hub_json_set_str(line, "sku", sku);
		hub_json_set_str(line, "title", name);
		json_array_append_new(lines, line);
	}

	rec = json_pack("{s:s,s:s,s:I,s:s,s:o}", "external_id", id, "currency", currency,
			"total", (json_int_t)minor, "status", order_status(state), "lines", lines);
	hub_json_set_str(rec, "number", number);
	hub_json_set_str(rec, "source_status", state);
	hub_json_set_str(rec, "fulfillment_status",
			 state && !strcmp(state, "fulfilled") ? "fulfilled" : "unfulfilled");
	hub_json_set_time(rec, "created_at", created);
	hub_json_set_time(rec, "updated_at", updated);
	return rec;
}

static int example_read_response(void *state, const char *stream, const json_t *cursor,
				 const struct hub_msg *resp, struct hub_call *call,
				 struct hub_error *err)
{
	struct example *ex = state;
	const struct hub_host *host = ex->host;
	const char *since = NULL, *next = NULL;
	int status = host->msg_status(resp);
	json_t *doc, *orders, *o, *rec;
	int64_t newest = 0, t;
	size_t len, i;
	const char *body;
	char ctx[64], when[32];
	int rc = HUB_OK;

	(void)stream;
	if (status / 100 != 2)
		return http_failure(status, resp, host, err);
	body = host->msg_body(resp, &len);
	doc = hub_json_loadb(body, len, 0, NULL);
	if (!doc) /* a truncated body is worth a retry */
		return hub_error_set(err, "body", "the response is not JSON"), HUB_RETRY;
	if (hub_json_array(doc, "orders", &orders, NULL, err) < 0 ||
	    hub_json_str_opt(doc, "next_page_token", &next, NULL, err) < 0) {
		rc = HUB_INVALID;
		goto out;
	}
	json_array_foreach(orders, i, o) {
		snprintf(ctx, sizeof(ctx), "orders[%zu]", i);
		rec = map_order(o, ctx, err);
		if (!rec) {
			rc = HUB_INVALID;
			goto out;
		}
		if (hub_json_time_opt(o, "updated_at", 0, &t, NULL, NULL) == 0 && t > newest)
			newest = t;
		/* the host validates the record against sdk/schema/order.json */
		host->emit(call, HUB_RECORD_ORDER, rec);
	}

	/* Next cursor: committed by the host together with these records. */
	if (cursor)
		hub_json_str_opt(cursor, "updated_since", &since, NULL, NULL);
	if (next) {
		host->set_cursor(call, json_pack("{s:s?,s:s}", "updated_since", since,
						 "page_token", next));
		host->set_more(call, 1);
	} else {
		/* caught up: resume from the newest change seen, never going back */
		int64_t prev = 0;

		if (since)
			hub_time_parse(since, 0, &prev, NULL, NULL);
		if (newest > prev && hub_time_format(newest, when, sizeof(when)) == 0)
			since = when;
		host->set_cursor(call, since ? json_pack("{s:s}", "updated_since", since) :
					       json_null());
		host->set_more(call, 0);
	}
out:
	json_decref(doc);
	return rc;
}

static void example_read_limits(void *state, const char *operation, const struct hub_msg *resp,
				struct hub_call *call)
{
	struct example *ex = state;
	const struct hub_host *host = ex->host;
	const char *limit = host->msg_header(resp, "X-RateLimit-Limit");
	const char *left = host->msg_header(resp, "X-RateLimit-Remaining");
	const char *retry = host->msg_header(resp, "Retry-After");
	double cap = limit ? strtod(limit, NULL) : 0, rem = left ? strtod(left, NULL) : 0;
	int64_t retry_ms = retry ? (int64_t)(strtod(retry, NULL) * 1000) : 0;

	if ((limit && left) || retry_ms > 0)
		host->observe_limit(call, operation ? operation : "api", limit ? cap - rem : 0,
				    limit ? cap : 0, 0, retry_ms);
}

static int example_verify_webhook(void *state, const struct hub_msg *webhook,
				  struct hub_call *call, struct hub_error *err)
{
	struct example *ex = state;
	const struct hub_host *host = ex->host;
	const char *secret = host->secret(ex->conn, "webhook_secret");
	const char *sig = host->msg_header(webhook, "X-Example-Signature");
	const char *id = host->msg_header(webhook, "X-Example-Delivery");
	const char *event = host->msg_header(webhook, "X-Example-Event");
	size_t len;
	const char *body = host->msg_body(webhook, &len);

	if (!secret)
		return hub_error_set(err, "webhook_secret", "no webhook_secret configured"),
		       HUB_UNAUTHORIZED;
	/* over the raw body bytes, compared in constant time */
	if (!sig || !hub_hmac_verify_base64(secret, body, len, sig))
		return hub_error_set(err, "header X-Example-Signature",
				     sig ? "signature mismatch" : "signature missing"),
		       HUB_UNAUTHORIZED;
	if (id)
		host->set_delivery_id(call, id);
	if (event)
		host->set_topic(call, event);
	return HUB_OK;
}

static int example_read_webhook(void *state, const struct hub_msg *webhook,
				struct hub_call *call, struct hub_error *err)
{
	struct example *ex = state;
	const struct hub_host *host = ex->host;
	const char *event = host->msg_header(webhook, "X-Example-Event");
	json_t *doc, *order, *rec;
	const char *body;
	size_t len;
	int rc = HUB_OK;

	if (!event || (strcmp(event, "order.created") && strcmp(event, "order.updated")))
		return hub_error_set(err, "header X-Example-Event", "event %s not handled",
				     event ? event : "(none)"),
		       HUB_IGNORED;
	body = host->msg_body(webhook, &len);
	doc = hub_json_loadb(body, len, 0, NULL);
	if (!doc)
		return hub_error_set(err, "body", "the webhook body is not JSON"), HUB_INVALID;
	if (hub_json_object(doc, "order", &order, NULL, err) < 0 ||
	    !(rec = map_order(order, "order", err)))
		rc = HUB_INVALID;
	else
		host->emit(call, HUB_RECORD_ORDER, rec);
	json_decref(doc);
	return rc;
}

static int example_build_action(void *state, const char *action, const json_t *payload,
				struct hub_msg *req, struct hub_error *err)
{
	struct example *ex = state;
	const char *order_id, *carrier, *number;
	struct hub_url url;
	json_t *doc;
	char *body = NULL;
	int rc = HUB_OK;

	if (strcmp(action, "push_tracking") != 0)
		return hub_error_set(err, "action", "action %s not supported", action), HUB_IGNORED;
	if (hub_json_str(payload, "order_external_id", &order_id, "payload", err) < 0 ||
	    hub_json_str(payload, "carrier", &carrier, "payload", err) < 0 ||
	    hub_json_str(payload, "tracking_number", &number, "payload", err) < 0)
		return HUB_INVALID;
	hub_url_init(&url, ex->base_url);
	hub_url_path(&url, "/v1/orders");
	hub_url_segment(&url, order_id);
	hub_url_path(&url, "/shipments");
	doc = json_pack("{s:s,s:s}", "carrier", carrier, "tracking_number", number);
	body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!body || !hub_url_str(&url) ||
	    ex->host->msg_set_request(req, "POST", hub_url_str(&url)) < 0 ||
	    auth_headers(ex, req) < 0 ||
	    ex->host->msg_add_header(req, "Content-Type", "application/json") < 0 ||
	    ex->host->msg_set_body(req, body, strlen(body)) < 0 ||
	    ex->host->msg_set_operation(req, "api") < 0) {
		hub_error_set(err, NULL, "cannot build the request");
		rc = HUB_FATAL;
	}
	free(body);
	hub_url_release(&url);
	return rc;
}

static int example_read_action(void *state, const char *action, const json_t *payload,
			       const struct hub_msg *resp, struct hub_call *call,
			       struct hub_error *err)
{
	struct example *ex = state;
	const struct hub_host *host = ex->host;
	const char *carrier, *number;
	char id[128], code[65];
	int64_t created;
	json_t *doc, *shipment, *rec;
	const char *body;
	size_t len;
	int status = host->msg_status(resp), rc = HUB_OK;

	(void)action;
	if (status / 100 != 2)
		return http_failure(status, resp, host, err);
	body = host->msg_body(resp, &len);
	doc = hub_json_loadb(body, len, 0, NULL);
	if (!doc)
		return hub_error_set(err, "body", "the response is not JSON"), HUB_RETRY;
	created = 0;
	if (hub_json_object(doc, "shipment", &shipment, NULL, err) < 0 ||
	    hub_json_id(shipment, "id", id, sizeof(id), "shipment", err) < 0 ||
	    hub_json_time_opt(shipment, "created_at", 0, &created, "shipment", err) < 0 ||
	    hub_json_str(payload, "carrier", &carrier, "payload", err) < 0 ||
	    hub_json_str(payload, "tracking_number", &number, "payload", err) < 0 ||
	    hub_carrier_code(carrier, code, sizeof(code)) < 0) {
		rc = HUB_INVALID;
		goto out;
	}
	if (!created)
		created = host->now_ms(); /* the host's clock, never time() */
	/* the shipment as the marketplace now knows it */
	rec = json_pack("{s:s,s:O,s:s,s:s,s:[s],s:s}", "external_id", id, "order_external_id",
			json_object_get(payload, "order_external_id"), "carrier", code,
			"carrier_name", carrier, "tracking_numbers", number, "status",
			"pre_transit");
	hub_json_set_time(rec, "created_at", created);
	hub_json_set_time(rec, "updated_at", created);
	host->emit(call, HUB_RECORD_SHIPMENT, rec);
out:
	json_decref(doc);
	return rc;
}

static const struct hub_stream_def streams[] = {
	{.name = "orders", .record_kinds = 1u << HUB_RECORD_ORDER, .default_interval_s = 300,
	 .operation = "api"},
	{.name = NULL},
};

static const struct hub_bucket_def buckets[] = {
	{.name = "api", .burst = 10, .rate = 5},
	{.name = NULL},
};

/* The one exported symbol. */
HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "example",
	.version = "1.0.0",
	.description = "Example Shop: orders, order webhooks, tracking push",
	.capabilities = HUB_CAP_ORDERS | HUB_CAP_WEBHOOKS | HUB_CAP_FULFILLMENT_PUSH,
	.config_schema =
		"{\"type\": \"object\","
		" \"required\": [\"base_url\", \"api_key\", \"webhook_secret\"],"
		" \"additionalProperties\": false,"
		" \"properties\": {"
		"  \"base_url\": {\"type\": \"string\", \"pattern\": \"^https?://[^/]+$\","
		"   \"description\": \"API root, without a trailing slash\"},"
		"  \"api_key\": {\"type\": \"string\", \"minLength\": 1, \"x-secret\": true},"
		"  \"webhook_secret\": {\"type\": \"string\", \"minLength\": 1, \"x-secret\": true},"
		"  \"page_size\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100,"
		"   \"default\": 50}}}",
	.streams = streams,
	.buckets = buckets,
	.create = example_create,
	.destroy = example_destroy,
	.build_request = example_build_request,
	.read_response = example_read_response,
	.read_limits = example_read_limits,
	.verify_webhook = example_verify_webhook,
	.read_webhook = example_read_webhook,
	.build_action = example_build_action,
	.read_action = example_read_action,
};
