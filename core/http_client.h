/*
 * http_client.h - outbound HTTP for hubd: libcurl's multi "socket"
 * interface driven by the libevent loop, so thousands of requests to
 * upstream APIs run concurrently on the one loop thread without blocking it.
 *
 * One client holds one curl multi handle, hence one connection cache:
 * connections are kept alive and reused, HTTP/2 is negotiated over TLS
 * where the server offers it and then multiplexes requests to one host on
 * one connection. The safety settings are not options: TLS peer and host
 * verification are always on (only the CA file is configurable), only http
 * and https URLs are allowed, redirects are not followed (the caller sees
 * the 3xx), proxies come from the configuration only (never from
 * http_proxy and friends in the environment), and responses are capped in
 * size (also after decompression).
 *
 * Requests beyond the limits wait in the client, without a curl handle
 * (so a burst of thousands costs a few hundred bytes each, not curl's
 * buffers): at most max_in_flight requests are handed to curl at once, and
 * at most max_host_connections of them for any one host. Waiting requests
 * leave in order per host and round robin across hosts, so one slow or busy
 * host cannot hold back the others. Timeouts count from the moment a
 * request is handed to curl.
 *
 * Every request completes through its callback, exactly once, on the loop
 * thread, and never from inside http_request(). All functions must be
 * called from the thread running the event_base given to http_client_new().
 */
#ifndef HUB_HTTP_CLIENT_H
#define HUB_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;

/* Client settings. Zero/NULL fields take the defaults noted; strings are
 * copied by http_client_new(). */
struct http_client_opts {
	const char *ca_file;          /* PEM bundle to verify servers with; NULL = system store */
	const char *proxy;            /* "http://host:port" etc.; NULL = no proxy at all */
	const char *no_proxy;         /* hosts to reach directly despite `proxy` (curl syntax) */
	const char *user_agent;       /* default "hub/<version>" */
	size_t max_response_bytes;    /* body cap after decoding (default 16 MiB) */
	long connect_timeout_ms;      /* default 10000 */
	long timeout_ms;              /* whole-request default (default 60000) */
	long max_host_connections;    /* connections per host, and requests handed to curl per
				       * host at once (default 64) */
	long max_total_connections;   /* connections open at once, all hosts, idle ones kept for
				       * reuse included (default 1024) */
	long max_in_flight;           /* requests handed to curl at once (default 256) */
};

/* A request or response header. */
struct http_header {
	const char *name;
	const char *value;
};

/* A request. Everything is copied by http_request(); the caller may free
 * it as soon as http_request() returns. */
struct http_req {
	const char *method;                /* "GET" (default when NULL), "POST", "PUT", ... */
	const char *url;                   /* absolute http:// or https:// URL */
	const struct http_header *headers; /* sent as given; names and values must not contain CR/LF */
	size_t nheaders;
	const void *body; /* sent when body_len > 0 (or always for POST/PUT/PATCH) */
	size_t body_len;
	long timeout_ms; /* whole request; 0 = the client's default */
};

/*
 * Why a request got no (complete) response. Never renumbered; new values
 * are appended.
 */
enum http_err {
	HTTP_ERR_NONE = 0,      /* a response arrived (whatever its status) */
	HTTP_ERR_CONNECT = 1,   /* name resolution or TCP connect failed */
	HTTP_ERR_TIMEOUT = 2,   /* connect or whole-request timeout */
	HTTP_ERR_TOO_LARGE = 3, /* response body over the cap: transfer aborted */
	HTTP_ERR_TLS = 4,       /* handshake or certificate verification failed */
	HTTP_ERR_OTHER = 5,     /* anything else curl reports */
	HTTP_ERR_DROPPED = 6,   /* connection closed or reset before the response was complete */
	HTTP_ERR_CANCELLED = 7, /* the client was freed while the request was in flight */
	HTTP_ERR_INVALID = 8,   /* the request itself is unusable (URL, scheme, header) */
};

/*
 * A completed request, borrowed by the callback: everything in it is freed
 * when the callback returns.
 */
struct http_resp {
	int status;                        /* HTTP status, 0 when err != HTTP_ERR_NONE */
	enum http_err err;
	const char *errmsg;                /* "" when err == HTTP_ERR_NONE, else what went wrong */
	const struct http_header *headers; /* of the final response, in order received */
	size_t nheaders;
	const char *body; /* NUL-terminated for convenience (the NUL is not counted) */
	size_t body_len;
	int64_t total_ms;  /* from http_request() to completion */
	int http_version;  /* 1 or 2 (0 when no response) */
};

/* Receives a completed request. Called exactly once per accepted request. */
typedef void (*http_done_fn)(void *arg, const struct http_resp *resp);

/*
 * Creates a client on `base` with `opts` (NULL: defaults). Calls
 * curl_global_init() (reference counted by libcurl, and thread-safe in the
 * libcurl Debian ships). Returns NULL when out of memory or when
 * libcurl refuses the settings (logged). Free with http_client_free().
 */
struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts);

/*
 * Aborts every request still in flight, calling their callbacks (from
 * inside this call) with HTTP_ERR_CANCELLED, closes all connections and
 * frees the client. Callbacks called then must not start new requests on
 * it (http_request() refuses them). Must not be called from inside one of
 * the client's callbacks.
 */
void http_client_free(struct http_client *client);

/*
 * Starts `req`. Returns 0 when accepted: `cb(arg, resp)` will then be
 * called exactly once from the loop, never from inside http_request(), also
 * for requests that fail early (invalid URL or header: HTTP_ERR_INVALID).
 * Returns -1, and never calls `cb`, when an argument is NULL, when out of
 * memory, or when the client is being freed.
 */
int http_request(struct http_client *client, const struct http_req *req, http_done_fn cb, void *arg);

/*
 * Returns the value of the first response header named `name` (compared
 * without regard to case), or NULL. Borrowed from `resp`.
 */
const char *http_resp_header(const struct http_resp *resp, const char *name);

/* Whether a transport error is worth retrying, for retry_classify():
 * connect, timeout, dropped, cancelled (shutdown, not the request's fault)
 * and other (unclassified curl failures). Not: TLS (a certificate problem
 * does not fix itself), too large, invalid. */
bool http_err_transient(enum http_err err);

/* Returns a short name: "none", "connect", "timeout", ... (static). */
const char *http_err_name(enum http_err err);

/* Counters for metrics and tests. */
struct http_stats {
	uint64_t started;      /* requests accepted */
	uint64_t completed;    /* callbacks called */
	uint64_t in_flight;    /* accepted, callback not yet called (running + queued + failing) */
	uint64_t connections;  /* connections opened (TCP + TLS), over the client's life */
	uint64_t failed;       /* completed with err != HTTP_ERR_NONE */
	uint64_t running;      /* handed to curl now (never above max_in_flight) */
	uint64_t running_peak; /* the most handed to curl at once, over the client's life */
	uint64_t queued;       /* waiting for a slot now */
	uint64_t queued_total; /* requests that had to wait for a slot, over the client's life */
};

/* Fills `st` with the client's counters. */
void http_client_stats(const struct http_client *client, struct http_stats *st);

#endif
