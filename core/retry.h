/*
 * retry.h - what hubd does after an outbound request fails: classify the
 * failure (worth retrying or permanent), compute when to try again
 * (exponential backoff with full jitter, capped, never earlier than the
 * upstream's Retry-After), and per connector, a circuit breaker that pauses a
 * connector which keeps failing and lets single probes through after a
 * cool-down until one succeeds.
 *
 * Everything here is pure computation on caller-owned structs: no I/O, no
 * allocation, no clock reads (the caller passes `now_ms`) and, for
 * deterministic tests, an injectable random source. Call from the loop
 * thread, or from any thread for objects that thread owns.
 */
#ifndef HUB_RETRY_H
#define HUB_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/* What a failed (or successful) attempt means. Never renumbered. */
enum retry_verdict {
	RETRY_OK = 0,        /* success: nothing to retry */
	RETRY_TRANSIENT = 1, /* try again later: connection error, timeout, 408, 429, 5xx */
	RETRY_PERMANENT = 2, /* trying again gives the same answer: dead letter */
	RETRY_AUTH = 3,      /* 401/403: credentials refused; refresh once, then permanent */
};

/*
 * Classifies an attempt. `status` is the HTTP status, or 0 when no response
 * arrived; `transport_transient` then says whether the transport failure is
 * worth retrying (connection refused or dropped, timeout: yes; TLS
 * verification failure, response too large, invalid request: no). For
 * status != 0 it is ignored. Retryable: transport failures flagged
 * transient, 408, 429 and 5xx. 401 and 403 are RETRY_AUTH. 1xx-3xx are
 * RETRY_OK (redirects are not followed; the caller sees them as answers).
 * Everything else is permanent.
 */
enum retry_verdict retry_classify(int status, bool transport_transient);

/* Returns "ok", "transient", "permanent" or "auth" (static strings). */
const char *retry_verdict_name(enum retry_verdict verdict);

/*
 * A source of uniformly distributed 64-bit values. NULL in a policy means the
 * built-in generator (xorshift seeded from getrandom(2)), which is per thread.
 */
typedef uint64_t (*retry_rng_fn)(void *arg);

/*
 * A backoff policy. All durations in milliseconds. Zero fields take the
 * defaults noted. Owned by the caller; may be shared read-only.
 */
struct retry_policy {
	int64_t base_ms;       /* window of the first retry (default 500) */
	int64_t cap_ms;        /* largest window (default 300000 = 5 min) */
	unsigned max_attempts; /* attempts in all, first included (default 8) */
	int64_t max_age_ms;    /* give up this long after the first failure (default 24 h) */
	retry_rng_fn rng;      /* NULL: built-in */
	void *rng_arg;
};

/*
 * Returns the delay before retry number `attempt` (1 for the first retry,
 * i.e. after one failed attempt): a uniformly random value in
 * [0, min(cap, base * 2^(attempt-1))] ("full jitter", which spreads the
 * retries of many clients that failed together), raised to `retry_after_ms`
 * when the upstream asked for more (pass <= 0 for none). A Retry-After is
 * honoured even beyond the cap: the upstream said not before. Never negative.
 */
int64_t retry_backoff_ms(const struct retry_policy *policy, unsigned attempt, int64_t retry_after_ms);

/*
 * Whether to give up after `attempts` attempts in all, the first of which
 * failed at `first_failure_ms`, when the next one would start at
 * `next_attempt_ms`. True when the attempt or age limit is reached.
 */
bool retry_exhausted(const struct retry_policy *policy, unsigned attempts, int64_t first_failure_ms,
		     int64_t next_attempt_ms);

/*
 * Parses a Retry-After header value into a delay from `now_ms` (wall clock,
 * ms since the epoch, needed for the date form). Accepts delta-seconds,
 * fractional ones too ("2", "1.5", as Shopify sends), and an HTTP-date in
 * any of the three forms of RFC 9110 (IMF-fixdate, RFC 850, asctime). A date
 * in the past gives 0. Values are clamped to 1 day. Returns 0 with *delay_ms
 * set, or -1 (and *delay_ms untouched) when the value is not one of those.
 */
int retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms);

/* ---- circuit breaker ---------------------------------------------------- */

enum retry_circuit_state {
	RETRY_CIRCUIT_CLOSED = 0,    /* requests flow */
	RETRY_CIRCUIT_OPEN = 1,      /* paused until the cool-down ends */
	RETRY_CIRCUIT_HALF_OPEN = 2, /* one probe is out; its result decides */
};

/* Breaker settings; zero fields take the defaults noted. */
struct retry_circuit_opts {
	unsigned failure_threshold;      /* consecutive transient failures that open it (default 5) */
	unsigned auth_failure_threshold; /* consecutive auth failures that open it (default 2) */
	int64_t cooldown_ms;             /* first cool-down (default 30000) */
	int64_t max_cooldown_ms;         /* cool-down doubles per failed probe up to this (default 600000) */
};

/*
 * One connector's breaker. Plain data the caller embeds; use the functions
 * below rather than the fields. `reason` says why it opened (for status and
 * logs); it is never a secret as long as the reasons passed in are not.
 */
struct retry_circuit {
	struct retry_circuit_opts opts;
	enum retry_circuit_state state;
	unsigned failures;      /* consecutive transient failures */
	unsigned auth_failures; /* consecutive auth failures */
	int64_t cooldown_ms;    /* current cool-down */
	int64_t probe_at_ms;    /* when open: the earliest probe */
	int64_t opened_at_ms;
	unsigned opens;         /* times it opened since it was last closed by a success */
	char reason[256];
};

/* Sets up a closed breaker with `opts` (NULL: defaults). */
void retry_circuit_init(struct retry_circuit *c, const struct retry_circuit_opts *opts);

/*
 * Whether an attempt may start at `now_ms`. Closed: yes. Open: no until the
 * cool-down ends; then the breaker goes half-open and this one call says
 * yes (the probe). Half-open: no, until the probe reports back through
 * retry_circuit_success() or retry_circuit_failure().
 */
bool retry_circuit_allow(struct retry_circuit *c, int64_t now_ms);

/*
 * Milliseconds from `now_ms` until retry_circuit_allow() may say yes: 0 when
 * closed, the rest of the cool-down when open, -1 when half-open (waiting
 * for the probe's result, not for time).
 */
int64_t retry_circuit_wait_ms(const struct retry_circuit *c, int64_t now_ms);

/* Reports a successful attempt: closes the breaker and resets it. */
void retry_circuit_success(struct retry_circuit *c);

/*
 * Reports a failed attempt of kind `verdict` (RETRY_TRANSIENT or RETRY_AUTH
 * count; RETRY_PERMANENT is neutral, as the upstream answered, and RETRY_OK
 * is treated as a success). `what` describes the failure ("HTTP 503",
 * "connect: Connection refused"); it is copied. Opens the breaker when a
 * threshold is reached, or re-opens it with a doubled cool-down when a probe
 * failed. Returns true when this call opened it (log it then), else false.
 */
bool retry_circuit_failure(struct retry_circuit *c, enum retry_verdict verdict, const char *what,
			   int64_t now_ms);

/* The current state, and why it is open ("" when closed). */
enum retry_circuit_state retry_circuit_state(const struct retry_circuit *c);
const char *retry_circuit_reason(const struct retry_circuit *c);

/* Returns "closed", "open" or "half_open" (static strings). */
const char *retry_circuit_state_name(enum retry_circuit_state state);

#endif
