/*
 * wpool.c - worker threads for CPU-bound jobs, results back on the loop
 * (see wpool.h).
 *
 * Two lists under one mutex: jobs waiting for a worker, and finished jobs
 * waiting for the loop. Workers sleep on a condition variable only when
 * nothing is queued, so a busy pool takes jobs without any wake-up; the
 * loop is woken through a pipe, written only when the finished list goes
 * from empty to non-empty, and then takes the whole list at once.
 */
#include "config.h"
#include "wpool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define MAX_THREADS 64

struct wpool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct wpool_job *q_head, *q_tail;   /* waiting for a worker */
	struct wpool_job *d_head, *d_tail;   /* finished, waiting for the loop */
	unsigned idle;                        /* workers asleep on cv */
	int stopping;
	int wake_pending;                     /* a byte is in the pipe */
	size_t pending;                       /* submitted, done() not yet run */

	struct event *ev;
	int fd[2];
	pthread_t threads[MAX_THREADS];
	unsigned nthreads;
};

static void *worker_main(void *arg)
{
	struct wpool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct wpool_job *job = p->q_head;
		int wake = 0;

		if (job == NULL) {
			if (p->stopping)
				break;
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
			continue;
		}
		p->q_head = job->next;
		if (p->q_head == NULL)
			p->q_tail = NULL;
		pthread_mutex_unlock(&p->mu);

		job->next = NULL;
		job->run(job);

		pthread_mutex_lock(&p->mu);
		if (p->d_tail)
			p->d_tail->next = job;
		else
			p->d_head = job;
		p->d_tail = job;
		if (!p->wake_pending) {
			p->wake_pending = 1;
			wake = 1;
		}
		if (wake) {
			ssize_t w;

			pthread_mutex_unlock(&p->mu);
			do
				w = write(p->fd[1], "", 1);
			while (w < 0 && errno == EINTR);
			pthread_mutex_lock(&p->mu);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Runs done() of every finished job; loop thread. */
static void drain(struct wpool *p)
{
	struct wpool_job *list, *next;
	size_t n = 0;

	pthread_mutex_lock(&p->mu);
	list = p->d_head;
	p->d_head = p->d_tail = NULL;
	p->wake_pending = 0;
	pthread_mutex_unlock(&p->mu);
	for (; list; list = next) {
		next = list->next;
		list->next = NULL;
		n++;
		list->done(list);
	}
	pthread_mutex_lock(&p->mu);
	p->pending -= n;
	pthread_mutex_unlock(&p->mu);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	drain(arg);
}

struct wpool *wpool_new(struct event_base *base, unsigned threads, char *err, size_t size)
{
	struct wpool *p;

	if (threads == 0 || threads > MAX_THREADS) {
		snprintf(err, size, "worker threads: %u is not within 1..%d", threads, MAX_THREADS);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, size, "out of memory");
		return NULL;
	}
	p->fd[0] = p->fd[1] = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		snprintf(err, size, "worker threads: cannot create a pipe: %s", strerror(errno));
		goto fail;
	}
	p->ev = event_new(base, p->fd[0], EV_READ | EV_PERSIST, on_wake, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0) {
		snprintf(err, size, "worker threads: cannot watch the wake-up pipe");
		goto fail;
	}
	for (; p->nthreads < threads; p->nthreads++) {
		int rc = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);

		if (rc != 0) {
			snprintf(err, size, "worker threads: cannot start thread %u: %s",
				 p->nthreads + 1, strerror(rc));
			goto fail;
		}
	}
	return p;
fail:
	wpool_free(p);
	return NULL;
}

void wpool_submit(struct wpool *pool, struct wpool_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&pool->mu);
	if (pool->q_tail)
		pool->q_tail->next = job;
	else
		pool->q_head = job;
	pool->q_tail = job;
	pool->pending++;
	/* Workers that are busy find the job when they finish theirs. */
	if (pool->idle > 0)
		pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

size_t wpool_pending(struct wpool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->mu);
	n = pool->pending;
	pthread_mutex_unlock(&pool->mu);
	return n;
}

void wpool_free(struct wpool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	/* Every queued job has run; hand the results over here. */
	drain(pool);
	if (pool->ev)
		event_free(pool->ev);
	if (pool->fd[0] >= 0)
		close(pool->fd[0]);
	if (pool->fd[1] >= 0)
		close(pool->fd[1]);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}
