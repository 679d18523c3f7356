/*
 * amazon.c - the Amazon Selling Partner API stand-in: Login with Amazon's
 * token endpoint (POST /auth/o2/token, refresh_token grant, form or JSON
 * body, access tokens expiring after token_ttl_s simulated seconds), the
 * Orders API 2026-01-01 (searchOrders with createdAfter/lastUpdatedAfter,
 * the two-minute lag, fulfillmentStatuses, marketplaceIds, includedData,
 * maxResultsPerPage and paginationToken; getOrder) and the v0 shipment
 * confirmation (POST /orders/v0/orders/{orderId}/shipmentConfirmation).
 *
 * Each seller (selected by its refresh token, hence its access tokens) has
 * one token bucket per operation with the usage plan's rate and burst; the
 * rate is returned in x-amzn-RateLimit-Limit and a throttled call gets 429
 * with the SP-API error list. Orders are rendered after the model file's
 * example (../shared/fixtures/amazon-sp-api/orders_2026-01-01.json).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

enum {
	INC_BUYER = 1 << 0,
	INC_RECIPIENT = 1 << 1,
	INC_PROCEEDS = 1 << 2,
	INC_EXPENSE = 1 << 3,
	INC_PROMOTION = 1 << 4,
	INC_CANCELLATION = 1 << 5,
	INC_FULFILLMENT = 1 << 6,
	INC_PACKAGES = 1 << 7,
	INC_TAX = 1 << 8,
	INC_PAYMENT = 1 << 9,
	INC_FULFILLMENT_ORDERS = 1 << 10,
};

static const char *const inc_names[] = { "BUYER",	  "RECIPIENT",	"PROCEEDS",
					  "EXPENSE",	  "PROMOTION",	"CANCELLATION",
					  "FULFILLMENT", "PACKAGES",	"TAX",
					  "PAYMENT",	  "FULFILLMENT_ORDERS" };

enum { OP_SEARCH, OP_GET, OP_CONFIRM };

/* ---- rendering ---------------------------------------------------------- */

static json_t *money(int64_t minor, const struct sb_store *s)
{
	char amt[40];
	sb_fmt_money(minor, sb_store_exp(s), amt, sizeof(amt));
	return json_pack("{s:s,s:s}", "amount", amt, "currencyCode", sb_store_currency(s));
}

static const char *fulfillment_status(const struct sb_order *o)
{
	if (o->cancelled_at)
		return "CANCELLED";
	if (o->pay == SB_PAY_PENDING)
		return "PENDING";
	int done = sb_order_fulfilled_qty(o), all = sb_order_total_qty(o);
	if (done == 0)
		return "UNSHIPPED";
	return done >= all ? "SHIPPED" : "PARTIALLY_SHIPPED";
}

static void asin_of(const struct sb_store *s, int product, int variant, char *buf, size_t size)
{
	static const char alnum[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
	uint64_t h = sb_hash_str(sb_products[product].code) ^ ((uint64_t)variant * 0x9e3779b97f4a7c15ULL);
	char x[9];
	for (int i = 0; i < 8; i++) {
		x[i] = alnum[h % 34];
		h /= 34;
	}
	x[8] = '\0';
	snprintf(buf, size, "B0%s", x);
}

static json_t *cust_address(const struct sb_address *a, int with_phone)
{
	char name[100];
	snprintf(name, sizeof(name), "%s %s", a->first, a->last);
	json_t *j = json_object();
	json_object_set_new(j, "name", sb_jstr(name));
	if (a->company[0])
		json_object_set_new(j, "companyName", sb_jstr(a->company));
	json_object_set_new(j, "addressLine1", sb_jstr(a->address1));
	if (a->address2[0])
		json_object_set_new(j, "addressLine2", sb_jstr(a->address2));
	json_object_set_new(j, "city", sb_jstr(a->city));
	json_object_set_new(j, "stateOrRegion",
			    sb_jstr(a->province_code[0] ? a->province_code : a->province));
	json_object_set_new(j, "postalCode", sb_jstr(a->zip));
	json_object_set_new(j, "countryCode", sb_jstr(a->country_code));
	if (with_phone) {
		json_object_set_new(j, "phone", sb_jstr(a->phone));
		json_object_set_new(j, "addressType",
				    json_string(a->company[0] ? "COMMERCIAL" : "RESIDENTIAL"));
	}
	return j;
}

static const char *package_status(const struct sb_fulfillment *f, const char **detail)
{
	switch (f->shipment_status) {
	case SB_SS_DELIVERED:
		*detail = "DELIVERED";
		return "DELIVERED";
	case SB_SS_OUT_FOR_DELIVERY:
		*detail = "OUT_FOR_DELIVERY";
		return "IN_TRANSIT";
	case SB_SS_ATTEMPTED:
		*detail = "DELIVERY_ATTEMPTED";
		return "IN_TRANSIT";
	case SB_SS_IN_TRANSIT:
		*detail = "IN_TRANSIT";
		return "IN_TRANSIT";
	default:
		*detail = "PICKED_UP";
		return "SHIPPED";
	}
}

json_t *sb_amazon_order_json(struct sb_server *srv, struct sb_order *o, unsigned include)
{
	const struct sb_store *s = o->store;
	const struct sb_country *c = &sb_countries[s->country];
	char buf[128];
	json_t *j = json_object();
	json_object_set_new(j, "orderId", json_string(o->amz_id));
	snprintf(buf, sizeof(buf), "SO-%06d", o->number);
	json_object_set_new(j, "orderAliases", json_pack("[{s:s,s:s}]", "aliasId", buf, "aliasType",
							 "SELLER_ORDER_ID"));
	json_object_set_new(j, "createdTime", sb_jtime_z(o->created));
	json_object_set_new(j, "lastUpdatedTime", sb_jtime_z(o->updated));
	json_t *prog = json_array();
	if (o->payment_method % 5 < 2)
		json_array_append_new(prog, json_string("PRIME"));
	json_object_set_new(j, "programs", prog);
	json_object_set_new(j, "salesChannel",
			    json_pack("{s:s,s:s,s:s}", "channelName", "AMAZON", "marketplaceId",
				      c->marketplace_id, "marketplaceName", c->marketplace_name));
	if (include & INC_BUYER) {
		char name[100];
		snprintf(name, sizeof(name), "%s %s", o->bill.first, o->bill.last);
		json_t *b = json_object();
		json_object_set_new(b, "buyerName", sb_jstr(name));
		json_object_set_new(b, "buyerEmail", sb_jstr(o->email));
		if (o->bill.company[0])
			json_object_set_new(b, "buyerCompanyName", sb_jstr(o->bill.company));
		json_object_set_new(j, "buyer", b);
	}
	if (include & INC_RECIPIENT)
		json_object_set_new(j, "recipient",
				    json_pack("{s:o}", "deliveryAddress", cust_address(&o->ship, 1)));
	int64_t items = sb_order_line_total(o) - o->discount_total, tax = sb_order_tax(o);
	if (include & INC_PROCEEDS) {
		int64_t item_net = o->taxes_included ? items - tax : items;
		json_t *bd = json_array();
		json_array_append_new(bd, json_pack("{s:s,s:o}", "type", "ITEM", "subtotal",
						    money(item_net, s)));
		json_array_append_new(bd, json_pack("{s:s,s:o}", "type", "TAX", "subtotal",
						    money(tax, s)));
		json_array_append_new(bd, json_pack("{s:s,s:o}", "type", "SHIPPING", "subtotal",
						    money(o->shipping, s)));
		json_object_set_new(j, "proceeds", json_pack("{s:o,s:o}", "grandTotal",
							     money(sb_order_total(o), s),
							     "breakdowns", bd));
	}
	if (include & INC_FULFILLMENT) {
		json_t *f = json_object();
		json_object_set_new(f, "fulfillmentStatus", json_string(fulfillment_status(o)));
		json_object_set_new(f, "fulfilledBy", json_string("MERCHANT"));
		json_object_set_new(f, "fulfillmentServiceLevel",
				    json_string(o->ship_method ? "EXPEDITED" : "STANDARD"));
		int64_t day = 86400000LL;
		json_object_set_new(f, "shipByWindow",
				    json_pack("{s:o,s:o}", "earliestDateTime", sb_jtime_z(o->created),
					      "latestDateTime",
					      sb_jtime_z(o->created + (o->ship_method ? 1 : 2) * day)));
		json_object_set_new(
			f, "deliverByWindow",
			json_pack("{s:o,s:o}", "earliestDateTime",
				  sb_jtime_z(o->created + (o->ship_method ? 2 : 3) * day),
				  "latestDateTime", sb_jtime_z(o->created + (o->ship_method ? 3 : 7) * day)));
		json_object_set_new(j, "fulfillment", f);
	}
	json_t *items_arr = json_array();
	for (int i = 0; i < o->nlines; i++) {
		const struct sb_line *l = &o->lines[i];
		const struct sb_product *p = &sb_products[l->product];
		char asin[16], vt[48], title[200], sku[48], code[24];
		asin_of(s, l->product, l->variant, asin, sizeof(asin));
		const char *vtitle = sb_variant_title(p->variants, l->variant, vt, sizeof(vt));
		snprintf(title, sizeof(title), "%s%s%s", p->title, vtitle ? ", " : "",
			 vtitle ? vtitle : "");
		sb_variant_code(p->variants, l->variant, code, sizeof(code));
		snprintf(sku, sizeof(sku), "%s%s%s", p->code, code[0] ? "-" : "", code);
		json_t *it = json_object();
		json_object_set_new(it, "orderItemId", json_string(l->item_id));
		json_object_set_new(it, "quantityOrdered", json_integer(l->quantity));
		json_object_set_new(it, "programs", json_array());
		json_object_set_new(
			it, "product",
			json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:{s:o}}", "asin", asin, "title", title,
				  "sellerSku", sku, "condition", "conditionType", "NEW",
				  "conditionSubtype", "NEW", "price", "unitPrice", money(l->price, s)));
		if (include & INC_PROCEEDS) {
			int64_t gross = l->price * l->quantity - l->discount;
			int64_t net = o->taxes_included ? gross - l->tax : gross;
			json_t *bd = json_array();
			json_array_append_new(bd, json_pack("{s:s,s:o}", "type", "ITEM", "subtotal",
							    money(net, s)));
			json_array_append_new(bd, json_pack("{s:s,s:o}", "type", "TAX", "subtotal",
							    money(l->tax, s)));
			json_object_set_new(it, "proceeds",
					    json_pack("{s:o,s:o}", "proceedsTotal",
						      money(net + l->tax, s), "breakdowns", bd));
		}
		if ((include & INC_CANCELLATION) && o->cancelled_at)
			json_object_set_new(
				it, "cancellation",
				json_pack("{s:{s:s,s:s}}", "cancellationExecution", "cancelledBy",
					  o->cancel_reason == 0 ? "BUYER" : "MERCHANT", "cancelReason",
					  o->cancel_reason == 0 ? "Buyer requested cancellation"
								: "Payment not authorized"));
		if (include & INC_FULFILLMENT)
			json_object_set_new(it, "fulfillment",
					    json_pack("{s:i,s:i}", "quantityFulfilled", l->fulfilled,
						      "quantityUnfulfilled",
						      o->cancelled_at ? 0 : l->quantity - l->fulfilled));
		json_array_append_new(items_arr, it);
	}
	json_object_set_new(j, "orderItems", items_arr);
	if ((include & INC_PACKAGES) && o->nfuls) {
		json_t *pk = json_array();
		struct sb_address wh;
		const struct sb_city *wc = &sb_cities[s->city];
		memset(&wh, 0, sizeof(wh));
		for (int i = 0; i < o->nfuls; i++) {
			const struct sb_fulfillment *f = o->fuls[i];
			const char *detail;
			const char *st = package_status(f, &detail);
			json_t *p = json_object();
			json_object_set_new(p, "packageReferenceId", sb_jstr(f->package_ref));
			json_object_set_new(p, "createdTime", sb_jtime_z(f->created));
			json_object_set_new(p, "packageStatus", json_pack("{s:s,s:s}", "status", st,
									 "detailedStatus", detail));
			json_object_set_new(p, "carrier", sb_jstr(f->company));
			json_object_set_new(p, "shipTime", sb_jtime_z(f->created));
			json_object_set_new(p, "shippingService", sb_jstr(f->service));
			json_object_set_new(p, "trackingNumber", sb_jstr(f->number));
			char wname[64];
			snprintf(wname, sizeof(wname), "Seller %d Warehouse", s->index);
			json_object_set_new(
				p, "shipFromAddress",
				json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", wname, "addressLine1",
					  "100 Commerce Way", "city", wc->city, "stateOrRegion",
					  wc->province_code ? wc->province_code : "", "postalCode",
					  wc->zip, "countryCode", wc->country));
			json_t *pi = json_array();
			for (int k = 0; k < f->nlines; k++)
				json_array_append_new(
					pi, json_pack("{s:s,s:i}", "orderItemId",
						      o->lines[f->line_idx[k]].item_id, "quantity",
						      f->line_qty[k]));
			json_object_set_new(p, "packageItems", pi);
			json_array_append_new(pk, p);
		}
		json_object_set_new(j, "packages", pk);
	}
	return j;
}

/* ---- errors ------------------------------------------------------------- */

static void sp_error(struct sb_req *r, int status, const char *code, const char *msg,
		     const char *details)
{
	char rid[40];
	sb_request_id(r->srv, rid, sizeof(rid));
	sb_set_header(r, "x-amzn-RequestId", rid);
	sb_reply_json(r, status, json_pack("{s:[{s:s,s:s,s:s}]}", "errors", "code", code,
					   "message", msg, "details", details ? details : ""));
}

void sb_amazon_fault(struct sb_req *r, int status)
{
	if (status == 429)
		sp_error(r, 429, "QuotaExceeded", "You exceeded your quota for the requested resource.",
			 NULL);
	else if (status == 503)
		sp_error(r, 503, "ServiceUnavailable",
			 "Service temporarily unavailable. Please try again.", NULL);
	else
		sp_error(r, 500, "InternalFailure",
			 "We encountered an internal error. Please try again.", NULL);
}

static void lwa_error(struct sb_req *r, int status, const char *err, const char *desc)
{
	sb_reply_json(r, status, json_pack("{s:s,s:s}", "error_description", desc, "error", err));
}

/* ---- token -------------------------------------------------------------- */

static void token(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	json_t *b = sb_body_json(r, 1);
	const char *gt = json_string_value(json_object_get(b, "grant_type"));
	const char *rt = json_string_value(json_object_get(b, "refresh_token"));
	const char *cid = json_string_value(json_object_get(b, "client_id"));
	const char *cs = json_string_value(json_object_get(b, "client_secret"));
	if (!gt || (strcmp(gt, "refresh_token") && strcmp(gt, "client_credentials"))) {
		json_decref(b);
		lwa_error(r, 400, "unsupported_grant_type",
			  "The authorization grant type is not supported by the authorization server");
		return;
	}
	if (!cid || !cs || !sb_ct_streq(cid, srv->lwa_id) || !sb_ct_streq(cs, srv->lwa_secret)) {
		json_decref(b);
		lwa_error(r, 401, "invalid_client", "Client authentication failed");
		return;
	}
	struct sb_store *seller = NULL;
	struct sb_world *w = srv->world;
	if (!strcmp(gt, "refresh_token")) {
		for (int i = 0; rt && i < w->count[SB_AMAZON]; i++) {
			struct sb_store *s = w->stores[w->first[SB_AMAZON] + i];
			if (sb_ct_streq(rt, s->secret))
				seller = s;
		}
		if (!seller) {
			json_decref(b);
			lwa_error(r, 400, "invalid_grant",
				  "The request has an invalid grant parameter : refresh_token");
			return;
		}
	}
	char tok[128];
	sb_token_issue(srv, SB_AMAZON, seller, srv->cfg.amz_token_ttl_s, "Atza|", tok, sizeof(tok));
	json_t *out = json_object();
	json_object_set_new(out, "access_token", json_string(tok));
	if (rt && seller)
		json_object_set_new(out, "refresh_token", json_string(rt));
	json_object_set_new(out, "token_type", json_string("bearer"));
	json_object_set_new(out, "expires_in", json_integer(srv->cfg.amz_token_ttl_s));
	json_decref(b);
	sb_reply_json(r, 200, out);
}

/* ---- authentication and limits ------------------------------------------ */

static struct sb_store *authorize(struct sb_req *r)
{
	const char *tok = sb_header(r, "x-amz-access-token");
	struct sb_store *seller = NULL;
	int v = sb_token_check(r->srv, SB_AMAZON, tok, &seller);
	if (v == 1 && r->fault == SB_FAULT_EXPIRED)
		v = -1;
	if (v == -1) {
		sp_error(r, 403, "Unauthorized", "The access token you provided has expired.", NULL);
		return NULL;
	}
	if (v == 0 || !seller) {
		sp_error(r, 403, "Unauthorized", "Access to requested resource is denied.",
			 "The access token you provided is revoked, malformed or invalid.");
		return NULL;
	}
	return seller;
}

static int throttle(struct sb_req *r, struct sb_store *seller, int op)
{
	struct sb_server *srv = r->srv;
	const struct sb_config *c = &srv->cfg;
	double rate = op == OP_SEARCH ? c->amz_search_rate
		      : op == OP_GET  ? c->amz_get_rate
				      : c->amz_confirm_rate;
	double burst = op == OP_SEARCH ? c->amz_search_burst
		       : op == OP_GET  ? c->amz_get_burst
				       : c->amz_confirm_burst;
	double wait;
	char lim[32];
	snprintf(lim, sizeof(lim), "%g", rate);
	if (!sb_tbucket_take(&seller->tb[op], rate, burst, sb_limits_now_us(srv), &wait)) {
		seller->throttled++;
		srv->stats.throttled[SB_AMAZON]++;
		sp_error(r, 429, "QuotaExceeded", "You exceeded your quota for the requested resource.",
			 NULL);
		return 0;
	}
	sb_set_header(r, "x-amzn-RateLimit-Limit", lim);
	return 1;
}

/* ---- searchOrders ------------------------------------------------------- */

struct search {
	int by_update;
	int64_t after, before;
	unsigned statuses; /* bit per FulfillmentStatus; 0 = any */
	int market_ok;
	unsigned include;
	int max;
};

static const char *const fstatuses[] = { "PENDING_AVAILABILITY", "PENDING", "UNSHIPPED",
					 "PARTIALLY_SHIPPED",	 "SHIPPED", "CANCELLED",
					 "UNFULFILLABLE" };

static unsigned parse_list(const char *v, const char *const *names, int n, int *bad)
{
	unsigned m = 0;
	*bad = 0;
	while (v && *v) {
		const char *e = strchr(v, ',');
		size_t l = e ? (size_t)(e - v) : strlen(v);
		int hit = 0;
		for (int i = 0; i < n; i++)
			if (strlen(names[i]) == l && strncmp(v, names[i], l) == 0) {
				m |= 1u << i;
				hit = 1;
			}
		if (!hit && l)
			*bad = 1;
		if (!e)
			break;
		v = e + 1;
	}
	return m;
}

static int64_t jint(const json_t *j, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(j, k));
}

static char *encode_token(const struct search *q, int64_t key, int64_t id)
{
	json_t *j = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I}", "u", q->by_update, "a",
			      (json_int_t)q->after, "b", (json_int_t)q->before, "s",
			      (json_int_t)q->statuses, "k", (json_int_t)key, "i", (json_int_t)id);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char *b = s ? sb_b64(s, strlen(s), 1) : NULL;
	free(s);
	return b;
}

static void search_orders(struct sb_req *r, struct sb_store *seller)
{
	struct sb_server *srv = r->srv;
	struct search q;
	memset(&q, 0, sizeof(q));
	q.market_ok = 1;
	q.max = 100;
	int64_t now = sb_now(srv), last_key = 0, last_id = 0;
	int have_cursor = 0, bad;
	const char *v;
	if ((v = sb_q(r, "maxResultsPerPage"))) {
		char *end;
		long x = strtol(v, &end, 10);
		if (*end || end == v || x < 1 || x > 100) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 "maxResultsPerPage must be between 1 and 100");
			return;
		}
		q.max = (int)x;
	}
	q.include = parse_list(sb_q(r, "includedData"), inc_names, 11, &bad);
	if (bad) {
		sp_error(r, 400, "InvalidInput", "Invalid Input", "includedData has an unknown value");
		return;
	}
	if ((v = sb_q(r, "marketplaceIds"))) {
		const char *mine = sb_countries[seller->country].marketplace_id;
		q.market_ok = strstr(v, mine) != NULL;
	}
	if ((v = sb_q(r, "paginationToken"))) {
		size_t n;
		unsigned char *raw = sb_unb64(v, &n, 1);
		json_t *j = raw ? json_loadb((const char *)raw, n, 0, NULL) : NULL;
		free(raw);
		if (!json_is_object(j)) {
			json_decref(j);
			sp_error(r, 400, "InvalidInput", "Invalid Input", "Invalid paginationToken");
			return;
		}
		q.by_update = json_is_true(json_object_get(j, "u"));
		q.after = jint(j, "a");
		q.before = jint(j, "b");
		q.statuses = (unsigned)jint(j, "s");
		last_key = jint(j, "k");
		last_id = jint(j, "i");
		have_cursor = 1;
		json_decref(j);
	} else {
		const char *ca = sb_q(r, "createdAfter"), *cb = sb_q(r, "createdBefore");
		const char *ua = sb_q(r, "lastUpdatedAfter"), *ub = sb_q(r, "lastUpdatedBefore");
		if ((ca != NULL) == (ua != NULL)) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 "Exactly one of createdAfter and lastUpdatedAfter must be provided");
			return;
		}
		if ((ca && ub) || (ua && cb)) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 ca ? "lastUpdatedBefore cannot be combined with createdAfter"
				    : "createdBefore cannot be combined with lastUpdatedAfter");
			return;
		}
		q.by_update = ua != NULL;
		const char *after = ua ? ua : ca, *before = ua ? ub : cb;
		if (sb_parse_time(after, 0, &q.after)) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 ua ? "lastUpdatedAfter must be an ISO 8601 date-time"
				    : "createdAfter must be an ISO 8601 date-time");
			return;
		}
		int64_t limit = now - 120000;
		if (before) {
			if (sb_parse_time(before, 0, &q.before) || q.before < q.after ||
			    q.before > limit) {
				sp_error(r, 400, "InvalidInput", "Invalid Input",
					 "The before date must be equal to or after the after date and at least two minutes before the time of the request");
				return;
			}
		} else {
			q.before = limit / 1000 * 1000;
		}
		if (q.after > limit) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 "The after date must be at least two minutes before the time of the request");
			return;
		}
		q.statuses = parse_list(sb_q(r, "fulfillmentStatuses"), fstatuses, 7, &bad);
		if (bad) {
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 "fulfillmentStatuses has an unknown value");
			return;
		}
	}
	if ((v = sb_q(r, "fulfilledBy")) && !strstr(v, "MERCHANT"))
		q.market_ok = 0;
	/* matches sorted by (time, id): orders are in id order already */
	struct sb_order **m = malloc((size_t)(seller->norders ? seller->norders : 1) * sizeof(*m));
	if (!m) {
		sp_error(r, 500, "InternalFailure", "We encountered an internal error. Please try again.",
			 NULL);
		return;
	}
	int n = 0;
	for (int i = 0; q.market_ok && i < seller->norders; i++) {
		struct sb_order *o = seller->orders[i];
		int64_t k = q.by_update ? o->updated : o->created;
		if (k < q.after || k >= q.before)
			continue;
		if (q.statuses) {
			const char *fs = fulfillment_status(o);
			int hit = 0;
			for (int b = 0; b < 7; b++)
				if ((q.statuses & (1u << b)) && !strcmp(fs, fstatuses[b]))
					hit = 1;
			if (!hit)
				continue;
		}
		if (have_cursor && (k < last_key || (k == last_key && o->id <= last_id)))
			continue;
		m[n++] = o;
	}
	/* by_update: sort by (updated, id); created order is already sorted */
	if (q.by_update) {
		for (int i = 1; i < n; i++) {
			struct sb_order *x = m[i];
			int k = i - 1;
			while (k >= 0 && (m[k]->updated > x->updated ||
					  (m[k]->updated == x->updated && m[k]->id > x->id))) {
				m[k + 1] = m[k];
				k--;
			}
			m[k + 1] = x;
		}
	}
	int take = n < q.max ? n : q.max;
	json_t *out = json_object();
	json_t *arr = json_array();
	for (int i = 0; i < take; i++)
		json_array_append_new(arr, sb_amazon_order_json(srv, m[i], q.include));
	json_object_set_new(out, "orders", arr);
	if (take < n) {
		struct sb_order *lst = m[take - 1];
		char *t = encode_token(&q, q.by_update ? lst->updated : lst->created, lst->id);
		json_object_set_new(out, "pagination", json_pack("{s:s}", "nextToken", t ? t : ""));
		free(t);
	}
	json_object_set_new(out, q.by_update ? "lastUpdatedBefore" : "createdBefore",
			    sb_jtime_z(q.before));
	free(m);
	char rid[40];
	sb_request_id(srv, rid, sizeof(rid));
	sb_set_header(r, "x-amzn-RequestId", rid);
	sb_reply_json(r, 200, out);
}

/* ---- confirmShipment ---------------------------------------------------- */

static void confirm_shipment(struct sb_req *r, struct sb_store *seller, const char *order_id)
{
	struct sb_order *o = sb_store_order_amz(seller, order_id);
	if (!o) {
		sp_error(r, 404, "NotFound", "The requested order was not found.", order_id);
		return;
	}
	json_t *b = sb_body_json(r, 0);
	const json_t *pd = json_object_get(b, "packageDetail");
	const char *market = json_string_value(json_object_get(b, "marketplaceId"));
	const char *ref = json_string_value(json_object_get(pd, "packageReferenceId"));
	const char *carrier = json_string_value(json_object_get(pd, "carrierCode"));
	const char *cname = json_string_value(json_object_get(pd, "carrierName"));
	const char *num = json_string_value(json_object_get(pd, "trackingNumber"));
	const char *ship = json_string_value(json_object_get(pd, "shipDate"));
	const json_t *items = json_object_get(pd, "orderItems");
	const char *missing = !market	? "marketplaceId"
			      : !ref	? "packageDetail.packageReferenceId"
			      : !carrier ? "packageDetail.carrierCode"
			      : !num	? "packageDetail.trackingNumber"
			      : !ship	? "packageDetail.shipDate"
			      : (!json_is_array(items) || !json_array_size(items))
				      ? "packageDetail.orderItems"
				      : NULL;
	if (missing) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s is required", missing);
		json_decref(b);
		sp_error(r, 400, "InvalidInput", "Invalid Input", msg);
		return;
	}
	int64_t t;
	if (sb_parse_time(ship, 0, &t)) {
		json_decref(b);
		sp_error(r, 400, "InvalidInput", "Invalid Input",
			 "packageDetail.shipDate must be an ISO 8601 date-time");
		return;
	}
	if (strcmp(market, sb_countries[seller->country].marketplace_id)) {
		json_decref(b);
		sp_error(r, 400, "InvalidInput", "Invalid Input", "marketplaceId does not match the order");
		return;
	}
	if (o->cancelled_at || o->pay == SB_PAY_PENDING) {
		json_decref(b);
		sp_error(r, 400, "InvalidInput", "Invalid Input",
			 o->cancelled_at ? "The order is cancelled" : "The order is pending");
		return;
	}
	int idx[SB_MAX_LINES * 2], qty[SB_MAX_LINES * 2], n = 0;
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it) {
		const char *iid = json_string_value(json_object_get(it, "orderItemId"));
		const json_t *qj = json_object_get(it, "quantity");
		int li = -1;
		for (int k = 0; iid && k < o->nlines; k++)
			if (!strcmp(o->lines[k].item_id, iid))
				li = k;
		if (li < 0 || !json_is_integer(qj) || json_integer_value(qj) < 1 ||
		    json_integer_value(qj) > o->lines[li].quantity - o->lines[li].fulfilled ||
		    n >= SB_MAX_LINES * 2) {
			json_decref(b);
			sp_error(r, 400, "InvalidInput", "Invalid Input",
				 "orderItems: unknown orderItemId or quantity not available to ship");
			return;
		}
		idx[n] = li;
		qty[n++] = (int)json_integer_value(qj);
	}
	struct sb_fulfillment *f = sb_order_fulfill(r->srv->world, o, n, idx, qty,
						    cname && *cname ? cname : carrier, num, NULL);
	if (f) {
		snprintf(f->package_ref, sizeof(f->package_ref), "%s", ref);
		const char *method = json_string_value(json_object_get(pd, "shippingMethod"));
		if (method)
			snprintf(f->service, sizeof(f->service), "%s", method);
	}
	json_decref(b);
	char rid[40];
	sb_request_id(r->srv, rid, sizeof(rid));
	sb_set_header(r, "x-amzn-RequestId", rid);
	sb_reply(r, 204, NULL, 0);
}

int sb_amazon_handle(struct sb_req *r)
{
	const char *p = r->path;
	if (strcmp(p, "/auth/o2/token") == 0) {
		if (r->method != EVHTTP_REQ_POST)
			return 0;
		token(r);
		return 1;
	}
	if (strncmp(p, "/orders/", 8) != 0)
		return 0;
	struct sb_store *seller = authorize(r);
	if (!seller)
		return 1;
	if (strcmp(p, "/orders/2026-01-01/orders") == 0 && r->method == EVHTTP_REQ_GET) {
		if (throttle(r, seller, OP_SEARCH))
			search_orders(r, seller);
		return 1;
	}
	char id[64];
	int nch = 0;
	if (sscanf(p, "/orders/2026-01-01/orders/%63[^/]%n", id, &nch) == 1 && p[nch] == '\0' &&
	    r->method == EVHTTP_REQ_GET) {
		if (!throttle(r, seller, OP_GET))
			return 1;
		struct sb_order *o = sb_store_order_amz(seller, id);
		if (!o) {
			sp_error(r, 404, "NotFound", "The requested order was not found.", id);
			return 1;
		}
		int bad;
		unsigned inc = parse_list(sb_q(r, "includedData"), inc_names, 11, &bad);
		char rid[40];
		sb_request_id(r->srv, rid, sizeof(rid));
		sb_set_header(r, "x-amzn-RequestId", rid);
		sb_reply_json(r, 200, json_pack("{s:o}", "order", sb_amazon_order_json(r->srv, o, inc)));
		return 1;
	}
	nch = 0;
	if (sscanf(p, "/orders/v0/orders/%63[^/]/shipmentConfirmation%n", id, &nch) == 1 &&
	    p[nch] == '\0' && r->method == EVHTTP_REQ_POST) {
		if (throttle(r, seller, OP_CONFIRM))
			confirm_shipment(r, seller, id);
		return 1;
	}
	sp_error(r, 404, "NotFound", "Resource not found", NULL);
	return 1;
}
