/*
 * ratelimit.c - GCRA buckets (see ratelimit.h). Local buckets sit in a
 * chained hash table keyed by string; each holds its theoretical arrival
 * time (TAT) in ms of the local monotonic clock and the emission interval
 * that TAT was computed with, so that a change of parameters rescales the
 * bucket's level instead of losing or inventing budget. Local results go
 * back to callers through one deferred event, never from inside
 * rl_acquire().
 *
 * With Redis, one Lua script does the same arithmetic atomically on a hash
 * per bucket with Redis's own clock, so processes on different hosts agree.
 * Each call is an "op" in an in-flight list watched by a timer: a connection
 * that loses a reply, errors, or stays silent past redis_timeout_ms is
 * dropped, the ops it held are answered from the local buckets at the
 * fallback fraction, and a reconnect with exponential backoff starts. Local
 * buckets mirror the level Redis reports, so a fallback continues from the
 * shared state instead of granting a fresh burst.
 */
#include "config.h"
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"

#define RL_LOG "ratelimit"
#define SWEEP_INTERVAL_S 60
#define IDLE_FORGET_MS (10 * 60 * 1000)

/*
 * The shared bucket. KEYS[1]: the bucket's hash. ARGV: "acquire" or
 * "observe", effective burst, emission interval in ms, and for "observe"
 * the upstream's used count and Retry-After in ms. Returns {granted (0/1),
 * wait ms, level ms (TAT - now)}, rounded up. The interval is stored with
 * the TAT so that a change of rate keeps the level; keys expire once idle.
 */
static const char RL_SCRIPT[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
	"local burst = tonumber(ARGV[2])\n"
	"local iv = tonumber(ARGV[3])\n"
	"local st = redis.call('HMGET', KEYS[1], 'tat', 'iv')\n"
	"local tat = tonumber(st[1]) or now\n"
	"local old = tonumber(st[2])\n"
	"if old and old > 0 and old ~= iv and tat > now then tat = now + (tat - now) * iv / old end\n"
	"if tat < now then tat = now end\n"
	"local granted, wait = 0, 0\n"
	"if ARGV[1] == 'acquire' then\n"
	"  local new_tat = tat + iv\n"
	"  local allow_at = new_tat - burst * iv\n"
	"  if allow_at <= now then tat = new_tat; granted = 1 else wait = allow_at - now end\n"
	"else\n"
	"  local used = tonumber(ARGV[4]) or 0\n"
	"  local ra = tonumber(ARGV[5]) or 0\n"
	"  if used > 0 and tat < now + used * iv then tat = now + used * iv end\n"
	"  if ra > 0 and tat < now + ra + (burst - 1) * iv then tat = now + ra + (burst - 1) * iv end\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'iv', string.format('%.6f', iv))\n"
	"redis.call('PEXPIRE', KEYS[1], math.ceil(tat - now) + 60000)\n"
	"return {granted, math.ceil(wait), math.ceil(tat - now)}\n";

struct bucket {
	struct bucket *next; /* hash chain */
	double tat;          /* theoretical arrival time, local clock ms */
	double interval;     /* ms per request `tat` is expressed in; 0 = fresh */
	double obs_capacity; /* last capacity the upstream reported, 0 = unknown */
	double obs_rate;     /* last rate the upstream reported, 0 = unknown */
	int64_t touched_ms;
	char key[];
};

enum op_kind { OP_ACQUIRE, OP_OBSERVE, OP_LOAD };

/*
 * One acquisition or Redis call. Local answers wait in the ready list;
 * Redis calls sit in the in-flight list until hiredis calls back (always
 * exactly once: with the reply, or with NULL when the connection goes).
 */
struct rl_op {
	struct rl_op *next;        /* ready list */
	struct rl_op *iprev, *inext; /* in-flight list */
	struct rl *rl;
	enum op_kind kind;
	rl_done_fn cb;
	void *arg;
	struct rl_result res;
	bool answered;  /* the callback has run (or none is due) */
	bool stale;     /* its connection was dropped: not watched any more */
	bool sent_eval; /* re-sent as EVAL after NOSCRIPT */
	int64_t issued_ms;
	struct rl_params params;
	double burst, interval; /* effective values sent to Redis */
	double used;
	int64_t retry_after_ms;
	char key[];
};

struct rl {
	struct event_base *base;
	struct rl_opts opts;
	char *prefix;
	enum rl_mode mode;
	bool closing;

	struct bucket **slots;
	size_t nslots;
	size_t count;

	struct event *deliver_ev;
	struct rl_op *ready_head;
	struct rl_op **ready_tail;
	struct event *sweep_ev;

	/* Redis, when configured (host != NULL) */
	char *host;
	int port;
	char *user;
	char *password;
	int db;
	redisAsyncContext *ac; /* NULL while disconnected */
	bool ready;            /* the script is loaded: calls may go */
	char sha[41];
	struct rl_op *inflight_head;
	struct event *watch_ev;
	struct event *reconnect_ev;
	int64_t reconnect_ms;
	bool outage_logged;

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

static struct rl_op *op_new(struct rl *rl, enum op_kind kind, const char *key, const struct rl_params *p)
{
	size_t len = key != NULL ? strlen(key) : 0;
	struct rl_op *op = calloc(1, sizeof(*op) + len + 1);

	if (op == NULL)
		return NULL;
	op->rl = rl;
	op->kind = kind;
	if (key != NULL)
		memcpy(op->key, key, len + 1);
	if (p != NULL)
		op->params = *p;
	op->answered = kind != OP_ACQUIRE; /* only acquisitions have a caller waiting */
	return op;
}

/* Answers an acquisition from the local buckets (the Redis fallback). */
static void answer_local(struct rl *rl, struct rl_op *op)
{
	int64_t wait = local_decide(rl, op->key, &op->params, true, rl->opts.fallback_fraction);

	op->answered = true;
	op->res.status = wait == 0 ? RL_GRANTED : RL_WAIT;
	op->res.wait_ms = wait < 0 ? 1000 : wait;
	op->res.mode = RL_MODE_FALLBACK;
	count_result(rl, &op->res);
	op->cb(op->arg, &op->res);
}

/* ---- Redis: health ------------------------------------------------------------- */

static int64_t real_ms(void)
{
	return monotonic_ms(NULL);
}

/* Redis cannot be used right now: decide locally, and say so once per outage. */
static void redis_degraded(struct rl *rl, const char *why)
{
	rl->mode = RL_MODE_FALLBACK;
	if (rl->outage_logged || rl->closing)
		return;
	rl->outage_logged = true;
	rl->stats.redis_failures++;
	log_warn(RL_LOG,
		 "redis at %s:%d unavailable (%s): falling back to local buckets at %.0f%% of the rate "
		 "until it is back",
		 rl->host, rl->port, why != NULL && *why != '\0' ? why : "unknown error",
		 rl->opts.fallback_fraction * 100);
}

static void redis_healthy(struct rl *rl)
{
	if (rl->mode == RL_MODE_REDIS)
		return;
	rl->mode = RL_MODE_REDIS;
	if (rl->outage_logged)
		log_info(RL_LOG, "redis at %s:%d reachable again: buckets are shared again", rl->host, rl->port);
	else
		log_info(RL_LOG, "sharing rate-limit buckets through redis at %s:%d", rl->host, rl->port);
	rl->outage_logged = false;
}

static void schedule_reconnect(struct rl *rl)
{
	struct timeval tv;

	if (rl->closing || evtimer_pending(rl->reconnect_ev, NULL))
		return;
	tv.tv_sec = rl->reconnect_ms / 1000;
	tv.tv_usec = (rl->reconnect_ms % 1000) * 1000;
	evtimer_add(rl->reconnect_ev, &tv);
	rl->reconnect_ms = rl->reconnect_ms > rl->opts.reconnect_max_ms / 2 ? rl->opts.reconnect_max_ms
									   : rl->reconnect_ms * 2;
}

static void inflight_add(struct rl *rl, struct rl_op *op)
{
	struct timeval tv;
	int64_t period = rl->opts.redis_timeout_ms / 4;

	op->issued_ms = real_ms();
	op->iprev = NULL;
	op->inext = rl->inflight_head;
	if (rl->inflight_head != NULL)
		rl->inflight_head->iprev = op;
	rl->inflight_head = op;
	if (!evtimer_pending(rl->watch_ev, NULL)) {
		if (period < 10)
			period = 10;
		tv.tv_sec = period / 1000;
		tv.tv_usec = (period % 1000) * 1000;
		evtimer_add(rl->watch_ev, &tv);
	}
}

/* Frees an op hiredis has called back for. */
static void op_done(struct rl *rl, struct rl_op *op)
{
	if (op->iprev != NULL)
		op->iprev->inext = op->inext;
	else
		rl->inflight_head = op->inext;
	if (op->inext != NULL)
		op->inext->iprev = op->iprev;
	free(op);
}

/*
 * Gives up on the current connection: answers what it still owes locally,
 * frees it (hiredis then calls every pending op back with NULL; from inside
 * a hiredis callback it does so once that callback returns) and schedules a
 * reconnect.
 */
static void redis_drop(struct rl *rl, const char *why)
{
	redisAsyncContext *ac = rl->ac;

	if (ac == NULL)
		return;
	rl->ac = NULL;
	rl->ready = false;
	redis_degraded(rl, why);
	for (struct rl_op *op = rl->inflight_head; op != NULL; op = op->inext) {
		op->stale = true;
		if (!op->answered)
			answer_local(rl, op);
	}
	redisAsyncFree(ac);
	schedule_reconnect(rl);
}

/* Fires while calls are out: a call unanswered for too long means Redis hangs. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *rl = arg;
	int64_t now = real_ms();
	bool watching = false;
	(void)fd;
	(void)what;

	for (struct rl_op *op = rl->inflight_head; op != NULL; op = op->inext) {
		if (op->stale)
			continue;
		if (now - op->issued_ms >= rl->opts.redis_timeout_ms) {
			char why[64];
			snprintf(why, sizeof(why), "no answer within %lld ms", (long long)rl->opts.redis_timeout_ms);
			redis_drop(rl, why);
			return;
		}
		watching = true;
	}
	if (watching) {
		int64_t period = rl->opts.redis_timeout_ms / 4 < 10 ? 10 : rl->opts.redis_timeout_ms / 4;
		struct timeval tv = { period / 1000, (period % 1000) * 1000 };
		evtimer_add(rl->watch_ev, &tv);
	}
}

/* ---- Redis: calls ------------------------------------------------------------------ */

static void redis_reply_cb(redisAsyncContext *ac, void *r, void *privdata);

/* Sends the script call for an acquire or observe op. 0, or -1. */
static int redis_send(struct rl *rl, struct rl_op *op)
{
	char rkey[512], burst[32], iv[32], used[32], ra[32];
	const char *argv[9];
	size_t lens[9];
	bool eval = op->sent_eval;
	int n;

	n = snprintf(rkey, sizeof(rkey), "%s%s", rl->prefix, op->key);
	if (n < 0 || (size_t)n >= sizeof(rkey))
		return -1;
	snprintf(burst, sizeof(burst), "%.6f", op->burst);
	snprintf(iv, sizeof(iv), "%.6f", op->interval);
	snprintf(used, sizeof(used), "%.6f", op->used);
	snprintf(ra, sizeof(ra), "%lld", (long long)op->retry_after_ms);
	argv[0] = eval ? "EVAL" : "EVALSHA";
	argv[1] = eval ? RL_SCRIPT : rl->sha;
	argv[2] = "1";
	argv[3] = rkey;
	argv[4] = op->kind == OP_ACQUIRE ? "acquire" : "observe";
	argv[5] = burst;
	argv[6] = iv;
	argv[7] = used;
	argv[8] = ra;
	for (int i = 0; i < 9; i++)
		lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(rl->ac, redis_reply_cb, op, 9, argv, lens) != REDIS_OK)
		return -1;
	return 0;
}

/* Copies what Redis says about a bucket into the local one, so that a
 * fallback continues from the shared level. */
static void mirror(struct rl *rl, const struct rl_op *op, long long level_ms)
{
	struct bucket *b = bucket_get(rl, op->key, true);
	int64_t now = rl_now(rl);

	if (b == NULL)
		return;
	b->tat = (double)now + (double)(level_ms > 0 ? level_ms : 0);
	b->interval = op->interval;
	b->touched_ms = now;
}

static void handle_load(struct rl *rl, redisAsyncContext *ac, const redisReply *reply)
{
	char why[160];

	if (rl->ac != ac)
		return; /* a connection already given up */
	if (reply->type == REDIS_REPLY_STRING && reply->len == 40) {
		memcpy(rl->sha, reply->str, 40);
		rl->sha[40] = '\0';
		rl->ready = true;
		rl->reconnect_ms = rl->opts.reconnect_min_ms;
		redis_healthy(rl);
		return;
	}
	snprintf(why, sizeof(why), "script not loaded: %s",
		 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
	redis_drop(rl, why);
}

static void redis_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rl_op *op = privdata;
	struct rl *rl = op->rl;
	redisReply *reply = r;

	if (reply == NULL) {
		/* The connection is gone; hiredis is freeing it. */
		if (!op->answered && !rl->closing) {
			redis_degraded(rl, ac->errstr[0] != '\0' ? ac->errstr : "connection lost");
			answer_local(rl, op);
		}
		op_done(rl, op);
		return;
	}
	if (op->kind == OP_LOAD) {
		handle_load(rl, ac, reply);
		op_done(rl, op);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		/* Script cache flushed (restart, SCRIPT FLUSH): send the body once. */
		if (!op->sent_eval && strncmp(reply->str, "NOSCRIPT", 8) == 0 && rl->ac == ac) {
			op->sent_eval = true;
			if (redis_send(rl, op) == 0)
				return;
		}
		redis_degraded(rl, reply->str);
		if (!op->answered)
			answer_local(rl, op);
		op_done(rl, op);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[1]->type != REDIS_REPLY_INTEGER ||
	    reply->element[2]->type != REDIS_REPLY_INTEGER) {
		redis_degraded(rl, "unexpected reply to the rate-limit script");
		if (!op->answered)
			answer_local(rl, op);
		op_done(rl, op);
		return;
	}
	mirror(rl, op, reply->element[2]->integer);
	redis_healthy(rl);
	if (!op->answered) {
		long long wait = reply->element[1]->integer;
		op->answered = true;
		op->res.status = reply->element[0]->integer == 1 ? RL_GRANTED : RL_WAIT;
		op->res.wait_ms = op->res.status == RL_GRANTED ? 0 : (wait < 1 ? 1 : wait);
		op->res.mode = RL_MODE_REDIS;
		count_result(rl, &op->res);
		op->cb(op->arg, &op->res);
	}
	op_done(rl, op);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rl *rl = ac->data;

	if (status == REDIS_OK || rl == NULL || rl->ac != ac)
		return; /* ready once the script is loaded */
	rl->ac = NULL;
	rl->ready = false;
	redis_degraded(rl, ac->errstr);
	schedule_reconnect(rl);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rl *rl = ac->data;
	(void)status;

	if (rl == NULL || rl->ac != ac)
		return; /* we dropped it ourselves */
	rl->ac = NULL;
	rl->ready = false;
	if (rl->closing)
		return;
	redis_degraded(rl, ac->errstr[0] != '\0' ? ac->errstr : "connection closed");
	schedule_reconnect(rl);
}

/* Starts a connection: AUTH, SELECT and SCRIPT LOAD are queued at once and
 * go out when it is up; the loaded script makes it ready. */
static void redis_connect(struct rl *rl)
{
	redisAsyncContext *ac = redisAsyncConnect(rl->host, rl->port);
	struct rl_op *load;

	if (ac == NULL || ac->err) {
		redis_degraded(rl, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_reconnect(rl);
		return;
	}
	ac->data = rl;
	load = op_new(rl, OP_LOAD, NULL, NULL);
	if (load == NULL || redisLibeventAttach(ac, rl->base) != REDIS_OK) {
		free(load);
		redisAsyncFree(ac);
		redis_degraded(rl, "out of memory");
		schedule_reconnect(rl);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rl->ac = ac;
	if (rl->password != NULL) {
		if (rl->user != NULL)
			redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", rl->user, rl->password);
		else
			redisAsyncCommand(ac, NULL, NULL, "AUTH %s", rl->password);
	}
	if (rl->db != 0)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", rl->db);
	if (redisAsyncCommand(ac, redis_reply_cb, load, "SCRIPT LOAD %s", RL_SCRIPT) != REDIS_OK) {
		free(load);
		redis_drop(rl, "cannot queue SCRIPT LOAD");
		return;
	}
	inflight_add(rl, load);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *rl = arg;
	(void)fd;
	(void)what;

	if (rl->ac == NULL)
		redis_connect(rl);
}

/*
 * Parses "redis://[[user]:password@]host[:port][/db]" into rl. IPv6 hosts
 * go in brackets. Returns 0 or -1 with `why` set.
 */
static int parse_redis_url(struct rl *rl, const char *url, const char **why)
{
	const char *p, *at, *slash, *host_end, *port_start = NULL;
	char *end;
	long v;

	if (strncmp(url, "redis://", 8) != 0) {
		*why = "must start with redis://";
		return -1;
	}
	p = url + 8;
	slash = strchr(p, '/');
	at = memchr(p, '@', slash != NULL ? (size_t)(slash - p) : strlen(p));
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL) {
			*why = "credentials must be [user]:password@";
			return -1;
		}
		if (colon > p)
			rl->user = strndup(p, (size_t)(colon - p));
		rl->password = strndup(colon + 1, (size_t)(at - colon - 1));
		if ((colon > p && rl->user == NULL) || rl->password == NULL) {
			*why = "out of memory";
			return -1;
		}
		p = at + 1;
	}
	if (*p == '[') {
		host_end = strchr(p, ']');
		if (host_end == NULL) {
			*why = "unterminated [IPv6] host";
			return -1;
		}
		rl->host = strndup(p + 1, (size_t)(host_end - p - 1));
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/");
		rl->host = strndup(p, (size_t)(host_end - p));
		p = host_end;
	}
	if (rl->host == NULL || rl->host[0] == '\0') {
		*why = "no host";
		return -1;
	}
	rl->port = 6379;
	if (*p == ':') {
		port_start = p + 1;
		errno = 0;
		v = strtol(port_start, &end, 10);
		if (end == port_start || errno != 0 || v < 1 || v > 65535 || (*end != '\0' && *end != '/')) {
			*why = "port must be 1-65535";
			return -1;
		}
		rl->port = (int)v;
		p = end;
	}
	if (*p == '/' && p[1] != '\0') {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end != '\0' || errno != 0 || v < 0 || v > 65535) {
			*why = "database must be a number";
			return -1;
		}
		rl->db = (int)v;
	} else if (*p != '\0' && strcmp(p, "/") != 0) {
		*why = "unexpected text after the host";
		return -1;
	}
	return 0;
}

/* ---- public API ---------------------------------------------------------------- */

struct rl *rl_new(struct event_base *base, const struct rl_opts *opts)
{
	struct rl *rl = calloc(1, sizeof(*rl));
	struct timeval sweep = { SWEEP_INTERVAL_S, 0 };
	const char *why = NULL;

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
	if (rl->opts.redis_timeout_ms <= 0)
		rl->opts.redis_timeout_ms = 250;
	if (rl->opts.reconnect_min_ms <= 0)
		rl->opts.reconnect_min_ms = 100;
	if (rl->opts.reconnect_max_ms < rl->opts.reconnect_min_ms)
		rl->opts.reconnect_max_ms = rl->opts.reconnect_min_ms;
	rl->reconnect_ms = rl->opts.reconnect_min_ms;
	rl->ready_tail = &rl->ready_head;
	rl->mode = RL_MODE_LOCAL;
	rl->prefix = strdup(rl->opts.redis_prefix != NULL ? rl->opts.redis_prefix : "hub:rl:");
	rl->deliver_ev = event_new(base, -1, 0, deliver_cb, rl);
	rl->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, rl);
	rl->watch_ev = evtimer_new(base, watch_cb, rl);
	rl->reconnect_ev = evtimer_new(base, reconnect_cb, rl);
	if (rl->prefix == NULL || rl->deliver_ev == NULL || rl->sweep_ev == NULL || rl->watch_ev == NULL ||
	    rl->reconnect_ev == NULL || table_grow(rl) != 0)
		goto fail;
	event_add(rl->sweep_ev, &sweep);
	rl->opts.redis_prefix = rl->prefix;
	if (rl->opts.redis_url != NULL && rl->opts.redis_url[0] != '\0') {
		if (parse_redis_url(rl, rl->opts.redis_url, &why) != 0) {
			/* The URL may hold a password: name the problem, not the URL. */
			log_error(RL_LOG, "invalid redis URL: %s (expected redis://[[user]:password@]host[:port][/db])",
				  why);
			goto fail;
		}
		rl->mode = RL_MODE_FALLBACK; /* until the connection is ready */
		redis_connect(rl);
	}
	rl->opts.redis_url = NULL;
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
	rl->closing = true;
	for (op = rl->inflight_head; op != NULL; op = op->inext) {
		op->stale = true;
		if (!op->answered) {
			op->answered = true;
			op->res.status = RL_CANCELLED;
			op->res.wait_ms = 0;
			op->res.mode = rl->mode;
			op->cb(op->arg, &op->res);
		}
	}
	if (rl->ac != NULL) {
		redisAsyncContext *ac = rl->ac;
		rl->ac = NULL;
		redisAsyncFree(ac); /* calls the in-flight ops back with NULL: they free themselves */
	}
	while (rl->inflight_head != NULL)
		op_done(rl, rl->inflight_head);
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
	if (rl->watch_ev != NULL)
		event_free(rl->watch_ev);
	if (rl->reconnect_ev != NULL)
		event_free(rl->reconnect_ev);
	free(rl->host);
	free(rl->user);
	free(rl->password);
	free(rl->prefix);
	free(rl);
}

int rl_acquire(struct rl *rl, const char *key, const struct rl_params *params, rl_done_fn cb, void *arg)
{
	struct rl_op *op;
	int64_t wait;

	if (rl == NULL || key == NULL || cb == NULL || !params_valid(params))
		return -1;
	op = op_new(rl, OP_ACQUIRE, key, params);
	if (op == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	if (rl->ac != NULL && rl->ready) {
		struct bucket *b = bucket_get(rl, key, true);
		if (b != NULL) {
			effective_params(rl, b, params, true, 1.0, &op->burst, &op->interval);
			if (redis_send(rl, op) == 0) {
				inflight_add(rl, op);
				return 0;
			}
		}
	}
	if (rl->host != NULL) {
		wait = local_decide(rl, key, params, true, rl->opts.fallback_fraction);
		op->res.mode = RL_MODE_FALLBACK;
	} else {
		wait = local_decide(rl, key, params, true, 1.0);
		op->res.mode = RL_MODE_LOCAL;
	}
	if (wait < 0) {
		free(op);
		return -1;
	}
	op->answered = true;
	op->res.status = wait == 0 ? RL_GRANTED : RL_WAIT;
	op->res.wait_ms = wait;
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
	if (!isfinite(used) || used < 0)
		used = 0;
	if (retry_after_ms < 0)
		retry_after_ms = 0;
	effective_params(rl, b, params, true, 1.0, &burst, &interval);
	bucket_rescale(b, interval, now);
	/* The upstream counts `used` requests now: we count at least as many. */
	if (used > 0 && b->tat < now + used * interval)
		b->tat = now + used * interval;
	/* Nothing before now + retry_after: the first grant comes exactly then. */
	if (retry_after_ms > 0) {
		double tat = now + (double)retry_after_ms + (burst - 1) * interval;
		if (b->tat < tat)
			b->tat = tat;
	}
	/* Shared buckets learn it too; nobody waits for the answer. */
	if (rl->ac != NULL && rl->ready && (used > 0 || retry_after_ms > 0)) {
		struct rl_op *op = op_new(rl, OP_OBSERVE, key, params);
		if (op == NULL)
			return;
		op->burst = burst;
		op->interval = interval;
		op->used = used;
		op->retry_after_ms = retry_after_ms;
		if (redis_send(rl, op) == 0)
			inflight_add(rl, op);
		else
			free(op);
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
