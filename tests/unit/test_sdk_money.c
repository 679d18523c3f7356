/*
 * test_sdk_money.c - libhubsdk money: currency exponents, decimal strings to
 * minor units with half-away-from-zero rounding, JSON numbers (WooCommerce
 * prices) and every refused input naming its field.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static void test_exponent(void **state)
{
	(void)state;
	assert_int_equal(hub_currency_exponent("USD"), 2);
	assert_int_equal(hub_currency_exponent("EUR"), 2);
	assert_int_equal(hub_currency_exponent("JPY"), 0);
	assert_int_equal(hub_currency_exponent("KRW"), 0);
	assert_int_equal(hub_currency_exponent("BHD"), 3);
	assert_int_equal(hub_currency_exponent("KWD"), 3);
	assert_int_equal(hub_currency_exponent("TND"), 3);
	assert_int_equal(hub_currency_exponent("XYZ"), 2);
	assert_int_equal(hub_currency_exponent("usd"), -1);
	assert_int_equal(hub_currency_exponent("US"), -1);
	assert_int_equal(hub_currency_exponent("USDX"), -1);
	assert_int_equal(hub_currency_exponent(""), -1);
	assert_int_equal(hub_currency_exponent(NULL), -1);
}

static int64_t parse_ok(const char *text, const char *cur)
{
	struct hub_error err = { 0 };
	int64_t v = -777;

	assert_int_equal(hub_money_parse(text, cur, &v, "total", &err), 0);
	return v;
}

static void test_parse(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("12.34", "USD"), 1234);
	assert_int_equal(parse_ok("-0.5", "USD"), -50);
	assert_int_equal(parse_ok("1000", "USD"), 100000);
	assert_int_equal(parse_ok("  7.125 ", "USD"), 713);
	assert_int_equal(parse_ok("0.125", "USD"), 13);
	assert_int_equal(parse_ok("-0.125", "USD"), -13);
	assert_int_equal(parse_ok("0.1249999", "USD"), 12);
	assert_int_equal(parse_ok("0.005", "USD"), 1);
	assert_int_equal(parse_ok("0.004", "USD"), 0);
	assert_int_equal(parse_ok("+3", "USD"), 300);
	assert_int_equal(parse_ok(".5", "USD"), 50);
	assert_int_equal(parse_ok("0", "USD"), 0);
	assert_int_equal(parse_ok("-0.00", "USD"), 0);
	assert_int_equal(parse_ok("1500", "JPY"), 1500);
	assert_int_equal(parse_ok("1500.5", "JPY"), 1501);
	assert_int_equal(parse_ok("1500.49", "JPY"), 1500);
	assert_int_equal(parse_ok("1.2345", "KWD"), 1235);
	assert_int_equal(parse_ok("1.2", "BHD"), 1200);
	assert_int_equal(parse_ok("92233720368547758.07", "USD"), INT64_MAX);
	assert_int_equal(parse_ok("-92233720368547758.08", "USD"), INT64_MIN);
	assert_int_equal(parse_ok("9223372036854775807", "JPY"), INT64_MAX);
}

static void expect_refused(const char *text, const char *cur, const char *needle)
{
	struct hub_error err = { 0 };
	int64_t v = 42;

	assert_int_equal(hub_money_parse(text, cur, &v, "lines[1].price", &err), -1);
	assert_string_equal(err.field, "lines[1].price");
	assert_non_null(strstr(err.message, needle));
	assert_int_equal(v, 42);
}

static void test_refused(void **state)
{
	(void)state;
	expect_refused("", "USD", "empty");
	expect_refused("   ", "USD", "empty");
	expect_refused(NULL, "USD", "missing");
	expect_refused("1e5", "USD", "not a decimal");
	expect_refused("1,000.00", "USD", "not a decimal");
	expect_refused("1.2.3", "USD", "not a decimal");
	expect_refused(".", "USD", "not a decimal");
	expect_refused("-", "USD", "not a decimal");
	expect_refused("12 34", "USD", "not a decimal");
	expect_refused("$12", "USD", "not a decimal");
	expect_refused("0x10", "USD", "not a decimal");
	expect_refused("NaN", "USD", "not a decimal");
	expect_refused("92233720368547758.08", "USD", "too large");
	expect_refused("-92233720368547758.09", "USD", "too large");
	expect_refused("99999999999999999999", "JPY", "too large");
	/* Rounding up past the limit overflows too. */
	expect_refused("92233720368547758.075", "USD", "too large");
	expect_refused("12.34", "usd", "ISO 4217");
	expect_refused("12.34", NULL, "ISO 4217");
	/* err may be NULL. */
	{
		int64_t v = 0;

		assert_int_equal(hub_money_parse("x", "USD", &v, "f", NULL), -1);
	}
}

static void test_from_json(void **state)
{
	static const struct {
		double d;
		const char *cur;
		int64_t want;
	} reals[] = {
		{ 19.99, "USD", 1999 }, { 0.1, "USD", 10 }, { 1.005, "USD", 101 },
		{ 2.675, "USD", 268 }, { 0.125, "USD", 13 }, { -19.99, "USD", -1999 },
		{ 1e-7, "USD", 0 }, { 5e-3, "USD", 1 }, { 1e6, "USD", 100000000 },
		{ 1234.5, "JPY", 1235 }, { 12.3456, "KWD", 12346 }, { 0.0, "USD", 0 },
		{ 33.333333333333336, "USD", 3333 }, { 1e15, "USD", 100000000000000000 },
	};
	struct hub_error err = { 0 };
	int64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		json_t *j = json_real(reals[i].d);

		v = -777;
		assert_int_equal(hub_money_from_json(j, reals[i].cur, &v, "price", &err), 0);
		assert_int_equal(v, reals[i].want);
		json_decref(j);
	}

	json_t *s = json_string("12.34"), *n = json_integer(25), *big = json_integer(INT64_MAX / 10);
	assert_int_equal(hub_money_from_json(s, "USD", &v, "price", &err), 0);
	assert_int_equal(v, 1234);
	assert_int_equal(hub_money_from_json(n, "USD", &v, "price", &err), 0);
	assert_int_equal(v, 2500);
	assert_int_equal(hub_money_from_json(n, "JPY", &v, "price", &err), 0);
	assert_int_equal(v, 25);
	assert_int_equal(hub_money_from_json(n, "KWD", &v, "price", &err), 0);
	assert_int_equal(v, 25000);
	assert_int_equal(hub_money_from_json(big, "USD", &v, "price", &err), -1);
	assert_string_equal(err.field, "price");
	assert_non_null(strstr(err.message, "too large"));
	json_decref(s);
	json_decref(n);
	json_decref(big);

	json_t *bads[] = { json_true(), json_null(), json_object(), json_array(),
			   json_string("abc"), json_real(1e300) };
	const char *why[] = { "got boolean", "got null", "got object", "got array",
			      "not a decimal", "too large" };
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		memset(&err, 0, sizeof(err));
		v = 42;
		assert_int_equal(hub_money_from_json(bads[i], "USD", &v, "order.total", &err), -1);
		assert_string_equal(err.field, "order.total");
		assert_non_null(strstr(err.message, why[i]));
		assert_int_equal(v, 42);
		json_decref(bads[i]);
	}
	assert_int_equal(hub_money_from_json(NULL, "USD", &v, "order.total", &err), -1);
	assert_string_equal(err.field, "order.total");
}

static void test_error_set(void **state)
{
	struct hub_error err;
	char longfield[400];

	(void)state;
	memset(&err, 'x', sizeof(err));
	memset(longfield, 'f', sizeof(longfield) - 1);
	longfield[sizeof(longfield) - 1] = '\0';
	assert_int_equal(hub_error_set(&err, longfield, "%s %d", longfield, 5), -1);
	assert_int_equal(strlen(err.field), sizeof(err.field) - 1);
	assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
	assert_int_equal(hub_error_set(&err, NULL, "plain"), -1);
	assert_string_equal(err.field, "");
	assert_string_equal(err.message, "plain");
	assert_int_equal(hub_error_set(NULL, "f", "m"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exponent),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_from_json),
		cmocka_unit_test(test_error_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
