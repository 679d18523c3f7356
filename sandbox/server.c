/*
 * server.c - hub-sandbox's process: command line, the simulated clock, the
 * evhttp server and its routing, replies with fault injection, access
 * tokens and the small codecs (base64, HMAC, percent-encoding) the API
 * modules share.
 *
 * Addressing (see docs/sandbox.md): Shopify shops under
 * /shops/<shop-domain>/admin/api/... (or with Host: <shop-domain>),
 * WooCommerce sites under /stores/<site-host>/wp-json/... (or with Host),
 * Amazon, UPS, FedEx, USPS and DHL at their real paths from the root
 * (optionally under /amazon, /ups, /fedex, /usps, /dhl), and the control
 * endpoints under /_sandbox/.
 *
 * Faults are decided per request from a per-API random stream seeded from
 * the seed, so a run with the same seed and the same request sequence sees
 * the same faults. 429 and 5xx faults answer before the request is handled;
 * drop and timeout faults happen after it was handled (the work is done but
 * the client never hears about it), truncated and malformed bodies cut the
 * real response.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>

#include "sandbox.h"

int sb_quiet;

void sb_log(const char *fmt, ...)
{
	if (sb_quiet)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hub-sandbox: %s\n", line);
}

/* ---- clocks ------------------------------------------------------------- */

int64_t sb_real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sb_now(struct sb_server *srv)
{
	int64_t real = sb_real_us() - srv->clock_real0_us;
	int64_t sim = srv->clock_base_ms + (int64_t)((double)real / 1000.0 * srv->speed) +
		      srv->tick_offset_ms;
	sb_world_advance(srv->world, sim);
	return srv->world->now;
}

int64_t sb_limits_now_us(struct sb_server *srv)
{
	if (srv->cfg.limits_sim_clock)
		return sb_now(srv) * 1000;
	return sb_real_us();
}

/* ---- codecs ------------------------------------------------------------- */

int sb_ct_streq(const char *a, const char *b)
{
	if (!a || !b)
		return 0;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

void sb_hmac_b64(const char *key, size_t key_len, const void *data, size_t len, char *buf,
		 size_t size)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &mlen);
	char *b = sb_b64(mac, mlen, 0);
	snprintf(buf, size, "%s", b ? b : "");
	free(b);
}

void sb_hmac_raw(int sha1, const void *key, size_t key_len, const void *data, size_t len,
		 unsigned char *out, unsigned int *out_len)
{
	*out_len = 0;
	HMAC(sha1 ? EVP_sha1() : EVP_sha256(), key, (int)key_len, data, len, out, out_len);
}

char *sb_b64(const void *data, size_t len, int url)
{
	static const char std[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char safe[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *a = url ? safe : std;
	const unsigned char *p = data;
	char *out = malloc(len / 3 * 4 + 5);
	if (!out)
		return NULL;
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		if (i + 1 < len)
			out[o++] = a[(v >> 6) & 63];
		else if (!url)
			out[o++] = '=';
		if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

static int b64val(char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

unsigned char *sb_unb64(const char *text, size_t *len, int url)
{
	size_t n = strlen(text);
	while (n && text[n - 1] == '=')
		n--;
	unsigned char *out = malloc(n * 3 / 4 + 3);
	if (!out)
		return NULL;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(text[i], url);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *sb_urldecode(const char *s, size_t len, int plus_space)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (s[i] == '+' && plus_space) {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

char *sb_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

/* ---- request helpers ------------------------------------------------ */

const char *sb_q(const struct sb_req *r, const char *key)
{
	for (int i = r->nq - 1; i >= 0; i--)
		if (strcmp(r->qk[i], key) == 0)
			return r->qv[i];
	return NULL;
}

int sb_q_has(const struct sb_req *r, const char *key)
{
	return sb_q(r, key) != NULL;
}

const char *sb_header(const struct sb_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

void sb_set_header(struct sb_req *r, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

void sb_request_id(struct sb_server *srv, char *buf, size_t size)
{
	struct sb_rng r;
	sb_rng_seed(&r, srv->cfg.seed, 0x5eed0000ULL + ++srv->request_seq);
	uint64_t a = sb_rng_next(&r), b = sb_rng_next(&r);
	snprintf(buf, size, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffULL));
}

static void parse_query(struct sb_req *r, const char *q)
{
	if (!q || !*q)
		return;
	int cap = 8;
	r->qk = calloc((size_t)cap, sizeof(char *));
	r->qv = calloc((size_t)cap, sizeof(char *));
	if (!r->qk || !r->qv)
		return;
	const char *p = q;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len) {
			const char *eq = memchr(p, '=', len);
			size_t kl = eq ? (size_t)(eq - p) : len;
			if (r->nq == cap) {
				cap *= 2;
				char **nk = realloc(r->qk, (size_t)cap * sizeof(char *));
				char **nv = nk ? realloc(r->qv, (size_t)cap * sizeof(char *)) : NULL;
				if (nk)
					r->qk = nk;
				if (!nv)
					return;
				r->qv = nv;
			}
			r->qk[r->nq] = sb_urldecode(p, kl, 1);
			r->qv[r->nq] = eq ? sb_urldecode(eq + 1, len - kl - 1, 1) : strdup("");
			if (r->qk[r->nq] && r->qv[r->nq])
				r->nq++;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
}

json_t *sb_body_json(struct sb_req *r, int form_ok)
{
	if (!r->body || !r->body_len)
		return NULL;
	json_t *j = json_loadb((const char *)r->body, r->body_len, 0, NULL);
	if (j || !form_ok)
		return j;
	/* application/x-www-form-urlencoded */
	j = json_object();
	const char *p = (const char *)r->body, *end = p + r->body_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
		const char *eq = memchr(p, '=', len);
		if (eq) {
			char *k = sb_urldecode(p, (size_t)(eq - p), 1);
			char *v = sb_urldecode(eq + 1, len - (size_t)(eq - p) - 1, 1);
			if (k && v)
				json_object_set_new(j, k, json_string(v));
			free(k);
			free(v);
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	if (json_object_size(j) == 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int sb_basic_auth(const struct sb_req *r, char *user, size_t usz, char *pass, size_t psz)
{
	const char *h = sb_header(r, "Authorization");
	if (!h || strncasecmp(h, "Basic ", 6) != 0)
		return -1;
	h += 6;
	while (*h == ' ')
		h++;
	size_t n;
	unsigned char *raw = sb_unb64(h, &n, 0);
	if (!raw)
		return -1;
	char *colon = memchr(raw, ':', n);
	int rc = -1;
	if (colon) {
		*colon = '\0';
		snprintf(user, usz, "%s", (char *)raw);
		snprintf(pass, psz, "%.*s", (int)(n - (size_t)(colon + 1 - (char *)raw)), colon + 1);
		rc = 0;
	}
	free(raw);
	return rc;
}

const char *sb_bearer(const struct sb_req *r)
{
	const char *h = sb_header(r, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

/* ---- tokens --------------------------------------------------------- */

void sb_token_issue(struct sb_server *srv, int api, struct sb_store *store, int ttl_s,
		    const char *prefix, char *buf, size_t size)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	char rnd[49];
	int64_t now = sb_now(srv);
	/* prune expired tokens now and then */
	if (srv->tokens.count > 50000) {
		size_t pos = 0;
		const char *k;
		void *v;
		while (sb_map_next(&srv->tokens, &pos, &k, &v) >= 0) {
			struct sb_token *t = v;
			if ((t->expires && t->expires <= now) ||
			    t->generation != srv->token_gen[t->api]) {
				char *kc = strdup(k);
				if (kc) {
					free(sb_map_del(&srv->tokens, kc));
					free(kc);
				}
			}
		}
	}
	do {
		for (size_t i = 0; i + 1 < sizeof(rnd); i++)
			rnd[i] = alnum[sb_rng_below(&srv->token_rng, sizeof(alnum) - 1)];
		rnd[sizeof(rnd) - 1] = '\0';
		snprintf(buf, size, "%s%s", prefix, rnd);
	} while (sb_map_get(&srv->tokens, buf));
	struct sb_token *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	t->api = api;
	t->store = store;
	t->expires = ttl_s > 0 ? now + (int64_t)ttl_s * 1000 : 0;
	t->generation = srv->token_gen[api];
	if (sb_map_put(&srv->tokens, buf, t))
		free(t);
}

int sb_token_check(struct sb_server *srv, int api, const char *token, struct sb_store **store)
{
	if (!token)
		return 0;
	struct sb_token *t = sb_map_get(&srv->tokens, token);
	if (!t || t->api != api)
		return 0;
	if (store)
		*store = t->store;
	if (t->generation != srv->token_gen[api])
		return -1;
	if (t->expires && sb_now(srv) >= t->expires)
		return -1;
	return 1;
}

/* ---- replies and faults ----------------------------------------------- */

struct hold {
	struct hold *prev, *next; /* the server's list of pending holds */
	struct sb_server *srv;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *ev;
	struct evbuffer *body;
	int status;
	int close;   /* 1: close the connection instead of replying */
	int dead;    /* the client went away first */
};

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 207: return "Multi-Status";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void hold_closed(struct evhttp_connection *evcon, void *arg)
{
	struct hold *h = arg;
	h->dead = 1;
}

static struct hold *holds; /* pending, freed at exit */

static void hold_unlink(struct hold *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		holds = h->next;
	if (h->next)
		h->next->prev = h->prev;
}

static void hold_fire(evutil_socket_t fd, short what, void *arg)
{
	struct hold *h = arg;
	hold_unlink(h);
	if (!h->dead) {
		evhttp_connection_set_closecb(h->evcon, NULL, NULL);
		if (h->close)
			evhttp_connection_free(h->evcon);
		else
			evhttp_send_reply(h->req, h->status, reason(h->status), h->body);
	}
	if (h->body)
		evbuffer_free(h->body);
	event_free(h->ev);
	free(h);
}

/* Delays the reply (close=0) or closes the connection without one (close=1)
 * after delay_ms. The body buffer's contents are moved into the hold. */
static void hold_request(struct sb_req *r, int delay_ms, int close, int status,
			 struct evbuffer *body)
{
	struct hold *h = calloc(1, sizeof(*h));
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	if (!h || !evcon) {
		free(h);
		evhttp_send_reply(r->req, status, reason(status), body);
		return;
	}
	h->srv = r->srv;
	h->req = r->req;
	h->evcon = evcon;
	h->status = status;
	h->close = close;
	h->body = evbuffer_new();
	if (h->body && body)
		evbuffer_add_buffer(h->body, body);
	h->ev = evtimer_new(r->srv->base, hold_fire, h);
	if (!h->ev) {
		if (h->body)
			evbuffer_free(h->body);
		free(h);
		evhttp_send_reply(r->req, status, reason(status), body);
		return;
	}
	evhttp_connection_set_closecb(evcon, hold_closed, h);
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };
	evtimer_add(h->ev, &tv);
	h->next = holds;
	if (holds)
		holds->prev = h;
	holds = h;
}

/* Frees the holds still pending at exit (after evhttp_free closed their
 * connections, which marked them dead). */
static void holds_free(void)
{
	while (holds) {
		struct hold *h = holds;
		holds = h->next;
		if (h->body)
			evbuffer_free(h->body);
		event_free(h->ev);
		free(h);
	}
}

void sb_reply(struct sb_req *r, int status, const char *body, size_t len)
{
	struct sb_server *srv = r->srv;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
	if (body && !evhttp_find_header(oh, "Content-Type"))
		evhttp_add_header(oh, "Content-Type", "application/json; charset=utf-8");
	if (r->api >= 0) {
		int cls = status / 100;
		srv->stats.status[r->api][cls >= 1 && cls <= 5 ? cls : 0]++;
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		evhttp_send_error(r->req, 500, NULL);
		return;
	}
	const struct sb_faults *f = r->api >= 0 ? &srv->cfg.faults[r->api] : NULL;
	int fault = r->fault;
	if (fault == SB_FAULT_TRUNCATE && body && len > 1) {
		char cl[32];
		snprintf(cl, sizeof(cl), "%zu", len);
		evhttp_remove_header(oh, "Content-Length");
		evhttp_add_header(oh, "Content-Length", cl);
		evhttp_add_header(oh, "Connection", "close");
		evbuffer_add(buf, body, len / 2);
	} else if (fault == SB_FAULT_MALFORMED && body && len > 1) {
		size_t cut = 1 + (size_t)sb_rng_below(&srv->fault_rng[r->api], len - 1);
		evbuffer_add(buf, body, cut);
	} else if (body) {
		evbuffer_add(buf, body, len);
	}
	if (fault == SB_FAULT_DROP) {
		hold_request(r, 0, 1, status, buf);
	} else if (fault == SB_FAULT_TIMEOUT) {
		hold_request(r, f ? f->timeout_ms : 30000, 1, status, buf);
	} else if (r->slow && f && f->slow_ms > 0) {
		hold_request(r, f->slow_ms, 0, status, buf);
	} else {
		evhttp_send_reply(r->req, status, reason(status), buf);
	}
	evbuffer_free(buf);
}

void sb_reply_json(struct sb_req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		sb_reply(r, 500, "{\"errors\":\"out of memory\"}", 26);
		return;
	}
	sb_reply(r, status, s, strlen(s));
	free(s);
}

void sb_reply_buf(struct sb_req *r, int status, struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	unsigned char *p = evbuffer_pullup(buf, -1);
	sb_reply(r, status, (const char *)p, len);
}

/* Picks the fault for one request of api from its configured shares. */
static int decide_fault(struct sb_server *srv, int api, int *slow)
{
	const struct sb_faults *f = &srv->cfg.faults[api];
	struct sb_rng *rng = &srv->fault_rng[api];
	*slow = 0;
	double total = f->rate_429 + f->rate_5xx + f->drop + f->timeout + f->truncate +
		       f->malformed + f->expire;
	if (f->slow_ms > 0 && f->slow > 0)
		*slow = sb_rng_chance(rng, f->slow);
	if (total <= 0)
		return SB_FAULT_NONE;
	double u = sb_rng_unit(rng), acc = 0;
	const double shares[] = { f->rate_429, f->rate_5xx, f->drop, f->timeout, f->truncate,
				  f->malformed, f->expire };
	const int kinds[] = { SB_FAULT_429, SB_FAULT_5XX, SB_FAULT_DROP, SB_FAULT_TIMEOUT,
			      SB_FAULT_TRUNCATE, SB_FAULT_MALFORMED, SB_FAULT_EXPIRED };
	for (int i = 0; i < 7; i++) {
		acc += shares[i];
		if (u < acc)
			return kinds[i];
	}
	return SB_FAULT_NONE;
}

/* The API's own error for an injected 429 or 5xx. */
static void fault_reply(struct sb_req *r, int kind)
{
	int status = 429;
	if (kind == SB_FAULT_5XX)
		status = sb_rng_chance(&r->srv->fault_rng[r->api], 0.5) ? 500 : 503;
	if (status == 429)
		r->srv->stats.throttled[r->api]++;
	switch (r->api) {
	case SB_SHOPIFY:
		sb_shopify_fault(r, status);
		break;
	case SB_WOO:
		sb_woo_fault(r, status);
		break;
	case SB_AMAZON:
		sb_amazon_fault(r, status);
		break;
	default:
		sb_carrier_fault(r, r->api, status);
		break;
	}
}

/* ---- routing ------------------------------------------------------------ */

static int starts(const char *p, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(p, prefix, n) == 0;
}

/* "/shops/<name>/rest" -> store lookup; fills r->prefix and r->path. */
static int route_prefixed(struct sb_req *r, const char *lead, int api)
{
	const char *p = r->full_path + strlen(lead);
	const char *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p);
	char name[128];
	if (n == 0 || n >= sizeof(name))
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	r->store = sb_world_store(r->srv->world, api, name);
	if (!r->store)
		return -1;
	snprintf(r->prefix, sizeof(r->prefix), "%s%s", lead, name);
	r->path = strdup(slash ? slash : "/");
	r->api = api;
	return 0;
}

static int route_api(struct sb_req *r)
{
	const char *p = r->full_path;
	static const struct {
		const char *prefix;
		int api;
	} forced[] = {
		{ "/amazon/", SB_AMAZON }, { "/ups/", SB_UPS }, { "/fedex/", SB_FEDEX },
		{ "/usps/", SB_USPS }, { "/dhl/", SB_DHL },
	};
	for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
		if (starts(p, forced[i].prefix)) {
			size_t n = strlen(forced[i].prefix) - 1;
			snprintf(r->prefix, sizeof(r->prefix), "%.*s", (int)n, p);
			r->path = strdup(p + n);
			r->api = forced[i].api;
			return 0;
		}
	}
	if (starts(p, "/shops/"))
		return route_prefixed(r, "/shops/", SB_SHOPIFY);
	if (starts(p, "/stores/"))
		return route_prefixed(r, "/stores/", SB_WOO);
	/* Host-based addressing: Host: shop-1.myshopify.com */
	char host[256];
	snprintf(host, sizeof(host), "%s", r->host);
	char *colon = strrchr(host, ':');
	if (colon && !strchr(host, ']'))
		*colon = '\0';
	struct sb_store *s = sb_world_store(r->srv->world, SB_SHOPIFY, host);
	if (s) {
		r->store = s;
		r->api = SB_SHOPIFY;
		r->path = strdup(p);
		return 0;
	}
	s = sb_world_store(r->srv->world, SB_WOO, host);
	if (s) {
		r->store = s;
		r->api = SB_WOO;
		r->path = strdup(p);
		return 0;
	}
	r->path = strdup(p);
	if (starts(p, "/auth/o2/") || starts(p, "/orders/"))
		r->api = SB_AMAZON;
	else if (starts(p, "/security/v1/oauth/") || starts(p, "/api/track/"))
		r->api = SB_UPS;
	else if (starts(p, "/oauth/token") || starts(p, "/track/v1/"))
		r->api = SB_FEDEX;
	else if (starts(p, "/oauth2/v3/") || starts(p, "/tracking/v3/"))
		r->api = SB_USPS;
	else if (starts(p, "/track/shipments"))
		r->api = SB_DHL;
	else
		return -1;
	return 0;
}

static void not_found(struct sb_req *r)
{
	sb_set_header(r, "Content-Type", "text/plain; charset=utf-8");
	const char *msg = "Not Found: see docs/sandbox.md for the sandbox's addressing\n";
	sb_reply(r, 404, msg, strlen(msg));
}

static void release_req(struct sb_req *r)
{
	for (int i = 0; i < r->nq; i++) {
		free(r->qk[i]);
		free(r->qv[i]);
	}
	free(r->qk);
	free(r->qv);
	free(r->path);
	free(r->full_path);
	free(r->raw_path);
	free(r->raw_query);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct sb_server *srv = arg;
	struct sb_req r;
	memset(&r, 0, sizeof(r));
	r.srv = srv;
	r.req = req;
	r.method = (int)evhttp_request_get_command(req);
	r.api = -1;
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	r.full_path = sb_urldecode(uri, plen, 0);
	r.raw_path = strndup(uri, plen);
	if (q)
		r.raw_query = strdup(q + 1);
	parse_query(&r, r.raw_query);
	const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	snprintf(r.host, sizeof(r.host), "%s", host ? host : "127.0.0.1");
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	r.body_len = evbuffer_get_length(in);
	r.body = r.body_len ? evbuffer_pullup(in, -1) : NULL;
	if (!r.full_path) {
		evhttp_send_error(req, 500, NULL);
		release_req(&r);
		return;
	}
	(void)sb_now(srv); /* apply due events before answering */
	if (starts(r.full_path, "/_sandbox/") || strcmp(r.full_path, "/_sandbox") == 0) {
		srv->stats.control++;
		r.path = strdup(r.full_path + 9);
		sb_control_handle(&r);
		release_req(&r);
		return;
	}
	if (route_api(&r) < 0 || !r.path) {
		not_found(&r);
		release_req(&r);
		return;
	}
	srv->stats.requests[r.api]++;
	if (r.store)
		r.store->requests++;
	r.fault = decide_fault(srv, r.api, &r.slow);
	if (r.fault != SB_FAULT_NONE)
		srv->stats.faults[r.api][r.fault]++;
	if (r.slow)
		srv->stats.slowed[r.api]++;
	if (r.fault == SB_FAULT_429 || r.fault == SB_FAULT_5XX) {
		fault_reply(&r, r.fault);
		release_req(&r);
		return;
	}
	int handled;
	switch (r.api) {
	case SB_SHOPIFY:
		handled = sb_shopify_handle(&r);
		break;
	case SB_WOO:
		handled = sb_woo_handle(&r);
		break;
	case SB_AMAZON:
		handled = sb_amazon_handle(&r);
		break;
	default:
		handled = sb_carrier_handle(&r, r.api);
		break;
	}
	if (!handled)
		not_found(&r);
	release_req(&r);
}

/* ---- server lifecycle --------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sb_server *srv = arg;
	(void)sb_now(srv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sb_server *srv = arg;
	sb_log("signal %d: stopping", (int)sig);
	event_base_loopexit(srv->base, NULL);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: hub-sandbox --listen ADDR [--seed N] [--orders N] [--shops N]\n"
		"                   [--speed X] [--start TIME] [--config FILE] [--quiet]\n"
		"\n"
		"Local stand-ins for the Shopify, WooCommerce, Amazon SP-API, UPS, FedEx,\n"
		"USPS and DHL APIs, with deterministic data that changes over simulated time.\n"
		"\n"
		"  -l, --listen ADDR   address to listen on: HOST:PORT, :PORT or PORT\n"
		"                      (port 0 picks a free one; the chosen URL is printed)\n"
		"  -s, --seed N        seed of all generated data (default 1)\n"
		"  -o, --orders N      initial orders per store (default 50)\n"
		"  -n, --shops N       stores per marketplace (default 3)\n"
		"  -x, --speed X       simulated seconds per real second (default 1, 0 frozen)\n"
		"  -t, --start TIME    simulated time at startup: RFC 3339 or \"now\" (default);\n"
		"                      a fixed start makes runs byte-identical\n"
		"  -c, --config FILE   JSON configuration (see docs/sandbox.md)\n"
		"  -q, --quiet         no log lines on stderr\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version\n"
		"\n"
		"Control endpoints: POST /_sandbox/tick, POST /_sandbox/faults,\n"
		"GET /_sandbox/truth/..., GET /_sandbox/stats, GET /_sandbox/credentials.\n");
}

static int parse_listen(const char *s, char *host, size_t hsz, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *ps = colon ? colon + 1 : s;
	char *end;
	errno = 0;
	long p = strtol(ps, &end, 10);
	if (errno || *end || end == ps || p < 0 || p > 65535)
		return -1;
	if (colon && colon != s)
		snprintf(host, hsz, "%.*s", (int)(colon - s), s);
	else
		snprintf(host, hsz, "127.0.0.1");
	if (host[0] == '[') { /* [::1]:8080 */
		size_t n = strlen(host);
		if (n > 2 && host[n - 1] == ']') {
			memmove(host, host + 1, n - 2);
			host[n - 2] = '\0';
		}
	}
	*port = (int)p;
	return 0;
}

static int load_config_file(struct sb_config *c, const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j) {
		fprintf(stderr, "hub-sandbox: %s:%d: %s\n", path, je.line, je.text);
		return -1;
	}
	char err[256];
	int rc = sb_config_apply(c, j, err, sizeof(err));
	if (rc)
		fprintf(stderr, "hub-sandbox: %s: %s\n", path, err);
	json_decref(j);
	return rc;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "orders", required_argument, NULL, 'o' },
		{ "shops", required_argument, NULL, 'n' },
		{ "speed", required_argument, NULL, 'x' },
		{ "start", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *config = NULL, *seed = NULL, *orders = NULL, *shops = NULL,
		   *speed = NULL, *start = NULL;
	int quiet = 0, c, rc = 1;
	while ((c = getopt_long(argc, argv, "l:s:o:n:x:t:c:qhV", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 's': seed = optarg; break;
		case 'o': orders = optarg; break;
		case 'n': shops = optarg; break;
		case 'x': speed = optarg; break;
		case 't': start = optarg; break;
		case 'c': config = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hub-sandbox %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen || optind < argc) {
		usage(stderr);
		return 2;
	}
	struct sb_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return 1;
	struct sb_config *cfg = &srv->cfg;
	sb_config_defaults(cfg);
	if (config && load_config_file(cfg, config))
		goto out;
	double v;
	if (seed) {
		if (parse_num(seed, 0, 9007199254740992.0, &v)) {
			fprintf(stderr, "hub-sandbox: --seed: expected a non-negative integer\n");
			goto out;
		}
		cfg->seed = (uint64_t)v;
	}
	if (orders) {
		if (parse_num(orders, 0, 1000000, &v)) {
			fprintf(stderr, "hub-sandbox: --orders: expected 0..1000000\n");
			goto out;
		}
		cfg->orders = (int)v;
	}
	if (shops) {
		if (parse_num(shops, 0, 100000, &v)) {
			fprintf(stderr, "hub-sandbox: --shops: expected 0..100000\n");
			goto out;
		}
		cfg->shops[0] = cfg->shops[1] = cfg->shops[2] = (int)v;
	}
	if (speed) {
		if (parse_num(speed, 0, 1e9, &v)) {
			fprintf(stderr, "hub-sandbox: --speed: expected a number >= 0\n");
			goto out;
		}
		cfg->speed = v;
	}
	if (start) {
		if (strcmp(start, "now") == 0) {
			cfg->start_ms = (int64_t)time(NULL) * 1000;
		} else if (sb_parse_time(start, 0, &cfg->start_ms)) {
			fprintf(stderr, "hub-sandbox: --start: expected \"now\" or an RFC 3339 time\n");
			goto out;
		}
		cfg->start_ms = cfg->start_ms / 1000 * 1000;
	}
	if (quiet)
		cfg->quiet = 1;
	sb_quiet = cfg->quiet;
	char host[128];
	int port;
	if (parse_listen(listen, host, sizeof(host), &port)) {
		fprintf(stderr, "hub-sandbox: --listen: expected HOST:PORT, :PORT or PORT\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);

	srv->speed = cfg->speed;
	srv->clock_base_ms = cfg->start_ms;
	srv->clock_real0_us = sb_real_us();
	sb_map_init(&srv->tokens);
	sb_map_init(&srv->nonces);
	for (int a = 0; a < SB_API_COUNT; a++)
		sb_rng_seed(&srv->fault_rng[a], cfg->seed, 0xfa0170ULL + (uint64_t)a);
	sb_rng_seed(&srv->token_rng, cfg->seed, 0x70c3e5ULL);
	snprintf(srv->ups_id, sizeof(srv->ups_id), "ups-sandbox-client");
	snprintf(srv->ups_secret, sizeof(srv->ups_secret), "ups-sandbox-secret");
	snprintf(srv->fedex_id, sizeof(srv->fedex_id), "fedex-sandbox-key");
	snprintf(srv->fedex_secret, sizeof(srv->fedex_secret), "fedex-sandbox-secret");
	snprintf(srv->usps_id, sizeof(srv->usps_id), "usps-sandbox-client");
	snprintf(srv->usps_secret, sizeof(srv->usps_secret), "usps-sandbox-secret");
	snprintf(srv->dhl_key, sizeof(srv->dhl_key), "dhl-sandbox-key");
	snprintf(srv->lwa_id, sizeof(srv->lwa_id),
		 "amzn1.application-oa2-client.sandbox");
	snprintf(srv->lwa_secret, sizeof(srv->lwa_secret), "amzn-sandbox-lwa-secret");

	srv->base = event_base_new();
	if (!srv->base)
		goto out;
	int64_t t0 = sb_real_us();
	srv->world = sb_world_new(cfg);
	if (!srv->world) {
		fprintf(stderr, "hub-sandbox: out of memory building the world\n");
		goto out;
	}
	srv->hooks = sb_hooks_new(srv);
	srv->world->notify = sb_hooks_notify;
	srv->world->notify_arg = srv->hooks;
	srv->http = evhttp_new(srv->base);
	if (!srv->http)
		goto out;
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						      EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(srv->http, 16 * 1024 * 1024);
	evhttp_set_timeout(srv->http, 120);
	evhttp_set_gencb(srv->http, on_request, srv);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(srv->http, host,
									  (ev_uint16_t)port);
	if (!bs) {
		fprintf(stderr, "hub-sandbox: cannot listen on %s:%d: %s\n", host, port,
			strerror(errno));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	srv->port = port;
	struct event *sigint = evsignal_new(srv->base, SIGINT, on_signal, srv);
	struct event *sigterm = evsignal_new(srv->base, SIGTERM, on_signal, srv);
	if (sigint)
		evsignal_add(sigint, NULL);
	if (sigterm)
		evsignal_add(sigterm, NULL);
	srv->timer = event_new(srv->base, -1, EV_PERSIST, on_timer, srv);
	struct timeval tv = { 0, 200000 };
	if (srv->timer)
		evtimer_add(srv->timer, &tv);
	long norders = 0;
	for (int i = 0; i < srv->world->nstores; i++)
		norders += srv->world->stores[i]->norders;
	sb_log("seed %llu: %d stores, %ld orders, %d shipments built in %lld ms",
	       (unsigned long long)cfg->seed, srv->world->nstores, norders, srv->world->nships,
	       (long long)((sb_real_us() - t0) / 1000));
	printf("hub-sandbox listening on http://%s:%d\n", strchr(host, ':') ? "[::1]" : host,
	       port);
	fflush(stdout);
	sb_hooks_ping(srv->hooks);
	event_base_dispatch(srv->base);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	rc = 0;
out:
	if (srv->timer)
		event_free(srv->timer);
	if (srv->hooks)
		sb_hooks_free(srv->hooks);
	if (srv->http)
		evhttp_free(srv->http);
	holds_free();
	sb_world_free(srv->world);
	{
		size_t pos = 0;
		const char *k;
		void *val;
		while (sb_map_next(&srv->tokens, &pos, &k, &val) >= 0)
			free(val);
	}
	sb_map_release(&srv->tokens);
	sb_map_release(&srv->nonces);
	if (srv->base)
		event_base_free(srv->base);
	free(srv);
	return rc;
}
