/*
 * http_client.c - libcurl multi, socket interface, on a libevent loop (see
 * http_client.h). curl tells us which sockets to watch (socket callback)
 * and when to wake it up (timer callback); libevent tells curl when a
 * socket is ready or the timer fired (curl_multi_socket_action), and after
 * each such call finished transfers are collected and their callbacks run.
 * Requests that fail before reaching curl are delivered through a deferred
 * event so that no callback ever runs inside http_request().
 *
 * Slots: a request is handed to curl (an easy handle created, configured
 * and added) only while fewer than max_in_flight are running, and fewer
 * than max_host_connections for its host. Otherwise it waits in its host's
 * FIFO; hosts with waiting requests and a free per-host slot form a ring
 * that a finished transfer's slot serves round robin. Host entries exist
 * only while a request of theirs runs or waits.
 */
#include "config.h"
#include "http_client.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "log.h"

#define HTTP_LOG "http"
#define DEFAULT_MAX_RESPONSE (16u * 1024 * 1024)
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_HOST_CONNECTIONS 64L
#define DEFAULT_MAX_TOTAL_CONNECTIONS 1024L
#define DEFAULT_MAX_IN_FLIGHT 256L
#define MAX_RESPONSE_HEADERS 500

/* A socket curl asked us to watch. */
struct sockctx {
	struct sockctx *prev, *next;
	struct http_client *client;
	struct event *ev;
	curl_socket_t fd;
};

struct host;

/* One request, from http_request() to its callback. */
struct xfer {
	struct xfer *prev, *next; /* client->live */
	struct xfer *next_deferred;
	struct xfer *next_queued; /* host->queue while waiting for a slot */
	struct http_client *client;
	struct host *host; /* set while it waits or runs */
	bool running;      /* handed to curl: holds a slot */
	CURL *easy;
	struct curl_slist *req_headers;
	char *req_body;
	size_t req_body_len;
	bool has_body;
	char method[17];
	char *url;
	long timeout_ms;
	http_done_fn cb;
	void *arg;
	int64_t start_ms;

	char *body;
	size_t body_len, body_cap;
	struct http_header *headers;
	size_t nheaders, headers_cap;
	bool too_large;

	enum http_err early_err; /* set when it failed before reaching curl */
	char errbuf[CURL_ERROR_SIZE];
};

/* A host ("scheme://host:port") with requests running or waiting. */
struct host {
	struct host *hash_next;
	struct host *ring_next;
	bool in_ring;
	struct xfer *queue, **queue_tail;
	long running;
	char key[];
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct event *deferred_ev;
	struct xfer *live;          /* every request not yet completed */
	struct xfer *deferred_head; /* early failures awaiting delivery */
	struct xfer **deferred_tail;
	struct sockctx *socks;
	bool closing;
	bool curl_inited;
	struct http_stats stats;

	char *ca_file;
	char *proxy;
	char *no_proxy;
	char *user_agent;
	size_t max_response_bytes;
	long connect_timeout_ms;
	long timeout_ms;
	long max_in_flight;
	long host_limit;

	struct host **hosts; /* hash table by key */
	size_t nbuckets, nhosts;
	struct host *ring_head, *ring_tail; /* hosts with waiting requests and a free host slot */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *http_err_name(enum http_err err)
{
	switch (err) {
	case HTTP_ERR_NONE:
		return "none";
	case HTTP_ERR_CONNECT:
		return "connect";
	case HTTP_ERR_TIMEOUT:
		return "timeout";
	case HTTP_ERR_TOO_LARGE:
		return "too_large";
	case HTTP_ERR_TLS:
		return "tls";
	case HTTP_ERR_OTHER:
		return "other";
	case HTTP_ERR_DROPPED:
		return "dropped";
	case HTTP_ERR_CANCELLED:
		return "cancelled";
	case HTTP_ERR_INVALID:
		return "invalid";
	}
	return "unknown";
}

bool http_err_transient(enum http_err err)
{
	return err == HTTP_ERR_CONNECT || err == HTTP_ERR_TIMEOUT || err == HTTP_ERR_DROPPED ||
	       err == HTTP_ERR_CANCELLED || err == HTTP_ERR_OTHER;
}

static enum http_err classify(CURLcode rc, bool too_large)
{
	if (too_large)
		return HTTP_ERR_TOO_LARGE;
	switch (rc) {
	case CURLE_OK:
		return HTTP_ERR_NONE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return HTTP_ERR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_ERR_TIMEOUT;
	case CURLE_FILESIZE_EXCEEDED:
		return HTTP_ERR_TOO_LARGE;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return HTTP_ERR_TLS;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return HTTP_ERR_DROPPED;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return HTTP_ERR_INVALID;
	default:
		return HTTP_ERR_OTHER;
	}
}

/* ---- transfers ------------------------------------------------------------- */

static void xfer_free(struct xfer *x)
{
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->req_headers);
	free(x->req_body);
	free(x->url);
	free(x->body);
	for (size_t i = 0; i < x->nheaders; i++)
		free((char *)x->headers[i].name); /* one allocation holds name and value */
	free(x->headers);
	free(x);
}

static void live_remove(struct http_client *c, struct xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		c->live = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

/* ---- slots: hosts, their queues and the ring ------------------------------------ */

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* "scheme://host:port" of an absolute URL, lower-cased, without user info,
 * into buf (truncated to fit; "" when the URL has no scheme). */
static void host_key(const char *url, char *buf, size_t size)
{
	const char *sep = strstr(url, "://"), *auth, *end, *at;
	size_t n = 0;

	buf[0] = '\0';
	if (sep == NULL)
		return;
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	for (at = end; at > auth && at[-1] != '@'; at--)
		;
	if (at > auth)
		auth = at; /* after the user info */
	for (const char *p = url; p < sep + 3 && n + 1 < size; p++)
		buf[n++] = (char)tolower((unsigned char)*p);
	for (const char *p = auth; p < end && n + 1 < size; p++)
		buf[n++] = (char)tolower((unsigned char)*p);
	buf[n] = '\0';
}

/* The entry of the host of `url`, created when absent; NULL when out of memory. */
static struct host *host_get(struct http_client *c, const char *url)
{
	char key[300];
	struct host *h;
	size_t b, len;

	host_key(url, key, sizeof(key));
	if (c->hosts == NULL) {
		c->hosts = calloc(64, sizeof(*c->hosts));
		if (c->hosts == NULL)
			return NULL;
		c->nbuckets = 64;
	}
	b = hash_key(key) & (c->nbuckets - 1);
	for (h = c->hosts[b]; h != NULL; h = h->hash_next) {
		if (strcmp(h->key, key) == 0)
			return h;
	}
	if (c->nhosts >= c->nbuckets) {
		/* Grow: keeps lookups short when thousands of hosts wait at once. */
		size_t n = c->nbuckets * 2;
		struct host **t = calloc(n, sizeof(*t));
		if (t != NULL) {
			for (size_t i = 0; i < c->nbuckets; i++) {
				struct host *next;
				for (h = c->hosts[i]; h != NULL; h = next) {
					size_t k = hash_key(h->key) & (n - 1);
					next = h->hash_next;
					h->hash_next = t[k];
					t[k] = h;
				}
			}
			free(c->hosts);
			c->hosts = t;
			c->nbuckets = n;
			b = hash_key(key) & (n - 1);
		}
	}
	len = strlen(key);
	h = calloc(1, sizeof(*h) + len + 1);
	if (h == NULL)
		return NULL;
	memcpy(h->key, key, len + 1);
	h->queue_tail = &h->queue;
	h->hash_next = c->hosts[b];
	c->hosts[b] = h;
	c->nhosts++;
	return h;
}

/* Frees a host entry nothing runs or waits on any more. */
static void host_gc(struct http_client *c, struct host *h)
{
	struct host **pp;

	if (h->running > 0 || h->queue != NULL || h->in_ring)
		return;
	for (pp = &c->hosts[hash_key(h->key) & (c->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->hash_next) {
		if (*pp == h) {
			*pp = h->hash_next;
			c->nhosts--;
			free(h);
			return;
		}
	}
}

static void ring_push(struct http_client *c, struct host *h)
{
	if (h->in_ring)
		return;
	h->in_ring = true;
	h->ring_next = NULL;
	if (c->ring_tail != NULL)
		c->ring_tail->ring_next = h;
	else
		c->ring_head = h;
	c->ring_tail = h;
}

static struct host *ring_pop(struct http_client *c)
{
	struct host *h = c->ring_head;

	if (h == NULL)
		return NULL;
	c->ring_head = h->ring_next;
	if (c->ring_head == NULL)
		c->ring_tail = NULL;
	h->ring_next = NULL;
	h->in_ring = false;
	return h;
}

static void queue_push(struct http_client *c, struct host *h, struct xfer *x)
{
	x->next_queued = NULL;
	*h->queue_tail = x;
	h->queue_tail = &x->next_queued;
	c->stats.queued++;
	c->stats.queued_total++;
	if (h->running < c->host_limit)
		ring_push(c, h);
}

static struct xfer *queue_pop(struct http_client *c, struct host *h)
{
	struct xfer *x = h->queue;

	if (x == NULL)
		return NULL;
	h->queue = x->next_queued;
	if (h->queue == NULL)
		h->queue_tail = &h->queue;
	x->next_queued = NULL;
	c->stats.queued--;
	return x;
}

static void dispatch(struct http_client *c, struct xfer *x);

/* Hands waiting requests to curl while slots are free. */
static void pump(struct http_client *c)
{
	while (!c->closing && c->stats.running < (uint64_t)c->max_in_flight) {
		struct host *h = ring_pop(c);
		struct xfer *x;

		if (h == NULL)
			return;
		x = queue_pop(c, h);
		if (x != NULL)
			dispatch(c, x);
		if (h->queue != NULL && h->running < c->host_limit)
			ring_push(c, h);
		else
			host_gc(c, h);
	}
}

/* Gives back the slot of a transfer curl is done with. */
static void slot_release(struct http_client *c, struct xfer *x)
{
	struct host *h = x->host;

	if (!x->running)
		return;
	x->running = false;
	x->host = NULL;
	c->stats.running--;
	h->running--;
	if (h->queue != NULL && h->running < c->host_limit)
		ring_push(c, h);
	host_gc(c, h);
}

/* Calls the callback of a finished transfer and frees it. */
static void xfer_complete(struct xfer *x, CURLcode rc)
{
	struct http_client *c = x->client;
	struct http_resp resp = { 0 };
	char msg[CURL_ERROR_SIZE + 96];
	long status = 0, version = 0, connects = 0;

	if (x->early_err != HTTP_ERR_NONE) {
		resp.err = x->early_err;
	} else {
		resp.err = classify(rc, x->too_large);
		curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
		c->stats.connections += connects > 0 ? (uint64_t)connects : 0;
		if (resp.err == HTTP_ERR_NONE) {
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
			if (status <= 0) {
				resp.err = HTTP_ERR_OTHER;
				snprintf(x->errbuf, sizeof(x->errbuf), "no HTTP status in the response");
			}
		}
	}

	if (resp.err == HTTP_ERR_NONE) {
		resp.status = (int)status;
		resp.errmsg = "";
		resp.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : 1;
		resp.headers = x->headers;
		resp.nheaders = x->nheaders;
	} else if (resp.err == HTTP_ERR_TOO_LARGE) {
		snprintf(msg, sizeof(msg),
			 "response body exceeds the limit of %zu bytes (raise max_response_bytes if it is legitimate)",
			 c->max_response_bytes);
		resp.errmsg = msg;
	} else {
		const char *detail = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
		snprintf(msg, sizeof(msg), "%s: %s", http_err_name(resp.err), detail);
		resp.errmsg = msg;
	}
	/* A body is only offered with a response; the buffer always ends in NUL. */
	resp.body = resp.err == HTTP_ERR_NONE && x->body != NULL ? x->body : "";
	resp.body_len = resp.err == HTTP_ERR_NONE ? x->body_len : 0;
	resp.total_ms = now_ms() - x->start_ms;

	live_remove(c, x);
	slot_release(c, x);
	pump(c);
	c->stats.completed++;
	c->stats.in_flight--;
	if (resp.err != HTTP_ERR_NONE)
		c->stats.failed++;
	x->cb(x->arg, &resp);
	xfer_free(x);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb, cap = x->client->max_response_bytes;

	if (n > cap - x->body_len || x->body_len > cap) {
		x->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (x->body_len + n + 1 > x->body_cap) {
		size_t want = x->body_cap ? x->body_cap : 4096;
		char *p;
		while (want < x->body_len + n + 1)
			want *= 2;
		if (want > cap + 1)
			want = cap + 1;
		p = realloc(x->body, want);
		if (p == NULL)
			return 0;
		x->body = p;
		x->body_cap = want;
	}
	memcpy(x->body + x->body_len, data, n);
	x->body_len += n;
	x->body[x->body_len] = '\0';
	return n;
}

static void headers_clear(struct xfer *x)
{
	for (size_t i = 0; i < x->nheaders; i++)
		free((char *)x->headers[i].name);
	x->nheaders = 0;
}

/* Collects the headers of the final response: a status line starts a new
 * set (after 1xx interim responses or a proxy's CONNECT reply). */
static size_t header_cb(char *line, size_t size, size_t nitems, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nitems, nlen, vstart, vend;
	const char *colon;
	char *copy;

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		headers_clear(x);
		return n;
	}
	colon = memchr(line, ':', n);
	if (colon == NULL || colon == line || x->nheaders >= MAX_RESPONSE_HEADERS)
		return n; /* blank line, obsolete folding, or too many: skip */
	nlen = (size_t)(colon - line);
	vstart = nlen + 1;
	while (vstart < n && (line[vstart] == ' ' || line[vstart] == '\t'))
		vstart++;
	vend = n;
	while (vend > vstart && isspace((unsigned char)line[vend - 1]))
		vend--;
	if (x->nheaders == x->headers_cap) {
		size_t cap = x->headers_cap ? x->headers_cap * 2 : 16;
		struct http_header *h = realloc(x->headers, cap * sizeof(*h));
		if (h == NULL)
			return 0;
		x->headers = h;
		x->headers_cap = cap;
	}
	copy = malloc(nlen + 1 + (vend - vstart) + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, line, nlen);
	copy[nlen] = '\0';
	memcpy(copy + nlen + 1, line + vstart, vend - vstart);
	copy[nlen + 1 + vend - vstart] = '\0';
	x->headers[x->nheaders].name = copy;
	x->headers[x->nheaders].value = copy + nlen + 1;
	x->nheaders++;
	return n;
}

const char *http_resp_header(const struct http_resp *resp, const char *name)
{
	for (size_t i = 0; i < resp->nheaders; i++) {
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	}
	return NULL;
}

/* ---- curl <-> libevent glue ---------------------------------------------------- */

/* Completes every transfer curl reports done. */
static void check_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct xfer *x = NULL;
		CURLcode rc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(c->multi, msg->easy_handle);
		xfer_complete(x, rc);
	}
}

static void socket_action(struct http_client *c, curl_socket_t fd, int flags)
{
	int running = 0;
	CURLMcode mc = curl_multi_socket_action(c->multi, fd, flags, &running);

	if (mc != CURLM_OK)
		log_error(HTTP_LOG, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
	/* The timer is left to curl's timer callback: a callback run by
	 * check_done() may just have started a new transfer. */
	check_done(c);
}

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	socket_action(c, fd, flags);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be woken in timeout_ms (-1: never).
 * It must not call curl back from here, so even 0 goes through the loop. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	struct timeval tv;
	(void)multi;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

static void sockctx_free(struct http_client *c, struct sockctx *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for what curl says. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct sockctx *s = socketp;
	short kind;
	(void)easy;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			sockctx_free(c, s);
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
		       EV_PERSIST);
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return -1;
		s->client = c;
		s->fd = fd;
		s->ev = event_new(c->base, fd, kind, event_cb, c);
		if (s->ev == NULL) {
			free(s);
			return -1;
		}
		s->next = c->socks;
		if (c->socks != NULL)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, c->base, fd, kind, event_cb, c);
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

/* Delivers transfers that failed before reaching curl. */
static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	struct xfer *x = c->deferred_head, *next;
	(void)fd;
	(void)what;

	c->deferred_head = NULL;
	c->deferred_tail = &c->deferred_head;
	for (; x != NULL; x = next) {
		next = x->next_deferred;
		xfer_complete(x, CURLE_OK);
	}
}

static void defer_failure(struct http_client *c, struct xfer *x, enum http_err err, const char *what)
{
	x->early_err = err;
	if (what != NULL)
		snprintf(x->errbuf, sizeof(x->errbuf), "%s", what);
	x->next_deferred = NULL;
	*c->deferred_tail = x;
	c->deferred_tail = &x->next_deferred;
	event_active(c->deferred_ev, EV_TIMEOUT, 0);
}

/* ---- client --------------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*failed = true;
	return d;
}

struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts)
{
	struct http_client_opts none = { 0 };
	struct http_client *c;
	bool failed = false;
	CURLMcode mc = CURLM_OK;
	long total;

	if (opts == NULL)
		opts = &none;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->base = base;
	c->deferred_tail = &c->deferred_head;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(HTTP_LOG, "libcurl failed to initialise");
		goto fail;
	}
	c->curl_inited = true;
	c->ca_file = dup_or_null(opts->ca_file, &failed);
	c->proxy = dup_or_null(opts->proxy, &failed);
	c->no_proxy = dup_or_null(opts->no_proxy, &failed);
	c->user_agent = dup_or_null(opts->user_agent != NULL ? opts->user_agent : PACKAGE_NAME "/" PACKAGE_VERSION,
				    &failed);
	c->max_response_bytes = opts->max_response_bytes > 0 ? opts->max_response_bytes : DEFAULT_MAX_RESPONSE;
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
							     : DEFAULT_CONNECT_TIMEOUT_MS;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->max_in_flight = opts->max_in_flight > 0 ? opts->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
	c->host_limit = opts->max_host_connections > 0 ? opts->max_host_connections : DEFAULT_MAX_HOST_CONNECTIONS;
	total = opts->max_total_connections > 0 ? opts->max_total_connections : DEFAULT_MAX_TOTAL_CONNECTIONS;
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, timer_cb, c);
	c->deferred_ev = event_new(base, -1, 0, deferred_cb, c);
	if (failed || c->multi == NULL || c->timer == NULL || c->deferred_ev == NULL)
		goto fail;

	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c->host_limit);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
	/* Idle connections kept for reuse count against the same total; without
	 * this curl keeps up to 4 per transfer it has seen, thousands with
	 * thousands of shops. */
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, total);
	if (mc != CURLM_OK) {
		log_error(HTTP_LOG, "libcurl refused the client settings: %s", curl_multi_strerror(mc));
		goto fail;
	}
	return c;
fail:
	http_client_free(c);
	return NULL;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	c->closing = true;
	/* Requests that failed early keep their own error; those in curl are cancelled. */
	if (c->deferred_ev != NULL)
		deferred_cb(-1, 0, c);
	/* Waiting requests leave their queues first: nothing is dispatched now. */
	while (c->ring_head != NULL)
		ring_pop(c);
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct host *h = c->hosts[i]; h != NULL; h = h->hash_next) {
			while (queue_pop(c, h) != NULL)
				;
		}
	}
	while (c->live != NULL) {
		struct xfer *x = c->live;
		if (x->running)
			curl_multi_remove_handle(c->multi, x->easy);
		x->early_err = HTTP_ERR_CANCELLED;
		snprintf(x->errbuf, sizeof(x->errbuf), "the HTTP client was shut down before the response");
		xfer_complete(x, CURLE_OK);
	}
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	while (c->socks != NULL)
		sockctx_free(c, c->socks);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->deferred_ev != NULL)
		event_free(c->deferred_ev);
	if (c->curl_inited)
		curl_global_cleanup();
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct host *h, *next;
		for (h = c->hosts[i]; h != NULL; h = next) {
			next = h->hash_next;
			free(h);
		}
	}
	free(c->hosts);
	free(c->ca_file);
	free(c->proxy);
	free(c->no_proxy);
	free(c->user_agent);
	free(c);
}

void http_client_stats(const struct http_client *c, struct http_stats *st)
{
	*st = c->stats;
}

/* An HTTP method is a token; we accept upper-case letters only. */
static bool method_valid(const char *m)
{
	if (*m == '\0' || strlen(m) > 16)
		return false;
	for (; *m; m++) {
		if (*m < 'A' || *m > 'Z')
			return false;
	}
	return true;
}

/* Header names are tokens; values must not break the header block. */
static bool header_valid(const struct http_header *h)
{
	if (h->name == NULL || h->value == NULL || h->name[0] == '\0')
		return false;
	for (const char *p = h->name; *p; p++) {
		if (*p <= ' ' || *p >= 127 || *p == ':')
			return false;
	}
	return strpbrk(h->value, "\r\n") == NULL;
}

/* Builds the header list; 0, or -1 with `why` set. */
static int build_headers(struct xfer *x, const struct http_req *req, bool has_body, const char **why)
{
	bool has_type = false;
	struct curl_slist *l;
	char *line;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		size_t len;

		if (!header_valid(h)) {
			*why = "request header with an invalid name or a CR/LF in its value";
			return -1;
		}
		if (strcasecmp(h->name, "Content-Type") == 0)
			has_type = true;
		len = strlen(h->name) + strlen(h->value) + 3;
		line = malloc(len);
		if (line == NULL)
			goto oom;
		/* "Name;" is curl's way to send a header with an empty value. */
		if (h->value[0] == '\0')
			snprintf(line, len, "%s;", h->name);
		else
			snprintf(line, len, "%s: %s", h->name, h->value);
		l = curl_slist_append(x->req_headers, line);
		free(line);
		if (l == NULL)
			goto oom;
		x->req_headers = l;
	}
	/* No 100-continue round trip; no made-up form Content-Type for bodies. */
	if ((l = curl_slist_append(x->req_headers, "Expect:")) == NULL)
		goto oom;
	x->req_headers = l;
	if (has_body && !has_type) {
		if ((l = curl_slist_append(x->req_headers, "Content-Type:")) == NULL)
			goto oom;
		x->req_headers = l;
	}
	return 0;
oom:
	*why = "out of memory";
	return -1;
}

#define SETOPT(opt, val)                                              \
	do {                                                          \
		if (rc == CURLE_OK)                                   \
			rc = curl_easy_setopt(x->easy, (opt), (val)); \
	} while (0)

/* Applies the client's fixed policy and the request to x->easy. */
static CURLcode configure_easy(struct http_client *c, struct xfer *x)
{
	CURLcode rc = CURLE_OK;
	const char *method = x->method;

	SETOPT(CURLOPT_PRIVATE, (void *)x);
	SETOPT(CURLOPT_URL, x->url);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
#if CURL_AT_LEAST_VERSION(7, 85, 0)
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL) {
		SETOPT(CURLOPT_CAINFO, c->ca_file);
		SETOPT(CURLOPT_PROXY_CAINFO, c->ca_file);
	}
	/* "" disables proxies outright, including http_proxy & co. from the environment. */
	SETOPT(CURLOPT_PROXY, c->proxy != NULL ? c->proxy : "");
	if (c->proxy != NULL && c->no_proxy != NULL)
		SETOPT(CURLOPT_NOPROXY, c->no_proxy);
	SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SETOPT(CURLOPT_PIPEWAIT, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, x->timeout_ms);
	SETOPT(CURLOPT_USERAGENT, c->user_agent);
	SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)x);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, (void *)x);
	SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
	SETOPT(CURLOPT_HTTPHEADER, x->req_headers);

	if (strcmp(method, "HEAD") == 0) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (x->has_body) {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req_body_len);
		SETOPT(CURLOPT_POSTFIELDS, x->req_body);
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	return rc;
}

/* Hands a request to curl; it holds a slot of the client and of its host
 * until it completes. A failure here completes it through the deferred
 * event instead. Never frees the host entry (the caller may still use it). */
static void dispatch(struct http_client *c, struct xfer *x)
{
	struct host *h = x->host;
	CURLcode rc;
	CURLMcode mc;

	x->easy = curl_easy_init();
	if (x->easy == NULL) {
		x->host = NULL;
		defer_failure(c, x, HTTP_ERR_OTHER, "out of memory for a transfer");
		return;
	}
	rc = configure_easy(c, x);
	if (rc != CURLE_OK) {
		x->host = NULL;
		defer_failure(c, x, rc == CURLE_OUT_OF_MEMORY ? HTTP_ERR_OTHER : HTTP_ERR_INVALID,
			      curl_easy_strerror(rc));
		return;
	}
	x->running = true;
	c->stats.running++;
	h->running++;
	if (c->stats.running > c->stats.running_peak)
		c->stats.running_peak = c->stats.running;
	mc = curl_multi_add_handle(c->multi, x->easy);
	if (mc != CURLM_OK) {
		x->running = false;
		x->host = NULL;
		c->stats.running--;
		h->running--;
		defer_failure(c, x, HTTP_ERR_OTHER, curl_multi_strerror(mc));
	}
}

int http_request(struct http_client *c, const struct http_req *req, http_done_fn cb, void *arg)
{
	const char *method, *why = NULL;
	struct xfer *x;
	struct host *h;

	if (c == NULL || req == NULL || req->url == NULL || cb == NULL || c->closing)
		return -1;
	if (req->body_len > 0 && req->body == NULL)
		return -1;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -1;
	x->client = c;
	x->cb = cb;
	x->arg = arg;
	x->start_ms = now_ms();
	x->next = c->live;
	if (c->live != NULL)
		c->live->prev = x;
	c->live = x;
	c->stats.started++;
	c->stats.in_flight++;

	method = req->method != NULL ? req->method : "GET";
	if (!method_valid(method)) {
		defer_failure(c, x, HTTP_ERR_INVALID, "request method must be an upper-case token");
		return 0;
	}
	snprintf(x->method, sizeof(x->method), "%s", method);
	x->has_body = req->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		      strcmp(method, "PATCH") == 0;
	if (x->has_body) {
		x->req_body = malloc(req->body_len + 1);
		if (x->req_body == NULL) {
			defer_failure(c, x, HTTP_ERR_OTHER, "out of memory for the request body");
			return 0;
		}
		if (req->body_len > 0)
			memcpy(x->req_body, req->body, req->body_len);
		x->req_body[req->body_len] = '\0';
		x->req_body_len = req->body_len;
	}
	if (build_headers(x, req, x->has_body, &why) != 0) {
		defer_failure(c, x, HTTP_ERR_INVALID, why);
		return 0;
	}
	x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms;
	x->url = strdup(req->url);
	h = x->url != NULL ? host_get(c, req->url) : NULL;
	if (h == NULL) {
		defer_failure(c, x, HTTP_ERR_OTHER, "out of memory for the request");
		return 0;
	}
	x->host = h;
	if (h->queue == NULL && h->running < c->host_limit && c->stats.running < (uint64_t)c->max_in_flight) {
		dispatch(c, x);
		host_gc(c, h); /* when that failed and nothing else uses the host */
	} else {
		queue_push(c, h, x);
	}
	return 0;
}
