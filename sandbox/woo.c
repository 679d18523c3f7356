/*
 * woo.c - the WooCommerce REST API v3 stand-in: GET /wp-json/wc/v3/orders
 * (page/per_page pagination with X-WP-Total and X-WP-TotalPages, Link,
 * status, after/before, modified_after/modified_before, dates_are_gmt,
 * orderby/order, include/exclude; repeated parameters: the last wins, as PHP
 * reads them), GET and PUT/POST /orders/{id} (status, customer note and
 * shipment-tracking meta data), authenticated by HTTP Basic with the
 * consumer key and secret or by one-legged OAuth 1.0a in the query string
 * (HMAC-SHA256 or HMAC-SHA1, key "consumer_secret&", base string from
 * "http://" + Host + path, 15-minute timestamp window, nonces not reusable),
 * exactly as WooCommerce's class-wc-rest-authentication.php checks them.
 *
 * Orders follow the shape of the v3 reference payloads: amounts are decimal
 * strings except a line item's price (a JSON number), times are the site's
 * local time and GMT, both without offset.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

#define ORDERS_PATH "/wp-json/wc/v3/orders"

/* ---- rendering ---------------------------------------------------------- */

static int64_t woo_product_id(int p)
{
	return 100 + (int64_t)p * 10;
}

static const char *woo_state(const struct sb_address *a, char *buf, size_t size)
{
	const char *pc = a->province_code;
	if (!strcmp(a->country_code, "US") || !strcmp(a->country_code, "CA") ||
	    !strcmp(a->country_code, "DE"))
		snprintf(buf, size, "%s", pc);
	else if (!strcmp(a->country_code, "JP") && strlen(pc) > 3)
		snprintf(buf, size, "JP%s", pc + 3);
	else
		buf[0] = '\0';
	return buf;
}

static json_t *addr(const struct sb_address *a, const char *email)
{
	char st[16];
	json_t *o = json_object();
	json_object_set_new(o, "first_name", sb_jstr(a->first));
	json_object_set_new(o, "last_name", sb_jstr(a->last));
	json_object_set_new(o, "company", sb_jstr(a->company));
	json_object_set_new(o, "address_1", sb_jstr(a->address1));
	json_object_set_new(o, "address_2", sb_jstr(a->address2));
	json_object_set_new(o, "city", sb_jstr(a->city));
	json_object_set_new(o, "state", sb_jstr(woo_state(a, st, sizeof(st))));
	json_object_set_new(o, "postcode", sb_jstr(a->zip));
	json_object_set_new(o, "country", sb_jstr(a->country_code));
	if (email) {
		json_object_set_new(o, "email", sb_jstr(email));
		json_object_set_new(o, "phone", sb_jstr(a->phone));
	}
	return o;
}

static const char *woo_status(const struct sb_order *o)
{
	if (o->cancelled_at)
		return o->pay == SB_PAY_REFUNDED ? "refunded" : "cancelled";
	if (sb_order_total_qty(o) > 0 && sb_order_fulfilled_qty(o) >= sb_order_total_qty(o))
		return "completed";
	if (o->pay == SB_PAY_PAID)
		return "processing";
	return o->payment_method % 2 ? "on-hold" : "pending";
}

static void payment(const struct sb_order *o, const char **id, const char **title)
{
	int pm = o->payment_method;
	if (o->pay == SB_PAY_PENDING || (o->cancelled_at && !o->paid_at)) {
		*id = "bacs";
		*title = "Direct bank transfer";
	} else if (pm < 55) {
		*id = "stripe";
		*title = "Credit Card (Stripe)";
	} else if (pm < 85) {
		*id = "ppcp-gateway";
		*title = "PayPal";
	} else {
		*id = "cod";
		*title = "Cash on delivery";
	}
}

/* Per-line amounts as WooCommerce stores them: excluding tax. */
struct wline {
	int64_t subtotal, subtotal_tax, total, total_tax;
};

static void woo_line(const struct sb_order *o, const struct sb_line *l, struct wline *w)
{
	int64_t gross_pre = l->price * l->quantity, gross_post = gross_pre - l->discount;
	int bp = o->tax_bp;
	if (o->taxes_included) {
		int64_t tax_pre = gross_pre - (gross_pre * 10000 + (10000 + bp) / 2) / (10000 + bp);
		w->subtotal = gross_pre - tax_pre;
		w->subtotal_tax = tax_pre;
		w->total = gross_post - l->tax;
		w->total_tax = l->tax;
	} else {
		w->subtotal = gross_pre;
		w->subtotal_tax = (gross_pre * bp + 5000) / 10000;
		w->total = gross_post;
		w->total_tax = l->tax;
	}
}

json_t *sb_woo_order_json(struct sb_server *srv, struct sb_order *o)
{
	const struct sb_store *s = o->store;
	int exp = sb_store_exp(s), tz = s->tz_min;
	char buf[256];
	int64_t rate_id = 70 + s->index;
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(o->id));
	json_object_set_new(j, "parent_id", json_integer(0));
	snprintf(buf, sizeof(buf), "%lld", (long long)o->id);
	json_object_set_new(j, "number", json_string(buf));
	json_object_set_new(j, "order_key", sb_jstr(o->order_key));
	json_object_set_new(j, "created_via", json_string("checkout"));
	json_object_set_new(j, "version", json_string("9.8.5"));
	json_object_set_new(j, "status", json_string(woo_status(o)));
	json_object_set_new(j, "currency", json_string(sb_store_currency(s)));
	json_object_set_new(j, "date_created", sb_jtime_local(o->created, tz));
	json_object_set_new(j, "date_created_gmt", sb_jtime_local(o->created, 0));
	json_object_set_new(j, "date_modified", sb_jtime_local(o->updated, tz));
	json_object_set_new(j, "date_modified_gmt", sb_jtime_local(o->updated, 0));
	int64_t disc = 0, disc_tax = 0, cart_tax = 0, items = 0;
	struct wline wl[SB_MAX_LINES];
	for (int i = 0; i < o->nlines; i++) {
		woo_line(o, &o->lines[i], &wl[i]);
		disc += wl[i].subtotal - wl[i].total;
		disc_tax += wl[i].subtotal_tax - wl[i].total_tax;
		cart_tax += wl[i].total_tax;
		items += wl[i].total;
	}
	int64_t shipping = o->shipping, ship_tax = 0;
	if (o->taxes_included && o->tax_bp) {
		ship_tax = shipping - (shipping * 10000 + (10000 + o->tax_bp) / 2) / (10000 + o->tax_bp);
		shipping -= ship_tax;
	}
	json_object_set_new(j, "discount_total", sb_jmoney(disc, exp));
	json_object_set_new(j, "discount_tax", sb_jmoney(disc_tax, exp));
	json_object_set_new(j, "shipping_total", sb_jmoney(shipping, exp));
	json_object_set_new(j, "shipping_tax", sb_jmoney(ship_tax, exp));
	json_object_set_new(j, "cart_tax", sb_jmoney(cart_tax, exp));
	json_object_set_new(j, "total", sb_jmoney(items + cart_tax + shipping + ship_tax, exp));
	json_object_set_new(j, "total_tax", sb_jmoney(cart_tax + ship_tax, exp));
	json_object_set_new(j, "prices_include_tax", json_boolean(o->taxes_included));
	int64_t cust = o->payment_method % 10 < 3 ? 0 : o->customer_id;
	json_object_set_new(j, "customer_id", json_integer(cust));
	json_object_set_new(j, "customer_ip_address", sb_jstr(o->ip));
	json_object_set_new(j, "customer_user_agent",
			    json_string("mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) chrome/124.0.0.0 safari/537.36"));
	json_object_set_new(j, "customer_note", sb_jstr(o->note));
	json_object_set_new(j, "billing", addr(&o->bill, o->email));
	json_object_set_new(j, "shipping", addr(&o->ship, NULL));
	const char *pid, *ptitle;
	payment(o, &pid, &ptitle);
	json_object_set_new(j, "payment_method", json_string(pid));
	json_object_set_new(j, "payment_method_title", json_string(ptitle));
	if (o->paid_at && !strcmp(pid, "stripe"))
		snprintf(buf, sizeof(buf), "ch_3Ps%.21s", o->token);
	else if (o->paid_at && !strcmp(pid, "ppcp-gateway"))
		snprintf(buf, sizeof(buf), "%.17s", o->cart_token);
	else
		buf[0] = '\0';
	json_object_set_new(j, "transaction_id", json_string(buf));
	json_object_set_new(j, "date_paid", sb_jtime_local(o->paid_at, tz));
	json_object_set_new(j, "date_paid_gmt", sb_jtime_local(o->paid_at, 0));
	json_object_set_new(j, "date_completed", sb_jtime_local(o->completed_at, tz));
	json_object_set_new(j, "date_completed_gmt", sb_jtime_local(o->completed_at, 0));
	json_object_set_new(j, "cart_hash", sb_jstr(o->cart_token));
	int64_t meta_id = o->id * 100;
	json_t *meta = json_array();
	json_array_append_new(meta, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)++meta_id, "key",
					      "is_vat_exempt", "value", "no"));
	if (o->nfuls) {
		json_t *items_arr = json_array();
		for (int i = 0; i < o->nfuls; i++) {
			const struct sb_fulfillment *f = o->fuls[i];
			if (!f->number[0])
				continue;
			char ts[24], tid[40], prov[40];
			snprintf(ts, sizeof(ts), "%lld", (long long)(f->created / 1000));
			snprintf(tid, sizeof(tid), "%016llx%016llx", (unsigned long long)f->id,
				 (unsigned long long)(o->id * 2654435761ULL));
			int c = sb_carrier_from_name(f->company);
			snprintf(prov, sizeof(prov), "%s",
				 c == SB_CARRIER_UPS	 ? "ups"
				 : c == SB_CARRIER_FEDEX ? "fedex"
				 : c == SB_CARRIER_USPS	 ? "usps"
				 : c == SB_CARRIER_DHL	 ? "dhl"
							 : "");
			json_array_append_new(
				items_arr,
				json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "tracking_provider", prov,
					  "custom_tracking_provider", prov[0] ? "" : f->company,
					  "custom_tracking_link", prov[0] ? "" : f->url,
					  "tracking_number", f->number, "date_shipped", ts,
					  "tracking_id", tid));
		}
		if (json_array_size(items_arr))
			json_array_append_new(meta, json_pack("{s:I,s:s,s:o}", "id",
							      (json_int_t)++meta_id, "key",
							      "_wc_shipment_tracking_items", "value",
							      items_arr));
		else
			json_decref(items_arr);
	}
	json_object_set_new(j, "meta_data", meta);
	json_t *li = json_array();
	for (int i = 0; i < o->nlines; i++) {
		const struct sb_line *l = &o->lines[i];
		const struct sb_product *p = &sb_products[l->product];
		char vt[48], name[160], sku[40], code[24];
		const char *vtitle = sb_variant_title(p->variants, l->variant, vt, sizeof(vt));
		if (vtitle)
			snprintf(name, sizeof(name), "%s - %s", p->title, vtitle);
		else
			snprintf(name, sizeof(name), "%s", p->title);
		sb_variant_code(p->variants, l->variant, code, sizeof(code));
		snprintf(sku, sizeof(sku), "%s%s%s", p->code, code[0] ? "-" : "", code);
		json_t *x = json_object();
		json_object_set_new(x, "id", json_integer(l->id));
		json_object_set_new(x, "name", sb_jstr(name));
		json_object_set_new(x, "product_id", json_integer(woo_product_id(l->product)));
		json_object_set_new(x, "variation_id",
				    json_integer(vtitle ? woo_product_id(l->product) + 1 + l->variant
							: 0));
		json_object_set_new(x, "quantity", json_integer(l->quantity));
		json_object_set_new(x, "tax_class", json_string(""));
		json_object_set_new(x, "subtotal", sb_jmoney(wl[i].subtotal, exp));
		json_object_set_new(x, "subtotal_tax", sb_jmoney(wl[i].subtotal_tax, exp));
		json_object_set_new(x, "total", sb_jmoney(wl[i].total, exp));
		json_object_set_new(x, "total_tax", sb_jmoney(wl[i].total_tax, exp));
		json_t *taxes = json_array();
		if (o->tax_bp)
			json_array_append_new(taxes,
					      json_pack("{s:I,s:o,s:o}", "id", (json_int_t)rate_id,
							"total", sb_jmoney(wl[i].total_tax, exp),
							"subtotal", sb_jmoney(wl[i].subtotal_tax, exp)));
		json_object_set_new(x, "taxes", taxes);
		json_t *lm = json_array();
		if (vtitle) {
			char val[48];
			snprintf(val, sizeof(val), "%s", vtitle);
			json_array_append_new(lm, json_pack("{s:I,s:s,s:s}", "id",
							    (json_int_t)(l->id * 10 + 1), "key",
							    p->variants == SB_VAR_COLOR ? "pa_color"
							    : p->variants == SB_VAR_SCENT
								    ? "pa_scent"
								    : "pa_size",
							    "value", val));
		}
		json_object_set_new(x, "meta_data", lm);
		json_object_set_new(x, "sku", sb_jstr(sku));
		json_object_set_new(x, "price",
				    json_real(sb_money_double(wl[i].total, exp) / l->quantity));
		json_array_append_new(li, x);
	}
	json_object_set_new(j, "line_items", li);
	json_t *tl = json_array();
	if (o->tax_bp) {
		char rc[64], st[16];
		woo_state(&o->ship, st, sizeof(st));
		snprintf(rc, sizeof(rc), "%s%s%s-%s-1", o->ship.country_code, st[0] ? "-" : "", st,
			 sb_countries[s->country].tax_title);
		for (char *c = rc; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		json_array_append_new(
			tl, json_pack("{s:I,s:s,s:I,s:s,s:b,s:o,s:o,s:[]}", "id",
				      (json_int_t)(o->id * 10 + 8), "rate_code", rc, "rate_id",
				      (json_int_t)rate_id, "label", sb_countries[s->country].tax_title,
				      "compound", 0, "tax_total", sb_jmoney(cart_tax, exp),
				      "shipping_tax_total", sb_jmoney(ship_tax, exp), "meta_data"));
	}
	json_object_set_new(j, "tax_lines", tl);
	json_t *sl = json_array();
	json_array_append_new(
		sl, json_pack("{s:I,s:s,s:s,s:o,s:o,s:[],s:[]}", "id", (json_int_t)(o->id * 10 + 7),
			      "method_title",
			      o->shipping == 0 ? "Free shipping"
					       : (o->ship_method ? "Express" : "Flat rate"),
			      "method_id", o->shipping == 0 ? "free_shipping" : "flat_rate", "total",
			      sb_jmoney(shipping, exp), "total_tax", sb_jmoney(ship_tax, exp),
			      "taxes", "meta_data"));
	json_object_set_new(j, "shipping_lines", sl);
	json_object_set_new(j, "fee_lines", json_array());
	json_t *cl = json_array();
	if (o->discount_kind) {
		static const char *const codes[] = { NULL, "welcome10", "spring15", "tenoff" };
		json_array_append_new(cl, json_pack("{s:I,s:s,s:o,s:o,s:[]}", "id",
						    (json_int_t)(o->id * 10 + 9), "code",
						    codes[o->discount_kind], "discount",
						    sb_jmoney(disc, exp), "discount_tax",
						    sb_jmoney(disc_tax, exp), "meta_data"));
	}
	json_object_set_new(j, "coupon_lines", cl);
	json_t *rf = json_array();
	if (o->pay == SB_PAY_REFUNDED) {
		char t[40];
		sb_fmt_money(-sb_order_total(o), exp, t, sizeof(t));
		json_array_append_new(rf, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)(o->id + 1),
						    "refund", "Order cancelled", "total", t));
	}
	json_object_set_new(j, "refunds", rf);
	json_t *links = json_object();
	snprintf(buf, sizeof(buf), "%s" ORDERS_PATH "/%lld", s->site_url, (long long)o->id);
	json_object_set_new(links, "self", json_pack("[{s:s}]", "href", buf));
	snprintf(buf, sizeof(buf), "%s" ORDERS_PATH, s->site_url);
	json_object_set_new(links, "collection", json_pack("[{s:s}]", "href", buf));
	if (cust) {
		snprintf(buf, sizeof(buf), "%s/wp-json/wc/v3/customers/%lld", s->site_url,
			 (long long)cust);
		json_object_set_new(links, "customer", json_pack("[{s:s}]", "href", buf));
	}
	json_object_set_new(j, "_links", links);
	return j;
}

/* ---- errors ------------------------------------------------------------- */

static void wp_error(struct sb_req *r, int status, const char *code, const char *msg)
{
	sb_reply_json(r, status, json_pack("{s:s,s:s,s:{s:i}}", "code", code, "message", msg,
					   "data", "status", status));
}

static void invalid_param(struct sb_req *r, const char *param, const char *why)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "Invalid parameter(s): %s", param);
	sb_reply_json(r, 400, json_pack("{s:s,s:s,s:{s:i,s:{s:s},s:{s:{s:s,s:s,s:n}}}}", "code",
					"rest_invalid_param", "message", msg, "data", "status",
					400, "params", param, why, "details", param, "code",
					"rest_invalid_param", "message", why, "data"));
}

void sb_woo_fault(struct sb_req *r, int status)
{
	if (status == 429) {
		sb_set_header(r, "Retry-After", "1");
		wp_error(r, 429, "rest_too_many_requests", "Too many requests. Please try again later.");
	} else if (status == 503) {
		/* WordPress maintenance mode answers with HTML */
		const char *html =
			"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Maintenance</title></head>"
			"<body><h1>Briefly unavailable for scheduled maintenance. Check back in a minute.</h1></body></html>";
		sb_set_header(r, "Content-Type", "text/html; charset=utf-8");
		sb_set_header(r, "Retry-After", "600");
		sb_reply(r, 503, html, strlen(html));
	} else {
		sb_reply_json(r, 500,
			      json_pack("{s:s,s:s,s:{s:i},s:[]}", "code", "internal_server_error",
					"message",
					"<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>",
					"data", "status", 500, "additional_errors"));
	}
}

/* ---- authentication ----------------------------------------------------- */

/* PHP's rawurlencode plus WooCommerce's "~" exception (RFC 3986). */
static char *rfc3986(const char *s)
{
	return sb_urlencode(s);
}

struct kv {
	const char *k, *v;
};

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

/* Recomputes the OAuth 1.0a signature WooCommerce expects. */
static int oauth_signature(struct sb_req *r, const char *secret, const char *method,
			   char *out, size_t size)
{
	/* $_GET semantics: one value per key, the last wins */
	struct kv *pairs = calloc((size_t)(r->nq ? r->nq : 1), sizeof(*pairs));
	if (!pairs)
		return -1;
	int n = 0;
	for (int i = 0; i < r->nq; i++) {
		if (strcmp(r->qk[i], "oauth_signature") == 0)
			continue;
		int dup = -1;
		for (int k = 0; k < n; k++)
			if (strcmp(pairs[k].k, r->qk[i]) == 0)
				dup = k;
		if (dup >= 0)
			pairs[dup].v = r->qv[i];
		else
			pairs[n++] = (struct kv){ r->qk[i], r->qv[i] };
	}
	qsort(pairs, (size_t)n, sizeof(*pairs), kv_cmp);
	struct evbuffer *b = evbuffer_new();
	const char *m = r->method == EVHTTP_REQ_POST  ? "POST"
			: r->method == EVHTTP_REQ_PUT	 ? "PUT"
			: r->method == EVHTTP_REQ_DELETE ? "DELETE"
							 : "GET";
	char url[1024];
	snprintf(url, sizeof(url), "http://%s%s", r->host, r->raw_path ? r->raw_path : r->full_path);
	char *eurl = rfc3986(url);
	evbuffer_add_printf(b, "%s&%s&", m, eurl ? eurl : "");
	free(eurl);
	for (int i = 0; i < n; i++) {
		char *ek = rfc3986(pairs[i].k), *ev = rfc3986(pairs[i].v);
		size_t len = strlen(ek ? ek : "") + strlen(ev ? ev : "") + 2;
		char *kvs = malloc(len);
		if (kvs) {
			snprintf(kvs, len, "%s=%s", ek ? ek : "", ev ? ev : "");
			char *e2 = rfc3986(kvs);
			evbuffer_add_printf(b, "%s%s", i ? "%26" : "", e2 ? e2 : "");
			free(e2);
			free(kvs);
		}
		free(ek);
		free(ev);
	}
	free(pairs);
	size_t blen = evbuffer_get_length(b);
	const unsigned char *base = evbuffer_pullup(b, -1);
	char key[200];
	snprintf(key, sizeof(key), "%s&", secret);
	unsigned char mac[SB_MAX_MAC];
	unsigned int mlen = 0;
	sb_hmac_raw(strcmp(method, "HMAC-SHA1") == 0, key, strlen(key), base, blen, mac, &mlen);
	evbuffer_free(b);
	char *sig = sb_b64(mac, mlen, 0);
	snprintf(out, size, "%s", sig ? sig : "");
	free(sig);
	return 0;
}

/* 1 authenticated; 0 after replying with the error. */
static int authenticate(struct sb_req *r)
{
	struct sb_store *s = r->store;
	struct sb_server *srv = r->srv;
	static const char *const names[] = { "oauth_consumer_key", "oauth_timestamp",
					     "oauth_nonce", "oauth_signature",
					     "oauth_signature_method" };
	int have = 0;
	char missing[200] = "";
	for (int i = 0; i < 5; i++) {
		const char *v = sb_q(r, names[i]);
		if (v && *v) {
			have++;
		} else {
			size_t l = strlen(missing);
			snprintf(missing + l, sizeof(missing) - l, "%s%s", l ? ", " : "", names[i]);
		}
	}
	if (have > 0) {
		if (have < 5) {
			char msg[256];
			snprintf(msg, sizeof(msg), "Missing OAuth parameter%s %s",
				 have == 4 ? "" : "s", missing);
			wp_error(r, 401, "woocommerce_rest_authentication_missing_parameter", msg);
			return 0;
		}
		if (!sb_ct_streq(sb_q(r, "oauth_consumer_key"), s->token)) {
			wp_error(r, 401, "woocommerce_rest_authentication_error",
				 "Consumer key is invalid.");
			return 0;
		}
		const char *method = sb_q(r, "oauth_signature_method");
		if (strcmp(method, "HMAC-SHA1") && strcmp(method, "HMAC-SHA256")) {
			wp_error(r, 401, "woocommerce_rest_authentication_error",
				 "Invalid signature - signature method is invalid.");
			return 0;
		}
		char expect[64];
		oauth_signature(r, s->secret, method, expect, sizeof(expect));
		/* PHP: rawurldecode(str_replace(' ', '+', $_GET['oauth_signature'])) */
		char given[256];
		snprintf(given, sizeof(given), "%s", sb_q(r, "oauth_signature"));
		for (char *c = given; *c; c++)
			if (*c == ' ')
				*c = '+';
		char *g2 = sb_urldecode(given, strlen(given), 0);
		int ok = g2 && sb_ct_streq(g2, expect);
		free(g2);
		if (!ok || r->fault == SB_FAULT_EXPIRED) {
			wp_error(r, 401, "woocommerce_rest_authentication_error",
				 "Invalid signature - provided signature does not match.");
			return 0;
		}
		char *end;
		long long ts = strtoll(sb_q(r, "oauth_timestamp"), &end, 10);
		long long now = (long long)time(NULL);
		if (*end || ts < now - 900 || ts > now + 900) {
			wp_error(r, 401, "woocommerce_rest_authentication_error", "Invalid timestamp.");
			return 0;
		}
		char nk[300];
		snprintf(nk, sizeof(nk), "%s:%s", s->token, sb_q(r, "oauth_nonce"));
		void *seen = sb_map_get(&srv->nonces, nk);
		if (seen && (long long)(intptr_t)seen > now - 900) {
			wp_error(r, 401, "woocommerce_rest_authentication_error",
				 "Invalid nonce - nonce has already been used.");
			return 0;
		}
		if (srv->nonces.count > 100000) {
			size_t pos = 0;
			const char *k;
			void *v;
			while (sb_map_next(&srv->nonces, &pos, &k, &v) >= 0)
				if ((long long)(intptr_t)v < now - 900) {
					char *kc = strdup(k);
					if (kc)
						sb_map_del(&srv->nonces, kc);
					free(kc);
				}
		}
		sb_map_put(&srv->nonces, nk, (void *)(intptr_t)ts);
		return 1;
	}
	char user[128], pass[128];
	const char *ck = sb_q(r, "consumer_key"), *cs = sb_q(r, "consumer_secret");
	int basic = sb_basic_auth(r, user, sizeof(user), pass, sizeof(pass)) == 0;
	if (!basic && ck && cs) {
		snprintf(user, sizeof(user), "%s", ck);
		snprintf(pass, sizeof(pass), "%s", cs);
		basic = 1;
	}
	if (basic && sb_ct_streq(user, s->token)) {
		if (!sb_ct_streq(pass, s->secret) || r->fault == SB_FAULT_EXPIRED) {
			wp_error(r, 401, "woocommerce_rest_authentication_error",
				 "Consumer secret is invalid.");
			return 0;
		}
		return 1;
	}
	wp_error(r, 401, "woocommerce_rest_cannot_view",
		 r->method == EVHTTP_REQ_GET ? "Sorry, you cannot list resources."
					     : "Sorry, you are not allowed to edit this resource.");
	return 0;
}

/* ---- list --------------------------------------------------------------- */

enum { OB_DATE, OB_ID, OB_MODIFIED, OB_INCLUDE };
static int g_orderby, g_desc;

static int cmp_woo(const void *a, const void *b)
{
	const struct sb_order *x = *(struct sb_order *const *)a, *y = *(struct sb_order *const *)b;
	int64_t kx, ky;
	switch (g_orderby) {
	case OB_MODIFIED:
		kx = x->updated;
		ky = y->updated;
		break;
	case OB_ID:
	case OB_INCLUDE:
		kx = x->id;
		ky = y->id;
		break;
	default:
		kx = x->created;
		ky = y->created;
		break;
	}
	int c = kx < ky ? -1 : kx > ky ? 1 : (x->id < y->id ? -1 : x->id > y->id ? 1 : 0);
	return g_desc ? -c : c;
}

static int parse_date(struct sb_req *r, const char *name, int gmt, int64_t *out)
{
	const char *v = sb_q(r, name);
	if (!v)
		return 0;
	if (sb_parse_time(v, gmt ? 0 : r->store->tz_min, out)) {
		invalid_param(r, name, "Invalid date.");
		return -1;
	}
	return 1;
}

static int parse_ids(const char *v, int64_t *ids, int max)
{
	int n = 0;
	while (*v && n < max) {
		char *end;
		long long x = strtoll(v, &end, 10);
		if (end == v)
			break;
		ids[n++] = x;
		v = end;
		while (*v == ',' || *v == ' ')
			v++;
	}
	return n;
}

static int in_ids(int64_t id, const int64_t *ids, int n)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void orders_list(struct sb_req *r)
{
	struct sb_store *s = r->store;
	const char *v;
	long page = 1, per_page = 10, offset = -1;
	if ((v = sb_q(r, "page"))) {
		char *end;
		page = strtol(v, &end, 10);
		if (*end || end == v || page < 1 || page > 1000000000L) {
			invalid_param(r, "page", "page must be greater than or equal to 1");
			return;
		}
	}
	if ((v = sb_q(r, "per_page"))) {
		char *end;
		per_page = strtol(v, &end, 10);
		if (*end || end == v || per_page < 1 || per_page > 100) {
			invalid_param(r, "per_page",
				      "per_page must be between 1 (inclusive) and 100 (inclusive)");
			return;
		}
	}
	if ((v = sb_q(r, "offset"))) {
		char *end;
		offset = strtol(v, &end, 10);
		if (*end || end == v || offset < 0 || offset > 1000000000L) {
			invalid_param(r, "offset", "offset is not of type integer.");
			return;
		}
	}
	g_desc = 1;
	if ((v = sb_q(r, "order"))) {
		if (strcmp(v, "asc") && strcmp(v, "desc")) {
			invalid_param(r, "order", "order is not one of asc and desc.");
			return;
		}
		g_desc = strcmp(v, "desc") == 0;
	}
	g_orderby = OB_DATE;
	if ((v = sb_q(r, "orderby"))) {
		if (!strcmp(v, "date"))
			g_orderby = OB_DATE;
		else if (!strcmp(v, "id"))
			g_orderby = OB_ID;
		else if (!strcmp(v, "modified"))
			g_orderby = OB_MODIFIED;
		else if (!strcmp(v, "include") || !strcmp(v, "title") || !strcmp(v, "slug"))
			g_orderby = OB_INCLUDE;
		else {
			invalid_param(r, "orderby",
				      "orderby is not one of date, id, include, title, slug, modified.");
			return;
		}
	}
	v = sb_q(r, "dates_are_gmt");
	int gmt = v && (!strcmp(v, "true") || !strcmp(v, "1"));
	int64_t after = 0, before = 0, mafter = 0, mbefore = 0;
	int ha, hb, hma, hmb;
	if ((ha = parse_date(r, "after", gmt, &after)) < 0 ||
	    (hb = parse_date(r, "before", gmt, &before)) < 0 ||
	    (hma = parse_date(r, "modified_after", gmt, &mafter)) < 0 ||
	    (hmb = parse_date(r, "modified_before", gmt, &mbefore)) < 0)
		return;
	char statuses[10][16];
	int nst = 0;
	if ((v = sb_q(r, "status")) && strcmp(v, "any")) {
		const char *p = v;
		while (*p && nst < 10) {
			const char *e = strchr(p, ',');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			snprintf(statuses[nst], sizeof(statuses[nst]), "%.*s", (int)l, p);
			if (!strncmp(statuses[nst], "wc-", 3))
				memmove(statuses[nst], statuses[nst] + 3, strlen(statuses[nst]) - 2);
			nst++;
			if (!e)
				break;
			p = e + 1;
		}
	}
	int64_t inc[100], exc[100];
	int ninc = (v = sb_q(r, "include")) ? parse_ids(v, inc, 100) : 0;
	int nexc = (v = sb_q(r, "exclude")) ? parse_ids(v, exc, 100) : 0;
	long cust = (v = sb_q(r, "customer")) ? strtol(v, NULL, 10) : -1;

	struct sb_order **m = malloc((size_t)(s->norders ? s->norders : 1) * sizeof(*m));
	if (!m) {
		wp_error(r, 500, "internal_server_error", "out of memory");
		return;
	}
	int n = 0;
	for (int i = 0; i < s->norders; i++) {
		struct sb_order *o = s->orders[i];
		if (ha > 0 && !(o->created > after))
			continue;
		if (hb > 0 && !(o->created < before))
			continue;
		if (hma > 0 && !(o->updated > mafter))
			continue;
		if (hmb > 0 && !(o->updated < mbefore))
			continue;
		if (ninc && !in_ids(o->id, inc, ninc))
			continue;
		if (nexc && in_ids(o->id, exc, nexc))
			continue;
		if (cust >= 0 && (o->payment_method % 10 < 3 ? 0 : o->customer_id) != cust)
			continue;
		if (nst) {
			const char *st = woo_status(o);
			int hit = 0;
			for (int k = 0; k < nst; k++)
				if (!strcmp(statuses[k], st))
					hit = 1;
			if (!hit)
				continue;
		}
		m[n++] = o;
	}
	qsort(m, (size_t)n, sizeof(*m), cmp_woo);
	long first = offset >= 0 ? offset : (page - 1) * per_page;
	long total_pages = (n + per_page - 1) / per_page;
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "%d", n);
	sb_set_header(r, "X-WP-Total", hdr);
	snprintf(hdr, sizeof(hdr), "%ld", total_pages);
	sb_set_header(r, "X-WP-TotalPages", hdr);
	/* Link: the request's own query with page replaced */
	struct evbuffer *qs = evbuffer_new();
	for (int i = 0; i < r->nq; i++) {
		const char *k = r->qk[i];
		if (!strcmp(k, "page") || !strncmp(k, "oauth_", 6) || !strcmp(k, "consumer_key") ||
		    !strcmp(k, "consumer_secret"))
			continue;
		int later = 0;
		for (int j = i + 1; j < r->nq; j++)
			if (!strcmp(r->qk[j], k))
				later = 1;
		if (later)
			continue;
		char *ek = sb_urlencode(k), *ev = sb_urlencode(r->qv[i]);
		evbuffer_add_printf(qs, "%s=%s&", ek ? ek : "", ev ? ev : "");
		free(ek);
		free(ev);
	}
	evbuffer_add(qs, "", 1);
	const char *qstr = (const char *)evbuffer_pullup(qs, -1);
	struct evbuffer *link = evbuffer_new();
	if (page > 1 && offset < 0) {
		long pp = page - 1 > total_pages ? total_pages : page - 1;
		evbuffer_add_printf(link, "<http://%s%s" ORDERS_PATH "?%spage=%ld>; rel=\"prev\"",
				    r->host, r->prefix, qstr, pp < 1 ? 1 : pp);
	}
	if (total_pages > page && offset < 0)
		evbuffer_add_printf(link, "%s<http://%s%s" ORDERS_PATH "?%spage=%ld>; rel=\"next\"",
				    evbuffer_get_length(link) ? ", " : "", r->host, r->prefix, qstr,
				    page + 1);
	if (evbuffer_get_length(link)) {
		evbuffer_add(link, "", 1);
		sb_set_header(r, "Link", (const char *)evbuffer_pullup(link, -1));
	}
	evbuffer_free(link);
	evbuffer_free(qs);
	struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, "[", 1);
	int put = 0;
	for (long i = first; i < n && i < first + per_page; i++) {
		size_t len;
		const char *t = sb_order_cached(r->srv, m[i], &len);
		if (put++)
			evbuffer_add(body, ",", 1);
		evbuffer_add(body, t, len);
	}
	evbuffer_add(body, "]", 1);
	free(m);
	sb_reply_buf(r, 200, body);
	evbuffer_free(body);
}

/* ---- update ------------------------------------------------------------- */

static void order_update(struct sb_req *r, struct sb_order *o)
{
	struct sb_world *w = r->srv->world;
	json_t *body = sb_body_json(r, 1);
	if (!json_is_object(body)) {
		json_decref(body);
		wp_error(r, 400, "rest_invalid_json", "The JSON body passed is invalid.");
		return;
	}
	const json_t *meta = json_object_get(body, "meta_data");
	size_t i;
	const json_t *m;
	json_array_foreach(meta, i, m) {
		const char *key = json_string_value(json_object_get(m, "key"));
		const json_t *val = json_object_get(m, "value");
		if (!key || strcmp(key, "_wc_shipment_tracking_items") || !json_is_array(val))
			continue;
		size_t k;
		const json_t *it;
		json_array_foreach(val, k, it) {
			const char *num = json_string_value(json_object_get(it, "tracking_number"));
			const char *prov = json_string_value(json_object_get(it, "tracking_provider"));
			const char *custom =
				json_string_value(json_object_get(it, "custom_tracking_provider"));
			if (!num || !*num)
				continue;
			int known = 0;
			for (int f = 0; f < o->nfuls; f++)
				if (!strcmp(o->fuls[f]->number, num))
					known = 1;
			if (known)
				continue;
			int idx[SB_MAX_LINES], qty[SB_MAX_LINES];
			for (int x = 0; x < o->nlines; x++) {
				idx[x] = x;
				qty[x] = -1;
			}
			const char *company = prov && *prov ? prov : (custom ? custom : "");
			if (!sb_order_fulfill(w, o, o->nlines, idx, qty, company, num, NULL) &&
			    o->nfuls) {
				/* everything already shipped: record the extra tracking number */
				sb_fulfillment_retrack(w, o->fuls[o->nfuls - 1], company, num, NULL);
			}
		}
	}
	const char *note = json_string_value(json_object_get(body, "customer_note"));
	if (note) {
		snprintf(o->note, sizeof(o->note), "%s", note);
		sb_order_touch(w, o);
	}
	const char *status = json_string_value(json_object_get(body, "status"));
	if (status) {
		const char *cur = woo_status(o);
		if (!strcmp(status, cur)) {
			/* no change */
		} else if (!strcmp(status, "completed")) {
			int idx[SB_MAX_LINES], qty[SB_MAX_LINES];
			for (int x = 0; x < o->nlines; x++) {
				idx[x] = x;
				qty[x] = -1;
			}
			if (o->pay == SB_PAY_PENDING)
				sb_order_mark_paid(w, o);
			sb_order_fulfill(w, o, o->nlines, idx, qty, "", NULL, NULL);
		} else if (!strcmp(status, "processing")) {
			if (sb_order_mark_paid(w, o)) {
				json_decref(body);
				invalid_param(r, "status", "status cannot change to processing.");
				return;
			}
		} else if (!strcmp(status, "cancelled")) {
			if (sb_order_cancel(w, o, 4)) {
				json_decref(body);
				invalid_param(r, "status", "status cannot change to cancelled.");
				return;
			}
		} else {
			json_decref(body);
			invalid_param(r, "status",
				      "status is not one of pending, processing, on-hold, completed, cancelled, refunded, failed, checkout-draft.");
			return;
		}
	}
	json_decref(body);
	sb_reply_json(r, 200, sb_woo_order_json(r->srv, o));
}

int sb_woo_handle(struct sb_req *r)
{
	const char *p = r->path;
	if (strncmp(p, "/wp-json/wc/v3/", 15) != 0)
		return 0;
	if (!authenticate(r))
		return 1;
	if (strcmp(p, ORDERS_PATH) == 0 && r->method == EVHTTP_REQ_GET) {
		orders_list(r);
		return 1;
	}
	long long id;
	int nch = 0;
	if (sscanf(p, ORDERS_PATH "/%lld%n", &id, &nch) == 1 && p[nch] == '\0') {
		struct sb_order *o = sb_store_order(r->store, id);
		if (!o) {
			wp_error(r, 404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.");
			return 1;
		}
		if (r->method == EVHTTP_REQ_GET) {
			size_t len;
			const char *t = sb_order_cached(r->srv, o, &len);
			sb_reply(r, 200, t, len);
			return 1;
		}
		if (r->method == EVHTTP_REQ_PUT || r->method == EVHTTP_REQ_POST ||
		    r->method == EVHTTP_REQ_PATCH) {
			order_update(r, o);
			return 1;
		}
	}
	wp_error(r, 404, "rest_no_route", "No route was found matching the URL and request method.");
	return 1;
}
