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
};

/* CA bundle used to verify https:// servers (NULL: the system store). */
extern const char *th_http_cainfo;

/* Performs one request. headers: NULL-terminated "Name: value" strings, or
 * NULL. body may be NULL. Timeout 10 s. Returns 0 when a response arrived. */
int th_http(const char *method, const char *url, const char *const *headers, const char *body,
	    size_t body_len, struct th_response *out);

/* Value of a response header (case-insensitive), copied into buf, or NULL. */
const char *th_header(const struct th_response *r, const char *name, char *buf, size_t size);

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
