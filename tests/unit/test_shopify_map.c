/*
 * test_shopify_map.c - edge cases of the Shopify plugin's record mapping
 * (plugins/shopify/map.c), beyond what the kit cases built from real
 * payloads cover: statuses Shopify documents but the fixtures lack, text
 * that does not fit the canonical schema, odd carrier names and tracking
 * numbers, and the errors that name the field at fault.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <hub/sdk.h>

#include "shopify.h"

/* Parses a JSON literal of the test (fails the test when malformed). */
static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	if (v == NULL)
		fail_msg("test JSON invalid at %d:%d: %s", jerr.line, jerr.column, jerr.text);
	return v;
}

/* A minimal valid order; tests overwrite what they exercise. */
static json_t *base_order(void)
{
	return parse("{\"id\": 1, \"currency\": \"USD\", \"total_price\": \"10.00\","
		     " \"created_at\": \"2026-07-01T08:00:00-04:00\","
		     " \"updated_at\": \"2026-07-01T09:00:00-04:00\", \"line_items\": []}");
}

static json_t *map_ok(json_t *order)
{
	struct hub_error err = {0};
	json_t *rec = NULL;

	if (shopify_map_order(order, &rec, &err) != 0)
		fail_msg("map failed: %s: %s", err.field, err.message);
	json_decref(order);
	return rec;
}

static void map_fails(json_t *order, const char *field)
{
	struct hub_error err = {0};
	json_t *rec = (json_t *)1;

	assert_int_equal(shopify_map_order(order, &rec, &err), -1);
	assert_null(rec);
	assert_string_equal(err.field, field);
	assert_true(err.message[0] != '\0');
	json_decref(order);
}

static const char *str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	assert_non_null(v);
	return json_is_null(v) ? NULL : json_string_value(v);
}

static void test_shipment_status_table(void **unused)
{
	(void)unused;
	assert_string_equal(shopify_shipment_status("success", NULL), "pre_transit");
	assert_string_equal(shopify_shipment_status("success", "label_printed"), "pre_transit");
	assert_string_equal(shopify_shipment_status("success", "label_purchased"), "pre_transit");
	assert_string_equal(shopify_shipment_status("success", "confirmed"), "pre_transit");
	assert_string_equal(shopify_shipment_status("success", "carrier_picked_up"), "in_transit");
	assert_string_equal(shopify_shipment_status("success", "in_transit"), "in_transit");
	assert_string_equal(shopify_shipment_status("success", "delayed"), "in_transit");
	assert_string_equal(shopify_shipment_status("success", "out_for_delivery"),
			    "out_for_delivery");
	assert_string_equal(shopify_shipment_status("success", "delivered"), "delivered");
	assert_string_equal(shopify_shipment_status("success", "picked_up"), "delivered");
	assert_string_equal(shopify_shipment_status("success", "attempted_delivery"),
			    "delivery_failed");
	assert_string_equal(shopify_shipment_status("success", "ready_for_pickup"),
			    "available_for_pickup");
	assert_string_equal(shopify_shipment_status("success", "failure"), "exception");
	assert_string_equal(shopify_shipment_status("success", "teleported"), "unknown");
	/* the fulfillment's own status wins over the carrier's */
	assert_string_equal(shopify_shipment_status("cancelled", "delivered"), "cancelled");
	assert_string_equal(shopify_shipment_status("failure", NULL), "exception");
	assert_string_equal(shopify_shipment_status("error", "in_transit"), "exception");
	assert_string_equal(shopify_shipment_status(NULL, NULL), "pre_transit");
}

static void test_event_status_and_company(void **unused)
{
	(void)unused;
	assert_string_equal(shopify_event_status("delivered"), "delivered");
	assert_string_equal(shopify_event_status("delivery_failed"), "attempted_delivery");
	assert_string_equal(shopify_event_status("available_for_pickup"), "ready_for_pickup");
	assert_string_equal(shopify_event_status("exception"), "failure");
	assert_string_equal(shopify_event_status("pre_transit"), "confirmed");
	assert_string_equal(shopify_event_status("carrier_picked_up"), "carrier_picked_up");
	assert_null(shopify_event_status("cancelled"));
	assert_null(shopify_event_status("unknown"));
	assert_null(shopify_event_status(NULL));
	assert_string_equal(shopify_tracking_company("ups"), "UPS");
	assert_string_equal(shopify_tracking_company("fedex"), "FedEx");
	assert_string_equal(shopify_tracking_company("usps"), "USPS");
	assert_string_equal(shopify_tracking_company("dhl"), "DHL Express");
	assert_string_equal(shopify_tracking_company("Canada Post"), "Canada Post");
}

static void test_order_statuses(void **unused)
{
	json_t *o, *rec;

	(void)unused;
	o = base_order();
	json_object_set_new(o, "closed_at", json_string("2026-07-02T00:00:00Z"));
	json_object_set_new(o, "financial_status", json_string("paid"));
	json_object_set_new(o, "fulfillment_status", json_string("fulfilled"));
	json_object_set_new(o, "processed_at", json_string("2026-07-01T08:00:01-04:00"));
	rec = map_ok(o);
	assert_string_equal(str(rec, "status"), "closed");
	assert_string_equal(str(rec, "financial_status"), "paid");
	assert_string_equal(str(rec, "fulfillment_status"), "fulfilled");
	assert_string_equal(str(rec, "paid_at"), "2026-07-01T12:00:01.000Z");
	assert_string_equal(str(rec, "closed_at"), "2026-07-02T00:00:00.000Z");
	json_decref(rec);

	o = base_order();
	json_object_set_new(o, "financial_status", json_string("expired"));
	json_object_set_new(o, "fulfillment_status", json_string("on_the_moon"));
	json_object_set_new(o, "processed_at", json_string("2026-07-01T08:00:01-04:00"));
	rec = map_ok(o);
	assert_string_equal(str(rec, "status"), "open");
	assert_string_equal(str(rec, "financial_status"), "unknown");
	assert_string_equal(str(rec, "source_status"), "expired");
	assert_string_equal(str(rec, "fulfillment_status"), "unknown");
	assert_null(str(rec, "paid_at")); /* never paid: no paid_at */
	json_decref(rec);

	o = base_order();
	json_object_set_new(o, "financial_status", json_string("pending"));
	rec = map_ok(o);
	assert_null(str(rec, "paid_at"));
	assert_string_equal(str(rec, "fulfillment_status"), "unfulfilled");
	assert_string_equal(str(rec, "created_at"), "2026-07-01T12:00:00.000Z");
	assert_string_equal(str(rec, "updated_at"), "2026-07-01T13:00:00.000Z");
	json_decref(rec);
}

static void test_order_amounts(void **unused)
{
	json_t *o, *rec, *line;

	(void)unused;
	o = base_order();
	json_object_set_new(o, "currency", json_string("KWD"));
	json_object_set_new(o, "total_price", json_string("12.3456"));
	json_object_set_new(o, "shipping_lines",
			    parse("[{\"title\": null, \"code\": \"EXP\", \"price\": \"1.250\"},"
				  " {\"title\": \"x\", \"price\": null},"
				  " {\"title\": \"Gift\", \"price\": \"0.5\"}]"));
	json_object_set_new(o, "line_items",
			    parse("[{\"id\": \"7\", \"quantity\": 3, \"price\": \"2.000\","
				  " \"total_discount\": \"0.900\","
				  " \"discount_allocations\": [{\"amount\": \"0.100\"},"
				  "   {\"amount\": \"0.200\"}],"
				  " \"fulfillable_quantity\": -1, \"tax_lines\": []},"
				  " {\"id\": 8, \"quantity\": 1, \"price\": \"1\","
				  " \"discount_allocations\": [{\"amount\": \"0.250\"}]}]"));
	rec = map_ok(o);
	/* 3 minor digits for KWD, rounded half away from zero */
	assert_int_equal(json_integer_value(json_object_get(rec, "total")), 12346);
	/* no total_shipping_price_set: the priced shipping lines are summed */
	assert_int_equal(json_integer_value(json_object_get(rec, "total_shipping")), 1750);
	assert_int_equal(json_array_size(json_object_get(rec, "shipping_lines")), 2);
	assert_string_equal(str(json_array_get(json_object_get(rec, "shipping_lines"), 0), "title"),
			    "EXP");
	assert_true(json_is_null(json_object_get(rec, "subtotal")));
	line = json_array_get(json_object_get(rec, "lines"), 0);
	assert_string_equal(str(line, "external_id"), "7");
	assert_int_equal(json_integer_value(json_object_get(line, "unit_price")), 2000);
	/* an explicit total_discount larger than the allocations wins */
	assert_int_equal(json_integer_value(json_object_get(line, "total_discount")), 900);
	assert_int_equal(json_integer_value(json_object_get(line, "total_tax")), 0);
	assert_int_equal(json_integer_value(json_object_get(line, "fulfillable_quantity")), 0);
	assert_true(json_is_null(json_object_get(line, "requires_shipping")));
	assert_true(json_is_null(json_object_get(line, "sku")));
	line = json_array_get(json_object_get(rec, "lines"), 1);
	assert_int_equal(json_integer_value(json_object_get(line, "total_discount")), 250);
	assert_true(json_is_null(json_object_get(line, "total_tax")));
	json_decref(rec);
}

static void test_order_text_limits(void **unused)
{
	json_t *o, *rec, *tags, *addr;
	char *note;
	size_t i;

	(void)unused;
	/* 6000 two-byte characters: cut at 5000 characters, not bytes */
	note = malloc(12001);
	assert_non_null(note);
	for (i = 0; i < 6000; i++)
		memcpy(note + 2 * i, "\xc3\xa9", 2);
	note[12000] = '\0';
	o = base_order();
	json_object_set_new(o, "note", json_string(note));
	json_object_set_new(o, "tags", json_string(" a , ,b,,  c d  ,"));
	json_object_set_new(o, "email", json_string(""));
	json_object_set_new(o, "contact_email", json_string("c@example.com"));
	json_object_set_new(o, "phone", json_string("+1 555 0100 0100 0100 0100 0100 0100 "
						    "0100 0100 0100 0100 0100 0100 0100 0100"));
	json_object_set_new(o, "shipping_address",
			    parse("{\"country_code\": \"us\", \"address2\": \"\", \"zip\": 12345}"));
	map_fails(json_deep_copy(o), "order.shipping_address.zip");
	json_object_set_new(o, "shipping_address",
			    parse("{\"country_code\": \"usa\", \"province_code\": \"KY\"}"));
	json_object_set_new(o, "billing_address", parse("{\"country_code\": \"ca\"}"));
	rec = map_ok(o);
	assert_int_equal(strlen(str(rec, "note")), 10000);
	tags = json_object_get(rec, "tags");
	assert_int_equal(json_array_size(tags), 3);
	assert_string_equal(json_string_value(json_array_get(tags, 0)), "a");
	assert_string_equal(json_string_value(json_array_get(tags, 1)), "b");
	assert_string_equal(json_string_value(json_array_get(tags, 2)), "c d");
	assert_string_equal(str(rec, "email"), "c@example.com");
	assert_null(str(rec, "phone")); /* too long to be a phone number: null, not cut */
	addr = json_object_get(rec, "shipping_address");
	assert_null(str(addr, "country_code"));
	assert_string_equal(str(addr, "province_code"), "KY");
	assert_null(str(addr, "address1"));
	assert_string_equal(str(json_object_get(rec, "billing_address"), "country_code"), "CA");
	assert_true(json_is_null(json_object_get(rec, "customer")));
	json_decref(rec);
	free(note);
}

static void test_order_errors_name_the_field(void **unused)
{
	json_t *o;

	(void)unused;
	o = base_order();
	json_object_del(o, "total_price");
	map_fails(o, "order.total_price");

	o = base_order();
	json_object_set_new(o, "subtotal_price", json_string("1,000.00"));
	map_fails(o, "order.subtotal_price");

	o = base_order();
	json_object_set_new(o, "currency", json_string("usd"));
	map_fails(o, "order.currency");

	o = base_order();
	json_object_del(o, "updated_at");
	map_fails(o, "order.updated_at");

	o = base_order();
	json_object_set_new(o, "created_at", json_string("2026-13-01T00:00:00Z"));
	map_fails(o, "order.created_at");

	o = base_order();
	json_object_set_new(o, "line_items", parse("[{\"id\": 5, \"quantity\": 1}]"));
	map_fails(o, "order.line_items[0].price");

	o = base_order();
	json_object_set_new(o, "line_items",
			    parse("[{\"id\": 5, \"quantity\": 1, \"price\": \"1\","
				  " \"tax_lines\": [{\"price\": \"x\"}]}]"));
	map_fails(o, "order.line_items[0].tax_lines[0].price");

	map_fails(parse("[]"), "order");
}

static json_t *map_fulfillment_ok(const char *text, const char *order_id)
{
	struct hub_error err = {0};
	json_t *f = parse(text), *rec = NULL;

	if (shopify_map_fulfillment(f, order_id, &rec, &err) != 0)
		fail_msg("map failed: %s: %s", err.field, err.message);
	json_decref(f);
	return rec;
}

static void test_fulfillment_tracking(void **unused)
{
	json_t *rec, *nums;

	(void)unused;
	rec = map_fulfillment_ok(
		"{\"id\": 9, \"status\": \"success\", \"shipment_status\": \"delivered\","
		" \"tracking_company\": \"my-custom-shipping-company\","
		" \"tracking_numbers\": [\" 1Z999 \", \"\", \"1Z999\", \"1Z888\","
		"   \"12345678901234567890123456789012345678901234567890123456789012345\"],"
		" \"tracking_urls\": [], \"tracking_url\": \"https://t.example/1Z999\","
		" \"created_at\": \"2026-07-01T08:00:00-04:00\","
		" \"updated_at\": \"2026-07-02T08:00:00-04:00\"}", "77");
	assert_string_equal(str(rec, "order_external_id"), "77");
	assert_string_equal(str(rec, "carrier"), "my_custom_shipping_company");
	assert_string_equal(str(rec, "carrier_name"), "my-custom-shipping-company");
	assert_string_equal(str(rec, "status"), "delivered");
	assert_string_equal(str(rec, "source_status"), "success");
	assert_string_equal(str(rec, "shipped_at"), "2026-07-01T12:00:00.000Z");
	nums = json_object_get(rec, "tracking_numbers");
	/* trimmed, empty and duplicate dropped, 65 characters dropped */
	assert_int_equal(json_array_size(nums), 2);
	assert_string_equal(json_string_value(json_array_get(nums, 0)), "1Z999");
	assert_string_equal(json_string_value(json_array_get(nums, 1)), "1Z888");
	/* empty list: the single tracking_url is used */
	assert_int_equal(json_array_size(json_object_get(rec, "tracking_urls")), 1);
	assert_int_equal(json_array_size(json_object_get(rec, "lines")), 0);
	assert_null(json_object_get(rec, "delivered_at"));
	json_decref(rec);

	rec = map_fulfillment_ok(
		"{\"id\": \"10\", \"order_id\": 5, \"status\": \"open\","
		" \"tracking_company\": \"\xe9\xa1\xba\xe4\xb8\xb0\", \"tracking_number\": null,"
		" \"line_items\": [{\"id\": 1, \"quantity\": 2, \"sku\": \"S\"}],"
		" \"created_at\": \"2026-07-01T08:00:00Z\", \"updated_at\": \"2026-07-01T08:00:00Z\"}",
		"77");
	assert_string_equal(str(rec, "order_external_id"), "5"); /* its own order_id wins */
	assert_null(str(rec, "carrier")); /* no [a-z0-9] in the name: no code */
	assert_string_equal(str(rec, "carrier_name"), "\xe9\xa1\xba\xe4\xb8\xb0");
	assert_int_equal(json_array_size(json_object_get(rec, "tracking_numbers")), 0);
	assert_null(str(rec, "shipped_at"));
	assert_string_equal(str(rec, "status"), "pre_transit");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(rec, "lines"), 0), "quantity")),
			 2);
	json_decref(rec);
}

static void test_fulfillment_errors(void **unused)
{
	struct hub_error err = {0};
	json_t *f, *rec = NULL;

	(void)unused;
	f = parse("{\"id\": 9, \"created_at\": \"2026-07-01T08:00:00Z\","
		  " \"updated_at\": \"2026-07-01T08:00:00Z\"}");
	assert_int_equal(shopify_map_fulfillment(f, NULL, &rec, &err), -1);
	assert_null(rec);
	assert_string_equal(err.field, "fulfillment.order_id");
	json_decref(f);

	f = parse("{\"id\": 9, \"order_id\": 1, \"updated_at\": \"2026-07-01T08:00:00Z\"}");
	assert_int_equal(shopify_map_fulfillment(f, NULL, &rec, &err), -1);
	assert_string_equal(err.field, "fulfillment.created_at");
	json_decref(f);

	f = parse("{\"id\": 9, \"order_id\": 1, \"created_at\": \"2026-07-01T08:00:00Z\","
		  " \"updated_at\": \"2026-07-01T08:00:00Z\", \"line_items\": [{\"id\": 1}]}");
	assert_int_equal(shopify_map_fulfillment(f, NULL, &rec, &err), -1);
	assert_string_equal(err.field, "fulfillment.line_items[0].quantity");
	json_decref(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipment_status_table),
		cmocka_unit_test(test_event_status_and_company),
		cmocka_unit_test(test_order_statuses),
		cmocka_unit_test(test_order_amounts),
		cmocka_unit_test(test_order_text_limits),
		cmocka_unit_test(test_order_errors_name_the_field),
		cmocka_unit_test(test_fulfillment_tracking),
		cmocka_unit_test(test_fulfillment_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
