/*
 * truth.h - "the store equals the sandbox's truth" for the integration
 * tests that run hubd against hub-sandbox's Shopify shops, shop i
 * (shop-<i>.myshopify.com) polled by the connector "s<i>". One shop is
 * compared by reading the sandbox's truth
 * (/_sandbox/truth/shopify/<shop>/orders) and every page of the hub's
 * /v1/orders (and /v1/shipments) of that connector over HTTP, then matching
 * order by order on the external id: each truth order must be stored once,
 * with the fields the caller asks for equal, and the hub must hold no more
 * orders (or shipments) than the truth has. The first difference is
 * described naming the connector, the order (or fulfillment) and the field,
 * with both values.
 *
 * Blocking HTTP on loopback (tests/harness/http.h); single test thread.
 * Needs libhubsdk (time and money parsing, URL escaping).
 */
#ifndef HUB_TEST_TRUTH_H
#define HUB_TEST_TRUTH_H

#include <stddef.h>

/* What is compared besides presence and counts. */
enum truth_fields {
	TRUTH_UPDATED_AT = 1u << 0, /* updated_at, as an instant */
	TRUTH_TOTAL = 1u << 1,      /* total_price against total, in minor units */
	TRUTH_STATUS = 1u << 2,     /* currency, financial_status, cancelled or not */
	TRUTH_SHIPMENTS = 1u << 3,  /* each fulfillment stored once as a shipment of its
	                               order with the same tracking numbers; no others */
};

struct truth_check {
	int sandbox_port;   /* hub-sandbox on 127.0.0.1 */
	int hub_port;       /* hubd's API on 127.0.0.1 */
	const char *token;  /* hubd's admin token; borrowed, read at each compare */
	unsigned fields;    /* enum truth_fields */
	int shops;          /* truth_converge checks shops 1..shops */
	int poll_ms;        /* truth_converge's wait between rounds (0: 300) */
	int resume;         /* 1: each round of truth_converge starts at the shop that
	                       failed last (cheap re-checks for many shops); 0: at 1 */
};

struct json_t;

/*
 * Every page of hubd's /v1/<what> ("orders", "shipments") for the
 * connector "s<shop>": a new reference (array) the caller decrefs, or NULL
 * when a page got no 200 answer.
 */
struct json_t *truth_hub_list(const struct truth_check *tc, const char *what, int shop);

/*
 * Compares shop i's truth with what hubd stored. Returns the number of
 * differences (0: equal); the first is described in why (NUL-terminated,
 * truncated to size). Any thread, one at a time.
 */
int truth_compare_shop(const struct truth_check *tc, int shop, char *why, size_t size);

/*
 * Waits (bounded by timeout_s) until every shop equals its truth, comparing
 * rounds poll_ms apart. Returns 0, or -1 with why set to "store differs
 * from the sandbox's truth after N s: <the first difference>".
 */
int truth_converge(const struct truth_check *tc, int timeout_s, char *why, size_t size);

#endif
