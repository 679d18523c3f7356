/*
 * carrier.c - one code per carrier however a marketplace spells it.
 *
 * Shipments from Shopify say "UPS" or "United Parcel Service", WooCommerce
 * plugins "FedEx Ground", Amazon "USPS"; the store matches a shipment to the
 * carrier connector that tracks it by code, so every spelling of the four
 * carriers with a connector maps to "ups", "fedex", "usps" or "dhl". Any other
 * name is slugged (lower-case, each run of characters outside [a-z0-9]
 * becomes one '_'), which is what the shipment schema's carrier pattern
 * accepts.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <hub/sdk.h>

/* Slugged spellings; an entry matches the whole slug or its first words. */
static const struct {
	const char *prefix;
	const char *code;
} carriers[] = {
	{ "ups", "ups" },
	{ "united_parcel_service", "ups" },
	{ "fedex", "fedex" },
	{ "fed_ex", "fedex" },
	{ "federal_express", "fedex" },
	{ "usps", "usps" },
	{ "united_states_postal_service", "usps" },
	{ "us_postal_service", "usps" },
	{ "u_s_postal_service", "usps" },
	{ "dhl", "dhl" },
};

int hub_carrier_code(const char *name, char *buf, size_t size)
{
	char slug[128];
	size_t n = 0;

	if (name == NULL || buf == NULL || size == 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		unsigned char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (n + 1 >= sizeof(slug))
				return -1;
			slug[n++] = (char)c;
		} else if (n > 0 && slug[n - 1] != '_') {
			if (n + 1 >= sizeof(slug))
				return -1;
			slug[n++] = '_';
		}
	}
	while (n > 0 && slug[n - 1] == '_')
		n--;
	slug[n] = '\0';
	if (n == 0)
		return -1;
	for (size_t i = 0; i < sizeof(carriers) / sizeof(carriers[0]); i++) {
		size_t len = strlen(carriers[i].prefix);

		if (strncmp(slug, carriers[i].prefix, len) == 0 &&
		    (slug[len] == '\0' || slug[len] == '_')) {
			snprintf(slug, sizeof(slug), "%s", carriers[i].code);
			n = strlen(slug);
			break;
		}
	}
	if (n >= size)
		return -1;
	memcpy(buf, slug, n + 1);
	return 0;
}
