/*
 * test_sdk_json.c - libhubsdk JSON getters and setters: present, missing,
 * null and wrong-typed fields, with error messages that name "ctx.key" and
 * the type found; ids as integers or strings; times; UTF-8 in setters;
 * canonical addresses (codes and names of regions and countries apart).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static json_t *doc;

static int setup(void **state)
{
	json_error_t jerr;

	(void)state;
	doc = json_loads("{\"sku\": \"AB-1\", \"qty\": 3, \"id_str\": \"820982911946154508\","
			 " \"neg\": \"-12\", \"big\": \"99999999999999999999\", \"price\": 19.99,"
			 " \"gift\": true, \"nothing\": null, \"items\": [1, 2], \"addr\": {\"zip\": \"1\"},"
			 " \"id_int\": 820982911946154508, \"empty\": \"\", \"digits_sp\": \"12 \","
			 " \"created\": \"2026-07-01T12:30:00-04:00\", \"gmt\": \"2026-07-01T16:30:00\","
			 " \"badtime\": \"2026-02-30T00:00:00Z\"}", 0, &jerr);
	return doc == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(doc);
	return 0;
}

/* Checks that err names path and contains needle. */
static void expect_err(const struct hub_error *err, const char *path, const char *needle)
{
	assert_string_equal(err->field, path);
	if (strstr(err->message, path) == NULL || strstr(err->message, needle) == NULL)
		fail_msg("message \"%s\" should name %s and say %s", err->message, path, needle);
}

static void test_str(void **state)
{
	struct hub_error err = { 0 };
	const char *s = "default";

	(void)state;
	assert_int_equal(hub_json_str(doc, "sku", &s, "order.line_items[2]", &err), 0);
	assert_string_equal(s, "AB-1");

	s = "default";
	assert_int_equal(hub_json_str_opt(doc, "absent", &s, "order", &err), 0);
	assert_string_equal(s, "default");
	assert_int_equal(hub_json_str_opt(doc, "nothing", &s, "order", &err), 0);
	assert_string_equal(s, "default");

	assert_int_equal(hub_json_str(doc, "absent", &s, "order.line_items[2]", &err), -1);
	expect_err(&err, "order.line_items[2].absent", "missing");
	assert_int_equal(hub_json_str(doc, "nothing", &s, "order", &err), -1);
	expect_err(&err, "order.nothing", "null");
	assert_int_equal(hub_json_str(doc, "qty", &s, "order.line_items[2]", &err), -1);
	expect_err(&err, "order.line_items[2].qty", "expected string, got integer");
	assert_int_equal(hub_json_str_opt(doc, "items", &s, NULL, &err), -1);
	expect_err(&err, "items", "expected string, got array");
	assert_string_equal(s, "default");

	/* obj itself not an object. */
	assert_int_equal(hub_json_str(json_object_get(doc, "items"), "x", &s, "order.items", &err), -1);
	expect_err(&err, "order.items", "expected object, got array");
	assert_int_equal(hub_json_str(NULL, "x", &s, "order", &err), -1);
	/* err may be NULL. */
	assert_int_equal(hub_json_str(doc, "qty", &s, "o", NULL), -1);

	/* _or_null: missing, null and "" are all NULL; *out always set. */
	assert_int_equal(hub_json_str_or_null(doc, "sku", &s, "order", &err), 0);
	assert_string_equal(s, "AB-1");
	s = "default";
	assert_int_equal(hub_json_str_or_null(doc, "absent", &s, "order", &err), 0);
	assert_null(s);
	s = "default";
	assert_int_equal(hub_json_str_or_null(doc, "nothing", &s, "order", &err), 0);
	assert_null(s);
	s = "default";
	assert_int_equal(hub_json_str_or_null(doc, "empty", &s, "order", &err), 0);
	assert_null(s);
	assert_int_equal(hub_json_str_or_null(doc, "qty", &s, "order", &err), -1);
	expect_err(&err, "order.qty", "expected string, got integer");
}

static void test_int(void **state)
{
	struct hub_error err = { 0 };
	int64_t v = -1;

	(void)state;
	assert_int_equal(hub_json_int(doc, "qty", &v, "line", &err), 0);
	assert_int_equal(v, 3);
	assert_int_equal(hub_json_int(doc, "id_str", &v, "line", &err), 0);
	assert_int_equal(v, 820982911946154508LL);
	assert_int_equal(hub_json_int(doc, "neg", &v, "line", &err), 0);
	assert_int_equal(v, -12);

	v = 7;
	assert_int_equal(hub_json_int_opt(doc, "absent", &v, "line", &err), 0);
	assert_int_equal(hub_json_int_opt(doc, "nothing", &v, "line", &err), 0);
	assert_int_equal(v, 7);

	assert_int_equal(hub_json_int(doc, "big", &v, "line", &err), -1);
	expect_err(&err, "line.big", "expected integer, got string");
	assert_int_equal(hub_json_int(doc, "sku", &v, "line", &err), -1);
	expect_err(&err, "line.sku", "got string \"AB-1\"");
	assert_int_equal(hub_json_int(doc, "empty", &v, "line", &err), -1);
	expect_err(&err, "line.empty", "expected integer");
	assert_int_equal(hub_json_int(doc, "digits_sp", &v, "line", &err), -1);
	expect_err(&err, "line.digits_sp", "expected integer");
	assert_int_equal(hub_json_int(doc, "price", &v, "line", &err), -1);
	expect_err(&err, "line.price", "expected integer, got number");
	assert_int_equal(hub_json_int_opt(doc, "gift", &v, "line", &err), -1);
	expect_err(&err, "line.gift", "expected integer, got boolean");
	assert_int_equal(hub_json_int(doc, "absent", &v, "line", &err), -1);
	expect_err(&err, "line.absent", "missing");
	assert_int_equal(v, 7);
}

static void test_bool(void **state)
{
	struct hub_error err = { 0 };
	int b = -1;

	(void)state;
	assert_int_equal(hub_json_bool_opt(doc, "gift", &b, "o", &err), 0);
	assert_int_equal(b, 1);
	b = -1;
	assert_int_equal(hub_json_bool_opt(doc, "absent", &b, "o", &err), 0);
	assert_int_equal(b, -1);
	assert_int_equal(hub_json_bool_opt(doc, "sku", &b, "o", &err), -1);
	expect_err(&err, "o.sku", "expected boolean, got string");
}

static void test_containers(void **state)
{
	struct hub_error err = { 0 };
	json_t *v = NULL;

	(void)state;
	assert_int_equal(hub_json_array(doc, "items", &v, "o", &err), 0);
	assert_int_equal(json_array_size(v), 2);
	assert_int_equal(hub_json_object(doc, "addr", &v, "o", &err), 0);
	assert_true(json_is_object(v));
	v = NULL;
	assert_int_equal(hub_json_array_opt(doc, "absent", &v, "o", &err), 0);
	assert_int_equal(hub_json_object_opt(doc, "nothing", &v, "o", &err), 0);
	assert_null(v);
	assert_int_equal(hub_json_array(doc, "addr", &v, "o", &err), -1);
	expect_err(&err, "o.addr", "expected array, got object");
	assert_int_equal(hub_json_object(doc, "items", &v, "o", &err), -1);
	expect_err(&err, "o.items", "expected object, got array");
	assert_int_equal(hub_json_object_opt(doc, "qty", &v, "o", &err), -1);
	expect_err(&err, "o.qty", "expected object, got integer");
	assert_int_equal(hub_json_array(doc, "absent", &v, "o", &err), -1);
	expect_err(&err, "o.absent", "missing");
	assert_null(v);
}

static void test_id(void **state)
{
	struct hub_error err = { 0 };
	char buf[32], tiny[8];

	(void)state;
	assert_int_equal(hub_json_id(doc, "id_int", buf, sizeof(buf), "o", &err), 0);
	assert_string_equal(buf, "820982911946154508");
	assert_int_equal(hub_json_id(doc, "sku", buf, sizeof(buf), "o", &err), 0);
	assert_string_equal(buf, "AB-1");
	assert_int_equal(hub_json_id(doc, "id_int", tiny, sizeof(tiny), "o", &err), -1);
	expect_err(&err, "o.id_int", "longer than 7");
	assert_int_equal(hub_json_id(doc, "empty", buf, sizeof(buf), "o", &err), -1);
	expect_err(&err, "o.empty", "empty");
	assert_int_equal(hub_json_id(doc, "price", buf, sizeof(buf), "o", &err), -1);
	expect_err(&err, "o.price", "got number");
	assert_int_equal(hub_json_id(doc, "nothing", buf, sizeof(buf), "o", &err), -1);
	expect_err(&err, "o.nothing", "null");
	/* Integer ids at the edges, as snprintf would write them. */
	{
		static const json_int_t ids[] = {0, -7, 9, 10, INT64_MAX, INT64_MIN};
		static const char *const texts[] = {"0", "-7", "9", "10", "9223372036854775807",
						    "-9223372036854775808"};
		for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			json_t *o = json_pack("{s:I}", "id", ids[i]);

			assert_int_equal(hub_json_id(o, "id", buf, sizeof(buf), "o", &err), 0);
			assert_string_equal(buf, texts[i]);
			json_decref(o);
		}
		/* Exactly as long as the buffer allows, and one longer. */
		json_t *o = json_pack("{s:I}", "id", (json_int_t)1234567);
		assert_int_equal(hub_json_id(o, "id", tiny, sizeof(tiny), "o", &err), 0);
		assert_string_equal(tiny, "1234567");
		json_object_set_new(o, "id", json_integer(12345678));
		assert_int_equal(hub_json_id(o, "id", tiny, sizeof(tiny), "o", &err), -1);
		json_decref(o);
	}
}

static void test_time(void **state)
{
	struct hub_error err = { 0 };
	int64_t t = 5;

	(void)state;
	assert_int_equal(hub_json_time_opt(doc, "created", 0, &t, "order", &err), 0);
	assert_int_equal(t, 1782923400000LL);
	t = 5;
	assert_int_equal(hub_json_time_opt(doc, "gmt", 1, &t, "order", &err), 0);
	assert_int_equal(t, 1782923400000LL);
	t = 5;
	assert_int_equal(hub_json_time_opt(doc, "absent", 0, &t, "order", &err), 0);
	assert_int_equal(hub_json_time_opt(doc, "nothing", 0, &t, "order", &err), 0);
	assert_int_equal(hub_json_time_opt(doc, "empty", 0, &t, "order", &err), 0);
	assert_int_equal(t, 5);
	assert_int_equal(hub_json_time_opt(doc, "gmt", 0, &t, "order", &err), -1);
	expect_err(&err, "order.gmt", "no UTC offset");
	assert_int_equal(hub_json_time_opt(doc, "badtime", 0, &t, "order", &err), -1);
	expect_err(&err, "order.badtime", "day out of range");
	assert_int_equal(hub_json_time_opt(doc, "qty", 0, &t, "order", &err), -1);
	expect_err(&err, "order.qty", "got integer");
	assert_int_equal(t, 5);
}

static void test_setters(void **state)
{
	json_t *o = json_object();

	(void)state;
	assert_int_equal(hub_json_set_time(o, "created_at", 1782923400123LL), 0);
	assert_string_equal(json_string_value(json_object_get(o, "created_at")),
			    "2026-07-01T16:30:00.123Z");
	assert_int_equal(hub_json_set_time(o, "far", 253402300800000LL), -1);
	assert_null(json_object_get(o, "far"));
	assert_int_equal(hub_json_set_str(o, "name", "caf\xc3\xa9"), 0);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "caf\xc3\xa9");
	assert_int_equal(hub_json_set_str(o, "a", NULL), 0);
	assert_true(json_is_null(json_object_get(o, "a")));
	assert_int_equal(hub_json_set_str(o, "b", ""), 0);
	assert_true(json_is_null(json_object_get(o, "b")));
	assert_int_equal(hub_json_set_str(o, "bad", "\xff\xfe"), -1);
	assert_null(json_object_get(o, "bad"));
	json_decref(o);
}

/* Expects obj[key] to be the string want, or null when want is NULL. */
static void expect_str(const json_t *obj, const char *key, const char *want)
{
	const json_t *v = json_object_get(obj, key);

	assert_non_null(v); /* every key is present */
	if (want == NULL) {
		if (!json_is_null(v))
			fail_msg("%s: expected null, got %s", key, json_string_value(v));
	} else {
		assert_string_equal(json_string_value(v), want);
	}
}

static void test_address(void **state)
{
	struct hub_address a = {0};
	json_t *o;

	(void)state;
	a.name = "Ann Lee";
	a.address1 = "1 Main St";
	a.address2 = "";
	a.region = "CA";
	a.country = "US";
	o = hub_address_new(&a);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 13);
	expect_str(o, "name", "Ann Lee");
	expect_str(o, "first_name", NULL);
	expect_str(o, "address1", "1 Main St");
	expect_str(o, "address2", NULL);
	expect_str(o, "province", NULL);
	expect_str(o, "province_code", "CA");
	expect_str(o, "country", NULL);
	expect_str(o, "country_code", "US");
	expect_str(o, "phone", NULL);
	json_decref(o);

	/* names, not codes: a region in words, a lower-case or long country */
	a.region = "England";
	a.country = "United Kingdom";
	o = hub_address_new(&a);
	expect_str(o, "province", "England");
	expect_str(o, "province_code", NULL);
	expect_str(o, "country", "United Kingdom");
	expect_str(o, "country_code", NULL);
	json_decref(o);
	a.region = "TH-10";
	a.country = "gb";
	o = hub_address_new(&a);
	expect_str(o, "province_code", "TH-10");
	expect_str(o, "country", "gb");
	expect_str(o, "country_code", NULL);
	json_decref(o);
	a.region = "ABCDEFGHIJK"; /* 11 characters: too long for a code */
	o = hub_address_new(&a);
	expect_str(o, "province", "ABCDEFGHIJK");
	json_decref(o);

	/* text that is not UTF-8 */
	a.city = "S\xe3o Paulo";
	assert_null(hub_address_new(&a));
}

/* Texts cut inside a character, or not UTF-8 at all, end at the last whole
 * character, so they can go into JSON. */
static void test_utf8_trim(void **state)
{
	char cut[] = "caf\xc3\xa9 ok \xc3"; /* "café ok " + half of an é */
	char latin1[] = "na\xefve";
	char clean[] = "d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac \xf0\x9f\x93\xa6";
	char overlong[] = "a\xc0\xafb";
	struct hub_error err;
	char big[1000];

	assert_int_equal(hub_utf8_trim(cut), 9);
	assert_string_equal(cut, "caf\xc3\xa9 ok ");
	assert_int_equal(hub_utf8_trim(latin1), 2);
	assert_int_equal(hub_utf8_trim(clean), strlen("d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac \xf0\x9f\x93\xa6"));
	assert_int_equal(hub_utf8_trim(overlong), 1);
	{
		/* A surrogate and an overlong 3-byte form are not UTF-8; a cut
		 * sequence neither; a 4-byte one is. */
		static const unsigned char sur[] = "\xed\xa0\x80", over3[] = "\xe0\x80\xaf", box[] = "\xf0\x9f\x93\xa6";
		char with_surrogate[] = "ab\xed\xa0\x80";
		assert_int_equal(hub_utf8_sequence(sur, sur + 3), 0);
		assert_int_equal(hub_utf8_sequence(over3, over3 + 3), 0);
		assert_int_equal(hub_utf8_sequence(box, box + 3), 0);
		assert_int_equal(hub_utf8_sequence(box, box + 4), 4);
		assert_int_equal(hub_utf8_trim(with_surrogate), 2);
	}

	/* hub_error_set cuts a long message inside an "é" at its buffer's end. */
	for (size_t i = 0; i + 2 < sizeof(big); i += 2) {
		big[i] = '\xc3';
		big[i + 1] = '\xa9';
	}
	big[sizeof(big) - 1] = '\0';
	big[sizeof(big) - 2] = '\0';
	hub_error_set(&err, "field", "x%s", big);
	assert_true(strlen(err.message) < sizeof(err.message));
	json_t *j = json_string(err.message);
	assert_non_null(j); /* valid UTF-8 */
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_trim),
		cmocka_unit_test(test_str),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_id),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_setters),
		cmocka_unit_test(test_address),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
