/*
 * amz_map.c - one Orders API 2026-01-01 Order to one canonical order.
 *
 * The order shape is the model's `Order` with the datasets the plugin asks
 * for (BUYER, RECIPIENT, PROCEEDS, FULFILLMENT, CANCELLATION, PACKAGES).
 * Money objects are {"amount": decimal string, "currencyCode": ISO 4217}
 * and go through hub_money_parse(). Decisions (also in the README):
 *
 *  - status from fulfillment.fulfillmentStatus: PENDING_AVAILABILITY,
 *    PENDING, UNSHIPPED, PARTIALLY_SHIPPED -> open; SHIPPED -> closed;
 *    CANCELLED, UNFULFILLABLE -> cancelled. source_status keeps the word.
 *  - financial_status: PENDING* -> pending (payment not authorised);
 *    UNSHIPPED, PARTIALLY_SHIPPED -> authorized (Amazon charges at
 *    shipment); SHIPPED -> paid; CANCELLED -> voided; UNFULFILLABLE ->
 *    unknown. fulfillment_status: SHIPPED -> fulfilled, PARTIALLY_SHIPPED
 *    -> partial, PENDING_AVAILABILITY, PENDING and UNSHIPPED ->
 *    unfulfilled, else null.
 *  - total is proceeds.grandTotal; subtotal, total_tax, total_shipping and
 *    total_discounts are the ITEM, TAX, SHIPPING and DISCOUNT breakdowns
 *    (order level, else summed over the items; absent -> null; discounts
 *    as a positive amount). Without grandTotal the items' proceedsTotal,
 *    else unit price x quantity, are summed. A cancelled order without
 *    prices is worth 0 in its marketplace's currency. Any other order with
 *    no money yet (possible while PENDING) is deferred, not emitted: its
 *    next update brings it back.
 *  - number is orderId, name the SELLER_ORDER_ID alias; the buyer's name is
 *    split at its first space; tags are the order's programs plus
 *    "fulfilled_by:<AMAZON|MERCHANT>" and "marketplace:<id>".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "amz.h"

#define NO_TIME INT64_MIN

/* Proceeds categories with a canonical place. */
enum cat { CAT_ITEM, CAT_SHIPPING, CAT_TAX, CAT_DISCOUNT, CAT_COUNT };

struct sums {
	int64_t v[CAT_COUNT];
	int has[CAT_COUNT];
};

static int cat_of(const char *type)
{
	static const char *const names[CAT_COUNT] = {"ITEM", "SHIPPING", "TAX", "DISCOUNT"};

	for (int i = 0; i < CAT_COUNT; i++)
		if (strcmp(type, names[i]) == 0)
			return i;
	return -1;
}

/* Currency of each marketplace, for orders that carry no money at all
 * (cancelled orders lose their prices). */
static const struct {
	const char *id, *currency;
} marketplace_currency[] = {
	{"ATVPDKIKX0DER", "USD"},  {"A2EUQ1WTGCTBG2", "CAD"}, {"A1AM78C64UM0Y8", "MXN"},
	{"A2Q3Y263D00KWC", "BRL"}, {"A1F83G8C2ARO7P", "GBP"}, {"A1PA6795UKMFR9", "EUR"},
	{"A13V1IB3VIYZZH", "EUR"}, {"APJ6JRA9NG5V4", "EUR"},  {"A1RKKUPIHCS9HS", "EUR"},
	{"A1805IZSGTT6HS", "EUR"}, {"AMEN7PMS3EDWL", "EUR"},  {"A28R8C7NBKEWEA", "EUR"},
	{"A2NODRKZP88ZB9", "SEK"}, {"A1C3SOZRARQ6R3", "PLN"}, {"A33AVAJ2PDY3EV", "TRY"},
	{"AE08WJ6YKNBMC", "ZAR"},  {"ARBP9OOSHTCHU", "EGP"},  {"A17E79C6D8DWNP", "SAR"},
	{"A2VIGQ35RCS4UG", "AED"}, {"A21TJRUUN4KGV", "INR"},  {"A19VAU5U5O7RUS", "SGD"},
	{"A39IBJ37TRP1C6", "AUD"}, {"A1VC38T7YXB528", "JPY"},
};

static const char *currency_of_marketplace(const char *id)
{
	if (id == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(marketplace_currency) / sizeof(marketplace_currency[0]); i++)
		if (strcmp(marketplace_currency[i].id, id) == 0)
			return marketplace_currency[i].currency;
	return NULL;
}

/* Reads the Money object obj[key]. Returns 1 with *minor set (and
 * *currency pointing into obj) when present, 0 when absent, -1 on error.
 * `want` (may be NULL) is the order's currency: another one is an error. */
static int money_opt(const json_t *obj, const char *key, const char *want, int64_t *minor,
		     const char **currency, const char *ctx, struct hub_error *err)
{
	json_t *m = NULL;
	const char *amount, *code;
	char path[256];

	if (hub_json_object_opt(obj, key, &m, ctx, err) < 0)
		return -1;
	if (m == NULL)
		return 0;
	if (snprintf(path, sizeof(path), "%s.%s", ctx, key) < 0)
		path[0] = '\0';
	if (hub_json_str(m, "amount", &amount, path, err) < 0 ||
	    hub_json_str(m, "currencyCode", &code, path, err) < 0)
		return -1;
	if (want != NULL && strcmp(want, code) != 0)
		return hub_error_set(err, path, "%s.currencyCode: %s differs from the order's %s",
				     path, code, want);
	if (hub_money_parse(amount, code, minor, path, err) < 0)
		return -1;
	if (currency != NULL)
		*currency = code;
	return 1;
}

/* Adds the breakdowns array of obj (order proceeds or item proceeds) into
 * s. Returns 0 or -1. */
static int add_breakdowns(const json_t *proceeds, const char *currency, struct sums *s,
			  const char *ctx, struct hub_error *err)
{
	json_t *list = NULL, *b;
	size_t i;

	if (proceeds == NULL)
		return 0;
	if (hub_json_array_opt(proceeds, "breakdowns", &list, ctx, err) < 0)
		return -1;
	json_array_foreach(list, i, b) {
		char path[256];
		const char *type;
		int64_t v;
		int c;

		if (snprintf(path, sizeof(path), "%s.breakdowns[%zu]", ctx, i) < 0)
			path[0] = '\0';
		if (hub_json_str(b, "type", &type, path, err) < 0)
			return -1;
		c = cat_of(type);
		if (c < 0)
			continue; /* DELIVERY_TIP, GIFT_WRAP, COD_FEE, OTHER: no place */
		if (money_opt(b, "subtotal", currency, &v, NULL, path, err) <= 0) {
			if (err != NULL && err->message[0] == '\0')
				hub_error_set(err, path, "%s.subtotal: required field is missing",
					      path);
			return -1;
		}
		s->v[c] += v;
		s->has[c] = 1;
	}
	return 0;
}

/* Sets rec[key] to s's category c, or null. DISCOUNT is made positive. */
static int set_sum(json_t *rec, const char *key, const struct sums *s, int c)
{
	int64_t v = s->v[c];

	if (!s->has[c])
		return json_object_set_new(rec, key, json_null());
	if (c == CAT_DISCOUNT && v < 0)
		v = -v;
	return json_object_set_new(rec, key, json_integer(v));
}

/* Maps recipient.deliveryAddress to a canonical address (json null when
 * absent). Returns NULL with err on a type error. */
static json_t *map_address(const json_t *addr, const char *ctx, struct hub_error *err)
{
	struct hub_address a = {0};
	const char *l2, *l3;
	char line2[1040];
	json_t *out;

	if (addr == NULL)
		return json_null();
	if (hub_json_str_or_null(addr, "name", &a.name, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "companyName", &a.company, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "addressLine1", &a.address1, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "addressLine2", &l2, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "addressLine3", &l3, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "city", &a.city, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "stateOrRegion", &a.region, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "postalCode", &a.zip, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "countryCode", &a.country, ctx, err) < 0 ||
	    hub_json_str_or_null(addr, "phone", &a.phone, ctx, err) < 0)
		return NULL;
	/* The canonical address has two street lines: a third joins the
	 * second. */
	if (snprintf(line2, sizeof(line2), "%s%s%s", l2 ? l2 : "", l2 && l3 ? ", " : "",
		     l3 ? l3 : "") < 0)
		line2[0] = '\0';
	a.address2 = line2;
	out = hub_address_new(&a);
	if (out == NULL)
		hub_error_set(err, ctx, "%s: out of memory (or text that is not UTF-8)", ctx);
	return out;
}

/* Maps buyer to the canonical customer (json null without buyer). */
static json_t *map_customer(const json_t *buyer, const char *ctx, struct hub_error *err)
{
	const char *name, *email, *space;
	char *first = NULL;
	json_t *c;
	int bad;

	if (buyer == NULL)
		return json_null();
	if (hub_json_str_or_null(buyer, "buyerName", &name, ctx, err) < 0 ||
	    hub_json_str_or_null(buyer, "buyerEmail", &email, ctx, err) < 0)
		return NULL;
	space = name != NULL ? strchr(name, ' ') : NULL;
	if (space != NULL) {
		first = strndup(name, (size_t)(space - name));
		if (first == NULL)
			goto oom;
		while (*space == ' ')
			space++;
	}
	c = json_object();
	bad = c == NULL ||
	      json_object_set_new(c, "external_id", json_null()) < 0 ||
	      hub_json_set_str(c, "email", email) < 0 ||
	      hub_json_set_str(c, "first_name", space != NULL ? first : NULL) < 0 ||
	      hub_json_set_str(c, "last_name", space != NULL ? space : name) < 0 ||
	      json_object_set_new(c, "phone", json_null()) < 0;
	free(first);
	if (bad) {
		json_decref(c);
		goto oom;
	}
	return c;
oom:
	hub_error_set(err, ctx, "%s: out of memory (or text that is not UTF-8)", ctx);
	return NULL;
}

/* What an order item contributes; filled by read_item(). */
struct item {
	const char *id, *sku, *title, *asin;
	int64_t qty;
	int has_unit, has_total, has_unfulfilled;
	int64_t unit, total, unfulfilled;
	struct sums sums;
	const char *cancel_reason;
};

/* Reads orderItems[i] in the order's currency (NULL: not known yet, then
 * *currency is set from the item's first price). Returns 0 or -1. */
static int read_item(const json_t *it, const char **currency, struct item *out,
		     const char *ctx, struct hub_error *err)
{
	json_t *product = NULL, *price = NULL, *proceeds = NULL, *ful = NULL, *canc = NULL;
	char path[256];

	memset(out, 0, sizeof(*out));
	if (hub_json_str(it, "orderItemId", &out->id, ctx, err) < 0 ||
	    hub_json_int(it, "quantityOrdered", &out->qty, ctx, err) < 0 ||
	    hub_json_object(it, "product", &product, ctx, err) < 0 ||
	    hub_json_object_opt(it, "proceeds", &proceeds, ctx, err) < 0 ||
	    hub_json_object_opt(it, "fulfillment", &ful, ctx, err) < 0 ||
	    hub_json_object_opt(it, "cancellation", &canc, ctx, err) < 0)
		return -1;
	if (*out->id == '\0')
		return hub_error_set(err, ctx, "%s.orderItemId: empty", ctx);
	if (out->qty < 0)
		return hub_error_set(err, ctx, "%s.quantityOrdered: negative", ctx);
	if (snprintf(path, sizeof(path), "%s.product", ctx) < 0)
		path[0] = '\0';
	if (hub_json_str_or_null(product, "sellerSku", &out->sku, path, err) < 0 ||
	    hub_json_str_or_null(product, "title", &out->title, path, err) < 0 ||
	    hub_json_str_or_null(product, "asin", &out->asin, path, err) < 0 ||
	    hub_json_object_opt(product, "price", &price, path, err) < 0)
		return -1;
	if (price != NULL) {
		int rc;

		if (snprintf(path, sizeof(path), "%s.product.price", ctx) < 0)
			path[0] = '\0';
		rc = money_opt(price, "unitPrice", *currency, &out->unit, currency, path, err);
		if (rc < 0)
			return -1;
		out->has_unit = rc;
	}
	if (proceeds != NULL) {
		int rc;

		if (snprintf(path, sizeof(path), "%s.proceeds", ctx) < 0)
			path[0] = '\0';
		rc = money_opt(proceeds, "proceedsTotal", *currency, &out->total, currency, path,
			       err);
		if (rc < 0)
			return -1;
		out->has_total = rc;
		if (add_breakdowns(proceeds, *currency, &out->sums, path, err) < 0)
			return -1;
	}
	if (ful != NULL) {
		int64_t n = -1;

		if (snprintf(path, sizeof(path), "%s.fulfillment", ctx) < 0)
			path[0] = '\0';
		if (hub_json_int_opt(ful, "quantityUnfulfilled", &n, path, err) < 0)
			return -1;
		if (n >= 0) {
			out->has_unfulfilled = 1;
			out->unfulfilled = n;
		}
	}
	if (canc != NULL) {
		json_t *exec = NULL, *req = NULL;

		if (snprintf(path, sizeof(path), "%s.cancellation", ctx) < 0)
			path[0] = '\0';
		if (hub_json_object_opt(canc, "cancellationExecution", &exec, path, err) < 0 ||
		    hub_json_object_opt(canc, "cancellationRequest", &req, path, err) < 0)
			return -1;
		if (exec != NULL &&
		    hub_json_str_or_null(exec, "cancelReason", &out->cancel_reason, path, err) < 0)
			return -1;
		if (out->cancel_reason == NULL && req != NULL &&
		    hub_json_str_or_null(req, "cancelReason", &out->cancel_reason, path, err) < 0)
			return -1;
	}
	/* Without a unit price, the ITEM proceeds spread over the units. */
	if (!out->has_unit && out->sums.has[CAT_ITEM] && out->qty > 0) {
		out->unit = out->sums.v[CAT_ITEM] / out->qty;
		out->has_unit = 1;
	}
	return 0;
}

/* Builds the canonical line of an item. */
static json_t *item_line(const struct item *it)
{
	json_t *l = json_object();

	if (l == NULL ||
	    json_object_set_new(l, "external_id", json_string(it->id)) < 0 ||
	    hub_json_set_str(l, "sku", it->sku) < 0 ||
	    hub_json_set_str(l, "title", it->title) < 0 ||
	    json_object_set_new(l, "variant_title", json_null()) < 0 ||
	    hub_json_set_str(l, "product_id", it->asin) < 0 ||
	    json_object_set_new(l, "variant_id", json_null()) < 0 ||
	    json_object_set_new(l, "quantity", json_integer(it->qty)) < 0 ||
	    json_object_set_new(l, "unit_price", json_integer(it->unit)) < 0 ||
	    set_sum(l, "total_discount", &it->sums, CAT_DISCOUNT) < 0 ||
	    set_sum(l, "total_tax", &it->sums, CAT_TAX) < 0 ||
	    json_object_set_new(l, "fulfillable_quantity",
				it->has_unfulfilled ? json_integer(it->unfulfilled)
						    : json_null()) < 0 ||
	    json_object_set_new(l, "requires_shipping", json_null()) < 0) {
		json_decref(l);
		return NULL;
	}
	return l;
}

/* The canonical status words of a fulfillmentStatus (NULL: unknown). */
static void map_status(const char *fs, const char **status, const char **financial,
		       const char **fulfillment)
{
	*status = "open";
	*financial = "unknown";
	*fulfillment = NULL;
	if (fs == NULL)
		return;
	if (strcmp(fs, "PENDING_AVAILABILITY") == 0 || strcmp(fs, "PENDING") == 0) {
		*financial = "pending";
		*fulfillment = "unfulfilled";
	} else if (strcmp(fs, "UNSHIPPED") == 0) {
		*financial = "authorized";
		*fulfillment = "unfulfilled";
	} else if (strcmp(fs, "PARTIALLY_SHIPPED") == 0) {
		*financial = "authorized";
		*fulfillment = "partial";
	} else if (strcmp(fs, "SHIPPED") == 0) {
		*status = "closed";
		*financial = "paid";
		*fulfillment = "fulfilled";
	} else if (strcmp(fs, "CANCELLED") == 0) {
		*status = "cancelled";
		*financial = "voided";
	} else if (strcmp(fs, "UNFULFILLABLE") == 0) {
		*status = "cancelled";
	}
}

/* Appends tag "<prefix><value>" to tags. */
static int add_tag(json_t *tags, const char *prefix, const char *value)
{
	char buf[256];

	if (value == NULL)
		return 0;
	if (snprintf(buf, sizeof(buf), "%s%s", prefix, value) < 0)
		return -1;
	return json_array_append_new(tags, json_string(buf));
}

/* The newest packages[].shipTime, or NO_TIME. */
static int last_ship_time(const json_t *order, int64_t *out, const char *ctx,
			  struct hub_error *err)
{
	json_t *pkgs = NULL, *p;
	size_t i;

	*out = NO_TIME;
	if (hub_json_array_opt(order, "packages", &pkgs, ctx, err) < 0)
		return -1;
	json_array_foreach(pkgs, i, p) {
		char path[256];
		int64_t t = NO_TIME;

		if (snprintf(path, sizeof(path), "%s.packages[%zu]", ctx, i) < 0)
			path[0] = '\0';
		if (hub_json_time_opt(p, "shipTime", 0, &t, path, err) < 0)
			return -1;
		if (t != NO_TIME && (*out == NO_TIME || t > *out))
			*out = t;
	}
	return 0;
}

json_t *amz_map_order(const json_t *order, const char *ctx, int64_t *updated_ms,
		      int *deferred, struct hub_error *err)
{
	const char *id, *currency = NULL, *fs = NULL, *fulfilled_by = NULL, *level = NULL;
	const char *alias = NULL, *marketplace = NULL, *note = NULL, *cancel_reason = NULL;
	const char *status, *financial, *fulfillment;
	int64_t created = NO_TIME, updated = NO_TIME, closed = NO_TIME, total = 0;
	json_t *items = NULL, *proceeds = NULL, *ful = NULL, *channel = NULL, *buyer = NULL;
	json_t *recipient = NULL, *addr = NULL, *programs = NULL, *aliases = NULL, *v;
	json_t *rec = NULL, *lines = NULL, *tags = NULL, *ship = NULL;
	struct item *its = NULL;
	struct sums order_sums, item_sums;
	int has_total = 0, all_totals = 1, all_units = 1, terminal;
	char path[256];
	size_t i, n;

	*deferred = 0;
	if (err != NULL)
		err->message[0] = '\0';
	memset(&order_sums, 0, sizeof(order_sums));
	memset(&item_sums, 0, sizeof(item_sums));
	if (!json_is_object(order)) {
		hub_error_set(err, ctx, "%s: expected an order object", ctx);
		return NULL;
	}
	if (hub_json_str(order, "orderId", &id, ctx, err) < 0 ||
	    hub_json_time_opt(order, "createdTime", 0, &created, ctx, err) < 0 ||
	    hub_json_time_opt(order, "lastUpdatedTime", 0, &updated, ctx, err) < 0 ||
	    hub_json_array(order, "orderItems", &items, ctx, err) < 0 ||
	    hub_json_object_opt(order, "proceeds", &proceeds, ctx, err) < 0 ||
	    hub_json_object_opt(order, "fulfillment", &ful, ctx, err) < 0 ||
	    hub_json_object_opt(order, "salesChannel", &channel, ctx, err) < 0 ||
	    hub_json_object_opt(order, "buyer", &buyer, ctx, err) < 0 ||
	    hub_json_object_opt(order, "recipient", &recipient, ctx, err) < 0 ||
	    hub_json_array_opt(order, "programs", &programs, ctx, err) < 0 ||
	    hub_json_array_opt(order, "orderAliases", &aliases, ctx, err) < 0)
		return NULL;
	if (*id == '\0' || created == NO_TIME || updated == NO_TIME) {
		snprintf(path, sizeof(path), "%s.%s", ctx,
			 *id == '\0' ? "orderId" : created == NO_TIME ? "createdTime"
								       : "lastUpdatedTime");
		hub_error_set(err, path, "%s: required field is missing or empty", path);
		return NULL;
	}
	if (ful != NULL) {
		snprintf(path, sizeof(path), "%s.fulfillment", ctx);
		if (hub_json_str_or_null(ful, "fulfillmentStatus", &fs, path, err) < 0 ||
		    hub_json_str_or_null(ful, "fulfilledBy", &fulfilled_by, path, err) < 0 ||
		    hub_json_str_or_null(ful, "fulfillmentServiceLevel", &level, path, err) < 0)
			return NULL;
	}
	if (channel != NULL &&
	    hub_json_str_or_null(channel, "marketplaceId", &marketplace, ctx, err) < 0)
		return NULL;
	json_array_foreach(aliases, i, v) {
		const char *type = json_string_value(json_object_get(v, "aliasType"));

		if (type != NULL && strcmp(type, "SELLER_ORDER_ID") == 0) {
			alias = json_string_value(json_object_get(v, "aliasId"));
			break;
		}
	}
	if (recipient != NULL) {
		json_t *pref = NULL;

		snprintf(path, sizeof(path), "%s.recipient", ctx);
		if (hub_json_object_opt(recipient, "deliveryAddress", &addr, path, err) < 0 ||
		    hub_json_object_opt(recipient, "deliveryPreference", &pref, path, err) < 0)
			return NULL;
		if (pref != NULL && hub_json_str_or_null(pref, "addressInstruction", &note, path, err) < 0)
			return NULL;
	}
	if (proceeds != NULL) {
		int rc;

		snprintf(path, sizeof(path), "%s.proceeds", ctx);
		rc = money_opt(proceeds, "grandTotal", NULL, &total, &currency, path, err);
		if (rc < 0)
			return NULL;
		has_total = rc;
	}

	n = json_array_size(items);
	its = calloc(n ? n : 1, sizeof(*its));
	if (its == NULL)
		goto oom;
	json_array_foreach(items, i, v) {
		snprintf(path, sizeof(path), "%s.orderItems[%zu]", ctx, i);
		if (read_item(v, &currency, &its[i], path, err) < 0)
			goto fail;
		all_totals &= its[i].has_total;
		all_units &= its[i].has_unit;
		for (int c = 0; c < CAT_COUNT; c++) {
			item_sums.v[c] += its[i].sums.v[c];
			item_sums.has[c] |= its[i].sums.has[c];
		}
		if (cancel_reason == NULL)
			cancel_reason = its[i].cancel_reason;
	}
	if (proceeds != NULL) {
		snprintf(path, sizeof(path), "%s.proceeds", ctx);
		if (add_breakdowns(proceeds, currency, &order_sums, path, err) < 0)
			goto fail;
	}
	/* Order-level breakdowns aggregate the items; without them, sum. */
	for (int c = 0; c < CAT_COUNT; c++)
		if (!order_sums.has[c]) {
			order_sums.v[c] = item_sums.v[c];
			order_sums.has[c] = item_sums.has[c];
		}
	if (!has_total && n > 0 && (all_totals || all_units)) {
		for (i = 0; i < n; i++)
			total += all_totals ? its[i].total : its[i].unit * its[i].qty;
		has_total = 1;
	}
	/* A cancelled order keeps no prices: it is worth nothing, and its
	 * cancellation must still reach the store. */
	terminal = fs != NULL && (strcmp(fs, "CANCELLED") == 0 || strcmp(fs, "UNFULFILLABLE") == 0);
	if (currency == NULL)
		currency = currency_of_marketplace(marketplace);
	if (terminal && currency != NULL) {
		has_total = 1;
		all_units = 1;
	}
	if (currency == NULL || !has_total || !all_units) {
		*deferred = 1;
		hub_error_set(err, ctx, "order %s carries no %s yet (status %s): deferred until "
			      "its next update", id, currency == NULL || !has_total ? "total" :
			      "unit price", fs != NULL ? fs : "unknown");
		goto fail;
	}

	map_status(fs, &status, &financial, &fulfillment);
	if (strcmp(status, "closed") == 0 && last_ship_time(order, &closed, ctx, err) < 0)
		goto fail;

	lines = json_array();
	tags = json_array();
	ship = json_array();
	rec = json_object();
	if (lines == NULL || tags == NULL || ship == NULL || rec == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		if (json_array_append_new(lines, item_line(&its[i])) < 0)
			goto oom;
	json_array_foreach(programs, i, v)
		if (json_is_string(v) && json_array_append(tags, v) < 0)
			goto oom;
	if (add_tag(tags, "fulfilled_by:", fulfilled_by) < 0 ||
	    add_tag(tags, "marketplace:", marketplace) < 0)
		goto oom;
	if (order_sums.has[CAT_SHIPPING]) {
		json_t *sl = json_object();

		if (sl == NULL || json_array_append_new(ship, sl) < 0 ||
		    json_object_set_new(sl, "title", json_string(level ? level : "Shipping")) < 0 ||
		    hub_json_set_str(sl, "code", level) < 0 ||
		    json_object_set_new(sl, "price", json_integer(order_sums.v[CAT_SHIPPING])) < 0)
			goto oom;
	}

	{
		json_t *customer = map_customer(buyer, ctx, err);
		json_t *shipping;

		if (customer == NULL)
			goto fail;
		if (json_object_set_new(rec, "customer", customer) < 0)
			goto oom;
		snprintf(path, sizeof(path), "%s.recipient.deliveryAddress", ctx);
		shipping = map_address(addr, path, err);
		if (shipping == NULL)
			goto fail;
		if (json_object_set_new(rec, "shipping_address", shipping) < 0)
			goto oom;
	}
	{
		const char *email = NULL, *phone = NULL;

		if (buyer != NULL && hub_json_str_or_null(buyer, "buyerEmail", &email, ctx, err) < 0)
			goto fail;
		if (addr != NULL && hub_json_str_or_null(addr, "phone", &phone, ctx, err) < 0)
			goto fail;
		if (hub_json_set_str(rec, "email", email) < 0 ||
		    hub_json_set_str(rec, "phone", phone) < 0)
			goto oom;
	}
	if (json_object_set_new(rec, "external_id", json_string(id)) < 0 ||
	    json_object_set_new(rec, "number", json_string(id)) < 0 ||
	    hub_json_set_str(rec, "name", alias) < 0 ||
	    json_object_set_new(rec, "status", json_string(status)) < 0 ||
	    json_object_set_new(rec, "financial_status", json_string(financial)) < 0 ||
	    hub_json_set_str(rec, "fulfillment_status", fulfillment) < 0 ||
	    hub_json_set_str(rec, "source_status", fs) < 0 ||
	    json_object_set_new(rec, "cancelled_at", json_null()) < 0 ||
	    hub_json_set_str(rec, "cancel_reason",
			     strcmp(status, "cancelled") == 0 ? cancel_reason : NULL) < 0 ||
	    (closed == NO_TIME ? json_object_set_new(rec, "closed_at", json_null())
			       : hub_json_set_time(rec, "closed_at", closed)) < 0 ||
	    json_object_set_new(rec, "paid_at", json_null()) < 0 ||
	    json_object_set_new(rec, "currency", json_string(currency)) < 0 ||
	    set_sum(rec, "subtotal", &order_sums, CAT_ITEM) < 0 ||
	    set_sum(rec, "total_tax", &order_sums, CAT_TAX) < 0 ||
	    set_sum(rec, "total_shipping", &order_sums, CAT_SHIPPING) < 0 ||
	    set_sum(rec, "total_discounts", &order_sums, CAT_DISCOUNT) < 0 ||
	    json_object_set_new(rec, "total", json_integer(total)) < 0 ||
	    json_object_set_new(rec, "billing_address", json_null()) < 0 ||
	    json_object_set(rec, "shipping_lines", ship) < 0 ||
	    json_object_set(rec, "tags", tags) < 0 ||
	    hub_json_set_str(rec, "note", note) < 0 ||
	    json_object_set(rec, "lines", lines) < 0 ||
	    hub_json_set_time(rec, "created_at", created) < 0 ||
	    hub_json_set_time(rec, "updated_at", updated) < 0)
		goto oom;

	json_decref(lines);
	json_decref(tags);
	json_decref(ship);
	free(its);
	if (updated_ms != NULL)
		*updated_ms = updated;
	return rec;
oom:
	hub_error_set(err, ctx, "%s: out of memory (or text that is not UTF-8)", ctx);
fail:
	json_decref(rec);
	json_decref(lines);
	json_decref(tags);
	json_decref(ship);
	free(its);
	if (updated_ms != NULL)
		*updated_ms = updated;
	return NULL;
}
