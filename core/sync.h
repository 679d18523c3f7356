/*
 * sync.h - the sync engine: drives every connector's streams and jobs
 * through its plugin. For each stream step it asks the plugin for the next
 * request, waits for a rate-limit token, sends it on the curl multi client,
 * lets the plugin read the response, and commits the records together with
 * the cursor that covers them; only then does the cursor advance. Failures
 * go through the retry policy and each connector's circuit breaker; what
 * cannot be retried becomes a dead letter. Expiring access tokens are
 * refreshed through the plugin's "refresh_token" action before they expire
 * and once on a 401. Outbox jobs run through the owning plugin with the
 * same limits and retries.
 *
 * Scheduling is timers only: one evtimer per stream, so thousands of
 * connectors cost nothing while idle and the loop stays fair. Connectors
 * attached at start-up make their first sync at evenly spread points of
 * their poll interval (at most start_spread_s), not all at once; a
 * connector added later starts within a second, and on-demand syncs run at
 * once. Requests beyond the HTTP client's in-flight limits wait there.
 *
 * Threads: loop thread only.
 */
#ifndef HUB_SYNC_H
#define HUB_SYNC_H

#include <stdint.h>
#include <jansson.h>

struct event_base;
struct store;
struct plugin_registry;
struct http_client;
struct rl;
struct metrics;
struct connector;

/* How long a tracking step holds the numbers it leased: longer than any
 * step with its retries takes (config_load refuses a retry policy whose
 * windows add up to more), so that two steps never check one number. */
#define SYNC_TRACKING_LEASE_MS 600000

struct sync_opts {
	struct event_base *base;
	struct store *store;
	struct plugin_registry *reg;
	struct http_client *http;
	struct rl *rl;
	struct metrics *metrics;
	int default_interval_s;   /* when neither plugin nor connector sets one (default 300) */
	int request_timeout_ms;   /* per upstream request */
	int job_interval_ms;      /* job claim period (default 1000) */
	int token_margin_s;       /* refresh tokens this long before expiry (default 120) */
	int start_spread_s;       /* most a first sync at start-up waits (0: within a second) */
	int lease_ttl_ms;         /* > 0: several hubd share the store; poll only the connectors
				   * whose lease this process holds (lease.h); 0: poll all */
	const char *lease_owner;  /* this hubd's lease owner name, the same across restarts
				   * (NULL: one made up per process, see lease.h) */
	/* Retry policy of stream steps, outbox jobs and token refreshes
	 * (retry.h); 0 takes the default noted. */
	int retry_base_ms;        /* window of the first retry (default 500) */
	int retry_cap_ms;         /* largest window (default 60000) */
	int retry_max_attempts;   /* attempts in all, the first included (default 8);
				   * a step that used them up ends its round */
};

struct sync;

/* Creates the engine and starts the job runner. Returns NULL when out of
 * memory. */
struct sync *sync_new(const struct sync_opts *opts);

/* Stops scheduling new work; in-flight steps finish. */
void sync_stop(struct sync *sy);

/* Steps and jobs in flight (waiting for upstream or the store). */
int sync_busy(const struct sync *sy);

/* Frees the engine (call after the loop stopped; connectors are detached). */
void sync_free(struct sync *sy);

/* Replaces the retry policy of stream steps, outbox jobs and token
 * refreshes (as in sync_opts; 0 takes the default). It applies to every
 * failure from now on: each backoff computed and each "attempts used up"
 * decision after this call, including the next failure of a step that is
 * already retrying (its attempts so far count against the new
 * max_attempts). A backoff already waiting keeps the delay it was given.
 * The caller checks the values (config_load does). Loop thread. */
void sync_set_retry(struct sync *sy, int base_ms, int cap_ms, int max_attempts);

/* Per-connector settings (from the config file or the admin API). */
struct sync_settings {
	int paused;
	int poll_interval_s;     /* 0: the plugin's default per stream */
	int64_t backfill_since_ms; /* 0: none; the first sync of a stream starts here */
	json_t *rate_limits;     /* {"<bucket>": {"burst": n, "rate": n}} overrides, or NULL
				  * (borrowed; the engine keeps its own reference) */
	int spread_start;        /* 1 at start-up: the first sync of each stream comes at a
				  * point of min(interval, start_spread_s), spread evenly
				  * over the connectors attached so; 0: within a second */
};

/* Starts driving connector c: its streams are scheduled within a second,
 * or spread over their interval when set->spread_start (before
 * sync_start(), counted from sync_start(); after it, within a second).
 * 0 or -1. */
int sync_attach(struct sync *sy, struct connector *c, const struct sync_settings *set);

/* Start-up is done (the loop runs next): schedules the first runs of the
 * streams attached with spread_start, at their offsets from now. Attaching
 * 10,000 connectors takes seconds; counted from each attach, the offsets
 * that fell within those seconds would all be due at once. */
void sync_start(struct sync *sy);

/* Stops driving c; in-flight steps finish and drop their results' cursor
 * updates in memory (the store still commits them). */
void sync_detach(struct sync *sy, struct connector *c);

/* Pauses or resumes polling of c. Webhooks are not affected. */
void sync_pause(struct sync *sy, struct connector *c, int paused);

/* Runs stream `stream` (NULL: all) of c now. since_ms > 0 starts a
 * backfill from that time. Returns 0, or -1 if c has no such stream. */
int sync_trigger(struct sync *sy, struct connector *c, const char *stream, int64_t since_ms);

/* A webhook arrived for c: reconcile its streams soon (debounced). */
void sync_hint(struct sync *sy, struct connector *c);

/* Per stream: state, cursor, last success, last error, lag, rate-limit
 * wait, circuit; plus the on-demand sync's progress. New reference. */
json_t *sync_status(struct sync *sy, struct connector *c);

/* Whether c is attached and paused. */
int sync_paused(struct sync *sy, struct connector *c);

/* Moves a plugin call's outputs into a store unit: records (the unit takes
 * them; the store re-checks them), records the host refused as dead letters
 * with the field and the reason, queued actions as jobs, a new access token.
 * Leaves the call without them (call_release is still needed). */
struct hub_call;
struct store_unit;
void sync_call_to_unit(struct hub_call *call, struct store_unit *u, const char *connector);

/* Queues the job runner to claim jobs now (a unit with jobs committed). */
void sync_kick_jobs(struct sync *sy);

#endif
