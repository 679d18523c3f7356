/*
 * store_int.h - what the store's own files share: queued items, the unit
 * layout and the execution context the store thread hands to the unit and
 * op builders. Not for use outside core/store*.c.
 *
 * The store thread runs a batch of items in one transaction. For each item
 * it asks a builder (store_unit_build, store_op_build) to append that item's
 * statements to a script; the builder never talks to the database itself,
 * so the statements of many items travel together. An op that needs to see
 * a result before choosing its next statements asks for another phase.
 */
#ifndef HUB_STORE_INT_H
#define HUB_STORE_INT_H

#include <stdint.h>
#include <jansson.h>

#include "crypto.h"
#include "store.h"
#include "store_sql.h"

/* Null marker for optional millisecond times. */
#define STORE_NO_TIME INT64_MIN

/* An order line's columns, borrowed from the record's JSON. */
struct unit_line {
	const char *external_id, *sku, *title;
	int64_t quantity, unit_price;
};

struct unit_record {
	enum hub_record_kind kind;
	char *text;  /* the record as stored (compact JSON) */
	size_t text_len;
	char *extra; /* shipment: tracking numbers (JSON array); tracking: events
	                (JSON array) */
	/* The columns, in `own` once the record is accepted (the JSON value is
	 * released on the thread that made it; a unit holds no JSON). */
	const char *external_id, *number, *name, *status, *financial_status,
		*fulfillment_status, *currency, *order_external_id, *carrier, *tracking_number;
	int64_t total, created_ms, updated_ms, shipped_ms, estimated_ms, delivered_ms;
	int not_found;
	struct unit_line *lines; /* order; in `own` */
	size_t nlines;
	const char *numbers;     /* shipment: its tracking numbers, each NUL-terminated */
	size_t nnumbers;
	char *own;               /* one block: the lines, then every string above */
};

struct unit_job {
	char *action;
	char *payload;
	int64_t run_at_ms;
};

struct unit_dead {
	char *kind;
	char *payload;
	char *reason;
	char *field;
	int upstream_status;
};

struct store_unit {
	char *merchant, *connector;
	char id[33]; /* random, drawn with the first job or dead letter: makes their
	                inserts idempotent on retry ("" until then) */
	struct unit_record *records;
	size_t nrecords, records_cap;
	struct unit_job *jobs;
	size_t njobs, jobs_cap;
	struct unit_dead *dead;
	size_t ndead, dead_cap;
	char *stream, *cursor;
	char *delivery_id;
	int64_t receipt_expires_ms;
	char *access_token;
	int64_t token_expires_ms;
	int has_token;
	int64_t next_check_ms;
	int64_t deadline_ms;
	int fail_fast;
	int fault;
};

struct store_waiter;

/* A queued unit or op and its outcome. */
struct store_item {
	struct store_item *next;
	struct store_unit *unit; /* a unit, or NULL for an op */
	enum store_op op;
	json_t *params;
	/* outcome of the current attempt (kept small: items are allocated per
	 * submit on the loop thread and freed there) */
	enum store_status status;
	struct hub_error *err; /* detail when it failed; see store_item_err */
	json_t *result;
	json_t *scratch; /* op state carried between phases */
	struct {
		unsigned records, written, unchanged, dead_letters, shipments_tracked;
	} n;
	int64_t rows;    /* rows seen by the op's counting statements */
	int final;       /* failed for good within this batch */
	/* PostgreSQL bulk path: the unit's webhook receipt went into the bulk
	 * statement (1), which returned it as newly stored (2); still 1 after
	 * the statement ran means "a duplicate delivery: nothing written". */
	int receipt_folded;
	unsigned phase;
	/* completion */
	store_unit_cb ucb;
	store_op_cb ocb;
	void *arg;
	struct store_waiter *waiter;
	int64_t deadline_ms;
	int fail_fast;
	int64_t queued_us; /* monotonic time it was queued (group commit) */
	/* Lanes: the hashes of the rows a parallel unit writes (see
	 * store_unit_keys); nkeys 0 and keys NULL for an item that runs alone. */
	uint64_t *keys, key_one[2];
	unsigned nkeys;
};

/* What builders may use while the store thread builds a batch. */
struct store_exec {
	enum sql_dialect dialect;
	int64_t now_ms;
	const unsigned char *key;
	const char *instance_id;
	int schema_version;
	/* PostgreSQL: the last written_seq drawn (see SQL_ORDERS_BULK_PG);
	 * only grows, so it is unique within any transaction of the lane. */
	int64_t written_seq;
};

/*
 * Appends the statements of a unit (item number `index`) to s; its order
 * records are left out when skip_orders is set (they go in a bulk
 * statement). Returns 0, or -1 when out of memory. Store thread.
 */
int store_unit_build(struct store_exec *x, struct store_item *it, unsigned index,
		     struct sql_script *s, int skip_orders);

/* Bytes of the order records of a unit (to size chunks). */
size_t store_unit_order_bytes(const struct store_unit *u);

/*
 * PostgreSQL, optimistic path: appends ONE statement upserting the order
 * records of the units among items[from..to) (not final), and one more
 * replacing the lines of the orders it wrote, both item SQL_ITEM_MANY. Records of the same key keep the newest version (the
 * first of equals), as running them one by one would. Written orders are
 * counted on their units.
 *
 * Webhook units holding only orders also have their receipt inserted by
 * that statement (ON CONFLICT DO NOTHING), and their orders are written
 * only when the receipt was new: a duplicate writes nothing, as with the
 * per-unit receipt INSERT, without one statement per webhook. Units whose
 * delivery id or order keys also occur in another unit of the chunk keep
 * the per-unit INSERT (appended here), so that the newest-version rule
 * never depends on a receipt. Returns 0, or -1 when out of memory.
 */
int store_unit_build_orders_bulk(struct store_exec *x, struct store_item **items, size_t from,
				 size_t to, struct sql_script *s);

/* Fills the unit's counters once its statements ran; a unit whose folded
 * receipt was not new becomes STORE_DUPLICATE (final). */
void store_unit_done(struct store_exec *x, struct store_item *it);

/* Whether the bulk statement may carry the unit's receipt: a webhook
 * delivery holding nothing but order records. */
int store_unit_receipt_foldable(const struct store_unit *u);

/*
 * Lanes (core/store.c): the rows a unit writes, as hashes, when the unit may
 * run in a batch beside another lane's batch - a unit holding only order
 * records, with no cursor, token, job, dead letter or injected fault. Fills
 * keys[0..max) with the hashes of its webhook receipt and of each order's
 * key, and returns how many it has (possibly more than max: call again with
 * room), or -1 when the unit must run alone. Any thread.
 */
int store_unit_keys(const struct store_unit *u, uint64_t *keys, size_t max);

/*
 * Appends the statements of the op's current phase (it->phase, from 0).
 * Returns 0 when this was the last phase, 1 when another phase follows
 * (the executor runs what was added, then calls again with phase + 1), or
 * -1 when the op fails without touching the database (it->status and
 * it->err set: bad parameters, out of memory). Store thread.
 */
int store_op_build(struct store_exec *x, struct store_item *it, unsigned index,
		   struct sql_script *s);

/* Completes the op's result once all its phases ran (may set
 * STORE_NOT_FOUND). Store thread. */
void store_op_done(struct store_exec *x, struct store_item *it);

/* STORE_OP_LEASES_RENEW (core/store_lease.c): the phases and the result,
 * as store_op_build and store_op_done. */
int store_lease_build(struct store_exec *x, struct store_item *it, unsigned index,
		      struct sql_script *s);
void store_lease_done(struct store_exec *x, struct store_item *it);

/* Frees what an attempt produced so the item can run again. */
void store_item_reset(struct store_item *it);

/* The item's error detail, allocated (zeroed) on first use; a scratch
 * buffer of the calling thread when out of memory. Never NULL. */
struct hub_error *store_item_err(struct store_item *it);

/* Makes a unit's outcome "duplicate webhook delivery: nothing written"
 * (final for this batch). */
void store_item_duplicate(struct store_item *it);

/* Milliseconds since the epoch, wall clock. */
int64_t store_now_ms(void);

#endif
