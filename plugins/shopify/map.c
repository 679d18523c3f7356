/*
 * map.c - Shopify orders and fulfillments to canonical records.
 *
 * Pure functions from a Shopify JSON object (REST resource or webhook
 * payload, which share one shape) to a record following sdk/schema/order.json
 * or shipment.json. Every field the canonical schema has a place for is
 * filled from Shopify's documented fields; money goes through
 * hub_money_from_json (decimal strings to minor units of the shop currency,
 * never floats) and times through hub_time_parse (offsets to UTC ms).
 *
 * Decisions, so that readers need not reverse-engineer them:
 *  - Amounts are the order's original amounts in the shop currency
 *    (`subtotal_price`, `total_tax`, `total_discounts`, `total_price`), not
 *    the `current_*` amounts after edits and refunds: refunds show through
 *    financial_status. Shipping is `total_shipping_price_set.shop_money`, or
 *    the sum of the shipping lines' prices when that set is absent.
 *  - paid_at is `processed_at` when financial_status says the order was paid
 *    (paid, partially_refunded, refunded). The REST order carries no capture
 *    time (that lives in transactions); processed_at is when Shopify
 *    processed the order and the payment with it for automatic capture.
 *  - A line's total_discount is the sum of its `discount_allocations` (what
 *    Shopify recommends); `total_discount` is used only when it is larger,
 *    which happens for discounts set explicitly through scripts or the API.
 *    total_tax is the sum of the line's `tax_lines`.
 *  - source_status keeps Shopify's financial_status word verbatim (orders
 *    have no single status word), so values the canonical enum lacks (e.g.
 *    "expired") stay visible while financial_status says "unknown".
 *  - Shipment status: a cancelled fulfillment is "cancelled", a failed one
 *    (status failure or error: it never left) is "exception", otherwise the
 *    fulfillment's shipment_status decides (null: "pre_transit").
 *    source_status keeps the fulfillment's own status word. shipped_at is
 *    the fulfillment's created_at once it succeeded. Delivery dates are left
 *    out: Shopify does not give them on the fulfillment; carriers fill them.
 *  - Text longer than the schema allows is cut at a character boundary;
 *    identifiers and contact data that do not fit become null, and
 *    tracking numbers that do not fit are dropped, since a cut one is wrong.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <hub/sdk.h>

#include "shopify.h"

#define NO_TIME INT64_MIN

/* Byte length of the longest prefix of s holding at most max code points
 * (UTF-8); *cut is set when s is longer. */
static size_t utf8_prefix(const char *s, size_t max, int *cut)
{
	size_t i = 0, n = 0;

	*cut = 0;
	while (s[i] != '\0') {
		if (n == max) {
			*cut = 1;
			return i;
		}
		i++;
		while ((s[i] & 0xC0) == 0x80)
			i++;
		n++;
	}
	return i;
}

/* obj[key] = str cut to max code points; NULL or "" gives null. */
static int put_text(json_t *obj, const char *key, const char *str, size_t max)
{
	size_t len;
	int cut;

	if (str == NULL || str[0] == '\0')
		return json_object_set_new(obj, key, json_null());
	len = utf8_prefix(str, max, &cut);
	return json_object_set_new(obj, key, json_stringn(str, len));
}

/* obj[key] = str, or null when it is absent, empty or longer than max. */
static int put_token(json_t *obj, const char *key, const char *str, size_t max)
{
	int cut;

	if (str == NULL || str[0] == '\0')
		return json_object_set_new(obj, key, json_null());
	(void)utf8_prefix(str, max, &cut);
	if (cut)
		return json_object_set_new(obj, key, json_null());
	return json_object_set_new(obj, key, json_string(str));
}

/* obj[key] = canonical time, or null for NO_TIME. */
static int put_time(json_t *obj, const char *key, int64_t ms)
{
	if (ms == NO_TIME)
		return json_object_set_new(obj, key, json_null());
	return hub_json_set_time(obj, key, ms);
}

/* obj[key] = amount, or null when absent. */
static int put_money(json_t *obj, const char *key, int present, int64_t minor)
{
	if (!present)
		return json_object_set_new(obj, key, json_null());
	return json_object_set_new(obj, key, json_integer(minor));
}

/* A time field that may be absent: *ms = NO_TIME then. */
static int get_time(const json_t *obj, const char *key, int64_t *ms, const char *ctx,
		    struct hub_error *err)
{
	*ms = NO_TIME;
	return hub_json_time_opt(obj, key, 0, ms, ctx, err);
}

/* A required time field. */
static int need_time(const json_t *obj, const char *key, int64_t *ms, const char *ctx,
		     struct hub_error *err)
{
	if (get_time(obj, key, ms, ctx, err) < 0)
		return -1;
	if (*ms == NO_TIME) {
		char field[120];

		snprintf(field, sizeof(field), "%s.%s", ctx, key);
		return hub_error_set(err, field, "%s is missing; Shopify always sends it", field);
	}
	return 0;
}

/* "ctx.key" into buf (cut to fit): a field path, made for every money
 * field read, so without snprintf. */
static void join_path(char *buf, size_t size, const char *ctx, const char *key)
{
	size_t a = strlen(ctx), b = strlen(key);

	if (a > size - 1)
		a = size - 1;
	memcpy(buf, ctx, a);
	if (a + 1 < size) {
		buf[a++] = '.';
		if (b > size - 1 - a)
			b = size - 1 - a;
		memcpy(buf + a, key, b);
		a += b;
	}
	buf[a] = '\0';
}

/* A money field that may be absent or null (*present = 0 then). */
static int get_money(const json_t *obj, const char *key, const char *currency, int64_t *minor,
		     int *present, const char *ctx, struct hub_error *err)
{
	const json_t *v = json_object_get(obj, key);
	char field[160];

	*present = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	join_path(field, sizeof(field), ctx, key);
	if (hub_money_from_json(v, currency, minor, field, err) < 0)
		return -1;
	*present = 1;
	return 0;
}

/* The optional id obj[key] (integer or string) into buf, or "" when absent. */
static int get_id_opt(const json_t *obj, const char *key, char *buf, size_t size,
		      const char *ctx, struct hub_error *err)
{
	const json_t *v = json_object_get(obj, key);

	buf[0] = '\0';
	if (v == NULL || json_is_null(v))
		return 0;
	return hub_json_id(obj, key, buf, size, ctx, err);
}

/* Sums obj[key][*][amount_key] as money; *present = 0 when the array is absent. */
static int sum_money(const json_t *obj, const char *key, const char *amount_key,
		     const char *currency, int64_t *sum, int *present, const char *ctx,
		     struct hub_error *err)
{
	json_t *arr = NULL, *item;
	size_t i;
	char sub[160];

	*sum = 0;
	*present = 0;
	if (hub_json_array_opt(obj, key, &arr, ctx, err) < 0)
		return -1;
	if (arr == NULL)
		return 0;
	*present = 1;
	json_array_foreach(arr, i, item) {
		int64_t v;
		int have;

		snprintf(sub, sizeof(sub), "%s.%s[%zu]", ctx, key, i);
		if (!json_is_object(item))
			return hub_error_set(err, sub, "%s is not an object", sub);
		if (get_money(item, amount_key, currency, &v, &have, sub, err) < 0)
			return -1;
		if (have)
			*sum += v;
	}
	return 0;
}

/* Copies `keys` (NULL-terminated) of a Shopify object as text fields. */
static int copy_texts(json_t *dst, const json_t *src, const char *const *keys, size_t max,
		      const char *ctx, struct hub_error *err)
{
	for (; *keys != NULL; keys++) {
		const char *v = NULL;

		if (hub_json_str_opt(src, *keys, &v, ctx, err) < 0)
			return -1;
		if (put_text(dst, *keys, v, max) < 0)
			return hub_error_set(err, *keys, "out of memory");
	}
	return 0;
}

static const char *const address_texts[] = {
	"name", "first_name", "last_name", "company", "city", "province", "country", NULL,
};

/* A Shopify address (or null) into its canonical form. */
static int map_address(const json_t *o, const char *key, json_t *rec, struct hub_error *err)
{
	json_t *a = NULL, *r;
	const char *v = NULL;
	char ctx[64], cc[3];

	if (hub_json_object_opt(o, key, &a, "order", err) < 0)
		return -1;
	if (a == NULL || !json_is_object(a))
		return json_object_set_new(rec, key, json_null());
	snprintf(ctx, sizeof(ctx), "order.%s", key);
	r = json_object();
	if (r == NULL || json_object_set_new(rec, key, r) < 0)
		return hub_error_set(err, ctx, "out of memory");
	if (copy_texts(r, a, address_texts, 256, ctx, err) < 0)
		return -1;
	if (hub_json_str_opt(a, "address1", &v, ctx, err) < 0 || put_text(r, "address1", v, 512) < 0)
		return -1;
	v = NULL;
	if (hub_json_str_opt(a, "address2", &v, ctx, err) < 0 || put_text(r, "address2", v, 512) < 0)
		return -1;
	v = NULL;
	if (hub_json_str_opt(a, "province_code", &v, ctx, err) < 0 ||
	    put_token(r, "province_code", v, 16) < 0)
		return -1;
	v = NULL;
	if (hub_json_str_opt(a, "zip", &v, ctx, err) < 0 || put_text(r, "zip", v, 32) < 0)
		return -1;
	v = NULL;
	if (hub_json_str_opt(a, "phone", &v, ctx, err) < 0 || put_token(r, "phone", v, 64) < 0)
		return -1;
	/* ISO 3166-1 alpha-2, upper case; anything else is not a country code. */
	v = NULL;
	if (hub_json_str_opt(a, "country_code", &v, ctx, err) < 0)
		return -1;
	if (v != NULL && strlen(v) == 2 && isalpha((unsigned char)v[0]) &&
	    isalpha((unsigned char)v[1])) {
		cc[0] = (char)toupper((unsigned char)v[0]);
		cc[1] = (char)toupper((unsigned char)v[1]);
		cc[2] = '\0';
		return json_object_set_new(r, "country_code", json_string(cc));
	}
	return json_object_set_new(r, "country_code", json_null());
}

/* The order's customer (or null). */
static int map_customer(const json_t *o, json_t *rec, struct hub_error *err)
{
	json_t *c = NULL, *r;
	const char *v = NULL;
	char id[64];

	if (hub_json_object_opt(o, "customer", &c, "order", err) < 0)
		return -1;
	if (c == NULL || !json_is_object(c))
		return json_object_set_new(rec, "customer", json_null());
	r = json_object();
	if (r == NULL || json_object_set_new(rec, "customer", r) < 0)
		return hub_error_set(err, "order.customer", "out of memory");
	if (get_id_opt(c, "id", id, sizeof(id), "order.customer", err) < 0)
		return -1;
	put_token(r, "external_id", id, 128);
	if (hub_json_str_opt(c, "email", &v, "order.customer", err) < 0)
		return -1;
	put_token(r, "email", v, 320);
	v = NULL;
	if (hub_json_str_opt(c, "first_name", &v, "order.customer", err) < 0)
		return -1;
	put_text(r, "first_name", v, 256);
	v = NULL;
	if (hub_json_str_opt(c, "last_name", &v, "order.customer", err) < 0)
		return -1;
	put_text(r, "last_name", v, 256);
	v = NULL;
	if (hub_json_str_opt(c, "phone", &v, "order.customer", err) < 0)
		return -1;
	put_token(r, "phone", v, 64);
	return 0;
}

/* Shipping lines: title, code, price. A line without a price is left out. */
static int map_shipping_lines(const json_t *o, const char *currency, json_t *rec,
			      int64_t *sum, int *present, struct hub_error *err)
{
	json_t *arr = NULL, *item, *out;
	size_t i;
	char ctx[64];

	*sum = 0;
	*present = 0;
	out = json_array();
	if (out == NULL || json_object_set_new(rec, "shipping_lines", out) < 0)
		return hub_error_set(err, "order.shipping_lines", "out of memory");
	if (hub_json_array_opt(o, "shipping_lines", &arr, "order", err) < 0)
		return -1;
	if (arr == NULL)
		return 0;
	*present = 1;
	json_array_foreach(arr, i, item) {
		const char *title = NULL, *code = NULL;
		int64_t price;
		int have;
		json_t *r;

		snprintf(ctx, sizeof(ctx), "order.shipping_lines[%zu]", i);
		if (!json_is_object(item))
			return hub_error_set(err, ctx, "%s is not an object", ctx);
		if (hub_json_str_opt(item, "title", &title, ctx, err) < 0 ||
		    hub_json_str_opt(item, "code", &code, ctx, err) < 0 ||
		    get_money(item, "price", currency, &price, &have, ctx, err) < 0)
			return -1;
		if (!have)
			continue;
		*sum += price;
		r = json_object();
		if (r == NULL || json_array_append_new(out, r) < 0)
			return hub_error_set(err, ctx, "out of memory");
		/* title is required by the schema; the code is the next best name */
		if (title == NULL || title[0] == '\0')
			title = code != NULL ? code : "";
		put_text(r, "title", title, 256);
		if (json_is_null(json_object_get(r, "title")))
			json_object_set_new(r, "title", json_string(""));
		put_text(r, "code", code, 128);
		json_object_set_new(r, "price", json_integer(price));
	}
	return 0;
}

/* The comma-separated tags string as a list of trimmed, non-empty tags. */
static int map_tags(const json_t *o, json_t *rec, struct hub_error *err)
{
	const char *tags = NULL, *p;
	json_t *out = json_array();

	if (out == NULL || json_object_set_new(rec, "tags", out) < 0)
		return hub_error_set(err, "order.tags", "out of memory");
	if (hub_json_str_opt(o, "tags", &tags, "order", err) < 0)
		return -1;
	if (tags == NULL)
		return 0;
	p = tags;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		const char *next = end != NULL ? end + 1 : p + strlen(p);
		char tag[1100];
		size_t len;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		while (end > p && isspace((unsigned char)end[-1]))
			end--;
		len = (size_t)(end - p);
		if (len > 0) {
			json_t *t;
			int cut;

			if (len >= sizeof(tag))
				len = sizeof(tag) - 1;
			memcpy(tag, p, len);
			tag[len] = '\0';
			len = utf8_prefix(tag, 256, &cut);
			t = json_stringn(tag, len);
			if (t == NULL || json_array_append_new(out, t) < 0)
				return hub_error_set(err, "order.tags", "tag is not valid UTF-8");
		}
		p = next;
	}
	return 0;
}

/* One line item. */
static int map_line(const json_t *li, size_t idx, const char *currency, json_t *out,
		    struct hub_error *err)
{
	char ctx[64], id[64];
	const char *v = NULL;
	int64_t qty = 0, fq = -1, price, td, alloc, tax;
	int have_price, have_td, have_alloc, have_tax, ship = -1;
	json_t *r;

	snprintf(ctx, sizeof(ctx), "order.line_items[%zu]", idx);
	if (!json_is_object(li))
		return hub_error_set(err, ctx, "%s is not an object", ctx);
	r = json_object();
	if (r == NULL || json_array_append_new(out, r) < 0)
		return hub_error_set(err, ctx, "out of memory");
	if (hub_json_id(li, "id", id, sizeof(id), ctx, err) < 0)
		return -1;
	json_object_set_new(r, "external_id", json_string(id));
	if (hub_json_str_opt(li, "sku", &v, ctx, err) < 0)
		return -1;
	put_token(r, "sku", v, 128);
	v = NULL;
	if (hub_json_str_opt(li, "title", &v, ctx, err) < 0)
		return -1;
	put_text(r, "title", v, 512);
	v = NULL;
	if (hub_json_str_opt(li, "variant_title", &v, ctx, err) < 0)
		return -1;
	put_text(r, "variant_title", v, 512);
	if (get_id_opt(li, "product_id", id, sizeof(id), ctx, err) < 0)
		return -1;
	put_token(r, "product_id", id, 128);
	if (get_id_opt(li, "variant_id", id, sizeof(id), ctx, err) < 0)
		return -1;
	put_token(r, "variant_id", id, 128);
	if (hub_json_int(li, "quantity", &qty, ctx, err) < 0)
		return -1;
	json_object_set_new(r, "quantity", json_integer(qty < 0 ? 0 : qty));
	if (get_money(li, "price", currency, &price, &have_price, ctx, err) < 0)
		return -1;
	if (!have_price) {
		char field[120];

		snprintf(field, sizeof(field), "%s.price", ctx);
		return hub_error_set(err, field, "%s is missing", field);
	}
	json_object_set_new(r, "unit_price", json_integer(price));
	if (get_money(li, "total_discount", currency, &td, &have_td, ctx, err) < 0 ||
	    sum_money(li, "discount_allocations", "amount", currency, &alloc, &have_alloc, ctx,
		      err) < 0)
		return -1;
	if (have_alloc && (!have_td || alloc >= td))
		json_object_set_new(r, "total_discount", json_integer(alloc));
	else
		put_money(r, "total_discount", have_td, td);
	if (sum_money(li, "tax_lines", "price", currency, &tax, &have_tax, ctx, err) < 0)
		return -1;
	put_money(r, "total_tax", have_tax, tax);
	if (hub_json_int_opt(li, "fulfillable_quantity", &fq, ctx, err) < 0)
		return -1;
	if (json_object_get(li, "fulfillable_quantity") == NULL ||
	    json_is_null(json_object_get(li, "fulfillable_quantity")))
		json_object_set_new(r, "fulfillable_quantity", json_null());
	else
		json_object_set_new(r, "fulfillable_quantity", json_integer(fq < 0 ? 0 : fq));
	if (hub_json_bool_opt(li, "requires_shipping", &ship, ctx, err) < 0)
		return -1;
	json_object_set_new(r, "requires_shipping", ship < 0 ? json_null() : json_boolean(ship));
	return 0;
}

/* Shopify financial_status to the canonical vocabulary (same words). */
static const char *financial_status(const char *v)
{
	static const char *const known[] = {
		"pending", "authorized", "partially_paid", "paid", "partially_refunded",
		"refunded", "voided", NULL,
	};
	size_t i;

	if (v == NULL)
		return NULL;
	for (i = 0; known[i] != NULL; i++)
		if (strcmp(v, known[i]) == 0)
			return known[i];
	return "unknown";
}

/* Shopify fulfillment_status (null: nothing fulfilled yet) to canonical. */
static const char *fulfillment_status(const char *v)
{
	if (v == NULL || strcmp(v, "unfulfilled") == 0 || strcmp(v, "null") == 0)
		return "unfulfilled";
	if (strcmp(v, "partial") == 0 || strcmp(v, "fulfilled") == 0 ||
	    strcmp(v, "restocked") == 0)
		return v;
	return "unknown";
}

int shopify_map_order(const json_t *o, json_t **out, struct hub_error *err)
{
	json_t *rec = NULL, *lines = NULL, *arr = NULL, *item;
	const char *currency = NULL, *v = NULL, *fin = NULL, *ful = NULL;
	char id[64], num[32];
	int64_t n, t_cancel, t_close, t_proc, t_created, t_updated, amt, ship_sum;
	int have, have_ship_lines;
	json_t *set = NULL;
	size_t i;

	*out = NULL;
	if (!json_is_object(o))
		return hub_error_set(err, "order", "the order is not a JSON object");
	rec = json_object();
	if (rec == NULL)
		return hub_error_set(err, "order", "out of memory");

	if (hub_json_id(o, "id", id, sizeof(id), "order", err) < 0)
		goto fail;
	json_object_set_new(rec, "external_id", json_string(id));

	n = -1;
	if (hub_json_int_opt(o, "order_number", &n, "order", err) < 0)
		goto fail;
	if (n >= 0) {
		snprintf(num, sizeof(num), "%lld", (long long)n);
		json_object_set_new(rec, "number", json_string(num));
	} else {
		json_object_set_new(rec, "number", json_null());
	}
	if (hub_json_str_opt(o, "name", &v, "order", err) < 0)
		goto fail;
	put_text(rec, "name", v, 128);

	if (get_time(o, "cancelled_at", &t_cancel, "order", err) < 0 ||
	    get_time(o, "closed_at", &t_close, "order", err) < 0 ||
	    get_time(o, "processed_at", &t_proc, "order", err) < 0 ||
	    need_time(o, "created_at", &t_created, "order", err) < 0 ||
	    need_time(o, "updated_at", &t_updated, "order", err) < 0)
		goto fail;
	json_object_set_new(rec, "status",
			    json_string(t_cancel != NO_TIME ? "cancelled"
					: t_close != NO_TIME ? "closed" : "open"));

	if (hub_json_str_opt(o, "financial_status", &fin, "order", err) < 0 ||
	    hub_json_str_opt(o, "fulfillment_status", &ful, "order", err) < 0)
		goto fail;
	v = financial_status(fin);
	json_object_set_new(rec, "financial_status", v != NULL ? json_string(v) : json_null());
	json_object_set_new(rec, "fulfillment_status", json_string(fulfillment_status(ful)));
	put_token(rec, "source_status", fin, 64);

	put_time(rec, "cancelled_at", t_cancel);
	v = NULL;
	if (hub_json_str_opt(o, "cancel_reason", &v, "order", err) < 0)
		goto fail;
	put_text(rec, "cancel_reason", v, 256);
	put_time(rec, "closed_at", t_close);
	if (fin != NULL && (strcmp(fin, "paid") == 0 || strcmp(fin, "partially_refunded") == 0 ||
			    strcmp(fin, "refunded") == 0))
		put_time(rec, "paid_at", t_proc);
	else
		put_time(rec, "paid_at", NO_TIME);

	if (hub_json_str(o, "currency", &currency, "order", err) < 0)
		goto fail;
	if (hub_currency_exponent(currency) < 0) {
		hub_error_set(err, "order.currency", "order.currency \"%.8s\" is not an ISO 4217 code",
			      currency);
		goto fail;
	}
	json_object_set_new(rec, "currency", json_string(currency));

	if (get_money(o, "subtotal_price", currency, &amt, &have, "order", err) < 0)
		goto fail;
	put_money(rec, "subtotal", have, amt);
	if (get_money(o, "total_tax", currency, &amt, &have, "order", err) < 0)
		goto fail;
	put_money(rec, "total_tax", have, amt);
	if (map_shipping_lines(o, currency, rec, &ship_sum, &have_ship_lines, err) < 0)
		goto fail;
	have = 0;
	if (hub_json_object_opt(o, "total_shipping_price_set", &set, "order", err) < 0)
		goto fail;
	if (set != NULL && json_is_object(set)) {
		json_t *shop_money = json_object_get(set, "shop_money");

		if (json_is_object(shop_money) &&
		    get_money(shop_money, "amount", currency, &amt, &have,
			      "order.total_shipping_price_set.shop_money", err) < 0)
			goto fail;
	}
	if (have)
		json_object_set_new(rec, "total_shipping", json_integer(amt));
	else
		put_money(rec, "total_shipping", have_ship_lines, ship_sum);
	if (get_money(o, "total_discounts", currency, &amt, &have, "order", err) < 0)
		goto fail;
	put_money(rec, "total_discounts", have, amt);
	if (get_money(o, "total_price", currency, &amt, &have, "order", err) < 0)
		goto fail;
	if (!have) {
		hub_error_set(err, "order.total_price", "order.total_price is missing");
		goto fail;
	}
	json_object_set_new(rec, "total", json_integer(amt));

	v = NULL;
	if (hub_json_str_opt(o, "email", &v, "order", err) < 0)
		goto fail;
	if (v == NULL || v[0] == '\0') {
		v = NULL;
		if (hub_json_str_opt(o, "contact_email", &v, "order", err) < 0)
			goto fail;
	}
	put_token(rec, "email", v, 320);
	v = NULL;
	if (hub_json_str_opt(o, "phone", &v, "order", err) < 0)
		goto fail;
	put_token(rec, "phone", v, 64);

	if (map_customer(o, rec, err) < 0 || map_address(o, "shipping_address", rec, err) < 0 ||
	    map_address(o, "billing_address", rec, err) < 0 || map_tags(o, rec, err) < 0)
		goto fail;
	v = NULL;
	if (hub_json_str_opt(o, "note", &v, "order", err) < 0)
		goto fail;
	put_text(rec, "note", v, 5000);

	lines = json_array();
	if (lines == NULL || json_object_set_new(rec, "lines", lines) < 0) {
		hub_error_set(err, "order.line_items", "out of memory");
		goto fail;
	}
	if (hub_json_array_opt(o, "line_items", &arr, "order", err) < 0)
		goto fail;
	if (arr != NULL)
		json_array_foreach(arr, i, item)
			if (map_line(item, i, currency, lines, err) < 0)
				goto fail;

	hub_json_set_time(rec, "created_at", t_created);
	hub_json_set_time(rec, "updated_at", t_updated);
	*out = rec;
	return 0;
fail:
	json_decref(rec);
	return -1;
}

const char *shopify_shipment_status(const char *status, const char *shipment_status)
{
	static const struct {
		const char *shopify, *canonical;
	} map[] = {
		{"label_printed", "pre_transit"},
		{"label_purchased", "pre_transit"},
		{"confirmed", "pre_transit"},
		{"carrier_picked_up", "in_transit"},
		{"in_transit", "in_transit"},
		/* "delayed": still moving, only late; not an exception by itself */
		{"delayed", "in_transit"},
		{"out_for_delivery", "out_for_delivery"},
		{"delivered", "delivered"},
		/* picked up by the customer at a pickup point: the end of the road */
		{"picked_up", "delivered"},
		{"attempted_delivery", "delivery_failed"},
		{"ready_for_pickup", "available_for_pickup"},
		{"failure", "exception"},
	};
	size_t i;

	if (status != NULL && strcmp(status, "cancelled") == 0)
		return "cancelled";
	if (status != NULL && (strcmp(status, "failure") == 0 || strcmp(status, "error") == 0))
		return "exception";
	if (shipment_status == NULL)
		return "pre_transit";
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(shipment_status, map[i].shopify) == 0)
			return map[i].canonical;
	return "unknown";
}

const char *shopify_event_status(const char *status)
{
	static const struct {
		const char *canonical, *shopify;
	} map[] = {
		{"pre_transit", "confirmed"},
		{"in_transit", "in_transit"},
		{"out_for_delivery", "out_for_delivery"},
		{"delivered", "delivered"},
		{"available_for_pickup", "ready_for_pickup"},
		{"delivery_failed", "attempted_delivery"},
		{"exception", "failure"},
		{"return_to_sender", "failure"},
		/* Shopify's own words pass through unchanged */
		{"label_printed", "label_printed"},
		{"label_purchased", "label_purchased"},
		{"confirmed", "confirmed"},
		{"carrier_picked_up", "carrier_picked_up"},
		{"attempted_delivery", "attempted_delivery"},
		{"ready_for_pickup", "ready_for_pickup"},
		{"picked_up", "picked_up"},
		{"delayed", "delayed"},
		{"failure", "failure"},
	};
	size_t i;

	if (status == NULL)
		return NULL;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(status, map[i].canonical) == 0)
			return map[i].shopify;
	return NULL;
}

const char *shopify_tracking_company(const char *carrier)
{
	if (carrier == NULL)
		return NULL;
	if (strcmp(carrier, "ups") == 0)
		return "UPS";
	if (strcmp(carrier, "fedex") == 0)
		return "FedEx";
	if (strcmp(carrier, "usps") == 0)
		return "USPS";
	if (strcmp(carrier, "dhl") == 0)
		return "DHL Express";
	return carrier;
}

/* The canonical carrier code of a tracking company, or "" when none fits
 * the schema's [a-z0-9_]{1,64}. */
static void carrier_code(const char *company, char *buf, size_t size)
{
	size_t i;
	int useful = 0;

	buf[0] = '\0';
	if (company == NULL || company[0] == '\0' || hub_carrier_code(company, buf, size) < 0) {
		buf[0] = '\0';
		return;
	}
	/* "my-custom-shipping-company" -> "my_custom_shipping_company" */
	for (i = 0; buf[i] != '\0'; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (isupper(c))
			buf[i] = (char)tolower(c);
		else if (!(islower(c) || isdigit(c) || c == '_'))
			buf[i] = '_';
		if (isalnum((unsigned char)buf[i]))
			useful = 1;
	}
	if (i > 64)
		buf[64] = '\0';
	if (!useful)
		buf[0] = '\0';
}

/* Appends str trimmed to arr unless empty, too long or already there. */
static int add_unique(json_t *arr, const char *str, size_t max)
{
	const char *end;
	size_t len, i;
	json_t *item;
	int cut;

	if (str == NULL)
		return 0;
	while (isspace((unsigned char)*str))
		str++;
	end = str + strlen(str);
	while (end > str && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - str);
	if (len == 0)
		return 0;
	{
		char tmp[2100];

		if (len >= sizeof(tmp))
			return 0;
		memcpy(tmp, str, len);
		tmp[len] = '\0';
		(void)utf8_prefix(tmp, max, &cut);
		if (cut)
			return 0;
		json_array_foreach(arr, i, item)
			if (strcmp(json_string_value(item), tmp) == 0)
				return 0;
		item = json_string(tmp);
	}
	if (item == NULL)
		return 0; /* not UTF-8: not something a carrier can track */
	return json_array_append_new(arr, item);
}

/* obj[list_key] (array of strings) or else obj[one_key] into a new array. */
static int string_list(const json_t *f, const char *list_key, const char *one_key, size_t max,
		       json_t *out, const char *ctx, struct hub_error *err)
{
	json_t *arr = NULL, *item;
	const char *one = NULL;
	size_t i;

	if (hub_json_array_opt(f, list_key, &arr, ctx, err) < 0)
		return -1;
	if (arr != NULL)
		json_array_foreach(arr, i, item)
			if (json_is_string(item) && add_unique(out, json_string_value(item), max) < 0)
				return hub_error_set(err, list_key, "out of memory");
	if (json_array_size(out) > 0)
		return 0;
	if (hub_json_str_opt(f, one_key, &one, ctx, err) < 0)
		return -1;
	if (add_unique(out, one, max) < 0)
		return hub_error_set(err, one_key, "out of memory");
	return 0;
}

int shopify_map_fulfillment(const json_t *f, const char *order_id, json_t **out,
			    struct hub_error *err)
{
	json_t *rec = NULL, *numbers, *urls, *lines, *arr = NULL, *item;
	const char *company = NULL, *status = NULL, *ship_status = NULL, *service = NULL;
	char id[64], oid[64], code[128], ctx[64];
	int64_t t_created, t_updated;
	size_t i;

	*out = NULL;
	if (!json_is_object(f))
		return hub_error_set(err, "fulfillment", "the fulfillment is not a JSON object");
	rec = json_object();
	if (rec == NULL)
		return hub_error_set(err, "fulfillment", "out of memory");
	if (hub_json_id(f, "id", id, sizeof(id), "fulfillment", err) < 0 ||
	    get_id_opt(f, "order_id", oid, sizeof(oid), "fulfillment", err) < 0)
		goto fail;
	if (oid[0] == '\0' && order_id != NULL)
		snprintf(oid, sizeof(oid), "%s", order_id);
	if (oid[0] == '\0') {
		hub_error_set(err, "fulfillment.order_id",
			      "fulfillment %s names no order: its order_id is missing", id);
		goto fail;
	}
	json_object_set_new(rec, "external_id", json_string(id));
	json_object_set_new(rec, "order_external_id", json_string(oid));

	if (hub_json_str_opt(f, "tracking_company", &company, "fulfillment", err) < 0 ||
	    hub_json_str_opt(f, "status", &status, "fulfillment", err) < 0 ||
	    hub_json_str_opt(f, "shipment_status", &ship_status, "fulfillment", err) < 0 ||
	    hub_json_str_opt(f, "service", &service, "fulfillment", err) < 0)
		goto fail;
	carrier_code(company, code, sizeof(code));
	put_token(rec, "carrier", code, 64);
	put_text(rec, "carrier_name", company, 128);
	put_text(rec, "service", service, 128);

	numbers = json_array();
	urls = json_array();
	if (numbers == NULL || urls == NULL) {
		json_decref(numbers);
		json_decref(urls);
		hub_error_set(err, "fulfillment", "out of memory");
		goto fail;
	}
	json_object_set_new(rec, "tracking_numbers", numbers);
	json_object_set_new(rec, "tracking_urls", urls);
	if (string_list(f, "tracking_numbers", "tracking_number", 64, numbers, "fulfillment",
			err) < 0 ||
	    string_list(f, "tracking_urls", "tracking_url", 2048, urls, "fulfillment", err) < 0)
		goto fail;

	json_object_set_new(rec, "status",
			    json_string(shopify_shipment_status(status, ship_status)));
	put_token(rec, "source_status", status, 64);

	lines = json_array();
	if (lines == NULL || json_object_set_new(rec, "lines", lines) < 0) {
		hub_error_set(err, "fulfillment.line_items", "out of memory");
		goto fail;
	}
	if (hub_json_array_opt(f, "line_items", &arr, "fulfillment", err) < 0)
		goto fail;
	if (arr != NULL) {
		json_array_foreach(arr, i, item) {
			const char *sku = NULL;
			int64_t qty = 0;
			json_t *r;

			snprintf(ctx, sizeof(ctx), "fulfillment.line_items[%zu]", i);
			if (!json_is_object(item)) {
				hub_error_set(err, ctx, "%s is not an object", ctx);
				goto fail;
			}
			if (get_id_opt(item, "id", oid, sizeof(oid), ctx, err) < 0 ||
			    hub_json_str_opt(item, "sku", &sku, ctx, err) < 0 ||
			    hub_json_int(item, "quantity", &qty, ctx, err) < 0)
				goto fail;
			r = json_object();
			if (r == NULL || json_array_append_new(lines, r) < 0) {
				hub_error_set(err, ctx, "out of memory");
				goto fail;
			}
			put_token(r, "line_external_id", oid, 128);
			put_token(r, "sku", sku, 128);
			json_object_set_new(r, "quantity", json_integer(qty < 0 ? 0 : qty));
		}
	}

	if (need_time(f, "created_at", &t_created, "fulfillment", err) < 0 ||
	    need_time(f, "updated_at", &t_updated, "fulfillment", err) < 0)
		goto fail;
	put_time(rec, "shipped_at",
		 status != NULL && strcmp(status, "success") == 0 ? t_created : NO_TIME);
	hub_json_set_time(rec, "created_at", t_created);
	hub_json_set_time(rec, "updated_at", t_updated);
	*out = rec;
	return 0;
fail:
	json_decref(rec);
	return -1;
}
