/*
 * shopify.c - the Shopify Admin REST API stand-in: orders (list with
 * status/date/id filters, cursor pagination in the Link header, count, get),
 * fulfillment orders, fulfillments (create from fulfillment orders with
 * tracking_info, update_tracking), fulfillment events, webhook
 * subscriptions and shop.json, with X-Shopify-Access-Token authentication
 * and the per-shop leaky bucket (X-Shopify-Shop-Api-Call-Limit, 429 with a
 * fractional Retry-After).
 *
 * Resources are rendered with the field names and JSON types of Shopify's
 * 2026-07 reference payloads (../shared/fixtures/shopify/); times carry the
 * shop's UTC offset, amounts are decimal strings. Page cursors (page_info)
 * are opaque base64url JSON holding the filters, the sort and the last
 * position, so pages never overlap and never skip existing orders.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

#define MAX_LIMIT 250

/* ---- rendering ---------------------------------------------------------- */

static json_t *money_set(int64_t minor, const struct sb_store *s)
{
	char amt[40];
	sb_fmt_money(minor, sb_store_exp(s), amt, sizeof(amt));
	const char *cur = sb_store_currency(s);
	return json_pack("{s:{s:s,s:s},s:{s:s,s:s}}", "shop_money", "amount", amt,
			 "currency_code", cur, "presentment_money", "amount", amt,
			 "currency_code", cur);
}

static void set_money(json_t *o, const char *key, int64_t minor, const struct sb_store *s)
{
	char k2[64];
	json_object_set_new(o, key, sb_jmoney(minor, sb_store_exp(s)));
	snprintf(k2, sizeof(k2), "%s_set", key);
	json_object_set_new(o, k2, money_set(minor, s));
}

static json_t *gid(const char *type, int64_t id)
{
	char buf[96];
	snprintf(buf, sizeof(buf), "gid://shopify/%s/%lld", type, (long long)id);
	return json_string(buf);
}

static json_t *address_json(const struct sb_address *a)
{
	char name[100];
	snprintf(name, sizeof(name), "%s %s", a->first, a->last);
	json_t *o = json_object();
	json_object_set_new(o, "first_name", sb_jstr(a->first));
	json_object_set_new(o, "address1", sb_jstr(a->address1));
	json_object_set_new(o, "phone", sb_jstr0(a->phone));
	json_object_set_new(o, "city", sb_jstr(a->city));
	json_object_set_new(o, "zip", sb_jstr(a->zip));
	json_object_set_new(o, "province", sb_jstr0(a->province));
	json_object_set_new(o, "country", sb_jstr(a->country));
	json_object_set_new(o, "last_name", sb_jstr(a->last));
	json_object_set_new(o, "address2", sb_jstr(a->address2));
	json_object_set_new(o, "company", sb_jstr0(a->company));
	json_object_set_new(o, "latitude", json_real(a->lat));
	json_object_set_new(o, "longitude", json_real(a->lon));
	json_object_set_new(o, "name", sb_jstr(name));
	json_object_set_new(o, "country_code", sb_jstr(a->country_code));
	json_object_set_new(o, "province_code", sb_jstr0(a->province_code));
	return o;
}

static int64_t product_id(const struct sb_store *s, int p)
{
	return 8000000000000LL + (int64_t)s->index * 10000000LL + (int64_t)p * 1000;
}

static int64_t variant_id(const struct sb_store *s, int p, int v)
{
	return 44000000000000LL + (int64_t)s->index * 10000000LL + (int64_t)p * 1000 + v;
}

static void sku_of(const struct sb_line *l, char *buf, size_t size)
{
	const struct sb_product *p = &sb_products[l->product];
	char code[24];
	sb_variant_code(p->variants, l->variant, code, sizeof(code));
	if (code[0])
		snprintf(buf, size, "%s-%s", p->code, code);
	else
		snprintf(buf, size, "%s-STD", p->code);
}

static const char *line_ful_status(const struct sb_line *l)
{
	if (l->fulfilled >= l->quantity)
		return "fulfilled";
	if (l->fulfilled > 0)
		return "partial";
	return NULL;
}

/* A line item; qty is the quantity to show (the line's, or a fulfillment's
 * share), full adds the order-only keys. */
static json_t *line_json(const struct sb_order *o, const struct sb_line *l, int qty, int full)
{
	const struct sb_store *s = o->store;
	const struct sb_product *p = &sb_products[l->product];
	char vt[48], name[160], sku[40];
	const char *vtitle = sb_variant_title(p->variants, l->variant, vt, sizeof(vt));
	if (vtitle)
		snprintf(name, sizeof(name), "%s - %s", p->title, vtitle);
	else
		snprintf(name, sizeof(name), "%s", p->title);
	sku_of(l, sku, sizeof(sku));
	int64_t tax = l->tax, disc = l->discount;
	if (qty != l->quantity && l->quantity) {
		tax = tax * qty / l->quantity;
		disc = disc * qty / l->quantity;
	}
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(l->id));
	json_object_set_new(j, "admin_graphql_api_id", gid("LineItem", l->id));
	if (full) {
		json_object_set_new(j, "attributed_staffs", json_array());
		json_object_set_new(j, "current_quantity",
				    json_integer(o->cancelled_at ? 0 : l->quantity));
	}
	json_object_set_new(j, "fulfillable_quantity",
			    json_integer(o->cancelled_at ? 0 : l->quantity - l->fulfilled));
	json_object_set_new(j, "fulfillment_service", json_string("manual"));
	json_object_set_new(j, "fulfillment_status", sb_jstr(line_ful_status(l)));
	json_object_set_new(j, "gift_card", json_false());
	json_object_set_new(j, "grams", json_integer(p->grams));
	json_object_set_new(j, "name", sb_jstr(name));
	set_money(j, "price", l->price, s);
	json_object_set_new(j, "product_exists", json_true());
	json_object_set_new(j, "product_id", json_integer(product_id(s, l->product)));
	json_t *props = json_array();
	if (l->product == 22 || l->product == 23) /* notebooks and pens get engraved */
		json_array_append_new(props, json_pack("{s:s,s:s}", "name", "Engraving",
						       "value", "For Sam"));
	json_object_set_new(j, "properties", props);
	json_object_set_new(j, "quantity", json_integer(qty));
	json_object_set_new(j, "requires_shipping", json_true());
	json_object_set_new(j, "sku", sb_jstr(sku));
	json_object_set_new(j, "taxable", json_true());
	json_object_set_new(j, "title", sb_jstr(p->title));
	set_money(j, "total_discount", 0, s);
	json_object_set_new(j, "variant_id", json_integer(variant_id(s, l->product, l->variant)));
	json_object_set_new(j, "variant_inventory_management", json_string("shopify"));
	json_object_set_new(j, "variant_title", sb_jstr(vtitle));
	json_object_set_new(j, "vendor", sb_jstr(p->vendor));
	json_t *tl = json_array();
	if (o->tax_bp > 0) {
		json_t *t = json_object();
		json_object_set_new(t, "channel_liable", json_false());
		set_money(t, "price", tax, s);
		json_object_set_new(t, "rate", json_real(o->tax_bp / 10000.0));
		json_object_set_new(t, "title", sb_jstr(sb_countries[s->country].tax_title));
		json_array_append_new(tl, t);
	}
	json_object_set_new(j, "tax_lines", tl);
	json_object_set_new(j, "duties", json_array());
	json_t *da = json_array();
	if (disc > 0) {
		json_t *d = json_object();
		set_money(d, "amount", disc, s);
		json_object_set_new(d, "discount_application_index", json_integer(0));
		json_array_append_new(da, d);
	}
	json_object_set_new(j, "discount_allocations", da);
	return j;
}

static json_t *fulfillment_json(struct sb_fulfillment *f, int in_order)
{
	const struct sb_order *o = f->order;
	const struct sb_store *s = o->store;
	char name[32];
	snprintf(name, sizeof(name), "#%d.%d", o->number, f->seq);
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(f->id));
	json_object_set_new(j, "admin_graphql_api_id", gid("Fulfillment", f->id));
	json_object_set_new(j, "created_at", sb_jtime(f->created, s->tz_min));
	json_object_set_new(j, "location_id", json_integer(s->location_id));
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "order_id", json_integer(o->id));
	json_object_set_new(j, "origin_address", in_order ? json_object() : json_null());
	json_object_set_new(j, "receipt", json_object());
	json_object_set_new(j, "service", json_string("manual"));
	json_object_set_new(j, "shipment_status", sb_jstr(sb_ship_status_name(f->shipment_status)));
	json_object_set_new(j, "status", json_string(f->cancelled ? "cancelled" : "success"));
	json_object_set_new(j, "tracking_company", sb_jstr0(f->company));
	json_object_set_new(j, "tracking_number", sb_jstr0(f->number));
	json_t *nums = json_array(), *urls = json_array();
	if (f->number[0])
		json_array_append_new(nums, sb_jstr(f->number));
	if (f->url[0])
		json_array_append_new(urls, sb_jstr(f->url));
	json_object_set_new(j, "tracking_numbers", nums);
	json_object_set_new(j, "tracking_url", sb_jstr0(f->url));
	json_object_set_new(j, "tracking_urls", urls);
	json_object_set_new(j, "updated_at", sb_jtime(f->updated, s->tz_min));
	json_t *li = json_array();
	for (int i = 0; i < f->nlines; i++)
		json_array_append_new(li, line_json(o, &o->lines[f->line_idx[i]], f->line_qty[i],
						    in_order));
	json_object_set_new(j, "line_items", li);
	return j;
}

json_t *sb_shopify_fulfillment_json(struct sb_server *srv, struct sb_fulfillment *f)
{
	return fulfillment_json(f, 0);
}

static const char *financial_status(const struct sb_order *o)
{
	switch (o->pay) {
	case SB_PAY_PAID:
		return "paid";
	case SB_PAY_REFUNDED:
		return "refunded";
	case SB_PAY_VOIDED:
		return "voided";
	default:
		return "pending";
	}
}

static const char *fulfillment_status(const struct sb_order *o)
{
	int done = sb_order_fulfilled_qty(o), all = sb_order_total_qty(o);
	if (done == 0)
		return NULL;
	return done >= all ? "fulfilled" : "partial";
}

static const char *gateway(const struct sb_order *o)
{
	if (o->pay == SB_PAY_PENDING || (o->cancelled_at && o->paid_at == 0))
		return "manual";
	return o->payment_method < 80 ? "shopify_payments" : "paypal";
}

static const char *locale_of(const struct sb_order *o)
{
	const char *cc = o->ship.country_code;
	if (!strcmp(cc, "DE"))
		return "de";
	if (!strcmp(cc, "FR"))
		return "fr";
	if (!strcmp(cc, "NL"))
		return "nl";
	if (!strcmp(cc, "JP"))
		return "ja";
	if (!strcmp(cc, "GB"))
		return "en-GB";
	if (!strcmp(cc, "CA"))
		return "en-CA";
	return "en-US";
}

json_t *sb_shopify_order_json(struct sb_server *srv, struct sb_order *o)
{
	const struct sb_store *s = o->store;
	int exp = sb_store_exp(s);
	int tz = s->tz_min;
	char buf[256];
	int cancelled = o->cancelled_at != 0;
	int64_t lines = sb_order_line_total(o), tax = sb_order_tax(o), total = sb_order_total(o);
	int64_t subtotal = lines - o->discount_total;
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(o->id));
	json_object_set_new(j, "admin_graphql_api_id", gid("Order", o->id));
	json_object_set_new(j, "app_id", json_integer(580111));
	json_object_set_new(j, "browser_ip", sb_jstr(o->ip));
	json_object_set_new(j, "buyer_accepts_marketing", json_boolean(o->payment_method % 3 == 0));
	json_object_set_new(j, "cancel_reason", cancelled ? sb_jstr(sb_cancel_reason(o->cancel_reason))
							   : json_null());
	json_object_set_new(j, "cancelled_at", sb_jtime(o->cancelled_at, tz));
	json_object_set_new(j, "cart_token", sb_jstr(o->cart_token));
	json_object_set_new(j, "checkout_id", json_integer(o->checkout_id));
	json_object_set_new(j, "checkout_token", sb_jstr(o->checkout_token));
	json_object_set_new(
		j, "client_details",
		json_pack("{s:s,s:i,s:s,s:i,s:n,s:s}", "accept_language",
			  strcmp(locale_of(o), "en-US") == 0 ? "en-US,en;q=0.9" : locale_of(o),
			  "browser_height", 800 + (int)(o->id % 7) * 60, "browser_ip", o->ip,
			  "browser_width", 1280 + (int)(o->id % 5) * 80, "session_hash",
			  "user_agent",
			  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"));
	json_object_set_new(j, "closed_at", sb_jtime(o->closed_at, tz));
	{
		static const char alnum[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
		char cn[10];
		for (int i = 0; i < 9; i++)
			cn[i] = alnum[(unsigned char)o->token[i * 3] % 32];
		cn[9] = '\0';
		json_object_set_new(j, "confirmation_number", json_string(cn));
	}
	json_object_set_new(j, "confirmed", json_true());
	json_object_set_new(j, "contact_email", sb_jstr(o->email));
	json_object_set_new(j, "created_at", sb_jtime(o->created, tz));
	json_object_set_new(j, "currency", json_string(sb_store_currency(s)));
	set_money(j, "current_subtotal_price", cancelled ? 0 : subtotal, s);
	json_object_set_new(j, "current_total_additional_fees_set", json_null());
	set_money(j, "current_total_discounts", cancelled ? 0 : o->discount_total, s);
	json_object_set_new(j, "current_total_duties_set", json_null());
	set_money(j, "current_total_price", cancelled ? 0 : total, s);
	set_money(j, "current_total_tax", cancelled ? 0 : tax, s);
	json_object_set_new(j, "customer_locale", json_string(locale_of(o)));
	json_object_set_new(j, "device_id", json_null());
	json_t *dc = json_array();
	static const char *const codes[] = { NULL, "WELCOME10", "SPRING15", "TENOFF" };
	if (o->discount_kind) {
		json_t *d = json_object();
		json_object_set_new(d, "code", json_string(codes[o->discount_kind]));
		json_object_set_new(d, "amount", sb_jmoney(o->discount_total, exp));
		json_object_set_new(d, "type",
				    json_string(o->discount_kind == 3 ? "fixed_amount" : "percentage"));
		json_array_append_new(dc, d);
	}
	json_object_set_new(j, "discount_codes", dc);
	json_object_set_new(j, "duties_included", json_false());
	json_object_set_new(j, "email", sb_jstr(o->email));
	json_object_set_new(j, "estimated_taxes", json_false());
	json_object_set_new(j, "financial_status", json_string(financial_status(o)));
	json_object_set_new(j, "fulfillment_status", sb_jstr(fulfillment_status(o)));
	json_object_set_new(j, "landing_site", json_string("/"));
	json_object_set_new(j, "landing_site_ref", json_null());
	json_object_set_new(j, "location_id", json_null());
	snprintf(buf, sizeof(buf), "%lld", (long long)s->shop_id);
	{
		char *b = sb_b64(buf, strlen(buf), 1);
		json_object_set_new(j, "merchant_business_entity_id", sb_jstr(b));
		free(b);
	}
	json_object_set_new(j, "merchant_of_record_app_id", json_null());
	snprintf(buf, sizeof(buf), "#%d", o->number);
	json_object_set_new(j, "name", json_string(buf));
	json_object_set_new(j, "note", sb_jstr0(o->note));
	json_t *na = json_array();
	if (o->payment_method % 10 == 7)
		json_array_append_new(na, json_pack("{s:s,s:s}", "name", "gift_message", "value",
						    "Happy birthday!"));
	json_object_set_new(j, "note_attributes", na);
	json_object_set_new(j, "number", json_integer(o->number - 1000));
	json_object_set_new(j, "order_number", json_integer(o->number));
	snprintf(buf, sizeof(buf), "https://%s/%lld/orders/%s/authenticate?key=%.16s", s->name,
		 (long long)s->shop_id, o->token, o->checkout_token);
	json_object_set_new(j, "order_status_url", json_string(buf));
	json_object_set_new(j, "original_total_additional_fees_set", json_null());
	json_object_set_new(j, "original_total_duties_set", json_null());
	json_t *gw = json_array();
	json_array_append_new(gw, json_string(gateway(o)));
	json_object_set_new(j, "payment_gateway_names", gw);
	json_object_set_new(j, "phone", sb_jstr0(o->phone));
	json_object_set_new(j, "po_number", json_null());
	json_object_set_new(j, "presentment_currency", json_string(sb_store_currency(s)));
	json_object_set_new(j, "processed_at", sb_jtime(o->created, tz));
	json_object_set_new(j, "reference", json_null());
	json_object_set_new(j, "referring_site",
			    json_string(o->payment_method % 4 == 0 ? "https://www.google.com/" : ""));
	json_object_set_new(j, "source_identifier", json_null());
	json_object_set_new(j, "source_name", json_string("web"));
	json_object_set_new(j, "source_url", json_null());
	set_money(j, "subtotal_price", subtotal, s);
	json_object_set_new(j, "tags", sb_jstr(o->tags));
	json_object_set_new(j, "tax_exempt", json_false());
	json_t *tl = json_array();
	if (o->tax_bp > 0) {
		json_t *t = json_object();
		set_money(t, "price", tax, s);
		json_object_set_new(t, "rate", json_real(o->tax_bp / 10000.0));
		json_object_set_new(t, "title", sb_jstr(sb_countries[s->country].tax_title));
		/* set_money put price_set after price; channel_liable last */
		json_object_set_new(t, "channel_liable", json_false());
		json_array_append_new(tl, t);
	}
	json_object_set_new(j, "tax_lines", tl);
	json_object_set_new(j, "taxes_included", json_boolean(o->taxes_included));
	json_object_set_new(j, "test", json_false());
	json_object_set_new(j, "token", sb_jstr(o->token));
	json_object_set_new(j, "total_cash_rounding_payment_adjustment_set", money_set(0, s));
	json_object_set_new(j, "total_cash_rounding_refund_adjustment_set", money_set(0, s));
	set_money(j, "total_discounts", o->discount_total, s);
	set_money(j, "total_line_items_price", lines, s);
	json_object_set_new(j, "total_outstanding",
			    sb_jmoney(o->pay == SB_PAY_PENDING ? total : 0, exp));
	set_money(j, "total_price", total, s);
	json_object_set_new(j, "total_shipping_price_set", money_set(o->shipping, s));
	set_money(j, "total_tax", tax, s);
	json_object_set_new(j, "total_tip_received", sb_jmoney(0, exp));
	int grams = 0;
	for (int i = 0; i < o->nlines; i++)
		grams += sb_products[o->lines[i].product].grams * o->lines[i].quantity;
	json_object_set_new(j, "total_weight", json_integer(grams));
	json_object_set_new(j, "updated_at", sb_jtime(o->updated, tz));
	json_object_set_new(j, "user_id", json_null());
	json_object_set_new(j, "billing_address", address_json(&o->bill));
	/* customer */
	json_t *c = json_object();
	json_object_set_new(c, "id", json_integer(o->customer_id));
	json_object_set_new(c, "email", sb_jstr(o->email));
	json_object_set_new(c, "created_at", sb_jtime(o->created, tz));
	json_object_set_new(c, "updated_at", sb_jtime(o->created, tz));
	json_object_set_new(c, "first_name", sb_jstr(o->bill.first));
	json_object_set_new(c, "last_name", sb_jstr(o->bill.last));
	json_object_set_new(c, "state", json_string(o->payment_method % 2 ? "enabled" : "disabled"));
	json_object_set_new(c, "note", json_null());
	json_object_set_new(c, "verified_email", json_true());
	json_object_set_new(c, "multipass_identifier", json_null());
	json_object_set_new(c, "tax_exempt", json_false());
	json_object_set_new(c, "phone", sb_jstr0(o->phone));
	json_object_set_new(c, "email_marketing_consent",
			    json_pack("{s:s,s:n,s:o}", "state",
				      o->payment_method % 3 == 0 ? "subscribed" : "not_subscribed",
				      "opt_in_level", "consent_updated_at",
				      sb_jtime(o->created, tz)));
	json_object_set_new(c, "sms_marketing_consent",
			    json_pack("{s:s,s:s,s:o,s:s}", "state", "not_subscribed",
				      "opt_in_level", "single_opt_in", "consent_updated_at",
				      sb_jtime(o->created, tz), "consent_collected_from",
				      "OTHER"));
	json_object_set_new(c, "tags", json_string(""));
	json_object_set_new(c, "currency", json_string(sb_store_currency(s)));
	json_object_set_new(c, "tax_exemptions", json_array());
	json_object_set_new(c, "admin_graphql_api_id", gid("Customer", o->customer_id));
	{
		const struct sb_address *a = &o->bill;
		char name[100];
		snprintf(name, sizeof(name), "%s %s", a->first, a->last);
		json_t *da = json_object();
		json_object_set_new(da, "id", json_integer(o->customer_id + 1));
		json_object_set_new(da, "customer_id", json_integer(o->customer_id));
		json_object_set_new(da, "first_name", sb_jstr(a->first));
		json_object_set_new(da, "last_name", sb_jstr(a->last));
		json_object_set_new(da, "company", sb_jstr0(a->company));
		json_object_set_new(da, "address1", sb_jstr(a->address1));
		json_object_set_new(da, "address2", sb_jstr(a->address2));
		json_object_set_new(da, "city", sb_jstr(a->city));
		json_object_set_new(da, "province", sb_jstr0(a->province));
		json_object_set_new(da, "country", sb_jstr(a->country));
		json_object_set_new(da, "zip", sb_jstr(a->zip));
		json_object_set_new(da, "phone", sb_jstr0(a->phone));
		json_object_set_new(da, "name", sb_jstr(name));
		json_object_set_new(da, "province_code", sb_jstr0(a->province_code));
		json_object_set_new(da, "country_code", sb_jstr(a->country_code));
		json_object_set_new(da, "country_name", sb_jstr(a->country));
		json_object_set_new(da, "default", json_true());
		json_object_set_new(c, "default_address", da);
	}
	json_object_set_new(j, "customer", c);
	json_t *dapps = json_array();
	if (o->discount_kind) {
		json_t *d = json_object();
		json_object_set_new(d, "target_type", json_string("line_item"));
		json_object_set_new(d, "type", json_string("discount_code"));
		json_object_set_new(d, "value",
				    json_string(o->discount_kind == 1   ? "10.0"
						: o->discount_kind == 2 ? "15.0"
									: (exp ? "10.0" : "1000.0")));
		json_object_set_new(d, "value_type",
				    json_string(o->discount_kind == 3 ? "fixed_amount" : "percentage"));
		json_object_set_new(d, "allocation_method", json_string("across"));
		json_object_set_new(d, "target_selection", json_string("all"));
		json_object_set_new(d, "code", json_string(codes[o->discount_kind]));
		json_array_append_new(dapps, d);
	}
	json_object_set_new(j, "discount_applications", dapps);
	json_t *fa = json_array();
	for (int i = 0; i < o->nfuls; i++)
		json_array_append_new(fa, fulfillment_json(o->fuls[i], 1));
	json_object_set_new(j, "fulfillments", fa);
	json_t *li = json_array();
	for (int i = 0; i < o->nlines; i++)
		json_array_append_new(li, line_json(o, &o->lines[i], o->lines[i].quantity, 1));
	json_object_set_new(j, "line_items", li);
	json_object_set_new(j, "payment_terms", json_null());
	json_object_set_new(j, "refunds", json_array());
	json_object_set_new(j, "shipping_address", address_json(&o->ship));
	json_t *sl = json_array();
	{
		json_t *l = json_object();
		json_object_set_new(l, "id", json_integer(o->checkout_id + 7));
		json_object_set_new(l, "carrier_identifier", json_null());
		json_object_set_new(l, "code", json_string(o->ship_method ? "Express" : "Standard"));
		set_money(l, "discounted_price", o->shipping, s);
		json_object_set_new(l, "is_removed", json_false());
		json_object_set_new(l, "phone", json_null());
		set_money(l, "price", o->shipping, s);
		json_object_set_new(l, "requested_fulfillment_service_id", json_null());
		json_object_set_new(l, "source", json_string("shopify"));
		json_object_set_new(
			l, "title",
			json_string(o->ship_method ? "Express Shipping" : "Standard Shipping"));
		json_object_set_new(l, "tax_lines", json_array());
		json_object_set_new(l, "discount_allocations", json_array());
		json_array_append_new(sl, l);
	}
	json_object_set_new(j, "shipping_lines", sl);
	return j;
}

static const char *fo_status(const struct sb_order *o)
{
	if (o->cancelled_at)
		return "cancelled";
	int done = sb_order_fulfilled_qty(o), all = sb_order_total_qty(o);
	if (done >= all)
		return "closed";
	return done ? "in_progress" : "open";
}

static json_t *fulfillment_order_json(const struct sb_order *o)
{
	const struct sb_store *s = o->store;
	const struct sb_city *wc = &sb_cities[s->city];
	const struct sb_address *a = &o->ship;
	const char *st = fo_status(o);
	int open = strcmp(st, "open") == 0 || strcmp(st, "in_progress") == 0;
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(o->fo_id));
	json_object_set_new(j, "created_at", sb_jtime(o->created, s->tz_min));
	json_object_set_new(j, "updated_at", sb_jtime(o->fo_updated, s->tz_min));
	json_object_set_new(j, "shop_id", json_integer(s->shop_id));
	json_object_set_new(j, "order_id", json_integer(o->id));
	json_object_set_new(j, "assigned_location_id", json_integer(s->location_id));
	json_object_set_new(j, "request_status", json_string("unsubmitted"));
	json_object_set_new(j, "status", json_string(st));
	json_object_set_new(j, "fulfill_at", json_null());
	json_object_set_new(j, "fulfill_by", json_null());
	json_t *acts = json_array();
	if (open) {
		json_array_append_new(acts, json_string("create_fulfillment"));
		json_array_append_new(acts, json_string("hold"));
		json_array_append_new(acts, json_string("move"));
	}
	json_object_set_new(j, "supported_actions", acts);
	json_t *d = json_object();
	json_object_set_new(d, "id", json_integer(o->fo_id + 1));
	json_object_set_new(d, "address1", sb_jstr(a->address1));
	json_object_set_new(d, "address2", sb_jstr(a->address2));
	json_object_set_new(d, "city", sb_jstr(a->city));
	json_object_set_new(d, "company", sb_jstr0(a->company));
	json_object_set_new(d, "country", sb_jstr(a->country));
	json_object_set_new(d, "email", sb_jstr(o->email));
	json_object_set_new(d, "first_name", sb_jstr(a->first));
	json_object_set_new(d, "last_name", sb_jstr(a->last));
	json_object_set_new(d, "phone", sb_jstr0(a->phone));
	json_object_set_new(d, "province", sb_jstr0(a->province));
	json_object_set_new(d, "zip", sb_jstr(a->zip));
	json_object_set_new(j, "destination", d);
	json_t *li = json_array();
	for (int i = 0; i < o->nlines; i++) {
		const struct sb_line *l = &o->lines[i];
		int left = o->cancelled_at ? 0 : l->quantity - l->fulfilled;
		json_t *x = json_object();
		json_object_set_new(x, "id", json_integer(l->fo_line_id));
		json_object_set_new(x, "shop_id", json_integer(s->shop_id));
		json_object_set_new(x, "fulfillment_order_id", json_integer(o->fo_id));
		json_object_set_new(x, "quantity", json_integer(left));
		json_object_set_new(x, "line_item_id", json_integer(l->id));
		json_object_set_new(x, "inventory_item_id",
				    json_integer(variant_id(s, l->product, l->variant) + 7));
		json_object_set_new(x, "fulfillable_quantity", json_integer(left));
		json_object_set_new(x, "variant_id",
				    json_integer(variant_id(s, l->product, l->variant)));
		json_array_append_new(li, x);
	}
	json_object_set_new(j, "line_items", li);
	json_object_set_new(j, "international_duties", json_null());
	json_object_set_new(j, "fulfillment_holds", json_array());
	json_object_set_new(j, "delivery_method", json_null());
	json_object_set_new(
		j, "assigned_location",
		json_pack("{s:s,s:n,s:s,s:s,s:I,s:s,s:n,s:o,s:s}", "address1", "100 Commerce Way",
			  "address2", "city", wc->city, "country_code", sb_countries[s->country].code,
			  "location_id", (json_int_t)s->location_id, "name", "Main Warehouse", "phone",
			  "province", sb_jstr(wc->province), "zip", wc->zip));
	json_object_set_new(j, "merchant_requests", json_array());
	return j;
}

static json_t *fevent_json(const struct sb_fulfillment *f, const struct sb_fevent *e)
{
	const struct sb_order *o = f->order;
	const struct sb_store *s = o->store;
	const struct sb_shipment *sh = f->shipment;
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(e->id));
	json_object_set_new(j, "fulfillment_id", json_integer(f->id));
	json_object_set_new(j, "status", sb_jstr(sb_ship_status_name(e->status)));
	json_object_set_new(j, "message", sb_jstr0(e->message));
	json_object_set_new(j, "happened_at", sb_jtime(e->at, s->tz_min));
	int dest = e->status >= SB_SS_OUT_FOR_DELIVERY && sh;
	json_object_set_new(j, "city", dest ? sb_jstr(sh->to.city) : json_null());
	json_object_set_new(j, "province", dest ? sb_jstr0(sh->to.province) : json_null());
	json_object_set_new(j, "country", dest ? sb_jstr(sh->to.country) : json_null());
	json_object_set_new(j, "zip", dest ? sb_jstr(sh->to.zip) : json_null());
	json_object_set_new(j, "address1", json_null());
	json_object_set_new(j, "latitude", dest ? json_real(sh->to.lat) : json_null());
	json_object_set_new(j, "longitude", dest ? json_real(sh->to.lon) : json_null());
	json_object_set_new(j, "shop_id", json_integer(s->shop_id));
	json_object_set_new(j, "created_at", sb_jtime(e->at, s->tz_min));
	json_object_set_new(j, "updated_at", sb_jtime(e->at, s->tz_min));
	json_object_set_new(j, "estimated_delivery_at", json_null());
	json_object_set_new(j, "order_id", json_integer(o->id));
	json_object_set_new(j, "admin_graphql_api_id", gid("FulfillmentEvent", e->id));
	return j;
}

const char *sb_order_cached(struct sb_server *srv, struct sb_order *o, size_t *len)
{
	if (!o->cache) {
		json_t *j = o->store->api == SB_WOO ? sb_woo_order_json(srv, o)
						    : o->store->api == SB_SHOPIFY
							      ? sb_shopify_order_json(srv, o)
							      : sb_amazon_order_json(srv, o, SB_AMZ_ALL);
		o->cache = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		o->cache_len = o->cache ? strlen(o->cache) : 0;
	}
	*len = o->cache_len;
	return o->cache ? o->cache : "null";
}

/* ---- errors ------------------------------------------------------------- */

static void error_str(struct sb_req *r, int status, const char *msg)
{
	sb_reply_json(r, status, json_pack("{s:s}", "errors", msg));
}

static void error_field(struct sb_req *r, int status, const char *field, const char *msg)
{
	sb_reply_json(r, status, json_pack("{s:{s:s}}", "errors", field, msg));
}

static void error_list(struct sb_req *r, int status, const char *msg)
{
	sb_reply_json(r, status, json_pack("{s:[s]}", "errors", msg));
}

void sb_shopify_fault(struct sb_req *r, int status)
{
	char lim[32];
	if (status == 429) {
		snprintf(lim, sizeof(lim), "%d/%d", (int)r->srv->cfg.shopify_bucket,
			 (int)r->srv->cfg.shopify_bucket);
		sb_set_header(r, "X-Shopify-Shop-Api-Call-Limit", lim);
		sb_set_header(r, "Retry-After", "2.0");
		error_str(r, 429, "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.");
	} else {
		error_str(r, status, status == 503 ? "Service Unavailable" : "Internal Server Error");
	}
}

/* ---- orders list ------------------------------------------------------- */

enum { ORD_CREATED, ORD_UPDATED, ORD_PROCESSED, ORD_ID };
static const char *const order_fields[] = { "created_at", "updated_at", "processed_at", "id" };
enum { ST_OPEN, ST_CLOSED, ST_CANCELLED, ST_ANY };
static const char *const statuses[] = { "open", "closed", "cancelled", "any" };

struct listq {
	int status;
	int64_t umin, umax, cmin, cmax, pmin, pmax;
	int64_t since_id;
	char fin[24], ful[24];
	int64_t ids[MAX_LIMIT];
	int nids;
	int field, desc;
};

static void listq_init(struct listq *q)
{
	memset(q, 0, sizeof(*q));
	q->status = ST_OPEN;
	q->umin = q->cmin = q->pmin = INT64_MIN;
	q->umax = q->cmax = q->pmax = INT64_MAX;
	q->field = ORD_CREATED;
	q->desc = 1;
}

static int64_t key_of(const struct sb_order *o, int field)
{
	switch (field) {
	case ORD_UPDATED:
		return o->updated;
	case ORD_ID:
		return o->id;
	default:
		return o->created;
	}
}

static int match(const struct sb_order *o, const struct listq *q)
{
	switch (q->status) {
	case ST_OPEN:
		if (o->closed_at || o->cancelled_at)
			return 0;
		break;
	case ST_CLOSED:
		if (!o->closed_at)
			return 0;
		break;
	case ST_CANCELLED:
		if (!o->cancelled_at)
			return 0;
		break;
	default:
		break;
	}
	if (o->updated < q->umin || o->updated > q->umax || o->created < q->cmin ||
	    o->created > q->cmax || o->created < q->pmin || o->created > q->pmax)
		return 0;
	if (q->since_id && o->id <= q->since_id)
		return 0;
	if (q->nids) {
		int hit = 0;
		for (int i = 0; i < q->nids; i++)
			if (q->ids[i] == o->id)
				hit = 1;
		if (!hit)
			return 0;
	}
	if (q->fin[0] && strcmp(q->fin, "any") != 0) {
		const char *fs = financial_status(o);
		if (strcmp(q->fin, "unpaid") == 0) {
			if (o->pay != SB_PAY_PENDING)
				return 0;
		} else if (strcmp(q->fin, fs) != 0) {
			return 0;
		}
	}
	if (q->ful[0] && strcmp(q->ful, "any") != 0) {
		const char *fs = fulfillment_status(o);
		if (!strcmp(q->ful, "shipped") || !strcmp(q->ful, "fulfilled")) {
			if (!fs || strcmp(fs, "fulfilled"))
				return 0;
		} else if (!strcmp(q->ful, "partial")) {
			if (!fs || strcmp(fs, "partial"))
				return 0;
		} else if (!strcmp(q->ful, "unshipped") || !strcmp(q->ful, "unfulfilled")) {
			if (fs && !strcmp(q->ful, "unshipped"))
				return 0;
			if (fs && !strcmp(fs, "fulfilled"))
				return 0;
		}
	}
	return 1;
}

/* -1/0/1 comparing (key, id) pairs in the list's order. */
static int cmp_pos(int64_t ka, int64_t ia, int64_t kb, int64_t ib, int desc)
{
	int c = ka < kb ? -1 : ka > kb ? 1 : (ia < ib ? -1 : ia > ib ? 1 : 0);
	return desc ? -c : c;
}

static int g_sort_field, g_sort_desc;

static int cmp_orders(const void *a, const void *b)
{
	const struct sb_order *x = *(struct sb_order *const *)a, *y = *(struct sb_order *const *)b;
	return cmp_pos(key_of(x, g_sort_field), x->id, key_of(y, g_sort_field), y->id,
		       g_sort_desc);
}

static char *encode_cursor(const struct listq *q, int prev, const struct sb_order *at)
{
	json_t *j = json_object();
	json_object_set_new(j, "direction", json_string(prev ? "prev" : "next"));
	json_object_set_new(j, "last_id", json_integer(at->id));
	json_object_set_new(j, "last_value", json_integer(key_of(at, q->field)));
	json_object_set_new(j, "order", json_string(order_fields[q->field]));
	json_object_set_new(j, "desc", json_boolean(q->desc));
	json_object_set_new(j, "status", json_string(statuses[q->status]));
	if (q->umin != INT64_MIN)
		json_object_set_new(j, "umin", json_integer(q->umin));
	if (q->umax != INT64_MAX)
		json_object_set_new(j, "umax", json_integer(q->umax));
	if (q->cmin != INT64_MIN)
		json_object_set_new(j, "cmin", json_integer(q->cmin));
	if (q->cmax != INT64_MAX)
		json_object_set_new(j, "cmax", json_integer(q->cmax));
	if (q->pmin != INT64_MIN)
		json_object_set_new(j, "pmin", json_integer(q->pmin));
	if (q->pmax != INT64_MAX)
		json_object_set_new(j, "pmax", json_integer(q->pmax));
	if (q->since_id)
		json_object_set_new(j, "since_id", json_integer(q->since_id));
	if (q->fin[0])
		json_object_set_new(j, "financial_status", json_string(q->fin));
	if (q->ful[0])
		json_object_set_new(j, "fulfillment_status", json_string(q->ful));
	if (q->nids) {
		json_t *a = json_array();
		for (int i = 0; i < q->nids; i++)
			json_array_append_new(a, json_integer(q->ids[i]));
		json_object_set_new(j, "ids", a);
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return NULL;
	char *b = sb_b64(s, strlen(s), 1);
	free(s);
	return b;
}

static int64_t jint(const json_t *j, const char *k, int64_t dflt)
{
	const json_t *v = json_object_get(j, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static int decode_cursor(const char *text, struct listq *q, int *prev, int64_t *last_key,
			 int64_t *last_id)
{
	size_t n;
	unsigned char *raw = sb_unb64(text, &n, 1);
	if (!raw)
		return -1;
	json_t *j = json_loadb((const char *)raw, n, 0, NULL);
	free(raw);
	if (!json_is_object(j)) {
		json_decref(j);
		return -1;
	}
	int rc = -1;
	const char *dir = json_string_value(json_object_get(j, "direction"));
	const char *ord = json_string_value(json_object_get(j, "order"));
	const char *st = json_string_value(json_object_get(j, "status"));
	if (!dir || !ord || !st || !json_is_integer(json_object_get(j, "last_id")) ||
	    !json_is_integer(json_object_get(j, "last_value")))
		goto out;
	listq_init(q);
	*prev = strcmp(dir, "prev") == 0;
	q->field = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(ord, order_fields[i]) == 0)
			q->field = i;
	q->status = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(st, statuses[i]) == 0)
			q->status = i;
	if (q->field < 0 || q->status < 0)
		goto out;
	q->desc = json_is_true(json_object_get(j, "desc"));
	q->umin = jint(j, "umin", INT64_MIN);
	q->umax = jint(j, "umax", INT64_MAX);
	q->cmin = jint(j, "cmin", INT64_MIN);
	q->cmax = jint(j, "cmax", INT64_MAX);
	q->pmin = jint(j, "pmin", INT64_MIN);
	q->pmax = jint(j, "pmax", INT64_MAX);
	q->since_id = jint(j, "since_id", 0);
	const char *fs = json_string_value(json_object_get(j, "financial_status"));
	const char *ff = json_string_value(json_object_get(j, "fulfillment_status"));
	if (fs)
		snprintf(q->fin, sizeof(q->fin), "%s", fs);
	if (ff)
		snprintf(q->ful, sizeof(q->ful), "%s", ff);
	const json_t *ids = json_object_get(j, "ids");
	size_t i;
	const json_t *v;
	json_array_foreach(ids, i, v)
		if (q->nids < MAX_LIMIT && json_is_integer(v))
			q->ids[q->nids++] = json_integer_value(v);
	*last_key = jint(j, "last_value", 0);
	*last_id = jint(j, "last_id", 0);
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* Parses the filters of a first-page request; replies with 400 and returns
 * -1 on a bad value. */
static int parse_filters(struct sb_req *r, struct listq *q)
{
	const struct sb_store *s = r->store;
	const char *v;
	if ((v = sb_q(r, "status"))) {
		q->status = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(v, statuses[i]) == 0)
				q->status = i;
		if (q->status < 0) {
			error_field(r, 400, "status", "status must be one of open, closed, cancelled, any");
			return -1;
		}
	}
	static const struct {
		const char *name;
		size_t off;
	} times[] = {
		{ "updated_at_min", offsetof(struct listq, umin) },
		{ "updated_at_max", offsetof(struct listq, umax) },
		{ "created_at_min", offsetof(struct listq, cmin) },
		{ "created_at_max", offsetof(struct listq, cmax) },
		{ "processed_at_min", offsetof(struct listq, pmin) },
		{ "processed_at_max", offsetof(struct listq, pmax) },
	};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		if (!(v = sb_q(r, times[i].name)))
			continue;
		int64_t ms;
		if (sb_parse_time(v, s->tz_min, &ms)) {
			char msg[160];
			snprintf(msg, sizeof(msg), "%s must be an ISO 8601 date-time", times[i].name);
			error_field(r, 400, times[i].name, msg);
			return -1;
		}
		*(int64_t *)((char *)q + times[i].off) = ms;
	}
	if ((v = sb_q(r, "since_id"))) {
		char *end;
		long long x = strtoll(v, &end, 10);
		if (*end || end == v || x < 0) {
			error_field(r, 400, "since_id", "since_id must be an integer");
			return -1;
		}
		q->since_id = x;
		q->field = ORD_ID;
		q->desc = 0;
	}
	if ((v = sb_q(r, "ids"))) {
		const char *p = v;
		while (*p && q->nids < MAX_LIMIT) {
			char *end;
			long long x = strtoll(p, &end, 10);
			if (end == p) {
				error_field(r, 400, "ids", "ids must be a comma-separated list of ids");
				return -1;
			}
			q->ids[q->nids++] = x;
			p = end;
			while (*p == ',' || *p == ' ')
				p++;
		}
	}
	if ((v = sb_q(r, "financial_status")))
		snprintf(q->fin, sizeof(q->fin), "%s", v);
	if ((v = sb_q(r, "fulfillment_status")))
		snprintf(q->ful, sizeof(q->ful), "%s", v);
	if ((v = sb_q(r, "order"))) {
		char f[32], d[8] = "desc";
		if (sscanf(v, "%31s %7s", f, d) < 1) {
			error_field(r, 400, "order", "order must be \"<field> asc|desc\"");
			return -1;
		}
		int field = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(f, order_fields[i]) == 0)
				field = i;
		if (field < 0 || (strcmp(d, "asc") && strcmp(d, "desc"))) {
			error_field(r, 400, "order", "order must be \"<field> asc|desc\" with created_at, updated_at, processed_at or id");
			return -1;
		}
		q->field = field;
		q->desc = strcmp(d, "desc") == 0;
	}
	return 0;
}

static void base_url(struct sb_req *r, char *buf, size_t size)
{
	const char *pb = r->srv->cfg.public_base;
	if (pb[0]) {
		/* "https://{shop}" */
		const char *t = strstr(pb, "{shop}");
		if (t)
			snprintf(buf, size, "%.*s%s%s", (int)(t - pb), pb, r->store->name, t + 6);
		else
			snprintf(buf, size, "%s", pb);
	} else {
		snprintf(buf, size, "http://%.200s%.250s", r->host, r->prefix);
	}
}

static json_t *filter_fields(json_t *obj, const char *fields)
{
	json_t *out = json_object();
	const char *p = fields;
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		char k[64];
		snprintf(k, sizeof(k), "%.*s", (int)(e - p), p);
		size_t kl = strlen(k);
		while (kl && k[kl - 1] == ' ')
			k[--kl] = '\0';
		json_t *v = json_object_get(obj, k);
		if (v)
			json_object_set(out, k, v);
		p = e;
	}
	return out;
}

static void orders_list(struct sb_req *r, const char *version, int count_only)
{
	struct sb_store *s = r->store;
	struct listq q;
	listq_init(&q);
	int prev = 0, have_cursor = 0;
	int64_t last_key = 0, last_id = 0;
	const char *pi = sb_q(r, "page_info");
	const char *fields = sb_q(r, "fields");
	if (pi && !count_only) {
		for (int i = 0; i < r->nq; i++) {
			const char *k = r->qk[i];
			if (strcmp(k, "page_info") && strcmp(k, "limit") && strcmp(k, "fields")) {
				char msg[160];
				snprintf(msg, sizeof(msg), "%s cannot be passed when page_info is present.",
					 k);
				error_field(r, 400, k, msg);
				return;
			}
		}
		if (decode_cursor(pi, &q, &prev, &last_key, &last_id)) {
			error_field(r, 400, "page_info", "Invalid value.");
			return;
		}
		have_cursor = 1;
	} else if (parse_filters(r, &q)) {
		return;
	}
	int limit = 50;
	const char *lv = sb_q(r, "limit");
	if (lv && !count_only) {
		char *end;
		long x = strtol(lv, &end, 10);
		if (*end || end == lv || x < 1) {
			error_field(r, 400, "limit", "limit must be an integer greater than 0");
			return;
		}
		if (x > MAX_LIMIT) {
			error_field(r, 400, "limit", "limit must be less than or equal to 250");
			return;
		}
		limit = (int)x;
	}
	/* matching orders in list order */
	struct sb_order **m = malloc((size_t)(s->norders ? s->norders : 1) * sizeof(*m));
	if (!m) {
		error_str(r, 500, "Internal Server Error");
		return;
	}
	int n = 0;
	for (int i = 0; i < s->norders; i++)
		if (match(s->orders[i], &q))
			m[n++] = s->orders[i];
	if (count_only) {
		free(m);
		sb_reply_json(r, 200, json_pack("{s:i}", "count", n));
		return;
	}
	if (q.field == ORD_UPDATED) {
		g_sort_field = q.field;
		g_sort_desc = q.desc;
		qsort(m, (size_t)n, sizeof(*m), cmp_orders);
	} else if (q.desc) {
		for (int i = 0; i < n / 2; i++) {
			struct sb_order *t = m[i];
			m[i] = m[n - 1 - i];
			m[n - 1 - i] = t;
		}
	}
	/* window of the page */
	int start = 0, end = n;
	if (have_cursor) {
		/* first index strictly after the cursor position */
		int after = n;
		for (int i = 0; i < n; i++)
			if (cmp_pos(key_of(m[i], q.field), m[i]->id, last_key, last_id, q.desc) > 0) {
				after = i;
				break;
			}
		int before_end = 0; /* items strictly before the cursor: [0, before_end) */
		for (int i = 0; i < n; i++)
			if (cmp_pos(key_of(m[i], q.field), m[i]->id, last_key, last_id, q.desc) < 0)
				before_end = i + 1;
		if (prev) {
			end = before_end;
			start = end - limit < 0 ? 0 : end - limit;
		} else {
			start = after;
			end = start + limit > n ? n : start + limit;
		}
	} else {
		end = limit > n ? n : limit;
	}
	int has_prev = start > 0, has_next = end < n;
	char base[512];
	base_url(r, base, sizeof(base));
	char *fenc = fields ? sb_urlencode(fields) : NULL;
	struct evbuffer *link = evbuffer_new();
	if (link && end > start) {
		if (has_prev) {
			char *c = encode_cursor(&q, 1, m[start]);
			evbuffer_add_printf(link, "<%s/admin/api/%s/orders.json?limit=%d%s%s&page_info=%s>; rel=\"previous\"",
					    base, version, limit, fenc ? "&fields=" : "", fenc ? fenc : "",
					    c ? c : "");
			free(c);
		}
		if (has_next) {
			char *c = encode_cursor(&q, 0, m[end - 1]);
			evbuffer_add_printf(link, "%s<%s/admin/api/%s/orders.json?limit=%d%s%s&page_info=%s>; rel=\"next\"",
					    has_prev ? ", " : "", base, version, limit,
					    fenc ? "&fields=" : "", fenc ? fenc : "", c ? c : "");
			free(c);
		}
		if (evbuffer_get_length(link)) {
			evbuffer_add(link, "", 1);
			sb_set_header(r, "Link", (const char *)evbuffer_pullup(link, -1));
		}
	}
	if (link)
		evbuffer_free(link);
	free(fenc);
	struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, "{\"orders\":[", 11);
	for (int i = start; i < end; i++) {
		if (i > start)
			evbuffer_add(body, ",", 1);
		if (fields) {
			json_t *full = sb_shopify_order_json(r->srv, m[i]);
			json_t *part = filter_fields(full, fields);
			char *t = json_dumps(part, JSON_COMPACT);
			if (t)
				evbuffer_add(body, t, strlen(t));
			free(t);
			json_decref(part);
			json_decref(full);
		} else {
			size_t len;
			const char *t = sb_order_cached(r->srv, m[i], &len);
			evbuffer_add(body, t, len);
		}
	}
	evbuffer_add(body, "]}", 2);
	free(m);
	sb_reply_buf(r, 200, body);
	evbuffer_free(body);
}

/* ---- single resources ---------------------------------------------------- */

static struct sb_fulfillment *find_ful(struct sb_order *o, int64_t id)
{
	for (int i = 0; i < o->nfuls; i++)
		if (o->fuls[i]->id == id)
			return o->fuls[i];
	return NULL;
}

static struct sb_fulfillment *find_ful_store(struct sb_store *s, int64_t id)
{
	for (int i = s->norders - 1; i >= 0; i--) {
		struct sb_fulfillment *f = find_ful(s->orders[i], id);
		if (f)
			return f;
	}
	return NULL;
}

static struct sb_order *find_fo(struct sb_store *s, int64_t fo_id)
{
	for (int i = s->norders - 1; i >= 0; i--)
		if (s->orders[i]->fo_id == fo_id)
			return s->orders[i];
	return NULL;
}

static void reply_order(struct sb_req *r, struct sb_order *o, const char *fields)
{
	if (fields) {
		json_t *full = sb_shopify_order_json(r->srv, o);
		json_t *part = filter_fields(full, fields);
		json_decref(full);
		sb_reply_json(r, 200, json_pack("{s:o}", "order", part));
		return;
	}
	size_t len;
	const char *t = sb_order_cached(r->srv, o, &len);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, "{\"order\":", 9);
	evbuffer_add(b, t, len);
	evbuffer_add(b, "}", 1);
	sb_reply_buf(r, 200, b);
	evbuffer_free(b);
}

/* Guesses the carrier of a bare tracking number the way Shopify does. */
static const char *guess_company(const char *n)
{
	size_t len = strlen(n);
	int digits = 1;
	for (size_t i = 0; i < len; i++)
		if (n[i] < '0' || n[i] > '9')
			digits = 0;
	if (len == 18 && (n[0] == '1') && (n[1] == 'Z' || n[1] == 'z'))
		return "UPS";
	if (digits && (len == 12 || len == 15))
		return "FedEx";
	if (digits && len >= 20 && len <= 22 && n[0] == '9')
		return "USPS";
	if (digits && len == 10)
		return "DHL Express";
	return "Other";
}

static void tracking_info(const json_t *ti, const char **company, const char **number,
			  const char **url)
{
	*company = *number = *url = NULL;
	if (!json_is_object(ti))
		return;
	*company = json_string_value(json_object_get(ti, "company"));
	*number = json_string_value(json_object_get(ti, "number"));
	*url = json_string_value(json_object_get(ti, "url"));
	if (!*number) {
		const json_t *nums = json_object_get(ti, "numbers");
		if (json_is_array(nums) && json_array_size(nums))
			*number = json_string_value(json_array_get(nums, 0));
	}
}

static void create_fulfillment(struct sb_req *r)
{
	json_t *body = sb_body_json(r, 0);
	const json_t *f = json_object_get(body, "fulfillment");
	const json_t *lbfo = json_object_get(f, "line_items_by_fulfillment_order");
	if (!json_is_object(f) || !json_is_array(lbfo) || json_array_size(lbfo) == 0) {
		json_decref(body);
		error_field(r, 400, "fulfillment", "Required parameter missing or invalid");
		return;
	}
	struct sb_order *o = NULL;
	int idx[SB_MAX_LINES * 2], qty[SB_MAX_LINES * 2], n = 0;
	size_t i;
	const json_t *e;
	json_array_foreach(lbfo, i, e) {
		const json_t *foid = json_object_get(e, "fulfillment_order_id");
		if (!json_is_integer(foid)) {
			json_decref(body);
			error_field(r, 400, "fulfillment_order_id", "Required parameter missing or invalid");
			return;
		}
		struct sb_order *fo = find_fo(r->store, json_integer_value(foid));
		if (!fo || (o && fo != o)) {
			json_decref(body);
			error_str(r, 404, "Not Found");
			return;
		}
		o = fo;
		const char *st = fo_status(o);
		if (strcmp(st, "open") && strcmp(st, "in_progress")) {
			char msg[160];
			snprintf(msg, sizeof(msg),
				 "Fulfillment order %lld has an unfulfillable status= %s.",
				 (long long)o->fo_id, st);
			json_decref(body);
			error_list(r, 422, msg);
			return;
		}
		const json_t *items = json_object_get(e, "fulfillment_order_line_items");
		if (!json_is_array(items) || json_array_size(items) == 0) {
			for (int k = 0; k < o->nlines && n < SB_MAX_LINES * 2; k++) {
				idx[n] = k;
				qty[n++] = -1;
			}
			continue;
		}
		size_t k;
		const json_t *it;
		json_array_foreach(items, k, it) {
			int64_t lid = jint(it, "id", -1);
			int64_t q = jint(it, "quantity", -1);
			int li = -1;
			for (int x = 0; x < o->nlines; x++)
				if (o->lines[x].fo_line_id == lid)
					li = x;
			if (li < 0 || q < 1 || q > o->lines[li].quantity - o->lines[li].fulfilled ||
			    n >= SB_MAX_LINES * 2) {
				json_decref(body);
				error_list(r, 422, "Invalid fulfillment order line item quantity requested.");
				return;
			}
			idx[n] = li;
			qty[n++] = (int)q;
		}
	}
	const char *company, *number, *url;
	tracking_info(json_object_get(f, "tracking_info"), &company, &number, &url);
	if (number && !company)
		company = guess_company(number);
	struct sb_fulfillment *ful = sb_order_fulfill(r->srv->world, o, n, idx, qty,
						      company ? company : "", number, url);
	json_decref(body);
	if (!ful) {
		error_list(r, 422, "Invalid fulfillment order line item quantity requested.");
		return;
	}
	sb_reply_json(r, 201, json_pack("{s:o}", "fulfillment", fulfillment_json(ful, 0)));
}

static void update_tracking(struct sb_req *r, int64_t id)
{
	struct sb_fulfillment *f = find_ful_store(r->store, id);
	if (!f) {
		error_str(r, 404, "Not Found");
		return;
	}
	json_t *body = sb_body_json(r, 0);
	const json_t *fj = json_object_get(body, "fulfillment");
	const json_t *ti = json_object_get(fj, "tracking_info");
	if (!json_is_object(ti)) {
		json_decref(body);
		error_field(r, 400, "tracking_info", "Required parameter missing or invalid");
		return;
	}
	const char *company, *number, *url;
	tracking_info(ti, &company, &number, &url);
	if (number && !company)
		company = guess_company(number);
	sb_fulfillment_retrack(r->srv->world, f, company, number, url);
	json_decref(body);
	sb_reply_json(r, 200, json_pack("{s:o}", "fulfillment", fulfillment_json(f, 0)));
}

static void create_event(struct sb_req *r, struct sb_fulfillment *f)
{
	json_t *body = sb_body_json(r, 0);
	const json_t *ev = json_object_get(body, "event");
	const char *st = json_string_value(json_object_get(ev, "status"));
	int status = sb_ship_status_parse(st);
	if (!json_is_object(ev) || status < 0) {
		json_decref(body);
		sb_reply_json(r, 422, json_pack("{s:{s:[s]}}", "errors", "status",
						 "is not included in the list"));
		return;
	}
	int64_t at = sb_now(r->srv) / 1000 * 1000;
	const char *ha = json_string_value(json_object_get(ev, "happened_at"));
	int64_t t;
	if (ha && sb_parse_time(ha, r->store->tz_min, &t) == 0)
		at = t;
	const char *msg = json_string_value(json_object_get(ev, "message"));
	struct sb_fevent *e = sb_fulfillment_add_event(r->srv->world, f, status, at, msg);
	json_decref(body);
	if (!e) {
		error_str(r, 500, "Internal Server Error");
		return;
	}
	sb_reply_json(r, 201, json_pack("{s:o}", "fulfillment_event", fevent_json(f, e)));
}

/* ---- webhook subscriptions ---------------------------------------------- */

static const char *const topics[] = { "orders/create", "orders/updated", "orders/cancelled",
				      "fulfillments/create", "fulfillments/update" };

static json_t *sub_json(const struct sb_store *s, const struct sb_webhook_sub *w,
			const char *version)
{
	return json_pack("{s:I,s:s,s:s,s:o,s:o,s:s,s:[],s:[],s:s,s:[]}", "id", (json_int_t)w->id,
			 "address", w->address, "topic", w->topic, "created_at",
			 sb_jtime(w->created, s->tz_min), "updated_at",
			 sb_jtime(w->created, s->tz_min), "format", "json", "fields",
			 "metafield_namespaces", "api_version", version,
			 "private_metafield_namespaces");
}

static void webhooks(struct sb_req *r, const char *version, const char *rest)
{
	struct sb_store *s = r->store;
	if (strcmp(rest, "webhooks.json") == 0 && r->method == EVHTTP_REQ_GET) {
		json_t *a = json_array();
		for (int i = 0; i < s->nsubs; i++)
			json_array_append_new(a, sub_json(s, &s->subs[i], version));
		sb_reply_json(r, 200, json_pack("{s:o}", "webhooks", a));
		return;
	}
	if (strcmp(rest, "webhooks.json") == 0 && r->method == EVHTTP_REQ_POST) {
		json_t *body = sb_body_json(r, 0);
		const json_t *w = json_object_get(body, "webhook");
		const char *topic = json_string_value(json_object_get(w, "topic"));
		const char *addr = json_string_value(json_object_get(w, "address"));
		int ok = 0;
		for (size_t i = 0; topic && i < sizeof(topics) / sizeof(topics[0]); i++)
			if (strcmp(topic, topics[i]) == 0)
				ok = 1;
		if (!ok || !addr || (strncmp(addr, "http://", 7) && strncmp(addr, "https://", 8)) ||
		    strlen(addr) >= sizeof(s->subs[0].address)) {
			json_decref(body);
			sb_reply_json(r, 422, json_pack("{s:{s:[s]}}", "errors",
							 ok ? "address" : "topic",
							 ok ? "is invalid" : "Invalid topic specified."));
			return;
		}
		if (s->nsubs == s->capsubs) {
			int ncap = s->capsubs ? s->capsubs * 2 : 4;
			struct sb_webhook_sub *ns = realloc(s->subs, (size_t)ncap * sizeof(*ns));
			if (!ns) {
				json_decref(body);
				error_str(r, 500, "Internal Server Error");
				return;
			}
			s->subs = ns;
			s->capsubs = ncap;
		}
		struct sb_webhook_sub *sub = &s->subs[s->nsubs++];
		memset(sub, 0, sizeof(*sub));
		s->next_misc_id += 17;
		sub->id = s->next_misc_id;
		snprintf(sub->topic, sizeof(sub->topic), "%s", topic);
		snprintf(sub->address, sizeof(sub->address), "%s", addr);
		sub->created = sb_now(r->srv) / 1000 * 1000;
		json_decref(body);
		sb_reply_json(r, 201, json_pack("{s:o}", "webhook", sub_json(s, sub, version)));
		return;
	}
	long long id;
	int nch = 0;
	if (sscanf(rest, "webhooks/%lld.json%n", &id, &nch) == 1 && rest[nch] == '\0' &&
	    r->method == EVHTTP_REQ_DELETE) {
		for (int i = 0; i < s->nsubs; i++) {
			if (s->subs[i].id == id) {
				memmove(&s->subs[i], &s->subs[i + 1],
					(size_t)(s->nsubs - i - 1) * sizeof(s->subs[0]));
				s->nsubs--;
				sb_reply(r, 200, "{}", 2);
				return;
			}
		}
	}
	error_str(r, 404, "Not Found");
}

static void shop_json(struct sb_req *r)
{
	const struct sb_store *s = r->store;
	const struct sb_country *c = &sb_countries[s->country];
	const struct sb_city *ci = &sb_cities[s->city];
	char name[64];
	snprintf(name, sizeof(name), "Sandbox Shop %d", s->index);
	json_t *j = json_pack(
		"{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:b,s:s}", "id",
		(json_int_t)s->shop_id, "name", name, "email", "owner@example.com", "domain",
		s->name, "myshopify_domain", s->name, "country_code", c->code, "currency",
		c->currency, "city", ci->city, "zip", ci->zip, "province", sb_jstr(ci->province),
		"plan_name", "basic", "money_format",
		c->exponent ? "{{amount}}" : "{{amount_no_decimals}}", "taxes_included",
		c->taxes_included, "timezone", "(GMT) sandbox");
	sb_reply_json(r, 200, json_pack("{s:o}", "shop", j));
}

/* ---- dispatch ----------------------------------------------------------- */

static int version_ok(const char *v)
{
	if (strcmp(v, "unstable") == 0)
		return 1;
	return strlen(v) == 7 && v[4] == '-' && v[0] >= '0' && v[0] <= '9' && v[5] >= '0' &&
	       v[5] <= '1';
}

int sb_shopify_handle(struct sb_req *r)
{
	struct sb_server *srv = r->srv;
	struct sb_store *s = r->store;
	char version[16];
	const char *p = r->path;
	if (strncmp(p, "/admin/api/", 11) != 0)
		return 0;
	p += 11;
	const char *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= sizeof(version)) {
		error_str(r, 404, "Not Found");
		return 1;
	}
	snprintf(version, sizeof(version), "%.*s", (int)(slash - p), p);
	const char *rest = slash + 1;
	if (!version_ok(version)) {
		error_str(r, 404, "Not Found");
		return 1;
	}
	char rid[40];
	sb_request_id(srv, rid, sizeof(rid));
	sb_set_header(r, "X-Request-Id", rid);
	sb_set_header(r, "X-Shopify-API-Version", version);
	/* authentication */
	const char *tok = sb_header(r, "X-Shopify-Access-Token");
	if (!tok || !sb_ct_streq(tok, s->token) || r->fault == SB_FAULT_EXPIRED) {
		error_str(r, 401, "[API] Invalid API key or access token (unrecognized login or wrong password)");
		return 1;
	}
	/* leaky bucket */
	double used, retry;
	char lim[48];
	if (!sb_leaky_take(&s->bucket, srv->cfg.shopify_bucket, srv->cfg.shopify_leak,
			   sb_limits_now_us(srv), &used, &retry)) {
		char ra[32];
		s->throttled++;
		srv->stats.throttled[SB_SHOPIFY]++;
		snprintf(lim, sizeof(lim), "%d/%d", (int)srv->cfg.shopify_bucket,
			 (int)srv->cfg.shopify_bucket);
		sb_set_header(r, "X-Shopify-Shop-Api-Call-Limit", lim);
		snprintf(ra, sizeof(ra), "%.3f", retry < 0.001 ? 0.001 : retry);
		sb_set_header(r, "Retry-After", ra);
		error_str(r, 429, "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.");
		return 1;
	}
	int shown = (int)(used + 0.999999);
	snprintf(lim, sizeof(lim), "%d/%d", shown < 1 ? 1 : shown, (int)srv->cfg.shopify_bucket);
	sb_set_header(r, "X-Shopify-Shop-Api-Call-Limit", lim);

	int get = r->method == EVHTTP_REQ_GET, post = r->method == EVHTTP_REQ_POST;
	long long a = 0, b = 0, c = 0;
	int nch = 0;
	if (strcmp(rest, "orders.json") == 0 && get) {
		orders_list(r, version, 0);
		return 1;
	}
	if (strcmp(rest, "orders/count.json") == 0 && get) {
		orders_list(r, version, 1);
		return 1;
	}
	if (strcmp(rest, "shop.json") == 0 && get) {
		shop_json(r);
		return 1;
	}
	if (strncmp(rest, "webhooks", 8) == 0) {
		webhooks(r, version, rest);
		return 1;
	}
	if (strcmp(rest, "fulfillments.json") == 0 && post) {
		create_fulfillment(r);
		return 1;
	}
	if (sscanf(rest, "fulfillments/%lld/update_tracking.json%n", &a, &nch) == 1 &&
	    rest[nch] == '\0' && post) {
		update_tracking(r, a);
		return 1;
	}
	nch = 0;
	if (sscanf(rest, "fulfillment_orders/%lld.json%n", &a, &nch) == 1 && rest[nch] == '\0' &&
	    get) {
		struct sb_order *o = find_fo(s, a);
		if (!o)
			error_str(r, 404, "Not Found");
		else
			sb_reply_json(r, 200,
				      json_pack("{s:o}", "fulfillment_order", fulfillment_order_json(o)));
		return 1;
	}
	nch = 0;
	if (sscanf(rest, "orders/%lld%n", &a, &nch) != 1) {
		error_str(r, 404, "Not Found");
		return 1;
	}
	struct sb_order *o = sb_store_order(s, a);
	const char *sub = rest + nch;
	if (!o) {
		error_str(r, 404, "Not Found");
		return 1;
	}
	if (strcmp(sub, ".json") == 0 && get) {
		reply_order(r, o, sb_q(r, "fields"));
		return 1;
	}
	if (strcmp(sub, "/fulfillment_orders.json") == 0 && get) {
		json_t *arr = json_array();
		json_array_append_new(arr, fulfillment_order_json(o));
		sb_reply_json(r, 200, json_pack("{s:o}", "fulfillment_orders", arr));
		return 1;
	}
	if (strcmp(sub, "/fulfillments.json") == 0 && get) {
		json_t *arr = json_array();
		for (int i = 0; i < o->nfuls; i++)
			json_array_append_new(arr, fulfillment_json(o->fuls[i], 0));
		sb_reply_json(r, 200, json_pack("{s:o}", "fulfillments", arr));
		return 1;
	}
	if (strcmp(sub, "/fulfillments/count.json") == 0 && get) {
		sb_reply_json(r, 200, json_pack("{s:i}", "count", o->nfuls));
		return 1;
	}
	nch = 0;
	if (sscanf(sub, "/fulfillments/%lld%n", &b, &nch) == 1) {
		struct sb_fulfillment *f = find_ful(o, b);
		const char *sub2 = sub + nch;
		if (!f) {
			error_str(r, 404, "Not Found");
			return 1;
		}
		if (strcmp(sub2, ".json") == 0 && get) {
			sb_reply_json(r, 200, json_pack("{s:o}", "fulfillment", fulfillment_json(f, 0)));
			return 1;
		}
		if (strcmp(sub2, "/events.json") == 0 && get) {
			json_t *arr = json_array();
			for (int i = 0; i < f->nevents; i++)
				json_array_append_new(arr, fevent_json(f, &f->events[i]));
			sb_reply_json(r, 200, json_pack("{s:o}", "fulfillment_events", arr));
			return 1;
		}
		if (strcmp(sub2, "/events.json") == 0 && post) {
			create_event(r, f);
			return 1;
		}
		nch = 0;
		if (sscanf(sub2, "/events/%lld.json%n", &c, &nch) == 1 && sub2[nch] == '\0' && get) {
			for (int i = 0; i < f->nevents; i++) {
				if (f->events[i].id == c) {
					sb_reply_json(r, 200, json_pack("{s:o}", "fulfillment_event",
									 fevent_json(f, &f->events[i])));
					return 1;
				}
			}
		}
	}
	error_str(r, 404, "Not Found");
	return 1;
}
