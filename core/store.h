/*
 * store.h - the central store: every order, shipment and tracking event,
 * connector configs, cursors, outbox jobs, dead letters, tokens and audit.
 *
 * One narrow interface over two backends chosen by URL: "sqlite:/path/hub.db"
 * (embedded default, WAL, synchronous=FULL so an acknowledged commit survives
 * a power cut) and "postgresql://..." or "postgres://..." (libpq). Schema
 * changes are numbered migrations applied at open; a database written by a
 * newer hubd is refused.
 *
 * Threads: a store thread owns the database connection. The event-loop
 * thread submits work (units and ops) through a queue and never blocks; the
 * store thread takes everything queued (up to batch_max items; under load it
 * waits up to 300 us for a small batch to fill), runs it in
 * ONE transaction (group commit) in which a bad item fails alone (it is
 * rolled back, by a savepoint or by running the batch again without it),
 * commits, and hands results back to the loop, where the callbacks run. If the database is unreachable the store thread reconnects
 * with backoff; queued work stays queued and is retried, and is never
 * reported done before its commit. Work marked fail-fast (webhooks) is
 * refused at once while the store is down.
 *
 * A unit is what one plugin call produced: canonical records, the stream
 * cursor that covers them, outbox jobs, dead letters and optionally the
 * webhook delivery id that deduplicates it. A unit commits all-or-nothing.
 * Records are keyed by (merchant, connector, external_id); an upsert never
 * lets an older source version (by updated_at) replace a newer one, and an
 * equal updated_at changes nothing, so replays and duplicates are harmless.
 *
 * Ops are the other reads and writes (admin API queries, connector config,
 * tokens, job claims...): JSON parameters in, a JSON result out, see
 * enum store_op.
 */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

struct event_base;
struct store;
struct store_unit;

/* Outcome of a unit or an op. Never renumbered. */
enum store_status {
	STORE_OK = 0,          /* committed (or read) */
	STORE_DUPLICATE = 1,   /* the unit's webhook delivery id was already stored: nothing written */
	STORE_INVALID = 2,     /* bad parameters or data refused by a constraint: nothing written */
	STORE_NOT_FOUND = 3,   /* the op's target does not exist */
	STORE_UNAVAILABLE = 4, /* the database is unreachable: nothing written, try again later */
	STORE_FAILED = 5,      /* the database refused the write (disk full, ...): nothing written */
};

/* Name of a status, "ok", "duplicate"... (static string). */
const char *store_status_name(enum store_status status);

struct store_options {
	const char *url;         /* required: "sqlite:/path/file.db" or "postgresql://..." */
	const char *state_dir;   /* required: holds secret.key (created 0600 at first start) */
	unsigned batch_max;      /* items per transaction; 0 = 1000 */
	unsigned queue_max;      /* items queued before submit refuses; 0 = 100000 */
	const char *instance_id; /* who claims jobs; NULL = "<hostname>:<pid>" */
	unsigned lanes;          /* PostgreSQL: connections writing batches side by side
	                            (1-8; 0 = 1); SQLite always has one */
};

/*
 * Opens the store: loads (or creates) the secret key, connects, applies the
 * pending migrations in one transaction, and starts the store thread.
 * `base` is the event loop where async callbacks run; it may be NULL when
 * only the _sync functions are used (tests, CLI tools). Returns 0 with *out
 * set, or -1 with err saying why (unreachable database, database newer than
 * this binary, unreadable key...). Call from the loop thread.
 */
int store_open(struct store **out, struct event_base *base, const struct store_options *opt,
	       struct hub_error *err);

/*
 * Stops the store: refuses new work, lets the store thread commit what is
 * queued (work it cannot commit because the database is down is reported
 * STORE_UNAVAILABLE), joins it, runs the remaining callbacks on the calling
 * thread, closes the connection and frees st. Call from the loop thread.
 */
void store_close(struct store *st);

/* "sqlite" or "postgresql". */
const char *store_backend(const struct store *st);

/* 1 when the store thread holds a working connection, else 0 with the last
 * error in why (may be NULL). Any thread. */
int store_available(struct store *st, char *why, size_t size);

/* Counters since store_open, for metrics. */
struct store_counters {
	uint64_t batches;       /* transactions committed */
	uint64_t items;         /* units and ops completed (any outcome) */
	uint64_t items_failed;  /* completed with an outcome other than ok/not_found */
	uint64_t reruns;        /* batches run again without a failed item */
	uint64_t safe_batches;  /* batches that fell back to a savepoint per item */
	uint64_t overlapped;    /* batches that ran beside another (PostgreSQL lanes) */
	uint64_t reconnects;    /* connections re-established after a loss */
	uint64_t syncs;         /* syncs the store made of committed batches (SQLite "full":
	                           the WAL, before reporting them); 0 when commits sync */
	uint64_t sync_us;       /* time those syncs took */
	uint64_t sync_us_max;   /* the longest since the last store_counters_take */
	uint64_t batch_us;      /* time spent running batches (SQL and commit) */
	uint64_t batch_us_max;  /* the longest batch since the last store_counters_take */
	size_t queued;          /* items waiting now */
	int up;                 /* database reachable */
};

/* Copies the counters. Any thread. */
void store_counters(struct store *st, struct store_counters *out);

/* Same, and starts batch_us_max and sync_us_max over (for a scrape: the
 * longest since the previous one). Any thread. */
void store_counters_take(struct store *st, struct store_counters *out);

/* Test hook: while held (1), the store thread starts no new batch, so that
 * work submitted meanwhile is committed together once released (0). */
void store_hold(struct store *st, int hold);

/* ---- units ----------------------------------------------------------- */

/* Creates an empty unit for one connector of one merchant (both copied).
 * Returns NULL when out of memory. The caller owns it until store_submit. */
struct store_unit *store_unit_new(const char *merchant, const char *connector);

/* Frees a unit that was not submitted. NULL is ignored. */
void store_unit_free(struct store_unit *u);

/*
 * Adds a canonical record (order, shipment or tracking; see sdk/schema/).
 * Steals the reference to `record`, even on failure. The fields the store
 * relies on are checked (ids, times, status words, money, lines, events);
 * a record that fails is not written but turned into a dead letter of this
 * unit (kind "record:order", "record:shipment" or "record:tracking"), with
 * err naming the field and the reason, and -1 is returned; the rest of the
 * unit still commits. 0 when accepted. Caller's thread.
 */
int store_unit_add_record(struct store_unit *u, enum hub_record_kind kind, json_t *record,
			  struct hub_error *err);

/* Sets the cursor of `stream` committed with the unit's records. Steals
 * `cursor`. Returns 0 or -1 (out of memory). */
int store_unit_set_cursor(struct store_unit *u, const char *stream, json_t *cursor);

/* Queues an outbox job of this connector, committed with the unit (once,
 * even when the unit is retried). Steals `payload`. run_at_ms 0 = now. */
int store_unit_add_job(struct store_unit *u, const char *action, json_t *payload,
		       int64_t run_at_ms);

/* Makes the unit a webhook delivery: when (connector, delivery_id) was
 * already received and has not expired, the unit reports STORE_DUPLICATE
 * and writes nothing. The receipt is kept until expires_at_ms. */
int store_unit_set_receipt(struct store_unit *u, const char *delivery_id, int64_t expires_at_ms);

/* Adds a dead letter: `kind` says what it was ("record:order", "webhook",
 * "job:push_tracking"...), payload what to replay (stolen, may be NULL),
 * reason and field why it failed (copied, field may be NULL), upstream_status
 * the HTTP status involved or 0. */
int store_unit_add_dead_letter(struct store_unit *u, const char *kind, json_t *payload,
			       const char *reason, const char *field, int upstream_status);

/* Stores a new access token of the connector (sealed with the secret key)
 * with its expiry, committed with the unit. */
int store_unit_set_access_token(struct store_unit *u, const char *token, int64_t expires_at_ms);

/* When the tracking numbers of this unit's tracking records are due for
 * their next check (default: one hour after the commit). */
void store_unit_set_next_check(struct store_unit *u, int64_t next_check_ms);

/* Marks the unit fail-fast: refused at once while the store is down, and
 * reported STORE_UNAVAILABLE if not committed by deadline_ms (0 = no
 * deadline). For webhooks, whose sender retries. */
void store_unit_set_deadline(struct store_unit *u, int64_t deadline_ms);

/* Test hook: makes the unit fail inside the database after all its writes,
 * so its rollback can be observed. */
void store_unit_inject_fault(struct store_unit *u);

/* Number of records and dead letters in the unit. */
size_t store_unit_size(const struct store_unit *u);

struct store_unit_result {
	enum store_status status;
	unsigned records;      /* records in the unit */
	unsigned written;      /* records inserted or updated (newer versions) */
	unsigned unchanged;    /* records ignored because stored ones are as new or newer */
	unsigned dead_letters; /* dead letters written */
	unsigned shipments_tracked; /* shipments updated by tracking records */
	struct hub_error err;  /* detail when status != STORE_OK */
};

/* Called on the loop thread when the unit is committed or has failed.
 * `res` is valid during the call only. */
typedef void (*store_unit_cb)(void *arg, const struct store_unit_result *res);

/*
 * Queues a unit (the store takes ownership, even on failure). Returns 0
 * when queued: cb runs later on the loop thread, exactly once. Returns -1
 * with err when refused now (store closing, queue full, or down and the
 * unit is fail-fast); cb is then never called. Any thread (webhook
 * workers queue their units themselves); cb always runs on the loop. Needs
 * a base given to store_open. Before store_close, every thread that may
 * submit must have stopped.
 */
int store_submit(struct store *st, struct store_unit *u, store_unit_cb cb, void *arg,
		 struct hub_error *err);

/* Queues a unit and waits for its result (the store takes the unit). Never
 * call it from the loop thread. Returns res->status. */
enum store_status store_submit_sync(struct store *st, struct store_unit *u,
				    struct store_unit_result *res);

/* ---- ops --------------------------------------------------------------- */

/*
 * Ops. Parameters and results are JSON objects; times are milliseconds since
 * the epoch unless said otherwise; "limit" defaults to 100 (max 1000);
 * lists return {"items": [...], "next_cursor": "..." or null}: pass
 * next_cursor back as "cursor" for the following page (keyset pagination,
 * stable under concurrent inserts). Optional "now_ms" overrides the clock.
 * Ops are fail-fast: refused at once while the database is unreachable,
 * and reported STORE_UNAVAILABLE if still queued after 10 seconds.
 */
enum store_op {
	/* {merchant?, connector?, status?, sku?, updated_since?, limit?, cursor?}
	 * -> orders newest first: items = records + {"id", "merchant", "connector"} */
	STORE_OP_ORDERS_LIST = 1,
	/* {id} or {merchant?, connector, external_id}; "merchant" also scopes by id
	 * -> {"order": record+ids, "lines": [...], "shipments": [...]} */
	STORE_OP_ORDER_GET = 2,
	/* {merchant?, connector?, status?, order_external_id?, updated_since?, limit?, cursor?} */
	STORE_OP_SHIPMENTS_LIST = 3,
	/* {id} or {merchant?, connector, external_id} -> {"shipment": ..., "events": [...]} */
	STORE_OP_SHIPMENT_GET = 4,
	/* {connector?, merchant?, include_replayed?, limit?, cursor?} -> newest first */
	STORE_OP_DEAD_LETTERS_LIST = 5,
	/* {id} -> the entry, now marked replayed; NOT_FOUND when missing or
	 * already replayed */
	STORE_OP_DEAD_LETTER_REPLAYED = 6,
	/* {name, plugin, merchant, config: {...}, secret_keys?: [...], paused?}
	 * Creates or replaces a connector; top-level config keys listed in
	 * secret_keys are sealed. A secret given as null keeps the stored one.
	 * -> {"name", "created": bool} */
	STORE_OP_CONNECTOR_PUT = 7,
	/* {name, reveal?} -> connector; secrets are "********" unless reveal */
	STORE_OP_CONNECTOR_GET = 8,
	/* {merchant?, reveal?} -> {"items": [...]} */
	STORE_OP_CONNECTORS_LIST = 9,
	/* {name} -> {} ; NOT_FOUND when missing. Its cursors, webhook receipts
	 * and polling lease (connector_leases) go too, in the same transaction. */
	STORE_OP_CONNECTOR_DELETE = 10,
	/* {name, paused: bool} -> {} */
	STORE_OP_CONNECTOR_PAUSE = 11,
	/* {connector} -> {"<stream>": {"cursor": ..., "updated_at_ms": n}, ...} */
	STORE_OP_CURSORS_GET = 12,
	/* {connector, stream, cursor (null deletes)} -> {} */
	STORE_OP_CURSOR_PUT = 13,
	/* {name, hash (sha256 hex), role, merchant?} -> {"id"}; INVALID when the
	 * name or hash exists */
	STORE_OP_TOKEN_CREATE = 14,
	/* {hash} -> {"name", "role", "merchant", ...}; NOT_FOUND when unknown or
	 * revoked. Updates last_used_ms (at most once a minute). */
	STORE_OP_TOKEN_LOOKUP = 15,
	/* {name} -> {}; NOT_FOUND when unknown or already revoked */
	STORE_OP_TOKEN_REVOKE = 16,
	/* {} -> {"items": [...]} (hashes are never returned) */
	STORE_OP_TOKENS_LIST = 17,
	/* {token?, action, target?, detail?} -> {"id"} */
	STORE_OP_AUDIT_APPEND = 18,
	/* {limit?, cursor?} -> newest first */
	STORE_OP_AUDIT_LIST = 19,
	/* {limit?, lease_ms?, connector?} -> {"items": [{"id","connector","action",
	 * "payload","attempts","last_error","created_at_ms"}]}. Claims due jobs
	 * (and jobs whose lease expired) until now + lease_ms (default 60 s);
	 * PostgreSQL skips rows other processes hold. */
	STORE_OP_JOBS_CLAIM = 20,
	/* {id} -> {} : done, removed */
	STORE_OP_JOB_COMPLETE = 21,
	/* {id, error, next_run_ms?, dead?, upstream_status?} -> {"dead": bool}.
	 * dead (or no next_run_ms) moves the job to the dead letters. */
	STORE_OP_JOB_FAIL = 22,
	/* {carrier, merchant?, limit?, lease_ms?, checked_before_ms?} -> {"items": [{"tracking_number",
	 * "shipments", "not_found_count"}]}: tracking numbers of undelivered
	 * shipments due for a check, leased until now + lease_ms (default 10 min);
	 * with checked_before_ms, also those not checked since then (a recheck) */
	STORE_OP_TRACKING_DUE = 23,
	/* {id, name?} -> {} */
	STORE_OP_MERCHANT_PUT = 24,
	/* {} -> {"items": [...]} */
	STORE_OP_MERCHANTS_LIST = 25,
	/* {} -> {"receipts": n}: deletes expired webhook receipts */
	STORE_OP_PRUNE = 26,
	/* {estimate?} -> {"orders": n, "shipments": n, "jobs": n, "dead_letters": n,
	 * "schema_version": n}, and with SQLite "sqlite_cache_kib": the page cache of
	 * the store's connection (the URL's cache_mb, in KiB) and "sqlite_synchronous"
	 * (its PRAGMA synchronous: 1 NORMAL, 2 FULL; "full" stores run 1 and the
	 * store syncs the WAL itself before reporting a batch). Exact counts;
	 * with "estimate": true, PostgreSQL answers orders and shipments from its
	 * statistics (n_live_tup) instead of reading the tables */
	STORE_OP_STATS = 27,
	/* {carrier, numbers: [..], next_check_ms?} -> {"released": n shipments}: gives
	 * back the lease of numbers whose check failed, so they are due again
	 * at next_check_ms (default now) instead of when the lease ends. A
	 * number due earlier than that keeps its time. */
	STORE_OP_TRACKING_RELEASE = 28,
	/* Polling leases (several hubd on one database, see core/lease.h).
	 * {owner, ttl_ms, connectors: [names wanted], release?: [names],
	 * leave?: bool} -> {"held": [names], "instances": n, "share": n,
	 * "excess": n}. Marks `owner` alive until now + ttl_ms, first drops its
	 * leases named in `release`, then renews the leases it holds among
	 * `connectors` and takes free or expired ones up to its fair share
	 * (ceil(connectors / live instances)); "held" is what it holds now,
	 * until now + ttl_ms, "excess" how many it holds above its share (to
	 * hand back, idle ones first, through `release`). A lease another
	 * owner holds unexpired is never taken. leave: drops every lease of
	 * `owner` and its instance row, holds nothing. */
	STORE_OP_LEASES_RENEW = 29,
};

/* Called on the loop thread with the op's outcome. `result` (borrowed, may
 * be NULL on failure) and `err` are valid during the call only; take a
 * reference with json_incref to keep the result. */
typedef void (*store_op_cb)(void *arg, enum store_status status, json_t *result,
			    const struct hub_error *err);

/*
 * Queues an op. Steals `params` (NULL = {}), even on failure. Returns 0
 * when queued (cb runs later on the loop thread, exactly once) or -1 with
 * err when refused now. Loop thread only.
 */
int store_call(struct store *st, enum store_op op, json_t *params, store_op_cb cb, void *arg,
	       struct hub_error *err);

/* Runs an op and waits for it. Steals params. On STORE_OK *result (if not
 * NULL) gets a new reference the caller releases; else err (may be NULL)
 * is filled. Never call it from the loop thread. */
enum store_status store_call_sync(struct store *st, enum store_op op, json_t *params,
				  json_t **result, struct hub_error *err);

#endif
