/*
 * sbt.h - helpers for hub-sandbox's tests: run the sandbox as a real
 * process on a free loopback port with a JSON configuration, talk to it
 * over HTTP (libcurl, one kept-alive connection), compare response shapes
 * with the real payloads in $HUB_FIXTURES, and receive its webhooks on a
 * small evhttp server inside the test process.
 */
#ifndef HUB_SBT_H
#define HUB_SBT_H

#include <stddef.h>
#include <jansson.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../harness/proc.h"

struct sbt {
	struct proc proc;
	int port;
	char base[64];           /* "http://127.0.0.1:<port>" */
	char dir[512];           /* temp dir with the config and the log */
	CURL *curl;
	long timeout_ms;
	int fresh;               /* a new connection for every request */
	int started;             /* sbt_start succeeded */
};

struct sbt_resp {
	long status;             /* 0 on transport failure */
	int curl_rc;             /* CURLE_* */
	char *body;
	size_t len;
	char *headers;
	double seconds;          /* total time */
};

/* Starts hub-sandbox with the given JSON config (may be NULL) and extra
 * arguments (NULL-terminated, may be NULL); waits for its port. 0 or -1. */
int sbt_start(struct sbt *t, const char *config_json, const char *const *args);
/* Stops it (SIGTERM, then SIGKILL) and removes the temp dir. A sandbox
 * that had started and does not exit cleanly (a crash, a sanitizer
 * report) fails the running test with the end of its log. */
void sbt_stop(struct sbt *t);
/* One request; target is a path ("/_sandbox/stats") or an absolute URL.
 * headers: NULL-terminated "Name: value" list or NULL. Returns 0 when a
 * response arrived. */
int sbt_req(struct sbt *t, const char *method, const char *target, const char *const *headers,
	    const char *body, struct sbt_resp *out);
void sbt_free(struct sbt_resp *r);
/* A response header (case-insensitive) into buf, or NULL. */
const char *sbt_hdr(const struct sbt_resp *r, const char *name, char *buf, size_t size);
/* The body parsed as JSON (new reference) or NULL. */
json_t *sbt_json(const struct sbt_resp *r);
/* GET target and parse; NULL unless status == expect. */
json_t *sbt_get_json(struct sbt *t, const char *target, const char *const *headers, long expect);
/* Advances the simulated clock; 0 or -1. */
int sbt_tick(struct sbt *t, double seconds);
/* The rel="next" (or other rel) URL of a Link header; malloc'd or NULL. */
char *sbt_link(const struct sbt_resp *r, const char *rel);

/* A fixture under $HUB_FIXTURES (default: the configured fixtures dir);
 * NULL when missing (the calling test then skips). New reference. */
json_t *sbt_fixture(const char *rel);

enum { SBT_ALL_KEYS = 1, SBT_NO_EXTRA = 2 };
/* Compares JSON shapes: same kinds (numbers and booleans each one kind,
 * null matches anything), with SBT_ALL_KEYS every fixture key must appear,
 * with SBT_NO_EXTRA no key outside the fixture may appear. Array elements
 * are compared with the union of the fixture's elements. ignore: paths
 * (".a.b[].c") not compared. Returns 0, or -1 with the first difference. */
int sbt_shape(const json_t *fixture, const json_t *actual, unsigned flags,
	      const char *const *ignore, char *err, size_t errsz);
/* Keys that must be present at a path-less object level, NULL-terminated. */
int sbt_has_keys(const json_t *obj, const char *const *keys, char *err, size_t errsz);

/* A webhook receiver inside the test process. */
struct sbt_hook {
	char *headers;           /* "Name: value\n" lines */
	char *body;
	size_t len;
	long long at_ms;         /* arrival, monotonic */
};

struct sbt_hooks {
	struct event_base *base;
	struct evhttp *http;
	int port;
	int reply_status;        /* what to answer (default 200) */
	struct sbt_hook *items;
	int n, cap;
};

int sbt_hooks_start(struct sbt_hooks *h);
void sbt_hooks_stop(struct sbt_hooks *h);
/* Runs the receiver until it holds at least n deliveries or timeout_ms
 * passed; returns the count. */
int sbt_hooks_wait(struct sbt_hooks *h, int n, int timeout_ms);
/* Runs the receiver for exactly ms. */
void sbt_hooks_run(struct sbt_hooks *h, int ms);
/* Header of a delivery (case-insensitive) or NULL (borrowed into buf). */
const char *sbt_hook_hdr(const struct sbt_hook *d, const char *name, char *buf, size_t size);

/* base64(HMAC-SHA256(key, data)) into buf (>= 64). */
void sbt_hmac_b64(const char *key, const void *data, size_t len, char *buf, size_t size);
long long sbt_ms(void);
/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS" + Z/offset (none: UTC). */
long long sbt_iso_seconds(const char *text);

#endif
