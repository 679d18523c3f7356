/*
 * config.c - hub-sandbox's settings: defaults, the JSON file given with
 * --config, and fault settings (which can also be changed at run time
 * through POST /_sandbox/faults). Unknown keys are refused so that a typo
 * in a test's configuration is an error rather than a silently ignored
 * setting. docs/sandbox.md lists every key.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

static const char *const fault_names[SB_FAULT_KINDS] = {
	"none", "rate_429", "rate_5xx", "drop", "timeout", "truncate", "malformed",
	"expire_tokens",
};

const char *sb_fault_name(int kind)
{
	return kind >= 0 && kind < SB_FAULT_KINDS ? fault_names[kind] : "?";
}

void sb_config_defaults(struct sb_config *c)
{
	memset(c, 0, sizeof(*c));
	c->seed = 1;
	c->orders = 50;
	c->shops[0] = c->shops[1] = c->shops[2] = 3;
	c->speed = 1.0;
	/* the simulated clock starts at the real time by default, so that a hub
	 * computing "now minus a window" on its own clock meets the same now */
	c->start_ms = (int64_t)time(NULL) * 1000;
	c->history_days = 30;
	c->order_interval_s = 120;
	c->auto_fulfill[0] = c->auto_fulfill[1] = c->auto_fulfill[2] = 0.9;
	c->transit_factor = 1.0;
	snprintf(c->api_version, sizeof(c->api_version), "2026-07");
	c->shopify_bucket = 40;
	c->shopify_leak = 2;
	c->amz_search_rate = 0.0056;
	c->amz_search_burst = 20;
	c->amz_get_rate = 0.5;
	c->amz_get_burst = 30;
	c->amz_confirm_rate = 2;
	c->amz_confirm_burst = 10;
	c->amz_token_ttl_s = 3600;
	for (int i = 0; i < SB_CARRIER_COUNT; i++) {
		c->carrier_rate[i] = 50;
		c->carrier_burst[i] = 250;
	}
	c->carrier_token_ttl_s[SB_CARRIER_UPS] = 14399;
	c->carrier_token_ttl_s[SB_CARRIER_FEDEX] = 3599;
	c->carrier_token_ttl_s[SB_CARRIER_USPS] = 28799;
	c->carrier_token_ttl_s[SB_CARRIER_DHL] = 0;
	c->hook_retries = 8;
	c->hook_retry_ms = 1000;
	c->hook_reorder_ms = 1500;
	c->hook_timeout_s = 10;
	c->hook_conns = 4;
	for (int i = 0; i < SB_API_COUNT; i++)
		sb_faults_reset(&c->faults[i]);
}

void sb_faults_reset(struct sb_faults *f)
{
	memset(f, 0, sizeof(*f));
	f->timeout_ms = 30000;
	f->retry_after_s = 30;
}

static int fail(char *err, size_t errsz, const char *what, const char *key)
{
	snprintf(err, errsz, "%s: %s", key, what);
	return -1;
}

static int get_num(const json_t *v, double *out, const char *key, char *err, size_t errsz)
{
	if (!json_is_number(v))
		return fail(err, errsz, "must be a number", key);
	*out = json_number_value(v);
	return 0;
}

static int get_nonneg(const json_t *v, double *out, const char *key, char *err, size_t errsz)
{
	if (get_num(v, out, key, err, errsz))
		return -1;
	if (*out < 0)
		return fail(err, errsz, "must not be negative", key);
	return 0;
}

static int get_int(const json_t *v, int *out, int lo, int hi, const char *key, char *err,
		   size_t errsz)
{
	if (!json_is_integer(v))
		return fail(err, errsz, "must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi) {
		snprintf(err, errsz, "%s: must be between %d and %d", key, lo, hi);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int get_share(const json_t *v, double *out, const char *key, char *err, size_t errsz)
{
	if (get_num(v, out, key, err, errsz))
		return -1;
	if (*out < 0 || *out > 1)
		return fail(err, errsz, "must be a share between 0 and 1", key);
	return 0;
}

static int get_str(const json_t *v, char *out, size_t size, const char *key, char *err,
		   size_t errsz)
{
	if (!json_is_string(v))
		return fail(err, errsz, "must be a string", key);
	if (json_string_length(v) >= size)
		return fail(err, errsz, "is too long", key);
	snprintf(out, size, "%s", json_string_value(v));
	return 0;
}

static int apply_faults_one(struct sb_faults *f, const json_t *j, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v) {
		double d;
		if (strcmp(k, "api") == 0 || strcmp(k, "reset") == 0)
			continue;
		if (strcmp(k, "expire_tokens") == 0) {
			/* true: a run-time action handled by the server; a number:
			 * the share of requests refused as if the token expired */
			if (json_is_boolean(v))
				continue;
			if (get_share(v, &f->expire, k, err, errsz))
				return -1;
		} else if (strcmp(k, "retry_after_s") == 0) {
			if (get_int(v, &f->retry_after_s, 0, 3600, k, err, errsz))
				return -1;
		} else if (strcmp(k, "slow_ms") == 0 || strcmp(k, "timeout_ms") == 0) {
			int x;
			if (get_int(v, &x, 0, 600000, k, err, errsz))
				return -1;
			if (k[0] == 's') {
				f->slow_ms = x;
				if (f->slow == 0)
					f->slow = 1;
			} else {
				f->timeout_ms = x;
			}
		} else {
			double *dst = NULL;
			if (strcmp(k, "rate_429") == 0)
				dst = &f->rate_429;
			else if (strcmp(k, "rate_5xx") == 0)
				dst = &f->rate_5xx;
			else if (strcmp(k, "drop") == 0)
				dst = &f->drop;
			else if (strcmp(k, "timeout") == 0)
				dst = &f->timeout;
			else if (strcmp(k, "truncate") == 0)
				dst = &f->truncate;
			else if (strcmp(k, "malformed") == 0)
				dst = &f->malformed;
			else if (strcmp(k, "slow") == 0)
				dst = &f->slow;
			if (!dst)
				return fail(err, errsz, "unknown fault setting", k);
			if (get_share(v, &d, k, err, errsz))
				return -1;
			*dst = d;
		}
	}
	double sum = f->rate_429 + f->rate_5xx + f->drop + f->timeout + f->truncate +
		     f->malformed + f->expire;
	if (sum > 1.0 + 1e-9)
		return fail(err, errsz, "the fault shares add up to more than 1", "faults");
	return 0;
}

int sb_faults_apply(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	if (!json_is_object(j))
		return fail(err, errsz, "must be an object", "faults");
	const json_t *api = json_object_get(j, "api");
	const char *name = json_is_string(api) ? json_string_value(api) : "*";
	int lo = 0, hi = SB_API_COUNT;
	if (strcmp(name, "*") != 0) {
		int a = sb_api_parse(name);
		if (a < 0)
			return fail(err, errsz, "unknown api (shopify, woocommerce, amazon, ups, fedex, usps, dhl or *)",
				    "api");
		lo = a;
		hi = a + 1;
	}
	int reset = json_is_true(json_object_get(j, "reset"));
	for (int a = lo; a < hi; a++) {
		struct sb_faults f = c->faults[a];
		if (reset)
			sb_faults_reset(&f);
		if (apply_faults_one(&f, j, err, errsz))
			return -1;
		c->faults[a] = f;
	}
	return 0;
}

json_t *sb_faults_json(const struct sb_config *c)
{
	json_t *o = json_object();
	for (int a = 0; a < SB_API_COUNT; a++) {
		const struct sb_faults *f = &c->faults[a];
		json_object_set_new(
			o, sb_api_name(a),
			json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:i,s:i}", "rate_429",
				  f->rate_429, "rate_5xx", f->rate_5xx, "drop", f->drop, "timeout",
				  f->timeout, "truncate", f->truncate, "malformed", f->malformed,
				  "expire_tokens", f->expire, "slow", f->slow, "slow_ms", f->slow_ms,
				  "timeout_ms", f->timeout_ms, "retry_after_s", f->retry_after_s));
	}
	return o;
}

static int apply_share3(double out[3], const json_t *v, const char *key, char *err,
			size_t errsz)
{
	if (json_is_number(v)) {
		double d;
		if (get_share(v, &d, key, err, errsz))
			return -1;
		out[0] = out[1] = out[2] = d;
		return 0;
	}
	if (!json_is_object(v))
		return fail(err, errsz, "must be a share or an object by api", key);
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)v, k, x) {
		int a = sb_api_parse(k);
		if (a < 0 || a > SB_AMAZON)
			return fail(err, errsz, "unknown marketplace api", k);
		if (get_share(x, &out[a], k, err, errsz))
			return -1;
	}
	return 0;
}

static int apply_shopify(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	if (!json_is_object(j))
		return fail(err, errsz, "must be an object", "shopify");
	json_object_foreach((json_t *)j, k, v) {
		if (strcmp(k, "api_version") == 0) {
			if (get_str(v, c->api_version, sizeof(c->api_version), k, err, errsz))
				return -1;
		} else if (strcmp(k, "bucket_size") == 0) {
			if (get_nonneg(v, &c->shopify_bucket, k, err, errsz))
				return -1;
		} else if (strcmp(k, "leak_rate") == 0) {
			if (get_nonneg(v, &c->shopify_leak, k, err, errsz))
				return -1;
		} else {
			return fail(err, errsz, "unknown shopify setting", k);
		}
	}
	return 0;
}

static int apply_amazon(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	if (!json_is_object(j))
		return fail(err, errsz, "must be an object", "amazon");
	json_object_foreach((json_t *)j, k, v) {
		double *dst = NULL;
		if (strcmp(k, "search_orders_rate") == 0)
			dst = &c->amz_search_rate;
		else if (strcmp(k, "search_orders_burst") == 0)
			dst = &c->amz_search_burst;
		else if (strcmp(k, "get_order_rate") == 0)
			dst = &c->amz_get_rate;
		else if (strcmp(k, "get_order_burst") == 0)
			dst = &c->amz_get_burst;
		else if (strcmp(k, "confirm_shipment_rate") == 0)
			dst = &c->amz_confirm_rate;
		else if (strcmp(k, "confirm_shipment_burst") == 0)
			dst = &c->amz_confirm_burst;
		if (dst) {
			if (get_nonneg(v, dst, k, err, errsz))
				return -1;
		} else if (strcmp(k, "token_ttl_s") == 0) {
			if (get_int(v, &c->amz_token_ttl_s, 1, 86400 * 365, k, err, errsz))
				return -1;
		} else {
			return fail(err, errsz, "unknown amazon setting", k);
		}
	}
	return 0;
}

static int apply_carriers(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	const char *name;
	json_t *cj;
	if (!json_is_object(j))
		return fail(err, errsz, "must be an object", "carriers");
	json_object_foreach((json_t *)j, name, cj) {
		int a = sb_api_parse(name);
		if (a < SB_UPS || !json_is_object(cj))
			return fail(err, errsz, "expected ups, fedex, usps or dhl with an object", name);
		int ci = a - SB_UPS;
		const char *k;
		json_t *v;
		json_object_foreach(cj, k, v) {
			if (strcmp(k, "rate") == 0) {
				if (get_nonneg(v, &c->carrier_rate[ci], k, err, errsz))
					return -1;
			} else if (strcmp(k, "burst") == 0) {
				if (get_nonneg(v, &c->carrier_burst[ci], k, err, errsz))
					return -1;
			} else if (strcmp(k, "token_ttl_s") == 0) {
				if (get_int(v, &c->carrier_token_ttl_s[ci], 0, 86400 * 365, k, err,
					    errsz))
					return -1;
			} else {
				return fail(err, errsz, "unknown carrier setting", k);
			}
		}
	}
	return 0;
}

static int apply_webhooks(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	if (!json_is_object(j))
		return fail(err, errsz, "must be an object", "webhooks");
	json_object_foreach((json_t *)j, k, v) {
		int a = sb_api_parse(k);
		if (a == SB_SHOPIFY || a == SB_WOO) {
			if (get_str(v, c->hook_url[a], sizeof(c->hook_url[a]), k, err, errsz))
				return -1;
		} else if (strcmp(k, "duplicate") == 0) {
			if (get_share(v, &c->hook_duplicate, k, err, errsz))
				return -1;
		} else if (strcmp(k, "out_of_order") == 0) {
			if (get_share(v, &c->hook_out_of_order, k, err, errsz))
				return -1;
		} else if (strcmp(k, "retries") == 0) {
			if (get_int(v, &c->hook_retries, 0, 100, k, err, errsz))
				return -1;
		} else if (strcmp(k, "retry_ms") == 0) {
			if (get_int(v, &c->hook_retry_ms, 1, 3600000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "reorder_ms") == 0) {
			if (get_int(v, &c->hook_reorder_ms, 0, 600000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "timeout_s") == 0) {
			if (get_int(v, &c->hook_timeout_s, 1, 600, k, err, errsz))
				return -1;
		} else if (strcmp(k, "connections") == 0) {
			if (get_int(v, &c->hook_conns, 1, 16, k, err, errsz))
				return -1;
		} else {
			return fail(err, errsz, "unknown webhooks setting", k);
		}
	}
	return 0;
}

int sb_config_apply(struct sb_config *c, const json_t *j, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	if (!json_is_object(j))
		return fail(err, errsz, "must be a JSON object", "config");
	json_object_foreach((json_t *)j, k, v) {
		int x;
		if (strcmp(k, "seed") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return fail(err, errsz, "must be a non-negative integer", k);
			c->seed = (uint64_t)json_integer_value(v);
		} else if (strcmp(k, "orders") == 0) {
			if (get_int(v, &c->orders, 0, 1000000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "shops") == 0) {
			if (get_int(v, &x, 0, 100000, k, err, errsz))
				return -1;
			c->shops[0] = c->shops[1] = c->shops[2] = x;
		} else if (strcmp(k, "shopify_shops") == 0) {
			if (get_int(v, &c->shops[SB_SHOPIFY], 0, 100000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "woocommerce_stores") == 0) {
			if (get_int(v, &c->shops[SB_WOO], 0, 100000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "amazon_sellers") == 0) {
			if (get_int(v, &c->shops[SB_AMAZON], 0, 100000, k, err, errsz))
				return -1;
		} else if (strcmp(k, "speed") == 0) {
			if (get_nonneg(v, &c->speed, k, err, errsz))
				return -1;
		} else if (strcmp(k, "start") == 0) {
			if (json_is_string(v) && strcmp(json_string_value(v), "now") == 0)
				c->start_ms = (int64_t)time(NULL) * 1000;
			else if (!json_is_string(v) ||
				 sb_parse_time(json_string_value(v), 0, &c->start_ms))
				return fail(err, errsz, "must be \"now\" or an RFC 3339 time", k);
			c->start_ms = c->start_ms / 1000 * 1000;
		} else if (strcmp(k, "history_days") == 0) {
			if (get_int(v, &c->history_days, 0, 3650, k, err, errsz))
				return -1;
		} else if (strcmp(k, "order_interval_s") == 0) {
			if (get_nonneg(v, &c->order_interval_s, k, err, errsz))
				return -1;
		} else if (strcmp(k, "auto_fulfill") == 0) {
			if (apply_share3(c->auto_fulfill, v, k, err, errsz))
				return -1;
		} else if (strcmp(k, "transit_factor") == 0) {
			if (get_nonneg(v, &c->transit_factor, k, err, errsz))
				return -1;
		} else if (strcmp(k, "limits_clock") == 0) {
			if (!json_is_string(v))
				return fail(err, errsz, "must be \"real\" or \"sim\"", k);
			if (strcmp(json_string_value(v), "sim") == 0)
				c->limits_sim_clock = 1;
			else if (strcmp(json_string_value(v), "real") == 0)
				c->limits_sim_clock = 0;
			else
				return fail(err, errsz, "must be \"real\" or \"sim\"", k);
		} else if (strcmp(k, "public_base") == 0) {
			if (get_str(v, c->public_base, sizeof(c->public_base), k, err, errsz))
				return -1;
		} else if (strcmp(k, "shopify") == 0) {
			if (apply_shopify(c, v, err, errsz))
				return -1;
		} else if (strcmp(k, "amazon") == 0) {
			if (apply_amazon(c, v, err, errsz))
				return -1;
		} else if (strcmp(k, "carriers") == 0) {
			if (apply_carriers(c, v, err, errsz))
				return -1;
		} else if (strcmp(k, "webhooks") == 0) {
			if (apply_webhooks(c, v, err, errsz))
				return -1;
		} else if (strcmp(k, "faults") == 0) {
			if (json_is_array(v)) {
				size_t i;
				json_t *f;
				json_array_foreach(v, i, f)
					if (sb_faults_apply(c, f, err, errsz))
						return -1;
			} else if (sb_faults_apply(c, v, err, errsz)) {
				return -1;
			}
		} else if (strcmp(k, "quiet") == 0) {
			c->quiet = json_is_true(v);
		} else {
			return fail(err, errsz, "unknown setting (see docs/sandbox.md)", k);
		}
	}
	return 0;
}
