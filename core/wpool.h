/*
 * wpool.h - a small pool of worker threads that take CPU-bound work off the
 * event loop: a job's run() executes on a worker, then its done() runs back
 * on the loop thread, where everything else about the job (replies, the
 * store, metrics, reference counts) is handled.
 *
 * hubd uses it for webhooks whose plugin declares HUB_CAP_WEBHOOKS_REENTRANT:
 * signature check, parsing, mapping, validation and serialising the records
 * run on a worker while the loop goes on with HTTP and the store's
 * completions. Handing a job over costs a mutex and, only when the other
 * side is idle, one wake-up; finished jobs are collected in batches.
 *
 * Threads: wpool_new, wpool_submit and wpool_free are called from the loop
 * thread; run() from a worker; done() from the loop thread.
 */
#ifndef HUB_WPOOL_H
#define HUB_WPOOL_H

#include <stddef.h>

struct event_base;
struct wpool;

/* A job: embed it in your own struct. run and done are required. */
struct wpool_job {
	struct wpool_job *next;                 /* the pool's */
	void (*run)(struct wpool_job *job);     /* on a worker thread */
	void (*done)(struct wpool_job *job);    /* then on the loop thread */
};

/*
 * Starts `threads` workers (1..64) whose finished jobs come back through
 * `base`. Returns the pool, or NULL with a message in err (threads or the
 * wake-up pipe could not be created).
 */
struct wpool *wpool_new(struct event_base *base, unsigned threads, char *err, size_t size);

/* Queues a job. Its done() runs later on the loop thread, exactly once.
 * Never fails (the queue is a list); the pool must not be stopping. */
void wpool_submit(struct wpool *pool, struct wpool_job *job);

/* Jobs submitted and not yet done. */
size_t wpool_pending(struct wpool *pool);

/* Lets the workers finish every queued job, joins them, runs the done()
 * of every finished job on the calling (loop) thread and frees the pool.
 * NULL is ignored. */
void wpool_free(struct wpool *pool);

#endif
