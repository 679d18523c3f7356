/*
 * test_ratelimit.c - the GCRA rate limiter. Local buckets under an injected
 * clock: the exact burst-then-rate sequence, equivalence with Shopify's
 * leaky bucket (and that the safety margins keep a jittered client within
 * it), Retry-After, corrections from usage headers, parameter changes,
 * inbound checks, and the callback contract.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "ratelimit.h"

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

struct waiter {
	int calls;
	bool inside_acquire;
	bool called_inside;
	struct rl_result res;
};

static void on_result(void *arg, const struct rl_result *res)
{
	struct waiter *w = arg;

	w->calls++;
	w->res = *res;
	if (w->inside_acquire)
		w->called_inside = true;
}

struct fixture {
	struct event_base *base;
	struct rl *rl;
};

static struct fixture *fixture_new(bool margins)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rl_opts o;

	rl_opts_init(&o);
	o.clock_ms = fake_clock;
	if (!margins) {
		o.burst_margin = 0;
		o.rate_margin = 0;
	}
	fake_now = 1000000;
	f->base = event_base_new();
	f->rl = rl_new(f->base, &o);
	assert_non_null(f->rl);
	return f;
}

static int setup_exact(void **state)
{
	*state = fixture_new(false);
	return 0;
}

static int setup_margins(void **state)
{
	*state = fixture_new(true);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rl_free(f->rl);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Acquires and runs the loop until the answer arrives. Returns 0 when
 * granted, else the wait. */
static int64_t acquire(struct fixture *f, const char *key, double burst, double rate)
{
	struct rl_params p = { .burst = burst, .rate = rate };
	struct waiter w = { 0 };

	w.inside_acquire = true;
	assert_int_equal(rl_acquire(f->rl, key, &p, on_result, &w), 0);
	w.inside_acquire = false;
	assert_int_equal(w.calls, 0);
	for (int i = 0; i < 10 && w.calls == 0; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(w.calls, 1);
	assert_false(w.called_inside);
	assert_int_equal(w.res.mode, RL_MODE_LOCAL);
	if (w.res.status == RL_GRANTED)
		return 0;
	assert_int_equal(w.res.status, RL_WAIT);
	assert_true(w.res.wait_ms >= 1);
	return w.res.wait_ms;
}

static void test_gcra_exact(void **state)
{
	struct fixture *f = *state;
	const int64_t t0 = fake_now;
	int grants = 0;

	/* Burst 3, then 2/s: three at once, the fourth 500 ms later. */
	assert_int_equal(acquire(f, "s/orders", 3, 2), 0);
	assert_int_equal(acquire(f, "s/orders", 3, 2), 0);
	assert_int_equal(acquire(f, "s/orders", 3, 2), 0);
	assert_int_equal(acquire(f, "s/orders", 3, 2), 500);
	/* A denial reserves nothing: asking again says the same. */
	assert_int_equal(acquire(f, "s/orders", 3, 2), 500);
	fake_now = t0 + 499;
	assert_int_equal(acquire(f, "s/orders", 3, 2), 1);
	fake_now = t0 + 500;
	assert_int_equal(acquire(f, "s/orders", 3, 2), 0);
	assert_int_equal(acquire(f, "s/orders", 3, 2), 500);
	/* Other keys are independent. */
	assert_int_equal(acquire(f, "s/products", 3, 2), 0);

	/* Idle long enough, the full burst is back. */
	fake_now = t0 + 10000;
	for (int i = 0; i < 3; i++)
		assert_int_equal(acquire(f, "s/orders", 3, 2), 0);
	assert_int_equal(acquire(f, "s/orders", 3, 2), 500);

	/* A greedy client gets exactly burst + rate * time over 10 s. */
	fake_now = t0 + 100000;
	for (int64_t end = fake_now + 10000; fake_now <= end;) {
		int64_t wait = acquire(f, "s/greedy", 3, 2);
		if (wait == 0)
			grants++;
		else
			fake_now += wait;
	}
	assert_int_equal(grants, 3 + 2 * 10);
}

/* Non-integral intervals (3/s) must not drift above the rate. */
static void test_gcra_fractional_rate(void **state)
{
	struct fixture *f = *state;
	int grants = 0;

	for (int64_t end = fake_now + 60000; fake_now < end;) {
		int64_t wait = acquire(f, "s/third", 1, 3);
		if (wait == 0)
			grants++;
		else
			fake_now += wait;
	}
	assert_int_equal(grants, 3 * 60);
}

/*
 * Shopify's leaky bucket (40, leaking 2/s) as the upstream sees it: requests
 * arrive `jitter` ms after we send them. Returns the number of 429s and
 * stores the requests sent in *sent, for a greedy client over `ms`.
 */
static int run_against_leaky_bucket(struct fixture *f, const char *key, int64_t ms, int64_t jitter,
				    int *sent)
{
	int64_t arrivals[2048];
	int n = 0, rejected = 0;
	uint64_t lcg = 12345;
	double level = 0, last = 0;

	for (int64_t end = fake_now + ms; fake_now <= end;) {
		int64_t wait = acquire(f, key, 40, 2);
		if (wait != 0) {
			fake_now += wait;
			continue;
		}
		lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
		assert_true(n < 2048);
		arrivals[n++] = fake_now + (jitter > 0 ? (int64_t)((lcg >> 33) % (uint64_t)(jitter + 1)) : 0);
	}
	/* The upstream handles requests in the order they arrive. */
	for (int i = 1; i < n; i++) {
		for (int j = i; j > 0 && arrivals[j - 1] > arrivals[j]; j--) {
			int64_t t = arrivals[j];
			arrivals[j] = arrivals[j - 1];
			arrivals[j - 1] = t;
		}
	}
	last = (double)arrivals[0];
	for (int i = 0; i < n; i++) {
		level -= ((double)arrivals[i] - last) * 2 / 1000.0;
		if (level < 0)
			level = 0;
		last = (double)arrivals[i];
		if (level + 1 > 40 + 1e-9)
			rejected++;
		else
			level += 1;
	}
	*sent = n;
	return rejected;
}

static void test_shopify_equivalence_exact(void **state)
{
	struct fixture *f = *state;
	int sent;

	/* No latency: GCRA(40, 2/s) uses the whole budget and never overflows. */
	assert_int_equal(run_against_leaky_bucket(f, "shop/a", 120000, 0, &sent), 0);
	assert_int_equal(sent, 40 + 2 * 120);
	/* With jittered latency and no margin, bunched arrivals overflow: this
	 * is why the margins exist. */
	fake_now += 1000000;
	assert_true(run_against_leaky_bucket(f, "shop/b", 120000, 800, &sent) > 0);
}

static void test_shopify_with_margins(void **state)
{
	struct fixture *f = *state;
	int sent;

	/* Defaults keep 2 of 40 slots and 1% of the rate: 38 at once, then 1.98/s. */
	for (int i = 0; i < 38; i++)
		assert_int_equal(acquire(f, "shop/m", 40, 2), 0);
	assert_int_equal(acquire(f, "shop/m", 40, 2), 506); /* ceil(1000 / 1.98) */

	/* Up to 0.8 s of latency jitter: zero 429s, and at least 97% of the budget. */
	fake_now += 1000000;
	assert_int_equal(run_against_leaky_bucket(f, "shop/j", 120000, 800, &sent), 0);
	assert_true(sent >= 0.97 * (40 + 2 * 120));
	assert_true(sent <= 40 + 2 * 120);
}

static void test_retry_after(void **state)
{
	struct fixture *f = *state;
	struct rl_params p = { .burst = 3, .rate = 2 };
	const int64_t t0 = fake_now;

	assert_int_equal(acquire(f, "s/r", 3, 2), 0);
	rl_observe(f->rl, "s/r", &p, 0, 0, 0, 1000);
	assert_int_equal(acquire(f, "s/r", 3, 2), 1000);
	fake_now = t0 + 999;
	assert_int_equal(acquire(f, "s/r", 3, 2), 1);
	/* Exactly at the end of Retry-After one goes, then the rate applies. */
	fake_now = t0 + 1000;
	assert_int_equal(acquire(f, "s/r", 3, 2), 0);
	assert_int_equal(acquire(f, "s/r", 3, 2), 500);
	/* A shorter Retry-After later never shortens the wait. */
	rl_observe(f->rl, "s/r", &p, 0, 0, 0, 100);
	assert_int_equal(acquire(f, "s/r", 3, 2), 500);
	/* On a fresh bucket too. */
	rl_observe(f->rl, "s/fresh", &p, 0, 0, 0, 2500);
	assert_int_equal(acquire(f, "s/fresh", 3, 2), 2500);
}

static void test_observe_used(void **state)
{
	struct fixture *f = *state;
	struct rl_params p = { .burst = 10, .rate = 1 };

	/* The upstream says 8 of 10 are used (another app shares the shop). */
	rl_observe(f->rl, "s/u", &p, 8, 10, 1, 0);
	assert_int_equal(acquire(f, "s/u", 10, 1), 0);
	assert_int_equal(acquire(f, "s/u", 10, 1), 0);
	assert_int_equal(acquire(f, "s/u", 10, 1), 1000);
	/* Reports below our estimate never lower it (our in-flight requests). */
	rl_observe(f->rl, "s/u", &p, 0, 10, 1, 0);
	assert_int_equal(acquire(f, "s/u", 10, 1), 1000);
	rl_observe(f->rl, "s/u", &p, 10, 10, 1, 0);
	assert_int_equal(acquire(f, "s/u", 10, 1), 1000);
	/* Garbage from a header parser is ignored. */
	rl_observe(f->rl, "s/u", &p, NAN, INFINITY, -3, -1);
	assert_int_equal(acquire(f, "s/u", 10, 1), 1000);
}

static void test_observe_smaller_budget(void **state)
{
	struct fixture *f = *state;
	struct rl_params p = { .burst = 40, .rate = 2 };

	/* The plugin declared 40 at 2/s, the upstream says 20 at 1/s: believe it. */
	rl_observe(f->rl, "s/small", &p, 0, 20, 1, 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(acquire(f, "s/small", 40, 2), 0);
	assert_int_equal(acquire(f, "s/small", 40, 2), 1000);
	/* Larger reports never raise the declared budget. */
	rl_observe(f->rl, "s/big", &p, 0, 80, 4, 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(acquire(f, "s/big", 40, 2), 0);
	assert_int_equal(acquire(f, "s/big", 40, 2), 500);
}

static void test_param_change_keeps_level(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 10; i++)
		assert_int_equal(acquire(f, "s/p", 10, 1), 0);
	assert_int_equal(acquire(f, "s/p", 10, 1), 1000);
	/* Same 10 outstanding at a doubled rate: the next slot is 500 ms away. */
	assert_int_equal(acquire(f, "s/p", 10, 2), 500);
	/* And a larger burst has room at once. */
	assert_int_equal(acquire(f, "s/p", 12, 2), 0);
}

static void test_check_inbound(void **state)
{
	struct fixture *f = *state;
	struct rl_params p = { .burst = 5, .rate = 1 };
	struct rl_params bad = { .burst = 5, .rate = 0 };
	struct rl_stats st;

	for (int i = 0; i < 5; i++)
		assert_int_equal(rl_check(f->rl, "in/hooks/192.0.2.1", &p), 0);
	assert_int_equal(rl_check(f->rl, "in/hooks/192.0.2.1", &p), 1000);
	assert_int_equal(rl_check(f->rl, "in/hooks/192.0.2.2", &p), 0);
	fake_now += 1000;
	assert_int_equal(rl_check(f->rl, "in/hooks/192.0.2.1", &p), 0);
	assert_int_equal(rl_check(f->rl, "in/hooks/192.0.2.1", &p), 1000);
	/* Invalid parameters refuse instead of letting everything through. */
	assert_true(rl_check(f->rl, "in/x", &bad) > 0);
	rl_get_stats(f->rl, &st);
	assert_int_equal(st.buckets, 2);
	assert_int_equal(st.mode, RL_MODE_LOCAL);
}

static void test_contract(void **state)
{
	struct fixture *f = *state;
	struct rl_params p = { .burst = 1, .rate = 1 };
	struct rl_params bad = { .burst = 1, .rate = -1 };
	struct waiter w[3] = { 0 };
	struct rl_stats st;

	assert_int_equal(rl_acquire(f->rl, NULL, &p, on_result, &w[0]), -1);
	assert_int_equal(rl_acquire(f->rl, "k", &p, NULL, &w[0]), -1);
	assert_int_equal(rl_acquire(f->rl, "k", NULL, on_result, &w[0]), -1);
	assert_int_equal(rl_acquire(f->rl, "k", &bad, on_result, &w[0]), -1);

	/* Pending answers get RL_CANCELLED, exactly once, when freed. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(rl_acquire(f->rl, "k", &p, on_result, &w[i]), 0);
	rl_get_stats(f->rl, &st);
	assert_int_equal(st.granted, 1);
	assert_int_equal(st.waits, 2);
	rl_free(f->rl);
	f->rl = NULL;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].calls, 1);
		assert_int_equal(w[i].res.status, RL_CANCELLED);
	}
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gcra_exact, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_gcra_fractional_rate, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_shopify_equivalence_exact, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_shopify_with_margins, setup_margins, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_observe_used, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_observe_smaller_budget, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_param_change_keeps_level, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_check_inbound, setup_exact, teardown),
		cmocka_unit_test_setup_teardown(test_contract, setup_exact, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
