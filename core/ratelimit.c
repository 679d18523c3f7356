/*
 * ratelimit.c - GCRA buckets (see ratelimit.h). Local buckets sit in a
 * chained hash table keyed by string; each holds its theoretical arrival
 * time (TAT) in ms of the local monotonic clock and the emission interval
 * that TAT was computed with, so that a change of parameters rescales the
 * bucket's level instead of losing or inventing budget. Results go back to
 * callers through one deferred event, never from inside rl_acquire().
 */
#include "config.h"
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"

#define RL_LOG "ratelimit"
#define SWEEP_INTERVAL_S 60
#define IDLE_FORGET_MS (10 * 60 * 1000)

struct bucket {
	struct bucket *next; /* hash chain */
	double tat;          /* theoretical arrival time, local clock ms */
	double interval;     /* ms per request `tat` is expressed in; 0 = fresh */
	double obs_capacity; /* last capacity the upstream reported, 0 = unknown */
	double obs_rate;     /* last rate the upstream reported, 0 = unknown */
	int64_t touched_ms;
	char key[];
};

/* An answer waiting to be delivered from the loop. */
struct rl_op {
	struct rl_op *next;
	rl_done_fn cb;
	void *arg;
	struct rl_result res;
};

struct rl {
	struct event_base *base;
	struct rl_opts opts;
	char *redis_url;
	char *prefix;
	enum rl_mode mode;

	struct bucket **slots;
	size_t nslots;
	size_t count;

	struct event *deliver_ev;
	struct rl_op *ready_head;
	struct rl_op **ready_tail;
	struct event *sweep_ev;

	struct rl_stats stats;
};

void rl_opts_init(struct rl_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->redis_prefix = "hub:rl:";
	opts->fallback_fraction = 0.5;
	opts->burst_margin = 0.05;
	opts->rate_margin = 0.01;
	opts->redis_timeout_ms = 250;
	opts->reconnect_min_ms = 100;
	opts->reconnect_max_ms = 5000;
}

const char *rl_mode_name(enum rl_mode mode)
{
	switch (mode) {
	case RL_MODE_LOCAL:
		return "local";
	case RL_MODE_REDIS:
		return "redis";
	case RL_MODE_FALLBACK:
		return "fallback";
	}
	return "unknown";
}

static int64_t monotonic_ms(void *arg)
{
	struct timespec ts;
	(void)arg;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t rl_now(const struct rl *rl)
{
	return rl->opts.clock_ms(rl->opts.clock_arg);
}

/* ---- bucket table ---------------------------------------------------------- */

static uint64_t hash_key(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int table_grow(struct rl *rl)
{
	size_t n = rl->nslots ? rl->nslots * 2 : 64;
	struct bucket **slots = calloc(n, sizeof(*slots));

	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket *b = rl->slots[i], *next;
		for (; b != NULL; b = next) {
			size_t j = hash_key(b->key) & (n - 1);
			next = b->next;
			b->next = slots[j];
			slots[j] = b;
		}
	}
	free(rl->slots);
	rl->slots = slots;
	rl->nslots = n;
	return 0;
}

/* Finds the bucket of `key`, creating a fresh one when `create`. */
static struct bucket *bucket_get(struct rl *rl, const char *key, bool create)
{
	struct bucket *b;
	size_t len, i;

	if (rl->nslots > 0) {
		i = hash_key(key) & (rl->nslots - 1);
		for (b = rl->slots[i]; b != NULL; b = b->next) {
			if (strcmp(b->key, key) == 0)
				return b;
		}
	}
	if (!create)
		return NULL;
	if (rl->count >= rl->nslots && table_grow(rl) != 0)
		return NULL;
	len = strlen(key);
	b = calloc(1, sizeof(*b) + len + 1);
	if (b == NULL)
		return NULL;
	memcpy(b->key, key, len + 1);
	i = hash_key(key) & (rl->nslots - 1);
	b->next = rl->slots[i];
	rl->slots[i] = b;
	rl->count++;
	return b;
}

/* Drops buckets that have been idle long enough to be as good as new. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *rl = arg;
	int64_t now = rl_now(rl);
	(void)fd;
	(void)what;

	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket **pp = &rl->slots[i];
		while (*pp != NULL) {
			struct bucket *b = *pp;
			if (b->tat <= (double)now && now - b->touched_ms > IDLE_FORGET_MS) {
				*pp = b->next;
				free(b);
				rl->count--;
			} else {
				pp = &b->next;
			}
		}
	}
}

/* ---- GCRA ---------------------------------------------------------------- */

/*
 * The burst and emission interval (ms per request) to enforce for `b`:
 * the declared parameters, lowered to what the upstream reported, minus
 * the safety margins when `margins`, times `fraction`.
 */
static void effective_params(const struct rl *rl, const struct bucket *b, const struct rl_params *p,
			     bool margins, double fraction, double *burst, double *interval)
{
	double bu = p->burst, ra = p->rate;

	if (b->obs_capacity > 0 && b->obs_capacity < bu)
		bu = b->obs_capacity;
	if (b->obs_rate > 0 && b->obs_rate < ra)
		ra = b->obs_rate;
	if (margins) {
		double slots = bu * rl->opts.burst_margin;
		if (rl->opts.burst_margin > 0 && bu >= 2 && slots < 1)
			slots = 1;
		bu -= slots;
		ra *= 1.0 - rl->opts.rate_margin;
	}
	bu *= fraction;
	ra *= fraction;
	*burst = bu < 1 ? 1 : bu;
	*interval = 1000.0 / ra;
}

/* Re-expresses the bucket's TAT in a new emission interval, keeping its
 * level (requests outstanding) the same. */
static void bucket_rescale(struct bucket *b, double interval, double now)
{
	if (b->interval > 0 && b->interval != interval && b->tat > now)
		b->tat = now + (b->tat - now) * (interval / b->interval);
	b->interval = interval;
}

/*
 * One GCRA decision at `now`: counts a request and returns 0 when it fits,
 * else returns the wait in ms (>= 1, rounded up) and changes nothing.
 */
static int64_t gcra(struct bucket *b, double now, double burst, double interval)
{
	double start = b->tat > now ? b->tat : now;
	double tat = start + interval;
	double allow_at = tat - burst * interval;

	if (allow_at > now) {
		int64_t wait = (int64_t)ceil(allow_at - now);
		return wait < 1 ? 1 : wait;
	}
	b->tat = tat;
	return 0;
}

static bool params_valid(const struct rl_params *p)
{
	return p != NULL && isfinite(p->rate) && p->rate > 0 && isfinite(p->burst);
}

/* Decides locally for `key`; returns the wait (0 granted) or -1 (no memory). */
static int64_t local_decide(struct rl *rl, const char *key, const struct rl_params *p, bool margins,
			    double fraction)
{
	struct bucket *b = bucket_get(rl, key, true);
	double burst, interval, now;

	if (b == NULL)
		return -1;
	now = (double)rl_now(rl);
	b->touched_ms = (int64_t)now;
	effective_params(rl, b, p, margins, fraction, &burst, &interval);
	bucket_rescale(b, interval, now);
	return gcra(b, now, burst, interval);
}

/* ---- delivery ---------------------------------------------------------------- */

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *rl = arg;
	struct rl_op *op = rl->ready_head, *next;
	(void)fd;
	(void)what;

	/* Detach first: callbacks may queue more, delivered on the next pass. */
	rl->ready_head = NULL;
	rl->ready_tail = &rl->ready_head;
	for (; op != NULL; op = next) {
		next = op->next;
		op->cb(op->arg, &op->res);
		free(op);
	}
}

static void deliver_later(struct rl *rl, struct rl_op *op)
{
	op->next = NULL;
	*rl->ready_tail = op;
	rl->ready_tail = &op->next;
	event_active(rl->deliver_ev, EV_TIMEOUT, 0);
}

static void count_result(struct rl *rl, const struct rl_result *res)
{
	if (res->status == RL_GRANTED)
		rl->stats.granted++;
	else if (res->status == RL_WAIT)
		rl->stats.waits++;
	if (res->mode == RL_MODE_REDIS)
		rl->stats.redis_answers++;
	else
		rl->stats.local_answers++;
}

/* ---- public API ---------------------------------------------------------------- */

struct rl *rl_new(struct event_base *base, const struct rl_opts *opts)
{
	struct rl *rl = calloc(1, sizeof(*rl));
	struct timeval sweep = { SWEEP_INTERVAL_S, 0 };

	if (rl == NULL)
		return NULL;
	rl->base = base;
	if (opts != NULL)
		rl->opts = *opts;
	else
		rl_opts_init(&rl->opts);
	if (rl->opts.clock_ms == NULL)
		rl->opts.clock_ms = monotonic_ms;
	if (!(rl->opts.fallback_fraction > 0 && rl->opts.fallback_fraction <= 1))
		rl->opts.fallback_fraction = 0.5;
	if (!(rl->opts.burst_margin >= 0 && rl->opts.burst_margin < 1))
		rl->opts.burst_margin = 0;
	if (!(rl->opts.rate_margin >= 0 && rl->opts.rate_margin < 1))
		rl->opts.rate_margin = 0;
	rl->ready_tail = &rl->ready_head;
	rl->mode = RL_MODE_LOCAL;
	rl->prefix = strdup(rl->opts.redis_prefix != NULL ? rl->opts.redis_prefix : "hub:rl:");
	rl->deliver_ev = event_new(base, -1, 0, deliver_cb, rl);
	rl->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, rl);
	if (rl->prefix == NULL || rl->deliver_ev == NULL || rl->sweep_ev == NULL ||
	    table_grow(rl) != 0)
		goto fail;
	event_add(rl->sweep_ev, &sweep);
	rl->opts.redis_url = NULL;
	rl->opts.redis_prefix = rl->prefix;
	return rl;
fail:
	rl_free(rl);
	return NULL;
}

void rl_free(struct rl *rl)
{
	struct rl_op *op, *next;

	if (rl == NULL)
		return;
	for (op = rl->ready_head; op != NULL; op = next) {
		next = op->next;
		op->res.status = RL_CANCELLED;
		op->res.wait_ms = 0;
		op->cb(op->arg, &op->res);
		free(op);
	}
	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket *b = rl->slots[i], *bn;
		for (; b != NULL; b = bn) {
			bn = b->next;
			free(b);
		}
	}
	free(rl->slots);
	if (rl->deliver_ev != NULL)
		event_free(rl->deliver_ev);
	if (rl->sweep_ev != NULL)
		event_free(rl->sweep_ev);
	free(rl->redis_url);
	free(rl->prefix);
	free(rl);
}

int rl_acquire(struct rl *rl, const char *key, const struct rl_params *params, rl_done_fn cb, void *arg)
{
	struct rl_op *op;
	int64_t wait;

	if (rl == NULL || key == NULL || cb == NULL || !params_valid(params))
		return -1;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	wait = local_decide(rl, key, params, true, 1.0);
	if (wait < 0) {
		free(op);
		return -1;
	}
	op->res.status = wait == 0 ? RL_GRANTED : RL_WAIT;
	op->res.wait_ms = wait;
	op->res.mode = rl->mode;
	count_result(rl, &op->res);
	deliver_later(rl, op);
	return 0;
}

void rl_observe(struct rl *rl, const char *key, const struct rl_params *params, double used,
		double capacity, double rate, int64_t retry_after_ms)
{
	struct bucket *b;
	double burst, interval, now;

	if (rl == NULL || key == NULL || !params_valid(params))
		return;
	b = bucket_get(rl, key, true);
	if (b == NULL)
		return;
	now = (double)rl_now(rl);
	b->touched_ms = (int64_t)now;
	if (isfinite(capacity) && capacity > 0)
		b->obs_capacity = capacity;
	if (isfinite(rate) && rate > 0)
		b->obs_rate = rate;
	effective_params(rl, b, params, true, 1.0, &burst, &interval);
	bucket_rescale(b, interval, now);
	/* The upstream counts `used` requests now: we count at least as many. */
	if (isfinite(used) && used > 0 && b->tat < now + used * interval)
		b->tat = now + used * interval;
	/* Nothing before now + retry_after: the first grant comes exactly then. */
	if (retry_after_ms > 0) {
		double tat = now + (double)retry_after_ms + (burst - 1) * interval;
		if (b->tat < tat)
			b->tat = tat;
	}
}

int64_t rl_check(struct rl *rl, const char *key, const struct rl_params *params)
{
	int64_t wait;

	if (rl == NULL || key == NULL || !params_valid(params))
		return 1000;
	wait = local_decide(rl, key, params, false, 1.0);
	/* Out of memory: refuse rather than let an unbounded flood in. */
	return wait < 0 ? 1000 : wait;
}

void rl_get_stats(const struct rl *rl, struct rl_stats *st)
{
	*st = rl->stats;
	st->mode = rl->mode;
	st->buckets = rl->count;
}
