/*
 * http.c - the HTTP conventions the carrier plugins share: classifying
 * failed responses for the host's retry policy, OAuth 2.0 client-credentials
 * token requests (UPS, FedEx, USPS), bearer authorization and Retry-After.
 *
 * The plugins never perform I/O: these functions only describe requests in
 * the host's message handles and read the responses the host hands back.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

#include "carrier.h"

#define EXCERPT_BYTES 200

/* Copies up to EXCERPT_BYTES of body into buf (size > EXCERPT_BYTES),
 * control characters turned into spaces, never cutting a UTF-8 sequence. */
static void body_excerpt(const char *body, size_t len, char *buf, size_t size)
{
	size_t n = len < size - 1 ? len : size - 1;
	size_t i;

	if (n > EXCERPT_BYTES)
		n = EXCERPT_BYTES;
	/* Step back over a cut multi-byte sequence. */
	if (n < len) {
		while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)body[i];

		buf[i] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
	}
	buf[n] = '\0';
}

/*
 * carrier_http_error - classify a non-2xx response. See carrier.h.
 */
int carrier_http_error(const struct carrier_conn *cc, const struct hub_msg *resp,
		       const char *what, struct hub_error *err)
{
	const struct hub_host *h = cc->host;
	int status = h->msg_status(resp);
	char excerpt[EXCERPT_BYTES + 1];
	size_t len = 0;
	const char *body = h->msg_body(resp, &len);
	int rc;

	body_excerpt(body, len, excerpt, sizeof(excerpt));
	if (status == 401)
		rc = HUB_AUTH_EXPIRED;
	else if (status == 408 || status == 429 || status >= 500 || status < 100)
		rc = HUB_RETRY;
	else
		rc = HUB_FATAL;
	hub_error_set(err, "status", "%s %s failed with HTTP %d: %s", cc->label, what, status,
		      len ? excerpt : "(empty body)");
	if (err)
		err->upstream_status = status;
	return rc;
}

/*
 * carrier_http_refused - the error of refused credentials. See carrier.h.
 */
void carrier_http_refused(const struct carrier_conn *cc, const struct hub_msg *resp,
			  const char *request, const char *field, const char *what,
			  struct hub_error *err)
{
	struct hub_error detail;

	memset(&detail, 0, sizeof(detail));
	carrier_http_error(cc, resp, request, &detail);
	hub_error_set(err, field, "%s refused %s (%s)", cc->label, what, detail.message);
	if (err)
		err->upstream_status = detail.upstream_status;
}

/*
 * carrier_body_peek - the body as JSON, or NULL. See carrier.h.
 */
json_t *carrier_body_peek(const struct carrier_conn *cc, const struct hub_msg *resp)
{
	size_t len = 0;
	const char *body = cc->host->msg_body(resp, &len);

	return hub_json_loadb(body, len, 0, NULL);
}

/*
 * carrier_parse_json - the response body as JSON, or HUB_RETRY.
 */
int carrier_parse_json(const struct carrier_conn *cc, const struct hub_msg *resp,
		       const char *what, json_t **out, struct hub_error *err)
{
	size_t len = 0;
	const char *body = cc->host->msg_body(resp, &len);
	json_error_t jerr;

	*out = hub_json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out) {
		hub_error_set(err, "body", "%s %s response is not JSON (line %d: %s); retrying",
			      cc->label, what, jerr.line, jerr.text);
		if (err)
			err->upstream_status = cc->host->msg_status(resp);
		return HUB_RETRY;
	}
	return HUB_OK;
}

/*
 * carrier_request - method, URL, Accept header and bucket of a request.
 */
int carrier_request(const struct carrier_conn *cc, struct hub_msg *req, const char *method,
		    const char *url, const char *operation, struct hub_error *err)
{
	const struct hub_host *h = cc->host;

	if (!url || h->msg_set_request(req, method, url) != 0 ||
	    h->msg_add_header(req, "Accept", "application/json") != 0 ||
	    h->msg_set_operation(req, operation) != 0) {
		hub_error_set(err, NULL, "could not build the %s request (out of memory?)", cc->label);
		return HUB_FATAL;
	}
	return HUB_OK;
}

/*
 * carrier_add_bearer - Authorization with the host's current access token.
 */
int carrier_add_bearer(const struct carrier_conn *cc, struct hub_msg *req, struct hub_error *err)
{
	const char *token = cc->host->access_token(cc->conn);
	size_t size;
	char *value;
	int rc;

	if (!token || !*token) {
		hub_error_set(err, "access_token",
			      "no %s access token yet: run the refresh_token action first", cc->label);
		return HUB_AUTH_EXPIRED;
	}
	size = strlen(token) + sizeof("Bearer ");
	value = malloc(size);
	if (!value) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	snprintf(value, size, "Bearer %s", token);
	rc = cc->host->msg_add_header(req, "Authorization", value);
	explicit_bzero(value, size);
	free(value);
	if (rc != 0) {
		hub_error_set(err, NULL, "could not add the Authorization header");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* Appends "&key=escaped(value)" (or without '&' when *len is 0) to a
 * malloc'd buffer; returns 0 or -1. The escaped copy is wiped: values may be
 * secrets. */
static int form_add(char **buf, size_t *len, const char *key, const char *value)
{
	char *esc = hub_url_escape(value);
	size_t need, elen;
	char *grown;

	if (!esc)
		return -1;
	elen = strlen(esc);
	need = *len + 1 + strlen(key) + 1 + elen + 1;
	grown = malloc(need);
	if (!grown) {
		explicit_bzero(esc, elen);
		free(esc);
		return -1;
	}
	snprintf(grown, need, "%s%s%s=%s", *buf ? *buf : "", *len ? "&" : "", key, esc);
	explicit_bzero(esc, elen);
	free(esc);
	if (*buf) {
		explicit_bzero(*buf, *len);
		free(*buf);
	}
	*buf = grown;
	*len = strlen(grown);
	return 0;
}

/*
 * carrier_oauth_build - the client-credentials token request. See
 * carrier.h.
 */
int carrier_oauth_build(const struct carrier_conn *cc, struct hub_msg *req, const char *path,
			enum carrier_oauth_style style, const char *extra, struct hub_error *err)
{
	const struct hub_host *h = cc->host;
	struct hub_url url;
	char *form = NULL, *pair = NULL, *b64 = NULL, *auth = NULL;
	size_t form_len = 0, pair_len = 0, auth_len = 0;
	int rc = HUB_FATAL;

	hub_url_init(&url, cc->api_base);
	hub_url_path(&url, path);
	rc = carrier_request(cc, req, "POST", hub_url_str(&url), "oauth", err);
	if (rc != HUB_OK)
		goto out;
	rc = HUB_FATAL;
	if (form_add(&form, &form_len, "grant_type", "client_credentials") != 0)
		goto oom;
	if (style == CARRIER_OAUTH_FORM &&
	    (form_add(&form, &form_len, "client_id", cc->client_id) != 0 ||
	     form_add(&form, &form_len, "client_secret", cc->client_secret) != 0))
		goto oom;
	if (extra && *extra) {
		char *grown = malloc(form_len + 1 + strlen(extra) + 1);

		if (!grown)
			goto oom;
		snprintf(grown, form_len + 1 + strlen(extra) + 1, "%s&%s", form, extra);
		explicit_bzero(form, form_len);
		free(form);
		form = grown;
		form_len = strlen(form);
	}
	if (style == CARRIER_OAUTH_BASIC) {
		pair_len = strlen(cc->client_id) + 1 + strlen(cc->client_secret);
		pair = malloc(pair_len + 1);
		if (!pair)
			goto oom;
		snprintf(pair, pair_len + 1, "%s:%s", cc->client_id, cc->client_secret);
		b64 = hub_base64_encode(pair, pair_len);
		if (!b64)
			goto oom;
		auth_len = strlen(b64) + sizeof("Basic ");
		auth = malloc(auth_len);
		if (!auth)
			goto oom;
		snprintf(auth, auth_len, "Basic %s", b64);
		if (h->msg_add_header(req, "Authorization", auth) != 0)
			goto oom;
	}
	if (h->msg_add_header(req, "Content-Type", "application/x-www-form-urlencoded") != 0 ||
	    h->msg_set_body(req, form, form_len) != 0)
		goto oom;
	rc = HUB_OK;
	goto out;
oom:
	hub_error_set(err, NULL, "could not build the %s token request (out of memory?)", cc->label);
out:
	if (form) {
		explicit_bzero(form, form_len);
		free(form);
	}
	if (pair) {
		explicit_bzero(pair, pair_len);
		free(pair);
	}
	if (b64) {
		explicit_bzero(b64, strlen(b64));
		free(b64);
	}
	if (auth) {
		explicit_bzero(auth, auth_len);
		free(auth);
	}
	hub_url_release(&url);
	return rc;
}

/*
 * carrier_oauth_read - the token response into the host. See carrier.h.
 */
int carrier_oauth_read(const struct carrier_conn *cc, const struct hub_msg *resp,
		       struct hub_call *call, struct hub_error *err)
{
	const struct hub_host *h = cc->host;
	int status = h->msg_status(resp);
	json_t *body = NULL;
	const char *token;
	int64_t expires_in = -1;
	int rc;

	if (status == 400 || status == 401 || status == 403) {
		carrier_http_refused(cc, resp, "token request", "client_secret",
				     "the client credentials: check client_id and client_secret "
				     "in the connector config", err);
		return HUB_FATAL;
	}
	if (status < 200 || status > 299)
		return carrier_http_error(cc, resp, "token request", err);
	rc = carrier_parse_json(cc, resp, "token request", &body, err);
	if (rc != HUB_OK)
		return rc;
	rc = HUB_INVALID;
	if (hub_json_str(body, "access_token", &token, "token", err) != 0)
		goto out;
	if (hub_json_int_opt(body, "expires_in", &expires_in, "token", err) != 0)
		goto out;
	if (expires_in < 0) {
		/* RFC 6749 leaves expires_in optional; all three carriers send
		 * it. Without it, assume the shortest lifetime they document. */
		carrier_log(cc, HUB_LOG_INFO, "token response without expires_in: assuming 3600 s");
		expires_in = 3600;
	}
	h->set_access_token(call, token, h->now_ms() + expires_in * 1000);
	rc = HUB_OK;
out:
	json_decref(body);
	return rc;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/*
 * carrier_retry_after_ms - delta-seconds or an IMF-fixdate into a delay.
 */
int carrier_retry_after_ms(const char *value, int64_t now_ms, int64_t *out)
{
	const char *p = value;
	int64_t ms = 0;

	if (!value)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p >= '0' && *p <= '9') {
		int64_t scale = 1000;

		for (; *p >= '0' && *p <= '9'; p++) {
			if (ms > INT64_C(86400000) * 365)
				return -1;
			ms = ms * 10 + (*p - '0') * 1000;
		}
		if (*p == '.') {
			for (p++; *p >= '0' && *p <= '9'; p++) {
				scale /= 10;
				ms += (*p - '0') * scale;
			}
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p)
			return -1;
		*out = ms;
		return 0;
	} else {
		/* "Wed, 21 Oct 2015 07:28:00 GMT" */
		char wday[4], mon[4], tz[4], iso[32];
		int day, year, hh, mm, ss, m, n = 0;
		int64_t at;

		if (sscanf(p, "%3[A-Za-z], %d %3s %d %d:%d:%d %3s%n", wday, &day, mon, &year, &hh, &mm, &ss,
			   tz, &n) != 8 || strcmp(tz, "GMT") != 0 || p[n] != '\0')
			return -1;
		for (m = 0; m < 12; m++)
			if (strcmp(mon, months[m]) == 0)
				break;
		if (m == 12 || year < 1970 || year > 9999)
			return -1;
		snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02dZ", year, m + 1, day, hh, mm,
			 ss);
		if (hub_time_parse(iso, 0, &at, NULL, NULL) != 0)
			return -1;
		*out = at > now_ms ? at - now_ms : 0;
		return 0;
	}
}
