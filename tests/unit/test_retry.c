/*
 * test_retry.c - the retry policy: classification of statuses and transport
 * failures, backoff windows with full jitter under an injected random
 * source, Retry-After in all its forms, give-up limits, and the circuit
 * breaker's transitions with an injected clock.
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "retry.h"

/* ---- classification ------------------------------------------------------ */

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(retry_classify(200, false), RETRY_OK);
	assert_int_equal(retry_classify(204, false), RETRY_OK);
	assert_int_equal(retry_classify(304, false), RETRY_OK);
	assert_int_equal(retry_classify(408, false), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(429, false), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(500, false), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(502, true), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(503, false), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(599, false), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(401, false), RETRY_AUTH);
	assert_int_equal(retry_classify(403, false), RETRY_AUTH);
	assert_int_equal(retry_classify(400, false), RETRY_PERMANENT);
	assert_int_equal(retry_classify(404, true), RETRY_PERMANENT);
	assert_int_equal(retry_classify(409, false), RETRY_PERMANENT);
	assert_int_equal(retry_classify(422, false), RETRY_PERMANENT);
	assert_int_equal(retry_classify(600, false), RETRY_PERMANENT);
	/* No response: the transport decides. */
	assert_int_equal(retry_classify(0, true), RETRY_TRANSIENT);
	assert_int_equal(retry_classify(0, false), RETRY_PERMANENT);
	assert_string_equal(retry_verdict_name(RETRY_TRANSIENT), "transient");
	assert_string_equal(retry_verdict_name(RETRY_AUTH), "auth");
}

/* ---- backoff ------------------------------------------------------------- */

/* An RNG returning a scripted value, to pin the jitter to its extremes. */
static uint64_t fixed_rng(void *arg)
{
	return *(const uint64_t *)arg;
}

static void test_backoff_windows(void **state)
{
	uint64_t r = 0;
	struct retry_policy p = { .base_ms = 100, .cap_ms = 1000, .rng = fixed_rng, .rng_arg = &r };
	(void)state;

	/* value % (window + 1) with value = window gives the top of the window. */
	static const int64_t windows[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
	for (unsigned a = 1; a <= 7; a++) {
		r = (uint64_t)windows[a - 1];
		assert_int_equal(retry_backoff_ms(&p, a, 0), windows[a - 1]);
		r = (uint64_t)windows[a - 1] + 1; /* wraps to 0: the bottom of the window */
		assert_int_equal(retry_backoff_ms(&p, a, 0), 0);
	}
	/* Huge attempt numbers neither overflow nor exceed the cap. */
	r = UINT64_MAX;
	assert_in_range(retry_backoff_ms(&p, 1000, 0), 0, 1000);
	assert_in_range(retry_backoff_ms(&p, UINT_MAX, 0), 0, 1000);
}

static void test_backoff_retry_after(void **state)
{
	uint64_t r = 50;
	struct retry_policy p = { .base_ms = 100, .cap_ms = 1000, .rng = fixed_rng, .rng_arg = &r };
	(void)state;

	/* Retry-After raises the delay, even past the cap... */
	assert_int_equal(retry_backoff_ms(&p, 1, 2000), 2000);
	assert_int_equal(retry_backoff_ms(&p, 1, 120), 120);
	/* ...but never lowers the jittered one. */
	assert_int_equal(retry_backoff_ms(&p, 1, 10), 50);
	assert_int_equal(retry_backoff_ms(&p, 1, 0), 50);
	assert_int_equal(retry_backoff_ms(&p, 1, -5), 50);
}

/* Full jitter: with the built-in RNG, values cover the window roughly evenly. */
static void test_backoff_distribution(void **state)
{
	struct retry_policy p = { .base_ms = 1000, .cap_ms = 1000 };
	int buckets[4] = { 0 };
	(void)state;

	for (int i = 0; i < 4000; i++) {
		int64_t d = retry_backoff_ms(&p, 3, 0);
		assert_in_range(d, 0, 1000);
		buckets[d >= 1000 ? 3 : d / 250]++;
	}
	for (int i = 0; i < 4; i++)
		assert_in_range(buckets[i], 800, 1200);
}

static void test_defaults_and_exhausted(void **state)
{
	struct retry_policy p = { 0 };
	struct retry_policy q = { .max_attempts = 3, .max_age_ms = 10000 };
	(void)state;

	assert_in_range(retry_backoff_ms(&p, 1, 0), 0, 500);
	assert_in_range(retry_backoff_ms(&p, 40, 0), 0, 300000);
	assert_false(retry_exhausted(&p, 7, 0, 1000));
	assert_true(retry_exhausted(&p, 8, 0, 1000));
	assert_true(retry_exhausted(&p, 1, 0, 24LL * 3600 * 1000 + 1));
	assert_false(retry_exhausted(&q, 2, 5000, 15000));
	assert_true(retry_exhausted(&q, 3, 5000, 6000));
	assert_true(retry_exhausted(&q, 1, 5000, 15001));
}

/* ---- Retry-After ---------------------------------------------------------- */

static int64_t after(const char *value, int64_t now_ms)
{
	int64_t ms = -12345;

	if (retry_after_parse(value, now_ms, &ms) != 0)
		fail_msg("Retry-After \"%s\" refused", value);
	return ms;
}

static void test_retry_after_delta(void **state)
{
	(void)state;
	assert_int_equal(after("0", 0), 0);
	assert_int_equal(after("2", 0), 2000);
	assert_int_equal(after("120", 0), 120000);
	assert_int_equal(after(" 7 ", 0), 7000);
	assert_int_equal(after("2.0", 0), 2000);
	assert_int_equal(after("1.5", 0), 1500);
	assert_int_equal(after("0.25", 0), 250);
	assert_int_equal(after("0.001", 0), 1);
	/* Sub-millisecond remainders round up: never earlier than asked. */
	assert_int_equal(after("0.0001", 0), 1);
	assert_int_equal(after("1.0000", 0), 1000);
	/* Absurd values clamp to a day. */
	assert_int_equal(after("99999999999999999999", 0), 86400000);
	assert_int_equal(after("86401", 0), 86400000);
}

static void test_retry_after_dates(void **state)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s. */
	const int64_t t = 784111777000LL;
	(void)state;

	assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", t - 5000), 5000);
	assert_int_equal(after("Sunday, 06-Nov-94 08:49:37 GMT", t - 5000), 5000);
	assert_int_equal(after("Sun Nov  6 08:49:37 1994", t - 5000), 5000);
	assert_int_equal(after("Wed Nov 16 08:49:37 1994", t + 9LL * 86400000 + 43200000), 43200000);
	/* In the past: retry now. */
	assert_int_equal(after("Sun, 06 Nov 1994 08:49:37 GMT", t + 1000), 0);
	/* Two-digit years below 70 are this century; leap day 2024. */
	assert_int_equal(after("Thursday, 29-Feb-24 00:00:10 GMT", 1709164800000LL), 10000);
	assert_int_equal(after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800000LL - 1), 1);
	/* Far future clamps to a day. */
	assert_int_equal(after("Fri, 31 Dec 2049 23:59:59 GMT", 0), 86400000);
}

static void test_retry_after_invalid(void **state)
{
	static const char *const bad[] = {
		"", " ", "-1", "+3", "1.", ".5", "1e3", "0x10", "inf", "nan", "2 s", "soon",
		"Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
		"Sun, 00 Nov 1994 08:49:37 GMT", "Sun Nov  6 08:49:37", "Sun, 06 Nov 1994 08:49:37 GMT x",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		if (retry_after_parse(bad[i], 0, &ms) != -1)
			fail_msg("\"%s\" accepted as %lld", bad[i], (long long)ms);
		assert_int_equal(ms, 42);
	}
	assert_int_equal(retry_after_parse(NULL, 0, &(int64_t){ 0 }), -1);
}

/* ---- circuit breaker -------------------------------------------------------- */

static void test_circuit_opens_after_threshold(void **state)
{
	struct retry_circuit_opts o = { .failure_threshold = 3, .cooldown_ms = 1000, .max_cooldown_ms = 5000 };
	struct retry_circuit c;
	(void)state;

	retry_circuit_init(&c, &o);
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_CLOSED);
	assert_string_equal(retry_circuit_reason(&c), "");
	assert_true(retry_circuit_allow(&c, 0));
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 503", 10));
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 503", 20));
	/* A success in between resets the count. */
	retry_circuit_success(&c);
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 503", 30));
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 503", 40));
	/* Permanent failures are neutral: the upstream answered. */
	assert_false(retry_circuit_failure(&c, RETRY_PERMANENT, "HTTP 404", 45));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_CLOSED);
	assert_true(retry_circuit_failure(&c, RETRY_TRANSIENT, "connect: Connection refused", 50));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_OPEN);
	assert_non_null(strstr(retry_circuit_reason(&c), "3 consecutive failures"));
	assert_non_null(strstr(retry_circuit_reason(&c), "Connection refused"));

	/* Open: nothing until the cool-down ends. */
	assert_false(retry_circuit_allow(&c, 51));
	assert_int_equal(retry_circuit_wait_ms(&c, 550), 500);
	assert_false(retry_circuit_allow(&c, 1049));
	/* Late results of earlier attempts do not re-open or extend it. */
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 500", 1049));
	assert_int_equal(retry_circuit_wait_ms(&c, 1049), 1);

	/* Cool-down over: exactly one probe. */
	assert_true(retry_circuit_allow(&c, 1050));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_HALF_OPEN);
	assert_int_equal(retry_circuit_wait_ms(&c, 1050), -1);
	assert_false(retry_circuit_allow(&c, 1051));
	assert_false(retry_circuit_allow(&c, 99999));

	/* The probe fails: open again for twice as long. */
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "HTTP 502", 1100));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_OPEN);
	assert_non_null(strstr(retry_circuit_reason(&c), "probe failed"));
	assert_false(retry_circuit_allow(&c, 3099));
	assert_true(retry_circuit_allow(&c, 3100));
	/* Doubling stops at the max cool-down. */
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 3100));
	assert_int_equal(retry_circuit_wait_ms(&c, 3100), 4000);
	assert_true(retry_circuit_allow(&c, 7100));
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 7100));
	assert_int_equal(retry_circuit_wait_ms(&c, 7100), 5000);
	assert_true(retry_circuit_allow(&c, 12100));

	/* The probe succeeds: closed, and the cool-down starts over. */
	retry_circuit_success(&c);
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_CLOSED);
	assert_string_equal(retry_circuit_reason(&c), "");
	assert_true(retry_circuit_allow(&c, 12101));
	for (int i = 0; i < 2; i++)
		assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 13000));
	assert_true(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 13000));
	assert_int_equal(retry_circuit_wait_ms(&c, 13000), 1000);
}

static void test_circuit_auth(void **state)
{
	struct retry_circuit c;
	(void)state;

	retry_circuit_init(&c, NULL); /* defaults: 5 failures, 2 auth failures, 30 s */
	assert_false(retry_circuit_failure(&c, RETRY_AUTH, "HTTP 401", 0));
	assert_true(retry_circuit_failure(&c, RETRY_AUTH, "HTTP 401", 0));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_OPEN);
	assert_non_null(strstr(retry_circuit_reason(&c), "credentials refused 2 times"));
	assert_int_equal(retry_circuit_wait_ms(&c, 0), 30000);
	assert_string_equal(retry_circuit_state_name(retry_circuit_state(&c)), "open");

	/* A probe answered with a permanent error proves the upstream alive. */
	assert_true(retry_circuit_allow(&c, 30000));
	assert_false(retry_circuit_failure(&c, RETRY_PERMANENT, "HTTP 404", 30010));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_CLOSED);

	/* Mixed kinds do not add up: each kind counts its own streak. */
	for (int i = 0; i < 4; i++)
		assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 31000));
	assert_false(retry_circuit_failure(&c, RETRY_AUTH, "HTTP 403", 31000));
	assert_false(retry_circuit_failure(&c, RETRY_TRANSIENT, "x", 31000));
	assert_int_equal(retry_circuit_state(&c), RETRY_CIRCUIT_CLOSED);
	/* RETRY_OK reported as a "failure" counts as a success. */
	assert_false(retry_circuit_failure(&c, RETRY_OK, NULL, 31000));
	assert_int_equal(c.failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_backoff_windows),
		cmocka_unit_test(test_backoff_retry_after),
		cmocka_unit_test(test_backoff_distribution),
		cmocka_unit_test(test_defaults_and_exhausted),
		cmocka_unit_test(test_retry_after_delta),
		cmocka_unit_test(test_retry_after_dates),
		cmocka_unit_test(test_retry_after_invalid),
		cmocka_unit_test(test_circuit_opens_after_threshold),
		cmocka_unit_test(test_circuit_auth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
