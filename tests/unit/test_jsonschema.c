/*
 * test_jsonschema.c - the core's JSON Schema validator: full canonical
 * records accepted by the embedded schemas, each kind of violation reported
 * with its instance path and reason, $ref within and across files, invalid
 * schemas refused naming keyword and location, plugin config schemas with
 * x-secret annotations, and concurrent validation on one registry.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "jsonschema.h"

static const char valid_order[] =
	"{\"external_id\": \"820982911946154508\", \"number\": \"#1001\", \"name\": \"#1001\","
	" \"status\": \"open\", \"financial_status\": \"paid\", \"fulfillment_status\": null,"
	" \"source_status\": \"pending\", \"cancelled_at\": null, \"cancel_reason\": null,"
	" \"closed_at\": null, \"paid_at\": \"2026-07-01T16:30:00.000Z\", \"currency\": \"USD\","
	" \"subtotal\": 5997, \"total_tax\": 480, \"total_shipping\": 500, \"total_discounts\": null,"
	" \"total\": 6977, \"email\": \"jon@example.com\", \"phone\": null,"
	" \"customer\": {\"external_id\": \"115310627314723954\", \"email\": \"jon@example.com\","
	"   \"first_name\": \"Jon\", \"last_name\": \"Sn\\u00f8w\", \"phone\": null},"
	" \"shipping_address\": {\"name\": \"Jon Snow\", \"address1\": \"1 Wall St\", \"address2\": null,"
	"   \"city\": \"Ottawa\", \"province\": \"Ontario\", \"province_code\": \"ON\", \"zip\": \"K2P 1L4\","
	"   \"country\": \"Canada\", \"country_code\": \"CA\", \"phone\": \"555-625-1199\"},"
	" \"billing_address\": null,"
	" \"shipping_lines\": [{\"title\": \"Standard\", \"code\": \"STD\", \"price\": 500}],"
	" \"tags\": [\"vip\", \"wholesale\"], \"note\": null,"
	" \"lines\": ["
	"   {\"external_id\": \"1\", \"sku\": \"A-1\", \"title\": \"Mug\", \"quantity\": 1,"
	"    \"unit_price\": 1999, \"total_discount\": 0, \"requires_shipping\": true},"
	"   {\"external_id\": \"2\", \"sku\": null, \"quantity\": 2, \"unit_price\": 1999,"
	"    \"fulfillable_quantity\": 2, \"product_id\": \"632910392\", \"variant_id\": null},"
	"   {\"external_id\": \"3\", \"quantity\": 0, \"unit_price\": 0, \"total_tax\": null}],"
	" \"created_at\": \"2026-07-01T16:29:59.123Z\", \"updated_at\": \"2026-07-01T16:30:00.000Z\"}";

static const char valid_shipment[] =
	"{\"external_id\": \"255858046\", \"order_external_id\": \"820982911946154508\","
	" \"carrier\": \"ups\", \"carrier_name\": \"UPS\", \"service\": \"Ground\","
	" \"tracking_numbers\": [\"1Z2345\"], \"tracking_urls\": [\"https://ups.example/t?n=1Z2345\"],"
	" \"status\": \"in_transit\", \"source_status\": \"success\","
	" \"lines\": [{\"line_external_id\": \"1\", \"sku\": \"A-1\", \"quantity\": 1}],"
	" \"shipped_at\": \"2026-07-02T08:00:00.000Z\", \"estimated_delivery_at\": null,"
	" \"delivered_at\": null, \"created_at\": \"2026-07-02T08:00:00.000Z\","
	" \"updated_at\": \"2026-07-02T08:00:00.000Z\"}";

static const char valid_tracking[] =
	"{\"carrier\": \"fedex\", \"tracking_number\": \"123456789012\", \"status\": \"delivered\","
	" \"not_found\": false, \"service\": \"FedEx Ground\","
	" \"estimated_delivery_at\": null, \"delivered_at\": \"2026-07-03T15:04:05.000Z\","
	" \"signed_by\": \"J.SNOW\", \"events\": ["
	"  {\"occurred_at\": \"2026-07-03T15:04:05.000Z\", \"utc_offset_minutes\": -240,"
	"   \"status\": \"delivered\", \"carrier_code\": \"DL\", \"carrier_status\": \"Delivered\","
	"   \"description\": \"Delivered\", \"location\": {\"city\": \"Ottawa\", \"state\": \"ON\","
	"   \"postal_code\": \"K2P\", \"country_code\": \"CA\"}},"
	"  {\"occurred_at\": \"2026-07-02T08:00:00.000Z\", \"utc_offset_minutes\": null,"
	"   \"status\": \"in_transit\", \"description\": \"Departed facility\", \"location\": null}]}";

static struct js_registry *reg;

static int setup(void **state)
{
	struct hub_error err = { 0 };

	(void)state;
	reg = js_registry_new();
	if (reg == NULL || js_registry_add_builtin(reg, &err) < 0) {
		fprintf(stderr, "builtin schemas: %s %s\n", err.field, err.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	js_registry_free(reg);
	return 0;
}

static json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	if (j == NULL)
		fail_msg("test JSON line %d: %s", jerr.line, jerr.text);
	return j;
}

static void test_builtin_present(void **state)
{
	static const char *const names[] = { "order.json", "shipment.json",
		"shipment_status.json", "tracking.json", "tracking_event.json" };

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		const json_t *s = js_registry_get(reg, names[i]);

		assert_non_null(s);
		assert_int_equal(js_check_schema(s, NULL), 0);
	}
	assert_null(js_registry_get(reg, "nope.json"));
	assert_null(js_registry_get(NULL, "order.json"));
	/* The embedded text is the file installed alongside. */
	assert_non_null(strstr((const char *)js_builtins[0].text, "\"$id\""));
	assert_int_equal(strlen((const char *)js_builtins[0].text), js_builtins[0].len);
}

static void expect_valid(const char *schema, const char *text)
{
	struct hub_error err = { 0 };
	json_t *doc = load(text);

	if (js_validate(reg, js_registry_get(reg, schema), doc, &err) != 0)
		fail_msg("%s refused: [%s] %s", schema, err.field, err.message);
	json_decref(doc);
}

static void test_valid_records(void **state)
{
	(void)state;
	expect_valid("order.json", valid_order);
	expect_valid("shipment.json", valid_shipment);
	expect_valid("tracking.json", valid_tracking);
	expect_valid("shipment_status.json", "\"out_for_delivery\"");
	/* Only the required fields. */
	expect_valid("order.json",
		     "{\"external_id\": \"1\", \"currency\": \"JPY\", \"total\": 1500,"
		     " \"status\": \"cancelled\", \"created_at\": \"2026-07-01T16:29:59.123Z\","
		     " \"updated_at\": \"2026-07-01T16:29:59.123Z\", \"lines\": []}");
	expect_valid("tracking.json",
		     "{\"carrier\": \"dhl\", \"tracking_number\": \"x\", \"status\": \"unknown\","
		     " \"events\": []}");
}

/* Sets (value != NULL) or deletes the member at "a/0/b" in doc. */
static void mutate(json_t *doc, const char *where, const char *value)
{
	json_t *node = doc, *v = NULL;
	const char *seg = where, *slash;
	char name[64];

	while ((slash = strchr(seg, '/')) != NULL) {
		snprintf(name, sizeof(name), "%.*s", (int)(slash - seg), seg);
		node = json_is_array(node) ? json_array_get(node, strtoul(name, NULL, 10))
					   : json_object_get(node, name);
		assert_non_null(node);
		seg = slash + 1;
	}
	if (value != NULL) {
		json_error_t jerr;

		v = json_loads(value, JSON_DECODE_ANY, &jerr);
		assert_non_null(v);
	}
	if (json_is_array(node))
		assert_int_equal(json_array_set_new(node, strtoul(seg, NULL, 10), v), 0);
	else if (v == NULL)
		assert_int_equal(json_object_del(node, seg), 0);
	else
		assert_int_equal(json_object_set_new(node, seg, v), 0);
}

static const struct violation {
	const char *schema, *base, *where, *value;   /* value NULL: delete */
	const char *field, *message;                 /* message: substring */
} violations[] = {
	{ "order.json", valid_order, "lines/2/unit_price", "\"19.99\"",
	  "lines[2].unit_price", "expected integer, got string" },
	{ "order.json", valid_order, "currency", NULL, "currency", "required property missing" },
	{ "order.json", valid_order, "lines/1/external_id", NULL,
	  "lines[1].external_id", "required property missing" },
	{ "order.json", valid_order, "customer/foo", "1", "customer.foo", "unknown property \"foo\"" },
	{ "order.json", valid_order, "foo", "null", "foo", "unknown property \"foo\"" },
	{ "order.json", valid_order, "status", "\"x\"", "status",
	  "value \"x\" not in enum [\"open\",\"closed\",\"cancelled\"]" },
	{ "order.json", valid_order, "financial_status", "\"weird\"", "financial_status",
	  "not in enum" },
	{ "order.json", valid_order, "financial_status", "3", "financial_status",
	  "expected string or null, got integer" },
	{ "order.json", valid_order, "created_at", "\"2026-07-01T12:00:00Z\"", "created_at",
	  "does not match the pattern" },
	{ "order.json", valid_order, "paid_at", "\"2026-07-01 12:00:00.000Z\"", "paid_at",
	  "does not match the pattern" },
	{ "order.json", valid_order, "currency", "\"usd\"", "currency", "does not match" },
	{ "order.json", valid_order, "shipping_address/country_code", "\"CAN\"",
	  "shipping_address.country_code", "does not match" },
	{ "order.json", valid_order, "lines/0/quantity", "-1", "lines[0].quantity",
	  "-1 is less than the minimum 0" },
	{ "order.json", valid_order, "lines/0/quantity", "1.0", "lines[0].quantity",
	  "expected integer, got number" },
	{ "order.json", valid_order, "total", "null", "total", "expected integer, got null" },
	{ "order.json", valid_order, "external_id", "\"\"", "external_id",
	  "0 characters, fewer than minLength 1" },
	{ "order.json", valid_order, "tags", "\"vip\"", "tags", "expected array, got string" },
	{ "order.json", valid_order, "tags/1", "5", "tags[1]", "expected string, got integer" },
	{ "order.json", valid_order, "number", "1001", "number",
	  "expected string or null, got integer" },
	{ "order.json", valid_order, "shipping_lines/0/price", NULL, "shipping_lines[0].price",
	  "required property missing" },
	{ "order.json", valid_order, "lines/2/requires_shipping", "\"yes\"",
	  "lines[2].requires_shipping", "expected boolean or null, got string" },
	{ "order.json", "[]", NULL, NULL, "", "expected object, got array" },
	{ "shipment.json", valid_shipment, "status", "\"lost\"", "status",
	  "value \"lost\" not in enum [\"pre_transit\"" },
	{ "shipment.json", valid_shipment, "carrier", "\"UPS\"", "carrier", "does not match" },
	{ "shipment.json", valid_shipment, "tracking_numbers/0", "\"\"", "tracking_numbers[0]",
	  "fewer than minLength 1" },
	{ "tracking.json", valid_tracking, "events/1/status", "\"gone\"", "events[1].status",
	  "not in enum" },
	{ "tracking.json", valid_tracking, "events/0/utc_offset_minutes", "1081",
	  "events[0].utc_offset_minutes", "1081 is greater than the maximum 1080" },
	{ "tracking.json", valid_tracking, "events/0/location/street", "\"x\"",
	  "events[0].location.street", "unknown property \"street\"" },
	{ "tracking.json", valid_tracking, "events/1/description", NULL,
	  "events[1].description", "required property missing" },
	{ "tracking.json", valid_tracking, "not_found", "0", "not_found",
	  "expected boolean, got integer" },
};

static void test_violations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(violations) / sizeof(violations[0]); i++) {
		const struct violation *v = &violations[i];
		struct hub_error err;
		json_t *doc = load(v->base);

		memset(&err, 0, sizeof(err));
		if (v->where != NULL)
			mutate(doc, v->where, v->value);
		if (js_validate(reg, js_registry_get(reg, v->schema), doc, &err) != -1)
			fail_msg("case %zu (%s) accepted", i, v->where);
		if (strcmp(err.field, v->field) != 0 || strstr(err.message, v->message) == NULL)
			fail_msg("case %zu: got [%s] \"%s\", want [%s] \"%s\"", i, err.field,
				 err.message, v->field, v->message);
		/* Also without an error out-parameter. */
		assert_int_equal(js_validate(reg, js_registry_get(reg, v->schema), doc, NULL), -1);
		json_decref(doc);
	}
}

static void test_lengths_in_code_points(void **state)
{
	char text[1024] = "{\"external_id\": \"";
	struct hub_error err = { 0 };
	const json_t *order = js_registry_get(reg, "order.json");
	const json_t *idschema = json_object_get(json_object_get(order, "properties"), "external_id");
	json_t *s;

	(void)state;
	/* 128 two-byte characters are 128 characters, within maxLength 128. */
	for (int i = 0; i < 128; i++)
		strncat(text, "\xc3\xa9", sizeof(text) - strlen(text) - 1);
	s = json_string(text + strlen("{\"external_id\": \""));
	assert_int_equal(js_validate(reg, idschema, s, &err), 0);
	json_decref(s);
	strncat(text, "\xc3\xa9", sizeof(text) - strlen(text) - 1);
	s = json_string(text + strlen("{\"external_id\": \""));
	assert_int_equal(js_validate(reg, idschema, s, &err), -1);
	assert_non_null(strstr(err.message, "129 characters, more than maxLength 128"));
	json_decref(s);
}

/* Adds schema text under name to r; returns the add's result. */
static int add(struct js_registry *r, const char *name, const char *text, struct hub_error *err)
{
	json_t *s = load(text);
	int rc = js_registry_add(r, name, s, err);

	/* The registry holds its own reference. */
	json_decref(s);
	return rc;
}

static void test_refs(void **state)
{
	struct js_registry *r = js_registry_new();
	struct hub_error err = { 0 };
	json_t *v;

	(void)state;
	assert_non_null(r);
	/* a.json refers to b.json before b.json exists: resolved when validating. */
	assert_int_equal(add(r, "a.json",
			     "{\"type\": \"object\", \"properties\": {"
			     " \"n\": {\"$ref\": \"b.json#/$defs/small\"},"
			     " \"whole\": {\"$ref\": \"b.json\"},"
			     " \"uri\": {\"$ref\": \"https://hub.invalid/schema/b.json#/$defs/small\"},"
			     " \"local\": {\"$ref\": \"#/$defs/word\"},"
			     " \"esc\": {\"$ref\": \"#/$defs/a~1b\"}},"
			     " \"$defs\": {\"word\": {\"type\": \"string\", \"pattern\": \"^[a-z]+$\"},"
			     "             \"a/b\": {\"const\": 7}}}", &err), 0);
	v = load("{\"n\": 3}");
	assert_int_equal(js_validate(r, js_registry_get(r, "a.json"), v, &err), -1);
	assert_string_equal(err.field, "n");
	assert_non_null(strstr(err.message, "\"b.json#/$defs/small\" does not resolve"));
	json_decref(v);

	assert_int_equal(add(r, "b.json",
			     "{\"type\": \"object\", \"required\": [\"id\"],"
			     " \"$defs\": {\"small\": {\"type\": \"integer\", \"maximum\": 9},"
			     "            \"word\": {\"type\": \"integer\"}}}", &err), 0);
	v = load("{\"n\": 3, \"whole\": {\"id\": 1}, \"uri\": 9, \"local\": \"abc\", \"esc\": 7}");
	assert_int_equal(js_validate(r, js_registry_get(r, "a.json"), v, &err), 0);
	json_decref(v);

	static const struct {
		const char *doc, *field, *message;
	} bad[] = {
		{ "{\"n\": 10}", "n", "10 is greater than the maximum 9" },
		{ "{\"uri\": \"3\"}", "uri", "expected integer, got string" },
		{ "{\"whole\": {}}", "whole.id", "required property missing" },
		/* "#/$defs/word" in a.json means a.json's word, not b.json's. */
		{ "{\"local\": \"ABC\"}", "local", "does not match the pattern ^[a-z]+$" },
		{ "{\"esc\": 8}", "esc", "value 8 is not the required constant 7" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = load(bad[i].doc);
		assert_int_equal(js_validate(r, js_registry_get(r, "a.json"), v, &err), -1);
		assert_string_equal(err.field, bad[i].field);
		if (strstr(err.message, bad[i].message) == NULL)
			fail_msg("%s: \"%s\"", bad[i].doc, err.message);
		json_decref(v);
	}

	/* Names: duplicates and paths refused; the first schema stays. */
	assert_int_equal(add(r, "b.json", "{}", &err), -1);
	assert_non_null(strstr(err.message, "already registered"));
	assert_non_null(json_object_get(js_registry_get(r, "b.json"), "$defs"));
	assert_int_equal(add(r, "x/y.json", "{}", &err), -1);
	assert_int_equal(add(r, "", "{}", &err), -1);

	/* Without a registry, external references cannot resolve. */
	v = load("{\"n\": 1}");
	assert_int_equal(js_validate(NULL, js_registry_get(r, "a.json"), v, &err), -1);
	assert_non_null(strstr(err.message, "does not resolve"));
	json_decref(v);

	/* A reference loop is stopped, not followed forever. */
	assert_int_equal(add(r, "loop.json",
			     "{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"},"
			     " \"b\": {\"$ref\": \"#/$defs/a\"}}}", &err), 0);
	v = json_integer(1);
	assert_int_equal(js_validate(r, js_registry_get(r, "loop.json"), v, &err), -1);
	assert_non_null(strstr(err.message, "deeper than"));
	json_decref(v);
	js_registry_free(r);
}

static const struct bad_schema {
	const char *schema, *field, *message;
} bad_schemas[] = {
	{ "{\"oneOf\": [{\"type\": \"string\"}]}", "/oneOf", "unsupported keyword \"oneOf\" at the root" },
	{ "{\"properties\": {\"a\": {\"type\": \"string\", \"anyOf\": []}}}",
	  "/properties/a/anyOf", "unsupported keyword \"anyOf\" at /properties/a" },
	{ "{\"$defs\": {\"x/y\": {\"patternProperties\": {}}}}",
	  "/$defs/x~1y/patternProperties", "patternProperties" },
	{ "{\"items\": [{\"type\": \"string\"}]}", "/items", "must be an object or a boolean" },
	{ "{\"type\": \"float\"}", "/type", "must be one of" },
	{ "{\"type\": []}", "/type", "must be one of" },
	{ "{\"type\": [\"string\", \"string\"]}", "/type", "twice" },
	{ "{\"minLength\": -1}", "/minLength", "non-negative integer" },
	{ "{\"maxItems\": \"3\"}", "/maxItems", "non-negative integer" },
	{ "{\"minimum\": \"0\"}", "/minimum", "must be a number" },
	{ "{\"required\": \"id\"}", "/required", "array of property names" },
	{ "{\"required\": [1]}", "/required", "array of property names" },
	{ "{\"enum\": \"a\"}", "/enum", "must be an array" },
	{ "{\"pattern\": \"(\"}", "/pattern", "not a POSIX extended regular expression" },
	{ "{\"pattern\": \"^\\\\d+$\"}", "/pattern", "write [0-9] instead" },
	{ "{\"pattern\": 5}", "/pattern", "must be a string" },
	{ "{\"$ref\": \"#/$defs/missing\"}", "/$ref", "does not lead to a schema" },
	{ "{\"$defs\": {\"n\": 5}, \"$ref\": \"#/$defs/n\"}", "/$defs/n", "must be an object or a boolean" },
	{ "{\"$ref\": 5}", "/$ref", "must be a string" },
	{ "{\"additionalProperties\": \"no\"}", "/additionalProperties", "must be an object or a boolean" },
	{ "{\"properties\": []}", "/properties", "object of schemas" },
	{ "{\"description\": 5}", "/description", "must be a string" },
	{ "{\"readOnly\": \"yes\"}", "/readOnly", "true or false" },
	{ "\"string\"", "", "must be an object or a boolean" },
};

static void test_invalid_schemas(void **state)
{
	struct js_registry *r = js_registry_new();

	(void)state;
	for (size_t i = 0; i < sizeof(bad_schemas) / sizeof(bad_schemas[0]); i++) {
		struct hub_error err;
		json_error_t jerr;
		json_t *s = json_loads(bad_schemas[i].schema, JSON_DECODE_ANY, &jerr);

		assert_non_null(s);
		memset(&err, 0, sizeof(err));
		assert_int_equal(js_check_schema(s, &err), -1);
		if (strcmp(err.field, bad_schemas[i].field) != 0 ||
		    strstr(err.message, bad_schemas[i].message) == NULL)
			fail_msg("%s: got [%s] \"%s\"", bad_schemas[i].schema, err.field, err.message);
		/* The registry refuses it too, naming the schema, and keeps nothing. */
		assert_int_equal(js_registry_add(r, "bad.json", s, &err), -1);
		assert_non_null(strstr(err.message, "schema bad.json: "));
		assert_string_equal(err.field, bad_schemas[i].field);
		assert_null(js_registry_get(r, "bad.json"));
		json_decref(s);
	}
	assert_int_equal(js_check_schema(NULL, NULL), -1);
	js_registry_free(r);
}

static void test_config_schema(void **state)
{
	static const char config_schema[] =
		"{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
		" \"$id\": \"shopify.config.json\", \"title\": \"Shopify\", \"$comment\": \"v1\","
		" \"type\": \"object\", \"additionalProperties\": false,"
		" \"required\": [\"shop\", \"access_token\"],"
		" \"properties\": {"
		"  \"shop\": {\"type\": \"string\", \"pattern\": \"^[a-z0-9-]+[.]myshopify[.]com$\","
		"            \"description\": \"shop domain\", \"examples\": [\"x.myshopify.com\"]},"
		"  \"access_token\": {\"type\": \"string\", \"minLength\": 1, \"x-secret\": true},"
		"  \"webhook_secret\": {\"type\": \"string\", \"x-secret\": true, \"x-env\": \"SHOPIFY_SECRET\"},"
		"  \"api_version\": {\"type\": \"string\", \"default\": \"2026-07\", \"format\": \"date\","
		"                  \"enum\": [\"2026-04\", \"2026-07\"]},"
		"  \"page_size\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 250, \"default\": 250},"
		"  \"rate\": {\"type\": \"number\", \"minimum\": 0.5, \"maximum\": 40, \"deprecated\": true},"
		"  \"labels\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}},"
		"  \"topics\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 2,"
		"             \"items\": {\"type\": \"string\"}},"
		"  \"mode\": {\"const\": \"rest\"},"
		"  \"anything\": true"
		" }}";
	struct js_registry *r = js_registry_new();
	struct hub_error err = { 0 };
	const json_t *schema;
	json_t *cfg;

	(void)state;
	assert_int_equal(add(r, "shopify.config.json", config_schema, &err), 0);
	schema = js_registry_get(r, "shopify.config.json");
	assert_non_null(schema);

	cfg = load("{\"shop\": \"demo.myshopify.com\", \"access_token\": \"shpat_x\","
		   " \"page_size\": 250, \"rate\": 2, \"labels\": {\"a\": \"b\"},"
		   " \"topics\": [\"orders/create\"], \"mode\": \"rest\", \"anything\": [1, {}]}");
	assert_int_equal(js_validate(r, schema, cfg, &err), 0);
	json_decref(cfg);

	static const struct {
		const char *doc, *field, *message;
	} bad[] = {
		{ "{\"shop\": \"demo.example.com\", \"access_token\": \"t\"}", "shop", "does not match" },
		{ "{\"shop\": \"d.myshopify.com\"}", "access_token", "required property missing" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"page_size\": 0}",
		  "page_size", "0 is less than the minimum 1" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"rate\": 0.25}",
		  "rate", "0.25 is less than the minimum 0.5" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"rate\": 41}",
		  "rate", "41 is greater than the maximum 40" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"api_version\": \"2020-01\"}",
		  "api_version", "value \"2020-01\" not in enum [\"2026-04\",\"2026-07\"]" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"labels\": {\"a\": 1}}",
		  "labels.a", "expected string, got integer" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"topics\": []}",
		  "topics", "0 items, fewer than minItems 1" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"topics\": [\"a\", \"b\", \"c\"]}",
		  "topics", "3 items, more than maxItems 2" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"mode\": \"graphql\"}",
		  "mode", "not the required constant \"rest\"" },
		{ "{\"shop\": \"d.myshopify.com\", \"access_token\": \"t\", \"acess_token\": \"t\"}",
		  "acess_token", "unknown property \"acess_token\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = load(bad[i].doc);
		assert_int_equal(js_validate(r, schema, cfg, &err), -1);
		if (strcmp(err.field, bad[i].field) != 0 || strstr(err.message, bad[i].message) == NULL)
			fail_msg("%s: got [%s] \"%s\"", bad[i].doc, err.field, err.message);
		json_decref(cfg);
	}

	/* The same schema used outside any registry compiles patterns per call. */
	cfg = load("{\"shop\": \"no\", \"access_token\": \"t\"}");
	assert_int_equal(js_validate(NULL, schema, cfg, &err), -1);
	assert_string_equal(err.field, "shop");
	json_decref(cfg);
	js_registry_free(r);
}

/* Values of "x-secret" properties never appear in error messages. */
static void test_secret_values_not_echoed(void **state)
{
	struct js_registry *r = js_registry_new();
	json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{"
				    "\"key\":{\"type\":\"string\",\"pattern\":\"^sk_\",\"x-secret\":true},"
				    "\"mode\":{\"enum\":[\"a\",\"b\"],\"x-secret\":true},"
				    "\"name\":{\"type\":\"string\",\"pattern\":\"^n_\"}}}", 0, NULL);
	json_t *bad_key = json_pack("{s:s}", "key", "hunter2-topsecret");
	json_t *bad_mode = json_pack("{s:s}", "mode", "hunter2-topsecret");
	json_t *bad_name = json_pack("{s:s}", "name", "visible-value");
	struct hub_error err;

	assert_non_null(schema);
	memset(&err, 0, sizeof(err));
	assert_int_equal(js_validate(r, schema, bad_key, &err), -1);
	assert_string_equal(err.field, "key");
	assert_null(strstr(err.message, "hunter2"));
	assert_non_null(strstr(err.message, "secret"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(js_validate(r, schema, bad_mode, &err), -1);
	assert_null(strstr(err.message, "hunter2"));
	/* Ordinary fields still say what was wrong. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(js_validate(r, schema, bad_name, &err), -1);
	assert_non_null(strstr(err.message, "visible-value"));
	json_decref(schema);
	json_decref(bad_key);
	json_decref(bad_mode);
	json_decref(bad_name);
	js_registry_free(r);
}

static void test_boolean_schemas(void **state)
{
	struct hub_error err = { 0 };
	json_t *t = json_true(), *f = json_false(), *v = json_integer(5);

	(void)state;
	assert_int_equal(js_check_schema(t, &err), 0);
	assert_int_equal(js_validate(NULL, t, v, &err), 0);
	assert_int_equal(js_validate(NULL, f, v, &err), -1);
	assert_non_null(strstr(err.message, "no value is allowed"));
	assert_int_equal(js_validate(NULL, NULL, v, &err), -1);
	assert_int_equal(js_validate(NULL, t, NULL, &err), -1);
	json_decref(v);
}

/* Several threads validating with one registry at once. */
static void *validate_many(void *arg)
{
	json_t *order = load(valid_order), *bad = load(valid_order);
	struct hub_error err;
	intptr_t failures = 0;

	(void)arg;
	mutate(bad, "currency", "\"usd\"");
	for (int i = 0; i < 200; i++) {
		failures += js_validate(reg, js_registry_get(reg, "order.json"), order, &err) != 0;
		failures += js_validate(reg, js_registry_get(reg, "order.json"), bad, &err) != -1;
	}
	json_decref(order);
	json_decref(bad);
	return (void *)failures;
}

static void test_threads(void **state)
{
	pthread_t th[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, validate_many, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *failures;

		assert_int_equal(pthread_join(th[i], &failures), 0);
		assert_int_equal((intptr_t)failures, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_present),
		cmocka_unit_test(test_valid_records),
		cmocka_unit_test(test_violations),
		cmocka_unit_test(test_lengths_in_code_points),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_invalid_schemas),
		cmocka_unit_test(test_config_schema),
		cmocka_unit_test(test_boolean_schemas),
		cmocka_unit_test(test_secret_values_not_echoed),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
