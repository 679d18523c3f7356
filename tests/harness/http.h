/*
 * http.h - a blocking HTTP client for tests (libcurl easy), so tests talk
 * to hubd and the sandbox over real HTTP on loopback.
 */
#ifndef HUB_TEST_HTTP_H
#define HUB_TEST_HTTP_H

#include <stddef.h>

struct th_response {
	long status;      /* 0 when the request failed at transport level */
	char *body;       /* NUL-terminated */
	size_t len;
	char *headers;    /* raw header block */
	char error[256];  /* curl's message on transport failure */
	int curl_rc;      /* CURLE_* */
	double seconds;   /* total time */
};

/* One request for th_perform. */
struct th_request {
	const char *method;
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" strings, or NULL */
	const char *body;           /* or NULL */
	size_t body_len;
	long timeout_ms;            /* 0: 10 s */
	int fresh_connect;          /* 1: a new connection, not one the handle keeps */
};

/* CA bundle used to verify https:// servers (NULL: the system store). */
extern const char *th_http_cainfo;

/* Performs one request. headers: NULL-terminated "Name: value" strings, or
 * NULL. body may be NULL. Timeout 10 s. Returns 0 when a response arrived. */
int th_http(const char *method, const char *url, const char *const *headers, const char *body,
	    size_t body_len, struct th_response *out);

/*
 * Performs rq on curl, a libcurl easy handle (CURL *) the caller owns: the
 * handle is reset first, and the connections it keeps serve the next call
 * (a kept-alive client). out is filled as by th_http; release it with
 * th_response_release. Returns 0 when a response arrived.
 */
int th_perform(void *curl, const struct th_request *rq, struct th_response *out);

/* Value of a response header (case-insensitive), copied into buf, or NULL. */
const char *th_header(const struct th_response *r, const char *name, char *buf, size_t size);

/* The same in a raw header block ("Name: value" lines ending in CRLF or
 * LF); when there are several (after a 100 Continue) the last one wins. */
const char *th_header_in(const char *headers, const char *name, char *buf, size_t size);

void th_response_release(struct th_response *r);

/* Polls GET url until it answers 200, up to timeout_ms. 0 or -1. */
int th_wait_ok(const char *url, int timeout_ms);

struct json_t;

/* GET url (with "Authorization: Bearer <token>" when token is not NULL):
 * the parsed body of a 200 answer (the caller decrefs it), else NULL. */
struct json_t *th_get_json(const char *url, const char *token);

/* POST body as application/json (Bearer token when not NULL); returns the
 * status, 0 when no answer came. */
long th_post_json(const char *url, const char *token, const char *body);

#endif
