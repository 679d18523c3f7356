/*
 * truth.c - compares what hubd stored with hub-sandbox's truth, shop by
 * shop (see truth.h). Everything is read over HTTP each time, so a
 * comparison repeated while hubd catches up sees its progress.
 */
#include "config.h"
#include "truth.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include <hub/sdk.h>

#include "http.h"

/* Pages of a hub list read at the most (500 items each). */
#define MAX_PAGES 100

/* The string value, "" for anything else (a missing field compares as ""). */
static const char *str(const json_t *v)
{
	const char *s = json_string_value(v);

	return s != NULL ? s : "";
}

/* A time field as ms since the epoch; 0 when it is not a string. */
static int64_t time_of(const json_t *v)
{
	int64_t ms = 0;

	if (json_is_string(v))
		hub_time_parse(json_string_value(v), 0, &ms, "t", NULL);
	return ms;
}

/* Counts one difference; the first one is described in why. */
static void differ(int *diffs, char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void differ(int *diffs, char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if ((*diffs)++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* The element of list whose "external_id" is id, or NULL. Borrowed. */
static json_t *by_external_id(const json_t *list, const char *id)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		if (strcmp(str(json_object_get(v, "external_id")), id) == 0)
			return v;
	}
	return NULL;
}

json_t *truth_hub_list(const struct truth_check *tc, const char *what, int shop)
{
	json_t *all = json_array();
	char url[512], after[256] = "";

	for (int page = 0; page < MAX_PAGES; page++) {
		json_t *res;
		const char *next;
		char *esc;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/%s?connector=s%d&limit=500%s%s", tc->hub_port,
			 what, shop, after[0] ? "&after=" : "", after);
		res = th_get_json(url, tc->token);
		if (res == NULL) {
			json_decref(all);
			return NULL;
		}
		json_array_extend(all, json_object_get(res, what));
		next = json_string_value(json_object_get(res, "next"));
		if (next == NULL) {
			json_decref(res);
			break;
		}
		esc = hub_url_escape(next);
		snprintf(after, sizeof(after), "%s", esc != NULL ? esc : "");
		free(esc);
		json_decref(res);
	}
	return all;
}

/* Compares one truth order's own fields with the stored one (found). */
static void compare_order(const struct truth_check *tc, int shop, const char *id, const json_t *o,
			  const json_t *found, int *diffs, char *why, size_t size)
{
	const char *cur = str(json_object_get(o, "currency"));
	const json_t *cancelled_at = json_object_get(o, "cancelled_at");
	int64_t total = 0;

	if (tc->fields & TRUTH_TOTAL)
		hub_money_parse(json_string_value(json_object_get(o, "total_price")), cur, &total, "total", NULL);
	if ((tc->fields & TRUTH_UPDATED_AT) &&
	    time_of(json_object_get(o, "updated_at")) != time_of(json_object_get(found, "updated_at")))
		differ(diffs, why, size, "s%d: order %s differs in updated_at: truth %s, hub %s", shop, id,
		       str(json_object_get(o, "updated_at")), str(json_object_get(found, "updated_at")));
	else if ((tc->fields & TRUTH_TOTAL) && total != json_integer_value(json_object_get(found, "total")))
		differ(diffs, why, size, "s%d: order %s differs in total: truth %s %s (%lld), hub %lld", shop, id,
		       str(json_object_get(o, "total_price")), cur, (long long)total,
		       (long long)json_integer_value(json_object_get(found, "total")));
	else if ((tc->fields & TRUTH_STATUS) && strcmp(cur, str(json_object_get(found, "currency"))) != 0)
		differ(diffs, why, size, "s%d: order %s differs in currency: truth %s, hub %s", shop, id, cur,
		       str(json_object_get(found, "currency")));
	else if ((tc->fields & TRUTH_STATUS) && strcmp(str(json_object_get(o, "financial_status")),
						       str(json_object_get(found, "financial_status"))) != 0)
		differ(diffs, why, size, "s%d: order %s differs in financial_status: truth %s, hub %s", shop, id,
		       str(json_object_get(o, "financial_status")), str(json_object_get(found, "financial_status")));
	else if ((tc->fields & TRUTH_STATUS) &&
		 json_is_null(cancelled_at) != (strcmp(str(json_object_get(found, "status")), "cancelled") != 0))
		differ(diffs, why, size, "s%d: order %s differs in status: truth cancelled_at %s, hub status %s", shop,
		       id, json_is_null(cancelled_at) ? "null" : str(cancelled_at),
		       str(json_object_get(found, "status")));
}

/* Compares the fulfillments of truth order o (id) with the stored
 * shipments; returns how many fulfillments it has. */
static int compare_fulfillments(int shop, const char *id, const json_t *o, const json_t *ships, int *diffs,
				char *why, size_t size)
{
	size_t k;
	json_t *f;
	int n = 0;

	json_array_foreach(json_object_get(o, "fulfillments"), k, f) {
		char fid[32];
		json_t *hs;

		n++;
		snprintf(fid, sizeof(fid), "%lld", (long long)json_integer_value(json_object_get(f, "id")));
		hs = by_external_id(ships, fid);
		if (hs == NULL) {
			differ(diffs, why, size, "s%d: fulfillment %s of order %s missing", shop, fid, id);
		} else if (strcmp(str(json_object_get(hs, "order_external_id")), id) != 0) {
			differ(diffs, why, size, "s%d: fulfillment %s of order %s differs in order_external_id: hub %s",
			       shop, fid, id, str(json_object_get(hs, "order_external_id")));
		} else if (!json_equal(json_object_get(hs, "tracking_numbers"), json_object_get(f, "tracking_numbers"))) {
			char *t = json_dumps(json_object_get(f, "tracking_numbers"), JSON_COMPACT | JSON_ENCODE_ANY);
			char *h = json_dumps(json_object_get(hs, "tracking_numbers"), JSON_COMPACT | JSON_ENCODE_ANY);
			differ(diffs, why, size, "s%d: fulfillment %s of order %s differs in tracking_numbers: truth %s, "
			       "hub %s", shop, fid, id, t != NULL ? t : "(none)", h != NULL ? h : "(none)");
			free(t);
			free(h);
		}
	}
	return n;
}

int truth_compare_shop(const struct truth_check *tc, int shop, char *why, size_t size)
{
	char url[256], id[32];
	json_t *truth, *torders, *orders = NULL, *ships = NULL, *o;
	size_t k;
	int diffs = 0, nship = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/truth/shopify/shop-%d.myshopify.com/orders",
		 tc->sandbox_port, shop);
	truth = th_get_json(url, NULL);
	if (truth == NULL) {
		differ(&diffs, why, size, "no truth for shop %d", shop);
		goto out;
	}
	orders = truth_hub_list(tc, "orders", shop);
	if ((tc->fields & TRUTH_SHIPMENTS) && orders != NULL)
		ships = truth_hub_list(tc, "shipments", shop);
	if (orders == NULL || ((tc->fields & TRUTH_SHIPMENTS) && ships == NULL)) {
		differ(&diffs, why, size, "s%d: no answer from hubd for its %s", shop,
		       orders == NULL ? "orders" : "shipments");
		goto out;
	}
	torders = json_object_get(truth, "orders");
	json_array_foreach(torders, k, o) {
		const json_t *found;

		snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
		found = by_external_id(orders, id);
		if (found == NULL) {
			differ(&diffs, why, size, "s%d: order %s missing", shop, id);
			continue;
		}
		compare_order(tc, shop, id, o, found, &diffs, why, size);
		if (tc->fields & TRUTH_SHIPMENTS)
			nship += compare_fulfillments(shop, id, o, ships, &diffs, why, size);
	}
	if (json_array_size(orders) != json_array_size(torders))
		differ(&diffs, why, size, "s%d: hub has %zu orders, truth %zu", shop, json_array_size(orders),
		       json_array_size(torders));
	if ((tc->fields & TRUTH_SHIPMENTS) && (int)json_array_size(ships) != nship)
		differ(&diffs, why, size, "s%d: hub has %zu shipments, truth %d", shop, json_array_size(ships), nship);
out:
	json_decref(truth);
	json_decref(orders);
	json_decref(ships);
	return diffs;
}

int truth_converge(const struct truth_check *tc, int timeout_s, char *why, size_t size)
{
	time_t deadline = time(NULL) + timeout_s;
	char first_diff[512] = "";
	int first = 1;

	for (;;) {
		int bad = 0;

		for (int i = tc->resume ? first : 1; i <= tc->shops; i++) {
			if (truth_compare_shop(tc, i, first_diff, sizeof(first_diff)) != 0) {
				bad = 1;
				first = i;
				break;
			}
		}
		if (!bad)
			return 0;
		if (time(NULL) >= deadline) {
			snprintf(why, size, "store differs from the sandbox's truth after %d s: %s", timeout_s,
				 first_diff);
			return -1;
		}
		usleep((useconds_t)(tc->poll_ms > 0 ? tc->poll_ms : 300) * 1000);
	}
}
