/*
 * test_ratelimit.c - the GCRA rate limiter. Local buckets under an injected
 * clock: the exact burst-then-rate sequence, equivalence with Shopify's
 * leaky bucket (and that the safety margins keep a jittered client within
 * it), Retry-After, corrections from usage headers, parameter changes,
 * inbound checks, and the callback contract. Shared buckets against a real
 * redis-server (tests/harness/redisserver): two limiters, standing for two
 * hubd processes, never exceed one budget together; a script cache flush is
 * survived; Redis killed or hung means local buckets at the safe fraction,
 * logged once, and Redis back means shared buckets again.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"
#include "redisserver.h"

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

/* ---- shared buckets in Redis -------------------------------------------------------- */

static struct redisserver redis;
static bool have_redis;
static char redis_url[64];

static int redis_group_setup(void **state)
{
	int rc = redisserver_start(&redis, 0, 10000);
	(void)state;

	if (rc == 1) {
		fprintf(stderr, "redis-server not installed: Redis tests skipped\n");
		return 0;
	}
	if (rc != 0)
		return -1;
	have_redis = true;
	snprintf(redis_url, sizeof(redis_url), "redis://127.0.0.1:%d", redis.port);
	return 0;
}

static int redis_group_teardown(void **state)
{
	(void)state;
	redisserver_stop(&redis);
	return 0;
}

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_for(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Runs the loop until `rl` is in `mode`; false after timeout_ms. */
static bool wait_mode(struct event_base *base, struct rl *rl, enum rl_mode mode, int timeout_ms)
{
	struct rl_stats st;

	for (int64_t end = real_ms() + timeout_ms; real_ms() < end;) {
		rl_get_stats(rl, &st);
		if (st.mode == mode)
			return true;
		run_for(base, 10);
	}
	rl_get_stats(rl, &st);
	return st.mode == mode;
}

static struct rl *redis_rl(struct event_base *base, const char *prefix)
{
	struct rl_opts o;

	rl_opts_init(&o);
	o.redis_url = redis_url;
	o.redis_prefix = prefix;
	o.burst_margin = 0;
	o.rate_margin = 0;
	o.fallback_fraction = 0.5;
	o.redis_timeout_ms = 250;
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 200;
	return rl_new(base, &o);
}

/* A client that takes every grant it can until end_ms. */
struct greedy {
	struct rl *rl;
	const char *key;
	struct rl_params p;
	struct event *timer;
	int64_t end_ms;
	int grants;
	int answers[3];        /* by enum rl_mode */
	int64_t first_answer_ms; /* time from the first ask to its answer */
	int64_t started_ms;
	bool done;
};

static void greedy_ask(struct greedy *g);

static void greedy_cb(void *arg, const struct rl_result *res)
{
	struct greedy *g = arg;
	int64_t now = real_ms();

	if (g->first_answer_ms < 0)
		g->first_answer_ms = now - g->started_ms;
	g->answers[res->mode]++;
	if (res->status == RL_CANCELLED) {
		g->done = true;
		return;
	}
	if (res->status == RL_GRANTED)
		g->grants++;
	if (now >= g->end_ms) {
		g->done = true;
	} else if (res->status == RL_GRANTED) {
		greedy_ask(g);
	} else {
		int64_t wait = res->wait_ms;
		struct timeval tv;
		if (now + wait > g->end_ms)
			wait = g->end_ms - now;
		tv.tv_sec = wait / 1000;
		tv.tv_usec = (wait % 1000) * 1000;
		evtimer_add(g->timer, &tv);
	}
}

static void greedy_ask(struct greedy *g)
{
	if (rl_acquire(g->rl, g->key, &g->p, greedy_cb, g) != 0)
		g->done = true;
}

static void greedy_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	greedy_ask(arg);
}

/* Runs greedy clients on `n` limiters over one key for `ms`. */
static void run_greedy(struct event_base *base, struct greedy *gs, int n, int ms)
{
	int64_t now = real_ms();

	for (int i = 0; i < n; i++) {
		gs[i].timer = evtimer_new(base, greedy_timer, &gs[i]);
		gs[i].end_ms = now + ms;
		gs[i].started_ms = now;
		gs[i].first_answer_ms = -1;
		greedy_ask(&gs[i]);
	}
	for (int64_t deadline = now + ms + 5000; real_ms() < deadline;) {
		int done = 0;
		for (int i = 0; i < n; i++)
			done += gs[i].done;
		if (done == n)
			break;
		run_for(base, 10);
	}
	for (int i = 0; i < n; i++) {
		assert_true(gs[i].done);
		event_free(gs[i].timer);
	}
}

/* Captures what the logger writes to stderr. */
static int saved_stderr = -1;
static char capture_path[64];

static void capture_begin(void)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "/tmp/hub-rl-log-XXXXXX");
	fd = mkstemp(capture_path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Restores stderr, echoes what was captured, returns it (malloc'd). */
static char *capture_end(void)
{
	FILE *fp;
	char *text = calloc(1, 65536);
	size_t n = 0;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	fp = fopen(capture_path, "r");
	if (fp != NULL) {
		n = fread(text, 1, 65535, fp);
		fclose(fp);
	}
	text[n] = '\0';
	unlink(capture_path);
	fprintf(stderr, "%s", text);
	return text;
}

static int count_of(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_redis_shared_budget(void **state)
{
	struct event_base *base = event_base_new();
	struct rl *a, *b;
	struct greedy gs[2];
	struct rl_stats st;
	int total;
	(void)state;

	if (!have_redis)
		skip();
	a = redis_rl(base, "hubtest:shared:");
	b = redis_rl(base, "hubtest:shared:");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(wait_mode(base, a, RL_MODE_REDIS, 5000));
	assert_true(wait_mode(base, b, RL_MODE_REDIS, 5000));

	/* One budget: what A takes, B does not get. */
	{
		struct rl_params slow = { .burst = 3, .rate = 0.001 };
		struct waiter w = { 0 };
		for (int i = 0; i < 3; i++) {
			memset(&w, 0, sizeof(w));
			assert_int_equal(rl_acquire(a, "exact", &slow, on_result, &w), 0);
			while (w.calls == 0)
				event_base_loop(base, EVLOOP_ONCE);
			assert_int_equal(w.res.status, RL_GRANTED);
			assert_int_equal(w.res.mode, RL_MODE_REDIS);
		}
		memset(&w, 0, sizeof(w));
		assert_int_equal(rl_acquire(b, "exact", &slow, on_result, &w), 0);
		while (w.calls == 0)
			event_base_loop(base, EVLOOP_ONCE);
		assert_int_equal(w.res.status, RL_WAIT);
		assert_int_equal(w.res.mode, RL_MODE_REDIS);
		assert_in_range(w.res.wait_ms, 990000, 1000000);

		/* A Retry-After seen by B holds A back too. */
		rl_observe(b, "ra", &(struct rl_params){ .burst = 5, .rate = 10 }, 0, 0, 0, 3000);
		run_for(base, 50);
		memset(&w, 0, sizeof(w));
		assert_int_equal(rl_acquire(a, "ra", &(struct rl_params){ .burst = 5, .rate = 10 }, on_result, &w), 0);
		while (w.calls == 0)
			event_base_loop(base, EVLOOP_ONCE);
		assert_int_equal(w.res.status, RL_WAIT);
		assert_in_range(w.res.wait_ms, 2500, 3000);
	}

	/* Two greedy processes on one bucket (burst 5, 20/s) for 1.5 s. */
	memset(gs, 0, sizeof(gs));
	gs[0] = (struct greedy){ .rl = a, .key = "orders", .p = { .burst = 5, .rate = 20 } };
	gs[1] = (struct greedy){ .rl = b, .key = "orders", .p = { .burst = 5, .rate = 20 } };
	run_greedy(base, gs, 2, 1500);
	total = gs[0].grants + gs[1].grants;
	fprintf(stderr, "shared bucket: A %d + B %d = %d grants (budget 5 + 20/s * 1.5 s = 35)\n", gs[0].grants,
		gs[1].grants, total);
	assert_true(total <= 5 + 30 + 1);
	assert_true(total >= 29);
	assert_true(gs[0].grants >= 3 && gs[1].grants >= 3);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(gs[i].answers[RL_MODE_FALLBACK], 0);
		assert_int_equal(gs[i].answers[RL_MODE_LOCAL], 0);
	}
	rl_get_stats(a, &st);
	assert_int_equal(st.local_answers, 0);
	assert_int_equal(st.redis_failures, 0);
	rl_free(a);
	rl_free(b);
	event_base_free(base);
}

static void test_redis_noscript(void **state)
{
	struct event_base *base = event_base_new();
	struct rl_params p = { .burst = 10, .rate = 10 };
	struct waiter w = { 0 };
	redisContext *c;
	redisReply *r;
	struct rl *rl;
	struct rl_stats st;
	(void)state;

	if (!have_redis)
		skip();
	rl = redis_rl(base, "hubtest:noscript:");
	assert_true(wait_mode(base, rl, RL_MODE_REDIS, 5000));
	/* Someone flushes the script cache behind our back. */
	c = redisConnect("127.0.0.1", redis.port);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	r = redisCommand(c, "SCRIPT FLUSH");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	for (int i = 0; i < 2; i++) {
		memset(&w, 0, sizeof(w));
		assert_int_equal(rl_acquire(rl, "k", &p, on_result, &w), 0);
		while (w.calls == 0)
			event_base_loop(base, EVLOOP_ONCE);
		assert_int_equal(w.res.status, RL_GRANTED);
		assert_int_equal(w.res.mode, RL_MODE_REDIS);
	}
	/* The bucket really is in Redis, under the prefix. */
	r = redisCommand(c, "HEXISTS hubtest:noscript:k tat");
	assert_non_null(r);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	redisFree(c);
	rl_get_stats(rl, &st);
	assert_int_equal(st.redis_answers, 2);
	assert_int_equal(st.redis_failures, 0);
	rl_free(rl);
	event_base_free(base);
}

static void test_redis_killed_and_back(void **state)
{
	struct event_base *base = event_base_new();
	struct greedy g;
	struct rl_stats st;
	struct rl *rl;
	bool fell_back, came_back;
	char *log;
	(void)state;

	if (!have_redis)
		skip();
	rl = redis_rl(base, "hubtest:kill:");
	assert_true(wait_mode(base, rl, RL_MODE_REDIS, 5000));

	capture_begin();
	redisserver_kill(&redis);
	fell_back = wait_mode(base, rl, RL_MODE_FALLBACK, 3000);
	/* Burst 4 and 20/s at half: 2 at once, then 10/s, for 1 s. */
	g = (struct greedy){ .rl = rl, .key = "fb", .p = { .burst = 4, .rate = 20 } };
	run_greedy(base, &g, 1, 1000);
	assert_int_equal(redisserver_restart(&redis, 10000), 0);
	came_back = wait_mode(base, rl, RL_MODE_REDIS, 5000);
	log = capture_end();

	assert_true(fell_back);
	assert_int_equal(g.answers[RL_MODE_REDIS], 0);
	assert_true(g.answers[RL_MODE_FALLBACK] > 0);
	fprintf(stderr, "fallback: %d grants in 1 s (half of burst 4 + 20/s = 12)\n", g.grants);
	assert_in_range(g.grants, 9, 13);
	assert_true(came_back);
	/* Logged once however many reconnects failed, and once when back. */
	assert_int_equal(count_of(log, "falling back to local buckets at 50% of the rate"), 1);
	assert_int_equal(count_of(log, "reachable again"), 1);
	free(log);

	g = (struct greedy){ .rl = rl, .key = "after", .p = { .burst = 4, .rate = 20 } };
	run_greedy(base, &g, 1, 300);
	assert_true(g.answers[RL_MODE_REDIS] > 0);
	assert_int_equal(g.answers[RL_MODE_FALLBACK], 0);
	rl_get_stats(rl, &st);
	assert_int_equal(st.redis_failures, 1);
	assert_int_equal(st.mode, RL_MODE_REDIS);
	rl_free(rl);
	event_base_free(base);
}

static void test_redis_hung(void **state)
{
	struct event_base *base = event_base_new();
	struct greedy g;
	struct rl *rl;
	bool came_back;
	char *log;
	(void)state;

	if (!have_redis)
		skip();
	rl = redis_rl(base, "hubtest:hang:");
	assert_true(wait_mode(base, rl, RL_MODE_REDIS, 5000));

	capture_begin();
	redisserver_pause(&redis);
	g = (struct greedy){ .rl = rl, .key = "h", .p = { .burst = 4, .rate = 20 } };
	run_greedy(base, &g, 1, 1000);
	redisserver_resume(&redis);
	came_back = wait_mode(base, rl, RL_MODE_REDIS, 5000);
	log = capture_end();

	/* The first ask waited for the timeout, then everything went local. */
	fprintf(stderr, "hung redis: first answer after %lld ms, %d grants\n", (long long)g.first_answer_ms,
		g.grants);
	assert_in_range(g.first_answer_ms, 200, 800);
	assert_int_equal(g.answers[RL_MODE_REDIS], 0);
	assert_true(g.answers[RL_MODE_FALLBACK] > 0);
	assert_in_range(g.grants, 5, 13);
	assert_true(came_back);
	assert_int_equal(count_of(log, "falling back to local buckets"), 1);
	assert_non_null(strstr(log, "no answer within 250 ms"));
	free(log);
	rl_free(rl);
	event_base_free(base);
}

static void test_redis_bad_urls(void **state)
{
	static const char *const bad[] = { "http://127.0.0.1", "redis://", "redis://:6379", "redis://h:0",
					   "redis://h:99999", "redis://h:12x", "redis://h/db", "redis://user@h",
					   "redis://[::1" };
	struct event_base *base = event_base_new();
	struct rl_opts o;
	(void)state;

	rl_opts_init(&o);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.redis_url = bad[i];
		if (rl_new(base, &o) != NULL)
			fail_msg("%s accepted", bad[i]);
	}
	/* Unreachable but valid: starts in fallback and answers locally. */
	{
		struct waiter w = { 0 };
		struct rl *rl;
		o.redis_url = "redis://:secret@127.0.0.1:1/2";
		rl = rl_new(base, &o);
		assert_non_null(rl);
		assert_int_equal(rl_acquire(rl, "k", &(struct rl_params){ .burst = 1, .rate = 1 }, on_result, &w), 0);
		while (w.calls == 0)
			event_base_loop(base, EVLOOP_ONCE);
		assert_int_equal(w.res.status, RL_GRANTED);
		assert_int_equal(w.res.mode, RL_MODE_FALLBACK);
		rl_free(rl);
	}
	event_base_free(base);
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

	const struct CMUnitTest redis_tests[] = {
		cmocka_unit_test(test_redis_bad_urls),
		cmocka_unit_test(test_redis_shared_budget),
		cmocka_unit_test(test_redis_noscript),
		cmocka_unit_test(test_redis_killed_and_back),
		cmocka_unit_test(test_redis_hung),
	};
	int failed = cmocka_run_group_tests_name("local", tests, NULL, NULL);

	failed += cmocka_run_group_tests_name("redis", redis_tests, redis_group_setup, redis_group_teardown);
	return failed;
}
