/*
 * hookbody.h - Shopify-style order webhooks for the benchmarks: a body of a
 * chosen size built from the reference order (fixtures/shopify), a distinct
 * order id per index, and the X-Shopify-* headers with the HMAC that hubd's
 * Shopify plugin checks. Used by hookgen (requests for wrk) and hubpace (a
 * paced client that signs as it goes). Single-threaded.
 */
#ifndef HUB_BENCH_HOOKBODY_H
#define HUB_BENCH_HOOKBODY_H

#include <stddef.h>

#include <jansson.h>

struct hookbody {
	json_t *order;    /* the trimmed reference order (owned) */
	size_t target;    /* wanted body size in bytes */
	long long base;   /* first order id */
	char run[24];     /* run tag, part of every webhook id */
};

/*
 * Reads <fixtures>/shopify/python_api_test_fixtures_order.json and keeps
 * what a 3 KB order needs (two line items, no fulfillments or customer).
 * `target` is the body size aimed at (the note field pads it). `run` tags
 * the webhook ids so two runs never share one. Returns 0, or -1 with a
 * message in err.
 */
int hookbody_init(struct hookbody *hb, const char *fixtures, size_t target, const char *run, char *err,
		  size_t size);

/* Frees what hb holds (not hb). */
void hookbody_release(struct hookbody *hb);

/*
 * The body of delivery `index`: order id base+index, order number and name
 * derived from it. Returns a malloc'd NUL-terminated compact JSON text with
 * its length in *len (caller frees), or NULL when out of memory.
 */
char *hookbody_make(const struct hookbody *hb, long long index, size_t *len);

/* The webhook id of delivery `index` ("bench-<run>-<index>") into buf. */
void hookbody_webhook_id(const struct hookbody *hb, long long index, char *buf, size_t size);

/* The base64 HMAC-SHA256 of body under secret into buf (>= 45 bytes).
 * Returns 0 or -1. */
int hookbody_sign(const char *secret, const char *body, size_t len, char *buf, size_t size);

#endif
