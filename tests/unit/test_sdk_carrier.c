/*
 * test_sdk_carrier.c - libhubsdk carrier codes: every spelling marketplaces
 * use for UPS, FedEx, USPS and DHL, the slug for other carriers (matching the
 * shipment schema's ^[a-z0-9_]{1,64}$), and refused inputs.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static void check(const char *name, const char *want)
{
	char buf[65];

	memset(buf, 'x', sizeof(buf));
	if (hub_carrier_code(name, buf, sizeof(buf)) != 0)
		fail_msg("\"%s\" refused", name);
	assert_string_equal(buf, want);
}

static void test_known(void **state)
{
	(void)state;
	check("UPS", "ups");
	check("ups", "ups");
	check("United Parcel Service", "ups");
	check("UPS Ground", "ups");
	check("FedEx", "fedex");
	check("Fedex", "fedex");
	check("Federal Express", "fedex");
	check("FedEx Ground", "fedex");
	check("FedEx Home Delivery", "fedex");
	check("USPS", "usps");
	check("United States Postal Service", "usps");
	check("U.S. Postal Service", "usps");
	check("DHL", "dhl");
	check("DHL Express", "dhl");
	check("DHL eCommerce", "dhl");
	check("  dhl   ", "dhl");
}

static void test_other(void **state)
{
	(void)state;
	check("Royal Mail", "royal_mail");
	check("Canada Post", "canada_post");
	check("La Poste - Colissimo", "la_poste_colissimo");
	check("OnTrac", "ontrac");
	/* Words that only start like a known carrier stay themselves. */
	check("Upsilon Freight", "upsilon_freight");
	check("DHLX", "dhlx");
}

static void test_refused(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(hub_carrier_code("", buf, sizeof(buf)), -1);
	assert_int_equal(hub_carrier_code(" - ", buf, sizeof(buf)), -1);
	assert_int_equal(hub_carrier_code(NULL, buf, sizeof(buf)), -1);
	assert_int_equal(hub_carrier_code("Royal Mail", buf, sizeof(buf)), -1);
	assert_int_equal(hub_carrier_code("UPS", buf, 3), -1);
	assert_int_equal(hub_carrier_code("UPS", buf, 4), 0);
	assert_string_equal(buf, "ups");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known),
		cmocka_unit_test(test_other),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
