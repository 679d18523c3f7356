/*
 * woo_api.c - the WooCommerce REST v3 requests and responses of the
 * "orders" stream.
 *
 * Request: GET {store_url}/wp-json/wc/v3/orders with modified_after (UTC,
 * dates_are_gmt=true), orderby=modified, order=asc, per_page=100 and page.
 * Over HTTPS it carries HTTP Basic credentials; over plain HTTP it is signed
 * with OAuth 1.0a one-legged (HMAC-SHA256, key "consumer_secret&", the
 * oauth_* parameters in the query string), the way WooCommerce's own
 * WC_REST_Authentication checks it. The nonce is derived from the clock and
 * the URL, so a replayed case builds the same request.
 *
 * Cursor: {"modified_after": time|null, "page": n, "max_seen": time|null}.
 * WooCommerce filters with "modified after" (exclusive, one-second
 * resolution), so a page boundary is moved forward by keyset rather than by
 * page number whenever it can: after a page, the next request asks for
 * modified_after = (newest date_modified_gmt seen) - 1 s, page 1. Orders
 * modified during a pass therefore move behind the window instead of
 * shifting unseen orders onto pages already read, and the orders of the
 * boundary second are read twice rather than never (records are upserts, so
 * a repeat is harmless). Only when a whole page shares one second does the
 * cursor fall back to page + 1. When the last page is read, the window
 * starts over from the same overlap point. The cursor is committed with the
 * page's records, so a crash replays a page and never skips one.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "woo.h"

#define NO_TIME INT64_MIN

/* The position a cursor names. */
struct woo_cursor {
	int64_t after_ms;    /* modified_after, or NO_TIME for "from the start" */
	int64_t page;        /* 1-based */
	int64_t max_seen_ms; /* newest date_modified_gmt seen so far, or NO_TIME */
};

/* One query parameter; both strings unescaped and owned by the caller. */
struct qparam {
	const char *key;
	const char *value;
};

static int cmp_qparam(const void *a, const void *b)
{
	return strcmp(((const struct qparam *)a)->key, ((const struct qparam *)b)->key);
}

/* Reads an optional time string of the cursor. */
static int cursor_time(const json_t *cursor, const char *key, int64_t *out,
		       struct hub_error *err)
{
	*out = NO_TIME;
	return hub_json_time_opt(cursor, key, 0, out, "cursor", err);
}

/* Parses the host's cursor: NULL (never synced), {"since": time} (backfill
 * start) or the plugin's own shape. Returns 0 or -1 with err set. */
static int cursor_parse(const json_t *cursor, struct woo_cursor *c, struct hub_error *err)
{
	c->after_ms = NO_TIME;
	c->page = 1;
	c->max_seen_ms = NO_TIME;
	if (cursor == NULL || json_is_null(cursor))
		return 0;
	if (!json_is_object(cursor))
		return hub_error_set(err, "cursor", "cursor: expected an object");
	if (json_object_get(cursor, "modified_after") == NULL &&
	    json_object_get(cursor, "since") != NULL)
		return cursor_time(cursor, "since", &c->after_ms, err);
	if (cursor_time(cursor, "modified_after", &c->after_ms, err) < 0 ||
	    cursor_time(cursor, "max_seen", &c->max_seen_ms, err) < 0 ||
	    hub_json_int_opt(cursor, "page", &c->page, "cursor", err) < 0)
		return -1;
	if (c->page < 1 || c->page > 1000000)
		return hub_error_set(err, "cursor.page", "cursor.page: %lld is out of range",
				     (long long)c->page);
	return 0;
}

/* Builds the plugin's cursor object. Returns a new reference or NULL. */
static json_t *cursor_build(const struct woo_cursor *c)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if ((c->after_ms == NO_TIME ? json_object_set_new(o, "modified_after", json_null())
				    : hub_json_set_time(o, "modified_after", c->after_ms)) < 0 ||
	    json_object_set_new(o, "page", json_integer(c->page)) < 0 ||
	    (c->max_seen_ms == NO_TIME ? json_object_set_new(o, "max_seen", json_null())
				       : hub_json_set_time(o, "max_seen", c->max_seen_ms)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Formats ms as WooCommerce's "YYYY-MM-DDTHH:MM:SS" (no offset, seconds
 * truncated downwards: an earlier bound only re-reads, never skips). */
static int format_wc_time(int64_t ms, char *buf, size_t size)
{
	int64_t floor_ms = ms - (((ms % 1000) + 1000) % 1000);

	if (hub_time_format(floor_ms, buf, size) < 0 || strlen(buf) < 19)
		return -1;
	buf[19] = '\0';
	return 0;
}

/* Joins params (already sorted) as "k=v&k=v" with RFC 3986 escaping into a
 * new string; NULL when out of memory. */
static char *join_query(const struct qparam *params, size_t n)
{
	struct hub_url q;

	hub_url_init(&q, "");
	for (size_t i = 0; i < n; i++)
		hub_url_query(&q, params[i].key, params[i].value);
	/* hub_url_query writes a leading '?': drop it. */
	if (hub_url_str(&q) == NULL) {
		hub_url_release(&q);
		return NULL;
	}
	{
		char *s = hub_url_detach(&q);

		if (s != NULL && s[0] == '?')
			memmove(s, s + 1, strlen(s));
		return s;
	}
}

/* Signs an OAuth 1.0a request: appends the oauth_* parameters to params
 * (room for 4 more is required), sorts them and returns the final query
 * string including oauth_signature (new string), or NULL with err. */
static char *oauth1_query(const struct woo *w, const char *method, const char *base_url,
			  struct qparam *params, size_t *n, struct hub_error *err)
{
	char ts[32], nonce_hex[65], sig[64], *unsigned_q = NULL, *esc_url = NULL;
	char *esc_q = NULL, *base = NULL, *key = NULL, *seed = NULL, *final = NULL;
	char *esc_sig = NULL;
	int64_t now = w->host->now_ms();
	size_t len;

	snprintf(ts, sizeof(ts), "%lld", (long long)(now / 1000));

	/* The nonce must be unique per consumer key within 15 minutes; the
	 * millisecond clock plus the unsigned URL is, and keeps cases
	 * reproducible. Keyed by the secret so it cannot be predicted. */
	qsort(params, *n, sizeof(*params), cmp_qparam);
	unsigned_q = join_query(params, *n);
	if (unsigned_q == NULL)
		goto oom;
	len = strlen(base_url) + strlen(unsigned_q) + 40;
	seed = malloc(len);
	if (seed == NULL)
		goto oom;
	snprintf(seed, len, "%lld %s?%s", (long long)now, base_url, unsigned_q);
	if (hub_hmac_sha256_hex(w->consumer_secret, strlen(w->consumer_secret), seed,
				strlen(seed), nonce_hex, sizeof(nonce_hex)) < 0)
		goto oom;
	nonce_hex[32] = '\0';

	params[(*n)++] = (struct qparam){"oauth_consumer_key", w->consumer_key};
	params[(*n)++] = (struct qparam){"oauth_nonce", nonce_hex};
	params[(*n)++] = (struct qparam){"oauth_signature_method", "HMAC-SHA256"};
	params[(*n)++] = (struct qparam){"oauth_timestamp", ts};
	qsort(params, *n, sizeof(*params), cmp_qparam);
	free(unsigned_q);
	unsigned_q = join_query(params, *n);
	esc_url = hub_url_escape(base_url);
	if (unsigned_q == NULL || esc_url == NULL)
		goto oom;
	esc_q = hub_url_escape(unsigned_q);
	if (esc_q == NULL)
		goto oom;
	/* Signature base string: METHOD & enc(URL) & enc(sorted params). */
	len = strlen(method) + strlen(esc_url) + strlen(esc_q) + 3;
	base = malloc(len);
	if (base == NULL)
		goto oom;
	snprintf(base, len, "%s&%s&%s", method, esc_url, esc_q);
	len = strlen(w->consumer_secret) + 2;
	key = malloc(len);
	if (key == NULL)
		goto oom;
	snprintf(key, len, "%s&", w->consumer_secret);
	if (hub_hmac_sha256_base64(key, strlen(key), base, strlen(base), sig, sizeof(sig)) < 0)
		goto oom;
	esc_sig = hub_url_escape(sig);
	if (esc_sig == NULL)
		goto oom;
	len = strlen(unsigned_q) + strlen(esc_sig) + 20;
	final = malloc(len);
	if (final == NULL)
		goto oom;
	snprintf(final, len, "%s&oauth_signature=%s", unsigned_q, esc_sig);
	goto out;
oom:
	hub_error_set(err, NULL, "out of memory while signing the request");
out:
	free(unsigned_q);
	free(esc_url);
	free(esc_q);
	free(base);
	if (key != NULL) {
		memset(key, 0, strlen(key));
		free(key);
	}
	free(seed);
	free(esc_sig);
	return final;
}

/* Adds "Authorization: Basic base64(key:secret)". */
static int add_basic_auth(const struct woo *w, struct hub_msg *req)
{
	size_t len = strlen(w->consumer_key) + strlen(w->consumer_secret) + 2;
	char *pair = malloc(len), *b64 = NULL, *header = NULL;
	int rc = -1;

	if (pair == NULL)
		return -1;
	snprintf(pair, len, "%s:%s", w->consumer_key, w->consumer_secret);
	b64 = hub_base64_encode(pair, strlen(pair));
	if (b64 == NULL)
		goto out;
	len = strlen(b64) + 8;
	header = malloc(len);
	if (header == NULL)
		goto out;
	snprintf(header, len, "Basic %s", b64);
	rc = w->host->msg_add_header(req, "Authorization", header);
out:
	memset(pair, 0, strlen(pair));
	free(pair);
	if (b64 != NULL) {
		memset(b64, 0, strlen(b64));
		free(b64);
	}
	if (header != NULL) {
		memset(header, 0, strlen(header));
		free(header);
	}
	return rc;
}

int woo_build_request(void *state, const char *stream, const json_t *cursor,
		      struct hub_msg *req, struct hub_error *err)
{
	struct woo *w = state;
	struct woo_cursor c;
	struct qparam params[12];
	size_t n = 0;
	char after[32], page[24], per_page[16], *base_url = NULL, *query = NULL, *url = NULL;
	size_t len;
	int rc = HUB_FATAL;

	if (strcmp(stream, WOO_STREAM_ORDERS) != 0) {
		hub_error_set(err, "stream", "unknown stream \"%s\" (this plugin serves \"orders\")",
			      stream);
		return HUB_INVALID;
	}
	if (cursor_parse(cursor, &c, err) < 0)
		return HUB_INVALID;

	snprintf(page, sizeof(page), "%lld", (long long)c.page);
	snprintf(per_page, sizeof(per_page), "%d", WOO_PER_PAGE);
	params[n++] = (struct qparam){"dates_are_gmt", "true"};
	if (c.after_ms != NO_TIME) {
		if (format_wc_time(c.after_ms, after, sizeof(after)) < 0) {
			hub_error_set(err, "cursor.modified_after", "cursor time out of range");
			return HUB_INVALID;
		}
		params[n++] = (struct qparam){"modified_after", after};
	}
	params[n++] = (struct qparam){"order", "asc"};
	params[n++] = (struct qparam){"orderby", "modified"};
	params[n++] = (struct qparam){"page", page};
	params[n++] = (struct qparam){"per_page", per_page};

	len = strlen(w->store_url) + 32;
	base_url = malloc(len);
	if (base_url == NULL)
		goto oom;
	snprintf(base_url, len, "%s/wp-json/wc/v3/orders", w->store_url);

	if (w->auth == WOO_AUTH_OAUTH1) {
		query = oauth1_query(w, "GET", base_url, params, &n, err);
		if (query == NULL)
			goto out;
	} else {
		qsort(params, n, sizeof(*params), cmp_qparam);
		query = join_query(params, n);
		if (query == NULL)
			goto oom;
	}
	len = strlen(base_url) + strlen(query) + 2;
	url = malloc(len);
	if (url == NULL)
		goto oom;
	snprintf(url, len, "%s?%s", base_url, query);

	if (w->host->msg_set_request(req, "GET", url) < 0 ||
	    w->host->msg_add_header(req, "Accept", "application/json") < 0 ||
	    w->host->msg_set_operation(req, WOO_BUCKET_ORDERS) < 0 ||
	    (w->auth == WOO_AUTH_BASIC && add_basic_auth(w, req) < 0)) {
		hub_error_set(err, NULL, "the host refused the request being built");
		goto out;
	}
	rc = HUB_OK;
	goto out;
oom:
	hub_error_set(err, NULL, "out of memory while building the request");
out:
	free(base_url);
	free(query);
	free(url);
	return rc;
}

int woo_classify_status(const struct woo *w, const struct hub_msg *resp,
			struct hub_error *err)
{
	int status = w->host->msg_status(resp);
	size_t len = 0;
	const char *body = w->host->msg_body(resp, &len);
	const char *code = "", *message = "";
	json_t *doc = hub_json_loadb(body, len, 0, NULL);
	int rc;

	/* WordPress errors are {"code":"...","message":"...","data":{...}}. */
	if (json_is_object(doc)) {
		const char *s;

		if ((s = json_string_value(json_object_get(doc, "code"))) != NULL)
			code = s;
		if ((s = json_string_value(json_object_get(doc, "message"))) != NULL)
			message = s;
	}
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599)) {
		hub_error_set(err, "status", "WooCommerce answered %d%s%s%s%s: will retry", status,
			      *code ? " " : "", code, *message ? ": " : "", message);
		rc = HUB_RETRY;
	} else if (status == 401 || status == 403) {
		hub_error_set(err, "status",
			      "WooCommerce refused the credentials (%d %s%s%s): check consumer_key "
			      "and consumer_secret, that the key has Read access, and that the "
			      "store URL's scheme matches auth (basic over https, oauth1 over http)",
			      status, code, *message ? ": " : "", message);
		rc = HUB_FATAL;
	} else if (status == 404) {
		hub_error_set(err, "status",
			      "no WooCommerce REST API at %s/wp-json/wc/v3 (404 %s%s%s): check "
			      "store_url and that WordPress permalinks are not \"plain\"",
			      w->store_url, code, *message ? ": " : "", message);
		rc = HUB_FATAL;
	} else {
		hub_error_set(err, "status", "WooCommerce answered %d %s%s%s", status, code,
			      *message ? ": " : "", message);
		rc = HUB_FATAL;
	}
	if (err != NULL)
		err->upstream_status = status;
	json_decref(doc);
	return rc;
}

/* Reads X-WP-TotalPages: its value, or -1 when absent or malformed. */
static long long total_pages(const struct woo *w, const struct hub_msg *resp)
{
	const char *h = w->host->msg_header(resp, "X-WP-TotalPages");
	char *end;
	long long n;

	if (h == NULL)
		return -1;
	errno = 0;
	n = strtoll(h, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno != 0 || end == h || *end != '\0' || n < 0)
		return -1;
	return n;
}

int woo_read_response(void *state, const char *stream, const json_t *cursor,
		      const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct woo *w = state;
	struct woo_cursor c, next;
	json_t *doc = NULL, *order, *cur;
	json_error_t jerr;
	const char *body;
	size_t len = 0, i;
	long long pages;
	int status, more, rc = HUB_INVALID;

	if (strcmp(stream, WOO_STREAM_ORDERS) != 0) {
		hub_error_set(err, "stream", "unknown stream \"%s\"", stream);
		return HUB_INVALID;
	}
	if (cursor_parse(cursor, &c, err) < 0)
		return HUB_INVALID;
	status = w->host->msg_status(resp);
	if (status != 200)
		return woo_classify_status(w, resp, err);

	body = w->host->msg_body(resp, &len);
	doc = hub_json_loadb(body, len, 0, &jerr);
	if (doc == NULL) {
		/* A proxy's HTML page or a cut connection: worth another try. */
		hub_error_set(err, "body", "response body is not JSON (%s at byte %d): will retry",
			      jerr.text, jerr.position);
		return HUB_RETRY;
	}
	if (!json_is_array(doc)) {
		hub_error_set(err, "body", "expected a JSON array of orders, got %s",
			      json_is_object(doc) ? "an object" : "a scalar");
		goto out;
	}

	next = c;
	json_array_foreach(doc, i, order) {
		char ctx[32];
		int64_t modified = NO_TIME;
		json_t *rec;

		snprintf(ctx, sizeof(ctx), "orders[%zu]", i);
		rec = woo_map_order(order, ctx, &modified, err);
		if (rec == NULL)
			goto out;
		if (w->host->emit(call, HUB_RECORD_ORDER, rec) < 0) {
			hub_error_set(err, ctx, "the host refused an order record");
			rc = HUB_FATAL;
			goto out;
		}
		if (next.max_seen_ms == NO_TIME || modified > next.max_seen_ms)
			next.max_seen_ms = modified;
	}

	pages = total_pages(w, resp);
	if (pages >= 0)
		more = c.page < pages && json_array_size(doc) > 0;
	else
		more = json_array_size(doc) >= WOO_PER_PAGE;

	if (next.max_seen_ms != NO_TIME) {
		/* Overlap by one second: "after" is exclusive and WooCommerce
		 * dates have one-second resolution. */
		int64_t overlap = next.max_seen_ms - 1000;

		if (c.after_ms == NO_TIME || overlap > c.after_ms) {
			next.after_ms = overlap;
			next.page = 1;
		} else if (more) {
			next.page = c.page + 1; /* a whole page in one second */
		} else {
			next.page = 1;
		}
	} else {
		next.page = 1;
	}
	if (!more)
		next.page = 1;

	cur = cursor_build(&next);
	if (cur == NULL || w->host->set_cursor(call, cur) < 0) {
		hub_error_set(err, "cursor", "could not hand the next cursor to the host");
		rc = HUB_FATAL;
		goto out;
	}
	w->host->set_more(call, more);
	rc = HUB_OK;
out:
	json_decref(doc);
	return rc;
}

void woo_read_limits(void *state, const char *operation, const struct hub_msg *resp,
		     struct hub_call *call)
{
	struct woo *w = state;
	const char *h = w->host->msg_header(resp, "Retry-After");
	char *end;
	double secs;

	/* WooCommerce itself sends no limit headers; hosts, proxies and WAFs
	 * in front of it answer 429/503 with Retry-After in seconds. */
	if (h == NULL)
		return;
	errno = 0;
	secs = strtod(h, &end);
	if (errno != 0 || end == h || secs < 0 || secs > 86400)
		return;
	w->host->observe_limit(call, operation, 0, 0, 0, (int64_t)(secs * 1000.0));
}
