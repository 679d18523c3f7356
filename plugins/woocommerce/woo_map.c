/*
 * woo_map.c - one WooCommerce REST v3 order to one canonical order record.
 *
 * Every field the canonical schema has a place for is filled from the order
 * as /wp-json/wc/v3/orders and the order.* webhooks send it; fields
 * WooCommerce does not know are written as null so that every record has the
 * same shape. Decisions (also in plugins/woocommerce/README.md):
 *
 *  - status: pending, processing, on-hold -> open; completed -> closed;
 *    cancelled, refunded, failed, trash -> cancelled; any other (custom)
 *    status -> open. source_status keeps WooCommerce's word.
 *  - financial_status: refunded -> refunded; refunds present ->
 *    partially_refunded; date_paid_gmt set, or processing/completed -> paid;
 *    cancelled/failed/trash without payment -> voided; else pending.
 *  - fulfillment_status: completed -> fulfilled; pending, processing,
 *    on-hold -> unfulfilled; else null (WooCommerce has no fulfilments).
 *  - Times are the *_gmt fields, which carry no offset: read as UTC.
 *  - Totals are decimal strings, line prices JSON numbers: both go through
 *    hub_money_from_json() in the order's currency. subtotal is the sum of
 *    the line items' totals (after line discounts, before tax and shipping).
 *  - Addresses: "state" is a code for countries WooCommerce knows states of
 *    ("CA") and free text otherwise: upper-case codes go to province_code,
 *    other text to province (hub_address_new). An address whose fields are
 *    all empty is null.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "woo.h"

/* Marks "not present" for optional times. */
#define NO_TIME INT64_MIN

/* Sets rec[key] to the amount obj[key] in minor units, or null when the
 * field is missing, null or "". Returns 0 or -1 with err set. */
static int set_money_opt(json_t *rec, const char *key, const json_t *obj, const char *src,
			 const char *currency, const char *ctx, struct hub_error *err)
{
	const json_t *v = json_object_get(obj, src);
	char path[256];
	int64_t minor;

	if (v == NULL || json_is_null(v) ||
	    (json_is_string(v) && json_string_length(v) == 0))
		return json_object_set_new(rec, key, json_null());
	snprintf(path, sizeof(path), "%s.%s", ctx, src);
	if (hub_money_from_json(v, currency, &minor, path, err) < 0)
		return -1;
	return json_object_set_new(rec, key, json_integer(minor));
}

/* Named entities WordPress writes into titles (wptexturize and esc_html). */
static const struct {
	const char *name;
	const char *utf8;
} entities[] = {
	{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"},
	{"nbsp", "\xc2\xa0"}, {"ndash", "\xe2\x80\x93"}, {"mdash", "\xe2\x80\x94"},
	{"times", "\xc3\x97"}, {"hellip", "\xe2\x80\xa6"}, {"lsquo", "\xe2\x80\x98"},
	{"rsquo", "\xe2\x80\x99"}, {"ldquo", "\xe2\x80\x9c"}, {"rdquo", "\xe2\x80\x9d"},
	{"euro", "\xe2\x82\xac"}, {"pound", "\xc2\xa3"}, {"reg", "\xc2\xae"},
	{"copy", "\xc2\xa9"}, {"trade", "\xe2\x84\xa2"},
};

/* Writes code point cp as UTF-8 into out (4 bytes room); returns length,
 * 0 for values that are not characters. */
static size_t utf8_put(unsigned long cp, char *out)
{
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes the HTML entities WooCommerce leaves in product and shipping
 * titles ("Ship Your Idea &ndash; Color: Black") into UTF-8; unknown
 * entities stay as written. Returns a malloc'd string or NULL (ENOMEM). A
 * decoded string is never longer than its source. */
static char *html_decode(const char *in)
{
	size_t n = strlen(in), o = 0;
	char *out = malloc(n + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		const char *semi;
		size_t len;

		if (in[i] != '&' || (semi = memchr(in + i, ';', n - i > 12 ? 12 : n - i)) == NULL) {
			out[o++] = in[i++];
			continue;
		}
		len = (size_t)(semi - (in + i)) - 1; /* between '&' and ';' */
		if (len >= 2 && in[i + 1] == '#') {
			char buf[4], *end;
			int hex = in[i + 2] == 'x' || in[i + 2] == 'X';
			unsigned long cp = strtoul(in + i + 2 + hex, &end, hex ? 16 : 10);
			size_t k = end == semi && end != in + i + 2 + hex ? utf8_put(cp, buf) : 0;

			if (k > 0 && k <= len + 2) {
				memcpy(out + o, buf, k);
				o += k;
				i += len + 2;
				continue;
			}
		} else {
			size_t e;

			for (e = 0; e < sizeof(entities) / sizeof(entities[0]); e++)
				if (strlen(entities[e].name) == len &&
				    memcmp(entities[e].name, in + i + 1, len) == 0)
					break;
			if (e < sizeof(entities) / sizeof(entities[0])) {
				size_t k = strlen(entities[e].utf8);

				memcpy(out + o, entities[e].utf8, k);
				o += k;
				i += len + 2;
				continue;
			}
		}
		out[o++] = in[i++];
	}
	out[o] = '\0';
	return out;
}

/* Sets obj[key] to the entity-decoded text, or null for NULL. */
static int set_text(json_t *obj, const char *key, const char *text)
{
	char *plain;
	int rc;

	if (text == NULL)
		return json_object_set_new(obj, key, json_null());
	plain = html_decode(text);
	if (plain == NULL)
		return -1;
	rc = hub_json_set_str(obj, key, plain);
	free(plain);
	return rc;
}

/* Reads obj[key] as an amount; a missing or empty field is an error. */
static int money(const json_t *obj, const char *key, const char *currency, int64_t *minor,
		 const char *ctx, struct hub_error *err)
{
	char path[256];

	snprintf(path, sizeof(path), "%s.%s", ctx, key);
	return hub_money_from_json(json_object_get(obj, key), currency, minor, path, err);
}

/* Maps a billing or shipping object to a canonical address, or json null
 * when absent or entirely empty. Returns NULL with err on a type error. */
static json_t *map_address(const json_t *order, const char *key, const char *octx,
			   struct hub_error *err)
{
	struct hub_address a = {0};
	json_t *src = NULL, *addr;
	char ctx[128], name[520];

	if (hub_json_object_opt(order, key, &src, octx, err) < 0)
		return NULL;
	if (src == NULL)
		return json_null();
	snprintf(ctx, sizeof(ctx), "%s.%s", octx, key);
	if (hub_json_str_or_null(src, "first_name", &a.first_name, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "last_name", &a.last_name, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "company", &a.company, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "address_1", &a.address1, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "address_2", &a.address2, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "city", &a.city, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "state", &a.region, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "postcode", &a.zip, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "country", &a.country, ctx, err) < 0 ||
	    hub_json_str_or_null(src, "phone", &a.phone, ctx, err) < 0)
		return NULL;
	if (!a.first_name && !a.last_name && !a.company && !a.address1 && !a.address2 &&
	    !a.city && !a.region && !a.zip && !a.country && !a.phone)
		return json_null();

	snprintf(name, sizeof(name), "%s%s%s", a.first_name ? a.first_name : "",
		 a.first_name && a.last_name ? " " : "", a.last_name ? a.last_name : "");
	a.name = name;
	addr = hub_address_new(&a);
	if (addr == NULL)
		hub_error_set(err, ctx, "%s: out of memory", ctx);
	return addr;
}

/* Sets rec[key] to the string of a positive integer id, or null for 0. */
static int set_id_opt(json_t *rec, const char *key, const json_t *obj, const char *src,
		      const char *ctx, struct hub_error *err)
{
	int64_t id = 0;
	char buf[32];

	if (hub_json_int_opt(obj, src, &id, ctx, err) < 0)
		return -1;
	if (id <= 0)
		return json_object_set_new(rec, key, json_null());
	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	return json_object_set_new(rec, key, json_string(buf));
}

/* Maps line_items[i]. Adds its total to *subtotal. Returns a new reference
 * or NULL with err set. */
static json_t *map_line(const json_t *li, const char *currency, const char *ctx,
			int64_t *subtotal, struct hub_error *err)
{
	char id[64];
	const char *sku, *name;
	int64_t qty, unit, sub, total;
	json_t *line = NULL;

	if (hub_json_id(li, "id", id, sizeof(id), ctx, err) < 0 ||
	    hub_json_str_or_null(li, "sku", &sku, ctx, err) < 0 ||
	    hub_json_str_or_null(li, "name", &name, ctx, err) < 0 ||
	    hub_json_int(li, "quantity", &qty, ctx, err) < 0)
		return NULL;
	if (qty < 0) {
		hub_error_set(err, ctx, "%s.quantity: %lld is negative", ctx, (long long)qty);
		return NULL;
	}
	if (money(li, "price", currency, &unit, ctx, err) < 0 ||
	    money(li, "subtotal", currency, &sub, ctx, err) < 0 ||
	    money(li, "total", currency, &total, ctx, err) < 0)
		return NULL;
	*subtotal += total;

	line = json_object();
	if (line == NULL ||
	    json_object_set_new(line, "external_id", json_string(id)) < 0 ||
	    hub_json_set_str(line, "sku", sku) < 0 ||
	    set_text(line, "title", name) < 0 ||
	    json_object_set_new(line, "variant_title", json_null()) < 0 ||
	    set_id_opt(line, "product_id", li, "product_id", ctx, err) < 0 ||
	    set_id_opt(line, "variant_id", li, "variation_id", ctx, err) < 0 ||
	    json_object_set_new(line, "quantity", json_integer(qty)) < 0 ||
	    json_object_set_new(line, "unit_price", json_integer(unit)) < 0 ||
	    /* subtotal is before, total after the line's coupon discounts. */
	    json_object_set_new(line, "total_discount", json_integer(sub - total)) < 0 ||
	    set_money_opt(line, "total_tax", li, "total_tax", currency, ctx, err) < 0 ||
	    json_object_set_new(line, "fulfillable_quantity", json_null()) < 0 ||
	    json_object_set_new(line, "requires_shipping", json_null()) < 0) {
		if (err != NULL && err->message[0] == '\0')
			hub_error_set(err, ctx, "%s: out of memory", ctx);
		json_decref(line);
		return NULL;
	}
	return line;
}

/* Maps shipping_lines[i] to {title, code, price}. */
static json_t *map_shipping_line(const json_t *sl, const char *currency, const char *ctx,
				 struct hub_error *err)
{
	const char *title, *code;
	char *plain;
	int64_t price;
	json_t *out;

	if (hub_json_str_or_null(sl, "method_title", &title, ctx, err) < 0 ||
	    hub_json_str_or_null(sl, "method_id", &code, ctx, err) < 0 ||
	    money(sl, "total", currency, &price, ctx, err) < 0)
		return NULL;
	/* title is a required string: an untitled method stays "". */
	plain = html_decode(title != NULL ? title : "");
	out = json_object();
	if (plain == NULL || out == NULL ||
	    json_object_set_new(out, "title", json_string(plain)) < 0 ||
	    hub_json_set_str(out, "code", code) < 0 ||
	    json_object_set_new(out, "price", json_integer(price)) < 0) {
		free(plain);
		json_decref(out);
		hub_error_set(err, ctx, "%s: out of memory (or text that is not UTF-8)", ctx);
		return NULL;
	}
	free(plain);
	return out;
}

/* Canonical status of a WooCommerce status word. */
static const char *map_status(const char *s)
{
	if (strcmp(s, "completed") == 0)
		return "closed";
	if (strcmp(s, "cancelled") == 0 || strcmp(s, "refunded") == 0 ||
	    strcmp(s, "failed") == 0 || strcmp(s, "trash") == 0)
		return "cancelled";
	return "open";
}

/* Canonical financial status; see the file comment. */
static const char *map_financial(const char *s, int paid, int has_refunds)
{
	if (strcmp(s, "refunded") == 0)
		return "refunded";
	if (has_refunds)
		return "partially_refunded";
	if (paid || strcmp(s, "processing") == 0 || strcmp(s, "completed") == 0)
		return "paid";
	if (strcmp(s, "cancelled") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "trash") == 0)
		return "voided";
	return "pending";
}

/* Canonical fulfillment status, or NULL. */
static const char *map_fulfillment(const char *s)
{
	if (strcmp(s, "completed") == 0)
		return "fulfilled";
	if (strcmp(s, "pending") == 0 || strcmp(s, "processing") == 0 ||
	    strcmp(s, "on-hold") == 0)
		return "unfulfilled";
	return NULL;
}

/* Sets rec[key] to the canonical time of ms, or null for NO_TIME. */
static int set_time_opt(json_t *rec, const char *key, int64_t ms)
{
	if (ms == NO_TIME)
		return json_object_set_new(rec, key, json_null());
	return hub_json_set_time(rec, key, ms);
}

/* Builds the customer object from customer_id and the billing contact. */
static json_t *map_customer(const json_t *order, const char *ctx, struct hub_error *err)
{
	const char *email = NULL, *first = NULL, *last = NULL, *phone = NULL;
	json_t *billing = NULL, *c;
	char bctx[128];

	if (hub_json_object_opt(order, "billing", &billing, ctx, err) < 0)
		return NULL;
	snprintf(bctx, sizeof(bctx), "%s.billing", ctx);
	if (billing != NULL &&
	    (hub_json_str_or_null(billing, "email", &email, bctx, err) < 0 ||
	     hub_json_str_or_null(billing, "first_name", &first, bctx, err) < 0 ||
	     hub_json_str_or_null(billing, "last_name", &last, bctx, err) < 0 ||
	     hub_json_str_or_null(billing, "phone", &phone, bctx, err) < 0))
		return NULL;
	c = json_object();
	if (c == NULL ||
	    set_id_opt(c, "external_id", order, "customer_id", ctx, err) < 0 ||
	    hub_json_set_str(c, "email", email) < 0 ||
	    hub_json_set_str(c, "first_name", first) < 0 ||
	    hub_json_set_str(c, "last_name", last) < 0 ||
	    hub_json_set_str(c, "phone", phone) < 0) {
		if (err != NULL && err->message[0] == '\0')
			hub_error_set(err, ctx, "%s: out of memory", ctx);
		json_decref(c);
		return NULL;
	}
	return c;
}

json_t *woo_map_order(const json_t *order, const char *ctx, int64_t *modified_ms,
		      struct hub_error *err)
{
	char id[64], path[160];
	const char *number = NULL, *status, *currency, *note = NULL;
	int64_t created = NO_TIME, modified = NO_TIME, paid = NO_TIME, completed = NO_TIME;
	int64_t subtotal = 0;
	json_t *rec = NULL, *items = NULL, *ships = NULL, *refunds = NULL, *lines = NULL;
	json_t *slines = NULL, *v;
	size_t i;

	if (err != NULL)
		err->message[0] = '\0';
	if (!json_is_object(order)) {
		hub_error_set(err, ctx, "%s: expected an order object", ctx);
		return NULL;
	}
	if (hub_json_id(order, "id", id, sizeof(id), ctx, err) < 0 ||
	    hub_json_str_or_null(order, "number", &number, ctx, err) < 0 ||
	    hub_json_str(order, "status", &status, ctx, err) < 0 ||
	    hub_json_str(order, "currency", &currency, ctx, err) < 0 ||
	    hub_json_str_or_null(order, "customer_note", &note, ctx, err) < 0 ||
	    hub_json_time_opt(order, "date_created_gmt", 1, &created, ctx, err) < 0 ||
	    hub_json_time_opt(order, "date_modified_gmt", 1, &modified, ctx, err) < 0 ||
	    hub_json_time_opt(order, "date_paid_gmt", 1, &paid, ctx, err) < 0 ||
	    hub_json_time_opt(order, "date_completed_gmt", 1, &completed, ctx, err) < 0 ||
	    hub_json_array_opt(order, "line_items", &items, ctx, err) < 0 ||
	    hub_json_array_opt(order, "shipping_lines", &ships, ctx, err) < 0 ||
	    hub_json_array_opt(order, "refunds", &refunds, ctx, err) < 0)
		return NULL;
	if (hub_currency_exponent(currency) < 0) {
		snprintf(path, sizeof(path), "%s.currency", ctx);
		hub_error_set(err, path, "%s: \"%.20s\" is not an ISO 4217 code", path, currency);
		return NULL;
	}
	if (created == NO_TIME) {
		snprintf(path, sizeof(path), "%s.date_created_gmt", ctx);
		hub_error_set(err, path, "%s: required field is missing", path);
		return NULL;
	}
	if (modified == NO_TIME)
		modified = created;

	lines = json_array();
	slines = json_array();
	if (lines == NULL || slines == NULL)
		goto oom;
	json_array_foreach(items, i, v) {
		json_t *line;

		snprintf(path, sizeof(path), "%s.line_items[%zu]", ctx, i);
		line = map_line(v, currency, path, &subtotal, err);
		if (line == NULL || json_array_append_new(lines, line) < 0)
			goto fail;
	}
	json_array_foreach(ships, i, v) {
		json_t *sl;

		snprintf(path, sizeof(path), "%s.shipping_lines[%zu]", ctx, i);
		sl = map_shipping_line(v, currency, path, err);
		if (sl == NULL || json_array_append_new(slines, sl) < 0)
			goto fail;
	}

	rec = json_object();
	if (rec == NULL)
		goto oom;
	if (json_object_set_new(rec, "external_id", json_string(id)) < 0 ||
	    hub_json_set_str(rec, "number", number) < 0 ||
	    json_object_set_new(rec, "name", json_null()) < 0 ||
	    json_object_set_new(rec, "status", json_string(map_status(status))) < 0 ||
	    json_object_set_new(rec, "financial_status",
				json_string(map_financial(status, paid != NO_TIME,
							  json_array_size(refunds) > 0))) < 0 ||
	    hub_json_set_str(rec, "fulfillment_status", map_fulfillment(status)) < 0 ||
	    hub_json_set_str(rec, "source_status", status) < 0 ||
	    json_object_set_new(rec, "cancelled_at", json_null()) < 0 ||
	    json_object_set_new(rec, "cancel_reason", json_null()) < 0 ||
	    set_time_opt(rec, "closed_at", completed) < 0 ||
	    set_time_opt(rec, "paid_at", paid) < 0 ||
	    json_object_set_new(rec, "currency", json_string(currency)) < 0 ||
	    json_object_set_new(rec, "subtotal", json_integer(subtotal)) < 0)
		goto oom;
	if (set_money_opt(rec, "total_tax", order, "total_tax", currency, ctx, err) < 0 ||
	    set_money_opt(rec, "total_shipping", order, "shipping_total", currency, ctx, err) < 0 ||
	    set_money_opt(rec, "total_discounts", order, "discount_total", currency, ctx, err) < 0)
		goto fail;
	{
		int64_t total;

		if (money(order, "total", currency, &total, ctx, err) < 0)
			goto fail;
		if (json_object_set_new(rec, "total", json_integer(total)) < 0)
			goto oom;
	}
	{
		json_t *customer, *billing, *shipping;
		const char *email = NULL, *phone = NULL;

		customer = map_customer(order, ctx, err);
		if (customer == NULL)
			goto fail;
		email = json_string_value(json_object_get(customer, "email"));
		phone = json_string_value(json_object_get(customer, "phone"));
		if (hub_json_set_str(rec, "email", email) < 0 ||
		    hub_json_set_str(rec, "phone", phone) < 0 ||
		    json_object_set_new(rec, "customer", customer) < 0)
			goto oom;
		billing = map_address(order, "billing", ctx, err);
		if (billing == NULL || json_object_set_new(rec, "billing_address", billing) < 0)
			goto fail;
		shipping = map_address(order, "shipping", ctx, err);
		if (shipping == NULL || json_object_set_new(rec, "shipping_address", shipping) < 0)
			goto fail;
	}
	if (json_object_set(rec, "shipping_lines", slines) < 0 ||
	    json_object_set_new(rec, "tags", json_array()) < 0 ||
	    hub_json_set_str(rec, "note", note) < 0 ||
	    json_object_set(rec, "lines", lines) < 0 ||
	    hub_json_set_time(rec, "created_at", created) < 0 ||
	    hub_json_set_time(rec, "updated_at", modified) < 0)
		goto oom;

	json_decref(lines);
	json_decref(slines);
	if (modified_ms != NULL)
		*modified_ms = modified;
	return rec;
oom:
	hub_error_set(err, ctx, "%s: out of memory (or text that is not UTF-8)", ctx);
fail:
	json_decref(rec);
	json_decref(lines);
	json_decref(slines);
	return NULL;
}
