/*
 * hooks.c - outbound webhooks from the sandbox's marketplaces, sent with
 * libevent's evhttp client.
 *
 * Shopify: orders/create, orders/updated, orders/cancelled,
 * fulfillments/create (and fulfillments/update) to the configured URL
 * template and to subscriptions registered with POST webhooks.json, signed
 * with X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(shop secret, raw body)) and
 * carrying X-Shopify-Topic, -Shop-Domain, -API-Version, -Webhook-Id,
 * -Triggered-At and -Event-Id. Failed deliveries (no 2xx) are retried with
 * doubling delays, keeping their webhook id.
 *
 * WooCommerce: order.created and order.updated signed with
 * X-WC-Webhook-Signature plus -Source, -Topic, -Resource, -Event, -ID and
 * -Delivery-ID; an unsigned ping (form body webhook_id=N) per webhook at
 * startup; no retries, and a webhook is disabled after more than five
 * consecutive failed deliveries, as WooCommerce does.
 *
 * A configured share of deliveries is sent twice (same ids) and another
 * share is held back so that later deliveries overtake it. Bodies are
 * rendered when the change happens, not when they are sent. Which
 * deliveries are duplicated or delayed follows the seed.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

#define POOL_MAX 16
#define MAX_HEADERS 12

struct pool {
	struct evhttp_connection *conns[POOL_MAX];
	int busy[POOL_MAX];      /* a request in flight on that connection */
};

struct delivery {
	struct delivery *next;
	struct sb_hooks *h;
	int api;
	struct sb_store *store;
	char host[256];
	int port;
	char *path;
	char *body;
	size_t len;
	char *hname[MAX_HEADERS], *hval[MAX_HEADERS];
	int nheaders;
	int attempts;
	int64_t due_us;
	uint64_t qseq;          /* enqueue order, breaks ties of due_us */
	int ping;
	struct pool *pool;      /* while in flight */
	int slot;
};

struct sb_hooks {
	struct sb_server *srv;
	struct delivery *queue;    /* waiting, in no particular order */
	long waiting, inflight;
	struct event *timer;
	struct sb_map pools;       /* "host:port" -> struct pool */
	struct sb_rng rng;
	uint64_t seq;
	uint64_t qseq;
};

static void schedule_timer(struct sb_hooks *h);
static void schedule_later(struct sb_hooks *h);

static void delivery_free(struct delivery *d)
{
	free(d->path);
	free(d->body);
	for (int i = 0; i < d->nheaders; i++) {
		free(d->hname[i]);
		free(d->hval[i]);
	}
	free(d);
}

static void add_header(struct delivery *d, const char *name, const char *value)
{
	if (d->nheaders >= MAX_HEADERS)
		return;
	d->hname[d->nheaders] = strdup(name);
	d->hval[d->nheaders] = strdup(value);
	d->nheaders++;
}

static struct delivery *delivery_clone(const struct delivery *src)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	*d = *src;
	d->next = NULL;
	d->path = strdup(src->path);
	d->body = malloc(src->len + 1);
	if (d->body)
		memcpy(d->body, src->body, src->len);
	d->nheaders = 0;
	for (int i = 0; i < src->nheaders; i++)
		add_header(d, src->hname[i], src->hval[i]);
	if (!d->path || !d->body) {
		delivery_free(d);
		return NULL;
	}
	return d;
}

static void enqueue(struct sb_hooks *h, struct delivery *d)
{
	d->qseq = ++h->qseq;
	d->next = h->queue;
	h->queue = d;
	h->waiting++;
	schedule_timer(h);
}

static struct pool *pool_of(struct sb_hooks *h, const char *host, int port)
{
	char key[300];
	snprintf(key, sizeof(key), "%s:%d", host, port);
	struct pool *p = sb_map_get(&h->pools, key);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || sb_map_put(&h->pools, key, p)) {
			free(p);
			return NULL;
		}
	}
	return p;
}

/* A free connection slot of the destination's pool, or -1 when all of its
 * connections (webhooks.connections) have a delivery in flight: one request
 * at a time per connection keeps the order of a single connection. */
static int free_slot(struct sb_hooks *h, struct pool *p)
{
	int nconn = h->srv->cfg.hook_conns;
	if (nconn < 1 || nconn > POOL_MAX)
		nconn = 1;
	for (int i = 0; i < nconn; i++)
		if (!p->busy[i])
			return i;
	return -1;
}

static struct evhttp_connection *connection(struct sb_hooks *h, struct pool *p, int slot,
					    const char *host, int port)
{
	if (!p->conns[slot]) {
		p->conns[slot] = evhttp_connection_base_new(h->srv->base, NULL, host,
							    (ev_uint16_t)port);
		if (!p->conns[slot])
			return NULL;
		evhttp_connection_set_timeout(p->conns[slot], h->srv->cfg.hook_timeout_s);
	}
	return p->conns[slot];
}

static void on_done(struct evhttp_request *req, void *arg);

/* Sends d on a free connection; returns -1 (d untouched) when the
 * destination has none free, 0 when d was sent or dropped. */
static int send_one(struct sb_hooks *h, struct delivery *d)
{
	struct sb_stats *st = &h->srv->stats;
	if (d->api == SB_WOO && d->store && d->store->hook_disabled && !d->ping) {
		/* a disabled webhook delivers nothing, even what was queued */
		st->hooks_dropped++;
		delivery_free(d);
		return 0;
	}
	struct pool *p = pool_of(h, d->host, d->port);
	int slot = p ? free_slot(h, p) : -1;
	if (p && slot < 0)
		return -1;
	struct evhttp_connection *c = p ? connection(h, p, slot, d->host, d->port) : NULL;
	struct evhttp_request *req = c ? evhttp_request_new(on_done, d) : NULL;
	if (!req) {
		st->hooks_failed++;
		delivery_free(d);
		return 0;
	}
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	char hostport[300];
	snprintf(hostport, sizeof(hostport), "%s:%d", d->host, d->port);
	evhttp_add_header(oh, "Host", hostport);
	for (int i = 0; i < d->nheaders; i++)
		evhttp_add_header(oh, d->hname[i], d->hval[i]);
	evbuffer_add(evhttp_request_get_output_buffer(req), d->body, d->len);
	d->attempts++;
	st->hooks_sent++;
	if (d->ping)
		st->hooks_pings++;
	h->inflight++;
	d->pool = p;
	d->slot = slot;
	p->busy[slot] = 1;
	if (evhttp_make_request(c, req, EVHTTP_REQ_POST, d->path)) {
		/* evhttp freed req */
		h->inflight--;
		p->busy[slot] = 0;
		st->hooks_failed++;
		delivery_free(d);
	}
	return 0;
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct delivery *d = arg;
	struct sb_hooks *h = d->h;
	struct sb_server *srv = h->srv;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	h->inflight--;
	if (d->pool)
		d->pool->busy[d->slot] = 0;
	d->pool = NULL;
	/* the freed connection may take the next waiting delivery */
	if (h->queue)
		schedule_timer(h);
	if (code >= 200 && code < 300) {
		srv->stats.hooks_ok++;
		if (d->store)
			d->store->hook_failures = 0;
		delivery_free(d);
		return;
	}
	if (d->api == SB_WOO) {
		/* WooCommerce does not retry; it disables a webhook after more
		 * than 5 consecutive failures */
		srv->stats.hooks_failed++;
		if (d->store && !d->ping && ++d->store->hook_failures > 5 && !d->store->hook_disabled) {
			d->store->hook_disabled = 1;
			sb_log("woocommerce %s: webhooks disabled after %d consecutive failures",
			       d->store->name, d->store->hook_failures);
		}
		delivery_free(d);
		return;
	}
	if (d->attempts > srv->cfg.hook_retries) {
		srv->stats.hooks_failed++;
		delivery_free(d);
		return;
	}
	srv->stats.hooks_retries++;
	int64_t delay = (int64_t)srv->cfg.hook_retry_ms * 1000;
	for (int i = 1; i < d->attempts && delay < 3600LL * 1000000; i++)
		delay *= 2;
	d->due_us = sb_real_us() + delay;
	enqueue(h, d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sb_hooks *h = arg;
	int64_t now = sb_real_us();
	/* collect due deliveries, send them in due order */
	struct delivery *due = NULL, **pp = &h->queue;
	while (*pp) {
		struct delivery *d = *pp;
		if (d->due_us <= now) {
			*pp = d->next;
			h->waiting--;
			/* insert sorted by (due, sequence of insertion) */
			struct delivery **q = &due;
			while (*q && ((*q)->due_us < d->due_us ||
				      ((*q)->due_us == d->due_us && (*q)->qseq < d->qseq)))
				q = &(*q)->next;
			d->next = *q;
			*q = d;
		} else {
			pp = &d->next;
		}
	}
	int blocked = 0;
	while (due) {
		struct delivery *d = due;
		due = d->next;
		d->next = NULL;
		if (send_one(h, d)) {
			/* its destination is busy: back to the queue, same place */
			d->next = h->queue;
			h->queue = d;
			h->waiting++;
			blocked = 1;
		}
	}
	/* blocked deliveries wait for a completion, which reschedules */
	if (!blocked)
		schedule_timer(h);
	else
		schedule_later(h);
}

/* Like schedule_timer but ignoring deliveries already due (they wait for
 * a connection to free up), so the timer does not spin. */
static void schedule_later(struct sb_hooks *h)
{
	int64_t now = sb_real_us(), first = INT64_MAX;
	for (struct delivery *d = h->queue; d; d = d->next)
		if (d->due_us > now && d->due_us < first)
			first = d->due_us;
	if (first == INT64_MAX)
		return;
	int64_t wait = first - now;
	struct timeval tv = { (time_t)(wait / 1000000), (suseconds_t)(wait % 1000000) };
	evtimer_del(h->timer);
	evtimer_add(h->timer, &tv);
}

static void schedule_timer(struct sb_hooks *h)
{
	if (!h->queue)
		return;
	int64_t first = INT64_MAX;
	for (struct delivery *d = h->queue; d; d = d->next)
		if (d->due_us < first)
			first = d->due_us;
	int64_t wait = first - sb_real_us();
	if (wait < 0)
		wait = 0;
	struct timeval tv = { (time_t)(wait / 1000000), (suseconds_t)(wait % 1000000) };
	evtimer_del(h->timer);
	evtimer_add(h->timer, &tv);
}

struct sb_hooks *sb_hooks_new(struct sb_server *srv)
{
	struct sb_hooks *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->srv = srv;
	sb_map_init(&h->pools);
	sb_rng_seed(&h->rng, srv->cfg.seed, 0x400c5ULL);
	h->timer = evtimer_new(srv->base, on_timer, h);
	if (!h->timer) {
		free(h);
		return NULL;
	}
	return h;
}

void sb_hooks_free(struct sb_hooks *h)
{
	if (!h)
		return;
	while (h->queue) {
		struct delivery *d = h->queue;
		h->queue = d->next;
		delivery_free(d);
	}
	size_t pos = 0;
	const char *k;
	void *v;
	while (sb_map_next(&h->pools, &pos, &k, &v) >= 0) {
		struct pool *p = v;
		for (int i = 0; i < POOL_MAX; i++)
			if (p->conns[i])
				evhttp_connection_free(p->conns[i]);
		free(p);
	}
	sb_map_release(&h->pools);
	event_free(h->timer);
	free(h);
}

long sb_hooks_pending(const struct sb_hooks *h)
{
	return h ? h->waiting + h->inflight : 0;
}

/* Expands {connector}, {shop}, {api}, {n} in a URL template. */
static void expand(const char *tpl, const struct sb_store *s, char *out, size_t size)
{
	size_t o = 0;
	char n[16];
	snprintf(n, sizeof(n), "%d", s->index);
	while (*tpl && o + 1 < size) {
		const char *val = NULL;
		size_t skip = 0;
		if (!strncmp(tpl, "{connector}", 11)) {
			val = s->connector;
			skip = 11;
		} else if (!strncmp(tpl, "{shop}", 6)) {
			val = s->name;
			skip = 6;
		} else if (!strncmp(tpl, "{api}", 5)) {
			val = sb_api_name(s->api);
			skip = 5;
		} else if (!strncmp(tpl, "{n}", 3)) {
			val = n;
			skip = 3;
		}
		if (val) {
			int w = snprintf(out + o, size - o, "%s", val);
			o += w > 0 ? (size_t)w : 0;
			if (o >= size)
				o = size - 1;
			tpl += skip;
		} else {
			out[o++] = *tpl++;
		}
	}
	out[o] = '\0';
}

/* Builds a delivery to url (http only); NULL when the URL is not usable. */
static struct delivery *make(struct sb_hooks *h, int api, struct sb_store *s, const char *url,
			     const char *body, size_t len)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	if (!u)
		return NULL;
	const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u);
	if (!scheme || strcmp(scheme, "http") || !host) {
		evhttp_uri_free(u);
		return NULL;
	}
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d) {
		evhttp_uri_free(u);
		return NULL;
	}
	d->h = h;
	d->api = api;
	d->store = s;
	snprintf(d->host, sizeof(d->host), "%s", host);
	d->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
	size_t pl = strlen(path && *path ? path : "/") + (query ? strlen(query) + 1 : 0) + 1;
	d->path = malloc(pl);
	if (d->path)
		snprintf(d->path, pl, "%s%s%s", path && *path ? path : "/", query ? "?" : "",
			 query ? query : "");
	d->body = malloc(len + 1);
	if (d->body)
		memcpy(d->body, body, len);
	d->len = len;
	evhttp_uri_free(u);
	if (!d->path || !d->body) {
		delivery_free(d);
		return NULL;
	}
	d->due_us = sb_real_us();
	return d;
}

static void uuid(struct sb_hooks *h, char *buf, size_t size)
{
	uint64_t a = sb_rng_next(&h->rng), b = sb_rng_next(&h->rng);
	snprintf(buf, size, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffULL));
}

/* Queues d, maybe held back (out of order) and maybe twice (duplicate). */
static void dispatch(struct sb_hooks *h, struct delivery *d)
{
	const struct sb_config *c = &h->srv->cfg;
	struct sb_stats *st = &h->srv->stats;
	int late = sb_rng_chance(&h->rng, c->hook_out_of_order);
	int dup = sb_rng_chance(&h->rng, c->hook_duplicate);
	int64_t jitter = (int64_t)sb_rng_range(&h->rng, 0, c->hook_reorder_ms > 0 ? c->hook_reorder_ms : 1);
	if (late) {
		d->due_us += ((int64_t)c->hook_reorder_ms + jitter) * 1000;
		st->hooks_delayed++;
	}
	if (dup) {
		struct delivery *copy = delivery_clone(d);
		if (copy) {
			copy->due_us = d->due_us + (100 + jitter) * 1000;
			st->hooks_duplicates++;
			enqueue(h, copy);
		}
	}
	enqueue(h, d);
}

static const char *shopify_topic(int topic)
{
	switch (topic) {
	case SB_TOPIC_ORDER_CREATE:
		return "orders/create";
	case SB_TOPIC_ORDER_UPDATE:
		return "orders/updated";
	case SB_TOPIC_ORDER_CANCEL:
		return "orders/cancelled";
	case SB_TOPIC_FUL_CREATE:
		return "fulfillments/create";
	default:
		return "fulfillments/update";
	}
}

static void shopify_deliveries(struct sb_hooks *h, int topic, struct sb_order *o,
			       struct sb_fulfillment *f)
{
	struct sb_server *srv = h->srv;
	struct sb_store *s = o->store;
	const char *tname = shopify_topic(topic);
	int tmpl = srv->cfg.hook_url[SB_SHOPIFY][0] && topic != SB_TOPIC_FUL_UPDATE;
	int subs = 0;
	for (int i = 0; i < s->nsubs; i++)
		if (!strcmp(s->subs[i].topic, tname))
			subs++;
	if (!tmpl && !subs)
		return;
	char *body;
	if (f) {
		json_t *j = sb_shopify_fulfillment_json(srv, f);
		body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else {
		size_t len;
		const char *t = sb_order_cached(srv, o, &len);
		body = strndup(t, len);
	}
	if (!body)
		return;
	size_t len = strlen(body);
	char sig[64], event_id[40], trig[48];
	sb_hmac_b64(s->hook_secret, strlen(s->hook_secret), body, len, sig, sizeof(sig));
	uuid(h, event_id, sizeof(event_id));
	sb_fmt_time_z(srv->world->now, trig, sizeof(trig));
	/* fractional seconds as Shopify writes them */
	snprintf(trig + 19, sizeof(trig) - 19, ".%03d000000Z", (int)(srv->world->now % 1000));
	for (int k = -1; k < s->nsubs; k++) {
		char url[600];
		if (k < 0) {
			if (!tmpl)
				continue;
			expand(srv->cfg.hook_url[SB_SHOPIFY], s, url, sizeof(url));
		} else {
			if (strcmp(s->subs[k].topic, tname))
				continue;
			snprintf(url, sizeof(url), "%s", s->subs[k].address);
		}
		struct delivery *d = make(h, SB_SHOPIFY, s, url, body, len);
		if (!d)
			continue;
		char wid[40];
		uuid(h, wid, sizeof(wid));
		add_header(d, "Content-Type", "application/json");
		add_header(d, "User-Agent", "Shopify-Captain-Hook");
		add_header(d, "X-Shopify-Topic", tname);
		add_header(d, "X-Shopify-Hmac-Sha256", sig);
		add_header(d, "X-Shopify-Shop-Domain", s->name);
		add_header(d, "X-Shopify-API-Version", srv->cfg.api_version);
		add_header(d, "X-Shopify-Webhook-Id", wid);
		add_header(d, "X-Shopify-Triggered-At", trig);
		add_header(d, "X-Shopify-Event-Id", event_id);
		dispatch(h, d);
	}
	free(body);
}

static void woo_deliveries(struct sb_hooks *h, int topic, struct sb_order *o)
{
	struct sb_server *srv = h->srv;
	struct sb_store *s = o->store;
	if (!srv->cfg.hook_url[SB_WOO][0] || s->hook_disabled)
		return;
	if (topic != SB_TOPIC_ORDER_CREATE && topic != SB_TOPIC_ORDER_UPDATE)
		return;
	int created = topic == SB_TOPIC_ORDER_CREATE;
	size_t len;
	const char *t = sb_order_cached(srv, o, &len);
	char url[600];
	expand(srv->cfg.hook_url[SB_WOO], s, url, sizeof(url));
	struct delivery *d = make(h, SB_WOO, s, url, t, len);
	if (!d)
		return;
	char sig[64], src[200], id[24], did[24];
	sb_hmac_b64(s->hook_secret, strlen(s->hook_secret), t, len, sig, sizeof(sig));
	snprintf(src, sizeof(src), "%s/", s->site_url);
	snprintf(id, sizeof(id), "%d", s->index * 10 + (created ? 1 : 2));
	snprintf(did, sizeof(did), "%llu", (unsigned long long)++h->seq);
	add_header(d, "Content-Type", "application/json");
	add_header(d, "User-Agent", "WooCommerce/9.8.5 Hookshot (WordPress/6.8.1)");
	add_header(d, "X-WC-Webhook-Source", src);
	add_header(d, "X-WC-Webhook-Topic", created ? "order.created" : "order.updated");
	add_header(d, "X-WC-Webhook-Resource", "order");
	add_header(d, "X-WC-Webhook-Event", created ? "created" : "updated");
	add_header(d, "X-WC-Webhook-Signature", sig);
	add_header(d, "X-WC-Webhook-ID", id);
	add_header(d, "X-WC-Webhook-Delivery-ID", did);
	dispatch(h, d);
}

void sb_hooks_notify(struct sb_world *w, int topic, struct sb_order *o,
		     struct sb_fulfillment *f, void *arg)
{
	struct sb_hooks *h = arg;
	if (!h)
		return;
	if (o->store->api == SB_SHOPIFY)
		shopify_deliveries(h, topic, o,
				   topic == SB_TOPIC_FUL_CREATE || topic == SB_TOPIC_FUL_UPDATE ? f
												 : NULL);
	else if (o->store->api == SB_WOO)
		woo_deliveries(h, topic, o);
}

void sb_hooks_ping(struct sb_hooks *h)
{
	struct sb_server *srv = h ? h->srv : NULL;
	if (!srv || !srv->cfg.hook_url[SB_WOO][0])
		return;
	struct sb_world *w = srv->world;
	for (int i = 0; i < w->count[SB_WOO]; i++) {
		struct sb_store *s = w->stores[w->first[SB_WOO] + i];
		char url[600];
		expand(srv->cfg.hook_url[SB_WOO], s, url, sizeof(url));
		for (int k = 1; k <= 2; k++) {
			char body[32];
			snprintf(body, sizeof(body), "webhook_id=%d", s->index * 10 + k);
			struct delivery *d = make(h, SB_WOO, s, url, body, strlen(body));
			if (!d)
				continue;
			d->ping = 1;
			add_header(d, "Content-Type", "application/x-www-form-urlencoded");
			add_header(d, "User-Agent", "WooCommerce/9.8.5 Hookshot (WordPress/6.8.1)");
			enqueue(h, d);
		}
	}
}
