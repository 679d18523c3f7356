/*
 * address.c - canonical postal addresses for order records.
 *
 * Marketplaces name the parts of an address differently (Amazon's
 * stateOrRegion and countryCode, WooCommerce's state and country) and put
 * codes and names in the same field: WooCommerce's "state" is "CA" for
 * countries it knows the states of and free text ("England") otherwise.
 * The canonical address keeps codes and names apart (province_code and
 * province, country_code and country); hub_address_new() makes that split
 * the same way for every connector.
 */
#include "config.h"

#include <string.h>

#include <hub/sdk.h>

/* Whether s looks like a subdivision code ("CA", "JP13", "TH-10") rather
 * than a free-text region ("England"). */
static int is_region_code(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 10)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return 1;
}

/* Whether s is shaped like an ISO 3166-1 alpha-2 code. */
static int is_country_code(const char *s)
{
	return strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

/*
 * hub_address_new - a canonical address object from its parts. See sdk.h.
 */
json_t *hub_address_new(const struct hub_address *a)
{
	const char *region = a->region, *country = a->country;
	int region_code = region != NULL && is_region_code(region);
	int country_code = country != NULL && is_country_code(country);
	json_t *out = json_object();

	if (out == NULL ||
	    hub_json_set_str(out, "name", a->name) < 0 ||
	    hub_json_set_str(out, "first_name", a->first_name) < 0 ||
	    hub_json_set_str(out, "last_name", a->last_name) < 0 ||
	    hub_json_set_str(out, "company", a->company) < 0 ||
	    hub_json_set_str(out, "address1", a->address1) < 0 ||
	    hub_json_set_str(out, "address2", a->address2) < 0 ||
	    hub_json_set_str(out, "city", a->city) < 0 ||
	    hub_json_set_str(out, "province", region_code ? NULL : region) < 0 ||
	    hub_json_set_str(out, "province_code", region_code ? region : NULL) < 0 ||
	    hub_json_set_str(out, "zip", a->zip) < 0 ||
	    hub_json_set_str(out, "country", country_code ? NULL : country) < 0 ||
	    hub_json_set_str(out, "country_code", country_code ? country : NULL) < 0 ||
	    hub_json_set_str(out, "phone", a->phone) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}
