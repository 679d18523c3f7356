/*
 * limits.c - the two rate-limit algorithms the providers document: Shopify's
 * leaky bucket (each request adds one unit, the bucket drains at a fixed
 * rate, full means 429 with a fractional Retry-After) and the token bucket
 * of Amazon's usage plans and the carriers (burst tokens, refilled at a
 * rate). Time comes in as microseconds of whichever clock the caller uses.
 */
#include "config.h"

#include "sandbox.h"

/* Tolerance so that a client pacing exactly at the limit is not refused
 * because of floating-point rounding. */
#define EPS 1e-9

int sb_leaky_take(struct sb_leaky *b, double size, double leak, int64_t now_us, double *used,
		  double *retry_after_s)
{
	if (now_us > b->last_us) {
		b->level -= leak * (double)(now_us - b->last_us) / 1e6;
		if (b->level < 0)
			b->level = 0;
		b->last_us = now_us;
	}
	if (b->level + 1.0 <= size + EPS) {
		b->level += 1.0;
		*used = b->level;
		*retry_after_s = 0;
		return 1;
	}
	*used = b->level;
	*retry_after_s = leak > 0 ? (b->level + 1.0 - size) / leak : 60.0;
	return 0;
}

int sb_tbucket_take(struct sb_tbucket *b, double rate, double burst, int64_t now_us,
		    double *wait_s)
{
	if (!b->init) {
		b->tokens = burst;
		b->last_us = now_us;
		b->init = 1;
	}
	if (now_us > b->last_us) {
		b->tokens += rate * (double)(now_us - b->last_us) / 1e6;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_us = now_us;
	}
	if (b->tokens >= 1.0 - EPS) {
		b->tokens -= 1.0;
		*wait_s = 0;
		return 1;
	}
	*wait_s = rate > 0 ? (1.0 - b->tokens) / rate : 3600.0;
	return 0;
}
