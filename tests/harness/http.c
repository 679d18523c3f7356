/*
 * http.c - blocking libcurl client for tests (see http.h).
 */
#include "config.h"
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>

const char *th_http_cainfo;

struct sink {
	char *buf;
	size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *nb = realloc(s->buf, s->len + add + 1);

	if (!nb)
		return 0;
	memcpy(nb + s->len, ptr, add);
	s->len += add;
	nb[s->len] = '\0';
	s->buf = nb;
	return add;
}

int th_perform(void *curl, const struct th_request *rq, struct th_response *out)
{
	CURL *c = curl;
	struct curl_slist *hl = NULL;
	struct sink b = {0}, h = {0};
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	curl_easy_reset(c);
	for (const char *const *p = rq->headers; p && *p; p++)
		hl = curl_slist_append(hl, *p);
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, rq->url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (rq->fresh_connect)
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	if (th_http_cainfo)
		curl_easy_setopt(c, CURLOPT_CAINFO, th_http_cainfo);
	if (strcmp(rq->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (rq->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
	}
	rc = curl_easy_perform(c);
	out->curl_rc = (int)rc;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	else
		snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->seconds);
	out->body = b.buf ? b.buf : strdup("");
	out->len = b.len;
	out->headers = h.buf ? h.buf : strdup("");
	curl_slist_free_all(hl);
	return rc == CURLE_OK ? 0 : -1;
}

int th_http(const char *method, const char *url, const char *const *headers, const char *body,
	    size_t body_len, struct th_response *out)
{
	const struct th_request rq = { .method = method, .url = url, .headers = headers, .body = body,
				       .body_len = body_len };
	CURL *c = curl_easy_init();
	int rc;

	if (!c) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	rc = th_perform(c, &rq, out);
	curl_easy_cleanup(c);
	return rc;
}

const char *th_header_in(const char *headers, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name);
	const char *found = NULL;

	for (const char *line = headers; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		if (len && line[len - 1] == '\r')
			len--;
		if (len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			size_t vl;
			while (*v == ' ')
				v++;
			vl = len - (size_t)(v - line);
			if (vl >= size)
				vl = size - 1;
			memcpy(buf, v, vl);
			buf[vl] = '\0';
			found = buf;
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return found;
}

const char *th_header(const struct th_response *r, const char *name, char *buf, size_t size)
{
	return th_header_in(r->headers, name, buf, size);
}

void th_response_release(struct th_response *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

int th_wait_ok(const char *url, int timeout_ms)
{
	struct timespec ts;
	long long deadline;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	for (;;) {
		struct th_response r;
		int ok = th_http("GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200;
		th_response_release(&r);
		if (ok)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= deadline)
			return -1;
		usleep(20000);
	}
}

/* "Authorization: Bearer <token>" into buf, then the header list h. */
static const char *const *auth_headers(const char *token, const char *content_type, char *buf, size_t size,
				       const char *h[3])
{
	int n = 0;

	if (content_type)
		h[n++] = content_type;
	if (token) {
		snprintf(buf, size, "Authorization: Bearer %s", token);
		h[n++] = buf;
	}
	h[n] = NULL;
	return n ? h : NULL;
}

json_t *th_get_json(const char *url, const char *token)
{
	struct th_response r;
	char auth[300];
	const char *h[3];
	json_t *j = NULL;

	if (th_http("GET", url, auth_headers(token, NULL, auth, sizeof(auth), h), NULL, 0, &r) == 0 &&
	    r.status == 200)
		j = json_loads(r.body, 0, NULL);
	th_response_release(&r);
	return j;
}

long th_post_json(const char *url, const char *token, const char *body)
{
	struct th_response r;
	char auth[300];
	const char *h[3];
	long st;

	th_http("POST", url, auth_headers(token, "Content-Type: application/json", auth, sizeof(auth), h), body,
		strlen(body), &r);
	st = r.status;
	th_response_release(&r);
	return st;
}
