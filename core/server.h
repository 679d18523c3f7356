/*
 * server.h - hubd's one inbound HTTP listener (evhttp): routing by method
 * and path pattern, JSON replies and errors, size and time limits, and
 * per-source request limits. Webhooks (/hooks/...), the admin API (/v1/...),
 * /metrics, /healthz and /readyz are routes registered by their modules.
 *
 * Threads: loop thread only. A handler may reply later (after a store
 * commit): it keeps the struct server_req and calls one of the reply
 * functions exactly once; the request is freed by that call. If the client
 * went away meanwhile, the reply is dropped safely.
 */
#ifndef HUB_SERVER_H
#define HUB_SERVER_H

#include <stddef.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

struct server;

/* Roles, ordered: a role may do what the roles below it may. */
enum role { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_OPERATOR = 2, ROLE_ADMIN = 3 };

/* Who is calling, once authenticated (NULL for unauthenticated routes). */
struct auth_info {
	char name[64];      /* token name, for the audit log */
	enum role role;
	char merchant[64];  /* non-empty: only this merchant's data is visible */
};

#define SERVER_MAX_PARAMS 4

/* One inbound request being handled. */
struct server_req {
	struct server *srv;
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	char *params[SERVER_MAX_PARAMS]; /* decoded {name} segments, in order */
	int nparams;
	struct evkeyvalq query;          /* decoded query parameters */
	struct auth_info auth;
	const char *peer;                /* client address text */
	void *route_arg;
};

typedef void (*route_fn)(struct server_req *r);

/* Authentication hook: decides who sends r (fills r->auth) and calls
 * server_dispatch(r) or replies itself (401). May finish asynchronously. */
typedef void (*server_auth_fn)(struct server_req *r, void *arg);

struct route {
	const char *method;   /* "GET", "POST", "PUT", "DELETE" */
	const char *pattern;  /* "/v1/connectors/{name}/status" */
	route_fn fn;
	enum role min_role;   /* ROLE_NONE: no token needed */
	int allow_merchant;   /* merchant-scoped tokens may call it */
};

struct server_opts {
	const char *host;
	int port;               /* 0: any free port (see server_port) */
	size_t max_body;        /* 413 above */
	size_t max_headers;
	int timeout_s;          /* idle/slow clients dropped */
	double rate_per_s;      /* per source address */
	double burst;
	const char *tls_cert;   /* both or neither */
	const char *tls_key;
};

/* Creates the listener and binds it. Returns NULL and writes a one-line
 * reason into err (e.g. "127.0.0.1:8080: Address already in use") on
 * failure. */
struct server *server_new(struct event_base *base, const struct server_opts *opts,
			  char *err, size_t err_size);

/* Stops accepting new connections; requests in flight may still reply. */
void server_stop_accepting(struct server *srv);
/* Number of requests accepted and not replied to yet. */
int server_inflight(const struct server *srv);
/* Frees the server (stop accepting first). */
void server_free(struct server *srv);
/* The bound port (useful with port 0). */
int server_port(const struct server *srv);

/* Registers routes; `routes` must outlive the server. `arg` is given to
 * each handler as r->route_arg. Returns 0 or -1. */
int server_add_routes(struct server *srv, const struct route *routes, size_t n, void *arg);
/* Installs the authentication hook for routes with min_role > ROLE_NONE. */
void server_set_auth(struct server *srv, server_auth_fn fn, void *arg);
/* After authentication: checks role and scope, then runs the handler. */
void server_dispatch(struct server_req *r);
/* Every registered route, as "METHOD pattern" strings (for the spec test). */
json_t *server_routes_json(const struct server *srv);

/* Sets the per-source limiter: it returns the wait in ms before `peer` may
 * send again (> 0: the request is refused with 429 and Retry-After), or 0.
 * When unset, no per-source limit applies. */
typedef long (*server_limit_fn)(void *arg, const char *peer);
void server_set_limiter(struct server *srv, server_limit_fn fn, void *arg);

/* Request accessors. */
const char *server_header(const struct server_req *r, const char *name);
/* The raw body (NUL-terminated copy owned by r) and its length. */
const char *server_body(struct server_req *r, size_t *len);
/* The raw body handed over: a malloc'd NUL-terminated copy the caller frees
 * (NULL when out of memory), its length in *len. r keeps no body after. */
char *server_take_body(struct server_req *r, size_t *len);
/* Parses the body as a JSON object; on failure replies 400 itself and
 * returns NULL. New reference. */
json_t *server_body_json(struct server_req *r);
const char *server_query(const struct server_req *r, const char *key);
/* Path of the request as received (borrowed). */
const char *server_path(const struct server_req *r);

/* Replies; each frees r. server_reply_json steals `body`. */
void server_reply_json(struct server_req *r, int status, json_t *body);
void server_reply_text(struct server_req *r, int status, const char *content_type,
		       const char *text, size_t len);
/* {"error":{"code":code,"message":...}} */
void server_reply_error(struct server_req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Adds a response header before replying. */
void server_add_header(struct server_req *r, const char *name, const char *value);

#endif
