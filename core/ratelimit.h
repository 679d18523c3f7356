/*
 * ratelimit.h - GCRA rate limiting of outbound requests per upstream
 * bucket, and of inbound requests per client.
 *
 * A bucket is a string key ("<connector>/<operation>") with parameters
 * `burst` (requests that may go at once) and `rate` (requests per second
 * after that). Its whole state is one theoretical arrival time (TAT), so
 * each decision is O(1). This is the same budget as the leaky bucket most
 * APIs document: Shopify's bucket of 40 leaking 2/s is GCRA(burst 40,
 * rate 2/s). To run at the upstream limit without being throttled, a
 * request is granted only when it fits, the grant says how long to wait
 * otherwise, and what the upstream reports corrects the estimate upwards
 * only (rl_observe()): its usage headers, and Retry-After, before which
 * nothing is granted. A small safety margin (a couple of the burst's slots,
 * one percent of the rate, both configurable) absorbs network latency
 * jitter, so requests that arrive bunched up still fit.
 *
 * With a Redis URL, buckets live in Redis behind one atomic Lua script
 * using Redis's clock, so several hubd processes share one upstream budget.
 * Redis is only ever talked to asynchronously, on the loop. When it is
 * unreachable or too slow, buckets fall back to local ones running at a
 * safe fraction of the rate (logged once per outage) while a reconnect with
 * backoff runs; they switch back when Redis answers again.
 *
 * Either way rl_acquire() answers through a callback, always from the loop
 * and never from inside rl_acquire(), so callers handle both the same way.
 * Inbound limits (per source IP for webhooks and the admin API) use
 * rl_check(), synchronous and per process.
 *
 * Everything here runs on the thread of the event_base given to rl_new().
 */
#ifndef HUB_RATELIMIT_H
#define HUB_RATELIMIT_H

#include <stdint.h>

struct event_base;
struct rl;

/* Where buckets live right now. Never renumbered. */
enum rl_mode {
	RL_MODE_LOCAL = 0,    /* no Redis configured */
	RL_MODE_REDIS = 1,    /* shared buckets in Redis */
	RL_MODE_FALLBACK = 2, /* Redis configured but unreachable: local at a fraction */
};

/* A bucket's declared budget. */
struct rl_params {
	double burst; /* requests that may go at once; values below 1 count as 1 */
	double rate;  /* sustained requests per second; must be > 0 */
};

/*
 * Limiter settings. Fill with rl_opts_init() (the defaults noted), then
 * change what you need. Strings are copied by rl_new().
 */
struct rl_opts {
	/* "redis://[[user]:password@]host[:port][/db]" (IPv6 hosts in
	 * brackets, password not percent-decoded) or NULL for local buckets.
	 * hiredis resolves the host name synchronously on each (re)connect:
	 * give an address or a name from /etc/hosts to keep the loop free. */
	const char *redis_url;
	/* Prefix of the Redis keys (default "hub:rl:"). */
	const char *redis_prefix;
	/* Share of a bucket's burst and rate used while Redis is unreachable,
	 * in (0, 1] (default 0.5: two hubd falling back together stay within
	 * the budget). */
	double fallback_fraction;
	/* Share of the burst kept unused, at least one slot when the burst is 2
	 * or more and this is > 0 (default 0.05: 2 of Shopify's 40). */
	double burst_margin;
	/* Share of the rate kept unused (default 0.01). */
	double rate_margin;
	/* A Redis call unanswered for this long is answered locally and the
	 * connection is dropped and re-made (default 250). */
	int64_t redis_timeout_ms;
	/* Reconnect backoff bounds (defaults 100 and 5000). */
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	/* Clock of local buckets in ms (monotonic); NULL = CLOCK_MONOTONIC.
	 * Tests inject one. Redis buckets always use Redis's clock. */
	int64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

/* Fills `opts` with the defaults above (local buckets, no Redis). */
void rl_opts_init(struct rl_opts *opts);

/*
 * Creates a limiter on `base` with `opts` (NULL: defaults). With a Redis
 * URL it starts connecting at once and is in RL_MODE_FALLBACK until the
 * connection is up and the script loaded (a few ms on a LAN). Returns NULL
 * when out of memory or when the Redis URL is malformed (logged, without
 * the URL, which may hold a password). Free with rl_free().
 */
struct rl *rl_new(struct event_base *base, const struct rl_opts *opts);

/*
 * Frees the limiter. Acquisitions still pending get their callback, from
 * inside rl_free(), with RL_CANCELLED. Must not be called from one of its
 * own callbacks.
 */
void rl_free(struct rl *rl);

/* Outcome of an acquisition. Never renumbered. */
enum rl_status {
	RL_GRANTED = 0,   /* go now: the request has been counted */
	RL_WAIT = 1,      /* nothing counted: ask again in wait_ms */
	RL_CANCELLED = 2, /* the limiter is being freed */
};

struct rl_result {
	enum rl_status status;
	int64_t wait_ms;   /* RL_WAIT: at least 1 */
	enum rl_mode mode; /* who decided: local, Redis, or local fallback */
};

/* Receives an acquisition's result (borrowed for the call). */
typedef void (*rl_done_fn)(void *arg, const struct rl_result *res);

/*
 * Asks for one request's worth of `key` under `params`. `cb` is called
 * exactly once, on the loop and never from inside rl_acquire(): granted, or
 * told how long to wait before asking again (a denial reserves nothing, so
 * whoever asks first when the slot frees gets it). `key` and `params` are
 * copied. Returns 0, or -1 (no callback) for invalid arguments (NULL key or
 * callback, rate <= 0) or when out of memory.
 */
int rl_acquire(struct rl *rl, const char *key, const struct rl_params *params, rl_done_fn cb, void *arg);

/*
 * Corrects a bucket from what the upstream reported in a response: `used`
 * requests of `capacity` (either <= 0: unknown), refilling at `rate` per
 * second (<= 0: unknown), and a Retry-After of `retry_after_ms` (<= 0:
 * none). The estimate only ever goes up: afterwards the bucket counts at
 * least `used` requests, grants nothing before now + retry_after_ms, and
 * uses at most the reported capacity and rate (remembered for the bucket)
 * where they are below `params`. Applied locally at once and, with Redis,
 * sent there too (fire and forget).
 */
void rl_observe(struct rl *rl, const char *key, const struct rl_params *params, double used,
		double capacity, double rate, int64_t retry_after_ms);

/*
 * Synchronous local check for inbound limits, e.g. key "in/hooks/<ip>":
 * returns 0 and counts the request when it fits `params` exactly (no
 * margins, never Redis), or the ms to wait (> 0: answer 429 with
 * Retry-After). Keys share one table with rl_acquire(): prefix them.
 */
int64_t rl_check(struct rl *rl, const char *key, const struct rl_params *params);

/* Counters for metrics and tests. */
struct rl_stats {
	enum rl_mode mode;
	uint64_t granted;         /* acquisitions granted */
	uint64_t waits;           /* acquisitions told to wait */
	uint64_t redis_answers;   /* acquisitions Redis decided */
	uint64_t local_answers;   /* acquisitions decided locally (incl. fallback) */
	uint64_t redis_failures;  /* times Redis was lost (connection, timeout) */
	uint64_t buckets;         /* local buckets in memory */
};

/* Fills `st` with the limiter's counters. */
void rl_get_stats(const struct rl *rl, struct rl_stats *st);

/* Returns "local", "redis" or "fallback" (static strings). */
const char *rl_mode_name(enum rl_mode mode);

#endif
