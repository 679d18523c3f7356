/*
 * sbt.c - helpers for hub-sandbox's tests (see sbt.h).
 */
#include "config.h"

#include "sbt.h"
#include "../harness/http.h"

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

long long sbt_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long sbt_iso_seconds(const char *text)
{
	struct tm tm;
	int off = 0;
	memset(&tm, 0, sizeof(tm));
	if (!text || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			    &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	const char *z = text + 19;
	while (*z == '.' || (*z >= '0' && *z <= '9'))
		z++;
	if (*z == '+' || *z == '-') {
		int hh = 0, mm = 0;
		sscanf(z + 1, "%2d:%2d", &hh, &mm);
		off = (hh * 60 + mm) * (*z == '-' ? -1 : 1);
	}
	return (long long)timegm(&tm) - off * 60LL;
}

int sbt_start(struct sbt *t, const char *config_json, const char *const *args)
{
	char bin[512], cfg[600], log[600], listen[64];
	memset(t, 0, sizeof(*t));
	t->timeout_ms = 10000;
	if (proc_tmpdir(t->dir, sizeof(t->dir), "hub-sbt"))
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/sandbox.json", t->dir);
	snprintf(log, sizeof(log), "%s/sandbox.log", t->dir);
	if (proc_write_file(cfg, config_json ? config_json : "{}"))
		return -1;
	t->port = proc_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", t->port);
	snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%d", t->port);
	proc_build_path(bin, sizeof(bin), "hub-sandbox");
	char *argv[32];
	int n = 0;
	argv[n++] = bin;
	argv[n++] = (char *)"--listen";
	argv[n++] = listen;
	argv[n++] = (char *)"--config";
	argv[n++] = cfg;
	for (int i = 0; args && args[i] && n < 30; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	if (proc_start(&t->proc, argv, log))
		return -1;
	long long end = sbt_ms() + 15000;
	while (proc_wait_port(t->port, 100)) {
		if (!proc_alive(&t->proc) || sbt_ms() > end) {
			char *l = proc_read_file(log);
			fprintf(stderr, "hub-sandbox did not start:\n%s\n", l ? l : "");
			free(l);
			return -1;
		}
	}
	t->curl = curl_easy_init();
	t->started = t->curl != NULL;
	return t->curl ? 0 : -1;
}

void sbt_stop(struct sbt *t)
{
	int status = 0, bad = 0;
	char msg[4200] = "";
	if (t->curl)
		curl_easy_cleanup(t->curl);
	t->curl = NULL;
	if (t->proc.pid > 0 && proc_stop(&t->proc, SIGTERM, 10000, &status) == 0 && t->started &&
	    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		char log[600];
		snprintf(log, sizeof(log), "%s/sandbox.log", t->dir);
		char *l = proc_read_file(log);
		size_t n = l ? strlen(l) : 0;
		snprintf(msg, sizeof(msg), "hub-sandbox ended with status %d:\n%s", status,
			 l ? l + (n > 4000 ? n - 4000 : 0) : "");
		free(l);
		bad = 1;
	}
	t->proc.pid = 0;
	t->started = 0;
	if (t->dir[0])
		proc_rmtree(t->dir);
	t->dir[0] = '\0';
	if (bad)
		fail_msg("%s", msg);
}

int sbt_req(struct sbt *t, const char *method, const char *target, const char *const *headers,
	    const char *body, struct sbt_resp *out)
{
	char url[4096];
	struct th_response r;
	struct th_request rq = { .method = method, .url = url, .headers = headers, .body = body,
				 .body_len = body ? strlen(body) : 0, .timeout_ms = t->timeout_ms,
				 .fresh_connect = t->fresh };
	int rc;

	if (!strncmp(target, "http://", 7))
		snprintf(url, sizeof(url), "%s", target);
	else
		snprintf(url, sizeof(url), "%s%s", t->base, target);
	rc = th_perform(t->curl, &rq, &r);
	out->status = r.status;
	out->curl_rc = r.curl_rc;
	out->body = r.body;
	out->len = r.len;
	out->headers = r.headers;
	out->seconds = r.seconds;
	return rc;
}

void sbt_free(struct sbt_resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

const char *sbt_hdr(const struct sbt_resp *r, const char *name, char *buf, size_t size)
{
	return th_header_in(r->headers, name, buf, size);
}

json_t *sbt_json(const struct sbt_resp *r)
{
	return r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

json_t *sbt_get_json(struct sbt *t, const char *target, const char *const *headers, long expect)
{
	struct sbt_resp r;
	json_t *j = NULL;
	if (sbt_req(t, "GET", target, headers, NULL, &r) == 0 && r.status == expect)
		j = sbt_json(&r);
	else
		fprintf(stderr, "GET %s: status %ld (%d): %.300s\n", target, r.status, r.curl_rc,
			r.body ? r.body : "");
	sbt_free(&r);
	return j;
}

int sbt_tick(struct sbt *t, double seconds)
{
	char body[64];
	struct sbt_resp r;
	long keep = t->timeout_ms;
	snprintf(body, sizeof(body), "{\"seconds\":%.6f}", seconds);
	/* a long tick applies many events: allow it time (sanitizer builds) */
	t->timeout_ms = 120000;
	int ok = sbt_req(t, "POST", "/_sandbox/tick", NULL, body, &r) == 0 && r.status == 200;
	t->timeout_ms = keep;
	sbt_free(&r);
	return ok ? 0 : -1;
}

char *sbt_link(const struct sbt_resp *r, const char *rel)
{
	char buf[8192], want[64];
	if (!sbt_hdr(r, "Link", buf, sizeof(buf)))
		return NULL;
	snprintf(want, sizeof(want), "rel=\"%s\"", rel);
	for (char *p = buf; (p = strchr(p, '<'));) {
		char *e = strchr(p, '>');
		if (!e)
			return NULL;
		char *next = strchr(e, '<');
		char *relp = strstr(e, want);
		if (relp && (!next || relp < next))
			return strndup(p + 1, (size_t)(e - p - 1));
		p = e;
	}
	return NULL;
}

json_t *sbt_fixture(const char *rel)
{
	const char *dir = getenv("HUB_FIXTURES");
	char path[1024];
	if (!dir || !*dir)
		dir = HUB_FIXTURES_DEFAULT;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	json_t *j = json_load_file(path, 0, NULL);
	if (!j)
		fprintf(stderr, "fixture %s not available: skipping its shape checks\n", path);
	return j;
}

/* ---- shapes ------------------------------------------------------------ */

static int kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return 1;
	case JSON_ARRAY:
		return 2;
	case JSON_STRING:
		return 3;
	case JSON_INTEGER:
	case JSON_REAL:
		return 4;
	case JSON_TRUE:
	case JSON_FALSE:
		return 5;
	default:
		return 0;
	}
}

static const char *kind_name(int k)
{
	static const char *const n[] = { "null", "object", "array", "string", "number", "boolean" };
	return n[k];
}

/* Union of an array's elements (objects merged key by key, first non-null
 * value kept, nested objects and arrays merged recursively). New ref. */
static json_t *merge(json_t *a, const json_t *b)
{
	if (!a)
		return json_deep_copy(b);
	if (json_is_null(a)) {
		json_decref(a);
		return json_deep_copy(b);
	}
	if (json_is_object(a) && json_is_object(b)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)b, k, v) {
			json_t *cur = json_object_get(a, k);
			if (!cur) {
				json_object_set_new(a, k, json_deep_copy(v));
			} else {
				json_incref(cur);
				json_object_set_new(a, k, merge(cur, v));
			}
		}
		return a;
	}
	if (json_is_array(a) && json_is_array(b)) {
		json_t *u = NULL;
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
			u = merge(u, v);
		json_array_foreach((json_t *)b, i, v)
			u = merge(u, v);
		json_t *out = json_array();
		if (u)
			json_array_append_new(out, u);
		json_decref(a);
		return out;
	}
	return a;
}

static int ignored(const char *path, const char *const *ignore)
{
	for (int i = 0; ignore && ignore[i]; i++)
		if (!strcmp(path, ignore[i]))
			return 1;
	return 0;
}

static int cmp(const json_t *f, const json_t *a, unsigned flags, const char *const *ignore,
	       const char *path, char *err, size_t errsz)
{
	if (ignored(path, ignore) || json_is_null(f) || json_is_null(a))
		return 0;
	int kf = kind(f), ka = kind(a);
	if (kf != ka) {
		snprintf(err, errsz, "%s: fixture has %s, sandbox has %s", path[0] ? path : "(root)",
			 kind_name(kf), kind_name(ka));
		return -1;
	}
	char sub[512];
	if (kf == 1) {
		const char *k;
		json_t *v;
		if (flags & SBT_NO_EXTRA)
			json_object_foreach((json_t *)a, k, v) {
				snprintf(sub, sizeof(sub), "%s.%s", path, k);
				if (!json_object_get(f, k) && !ignored(sub, ignore)) {
					snprintf(err, errsz, "%s: key not in the fixture", sub);
					return -1;
				}
			}
		json_object_foreach((json_t *)f, k, v) {
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			json_t *av = json_object_get(a, k);
			if (!av) {
				if ((flags & SBT_ALL_KEYS) && !ignored(sub, ignore)) {
					snprintf(err, errsz, "%s: missing in the sandbox's response", sub);
					return -1;
				}
				continue;
			}
			if (cmp(v, av, flags, ignore, sub, err, errsz))
				return -1;
		}
		return 0;
	}
	if (kf == 2) {
		if (json_array_size(f) == 0 || json_array_size(a) == 0)
			return 0;
		json_t *u = NULL;
		size_t i;
		json_t *v;
		json_array_foreach((json_t *)f, i, v)
			u = merge(u, v);
		snprintf(sub, sizeof(sub), "%s[]", path);
		int rc = 0;
		json_array_foreach((json_t *)a, i, v)
			if ((rc = cmp(u, v, flags, ignore, sub, err, errsz)))
				break;
		json_decref(u);
		return rc;
	}
	return 0;
}

int sbt_shape(const json_t *fixture, const json_t *actual, unsigned flags,
	      const char *const *ignore, char *err, size_t errsz)
{
	err[0] = '\0';
	return cmp(fixture, actual, flags, ignore, "", err, errsz);
}

int sbt_has_keys(const json_t *obj, const char *const *keys, char *err, size_t errsz)
{
	for (int i = 0; keys[i]; i++)
		if (!json_object_get(obj, keys[i])) {
			snprintf(err, errsz, "missing key %s", keys[i]);
			return -1;
		}
	return 0;
}

/* ---- webhook receiver --------------------------------------------------- */

static void on_hook(struct evhttp_request *req, void *arg)
{
	struct sbt_hooks *h = arg;
	if (h->n == h->cap) {
		int ncap = h->cap ? h->cap * 2 : 64;
		struct sbt_hook *ni = realloc(h->items, (size_t)ncap * sizeof(*ni));
		if (!ni) {
			evhttp_send_reply(req, 500, "oom", NULL);
			return;
		}
		h->items = ni;
		h->cap = ncap;
	}
	struct sbt_hook *d = &h->items[h->n++];
	memset(d, 0, sizeof(*d));
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	d->len = evbuffer_get_length(in);
	d->body = malloc(d->len + 1);
	if (d->body) {
		evbuffer_copyout(in, d->body, d->len);
		d->body[d->len] = '\0';
	}
	struct evbuffer *hb = evbuffer_new();
	for (struct evkeyval *kv = evhttp_request_get_input_headers(req)->tqh_first; kv;
	     kv = kv->next.tqe_next)
		evbuffer_add_printf(hb, "%s: %s\n", kv->key, kv->value);
	evbuffer_add_printf(hb, "X-Test-Path: %s\n", evhttp_request_get_uri(req));
	evbuffer_add(hb, "", 1);
	d->headers = strdup((const char *)evbuffer_pullup(hb, -1));
	evbuffer_free(hb);
	d->at_ms = sbt_ms();
	evhttp_send_reply(req, h->reply_status ? h->reply_status : 200, "OK", NULL);
}

int sbt_hooks_start(struct sbt_hooks *h)
{
	memset(h, 0, sizeof(*h));
	h->base = event_base_new();
	h->http = h->base ? evhttp_new(h->base) : NULL;
	if (!h->http)
		return -1;
	evhttp_set_gencb(h->http, on_hook, h);
	for (int tries = 0; tries < 20; tries++) {
		h->port = proc_free_port();
		if (evhttp_bind_socket(h->http, "127.0.0.1", (ev_uint16_t)h->port) == 0)
			return 0;
	}
	return -1;
}

void sbt_hooks_stop(struct sbt_hooks *h)
{
	for (int i = 0; i < h->n; i++) {
		free(h->items[i].headers);
		free(h->items[i].body);
	}
	free(h->items);
	if (h->http)
		evhttp_free(h->http);
	if (h->base)
		event_base_free(h->base);
	memset(h, 0, sizeof(*h));
}

void sbt_hooks_run(struct sbt_hooks *h, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(h->base, &tv);
	event_base_dispatch(h->base);
}

int sbt_hooks_wait(struct sbt_hooks *h, int n, int timeout_ms)
{
	long long end = sbt_ms() + timeout_ms;
	while (h->n < n && sbt_ms() < end)
		sbt_hooks_run(h, 20);
	return h->n;
}

const char *sbt_hook_hdr(const struct sbt_hook *d, const char *name, char *buf, size_t size)
{
	return th_header_in(d->headers, name, buf, size);
}

void sbt_hmac_b64(const char *key, const void *data, size_t len, char *buf, size_t size)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	HMAC(EVP_sha256(), key, (int)strlen(key), data, len, mac, &mlen);
	unsigned char out[128];
	int n = EVP_EncodeBlock(out, mac, (int)mlen);
	snprintf(buf, size, "%.*s", n, (const char *)out);
}
