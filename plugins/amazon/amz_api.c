/*
 * amz_api.c - the "orders" stream over the Orders API 2026-01-01
 * (searchOrders), SP-API failure classes and rate-limit headers.
 *
 * Request: GET {api_base}/orders/2026-01-01/orders?lastUpdatedAfter=...
 * &marketplaceIds=A,B&includedData=...&maxResultsPerPage=100
 * [&paginationToken=...] with x-amz-access-token (the host's current LWA
 * token) and x-amz-date. No SigV4 signature is needed.
 *
 * Cursor: {"updated_after": time, "next_token": str|null,
 * "updated_before": time|null, "max_seen": time|null}. While a response
 * carries pagination.nextToken the next request repeats the same
 * lastUpdatedAfter with paginationToken (the model requires the other
 * parameters unchanged; tokens live 24 h). On the last page the window
 * moves to the response's lastUpdatedBefore - Amazon's own upper bound of
 * what it returned, exclusive, while lastUpdatedAfter is inclusive - so
 * consecutive windows neither overlap nor leave a gap. Without that field
 * the window moves to the newest lastUpdatedTime seen (re-reading that
 * order once). It never moves backwards. A 400 on a page request (an
 * expired token) restarts the window from updated_after instead of
 * blocking the stream.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

#include "amz.h"

#define NO_TIME INT64_MIN

/* Datasets requested with each order: everything amz_map.c reads. */
#define AMZ_INCLUDED_DATA "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,CANCELLATION,PACKAGES"

struct amz_cursor {
	int64_t after_ms;
	const char *next_token; /* borrowed from the cursor JSON */
	int64_t before_ms;
	int64_t max_seen_ms;
};

int amz_format_amz_date(int64_t ms, char *buf, size_t size)
{
	char iso[32];

	/* "2026-01-15T10:00:00.000Z" -> "20260115T100000Z" */
	if (size < 17 || hub_time_format(ms, iso, sizeof(iso)) < 0)
		return -1;
	snprintf(buf, size, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", iso, iso + 5, iso + 8, iso + 11,
		 iso + 14, iso + 17);
	return 0;
}

/* Formats ms as ISO 8601 without fraction, rounded down to the second (an
 * earlier inclusive bound only re-reads). */
static int format_iso_seconds(int64_t ms, char *buf, size_t size)
{
	int64_t floor_ms = ms - (((ms % 1000) + 1000) % 1000);

	if (hub_time_format(floor_ms, buf, size) < 0 || strlen(buf) < 19)
		return -1;
	buf[19] = 'Z';
	buf[20] = '\0';
	return 0;
}

static int cursor_time(const json_t *cursor, const char *key, int64_t *out,
		       struct hub_error *err)
{
	*out = NO_TIME;
	return hub_json_time_opt(cursor, key, 0, out, "cursor", err);
}

/* Parses the host's cursor. NULL: start backfill_days before now. */
static int cursor_parse(const struct amz *a, const json_t *cursor, struct amz_cursor *c,
			struct hub_error *err)
{
	memset(c, 0, sizeof(*c));
	c->after_ms = c->before_ms = c->max_seen_ms = NO_TIME;
	if (cursor != NULL && !json_is_null(cursor)) {
		if (!json_is_object(cursor))
			return hub_error_set(err, "cursor", "cursor: expected an object");
		if (json_object_get(cursor, "updated_after") == NULL &&
		    json_object_get(cursor, "since") != NULL) {
			if (cursor_time(cursor, "since", &c->after_ms, err) < 0)
				return -1;
		} else if (cursor_time(cursor, "updated_after", &c->after_ms, err) < 0 ||
			   cursor_time(cursor, "updated_before", &c->before_ms, err) < 0 ||
			   cursor_time(cursor, "max_seen", &c->max_seen_ms, err) < 0 ||
			   hub_json_str_opt(cursor, "next_token", &c->next_token, "cursor", err) < 0) {
			return -1;
		}
	}
	if (c->after_ms == NO_TIME)
		c->after_ms = a->host->now_ms() - a->backfill_days * 86400000LL;
	if (c->next_token != NULL && *c->next_token == '\0')
		c->next_token = NULL;
	return 0;
}

static int set_time_or_null(json_t *o, const char *key, int64_t ms)
{
	if (ms == NO_TIME)
		return json_object_set_new(o, key, json_null());
	return hub_json_set_time(o, key, ms);
}

static json_t *cursor_build(const struct amz_cursor *c)
{
	json_t *o = json_object();

	if (o == NULL || set_time_or_null(o, "updated_after", c->after_ms) < 0 ||
	    hub_json_set_str(o, "next_token", c->next_token) < 0 ||
	    set_time_or_null(o, "updated_before", c->before_ms) < 0 ||
	    set_time_or_null(o, "max_seen", c->max_seen_ms) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int amz_build_request(void *state, const char *stream, const json_t *cursor,
		      struct hub_msg *req, struct hub_error *err)
{
	struct amz *a = state;
	const struct hub_host *host = a->host;
	const char *token = host->access_token(a->conn);
	struct amz_cursor c;
	struct hub_url url;
	char after[32], date[20];
	int rc = HUB_FATAL;

	if (strcmp(stream, AMZ_STREAM_ORDERS) != 0) {
		hub_error_set(err, "stream", "unknown stream \"%s\" (this plugin serves \"orders\")",
			      stream);
		return HUB_INVALID;
	}
	if (token == NULL || *token == '\0') {
		hub_error_set(err, "access_token", "no LWA access token yet: the refresh_token "
			      "action must run first");
		return HUB_AUTH_EXPIRED;
	}
	if (cursor_parse(a, cursor, &c, err) < 0)
		return HUB_INVALID;
	if (format_iso_seconds(c.after_ms, after, sizeof(after)) < 0 ||
	    amz_format_amz_date(host->now_ms(), date, sizeof(date)) < 0) {
		hub_error_set(err, "cursor.updated_after", "time out of range");
		return HUB_INVALID;
	}

	hub_url_init(&url, a->api_base);
	hub_url_path(&url, "/orders/2026-01-01/orders");
	hub_url_query(&url, "lastUpdatedAfter", after);
	/* Lists are comma-joined; the ids were checked to be [A-Z0-9]. */
	hub_url_path(&url, "&marketplaceIds=");
	hub_url_path(&url, a->marketplaces);
	hub_url_path(&url, "&includedData=" AMZ_INCLUDED_DATA);
	hub_url_query_int(&url, "maxResultsPerPage", AMZ_PAGE_SIZE);
	hub_url_query(&url, "paginationToken", c.next_token);
	if (hub_url_str(&url) == NULL) {
		hub_error_set(err, NULL, "out of memory while building the request");
		goto out;
	}
	if (host->msg_set_request(req, "GET", hub_url_str(&url)) < 0 ||
	    host->msg_add_header(req, "x-amz-access-token", token) < 0 ||
	    host->msg_add_header(req, "x-amz-date", date) < 0 ||
	    host->msg_add_header(req, "Accept", "application/json") < 0 ||
	    host->msg_set_operation(req, AMZ_BUCKET_SEARCH) < 0) {
		hub_error_set(err, NULL, "the host refused the request being built");
		goto out;
	}
	rc = HUB_OK;
out:
	hub_url_release(&url);
	return rc;
}

/* Whether haystack contains needle, ignoring case. */
static int contains_ci(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; haystack != NULL && *haystack != '\0'; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return 1;
	return 0;
}

int amz_classify_status(const struct amz *a, const struct hub_msg *resp, int not_found,
			const char *what, struct hub_error *err)
{
	int status = a->host->msg_status(resp);
	size_t len = 0;
	const char *body = a->host->msg_body(resp, &len);
	const char *code = "", *message = "", *details = "";
	json_t *doc = hub_json_loadb(body, len, 0, NULL), *first;
	int rc;

	/* SP-API errors: {"errors":[{"code","message","details"}]}. */
	first = json_array_get(json_object_get(doc, "errors"), 0);
	if (json_is_object(first)) {
		const char *s;

		if ((s = json_string_value(json_object_get(first, "code"))) != NULL)
			code = s;
		if ((s = json_string_value(json_object_get(first, "message"))) != NULL)
			message = s;
		if ((s = json_string_value(json_object_get(first, "details"))) != NULL)
			details = s;
	}
#define AMZ_ERR_FMT "%s: SP-API answered %d %s%s%s%s%s"
#define AMZ_ERR_ARGS what, status, code, *message ? ": " : "", message, *details ? " - " : "", details
	if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
		hub_error_set(err, "status", AMZ_ERR_FMT ": will retry", AMZ_ERR_ARGS);
		rc = HUB_RETRY;
	} else if (status == 401 ||
		   (status == 403 && (strcmp(code, "Unauthorized") == 0 ||
				      contains_ci(message, "expired") || contains_ci(details, "expired") ||
				      contains_ci(details, "access token")))) {
		hub_error_set(err, "status", AMZ_ERR_FMT ": the access token needs a refresh",
			      AMZ_ERR_ARGS);
		rc = HUB_AUTH_EXPIRED;
	} else if (status == 403) {
		hub_error_set(err, "status", AMZ_ERR_FMT ": check the app's roles and the "
			      "seller's authorization", AMZ_ERR_ARGS);
		rc = HUB_FATAL;
	} else if (status == 404) {
		hub_error_set(err, "status", AMZ_ERR_FMT, AMZ_ERR_ARGS);
		rc = not_found;
	} else {
		hub_error_set(err, "status", AMZ_ERR_FMT, AMZ_ERR_ARGS);
		rc = HUB_FATAL;
	}
#undef AMZ_ERR_FMT
#undef AMZ_ERR_ARGS
	if (err != NULL)
		err->upstream_status = status;
	json_decref(doc);
	return rc;
}

/* Restart after a refused page: same window, no token, more = 1. */
static int restart_window(struct amz *a, const struct amz_cursor *c, struct hub_call *call,
			  struct hub_error *err)
{
	struct amz_cursor next = *c;
	json_t *cur;

	next.next_token = NULL;
	next.before_ms = NO_TIME;
	a->host->log(a->conn, HUB_LOG_WARN, "searchOrders refused the pagination token (%s); "
		     "restarting the window", err != NULL ? err->message : "");
	cur = cursor_build(&next);
	if (cur == NULL || a->host->set_cursor(call, cur) < 0) {
		hub_error_set(err, "cursor", "could not hand the next cursor to the host");
		return HUB_FATAL;
	}
	a->host->set_more(call, 1);
	return HUB_OK;
}

int amz_read_response(void *state, const char *stream, const json_t *cursor,
		      const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct amz *a = state;
	const struct hub_host *host = a->host;
	struct amz_cursor c, next;
	json_t *doc = NULL, *orders = NULL, *pagination = NULL, *order, *cur;
	json_error_t jerr;
	const char *body, *token = NULL;
	int64_t before = NO_TIME;
	size_t len = 0, i;
	int status, rc = HUB_INVALID;

	if (strcmp(stream, AMZ_STREAM_ORDERS) != 0) {
		hub_error_set(err, "stream", "unknown stream \"%s\"", stream);
		return HUB_INVALID;
	}
	if (cursor_parse(a, cursor, &c, err) < 0)
		return HUB_INVALID;
	status = host->msg_status(resp);
	if (status != 200) {
		rc = amz_classify_status(a, resp, HUB_FATAL, "searchOrders", err);
		if (status == 400 && c.next_token != NULL)
			rc = restart_window(a, &c, call, err);
		return rc;
	}
	body = host->msg_body(resp, &len);
	doc = hub_json_loadb(body, len, 0, &jerr);
	if (doc == NULL) {
		hub_error_set(err, "body", "response body is not JSON (%s at byte %d): will retry",
			      jerr.text, jerr.position);
		return HUB_RETRY;
	}
	if (hub_json_array(doc, "orders", &orders, NULL, err) < 0 ||
	    hub_json_object_opt(doc, "pagination", &pagination, NULL, err) < 0 ||
	    (pagination != NULL &&
	     hub_json_str_opt(pagination, "nextToken", &token, "pagination", err) < 0) ||
	    hub_json_time_opt(doc, "lastUpdatedBefore", 0, &before, NULL, err) < 0)
		goto out;

	next = c;
	json_array_foreach(orders, i, order) {
		char ctx[32];
		int64_t updated = NO_TIME;
		int deferred = 0;
		json_t *rec;

		snprintf(ctx, sizeof(ctx), "orders[%zu]", i);
		rec = amz_map_order(order, ctx, &updated, &deferred, err);
		if (updated != NO_TIME && (next.max_seen_ms == NO_TIME || updated > next.max_seen_ms))
			next.max_seen_ms = updated;
		if (rec == NULL && deferred) {
			host->log(a->conn, HUB_LOG_INFO, "%s", err != NULL ? err->message : "deferred");
			continue;
		}
		if (rec == NULL)
			goto out;
		if (host->emit(call, HUB_RECORD_ORDER, rec) < 0) {
			hub_error_set(err, ctx, "the host refused an order record");
			rc = HUB_FATAL;
			goto out;
		}
	}
	if (err != NULL)
		err->message[0] = '\0';

	if (before != NO_TIME)
		next.before_ms = before;
	if (token != NULL && *token != '\0') {
		next.next_token = token;
	} else {
		int64_t to = next.before_ms != NO_TIME ? next.before_ms : next.max_seen_ms;

		if (to != NO_TIME && to > next.after_ms)
			next.after_ms = to;
		next.next_token = NULL;
		next.before_ms = NO_TIME;
	}
	cur = cursor_build(&next);
	if (cur == NULL || host->set_cursor(call, cur) < 0) {
		hub_error_set(err, "cursor", "could not hand the next cursor to the host");
		rc = HUB_FATAL;
		goto out;
	}
	host->set_more(call, next.next_token != NULL);
	rc = HUB_OK;
out:
	json_decref(doc);
	return rc;
}

void amz_read_limits(void *state, const char *operation, const struct hub_msg *resp,
		     struct hub_call *call)
{
	struct amz *a = state;
	const char *limit = a->host->msg_header(resp, "x-amzn-RateLimit-Limit");
	const char *retry = a->host->msg_header(resp, "Retry-After");
	double rate = 0, secs = 0;
	char *end;

	if (limit != NULL) {
		errno = 0;
		rate = strtod(limit, &end);
		if (errno != 0 || end == limit || rate <= 0 || rate > 1e6)
			rate = 0;
	}
	if (retry != NULL) {
		errno = 0;
		secs = strtod(retry, &end);
		if (errno != 0 || end == retry || secs < 0 || secs > 86400)
			secs = 0;
	}
	if (rate > 0 || secs > 0)
		a->host->observe_limit(call, operation, 0, 0, rate, (int64_t)(secs * 1000.0));
}
