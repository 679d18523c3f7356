/*
 * test_wpool.c - the worker pool: every job's run() executes once on a
 * worker thread (never the loop's), then its done() once on the loop
 * thread; bursts larger than the pool, several workers, and wpool_free
 * with jobs still queued (their done() runs before it returns).
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/event.h>

#include "wpool.h"

struct tjob {
	struct wpool_job work;
	pthread_t loop;
	int ran_off_loop;
	int runs, dones;
	int *done_count;
	struct event_base *base;
	int stop_at;
};

static void tjob_run(struct wpool_job *w)
{
	struct tjob *j = (struct tjob *)w;
	struct timespec ts = {0, 200000}; /* a little work */

	j->ran_off_loop = !pthread_equal(pthread_self(), j->loop);
	j->runs++;
	nanosleep(&ts, NULL);
}

static void tjob_done(struct wpool_job *w)
{
	struct tjob *j = (struct tjob *)w;

	assert_true(pthread_equal(pthread_self(), j->loop));
	j->dones++;
	if (++*j->done_count == j->stop_at)
		event_base_loopbreak(j->base);
}

static void run_jobs(unsigned threads, int n)
{
	struct event_base *base = event_base_new();
	struct tjob *jobs = calloc((size_t)n, sizeof(*jobs));
	struct timeval limit = {20, 0};
	struct wpool *pool;
	char err[128];
	int done = 0;

	assert_non_null(base);
	assert_non_null(jobs);
	pool = wpool_new(base, threads, err, sizeof(err));
	assert_non_null(pool);
	for (int i = 0; i < n; i++) {
		jobs[i].loop = pthread_self();
		jobs[i].done_count = &done;
		jobs[i].base = base;
		jobs[i].stop_at = n;
		jobs[i].work.run = tjob_run;
		jobs[i].work.done = tjob_done;
		wpool_submit(pool, &jobs[i].work);
	}
	assert_true(wpool_pending(pool) > 0);
	/* Bounded: the loop stops at the last done() or after 20 s. */
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	assert_int_equal(done, n);
	assert_int_equal(wpool_pending(pool), 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(jobs[i].runs, 1);
		assert_int_equal(jobs[i].dones, 1);
		assert_true(jobs[i].ran_off_loop);
	}
	wpool_free(pool);
	event_base_free(base);
	free(jobs);
}

static void test_one_worker(void **state)
{
	(void)state;
	run_jobs(1, 200);
}

static void test_several_workers(void **state)
{
	(void)state;
	run_jobs(4, 500);
}

/* wpool_free with work still queued: every job runs, and its done() runs
 * on the caller before wpool_free returns. */
static void test_free_drains(void **state)
{
	struct event_base *base = event_base_new();
	struct tjob jobs[50];
	struct wpool *pool;
	char err[128];
	int done = 0;

	(void)state;
	memset(jobs, 0, sizeof(jobs));
	pool = wpool_new(base, 2, err, sizeof(err));
	assert_non_null(pool);
	for (int i = 0; i < 50; i++) {
		jobs[i].loop = pthread_self();
		jobs[i].done_count = &done;
		jobs[i].base = base;
		jobs[i].stop_at = -1;
		jobs[i].work.run = tjob_run;
		jobs[i].work.done = tjob_done;
		wpool_submit(pool, &jobs[i].work);
	}
	wpool_free(pool);
	assert_int_equal(done, 50);
	for (int i = 0; i < 50; i++)
		assert_int_equal(jobs[i].runs + jobs[i].dones, 2);
	event_base_free(base);
}

static void test_bad_sizes(void **state)
{
	struct event_base *base = event_base_new();
	char err[128];

	(void)state;
	assert_null(wpool_new(base, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "1..64"));
	assert_null(wpool_new(base, 65, err, sizeof(err)));
	wpool_free(NULL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_worker),
		cmocka_unit_test(test_several_workers),
		cmocka_unit_test(test_free_drains),
		cmocka_unit_test(test_bad_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
