/*
 * test_http_client.c - the libcurl-multi HTTP client against real servers
 * in the same process and on the same event_base: a libevent evhttp server
 * on 127.0.0.1:0 (plain, and TLS with certificates made for the test), and
 * a raw TCP server that misbehaves. Covers methods, headers and bodies,
 * connection reuse under concurrency, timeouts, the response size cap,
 * refused and dropped connections, invalid requests, cancellation on free,
 * proxies (configured ones used, environment ones ignored), TLS
 * verification (untrusted certificate and wrong host refused), and the
 * slots: requests in flight and per host never above the limits (counted by
 * the server), waiting requests served round robin across hosts, waiting
 * requests cancelled on free.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http_client.h"

/* ---- the test server ------------------------------------------------------------ */

struct delayed {
	struct delayed *next;
	struct evhttp_request *req;
	struct event *ev;
	struct server *srv;
};

struct server {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl; /* NULL: plain HTTP */
	int port;
	int connections; /* accepted */
	int requests;
	int delaying;     /* /delay requests being held now */
	int delaying_max; /* the most held at once */
	struct delayed *delays;
};

static struct bufferevent *server_bevcb(struct event_base *base, void *arg)
{
	struct server *srv = arg;

	srv->connections++;
	if (srv->ssl != NULL)
		return bufferevent_openssl_socket_new(base, -1, SSL_new(srv->ssl), BUFFEREVENT_SSL_ACCEPTING,
						      BEV_OPT_CLOSE_ON_FREE);
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static long query_long(struct evhttp_request *req, const char *name, long dflt)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	const char *v;
	long n = dflt;

	if (q == NULL || evhttp_parse_query_str(q, &params) != 0)
		return dflt;
	v = evhttp_find_header(&params, name);
	if (v != NULL)
		n = strtol(v, NULL, 10);
	evhttp_clear_headers(&params);
	return n;
}

static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg, **pp;
	(void)fd;
	(void)what;

	for (pp = &d->srv->delays; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	d->srv->delaying--;
	/* Safe even when the client has gone: libevent then just frees the request. */
	evhttp_send_reply(d->req, 200, "OK", NULL);
	event_free(d->ev);
	free(d);
}

static void reply_text(struct evhttp_request *req, int code, const char *text, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	evbuffer_add(out, text, len);
	evhttp_send_reply(req, code, "X", out);
	evbuffer_free(out);
}

static void server_cb(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	srv->requests++;
	if (strncmp(uri, "http://", 7) == 0) {
		/* Only a client talking to us as a proxy sends an absolute URI. */
		char body[600];
		int n = snprintf(body, sizeof(body), "proxied:%s", uri);
		reply_text(req, 200, body, (size_t)n);
		return;
	}
	if (path == NULL)
		path = "";
	if (strcmp(path, "/echo") == 0) {
		static const char *const methods[] = { "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH" };
		static const enum evhttp_cmd_type types[] = { EVHTTP_REQ_GET, EVHTTP_REQ_POST,
							      EVHTTP_REQ_HEAD, EVHTTP_REQ_PUT,
							      EVHTTP_REQ_DELETE, EVHTTP_REQ_PATCH };
		struct evbuffer *body = evhttp_request_get_input_buffer(req);
		const char *v;

		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			if (evhttp_request_get_command(req) == types[i])
				evhttp_add_header(out, "X-Method", methods[i]);
		}
		v = evhttp_find_header(in, "X-Test");
		evhttp_add_header(out, "X-Got-Test", v != NULL ? v : "(none)");
		v = evhttp_find_header(in, "Content-Type");
		evhttp_add_header(out, "X-Content-Type", v != NULL ? v : "(none)");
		v = evhttp_find_header(in, "User-Agent");
		evhttp_add_header(out, "X-User-Agent", v != NULL ? v : "(none)");
		v = evhttp_find_header(in, "Expect");
		evhttp_add_header(out, "X-Expect", v != NULL ? v : "(none)");
		evhttp_add_header(out, "X-Multi", "first");
		evhttp_add_header(out, "X-Multi", "second");
		evhttp_send_reply(req, 200, "OK", body);
	} else if (strcmp(path, "/delay") == 0) {
		struct delayed *d = calloc(1, sizeof(*d));
		long ms = query_long(req, "ms", 1000);
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		d->req = req;
		d->srv = srv;
		d->ev = evtimer_new(srv->base, delayed_fire, d);
		d->next = srv->delays;
		srv->delays = d;
		if (++srv->delaying > srv->delaying_max)
			srv->delaying_max = srv->delaying;
		evtimer_add(d->ev, &tv);
	} else if (strcmp(path, "/big") == 0) {
		long n = query_long(req, "n", 0);
		char *buf = malloc((size_t)n + 1);
		memset(buf, 'a', (size_t)n);
		reply_text(req, 200, buf, (size_t)n);
		free(buf);
	} else if (strcmp(path, "/stream") == 0) {
		/* Chunked: no Content-Length to refuse early on. */
		long n = query_long(req, "n", 0);
		char chunk[1024];
		memset(chunk, 'b', sizeof(chunk));
		evhttp_send_reply_start(req, 200, "OK");
		for (long sent = 0; sent < n; sent += (long)sizeof(chunk)) {
			struct evbuffer *b = evbuffer_new();
			evbuffer_add(b, chunk, n - sent < (long)sizeof(chunk) ? (size_t)(n - sent) : sizeof(chunk));
			evhttp_send_reply_chunk(req, b);
			evbuffer_free(b);
		}
		evhttp_send_reply_end(req);
	} else if (strcmp(path, "/status") == 0) {
		evhttp_add_header(out, "Retry-After", "7");
		reply_text(req, (int)query_long(req, "code", 500), "status", 6);
	} else {
		reply_text(req, 404, "not found", 9);
	}
}

static int bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void server_start(struct server *srv, struct event_base *base, SSL_CTX *ssl)
{
	struct evhttp_bound_socket *bound;

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	srv->ssl = ssl;
	srv->http = evhttp_new(base);
	assert_non_null(srv->http);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(srv->http, server_bevcb, srv);
	evhttp_set_gencb(srv->http, server_cb, srv);
	bound = evhttp_bind_socket_with_handle(srv->http, "127.0.0.1", 0);
	assert_non_null(bound);
	srv->port = bound_port(evhttp_bound_socket_get_fd(bound));
}

static void server_stop(struct server *srv)
{
	while (srv->delays != NULL) {
		struct delayed *d = srv->delays;
		srv->delays = d->next;
		evhttp_send_reply(d->req, 200, "OK", NULL);
		event_free(d->ev);
		free(d);
	}
	if (srv->http != NULL)
		evhttp_free(srv->http);
	srv->http = NULL;
}

/* ---- a raw server that drops connections -------------------------------------------- */

struct raw {
	struct evconnlistener *lis;
	struct bufferevent *bevs[16];
	int nbevs;
	int port;
};

static void raw_forget(struct raw *r, struct bufferevent *bev)
{
	for (int i = 0; i < r->nbevs; i++) {
		if (r->bevs[i] == bev) {
			r->bevs[i] = r->bevs[--r->nbevs];
			break;
		}
	}
	bufferevent_free(bev);
}

static void raw_written(struct bufferevent *bev, void *arg)
{
	raw_forget(arg, bev); /* everything sent: close mid-body */
}

static void raw_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	raw_forget(arg, bev);
}

static void raw_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly the start";
	char line[64] = { 0 };

	if (end.pos < 0)
		return;
	evbuffer_copyout(in, line, sizeof(line) - 1);
	if (strstr(line, "/nothing") != NULL) {
		raw_forget(arg, bev); /* close without a byte of response */
		return;
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_setcb(bev, NULL, raw_written, raw_event, arg);
	bufferevent_write(bev, partial, sizeof(partial) - 1);
}

static void raw_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int socklen,
		       void *arg)
{
	struct raw *r = arg;
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(lis), fd, BEV_OPT_CLOSE_ON_FREE);
	(void)sa;
	(void)socklen;

	assert_true(r->nbevs < 16);
	r->bevs[r->nbevs++] = bev;
	bufferevent_setcb(bev, raw_read, NULL, raw_event, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void raw_start(struct raw *r, struct event_base *base)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	memset(r, 0, sizeof(*r));
	r->lis = evconnlistener_new_bind(base, raw_accept, r, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
					 (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(r->lis);
	r->port = bound_port(evconnlistener_get_fd(r->lis));
}

static void raw_stop(struct raw *r)
{
	while (r->nbevs > 0)
		raw_forget(r, r->bevs[0]);
	evconnlistener_free(r->lis);
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	port = bound_port(fd);
	close(fd);
	return port;
}

/* ---- collecting results ----------------------------------------------------------------- */

struct result {
	int calls;
	bool inside_request;
	bool called_inside;
	int status;
	enum http_err err;
	char errmsg[512];
	char *body;
	size_t body_len;
	int64_t total_ms;
	int http_version;
	struct http_header hdr[32];
	size_t nhdr;
	/* a callback that tries to start a request: its return value */
	struct http_client *reenter;
	int reenter_rc;
};

static void on_done(void *arg, const struct http_resp *resp)
{
	struct result *r = arg;

	r->calls++;
	if (r->inside_request)
		r->called_inside = true;
	r->status = resp->status;
	r->err = resp->err;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", resp->errmsg);
	free(r->body);
	r->body = malloc(resp->body_len + 1);
	memcpy(r->body, resp->body, resp->body_len + 1);
	r->body_len = resp->body_len;
	r->total_ms = resp->total_ms;
	r->http_version = resp->http_version;
	for (size_t i = 0; i < r->nhdr; i++) {
		free((char *)r->hdr[i].name);
		free((char *)r->hdr[i].value);
	}
	r->nhdr = 0;
	for (size_t i = 0; i < resp->nheaders && i < 32; i++) {
		r->hdr[i].name = strdup(resp->headers[i].name);
		r->hdr[i].value = strdup(resp->headers[i].value);
		r->nhdr++;
	}
	/* Lookups ignore case; the first of repeated headers wins. */
	if (resp->err == HTTP_ERR_NONE && resp->nheaders > 0) {
		const char *a = http_resp_header(resp, "content-length");
		const char *b = http_resp_header(resp, "CONTENT-LENGTH");
		assert_true(a == b);
		if (http_resp_header(resp, "X-Multi") != NULL)
			assert_string_equal(http_resp_header(resp, "x-multi"), "first");
	}
	assert_null(http_resp_header(resp, "X-Not-There"));
	if (r->reenter != NULL) {
		struct http_req req = { .url = "http://127.0.0.1:1/" };
		r->reenter_rc = http_request(r->reenter, &req, on_done, r);
	}
}

static const char *hdr(const struct result *r, const char *name)
{
	for (size_t i = 0; i < r->nhdr; i++) {
		if (strcasecmp(r->hdr[i].name, name) == 0)
			return r->hdr[i].value;
	}
	return NULL;
}

static void result_clear(struct result *r)
{
	free(r->body);
	for (size_t i = 0; i < r->nhdr; i++) {
		free((char *)r->hdr[i].name);
		free((char *)r->hdr[i].value);
	}
	memset(r, 0, sizeof(*r));
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until every result in `rs` has been called back, or fails
 * the test after timeout_ms. */
static void run_until_done(struct event_base *base, struct result *rs, int n, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct timeval tv = { 0, 50000 };
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);

	event_add(t, &tv);
	for (;;) {
		int done = 0;
		for (int i = 0; i < n; i++)
			done += rs[i].calls > 0;
		if (done == n)
			break;
		if (mono_ms() > deadline)
			fail_msg("only %d of %d requests completed in %d ms", done, n, timeout_ms);
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
	for (int i = 0; i < n; i++) {
		assert_int_equal(rs[i].calls, 1);
		assert_false(rs[i].called_inside);
	}
}

static void run_for(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Starts a request, checking that the callback does not run inside. */
static void start(struct http_client *c, const struct http_req *req, struct result *r)
{
	r->inside_request = true;
	assert_int_equal(http_request(c, req, on_done, r), 0);
	r->inside_request = false;
	assert_int_equal(r->calls, 0);
}

/* One request, run to completion. */
static void fetch(struct event_base *base, struct http_client *c, const struct http_req *req, struct result *r)
{
	result_clear(r);
	start(c, req, r);
	run_until_done(base, r, 1, 10000);
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct fixture {
	struct event_base *base;
	struct server srv;
	struct http_client *client;
	char url[128];
	struct result r;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->base = event_base_new();
	server_start(&f->srv, f->base, NULL);
	f->client = http_client_new(f->base, NULL);
	assert_non_null(f->client);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_client_free(f->client);
	server_stop(&f->srv);
	result_clear(&f->r);
	event_base_free(f->base);
	free(f);
	return 0;
}

static const char *url(struct fixture *f, const char *path)
{
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d%s", f->srv.port, path);
	return f->url;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_get_post(void **state)
{
	struct fixture *f = *state;
	const struct http_header h[] = { { "X-Test", "hello world" } };
	const struct http_header json[] = { { "Content-Type", "application/json" } };
	const char body[] = "{\"a\":1}";
	struct http_req req = { .url = url(f, "/echo"), .headers = h, .nheaders = 1 };

	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_string_equal(f->r.errmsg, "");
	assert_int_equal(f->r.status, 200);
	assert_int_equal(f->r.http_version, 1);
	assert_string_equal(hdr(&f->r, "X-Method"), "GET");
	assert_string_equal(hdr(&f->r, "X-Got-Test"), "hello world");
	assert_string_equal(hdr(&f->r, "X-User-Agent"), PACKAGE_NAME "/" PACKAGE_VERSION);
	assert_int_equal(f->r.body_len, 0);
	assert_true(f->r.total_ms >= 0 && f->r.total_ms < 5000);

	req = (struct http_req){ .method = "POST", .url = url(f, "/echo"), .headers = json, .nheaders = 1,
				 .body = body, .body_len = strlen(body) };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.status, 200);
	assert_string_equal(hdr(&f->r, "X-Method"), "POST");
	assert_string_equal(hdr(&f->r, "X-Content-Type"), "application/json");
	assert_string_equal(hdr(&f->r, "X-Expect"), "(none)");
	assert_int_equal(f->r.body_len, strlen(body));
	assert_string_equal(f->r.body, body);

	/* No made-up form Content-Type when the caller gives none; binary bodies intact. */
	req = (struct http_req){ .method = "PUT", .url = url(f, "/echo"), .body = "a\0b", .body_len = 3 };
	fetch(f->base, f->client, &req, &f->r);
	assert_string_equal(hdr(&f->r, "X-Method"), "PUT");
	assert_string_equal(hdr(&f->r, "X-Content-Type"), "(none)");
	assert_int_equal(f->r.body_len, 3);
	assert_memory_equal(f->r.body, "a\0b", 3);

	/* A large body goes in one go, without a 100-continue round trip. */
	{
		size_t n = 300000;
		char *big = malloc(n);
		memset(big, 'z', n);
		req = (struct http_req){ .method = "POST", .url = url(f, "/echo"), .body = big, .body_len = n };
		fetch(f->base, f->client, &req, &f->r);
		free(big);
		assert_int_equal(f->r.status, 200);
		assert_string_equal(hdr(&f->r, "X-Expect"), "(none)");
		assert_int_equal(f->r.body_len, n);
	}

	req = (struct http_req){ .method = "PATCH", .url = url(f, "/echo"), .body = "p", .body_len = 1 };
	fetch(f->base, f->client, &req, &f->r);
	assert_string_equal(hdr(&f->r, "X-Method"), "PATCH");
	assert_string_equal(f->r.body, "p");

	req = (struct http_req){ .method = "DELETE", .url = url(f, "/echo") };
	fetch(f->base, f->client, &req, &f->r);
	assert_string_equal(hdr(&f->r, "X-Method"), "DELETE");

	req = (struct http_req){ .method = "HEAD", .url = url(f, "/echo") };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.status, 200);
	assert_string_equal(hdr(&f->r, "X-Method"), "HEAD");
	assert_int_equal(f->r.body_len, 0);

	/* Error statuses are responses, not transport errors; headers intact. */
	req = (struct http_req){ .url = url(f, "/status?code=503") };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.status, 503);
	assert_string_equal(hdr(&f->r, "retry-after"), "7");
	assert_string_equal(f->r.body, "status");

	req = (struct http_req){ .url = url(f, "/status?code=429") };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.status, 429);
}

static void test_concurrency_reuses_connections(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_host_connections = 4 };
	struct http_client *c = http_client_new(f->base, &o);
	struct result rs[40];
	struct http_stats st;
	char u[64];
	int first;

	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 40; i++) {
		char body[16];
		const struct http_header h[] = { { "X-Test", body } };
		struct http_req req = { .url = url(f, "/echo"), .headers = h, .nheaders = 1 };
		snprintf(body, sizeof(body), "req-%d", i);
		start(c, &req, &rs[i]);
	}
	run_until_done(f->base, rs, 40, 10000);
	for (int i = 0; i < 40; i++) {
		snprintf(u, sizeof(u), "req-%d", i);
		assert_int_equal(rs[i].err, HTTP_ERR_NONE);
		assert_int_equal(rs[i].status, 200);
		assert_string_equal(hdr(&rs[i], "X-Got-Test"), u);
		result_clear(&rs[i]);
	}
	first = f->srv.connections;
	assert_in_range(first, 1, 4);
	http_client_stats(c, &st);
	assert_int_equal(st.connections, (uint64_t)first);
	assert_int_equal(st.completed, 40);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(f->srv.requests, 40);

	/* A second wave reuses the kept-alive connections. */
	for (int i = 0; i < 20; i++) {
		struct http_req req = { .url = url(f, "/echo") };
		start(c, &req, &rs[i]);
	}
	run_until_done(f->base, rs, 20, 10000);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(rs[i].status, 200);
		result_clear(&rs[i]);
	}
	assert_int_equal(f->srv.connections, first);
	assert_true(f->srv.connections < 60);
	http_client_free(c);
}

/* Requests started from a completion callback, one after the other. */
struct chain {
	struct http_client *client;
	const char *url;
	int left;
	int done;
	bool failed;
};

static void chain_next(void *arg, const struct http_resp *resp)
{
	struct chain *ch = arg;
	struct http_req req = { .url = ch->url };

	ch->done++;
	if (resp->err != HTTP_ERR_NONE || resp->status != 200)
		ch->failed = true;
	if (--ch->left > 0 && http_request(ch->client, &req, chain_next, ch) != 0)
		ch->failed = true;
}

static void test_chain_from_callback(void **state)
{
	struct fixture *f = *state;
	struct chain ch = { .client = f->client, .url = url(f, "/echo"), .left = 5 };
	struct http_req req = { .url = ch.url };
	int64_t deadline = mono_ms() + 5000;

	assert_int_equal(http_request(f->client, &req, chain_next, &ch), 0);
	while (ch.done < 5 && mono_ms() < deadline)
		run_for(f->base, 20);
	assert_int_equal(ch.done, 5);
	assert_false(ch.failed);
	/* Sequential requests share one kept-alive connection. */
	assert_int_equal(f->srv.connections, 1);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct http_req req = { .url = url(f, "/delay?ms=5000"), .timeout_ms = 300 };

	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_TIMEOUT);
	assert_int_equal(f->r.status, 0);
	assert_string_not_equal(f->r.errmsg, "");
	assert_in_range(f->r.total_ms, 250, 2500);
	assert_true(http_err_transient(f->r.err));

	/* The client default applies when the request sets none. */
	{
		struct http_client_opts o = { .timeout_ms = 200 };
		struct http_client *c = http_client_new(f->base, &o);
		req.timeout_ms = 0;
		fetch(f->base, c, &req, &f->r);
		assert_int_equal(f->r.err, HTTP_ERR_TIMEOUT);
		assert_in_range(f->r.total_ms, 150, 2500);
		http_client_free(c);
	}
	/* A slow answer within the timeout is fine. */
	req = (struct http_req){ .url = url(f, "/delay?ms=100"), .timeout_ms = 3000 };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.status, 200);
}

static void test_size_cap(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_response_bytes = 1000 };
	struct http_client *c = http_client_new(f->base, &o);
	struct http_req req = { .url = url(f, "/big?n=1000") };

	fetch(f->base, c, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.body_len, 1000);

	/* Refused from the Content-Length... */
	req.url = url(f, "/big?n=1001");
	fetch(f->base, c, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_TOO_LARGE);
	assert_int_equal(f->r.status, 0);
	assert_int_equal(f->r.body_len, 0);
	assert_non_null(strstr(f->r.errmsg, "1000 bytes"));
	assert_false(http_err_transient(f->r.err));

	/* ...and counted while streaming when there is none. */
	req.url = url(f, "/stream?n=5000");
	fetch(f->base, c, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_TOO_LARGE);
	req.url = url(f, "/stream?n=900");
	fetch(f->base, c, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.body_len, 900);
	http_client_free(c);
}

static void test_connection_refused(void **state)
{
	struct fixture *f = *state;
	char u[64];
	struct http_req req = { .url = u };

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", closed_port());
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_CONNECT);
	assert_int_equal(f->r.status, 0);
	assert_non_null(strstr(f->r.errmsg, "connect"));
	assert_true(http_err_transient(f->r.err));
}

static void test_dropped(void **state)
{
	struct fixture *f = *state;
	struct raw raw;
	char u[64];
	struct http_req req = { .url = u };

	raw_start(&raw, f->base);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/partial", raw.port);
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_DROPPED);
	assert_int_equal(f->r.status, 0);
	assert_int_equal(f->r.body_len, 0);
	assert_true(http_err_transient(f->r.err));

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/nothing", raw.port);
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_DROPPED);
	raw_stop(&raw);
}

static void test_invalid_requests(void **state)
{
	struct fixture *f = *state;
	const struct http_header crlf[] = { { "X-Test", "a\r\nX-Injected: 1" } };
	const struct http_header badname[] = { { "X Test", "a" } };
	struct http_req req = { .url = "ftp://127.0.0.1/file" };
	struct http_stats st;

	/* Only http and https. */
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);
	req.url = "file:///etc/passwd";
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);
	req.url = "http://";
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);

	/* No header injection, no bad names, no odd methods. */
	req = (struct http_req){ .url = url(f, "/echo"), .headers = crlf, .nheaders = 1 };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);
	assert_non_null(strstr(f->r.errmsg, "CR/LF"));
	req = (struct http_req){ .url = url(f, "/echo"), .headers = badname, .nheaders = 1 };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);
	req = (struct http_req){ .method = "get", .url = url(f, "/echo") };
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_INVALID);
	assert_int_equal(f->srv.requests, 0);
	assert_false(http_err_transient(HTTP_ERR_INVALID));

	/* Programming errors: refused, no callback. */
	assert_int_equal(http_request(NULL, &req, on_done, &f->r), -1);
	assert_int_equal(http_request(f->client, NULL, on_done, &f->r), -1);
	assert_int_equal(http_request(f->client, &req, NULL, &f->r), -1);
	req = (struct http_req){ .url = NULL };
	assert_int_equal(http_request(f->client, &req, on_done, &f->r), -1);
	req = (struct http_req){ .url = url(f, "/echo"), .body = NULL, .body_len = 5 };
	assert_int_equal(http_request(f->client, &req, on_done, &f->r), -1);
	http_client_stats(f->client, &st);
	assert_int_equal(st.started, 6);
	assert_int_equal(st.failed, 6);
	assert_int_equal(st.in_flight, 0);
}

static void test_free_cancels(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = http_client_new(f->base, NULL);
	struct http_req slow = { .url = url(f, "/delay?ms=5000") };
	struct result rs[2];

	memset(rs, 0, sizeof(rs));
	start(c, &slow, &rs[0]);
	start(c, &slow, &rs[1]);
	rs[0].reenter = c;
	run_for(f->base, 200);
	assert_int_equal(rs[0].calls, 0);
	http_client_free(c);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rs[i].calls, 1);
		assert_int_equal(rs[i].err, HTTP_ERR_CANCELLED);
		assert_non_null(strstr(rs[i].errmsg, "shut down"));
	}
	/* New requests from a cancellation callback are refused. */
	assert_int_equal(rs[0].reenter_rc, -1);
	run_for(f->base, 50);
	assert_int_equal(rs[0].calls, 1);
	assert_int_equal(rs[1].calls, 1);
	result_clear(&rs[0]);
	result_clear(&rs[1]);
}

/* A burst far above the cap: curl never holds more than max_in_flight, the
 * rest wait their turn and all complete. */
static void test_in_flight_cap(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_in_flight = 3 };
	struct http_client *c = http_client_new(f->base, &o);
	struct http_req req = { .url = url(f, "/delay?ms=50") };
	struct result rs[20];
	struct http_stats st;

	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 20; i++)
		start(c, &req, &rs[i]);
	http_client_stats(c, &st);
	assert_int_equal(st.running, 3);
	assert_int_equal(st.queued, 17);
	assert_int_equal(st.in_flight, 20);
	run_until_done(f->base, rs, 20, 20000);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(rs[i].err, HTTP_ERR_NONE);
		assert_int_equal(rs[i].status, 200);
		result_clear(&rs[i]);
	}
	assert_int_equal(f->srv.requests, 20);
	assert_in_range(f->srv.delaying_max, 1, 3);
	http_client_stats(c, &st);
	assert_int_equal(st.running_peak, 3);
	assert_int_equal(st.queued_total, 17);
	assert_int_equal(st.running, 0);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.in_flight, 0);
	http_client_free(c);
}

/* The per-host limit holds however many slots are free in total. */
static void test_host_cap(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_in_flight = 64, .max_host_connections = 2 };
	struct http_client *c = http_client_new(f->base, &o);
	struct http_req req = { .url = url(f, "/delay?ms=50") };
	struct result rs[10];
	struct http_stats st;

	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 10; i++)
		start(c, &req, &rs[i]);
	run_until_done(f->base, rs, 10, 20000);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(rs[i].status, 200);
		result_clear(&rs[i]);
	}
	assert_in_range(f->srv.delaying_max, 1, 2);
	assert_in_range(f->srv.connections, 1, 2);
	http_client_stats(c, &st);
	assert_int_equal(st.running_peak, 2);
	assert_int_equal(st.queued_total, 8);
	http_client_free(c);
}

/* Order of completion, for the fairness test. */
struct ordered {
	int *next_rank;
	int rank;
};

static void on_ordered(void *arg, const struct http_resp *resp)
{
	struct ordered *o = arg;

	assert_int_equal(resp->status, 200);
	o->rank = ++*o->next_rank;
}

/* A host with a long queue does not hold back another host's request:
 * freed slots go round robin across the hosts that wait. */
static void test_hosts_round_robin(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_in_flight = 2 };
	struct http_client *c = http_client_new(f->base, &o);
	struct server other;
	struct ordered a[12], b;
	struct http_req req = { .url = url(f, "/delay?ms=200") };
	char burl[96];
	int rank = 0;
	int64_t deadline = mono_ms() + 20000;

	server_start(&other, f->base, NULL);
	snprintf(burl, sizeof(burl), "http://127.0.0.1:%d/echo", other.port);
	for (int i = 0; i < 12; i++) {
		a[i] = (struct ordered){ .next_rank = &rank };
		assert_int_equal(http_request(c, &req, on_ordered, &a[i]), 0);
	}
	b = (struct ordered){ .next_rank = &rank };
	req.url = burl;
	assert_int_equal(http_request(c, &req, on_ordered, &b), 0);
	while (rank < 13 && mono_ms() < deadline)
		run_for(f->base, 20);
	assert_int_equal(rank, 13);
	/* The first freed slot goes to host A's next request, the second to
	 * host B (next in the ring): B's quick answer comes third, not after
	 * all of A's. Within host A, first come first served: its last
	 * request is among the last two to complete. */
	assert_in_range(b.rank, 3, 4);
	assert_in_range(a[11].rank, 12, 13);
	assert_int_equal(other.requests, 1);
	http_client_free(c);
	server_stop(&other);
}

/* Requests still waiting for a slot are cancelled on free like running ones. */
static void test_free_cancels_waiting(void **state)
{
	struct fixture *f = *state;
	struct http_client_opts o = { .max_in_flight = 1 };
	struct http_client *c = http_client_new(f->base, &o);
	struct http_req slow = { .url = url(f, "/delay?ms=5000") };
	struct result rs[3];
	struct http_stats st;

	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 3; i++)
		start(c, &slow, &rs[i]);
	http_client_stats(c, &st);
	assert_int_equal(st.running, 1);
	assert_int_equal(st.queued, 2);
	run_for(f->base, 100);
	http_client_free(c);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rs[i].calls, 1);
		assert_int_equal(rs[i].err, HTTP_ERR_CANCELLED);
		result_clear(&rs[i]);
	}
	assert_int_equal(f->srv.requests, 1);
}

static void test_proxy(void **state)
{
	struct fixture *f = *state;
	char bogus[64], proxy[64];
	struct http_req req = { .url = url(f, "/echo") };
	struct http_client_opts o = { 0 };
	struct http_client *c;

	/* Environment proxies (here: a dead one) are ignored. */
	snprintf(bogus, sizeof(bogus), "http://127.0.0.1:%d", closed_port());
	setenv("http_proxy", bogus, 1);
	setenv("HTTPS_PROXY", bogus, 1);
	setenv("ALL_PROXY", bogus, 1);
	c = http_client_new(f->base, NULL);
	fetch(f->base, c, &req, &f->r);
	http_client_free(c);
	unsetenv("http_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.status, 200);

	/* A configured proxy is used: our server sees the absolute URI. */
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", f->srv.port);
	o.proxy = proxy;
	c = http_client_new(f->base, &o);
	req.url = "http://upstream.invalid/orders.json?page=2";
	fetch(f->base, c, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_string_equal(f->r.body, "proxied:http://upstream.invalid/orders.json?page=2");
	http_client_free(c);
}

/* ---- TLS ---------------------------------------------------------------------------------------- */

/* A self-signed certificate for `san`, with its key. */
static void make_cert(const char *cn, const char *san, long serial, X509 **cert, EVP_PKEY **key)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(pkey);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	*cert = x;
	*key = pkey;
}

static SSL_CTX *server_ctx(X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	return ctx;
}

static void test_tls_verification(void **state)
{
	struct fixture *f = *state;
	X509 *good_cert, *wrong_cert;
	EVP_PKEY *good_key, *wrong_key;
	SSL_CTX *good_ctx, *wrong_ctx;
	struct server good, wrong;
	char ca_path[] = "/tmp/hub-test-ca-XXXXXX";
	struct http_client_opts o = { 0 };
	struct http_client *trusting;
	char u[80];
	struct http_req req = { .url = u };
	int fd;
	FILE *fp;

	make_cert("hub test good", "IP:127.0.0.1", 1, &good_cert, &good_key);
	make_cert("hub test wrong", "DNS:wrong.example", 2, &wrong_cert, &wrong_key);
	good_ctx = server_ctx(good_cert, good_key);
	wrong_ctx = server_ctx(wrong_cert, wrong_key);
	server_start(&good, f->base, good_ctx);
	server_start(&wrong, f->base, wrong_ctx);

	fd = mkstemp(ca_path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	PEM_write_X509(fp, good_cert);
	PEM_write_X509(fp, wrong_cert);
	fclose(fp);

	/* The system store does not know our certificate: refused. */
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/echo", good.port);
	fetch(f->base, f->client, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_TLS);
	assert_false(http_err_transient(f->r.err));

	/* Trusted through the configured CA file: accepted. */
	o.ca_file = ca_path;
	trusting = http_client_new(f->base, &o);
	fetch(f->base, trusting, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_NONE);
	assert_int_equal(f->r.status, 200);
	assert_string_equal(hdr(&f->r, "X-Method"), "GET");

	/* Trusted, but issued for another host: refused. */
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/echo", wrong.port);
	fetch(f->base, trusting, &req, &f->r);
	assert_int_equal(f->r.err, HTTP_ERR_TLS);
	assert_int_equal(wrong.requests, 0);
	assert_int_equal(good.requests, 1);

	http_client_free(trusting);
	server_stop(&good);
	server_stop(&wrong);
	unlink(ca_path);
	SSL_CTX_free(good_ctx);
	SSL_CTX_free(wrong_ctx);
	X509_free(good_cert);
	X509_free(wrong_cert);
	EVP_PKEY_free(good_key);
	EVP_PKEY_free(wrong_key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_post, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_reuses_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_flight_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hosts_round_robin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_verification, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
