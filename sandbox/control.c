/*
 * control.c - the sandbox's own endpoints under /_sandbox/, for tests,
 * benches and the demo (never faulted, never rate limited, no auth):
 *
 *   GET  /_sandbox/health             liveness and the simulated time
 *   POST /_sandbox/tick               advance the simulated clock
 *                                     ({"seconds": 3600} or ?seconds=3600)
 *   GET|POST /_sandbox/clock          read or set the clock speed
 *   GET|POST|DELETE /_sandbox/faults  read, set (object or array), reset faults
 *   GET  /_sandbox/stats              requests, statuses, 429s, faults, webhooks
 *   POST /_sandbox/stats/reset        zero the counters
 *   GET  /_sandbox/credentials        every store's and carrier's credentials
 *   POST /_sandbox/shipments          create a carrier shipment ({"carrier":"ups"})
 *   GET  /_sandbox/truth[/...]        what the sources hold now (see below)
 *
 * Truth: /_sandbox/truth/shopify/<shop>/orders[/<id>],
 * /_sandbox/truth/woocommerce/<site>/orders[/<id>],
 * /_sandbox/truth/amazon/<seller>/orders[/<orderId>] (all includedData),
 * /_sandbox/truth/<carrier>/shipments[/<number>] - each in the API's own
 * shape, without pagination, limits or faults.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

static void ok_json(struct sb_req *r, int status, json_t *j)
{
	sb_reply_json(r, status, j);
}

static void err(struct sb_req *r, int status, const char *msg)
{
	ok_json(r, status, json_pack("{s:s}", "error", msg));
}

static json_t *now_json(struct sb_server *srv)
{
	return sb_jtime_z(sb_now(srv));
}

static void tick(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	double secs = -1;
	const char *q = sb_q(r, "seconds");
	json_t *b = sb_body_json(r, 0);
	if (q) {
		char *end;
		secs = strtod(q, &end);
		if (*end || end == q)
			secs = -1;
	} else if (json_is_number(json_object_get(b, "seconds"))) {
		secs = json_number_value(json_object_get(b, "seconds"));
	} else if (!b && !q) {
		secs = 0;
	}
	json_decref(b);
	if (secs < 0 || secs > 86400.0 * 3650) {
		err(r, 400, "seconds must be a number between 0 and 315360000");
		return;
	}
	long before = srv->world->events_applied;
	srv->tick_offset_ms += (int64_t)llround(secs * 1000.0);
	int64_t now = sb_now(srv);
	ok_json(r, 200, json_pack("{s:o,s:I,s:i,s:I}", "now", sb_jtime_z(now), "now_ms",
				  (json_int_t)now, "events_applied",
				  (int)(srv->world->events_applied - before), "webhooks_pending",
				  (json_int_t)sb_hooks_pending(srv->hooks)));
}

static void clock_ep(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	if (r->method == EVHTTP_REQ_POST) {
		json_t *b = sb_body_json(r, 0);
		const json_t *sp = json_object_get(b, "speed");
		if (!json_is_number(sp) || json_number_value(sp) < 0) {
			json_decref(b);
			err(r, 400, "expected {\"speed\": number >= 0}");
			return;
		}
		int64_t cur = sb_now(srv);
		srv->clock_base_ms = cur;
		srv->tick_offset_ms = 0;
		srv->clock_real0_us = sb_real_us();
		srv->speed = json_number_value(sp);
		json_decref(b);
	}
	ok_json(r, 200, json_pack("{s:o,s:f,s:o}", "now", now_json(srv), "speed", srv->speed,
				  "start", sb_jtime_z(srv->cfg.start_ms)));
}

static int apply_fault_obj(struct sb_server *srv, const json_t *j, char *msg, size_t size)
{
	if (sb_faults_apply(&srv->cfg, j, msg, size))
		return -1;
	if (json_is_true(json_object_get(j, "expire_tokens"))) {
		const char *api = json_string_value(json_object_get(j, "api"));
		int a = api && strcmp(api, "*") ? sb_api_parse(api) : -1;
		for (int i = 0; i < SB_API_COUNT; i++)
			if (a < 0 || a == i)
				srv->token_gen[i]++;
	}
	return 0;
}

static void faults(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	if (r->method == EVHTTP_REQ_DELETE) {
		for (int a = 0; a < SB_API_COUNT; a++)
			sb_faults_reset(&srv->cfg.faults[a]);
	} else if (r->method == EVHTTP_REQ_POST) {
		json_t *b = sb_body_json(r, 0);
		char msg[256] = "expected a JSON object or array";
		int rc = -1;
		if (json_is_array(b)) {
			size_t i;
			json_t *f;
			rc = 0;
			json_array_foreach(b, i, f)
				if (apply_fault_obj(srv, f, msg, sizeof(msg))) {
					rc = -1;
					break;
				}
		} else if (json_is_object(b)) {
			rc = apply_fault_obj(srv, b, msg, sizeof(msg));
		}
		json_decref(b);
		if (rc) {
			err(r, 400, msg);
			return;
		}
	}
	ok_json(r, 200, sb_faults_json(&srv->cfg));
}

static json_t *stats_json(struct sb_server *srv)
{
	struct sb_stats *st = &srv->stats;
	json_t *apis = json_object();
	for (int a = 0; a < SB_API_COUNT; a++) {
		json_t *status = json_object();
		static const char *const cls[] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
		for (int c = 0; c < 6; c++)
			json_object_set_new(status, cls[c], json_integer(st->status[a][c]));
		json_t *fl = json_object();
		for (int k = 1; k < SB_FAULT_KINDS; k++)
			json_object_set_new(fl, sb_fault_name(k), json_integer(st->faults[a][k]));
		json_object_set_new(apis, sb_api_name(a),
				    json_pack("{s:I,s:I,s:o,s:o,s:I}", "requests",
					      (json_int_t)st->requests[a], "throttled",
					      (json_int_t)st->throttled[a], "status", status, "faults",
					      fl, "slowed", (json_int_t)st->slowed[a]));
	}
	json_t *stores = json_object();
	struct sb_world *w = srv->world;
	for (int api = 0; api < 3; api++) {
		json_t *arr = json_array();
		for (int i = 0; i < w->count[api]; i++) {
			struct sb_store *s = w->stores[w->first[api] + i];
			json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:i}", "name", s->name, "connector",
					      s->connector, "requests", (json_int_t)s->requests,
					      "throttled", (json_int_t)s->throttled, "orders",
					      s->norders);
			if (api == SB_WOO)
				json_object_set_new(o, "webhooks_disabled",
						    json_boolean(s->hook_disabled));
			json_array_append_new(arr, o);
		}
		json_object_set_new(stores, sb_api_name(api), arr);
	}
	json_t *hooks = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "sent",
				  (json_int_t)st->hooks_sent, "delivered", (json_int_t)st->hooks_ok,
				  "failed", (json_int_t)st->hooks_failed, "duplicates",
				  (json_int_t)st->hooks_duplicates, "out_of_order",
				  (json_int_t)st->hooks_delayed, "retries",
				  (json_int_t)st->hooks_retries, "pings", (json_int_t)st->hooks_pings,
				  "dropped", (json_int_t)st->hooks_dropped,
				  "pending", (json_int_t)sb_hooks_pending(srv->hooks));
	return json_pack("{s:o,s:I,s:I,s:o,s:o,s:o,s:I}", "now", now_json(srv), "events_applied",
			 (json_int_t)w->events_applied, "shipments", (json_int_t)w->nships, "apis",
			 apis, "stores", stores, "webhooks", hooks, "control",
			 (json_int_t)st->control);
}

static json_t *credentials_json(struct sb_server *srv)
{
	struct sb_world *w = srv->world;
	json_t *shop = json_array(), *woo = json_array(), *amz = json_array();
	for (int i = 0; i < w->nstores; i++) {
		struct sb_store *s = w->stores[i];
		char path[200];
		if (s->api == SB_SHOPIFY) {
			snprintf(path, sizeof(path), "/shops/%s", s->name);
			json_array_append_new(shop, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "shop",
							      s->name, "connector", s->connector,
							      "path_prefix", path, "access_token",
							      s->token, "webhook_secret",
							      s->hook_secret, "currency",
							      sb_store_currency(s)));
		} else if (s->api == SB_WOO) {
			snprintf(path, sizeof(path), "/stores/%s", s->name);
			json_array_append_new(woo, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "site",
							     s->name, "connector", s->connector,
							     "path_prefix", path, "consumer_key",
							     s->token, "consumer_secret", s->secret,
							     "webhook_secret", s->hook_secret,
							     "currency", sb_store_currency(s)));
		} else {
			json_array_append_new(amz, json_pack("{s:s,s:s,s:s,s:s,s:s}", "seller_id",
							     s->name, "connector", s->connector,
							     "refresh_token", s->secret,
							     "marketplace_id",
							     sb_countries[s->country].marketplace_id,
							     "currency", sb_store_currency(s)));
		}
	}
	return json_pack(
		"{s:o,s:o,s:{s:s,s:s,s:o},s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s},s:{s:s}}", "shopify",
		shop, "woocommerce", woo, "amazon", "client_id", srv->lwa_id, "client_secret",
		srv->lwa_secret, "sellers", amz, "ups", "client_id", srv->ups_id, "client_secret",
		srv->ups_secret, "fedex", "client_id", srv->fedex_id, "client_secret",
		srv->fedex_secret, "usps", "client_id", srv->usps_id, "client_secret",
		srv->usps_secret, "dhl", "api_key", srv->dhl_key);
}

static void new_shipment(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	json_t *b = sb_body_json(r, 0);
	const char *c = json_string_value(json_object_get(b, "carrier"));
	const char *num = json_string_value(json_object_get(b, "tracking_number"));
	int api = sb_api_parse(c);
	if (api < SB_UPS) {
		json_decref(b);
		err(r, 400, "expected {\"carrier\": \"ups\"|\"fedex\"|\"usps\"|\"dhl\"}");
		return;
	}
	if (num && sb_world_shipment(srv->world, num)) {
		json_decref(b);
		err(r, 409, "that tracking number exists already");
		return;
	}
	struct sb_shipment *s = sb_world_new_shipment(srv->world, api - SB_UPS, num, sb_now(srv));
	json_decref(b);
	if (!s) {
		err(r, 500, "out of memory");
		return;
	}
	ok_json(r, 201, json_pack("{s:s,s:s,s:o,s:o}", "carrier", sb_carrier_code(s->carrier),
				  "tracking_number", s->number, "created_at", sb_jtime_z(s->created),
				  "delivered_at", sb_jtime_z(s->scans[s->nscans - 1].at)));
}

/* /_sandbox/truth/<api>/<name>/orders[/<id>] and /<carrier>/shipments[/<n>] */
static void truth(struct sb_req *r, const char *rest)
{
	struct sb_server *srv = r->srv;
	struct sb_world *w = srv->world;
	int64_t now = sb_now(srv);
	if (!*rest || !strcmp(rest, "/")) {
		json_t *idx = json_object();
		for (int api = 0; api < 3; api++) {
			json_t *arr = json_array();
			for (int i = 0; i < w->count[api]; i++) {
				struct sb_store *s = w->stores[w->first[api] + i];
				json_array_append_new(arr, json_pack("{s:s,s:s,s:i}", "name", s->name,
								     "connector", s->connector,
								     "orders", s->norders));
			}
			json_object_set_new(idx, sb_api_name(api), arr);
		}
		for (int c = 0; c < SB_CARRIER_COUNT; c++) {
			int n = 0;
			for (int i = 0; i < w->nships; i++)
				n += w->ships[i]->carrier == c;
			json_object_set_new(idx, sb_carrier_code(c), json_pack("{s:i}", "shipments", n));
		}
		json_object_set_new(idx, "now", sb_jtime_z(now));
		ok_json(r, 200, idx);
		return;
	}
	char api_name[32], name[128], kind[32], id[64];
	id[0] = '\0';
	int n = sscanf(rest, "/%31[^/]/%127[^/]/%31[^/]/%63[^/]", api_name, name, kind, id);
	int api = sb_api_parse(api_name);
	if (api >= SB_UPS) {
		/* /<carrier>/shipments[/<number>] */
		n = sscanf(rest, "/%31[^/]/%31[^/]/%63[^/]", api_name, kind, id);
		if (n < 2 || strcmp(kind, "shipments")) {
			err(r, 404, "expected /_sandbox/truth/<carrier>/shipments[/<number>]");
			return;
		}
		int c = api - SB_UPS;
		if (n == 3) {
			struct sb_shipment *s = sb_world_shipment(w, id);
			if (!s || s->carrier != c) {
				err(r, 404, "no such shipment");
				return;
			}
			ok_json(r, 200, sb_carrier_track_json(srv, api, s, now));
			return;
		}
		json_t *arr = json_array();
		for (int i = 0; i < w->nships; i++)
			if (w->ships[i]->carrier == c)
				json_array_append_new(arr,
						      sb_carrier_track_json(srv, api, w->ships[i], now));
		ok_json(r, 200, json_pack("{s:o}", "shipments", arr));
		return;
	}
	if (api < 0 || n < 3 || strcmp(kind, "orders")) {
		err(r, 404, "expected /_sandbox/truth/<shopify|woocommerce|amazon>/<store>/orders[/<id>]");
		return;
	}
	struct sb_store *s = sb_world_store(w, api, name);
	if (!s) {
		err(r, 404, "no such store");
		return;
	}
	if (n == 4) {
		struct sb_order *o = api == SB_AMAZON ? sb_store_order_amz(s, id)
						      : sb_store_order(s, strtoll(id, NULL, 10));
		if (!o) {
			err(r, 404, "no such order");
			return;
		}
		size_t len;
		const char *t = sb_order_cached(srv, o, &len);
		struct evbuffer *b = evbuffer_new();
		if (api == SB_WOO) {
			evbuffer_add(b, t, len);
		} else {
			evbuffer_add(b, "{\"order\":", 9);
			evbuffer_add(b, t, len);
			evbuffer_add(b, "}", 1);
		}
		sb_reply_buf(r, 200, b);
		evbuffer_free(b);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "%s", api == SB_WOO ? "[" : "{\"orders\":[");
	for (int i = 0; i < s->norders; i++) {
		size_t len;
		const char *t = sb_order_cached(srv, s->orders[i], &len);
		if (i)
			evbuffer_add(b, ",", 1);
		evbuffer_add(b, t, len);
	}
	evbuffer_add_printf(b, "%s", api == SB_WOO ? "]" : "]}");
	sb_reply_buf(r, 200, b);
	evbuffer_free(b);
}

void sb_control_handle(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	const char *p = r->path;
	int get = r->method == EVHTTP_REQ_GET, post = r->method == EVHTTP_REQ_POST;
	if ((!strcmp(p, "/health") || !strcmp(p, "") || !strcmp(p, "/")) && get) {
		ok_json(r, 200, json_pack("{s:b,s:o,s:i}", "ok", 1, "now", now_json(srv), "port",
					  srv->port));
	} else if (!strcmp(p, "/tick") && post) {
		tick(r);
	} else if (!strcmp(p, "/clock") && (get || post)) {
		clock_ep(r);
	} else if (!strcmp(p, "/faults")) {
		faults(r);
	} else if (!strcmp(p, "/stats") && get) {
		ok_json(r, 200, stats_json(srv));
	} else if (!strcmp(p, "/stats/reset") && post) {
		memset(&srv->stats, 0, sizeof(srv->stats));
		for (int i = 0; i < srv->world->nstores; i++)
			srv->world->stores[i]->requests = srv->world->stores[i]->throttled = 0;
		ok_json(r, 200, stats_json(srv));
	} else if (!strcmp(p, "/credentials") && get) {
		ok_json(r, 200, credentials_json(srv));
	} else if (!strcmp(p, "/shipments") && post) {
		new_shipment(r);
	} else if (!strncmp(p, "/truth", 6) && get) {
		truth(r, p + 6);
	} else {
		err(r, 404, "unknown control endpoint (see docs/sandbox.md)");
	}
}
