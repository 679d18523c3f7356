/*
 * api.c - the Shopify Admin REST API as the host sees it: the orders
 * stream's requests and cursor, the classification of responses, the
 * rate-limit headers, and the fulfillment actions that push tracking back.
 *
 * The orders stream walks `orders.json?status=any&updated_at_min=...&
 * limit=250` and then the Link header's rel="next" URLs verbatim (a
 * page_info URL allows no other parameter). Its cursor is
 *   {"updated_at_min": time|null, "next": url|null,
 *    "max_seen": time|null, "started_at": time|null}
 * and is committed with each page's records, so a crash replays one page
 * and never skips one. While a sweep runs, "next" holds the page to read and
 * "max_seen" the newest updated_at read so far; after its last page,
 * updated_at_min becomes max_seen, capped at the sweep's start (an order
 * updated during a sweep may have been read in its older version on an
 * earlier page, and must be read again), and never moves backwards. Each new
 * sweep asks from updated_at_min minus SHOPIFY_OVERLAP_MS. The window is
 * driven by Shopify's own timestamps, so the hub's clock only ever makes it
 * wider, never skips an update.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "shopify.h"

#define NO_TIME INT64_MIN

/* ---- responses --------------------------------------------------------- */

/* A printable excerpt of a body for error messages (at most size-1 bytes). */
static void body_excerpt(const struct shopify *s, const struct hub_msg *msg, char *buf,
			 size_t size)
{
	size_t len = 0, i, n;
	const char *body = s->host->msg_body(msg, &len);

	n = len < size - 1 ? len : size - 1;
	for (i = 0; i < n; i++)
		buf[i] = isprint((unsigned char)body[i]) ? body[i] : ' ';
	buf[n] = '\0';
}

int shopify_check_status(const struct shopify *s, const struct hub_msg *resp, const char *what,
			 struct hub_error *err)
{
	int status = s->host->msg_status(resp);
	char excerpt[200];
	const char *ra;

	if (status >= 200 && status < 300)
		return HUB_OK;
	body_excerpt(s, resp, excerpt, sizeof(excerpt));
	if (status == 429) {
		ra = s->host->msg_header(resp, "Retry-After");
		hub_error_set(err, "status", "Shopify throttled %s (429), Retry-After %s s",
			      what, ra != NULL ? ra : "absent");
	} else if (status == 408 || status >= 500) {
		hub_error_set(err, "status", "Shopify answered %d to %s: %s", status, what,
			      excerpt);
	} else if (status == 401) {
		hub_error_set(err, "status",
			      "Shopify refused the access token for %s (401): the app was "
			      "uninstalled or the token revoked; install the app again and update "
			      "access_token", s->shop);
	} else if (status == 403) {
		hub_error_set(err, "status",
			      "Shopify forbids %s (403): grant the app the read_orders and "
			      "write_fulfillments (or write_merchant_managed_fulfillment_orders) "
			      "scopes; %s", what, excerpt);
	} else {
		hub_error_set(err, "status", "Shopify answered %d to %s: %s", status, what,
			      excerpt);
	}
	if (err != NULL)
		err->upstream_status = status;
	if (status == 429 || status == 408 || status >= 500)
		return HUB_RETRY;
	if (status == 401)
		return HUB_AUTH_EXPIRED;
	return HUB_FATAL;
}

int shopify_parse_body(const struct shopify *s, const struct hub_msg *msg, const char *what,
		       json_t **out, struct hub_error *err)
{
	size_t len = 0;
	const char *body = s->host->msg_body(msg, &len);
	json_error_t jerr;

	*out = NULL;
	if (len == 0) {
		hub_error_set(err, "body", "the body of %s is empty", what);
		goto fail;
	}
	*out = hub_json_loadb(body, len, 0, &jerr);
	if (*out == NULL) {
		hub_error_set(err, "body",
			      "malformed or truncated JSON in %s (%zu bytes) at line %d column %d: %s",
			      what, len, jerr.line, jerr.column, jerr.text);
		goto fail;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		hub_error_set(err, "body", "the body of %s is not a JSON object", what);
		goto fail;
	}
	return HUB_OK;
fail:
	if (err != NULL)
		err->upstream_status = s->host->msg_status(msg);
	return HUB_RETRY;
}

/* Rewrites err->field "fulfillment.x" as "order.fulfillments[i].x". */
static void prefix_field(struct hub_error *err, size_t i)
{
	char field[sizeof(err->field) + 32];
	const char *rest;
	size_t n;

	if (err == NULL)
		return;
	rest = strncmp(err->field, "fulfillment", 11) == 0 ? err->field + 11 : "";
	snprintf(field, sizeof(field), "order.fulfillments[%zu]%s", i, rest);
	n = strlen(field);
	if (n >= sizeof(err->field))
		n = sizeof(err->field) - 1;
	memcpy(err->field, field, n);
	err->field[n] = '\0';
}

int shopify_emit_order(const struct shopify *s, struct hub_call *call, const json_t *order,
		       int64_t *updated_ms, struct hub_error *err)
{
	json_t *rec = NULL, *ships = NULL, *arr, *f, *ship;
	const char *oid;
	size_t i;
	int rc = -1;

	if (shopify_map_order(order, &rec, err) < 0)
		goto out;
	ships = json_array();
	if (ships == NULL) {
		hub_error_set(err, "order", "out of memory");
		goto out;
	}
	oid = json_string_value(json_object_get(rec, "external_id"));
	arr = json_object_get(order, "fulfillments");
	if (json_is_array(arr)) {
		json_array_foreach(arr, i, f) {
			if (shopify_map_fulfillment(f, oid, &ship, err) < 0) {
				prefix_field(err, i);
				goto out;
			}
			json_array_append_new(ships, ship);
		}
	}
	if (updated_ms != NULL &&
	    hub_time_parse(json_string_value(json_object_get(rec, "updated_at")), 0, updated_ms,
			   "order.updated_at", err) < 0)
		goto out;
	if (s->host->emit(call, HUB_RECORD_ORDER, rec) < 0) {
		rec = NULL;
		hub_error_set(err, "order", "the host refused an order record");
		goto out;
	}
	rec = NULL;
	json_array_foreach(ships, i, ship) {
		if (s->host->emit(call, HUB_RECORD_SHIPMENT, json_incref(ship)) < 0) {
			hub_error_set(err, "order.fulfillments",
				      "the host refused a shipment record");
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(rec);
	json_decref(ships);
	return rc;
}

/* ---- the orders stream ------------------------------------------------- */

/* Where a sweep of the orders stream stands (from its cursor). */
struct sweep {
	int64_t min;        /* updated_at_min, or NO_TIME: from the beginning */
	const char *next;   /* the next page's URL (borrowed), or NULL: new sweep */
	int64_t max_seen;   /* newest updated_at read in this sweep, or NO_TIME */
	int64_t started_at; /* host time at this sweep's first page, or NO_TIME */
};

/* Reads cursor[key] as a time into *ms (NO_TIME when absent or null). */
static int cursor_time(const json_t *cursor, const char *key, int64_t *ms, struct hub_error *err)
{
	*ms = NO_TIME;
	return hub_json_time_opt(cursor, key, 0, ms, "cursor", err);
}

static int sweep_read(const json_t *cursor, struct sweep *sw, struct hub_error *err)
{
	const char *next = NULL;

	sw->min = sw->max_seen = sw->started_at = NO_TIME;
	sw->next = NULL;
	if (cursor == NULL || json_is_null(cursor))
		return 0;
	if (!json_is_object(cursor))
		return hub_error_set(err, "cursor", "the orders cursor is not a JSON object");
	if (cursor_time(cursor, "updated_at_min", &sw->min, err) < 0 ||
	    cursor_time(cursor, "max_seen", &sw->max_seen, err) < 0 ||
	    cursor_time(cursor, "started_at", &sw->started_at, err) < 0 ||
	    hub_json_str_opt(cursor, "next", &next, "cursor", err) < 0)
		return -1;
	/* a backfill start given by the host: {"since": RFC 3339} */
	if (sw->min == NO_TIME && cursor_time(cursor, "since", &sw->min, err) < 0)
		return -1;
	if (next != NULL && next[0] != '\0')
		sw->next = next;
	return 0;
}

/* A cursor value: the canonical time string, or null. */
static json_t *time_json(int64_t ms)
{
	char buf[32];

	if (ms == NO_TIME || hub_time_format(ms, buf, sizeof(buf)) < 0)
		return json_null();
	return json_string(buf);
}

static json_t *sweep_json(const struct sweep *sw)
{
	return json_pack("{s:o, s:o, s:o, s:o}", "updated_at_min", time_json(sw->min), "next",
			 sw->next != NULL ? json_string(sw->next) : json_null(), "max_seen",
			 time_json(sw->max_seen), "started_at", time_json(sw->started_at));
}

/* Whether url lies under prefix ("https://a.myshopify.com" + '/', '?' or end). */
static int url_under(const char *url, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(url, prefix, n) == 0 &&
	       (url[n] == '/' || url[n] == '?' || url[n] == '\0');
}

/* Whether a Link URL may carry this shop's access token: only to the
 * configured API base or the shop's own host. */
static int next_url_trusted(const struct shopify *s, const char *url)
{
	char own[300];

	snprintf(own, sizeof(own), "https://%s", s->shop);
	return url_under(url, s->api_base) || url_under(url, own);
}

/* Adds the headers every Admin API request carries. */
static int add_auth(const struct shopify *s, struct hub_msg *req, struct hub_error *err)
{
	const char *token = shopify_token(s);

	if (token == NULL) {
		hub_error_set(err, "config.access_token",
			      "no access token for %s: set access_token in the connector's config",
			      s->shop);
		return HUB_FATAL;
	}
	if (s->host->msg_add_header(req, "X-Shopify-Access-Token", token) < 0 ||
	    s->host->msg_add_header(req, "Accept", "application/json") < 0 ||
	    s->host->msg_set_operation(req, SHOPIFY_BUCKET) < 0) {
		hub_error_set(err, "request", "the host refused a request header");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* Starts a URL at {api_base}/admin/api/{version}. */
static void admin_url(const struct shopify *s, struct hub_url *url)
{
	hub_url_init(url, s->api_base);
	hub_url_path(url, "/admin/api");
	hub_url_segment(url, s->api_version);
}

int shopify_build_request(void *state, const char *stream, const json_t *cursor,
			  struct hub_msg *req, struct hub_error *err)
{
	struct shopify *s = state;
	struct sweep sw;
	struct hub_url url;
	char since[32];
	int rc;

	if (stream == NULL || strcmp(stream, "orders") != 0) {
		hub_error_set(err, "stream", "shopify has no stream \"%s\"; it offers \"orders\"",
			      stream != NULL ? stream : "(null)");
		return HUB_INVALID;
	}
	if (sweep_read(cursor, &sw, err) < 0)
		return HUB_INVALID;
	if (sw.next != NULL) {
		if (!next_url_trusted(s, sw.next)) {
			hub_error_set(err, "cursor.next",
				      "the next page URL is not under %s; refusing to send the "
				      "access token elsewhere", s->api_base);
			return HUB_FATAL;
		}
		if (s->host->msg_set_request(req, "GET", sw.next) < 0) {
			hub_error_set(err, "cursor.next", "the host refused the next page URL");
			return HUB_FATAL;
		}
		return add_auth(s, req, err);
	}
	admin_url(s, &url);
	hub_url_path(&url, "/orders.json");
	hub_url_query(&url, "status", "any");
	if (sw.min != NO_TIME) {
		if (hub_time_format(sw.min - SHOPIFY_OVERLAP_MS, since, sizeof(since)) < 0) {
			hub_url_release(&url);
			hub_error_set(err, "cursor.updated_at_min", "updated_at_min is out of range");
			return HUB_INVALID;
		}
		hub_url_query(&url, "updated_at_min", since);
	}
	hub_url_query_int(&url, "limit", SHOPIFY_PAGE_LIMIT);
	if (hub_url_str(&url) == NULL) {
		hub_url_release(&url);
		hub_error_set(err, "request", "out of memory building the orders URL");
		return HUB_FATAL;
	}
	rc = s->host->msg_set_request(req, "GET", hub_url_str(&url));
	hub_url_release(&url);
	if (rc < 0) {
		hub_error_set(err, "request", "the host refused the orders URL");
		return HUB_FATAL;
	}
	return add_auth(s, req, err);
}

int shopify_read_response(void *state, const char *stream, const json_t *cursor,
			  const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct shopify *s = state;
	struct sweep sw;
	json_t *body = NULL, *orders, *order, *next_cursor;
	char *next = NULL;
	const char *link;
	int64_t upd, page_max = NO_TIME;
	size_t i;
	int rc;

	if (stream == NULL || strcmp(stream, "orders") != 0) {
		hub_error_set(err, "stream", "shopify has no stream \"%s\"",
			      stream != NULL ? stream : "(null)");
		return HUB_INVALID;
	}
	if (sweep_read(cursor, &sw, err) < 0)
		return HUB_INVALID;
	rc = shopify_check_status(s, resp, "the orders page", err);
	if (rc != HUB_OK)
		return rc;
	rc = shopify_parse_body(s, resp, "the orders page", &body, err);
	if (rc != HUB_OK)
		return rc;
	orders = json_object_get(body, "orders");
	if (!json_is_array(orders)) {
		hub_error_set(err, "orders", "the orders page has no \"orders\" array");
		rc = HUB_RETRY;
		goto out;
	}
	link = s->host->msg_header(resp, "Link");
	if (link != NULL) {
		next = hub_link_find(link, "next");
		if (next != NULL && !next_url_trusted(s, next)) {
			hub_error_set(err, "header Link",
				      "the next page URL is not under %s; refusing to follow it",
				      s->api_base);
			rc = HUB_FATAL;
			goto out;
		}
	}
	json_array_foreach(orders, i, order) {
		struct hub_error e = {0};

		if (shopify_emit_order(s, call, order, &upd, &e) < 0) {
			/* One order Shopify sent in a shape we cannot map must not
			 * stop the stream: it is logged with its id and field. */
			char id[64] = "?";

			(void)hub_json_id(order, "id", id, sizeof(id), NULL, NULL);
			s->host->log(s->conn, HUB_LOG_ERROR,
				     "shopify: order %s skipped: %s: %s", id, e.field, e.message);
			continue;
		}
		if (page_max == NO_TIME || upd > page_max)
			page_max = upd;
	}

	if (sw.next == NULL) {
		/* first page of a sweep */
		sw.started_at = s->host->now_ms();
		sw.max_seen = NO_TIME;
	}
	if (page_max != NO_TIME && (sw.max_seen == NO_TIME || page_max > sw.max_seen))
		sw.max_seen = page_max;
	if (next != NULL) {
		sw.next = next;
	} else {
		if (sw.max_seen != NO_TIME) {
			int64_t m = sw.max_seen;

			if (sw.started_at != NO_TIME && sw.started_at < m)
				m = sw.started_at;
			if (sw.min == NO_TIME || m > sw.min)
				sw.min = m;
		}
		sw.next = NULL;
		sw.max_seen = NO_TIME;
		sw.started_at = NO_TIME;
	}
	next_cursor = sweep_json(&sw);
	if (next_cursor == NULL || s->host->set_cursor(call, next_cursor) < 0) {
		hub_error_set(err, "cursor", "could not set the next cursor");
		rc = HUB_RETRY;
		goto out;
	}
	s->host->set_more(call, next != NULL);
	rc = HUB_OK;
out:
	free(next);
	json_decref(body);
	return rc;
}

void shopify_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			 struct hub_call *call)
{
	struct shopify *s = state;
	const char *lim = s->host->msg_header(resp, "X-Shopify-Shop-Api-Call-Limit");
	const char *ra = s->host->msg_header(resp, "Retry-After");
	double used = -1, cap = -1, rate;
	int64_t retry_ms = 0;
	char *end;

	(void)operation;
	if (lim != NULL) {
		used = strtod(lim, &end);
		if (end != lim && *end == '/') {
			const char *p = end + 1;

			cap = strtod(p, &end);
			if (end == p || cap <= 0 || used < 0)
				used = cap = -1;
		} else {
			used = -1;
		}
	}
	if (ra != NULL) {
		double sec = strtod(ra, &end);

		/* seconds, possibly fractional ("2.0"); a date is not Shopify's form */
		if (end != ra && isfinite(sec) && sec > 0 && sec < 86400.0)
			retry_ms = (int64_t)ceil(sec * 1000.0);
	}
	if (cap < 0) {
		if (retry_ms <= 0)
			return;
		/* Throttled without the usage header: the bucket is full. */
		used = cap = s->burst;
	}
	rate = s->rate_overridden ? s->rate : cap / SHOPIFY_BUCKET_DRAIN_S;
	s->host->observe_limit(call, SHOPIFY_BUCKET, used, cap, rate, retry_ms);
}

/* ---- actions ----------------------------------------------------------- */

/* A Shopify id as JSON: an integer when it is one, else the string. */
static json_t *id_json(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer(json_integer_value(v));
	if (json_is_string(v)) {
		const char *str = json_string_value(v);
		char *end;
		long long n;

		if (str[0] >= '0' && str[0] <= '9') {
			n = strtoll(str, &end, 10);
			if (*end == '\0' && n >= 0)
				return json_integer(n);
		}
		return json_string(str);
	}
	return NULL;
}

/* payload[key] as an id string into buf; HUB_INVALID with err if absent. */
static int need_id(const json_t *payload, const char *key, const char *action, char *buf,
		   size_t size, struct hub_error *err)
{
	const json_t *v = json_object_get(payload, key);

	if (v == NULL || json_is_null(v) ||
	    hub_json_id(payload, key, buf, size, "payload", err) < 0 || buf[0] == '\0') {
		hub_error_set(err, key, "%s needs payload.%s (a Shopify id)", action, key);
		return HUB_INVALID;
	}
	return HUB_OK;
}

/* The fulfillment orders to fulfill, from the payload, or NULL when the
 * payload names none (they are looked up first). New reference. */
static json_t *payload_fulfillment_orders(const json_t *payload, struct hub_error *err, int *bad)
{
	const json_t *lbfo = json_object_get(payload, "line_items_by_fulfillment_order");
	const json_t *foid = json_object_get(payload, "fulfillment_order_id");
	const json_t *fol = json_object_get(payload, "fulfillment_order_line_items");
	json_t *entry, *id;

	*bad = 0;
	if (json_is_array(lbfo) && json_array_size(lbfo) > 0)
		return json_deep_copy(lbfo);
	if (foid == NULL || json_is_null(foid))
		return NULL;
	id = id_json(foid);
	if (id == NULL) {
		*bad = 1;
		hub_error_set(err, "fulfillment_order_id",
			      "payload.fulfillment_order_id must be an id (number or string)");
		return NULL;
	}
	entry = json_pack("{s:o}", "fulfillment_order_id", id);
	if (entry != NULL && json_is_array(fol) && json_array_size(fol) > 0)
		json_object_set_new(entry, "fulfillment_order_line_items", json_deep_copy(fol));
	return entry != NULL ? json_pack("[o]", entry) : NULL;
}

/* {"number","company","url"} from the payload; NULL when no tracking number. */
static json_t *tracking_info(const json_t *payload, struct hub_error *err)
{
	const char *number = NULL, *carrier = NULL, *company = NULL, *url = NULL;
	json_t *ti;

	if (hub_json_str_opt(payload, "tracking_number", &number, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "carrier", &carrier, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "tracking_company", &company, "payload", err) < 0 ||
	    hub_json_str_opt(payload, "tracking_url", &url, "payload", err) < 0)
		return NULL;
	if (number == NULL || number[0] == '\0') {
		hub_error_set(err, "tracking_number", "payload.tracking_number is required");
		return NULL;
	}
	if (company == NULL || company[0] == '\0')
		company = shopify_tracking_company(carrier);
	ti = json_pack("{s:s}", "number", number);
	if (ti != NULL && company != NULL && company[0] != '\0')
		json_object_set_new(ti, "company", json_string(company));
	if (ti != NULL && url != NULL && url[0] != '\0')
		json_object_set_new(ti, "url", json_string(url));
	return ti;
}

/* notify_customer from the payload; Shopify's own default is false. */
static int notify_customer(const json_t *payload)
{
	return json_is_true(json_object_get(payload, "notify_customer"));
}

/* Sets a JSON body on a POST request to url. */
static int set_post(const struct shopify *s, struct hub_msg *req, const char *url, json_t *body,
		    struct hub_error *err)
{
	char *text;
	int rc;

	if (body == NULL || url == NULL) {
		hub_error_set(err, "request", "out of memory building the request");
		return HUB_FATAL;
	}
	text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL) {
		hub_error_set(err, "request", "out of memory building the request body");
		return HUB_FATAL;
	}
	rc = s->host->msg_set_request(req, "POST", url) < 0 ||
	     s->host->msg_set_body(req, text, strlen(text)) < 0 ||
	     s->host->msg_add_header(req, "Content-Type", "application/json") < 0;
	free(text);
	if (rc) {
		hub_error_set(err, "request", "the host refused the request");
		return HUB_FATAL;
	}
	return add_auth(s, req, err);
}

static int build_push_tracking(struct shopify *s, const json_t *payload, struct hub_msg *req,
			       struct hub_error *err)
{
	json_t *fos, *ti, *f, *body;
	const char *message = NULL;
	struct hub_url url;
	char oid[64];
	int bad, rc;

	ti = tracking_info(payload, err);
	if (ti == NULL)
		return HUB_INVALID;
	fos = payload_fulfillment_orders(payload, err, &bad);
	if (bad) {
		json_decref(ti);
		return HUB_INVALID;
	}
	if (fos == NULL) {
		/* Step 1: find the order's open fulfillment orders; read_action
		 * queues step 2 with them. */
		json_decref(ti);
		rc = need_id(payload, "order_external_id", "push_tracking", oid, sizeof(oid), err);
		if (rc != HUB_OK)
			return rc;
		admin_url(s, &url);
		hub_url_path(&url, "/orders");
		hub_url_segment(&url, oid);
		hub_url_path(&url, "/fulfillment_orders.json");
		if (hub_url_str(&url) == NULL ||
		    s->host->msg_set_request(req, "GET", hub_url_str(&url)) < 0) {
			hub_url_release(&url);
			hub_error_set(err, "request", "could not build the fulfillment orders URL");
			return HUB_FATAL;
		}
		hub_url_release(&url);
		return add_auth(s, req, err);
	}
	if (hub_json_str_opt(payload, "message", &message, "payload", err) < 0) {
		json_decref(ti);
		json_decref(fos);
		return HUB_INVALID;
	}
	f = json_object();
	if (f != NULL && message != NULL && message[0] != '\0')
		json_object_set_new(f, "message", json_string(message));
	if (f != NULL) {
		json_object_set_new(f, "notify_customer", json_boolean(notify_customer(payload)));
		json_object_set_new(f, "tracking_info", ti);
		json_object_set_new(f, "line_items_by_fulfillment_order", fos);
	} else {
		json_decref(ti);
		json_decref(fos);
	}
	body = f != NULL ? json_pack("{s:o}", "fulfillment", f) : NULL;
	admin_url(s, &url);
	hub_url_path(&url, "/fulfillments.json");
	rc = set_post(s, req, hub_url_str(&url), body, err);
	hub_url_release(&url);
	json_decref(body);
	return rc;
}

static int build_update_tracking(struct shopify *s, const json_t *payload, struct hub_msg *req,
				 struct hub_error *err)
{
	json_t *ti, *body;
	struct hub_url url;
	char fid[64];
	int rc;

	rc = need_id(payload, "fulfillment_id", "update_tracking", fid, sizeof(fid), err);
	if (rc != HUB_OK)
		return rc;
	ti = tracking_info(payload, err);
	if (ti == NULL)
		return HUB_INVALID;
	body = json_pack("{s:{s:b, s:o}}", "fulfillment", "notify_customer",
			 notify_customer(payload), "tracking_info", ti);
	admin_url(s, &url);
	hub_url_path(&url, "/fulfillments");
	hub_url_segment(&url, fid);
	hub_url_path(&url, "/update_tracking.json");
	rc = set_post(s, req, hub_url_str(&url), body, err);
	hub_url_release(&url);
	json_decref(body);
	return rc;
}

static int build_push_status(struct shopify *s, const json_t *payload, struct hub_msg *req,
			     struct hub_error *err)
{
	const char *status = NULL, *event, *message = NULL;
	json_t *ev, *body;
	struct hub_url url;
	char oid[64], fid[64], when[32];
	int64_t ms;
	int rc;

	rc = need_id(payload, "order_external_id", "push_status", oid, sizeof(oid), err);
	if (rc == HUB_OK)
		rc = need_id(payload, "fulfillment_id", "push_status", fid, sizeof(fid), err);
	if (rc != HUB_OK)
		return rc;
	if (hub_json_str(payload, "status", &status, "payload", err) < 0)
		return HUB_INVALID;
	event = shopify_event_status(status);
	if (event == NULL) {
		hub_error_set(err, "status",
			      "payload.status \"%.40s\" has no Shopify fulfillment event status "
			      "(use in_transit, out_for_delivery, delivered, delivery_failed, "
			      "available_for_pickup, exception ...)", status);
		return HUB_INVALID;
	}
	ev = json_pack("{s:s}", "status", event);
	if (ev == NULL) {
		hub_error_set(err, "request", "out of memory");
		return HUB_FATAL;
	}
	ms = NO_TIME;
	if (hub_json_time_opt(payload, "happened_at", 0, &ms, "payload", err) < 0)
		goto invalid;
	if (ms != NO_TIME && hub_time_format(ms, when, sizeof(when)) == 0)
		json_object_set_new(ev, "happened_at", json_string(when));
	ms = NO_TIME;
	if (hub_json_time_opt(payload, "estimated_delivery_at", 0, &ms, "payload", err) < 0)
		goto invalid;
	if (ms != NO_TIME && hub_time_format(ms, when, sizeof(when)) == 0)
		json_object_set_new(ev, "estimated_delivery_at", json_string(when));
	if (hub_json_str_opt(payload, "message", &message, "payload", err) < 0)
		goto invalid;
	if (message != NULL && message[0] != '\0')
		json_object_set_new(ev, "message", json_string(message));
	body = json_pack("{s:o}", "event", ev);
	admin_url(s, &url);
	hub_url_path(&url, "/orders");
	hub_url_segment(&url, oid);
	hub_url_path(&url, "/fulfillments");
	hub_url_segment(&url, fid);
	hub_url_path(&url, "/events.json");
	rc = set_post(s, req, hub_url_str(&url), body, err);
	hub_url_release(&url);
	json_decref(body);
	return rc;
invalid:
	json_decref(ev);
	return HUB_INVALID;
}

int shopify_build_action(void *state, const char *action, const json_t *payload,
			 struct hub_msg *req, struct hub_error *err)
{
	struct shopify *s = state;

	if (action == NULL)
		return HUB_IGNORED;
	if (!json_is_object(payload) && (strcmp(action, "push_tracking") == 0 ||
					 strcmp(action, "update_tracking") == 0 ||
					 strcmp(action, "push_status") == 0)) {
		hub_error_set(err, "payload", "%s needs a JSON object payload", action);
		return HUB_INVALID;
	}
	if (strcmp(action, "push_tracking") == 0)
		return build_push_tracking(s, payload, req, err);
	if (strcmp(action, "update_tracking") == 0)
		return build_update_tracking(s, payload, req, err);
	if (strcmp(action, "push_status") == 0)
		return build_push_status(s, payload, req, err);
	return HUB_IGNORED;
}

/* Whether a fulfillment order can take a new fulfillment. */
static int fo_open(const json_t *fo)
{
	const char *status = json_string_value(json_object_get(fo, "status"));
	const json_t *actions = json_object_get(fo, "supported_actions");
	const json_t *a;
	size_t i;

	if (status == NULL || (strcmp(status, "open") != 0 && strcmp(status, "in_progress") != 0))
		return 0;
	if (!json_is_array(actions))
		return 1;
	json_array_foreach(actions, i, a)
		if (json_is_string(a) && strcmp(json_string_value(a), "create_fulfillment") == 0)
			return 1;
	return 0;
}

/* Finds the fulfillment order line for order line `line_id` among open fos;
 * returns the fo (borrowed) and sets *fol. */
static const json_t *fo_for_line(const json_t *fos, const char *line_id, const json_t **fol)
{
	const json_t *fo, *lines, *l;
	size_t i, j;
	char buf[64];

	json_array_foreach(fos, i, fo) {
		if (!fo_open(fo))
			continue;
		lines = json_object_get(fo, "line_items");
		json_array_foreach(lines, j, l) {
			if (hub_json_id(l, "line_item_id", buf, sizeof(buf), NULL, NULL) == 0 &&
			    strcmp(buf, line_id) == 0) {
				*fol = l;
				return fo;
			}
		}
	}
	return NULL;
}

/* Adds {id, quantity} under fo's entry of lbfo (creating the entry). */
static int lbfo_add(json_t *lbfo, const json_t *fo, const json_t *fol, int64_t qty)
{
	const json_t *foid = json_object_get(fo, "id");
	json_t *entry = NULL, *e, *list;
	size_t i;

	json_array_foreach(lbfo, i, e)
		if (json_equal(json_object_get(e, "fulfillment_order_id"), foid))
			entry = e;
	if (entry == NULL) {
		entry = json_pack("{s:o, s:[]}", "fulfillment_order_id", id_json(foid),
				  "fulfillment_order_line_items");
		if (entry == NULL || json_array_append_new(lbfo, entry) < 0)
			return -1;
	}
	list = json_object_get(entry, "fulfillment_order_line_items");
	return json_array_append_new(list, json_pack("{s:o, s:I}", "id",
						     id_json(json_object_get(fol, "id")),
						     "quantity", (json_int_t)qty));
}

/* Step 1 of push_tracking: from the order's fulfillment orders, queue the
 * push_tracking that creates the fulfillment. */
static int read_fulfillment_orders(struct shopify *s, const json_t *payload, const json_t *body,
				   struct hub_call *call, struct hub_error *err)
{
	const json_t *fos = json_object_get(body, "fulfillment_orders");
	const json_t *lines = json_object_get(payload, "line_items");
	const json_t *fo, *line, *fol;
	json_t *lbfo, *next;
	char oid[64] = "", lid[64];
	size_t i;

	(void)hub_json_id(payload, "order_external_id", oid, sizeof(oid), NULL, NULL);
	if (!json_is_array(fos)) {
		hub_error_set(err, "fulfillment_orders",
			      "the response has no \"fulfillment_orders\" array");
		return HUB_RETRY;
	}
	lbfo = json_array();
	if (lbfo == NULL) {
		hub_error_set(err, "payload", "out of memory");
		return HUB_RETRY;
	}
	if (json_is_array(lines) && json_array_size(lines) > 0) {
		json_array_foreach(lines, i, line) {
			int64_t qty = 1;

			if (hub_json_id(line, "line_external_id", lid, sizeof(lid), NULL, NULL) < 0 &&
			    hub_json_id(line, "id", lid, sizeof(lid), NULL, NULL) < 0) {
				hub_error_set(err, "line_items",
					      "payload.line_items[%zu] names no line_external_id", i);
				goto fatal;
			}
			(void)hub_json_int_opt(line, "quantity", &qty, NULL, NULL);
			fo = fo_for_line(fos, lid, &fol);
			if (fo == NULL) {
				hub_error_set(err, "line_items",
					      "order %s line %s is in no open fulfillment order: "
					      "it is fulfilled already or not fulfillable", oid, lid);
				goto fatal;
			}
			if (lbfo_add(lbfo, fo, fol, qty) < 0) {
				hub_error_set(err, "payload", "out of memory");
				goto fatal;
			}
		}
	} else {
		json_array_foreach(fos, i, fo) {
			if (!fo_open(fo))
				continue;
			json_array_append_new(lbfo, json_pack("{s:o}", "fulfillment_order_id",
							      id_json(json_object_get(fo, "id"))));
		}
	}
	if (json_array_size(lbfo) == 0) {
		hub_error_set(err, "fulfillment_orders",
			      "order %s has no open fulfillment order: it is fulfilled already, "
			      "on hold, or fulfilled by a fulfillment service; use update_tracking "
			      "on its fulfillment instead", oid);
		goto fatal;
	}
	next = json_deep_copy(payload);
	if (next == NULL) {
		json_decref(lbfo);
		hub_error_set(err, "payload", "out of memory");
		return HUB_RETRY;
	}
	json_object_set_new(next, "line_items_by_fulfillment_order", lbfo);
	if (s->host->queue_action(call, "push_tracking", next) < 0) {
		hub_error_set(err, "payload", "the host refused to queue push_tracking");
		return HUB_RETRY;
	}
	return HUB_OK;
fatal:
	json_decref(lbfo);
	return HUB_FATAL;
}

/* Emits the shipment of a {"fulfillment": {...}} response. */
static int read_fulfillment(struct shopify *s, const json_t *payload, const json_t *body,
			    struct hub_call *call, struct hub_error *err)
{
	const json_t *f = json_object_get(body, "fulfillment");
	json_t *ship;
	char oid[64] = "";

	if (!json_is_object(f)) {
		hub_error_set(err, "fulfillment", "the response has no \"fulfillment\" object");
		return HUB_RETRY;
	}
	(void)hub_json_id(payload, "order_external_id", oid, sizeof(oid), NULL, NULL);
	if (shopify_map_fulfillment(f, oid[0] != '\0' ? oid : NULL, &ship, err) < 0)
		return HUB_FATAL;
	if (s->host->emit(call, HUB_RECORD_SHIPMENT, ship) < 0) {
		hub_error_set(err, "fulfillment", "the host refused a shipment record");
		return HUB_FATAL;
	}
	return HUB_OK;
}

int shopify_read_action(void *state, const char *action, const json_t *payload,
			const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct shopify *s = state;
	json_t *body = NULL;
	int rc, bad = 0;

	if (action == NULL || (strcmp(action, "push_tracking") != 0 &&
			       strcmp(action, "update_tracking") != 0 &&
			       strcmp(action, "push_status") != 0))
		return HUB_IGNORED;
	rc = shopify_check_status(s, resp, action, err);
	if (rc != HUB_OK)
		return rc;
	rc = shopify_parse_body(s, resp, action, &body, err);
	if (rc != HUB_OK)
		return rc;
	if (strcmp(action, "push_tracking") == 0) {
		json_t *fos = payload_fulfillment_orders(payload, err, &bad);

		if (fos == NULL && !bad)
			rc = read_fulfillment_orders(s, payload, body, call, err);
		else if (bad)
			rc = HUB_INVALID;
		else
			rc = read_fulfillment(s, payload, body, call, err);
		json_decref(fos);
	} else if (strcmp(action, "update_tracking") == 0) {
		rc = read_fulfillment(s, payload, body, call, err);
	} else if (!json_is_object(json_object_get(body, "fulfillment_event"))) {
		hub_error_set(err, "fulfillment_event",
			      "the response has no \"fulfillment_event\" object");
		rc = HUB_RETRY;
	}
	json_decref(body);
	return rc;
}
