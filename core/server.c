/*
 * server.c - the inbound HTTP listener: evhttp with one generic callback
 * that matches routes, enforces limits, authenticates through a hook and
 * replies in JSON. See server.h.
 */
#include "config.h"
#include "server.h"
#include "log.h"

#include <hub/sdk.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct route_set {
	const struct route *routes;
	size_t n;
	void *arg;
	struct route_set *next;
};

struct server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	SSL_CTX *ssl;
	struct route_set *sets;
	server_auth_fn auth;
	void *auth_arg;
	server_limit_fn limit;
	void *limit_arg;
	int port;
	int inflight;
};

/* Internal state of a server_req beyond the public fields. */
struct req_impl {
	struct server_req pub;
	const struct route *route;
	char *body;
	size_t body_len;
	int body_read;
	char peer_buf[64];
};

static struct bufferevent *ssl_bevcb(struct event_base *base, void *arg)
{
	struct server *srv = arg;
	SSL *ssl = SSL_new(srv->ssl);

	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void generic_cb(struct evhttp_request *req, void *arg);

struct server *server_new(struct event_base *base, const struct server_opts *opts, char *err,
			  size_t err_size)
{
	struct server *srv = calloc(1, sizeof(*srv));
	evutil_socket_t fd;
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof(ss);

	if (!srv) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	srv->base = base;
	srv->http = evhttp_new(base);
	if (!srv->http) {
		snprintf(err, err_size, "cannot create the HTTP server");
		goto fail;
	}
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)opts->max_body);
	evhttp_set_max_headers_size(srv->http, (ev_ssize_t)opts->max_headers);
	evhttp_set_timeout(srv->http, opts->timeout_s);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						      EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(srv->http, "application/json");
	evhttp_set_gencb(srv->http, generic_cb, srv);

	if (opts->tls_cert && opts->tls_key) {
		srv->ssl = SSL_CTX_new(TLS_server_method());
		if (!srv->ssl || SSL_CTX_use_certificate_chain_file(srv->ssl, opts->tls_cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(srv->ssl, opts->tls_key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(srv->ssl) != 1) {
			unsigned long e = ERR_get_error();
			snprintf(err, err_size, "TLS certificate %s / key %s: %s", opts->tls_cert, opts->tls_key,
				 e ? ERR_reason_error_string(e) : "cannot load");
			goto fail;
		}
		SSL_CTX_set_min_proto_version(srv->ssl, TLS1_2_VERSION);
		evhttp_set_bevcb(srv->http, ssl_bevcb, srv);
	}

	srv->sock = evhttp_bind_socket_with_handle(srv->http, opts->host, (ev_uint16_t)opts->port);
	if (!srv->sock) {
		int e = EVUTIL_SOCKET_ERROR();
		snprintf(err, err_size, "cannot listen on %s:%d: %s", opts->host, opts->port,
			 e ? evutil_socket_error_to_string(e) : "address not usable");
		goto fail;
	}
	fd = evhttp_bound_socket_get_fd(srv->sock);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return srv;
fail:
	server_free(srv);
	return NULL;
}

void server_stop_accepting(struct server *srv)
{
	if (srv && srv->sock) {
		evhttp_del_accept_socket(srv->http, srv->sock);
		srv->sock = NULL;
	}
}

int server_inflight(const struct server *srv)
{
	return srv ? srv->inflight : 0;
}

int server_port(const struct server *srv)
{
	return srv->port;
}

void server_free(struct server *srv)
{
	struct route_set *s, *next;

	if (!srv)
		return;
	if (srv->http)
		evhttp_free(srv->http);
	if (srv->ssl)
		SSL_CTX_free(srv->ssl);
	for (s = srv->sets; s; s = next) {
		next = s->next;
		free(s);
	}
	free(srv);
}

int server_add_routes(struct server *srv, const struct route *routes, size_t n, void *arg)
{
	struct route_set *s = calloc(1, sizeof(*s)), **tail;

	if (!s)
		return -1;
	s->routes = routes;
	s->n = n;
	s->arg = arg;
	for (tail = &srv->sets; *tail; tail = &(*tail)->next)
		;
	*tail = s;
	return 0;
}

void server_set_auth(struct server *srv, server_auth_fn fn, void *arg)
{
	srv->auth = fn;
	srv->auth_arg = arg;
}

void server_set_limiter(struct server *srv, server_limit_fn fn, void *arg)
{
	srv->limit = fn;
	srv->limit_arg = arg;
}

json_t *server_routes_json(const struct server *srv)
{
	json_t *arr = json_array();

	for (const struct route_set *s = srv->sets; s; s = s->next)
		for (size_t i = 0; i < s->n; i++)
			json_array_append_new(arr, json_sprintf("%s %s", s->routes[i].method,
								s->routes[i].pattern));
	return arr;
}

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
}

/*
 * Matches path against pattern segment by segment; {x} captures one
 * decoded segment. Returns 1 on a match with params filled (caller frees).
 */
static int match(const char *pattern, const char *path, char **params, int *nparams)
{
	const char *p = pattern, *q = path;
	int n = 0;

	while (*p && *q) {
		if (*p != '/' || *q != '/')
			goto nomatch;
		p++;
		q++;
		const char *pe = strchr(p, '/'), *qe = strchr(q, '/');
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		size_t ql = qe ? (size_t)(qe - q) : strlen(q);
		if (pl > 1 && p[0] == '{' && p[pl - 1] == '}') {
			char raw[512];
			if (ql == 0 || ql >= sizeof(raw) || n == SERVER_MAX_PARAMS)
				goto nomatch;
			memcpy(raw, q, ql);
			raw[ql] = '\0';
			params[n] = evhttp_uridecode(raw, 0, NULL);
			if (!params[n])
				goto nomatch;
			n++;
		} else if (pl != ql || memcmp(p, q, pl) != 0) {
			goto nomatch;
		}
		p += pl;
		q += ql;
	}
	if (*p || *q)
		goto nomatch;
	*nparams = n;
	return 1;
nomatch:
	for (int i = 0; i < n; i++)
		free(params[i]);
	return 0;
}

static void req_free(struct req_impl *ri)
{
	for (int i = 0; i < ri->pub.nparams; i++)
		free(ri->pub.params[i]);
	evhttp_clear_headers(&ri->pub.query);
	free(ri->body);
	ri->pub.srv->inflight--;
	free(ri);
}

static void add_common_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

void server_add_header(struct server_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

void server_reply_text(struct server_req *r, int status, const char *content_type, const char *text,
		       size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

	add_common_headers(r->req);
	evhttp_remove_header(h, "Content-Type");
	evhttp_add_header(h, "Content-Type", content_type);
	if (buf && len)
		evbuffer_add(buf, text, len);
	evhttp_send_reply(r->req, status, NULL, buf);
	if (buf)
		evbuffer_free(buf);
	req_free((struct req_impl *)r);
}

void server_reply_json(struct server_req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	if (!text)
		text = strdup("{}");
	server_reply_text(r, status, "application/json", text, text ? strlen(text) : 0);
	free(text);
	json_decref(body);
}

void server_reply_error(struct server_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hub_utf8_trim(msg); /* the message may quote upstream or plugin text */
	server_reply_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

const char *server_header(const struct server_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *server_body(struct server_req *r, size_t *len)
{
	struct req_impl *ri = (struct req_impl *)r;

	if (!ri->body_read) {
		struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
		size_t n = evbuffer_get_length(in);
		ri->body = malloc(n + 1);
		if (ri->body) {
			evbuffer_copyout(in, ri->body, n);
			ri->body[n] = '\0';
			ri->body_len = n;
		}
		ri->body_read = 1;
	}
	*len = ri->body_len;
	return ri->body ? ri->body : "";
}

char *server_take_body(struct server_req *r, size_t *len)
{
	struct req_impl *ri = (struct req_impl *)r;
	char *body;

	server_body(r, len);
	body = ri->body;
	ri->body = NULL;
	ri->body_len = 0;
	return body;
}

json_t *server_body_json(struct server_req *r)
{
	size_t len;
	const char *body = server_body(r, &len);
	json_error_t jerr;
	json_t *v;

	if (len == 0) {
		server_reply_error(r, 400, "invalid_json", "request body: a JSON object is required");
		return NULL;
	}
	v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		server_reply_error(r, 400, "invalid_json", "request body: line %d column %d: %s", jerr.line,
				   jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		server_reply_error(r, 400, "invalid_json", "request body: must be a JSON object");
		return NULL;
	}
	return v;
}

const char *server_query(const struct server_req *r, const char *key)
{
	return evhttp_find_header(&r->query, key);
}

const char *server_path(const struct server_req *r)
{
	return evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r->req));
}

void server_dispatch(struct server_req *r)
{
	struct req_impl *ri = (struct req_impl *)r;
	const struct route *rt = ri->route;

	if (rt->min_role > ROLE_NONE) {
		if (r->auth.role == ROLE_NONE) {
			server_add_header(r, "WWW-Authenticate", "Bearer");
			server_reply_error(r, 401, "unauthorized",
					   "missing or invalid token: send Authorization: Bearer <token>");
			return;
		}
		if (r->auth.merchant[0] && !rt->allow_merchant) {
			server_reply_error(r, 403, "forbidden",
					   "token %s is scoped to merchant %s and cannot call %s %s",
					   r->auth.name, r->auth.merchant, rt->method, rt->pattern);
			return;
		}
		if (r->auth.role < rt->min_role) {
			static const char *const names[] = {"none", "viewer", "operator", "admin"};
			server_reply_error(r, 403, "forbidden", "token %s has role %s; %s %s needs %s",
					   r->auth.name, names[r->auth.role], rt->method, rt->pattern,
					   names[rt->min_role]);
			return;
		}
	}
	rt->fn(r);
}

static void generic_cb(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	struct req_impl *ri;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *method = method_name(evhttp_request_get_command(req));
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *peer_addr = NULL;
	ev_uint16_t peer_port = 0;
	int path_matched = 0;

	ri = calloc(1, sizeof(*ri));
	if (!ri) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	srv->inflight++;
	ri->pub.srv = srv;
	ri->pub.req = req;
	ri->pub.method = evhttp_request_get_command(req);
	ri->pub.query.tqh_first = NULL;
	ri->pub.query.tqh_last = &ri->pub.query.tqh_first;
	if (conn)
		evhttp_connection_get_peer(conn, &peer_addr, &peer_port);
	snprintf(ri->peer_buf, sizeof(ri->peer_buf), "%s", peer_addr ? peer_addr : "?");
	ri->pub.peer = ri->peer_buf;

	if (!path || !*path) {
		server_reply_error(&ri->pub, 400, "bad_request", "request has no path");
		return;
	}
	if (q && evhttp_parse_query_str(q, &ri->pub.query) < 0) {
		server_reply_error(&ri->pub, 400, "bad_request", "query string is malformed");
		return;
	}
	if (srv->limit) {
		long wait_ms = srv->limit(srv->limit_arg, ri->pub.peer);
		if (wait_ms > 0) {
			char ra[32];
			snprintf(ra, sizeof(ra), "%ld", (wait_ms + 999) / 1000);
			server_add_header(&ri->pub, "Retry-After", ra);
			server_reply_error(&ri->pub, 429, "rate_limited",
					   "too many requests from %s; retry after %s s", ri->pub.peer, ra);
			return;
		}
	}

	for (struct route_set *s = srv->sets; s; s = s->next) {
		for (size_t i = 0; i < s->n; i++) {
			const struct route *rt = &s->routes[i];
			int n = 0;
			if (!match(rt->pattern, path, ri->pub.params, &n))
				continue;
			path_matched = 1;
			if (strcmp(rt->method, method) != 0) {
				for (int k = 0; k < n; k++)
					free(ri->pub.params[k]);
				continue;
			}
			ri->pub.nparams = n;
			ri->route = rt;
			ri->pub.route_arg = s->arg;
			if (rt->min_role > ROLE_NONE && srv->auth)
				srv->auth(&ri->pub, srv->auth_arg);
			else
				server_dispatch(&ri->pub);
			return;
		}
	}
	if (path_matched)
		server_reply_error(&ri->pub, 405, "method_not_allowed", "%s is not allowed on %s", method, path);
	else
		server_reply_error(&ri->pub, 404, "not_found", "no route for %s %s", method, path);
}
