/*
 * store.c - the store thread, its queue, group commit, and completions back
 * on the event loop (see store.h for the contract).
 *
 * Queue: the loop thread appends items (units and ops) under a mutex and
 * signals a condition variable. The store thread takes everything queued,
 * up to batch_max, and runs it in one transaction; while work keeps coming
 * it first lets a small batch fill for up to 300 us (LINGER_*), as a
 * commit costs nearly the same for a few items as for dozens. Statements of many items
 * go to the backend together (PostgreSQL pipelines them), so a batch costs a
 * few round trips and one commit (one fsync) whatever its size. A failing
 * item is rolled back alone (see exec_batch: optimistic, then a SAVEPOINT
 * per item once a batch has shown failures); the others commit. Results are
 * handed out only after COMMIT succeeded.
 *
 * Faults: a lost connection puts the batch back at the head of the queue,
 * unreported, and the thread reconnects with exponential backoff (100 ms to
 * 5 s). Meanwhile fail-fast units (webhooks) are refused at submit time and
 * queued ones whose deadline passes are reported STORE_UNAVAILABLE. A retried
 * batch may repeat a commit whose acknowledgement was lost; that is harmless
 * because every write is idempotent (version-guarded upserts, ON CONFLICT DO
 * NOTHING on job/dead-letter keys derived from the unit's random id, and a
 * repeated webhook receipt reports "duplicate").
 *
 * Lanes (PostgreSQL, store_connections > 1): a batch spends much of its
 * time waiting - for the server's answer, for its commit's WAL flush - so a
 * second lane (thread and connection) can run the next batch meanwhile. Only batches of
 * "parallel" units overlap: units holding nothing but order records (webhook
 * deliveries), whose rows are known up front (store_unit_keys). A batch
 * taken while another lane runs holds only parallel units whose rows
 * (orders, webhook receipts) no running batch writes, so overlapping
 * batches never wait on each other's row locks nor deadlock, and a unit that
 * must wait blocks the later units that share a row with it (their order is
 * kept). Everything else - ops, cursors, shipments, tracking, jobs - runs
 * alone: its batch starts when no other lane runs and none starts beside
 * it, so it sees every unit queued before it committed, as with one lane.
 *
 * Completions: the store thread moves finished items to a done list and
 * writes one byte to a pipe the loop watches (only when the list was
 * empty); the loop drains the list and runs the callbacks. Synchronous
 * callers wait on their own condition variable instead.
 */
#include "config.h"
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include <hub/sdk.h>

#include "log.h"

#define BATCH_DEFAULT 1000
#define QUEUE_DEFAULT 100000
#define CHUNK_STMTS 1024
#define CHUNK_BYTES (512 * 1024)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PRUNE_EVERY_MS 60000
#define OP_DEADLINE_MS 10000
/* Group commit under load: a commit costs about the same for 5 items as for
 * 50 (one fsync, and the last page of every table and index written again),
 * so while work keeps coming (the previous batch ended less than
 * LINGER_BUSY_US ago) a batch waits until LINGER_ITEMS items are queued, or
 * its first item has waited LINGER_US. Light traffic never waits. (Measured
 * with bench/webhooks: 1 ms / 32 saved the most CPU but cost latency; 300 us
 * / 16 kept most of the saving at the best p99.) */
#define LINGER_ITEMS 16
#define LINGER_US 300
#define LINGER_BUSY_US 5000
/* Lanes on PostgreSQL (see "lanes" below): one unless configured. On a
 * 2-core machine sharing its CPUs with the server a second lane measured
 * slower (bench/webhooks: 15.4-16.8k webhooks/s against 18.1-19.7k with
 * one): batches half as large cost the server more per order, and there
 * is no idle CPU for the overlap to use. A second lane pays where round
 * trips, not CPU, bound a batch (a server on another host). */
#define LANES_PG 1
#define LANES_MAX 8
/* A lane starts a batch beside another's only for a backlog: BESIDE_ITEMS
 * queued, or the first of them waiting BESIDE_US. Smaller batches would
 * cost the server more per item than the overlap saves. */
#define BESIDE_ITEMS 16
#define BESIDE_US 1000

struct store_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

/* A set of row hashes (open addressing; 0 marks a free slot). */
struct keyset {
	uint64_t *slot;
	size_t cap, n;
};

enum { LANE_IDLE = 0, LANE_PARALLEL, LANE_ALONE };

/*
 * A lane: a thread with its own connection running one batch at a time.
 * SQLite has one (one writer); PostgreSQL as many as configured, so that a
 * batch runs while another waits for its commit (see "lanes" above).
 * Lane 0 also owns the store's state: up/down, reconnects, deadlines,
 * pruning and the drain at close.
 */
struct lane {
	struct store *st;
	unsigned id;
	pthread_t thread;
	int started;
	struct sql_conn *conn; /* the lane's thread only, once started */
	struct sql_script script;
	struct store_exec exec;
	struct store_item **batch;
	int64_t last_batch_end_us; /* monotonic */
	int64_t next_connect_ms;   /* lanes > 0: backoff after a failed connect */
	int64_t backoff_ms;
	char lost[sizeof(((struct sql_fail *)0)->message)]; /* why its connection went */
	/* the lane's figures since its last publish_batch */
	uint64_t d_batches, d_reruns, d_safe;
	/* under st->mu */
	int busy;           /* LANE_IDLE, LANE_PARALLEL (may run beside others), LANE_ALONE */
	struct keyset keys; /* the rows of its LANE_PARALLEL batch */
};

struct store {
	const struct sql_backend *be;
	char *url;
	unsigned char key[CRYPTO_KEY_LEN];
	char instance_id[160];
	unsigned batch_max, queue_max;

	struct lane *lanes;
	unsigned nlanes;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct store_item *q_head, *q_tail;
	size_t q_len;
	struct store_item *done_head, *done_tail;
	int notify_pending;
	int closing;
	int up;
	int held;
	struct store_counters count;
	struct keyset blocked; /* scratch of take_batch */
	char down_reason[sizeof(((struct sql_fail *)0)->message) + 64];

	struct event_base *base;
	struct event *notify_ev;
	int notify_fd[2];

	/* The syncer (sync_main): batches committed but not yet durable, when
	 * the backend leaves the sync to the store (sql_backend.durable_fd). */
	pthread_t syncer;
	int syncer_started;
	pthread_mutex_t smu;
	pthread_cond_t scv;   /* work for the syncer, or stop */
	pthread_cond_t sidle; /* the syncer holds nothing */
	struct store_item *s_head, *s_tail; /* under smu */
	int s_busy, s_stop;                 /* under smu */
	int sync_fd;                        /* under smu; -1: commits are durable */
};

const char *store_status_name(enum store_status status)
{
	switch (status) {
	case STORE_OK:
		return "ok";
	case STORE_DUPLICATE:
		return "duplicate";
	case STORE_INVALID:
		return "invalid";
	case STORE_NOT_FOUND:
		return "not_found";
	case STORE_UNAVAILABLE:
		return "unavailable";
	case STORE_FAILED:
		return "failed";
	}
	return "unknown";
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *store_backend(const struct store *st)
{
	return st->be->name;
}

/* ---- items ----------------------------------------------------------------- */

struct hub_error *store_item_err(struct store_item *it)
{
	static _Thread_local struct hub_error scratch;

	if (!it->err)
		it->err = calloc(1, sizeof(*it->err));
	return it->err ? it->err : &scratch;
}

void store_item_reset(struct store_item *it)
{
	json_decref(it->result);
	json_decref(it->scratch);
	it->result = NULL;
	it->scratch = NULL;
	memset(&it->n, 0, sizeof(it->n));
	free(it->err);
	it->err = NULL;
	it->status = STORE_OK;
	it->rows = 0;
	it->phase = 0;
	it->receipt_folded = 0;
}

static void item_free(struct store_item *it)
{
	if (!it)
		return;
	store_unit_free(it->unit);
	if (it->keys != it->key_one)
		free(it->keys);
	json_decref(it->params);
	json_decref(it->result);
	json_decref(it->scratch);
	free(it->err);
	free(it);
}

/* Decides an item's outcome without running it (down, closing, expired). */
static void item_unavailable(struct store_item *it, const char *what, const char *why)
{
	store_item_reset(it);
	it->status = STORE_UNAVAILABLE;
	hub_error_set(store_item_err(it), NULL, "store: %s (%s): not committed; try again later", what,
		      why);
}

void store_item_duplicate(struct store_item *it)
{
	store_item_reset(it);
	it->final = 1;
	it->status = STORE_DUPLICATE;
	hub_error_set(store_item_err(it), NULL, "webhook delivery %s of connector %s was already "
				      "received: nothing written",
		      it->unit->delivery_id, it->unit->connector);
}

/* Classifies the failure of one item's statement. */
static void item_fail(struct store_item *it, const struct sql_stmt *stmt, const struct sql_fail *f,
		      const char *when)
{
	const char *what = it->unit ? "unit" : "operation";

	if (stmt && (stmt->flags & SQL_STMT_DUPLICATE) && f->code == SQL_ERR_UNIQUE) {
		store_item_duplicate(it);
		return;
	}
	store_item_reset(it);
	it->final = 1;
	if (stmt && (stmt->flags & SQL_STMT_FAULT)) {
		it->status = STORE_FAILED;
		hub_error_set(store_item_err(it), NULL, "injected fault: the %s was rolled back", what);
	} else {
		switch (f->code) {
		case SQL_ERR_UNIQUE:
			it->status = STORE_INVALID;
			hub_error_set(store_item_err(it), NULL, "store: conflicts with an existing entry (%s); "
						      "nothing of this %s was written", f->message, what);
			break;
		case SQL_ERR_CONSTRAINT:
			it->status = STORE_INVALID;
			hub_error_set(store_item_err(it), NULL, "store: refused by the database (%s); nothing of "
						      "this %s was written", f->message, what);
			break;
		case SQL_ERR_FULL:
			it->status = STORE_FAILED;
			hub_error_set(store_item_err(it), NULL, "store: the database is full (%s) %s; free disk "
						      "space (or raise the size limit); nothing of this "
						      "%s was written", f->message, when, what);
			break;
		default:
			it->status = STORE_FAILED;
			hub_error_set(store_item_err(it), NULL, "store: database error %s: %s; nothing of this "
						      "%s was written", when, f->message, what);
		}
	}
}

/* ---- completions -------------------------------------------------------------- */

/* The outcome of a unit as its callback sees it. */
static void unit_result(const struct store_item *it, struct store_unit_result *res)
{
	memset(res, 0, sizeof(*res));
	res->status = it->status;
	res->records = it->n.records;
	res->written = it->n.written;
	res->unchanged = it->n.unchanged;
	res->dead_letters = it->n.dead_letters;
	res->shipments_tracked = it->n.shipments_tracked;
	if (it->err)
		res->err = *it->err;
}

static void deliver(struct store_item *it)
{
	static const struct hub_error none;
	struct store_unit_result res;

	/* Units are freed here, on the loop, not on the store's threads:
	 * freeing there cost the store thread a third of its time in
	 * cross-thread allocator work (units are built on the loop or on a
	 * webhook worker). */
	if (it->unit) {
		if (it->ucb) {
			unit_result(it, &res);
			it->ucb(it->arg, &res);
		}
	} else if (it->ocb) {
		it->ocb(it->arg, it->status, it->status == STORE_OK ? it->result : NULL,
			it->err ? it->err : &none);
	}
	item_free(it);
}

/* Hands finished items to their waiters or to the loop. Store thread or
 * syncer (they share nothing but what mu guards). */
static void complete(struct store *st, struct store_item *list)
{
	struct store_item *it, *next, *head = NULL, *tail = NULL;
	int wake = 0;

	pthread_mutex_lock(&st->mu);
	for (it = list; it; it = next) {
		st->count.items++;
		if (it->status != STORE_OK && it->status != STORE_NOT_FOUND)
			st->count.items_failed++;
		next = it->next;
	}
	pthread_mutex_unlock(&st->mu);
	for (it = list; it; it = next) {
		next = it->next;
		it->next = NULL;
		if (it->waiter) {
			pthread_mutex_lock(&it->waiter->mu);
			it->waiter->done = 1;
			pthread_cond_signal(&it->waiter->cv);
			pthread_mutex_unlock(&it->waiter->mu);
		} else if (!it->ucb && !it->ocb) {
			item_free(it);
		} else {
			if (tail)
				tail->next = it;
			else
				head = it;
			tail = it;
		}
	}
	if (!head)
		return;
	pthread_mutex_lock(&st->mu);
	if (st->done_tail)
		st->done_tail->next = head;
	else
		st->done_head = head;
	st->done_tail = tail;
	if (!st->notify_pending) {
		st->notify_pending = 1;
		wake = 1;
	}
	pthread_mutex_unlock(&st->mu);
	if (wake && st->notify_fd[1] >= 0) {
		ssize_t w;
		do
			w = write(st->notify_fd[1], "", 1);
		while (w < 0 && errno == EINTR);
	}
}

/* Publishes a lane's batch figures to the counters (before the batch's
 * items are reported, so a caller that saw them done sees the batch
 * counted); `beside`: the batch started while another lane ran one. The
 * lane's thread. */
static void publish_batch(struct lane *ln, uint64_t us, int beside)
{
	struct store *st = ln->st;

	pthread_mutex_lock(&st->mu);
	st->count.batches += ln->d_batches;
	st->count.reruns += ln->d_reruns;
	st->count.safe_batches += ln->d_safe;
	st->count.overlapped += (uint64_t)(beside && ln->d_batches);
	ln->d_batches = ln->d_reruns = ln->d_safe = 0;
	st->count.batch_us += us;
	if (us > st->count.batch_us_max)
		st->count.batch_us_max = us;
	pthread_mutex_unlock(&st->mu);
}

/* ---- the syncer ---------------------------------------------------------------- */

/*
 * With SQLite in "full" mode the commit itself does not sync the WAL: the
 * syncer thread does, after the commit, and only then reports the batch
 * done, while the store thread already runs the next batch. One sync
 * covers every batch committed before it started. A sync that fails
 * (EIO) fails the batch's items: what they wrote may not survive a crash.
 */
static void *sync_main(void *arg)
{
	struct store *st = arg;

	for (;;) {
		struct store_item *list, *it;
		int fd, rc = 0, e = 0;
		int64_t t0;
		uint64_t took;

		pthread_mutex_lock(&st->smu);
		while (!st->s_head && !st->s_stop)
			pthread_cond_wait(&st->scv, &st->smu);
		if (!st->s_head) {
			pthread_mutex_unlock(&st->smu);
			break;
		}
		list = st->s_head;
		st->s_head = st->s_tail = NULL;
		fd = st->sync_fd;
		st->s_busy = 1;
		pthread_mutex_unlock(&st->smu);
		t0 = mono_us();
		if (fd >= 0) {
			do
				rc = fdatasync(fd);
			while (rc < 0 && errno == EINTR);
			e = errno;
		}
		took = (uint64_t)(mono_us() - t0);
		pthread_mutex_lock(&st->mu);
		st->count.syncs++;
		st->count.sync_us += took;
		if (took > st->count.sync_us_max)
			st->count.sync_us_max = took;
		pthread_mutex_unlock(&st->mu);
		if (rc < 0) {
			log_error("store", "cannot sync the committed batch to disk (%s): its items "
					   "fail", strerror(e));
			for (it = list; it; it = it->next) {
				it->status = STORE_FAILED;
				hub_error_set(store_item_err(it), NULL, "store: the commit could not be "
							      "made durable (fdatasync: %s); it may "
							      "be lost",
					      strerror(e));
			}
		}
		complete(st, list);
		pthread_mutex_lock(&st->smu);
		st->s_busy = 0;
		pthread_cond_broadcast(&st->sidle);
		pthread_mutex_unlock(&st->smu);
	}
	return NULL;
}

/* Reports a run batch (a linked list): at once when commits are durable,
 * else through the syncer. Store thread. */
static void finish_batch(struct store *st, struct store_item *list)
{
	pthread_mutex_lock(&st->smu);
	if (st->sync_fd < 0 || !st->syncer_started) {
		pthread_mutex_unlock(&st->smu);
		complete(st, list);
		return;
	}
	if (st->s_tail)
		st->s_tail->next = list;
	else
		st->s_head = list;
	while (list->next)
		list = list->next;
	st->s_tail = list;
	pthread_cond_signal(&st->scv);
	pthread_mutex_unlock(&st->smu);
}

/* Waits until the syncer holds nothing, then takes (or drops, attach 0)
 * the current connection's durable descriptor. Lane 0 calls it
 * around its connection changes, so the syncer never syncs a closed one. */
static void sync_attach(struct store *st, int attach)
{
	int fd = attach && st->be->durable_fd ? st->be->durable_fd(st->lanes[0].conn) : -1;

	pthread_mutex_lock(&st->smu);
	while (st->s_head || st->s_busy)
		pthread_cond_wait(&st->sidle, &st->smu);
	st->sync_fd = fd;
	pthread_mutex_unlock(&st->smu);
}

/* Runs the callbacks of finished items. Loop thread. */
static void drain_done(struct store *st)
{
	struct store_item *list, *next;

	pthread_mutex_lock(&st->mu);
	list = st->done_head;
	st->done_head = st->done_tail = NULL;
	st->notify_pending = 0;
	pthread_mutex_unlock(&st->mu);
	for (; list; list = next) {
		next = list->next;
		deliver(list);
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	drain_done(arg);
}

/* ---- group commit ---------------------------------------------------------------- */

enum { EXEC_DONE = 0, EXEC_RETRY_CONN = 1, EXEC_RETRY_BUSY = 2 };

static int run_control(struct lane *ln, int slot, struct sql_fail *f)
{
	struct sql_stmt s = {0};

	s.def = SQL_DEF(slot);
	return ln->st->be->run(ln->conn, &s, 1, f);
}

/* A failure that concerns the whole batch: retry it, or fail every item. */
static int batch_error(struct lane *ln, struct store_item **items, size_t n,
		       const struct sql_fail *f, const char *when)
{
	struct store *st = ln->st;
	struct sql_fail ignored;

	if (f->code == SQL_ERR_CONN) {
		/* The store's reason is lane 0's: another lane's lost
		 * connection does not make the store down. */
		snprintf(ln->lost, sizeof(ln->lost), "%s", f->message);
		if (ln->id == 0) {
			pthread_mutex_lock(&st->mu);
			snprintf(st->down_reason, sizeof(st->down_reason), "%s", f->message);
			pthread_mutex_unlock(&st->mu);
		}
		return EXEC_RETRY_CONN;
	}
	if (st->be->in_txn(ln->conn))
		run_control(ln, SQL_ROLLBACK, &ignored);
	if (f->code == SQL_ERR_BUSY) {
		log_warn("store", "database busy %s (%s): retrying the batch", when, f->message);
		return EXEC_RETRY_BUSY;
	}
	log_error("store", "batch of %zu failed %s: %s", n, when, f->message);
	for (size_t i = 0; i < n; i++) {
		if (!items[i]->final)
			item_fail(items[i], NULL, f, when);
	}
	return EXEC_DONE;
}

static int build_item(struct lane *ln, struct store_item *it, unsigned index, int bulk)
{
	if (it->unit)
		return store_unit_build(&ln->exec, it, index, &ln->script, bulk);
	return store_op_build(&ln->exec, it, index, &ln->script);
}

/*
 * Runs items[0..n) in one transaction. Returns EXEC_DONE when every item has
 * its outcome (committed or failed), or EXEC_RETRY_* when the batch must be
 * run again later (nothing was reported).
 *
 * Optimistic first: no savepoints. Items rarely fail (records are checked
 * before they are queued), and a savepoint per item costs two statements
 * and a subtransaction each. On PostgreSQL the orders of all the units of a
 * chunk also go in one bulk statement (one executor start, one plan, binary
 * arrays instead of per-order statements), and their lines in one more,
 * pipelined after it (see SQL_ORDERS_BULK_LINES_PG). When an item fails, the
 * transaction is rolled back, the item is marked failed, and the batch runs
 * again without it. After a second failure - or a failure of the bulk
 * statement, which cannot be pinned on one unit - the batch switches to a
 * SAVEPOINT per item and per-unit statements, so each further bad item is
 * rolled back alone and the others go on.
 */
static int exec_batch(struct lane *ln, struct store_item **items, size_t n)
{
	struct store *st = ln->st;
	struct sql_script *s = &ln->script;
	struct sql_fail f, rf;
	int safe = 0, failures = 0, committed, pg = st->be->dialect == SQL_PG, units_only = 1;
	size_t i;

	for (i = 0; i < n; i++) {
		items[i]->final = 0;
		units_only &= items[i]->unit != NULL;
	}
attempt:
	ln->exec.now_ms = store_now_ms();
	for (i = 0; i < n; i++) {
		if (!items[i]->final)
			store_item_reset(items[i]);
	}
	/* PostgreSQL: BEGIN goes out with the first chunk and, on the
	 * optimistic path, COMMIT with the last one - one round trip for a
	 * batch of one chunk instead of three. */
	committed = 0;
	if (!pg && run_control(ln, SQL_BEGIN, &f) < 0)
		return batch_error(ln, items, n, &f, "starting a transaction");
	i = 0;
	while (i < n) {
		size_t j = i, more = n;
		int rc, bulk = !safe && pg;

		sql_script_clear(s);
		if (pg && i == 0)
			sql_script_add(s, SQL_DEF(SQL_BEGIN), 0, SQL_ITEM_MANY);
		while (j < n && s->n < CHUNK_STMTS && s->bytes < CHUNK_BYTES) {
			struct store_item *it = items[j];
			size_t mark = s->n;

			if (it->final) {
				j++;
				continue;
			}
			if (safe && it->phase == 0)
				sql_script_add(s, SQL_DEF(SQL_SAVEPOINT), 0, (unsigned)j);
			rc = s->oom ? -1 : build_item(ln, it, (unsigned)j, bulk);
			if (bulk && it->unit)
				s->bytes += store_unit_order_bytes(it->unit);
			if (rc < 0 || s->oom) {
				/* Refused before touching the database (bad parameters,
				 * out of memory): drop what it added. */
				if (it->status == STORE_OK) {
					it->status = STORE_FAILED;
					hub_error_set(store_item_err(it), NULL, "store: out of memory");
				}
				s->n = mark;
				s->oom = 0;
				it->final = 1;
				if (it->phase > 0) {
					/* Its earlier phases ran: undo them too. */
					if (!safe) {
						run_control(ln, SQL_ROLLBACK, &rf);
						goto attempt;
					}
					sql_script_add(s, SQL_DEF(SQL_ROLLBACK_TO), 0, (unsigned)j);
					sql_script_add(s, SQL_DEF(SQL_RELEASE), 0, (unsigned)j);
				}
				j++;
				continue;
			}
			if (rc == 1) {
				it->phase++;
				more = j;
				break;
			}
			if (safe)
				sql_script_add(s, SQL_DEF(SQL_RELEASE), 0, (unsigned)j);
			j++;
		}
		if (bulk)
			store_unit_build_orders_bulk(&ln->exec, items, i, more < n ? more : j, s);
		/* Only when no row callback can fail (units count rows; an op's
		 * callback may run out of memory after COMMIT already ran). */
		if (bulk && units_only && (more < n ? more : j) >= n) {
			sql_script_add(s, SQL_DEF(SQL_COMMIT), 0, SQL_ITEM_MANY);
			committed = 1;
		}
		if (s->oom) {
			struct sql_fail oomf = {0, SQL_ERR_OTHER, "out of memory building the batch"};
			return batch_error(ln, items, n, &oomf, "building the batch");
		}
		if (s->n && st->be->run(ln->conn, s->stmts, s->n, &f) < 0) {
			const struct sql_stmt *bad = &s->stmts[f.index];
			size_t fi = bad->item;

			committed = 0;
			if (f.code == SQL_ERR_CONN || f.code == SQL_ERR_BUSY)
				return batch_error(ln, items, n, &f, "running the batch");
			if (bad->def == SQL_DEF(SQL_BEGIN) || bad->def == SQL_DEF(SQL_COMMIT))
				return batch_error(ln, items, n, &f, bad->def == SQL_DEF(SQL_BEGIN)
								      ? "starting a transaction"
								      : "committing");
			if (fi == SQL_ITEM_MANY) {
				/* The bulk statement: find the culprit unit by unit. */
				if (st->be->in_txn(ln->conn)) {
					run_control(ln, SQL_ROLLBACK, &rf);
					if (st->be->in_txn(ln->conn))
						return batch_error(ln, items, n, &rf, "rolling back");
				}
				log_debug("store", "bulk statement failed (%s): running the batch "
						   "unit by unit", f.message);
				safe = 1;
				ln->d_reruns++;
				goto attempt;
			}
			if (!safe || f.code == SQL_ERR_CLIENT || !st->be->in_txn(ln->conn)) {
				/* No savepoint to go back to, later statements of the chunk
				 * may have run (a failed row callback on PostgreSQL), or the
				 * database dropped the transaction itself: roll everything
				 * back and run the batch again without this item. */
				if (st->be->in_txn(ln->conn)) {
					run_control(ln, SQL_ROLLBACK, &rf);
					if (st->be->in_txn(ln->conn))
						return batch_error(ln, items, n, &rf, "rolling back");
				}
				item_fail(items[fi], bad, &f, "while writing");
				if (++failures >= 2)
					safe = 1;
				ln->d_reruns++;
				goto attempt;
			}
			if (run_control(ln, SQL_ROLLBACK_TO, &rf) < 0 ||
			    run_control(ln, SQL_RELEASE, &rf) < 0) {
				if (rf.code == SQL_ERR_CONN)
					return batch_error(ln, items, n, &rf, "rolling back an item");
				run_control(ln, SQL_ROLLBACK, &rf);
				item_fail(items[fi], bad, &f, "while writing");
				goto attempt;
			}
			item_fail(items[fi], bad, &f, "while writing");
			/* Later items of the chunk did not run. */
			for (size_t k = fi + 1; k < n; k++)
				items[k]->phase = 0;
			i = fi + 1;
			continue;
		}
		i = more < n ? more : j;
	}
	for (i = 0; i < n; i++) {
		if (items[i]->final)
			continue;
		if (items[i]->unit)
			store_unit_done(&ln->exec, items[i]);
		else
			store_op_done(&ln->exec, items[i]);
	}
	if (!committed && run_control(ln, SQL_COMMIT, &f) < 0)
		return batch_error(ln, items, n, &f, "committing");
	ln->d_batches++;
	ln->d_safe += (uint64_t)safe;
	return EXEC_DONE;
}

/* ---- the lanes ---------------------------------------------------------------- */

/* Waits on st->cv for at most us microseconds. Called with st->mu held. */
static void wait_us(struct store *st, int64_t us)
{
	struct timespec ts;

	if (us <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(us / 1000000);
	ts.tv_nsec += (long)(us % 1000000) * 1000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

/* Waits on st->cv for at most ms milliseconds. Called with st->mu held. */
static void wait_ms(struct store *st, int64_t ms)
{
	wait_us(st, ms * 1000);
}

/* Takes `it` (after `prev`, NULL at the head) out of the queue. st->mu
 * held. */
static void queue_unlink(struct store *st, struct store_item *prev, struct store_item *it)
{
	if (prev)
		prev->next = it->next;
	else
		st->q_head = it->next;
	if (st->q_tail == it)
		st->q_tail = prev;
	st->q_len--;
	it->next = NULL;
}

/* Takes the queued items whose deadline passed. Called with st->mu held. */
static struct store_item *take_expired(struct store *st, int64_t now)
{
	struct store_item *it, *prev = NULL, *next, *out = NULL, **tail = &out;

	for (it = st->q_head; it; it = next) {
		next = it->next;
		if (!it->deadline_ms || it->deadline_ms > now) {
			prev = it;
			continue;
		}
		queue_unlink(st, prev, it);
		item_unavailable(it, "deadline passed before the commit",
				 st->up ? "the store is busy" : st->down_reason);
		*tail = it;
		tail = &it->next;
	}
	return out;
}

/* Takes the whole queue. Called with st->mu held. */
static struct store_item *take_all(struct store *st)
{
	struct store_item *all = st->q_head;

	st->q_head = st->q_tail = NULL;
	st->q_len = 0;
	return all;
}

/* Puts a batch back at the head of the queue, in order. st->mu held. */
static void requeue(struct store *st, struct store_item **items, size_t n)
{
	for (size_t k = n; k-- > 0;) {
		items[k]->next = st->q_head;
		st->q_head = items[k];
		if (!st->q_tail)
			st->q_tail = items[k];
		st->q_len++;
	}
}

static void queue_prune(struct store *st)
{
	struct store_item *it = calloc(1, sizeof(*it));

	if (!it)
		return;
	it->op = STORE_OP_PRUNE;
	it->params = json_object();
	pthread_mutex_lock(&st->mu);
	if (st->q_tail)
		st->q_tail->next = it;
	else
		st->q_head = it;
	st->q_tail = it;
	st->q_len++;
	pthread_mutex_unlock(&st->mu);
}

/* Empties the set; one grown past KEYSET_KEEP slots (a huge batch) is
 * given back rather than wiped at every take. */
#define KEYSET_KEEP 8192
static void keyset_clear(struct keyset *k)
{
	if (k->cap > KEYSET_KEEP) {
		free(k->slot);
		k->slot = NULL;
		k->cap = 0;
	} else if (k->n) {
		memset(k->slot, 0, k->cap * sizeof(*k->slot));
	}
	k->n = 0;
}

static int keyset_has(const struct keyset *k, uint64_t h)
{
	if (!k->n)
		return 0;
	h = h ? h : 1;
	for (size_t i = h & (k->cap - 1); k->slot[i]; i = (i + 1) & (k->cap - 1)) {
		if (k->slot[i] == h)
			return 1;
	}
	return 0;
}

static void keyset_put(struct keyset *k, uint64_t h)
{
	size_t i;

	h = h ? h : 1;
	for (i = h & (k->cap - 1); k->slot[i]; i = (i + 1) & (k->cap - 1)) {
		if (k->slot[i] == h)
			return;
	}
	k->slot[i] = h;
	k->n++;
}

/* Makes room for `more` keys (load at most one half). 0, or -1 when out of
 * memory (the set is unchanged). */
static int keyset_reserve(struct keyset *k, size_t more)
{
	struct keyset grown;
	size_t cap = k->cap ? k->cap : 64;

	if (2 * (k->n + more) <= k->cap)
		return 0;
	while (2 * (k->n + more) > cap)
		cap *= 2;
	grown.slot = calloc(cap, sizeof(*grown.slot));
	if (!grown.slot)
		return -1;
	grown.cap = cap;
	grown.n = 0;
	for (size_t i = 0; i < k->cap; i++) {
		if (k->slot[i])
			keyset_put(&grown, k->slot[i]);
	}
	free(k->slot);
	*k = grown;
	return 0;
}

/* Adds an item's keys. 0, or -1 when out of memory (nothing added). */
static int keyset_add_item(struct keyset *k, const struct store_item *it)
{
	if (keyset_reserve(k, it->nkeys) < 0)
		return -1;
	for (unsigned i = 0; i < it->nkeys; i++)
		keyset_put(k, it->keys[i]);
	return 0;
}

/* Whether one of the item's rows is in the set. */
static int keyset_hits(const struct keyset *k, const struct store_item *it)
{
	for (unsigned i = 0; i < it->nkeys; i++) {
		if (keyset_has(k, it->keys[i]))
			return 1;
	}
	return 0;
}

/* The busiest state among the lanes other than ln. st->mu held. */
static int others_busy(const struct store *st, const struct lane *ln)
{
	int busy = LANE_IDLE;

	for (unsigned k = 0; k < st->nlanes; k++) {
		if (&st->lanes[k] != ln && st->lanes[k].busy > busy)
			busy = st->lanes[k].busy;
	}
	return busy;
}

/* Whether another lane's running batch writes one of the item's rows, or a
 * unit held back before it in this take does. st->mu held. */
static int conflicts(const struct store *st, const struct lane *ln, const struct store_item *it)
{
	for (unsigned k = 0; k < st->nlanes; k++) {
		const struct lane *o = &st->lanes[k];

		if (o != ln && o->busy == LANE_PARALLEL && keyset_hits(&o->keys, it))
			return 1;
	}
	return keyset_hits(&st->blocked, it);
}

/*
 * Moves the lane's next batch from the queue to ln->batch and marks the lane
 * busy. With no other lane running: the queue's head, in order, up to
 * batch_max (LANE_PARALLEL when every item is a parallel unit, else
 * LANE_ALONE). Beside a parallel batch: the parallel units up to the first
 * item that must run alone, leaving in the queue, in order, those that share
 * a row with a running batch or with a unit left before them. Beside a
 * batch that runs alone: nothing. Returns the batch's size (0: nothing may
 * run now); *beside: another lane runs. st->mu held.
 */
static size_t take_batch(struct store *st, struct lane *ln, int *beside)
{
	struct store_item *it, *prev = NULL, *next;
	int others = others_busy(st, ln), alone = 0;
	size_t n = 0, skipped = 0;

	*beside = others != LANE_IDLE;
	keyset_clear(&ln->keys);
	if (others == LANE_ALONE)
		return 0;
	if (others == LANE_IDLE) {
		while (st->q_head && n < st->batch_max) {
			it = st->q_head;
			st->q_head = it->next;
			st->q_len--;
			it->next = NULL;
			ln->batch[n++] = it;
			alone |= !it->nkeys;
		}
		if (!st->q_head)
			st->q_tail = NULL;
		for (size_t i = 0; !alone && st->nlanes > 1 && i < n; i++)
			alone = keyset_add_item(&ln->keys, ln->batch[i]) < 0;
		ln->busy = alone ? LANE_ALONE : LANE_PARALLEL;
		return n;
	}
	keyset_clear(&st->blocked);
	for (it = st->q_head; it && n < st->batch_max; it = next) {
		next = it->next;
		if (!it->nkeys)
			break;
		if (conflicts(st, ln, it)) {
			/* Bounded: the scan runs under the queue's mutex. */
			if (++skipped > st->batch_max || keyset_add_item(&st->blocked, it) < 0)
				break;
			prev = it;
			continue;
		}
		if (keyset_add_item(&ln->keys, it) < 0)
			break;
		queue_unlink(st, prev, it);
		ln->batch[n++] = it;
	}
	if (n)
		ln->busy = LANE_PARALLEL;
	return n;
}

/* The lane's batch is over: other lanes may take what it held back.
 * st->mu held. */
static void lane_idle(struct store *st, struct lane *ln)
{
	ln->busy = LANE_IDLE;
	if (st->nlanes > 1)
		pthread_cond_broadcast(&st->cv);
}

/* Lane 0 while the database is unreachable: reconnects with backoff; at
 * close, reports what is queued as unavailable. Called with st->mu held;
 * returns with it released. Returns 1 when the lane should stop. */
static int lane0_down(struct lane *ln, struct store_item *expired, int64_t now, int *reconnect_now,
		      int64_t *next_retry, int64_t *backoff, char *last_reason, size_t reason_size)
{
	struct store *st = ln->st;
	struct hub_error err;

	if (st->closing) {
		struct store_item *all, *it;

		if (others_busy(st, ln) != LANE_IDLE) {
			/* A lane's batch may still come back to the queue. */
			wait_ms(st, 100);
			pthread_mutex_unlock(&st->mu);
			complete(st, expired);
			return 0;
		}
		all = take_all(st);
		for (it = all; it; it = it->next)
			item_unavailable(it, "closed while the database was unreachable",
					 st->down_reason);
		pthread_mutex_unlock(&st->mu);
		complete(st, expired);
		complete(st, all);
		return 1;
	}
	if (!*reconnect_now && now < *next_retry) {
		wait_ms(st, *next_retry - now < 1000 ? *next_retry - now : 1000);
		pthread_mutex_unlock(&st->mu);
		complete(st, expired);
		return 0;
	}
	pthread_mutex_unlock(&st->mu);
	complete(st, expired);
	*reconnect_now = 0;
	if (st->be->connect(&ln->conn, st->url, &err) == 0) {
		size_t queued;

		sync_attach(st, 1);
		pthread_mutex_lock(&st->mu);
		st->up = 1;
		st->count.reconnects++;
		queued = st->q_len;
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->mu);
		log_info("store", "database reachable again; %zu queued items resume", queued);
		*backoff = BACKOFF_MIN_MS;
	} else {
		pthread_mutex_lock(&st->mu);
		snprintf(st->down_reason, sizeof(st->down_reason), "%s", err.message);
		pthread_mutex_unlock(&st->mu);
		/* Once per outage (and when the reason changes), not at every
		 * retry. */
		log_msg(*backoff == BACKOFF_MIN_MS || strcmp(last_reason, err.message) ? LOG_WARN
											: LOG_DEBUG,
			"store", "database unreachable (%s); retrying with backoff", err.message);
		snprintf(last_reason, reason_size, "%s", err.message);
		*next_retry = store_now_ms() + *backoff;
		*backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
	}
	return 0;
}

/* A lane other than 0 without a connection, while the store is up: connects
 * (with backoff; the other lanes carry the load meanwhile). Called with
 * st->mu held; returns with it released. */
static void lane_connect(struct lane *ln, int64_t now)
{
	struct store *st = ln->st;
	struct hub_error err;

	if (now < ln->next_connect_ms) {
		wait_ms(st, ln->next_connect_ms - now < 1000 ? ln->next_connect_ms - now : 1000);
		pthread_mutex_unlock(&st->mu);
		return;
	}
	pthread_mutex_unlock(&st->mu);
	if (st->be->connect(&ln->conn, st->url, &err) == 0) {
		ln->backoff_ms = BACKOFF_MIN_MS;
		return;
	}
	log_msg(ln->backoff_ms == BACKOFF_MIN_MS ? LOG_WARN : LOG_DEBUG, "store",
		"lane %u cannot connect (%s); the other lanes carry the work meanwhile", ln->id,
		err.message);
	ln->next_connect_ms = store_now_ms() + ln->backoff_ms;
	ln->backoff_ms = ln->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ln->backoff_ms * 2;
}

static void *lane_main(void *arg)
{
	struct lane *ln = arg;
	struct store *st = ln->st;
	int64_t backoff = BACKOFF_MIN_MS, next_retry = 0, next_prune;
	char last_reason[sizeof(((struct hub_error *)0)->message)] = "";
	int reconnect_now = 0, first = ln->id == 0;

	next_prune = store_now_ms() + PRUNE_EVERY_MS;
	ln->backoff_ms = BACKOFF_MIN_MS;
	for (;;) {
		struct store_item *expired = NULL;
		int64_t now = store_now_ms();
		size_t n;
		int rc, beside;

		pthread_mutex_lock(&st->mu);
		if (first) {
			expired = take_expired(st, now);
			if (!st->up) {
				if (lane0_down(ln, expired, now, &reconnect_now, &next_retry, &backoff,
					       last_reason, sizeof(last_reason)))
					break;
				continue;
			}
		} else if (st->closing) {
			pthread_mutex_unlock(&st->mu);
			break;
		} else if (!st->up) {
			wait_ms(st, 1000);
			pthread_mutex_unlock(&st->mu);
			continue;
		} else if (!ln->conn) {
			lane_connect(ln, now);
			continue;
		}
		if (!st->q_head || (st->held && !st->closing)) {
			if (st->closing) {
				if (others_busy(st, ln) == LANE_IDLE) {
					pthread_mutex_unlock(&st->mu);
					complete(st, expired);
					break;
				}
				/* A lane's batch may still come back to the queue. */
				wait_ms(st, 100);
			} else {
				wait_ms(st, 1000);
			}
			pthread_mutex_unlock(&st->mu);
			complete(st, expired);
			if (first && store_now_ms() >= next_prune) {
				next_prune = store_now_ms() + PRUNE_EVERY_MS;
				queue_prune(st);
			}
			continue;
		}
		if (st->q_len < LINGER_ITEMS && !st->closing &&
		    mono_us() - ln->last_batch_end_us < LINGER_BUSY_US) {
			int64_t left = st->q_head->queued_us + LINGER_US - mono_us();

			if (left > 0) {
				wait_us(st, left);
				pthread_mutex_unlock(&st->mu);
				complete(st, expired);
				continue;
			}
		}
		if (st->nlanes > 1 && others_busy(st, ln) == LANE_PARALLEL && !st->closing &&
		    st->q_len < BESIDE_ITEMS) {
			int64_t left = st->q_head->queued_us + BESIDE_US - mono_us();

			if (left > 0) {
				wait_us(st, left);
				pthread_mutex_unlock(&st->mu);
				complete(st, expired);
				continue;
			}
		}
		n = take_batch(st, ln, &beside);
		if (!n) {
			/* Everything queued waits for another lane's batch, which
			 * wakes us when it ends. */
			wait_ms(st, 1000);
			pthread_mutex_unlock(&st->mu);
			complete(st, expired);
			continue;
		}
		pthread_mutex_unlock(&st->mu);
		complete(st, expired);

		{
			int64_t t0 = mono_us();

			rc = exec_batch(ln, ln->batch, n);
			ln->last_batch_end_us = mono_us();
			publish_batch(ln, (uint64_t)(ln->last_batch_end_us - t0), beside);
		}
		if (rc == EXEC_RETRY_CONN) {
			if (first)
				sync_attach(st, 0);
			st->be->disconnect(ln->conn);
			ln->conn = NULL;
			pthread_mutex_lock(&st->mu);
			if (first)
				st->up = 0;
			requeue(st, ln->batch, n);
			lane_idle(st, ln);
			pthread_mutex_unlock(&st->mu);
			if (first)
				log_warn("store", "lost the database connection (%s); %zu items stay "
						  "queued", ln->lost, n);
			else
				log_warn("store", "lane %u lost its database connection (%s); its %zu "
						  "items go back to the queue", ln->id, ln->lost, n);
			/* One immediate attempt (a restarted server), then backoff. */
			reconnect_now = 1;
			ln->next_connect_ms = 0;
			continue;
		}
		if (rc == EXEC_RETRY_BUSY) {
			pthread_mutex_lock(&st->mu);
			requeue(st, ln->batch, n);
			lane_idle(st, ln);
			pthread_mutex_unlock(&st->mu);
			usleep(20000);
			continue;
		}
		for (size_t k = 0; k + 1 < n; k++)
			ln->batch[k]->next = ln->batch[k + 1];
		ln->batch[n - 1]->next = NULL;
		/* Reported before the lane goes idle: a batch another lane may
		 * then start (an op, a unit sharing a row) completes after this
		 * one on the loop too. */
		finish_batch(st, ln->batch[0]);
		pthread_mutex_lock(&st->mu);
		lane_idle(st, ln);
		pthread_mutex_unlock(&st->mu);
	}
	return NULL;
}

/* ---- open and close --------------------------------------------------------------------- */

int store_open(struct store **out, struct event_base *base, const struct store_options *opt,
	       struct hub_error *err)
{
	pthread_condattr_t ca;
	struct store *st;
	char host[64];
	int version = 0;

	*out = NULL;
	if (!opt || !opt->url || !opt->state_dir)
		return hub_error_set(err, NULL, "store: url and state_dir are required");
	st = calloc(1, sizeof(*st));
	if (!st)
		return hub_error_set(err, NULL, "store: out of memory");
	st->notify_fd[0] = st->notify_fd[1] = -1;
	st->sync_fd = -1;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->smu, NULL);
	pthread_cond_init(&st->scv, NULL);
	pthread_cond_init(&st->sidle, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	st->be = sql_backend_for(opt->url);
	if (!st->be) {
		const char *colon = strchr(opt->url, ':');
		hub_error_set(err, NULL, "store: unknown store URL scheme \"%.*s\": use "
					 "sqlite:/path/to/hub.db or postgresql://...",
			      colon ? (int)(colon - opt->url) : 0, opt->url);
		goto fail;
	}
	st->url = strdup(opt->url);
	st->batch_max = opt->batch_max ? opt->batch_max : BATCH_DEFAULT;
	st->queue_max = opt->queue_max ? opt->queue_max : QUEUE_DEFAULT;
	st->nlanes = st->be->dialect == SQL_PG ? LANES_PG : 1;
	if (st->be->dialect == SQL_PG && opt->lanes)
		st->nlanes = opt->lanes < LANES_MAX ? opt->lanes : LANES_MAX;
	st->lanes = calloc(st->nlanes, sizeof(*st->lanes));
	if (!st->url || !st->lanes) {
		hub_error_set(err, NULL, "store: out of memory");
		goto fail;
	}
	for (unsigned k = 0; k < st->nlanes; k++) {
		struct lane *ln = &st->lanes[k];

		ln->st = st;
		ln->id = k;
		sql_script_init(&ln->script);
		ln->batch = calloc(st->batch_max, sizeof(*ln->batch));
		if (!ln->batch) {
			hub_error_set(err, NULL, "store: out of memory");
			goto fail;
		}
	}
	if (opt->instance_id) {
		snprintf(st->instance_id, sizeof(st->instance_id), "%s", opt->instance_id);
	} else {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "host");
		host[sizeof(host) - 1] = '\0';
		snprintf(st->instance_id, sizeof(st->instance_id), "%s:%ld", host, (long)getpid());
	}
	if (crypto_key_load(opt->state_dir, st->key, err) < 0)
		goto fail;
	/* Lane 0 connects now (and migrates); the others from their thread. */
	if (st->be->connect(&st->lanes[0].conn, st->url, err) < 0)
		goto fail;
	if (sql_migrate(st->be, st->lanes[0].conn, &version, err) < 0)
		goto fail;
	for (unsigned k = 0; k < st->nlanes; k++) {
		struct store_exec *x = &st->lanes[k].exec;

		x->dialect = st->be->dialect;
		x->key = st->key;
		x->instance_id = st->instance_id;
		x->schema_version = version;
	}
	st->up = 1;
	st->base = base;
	if (base) {
		if (pipe2(st->notify_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
			hub_error_set(err, NULL, "store: pipe: %s", strerror(errno));
			goto fail;
		}
		st->notify_ev = event_new(base, st->notify_fd[0], EV_READ | EV_PERSIST, on_notify, st);
		if (!st->notify_ev || event_add(st->notify_ev, NULL) < 0) {
			hub_error_set(err, NULL, "store: cannot watch the completion pipe");
			goto fail;
		}
	}
	/* Before the store thread, whose first batch may need it. Without
	 * the syncer the commits would never be synced: refuse to open. */
	if (st->be->durable_fd && st->be->durable_fd(st->lanes[0].conn) >= 0) {
		if (pthread_create(&st->syncer, NULL, sync_main, st) != 0) {
			hub_error_set(err, NULL, "store: cannot start the syncer thread");
			goto fail;
		}
		st->syncer_started = 1;
		sync_attach(st, 1);
	}
	for (unsigned k = 0; k < st->nlanes; k++) {
		if (pthread_create(&st->lanes[k].thread, NULL, lane_main, &st->lanes[k]) != 0) {
			hub_error_set(err, NULL, "store: cannot start the store's thread %u", k);
			goto fail;
		}
		st->lanes[k].started = 1;
	}
	log_info("store", "%s store open (schema version %d, %u connection%s)", st->be->name,
		 version, st->nlanes, st->nlanes == 1 ? "" : "s");
	*out = st;
	return 0;
fail:
	store_close(st);
	return -1;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	st->closing = 1;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	/* Lane 0 commits what is queued once the others gave back theirs. */
	for (unsigned k = 0; st->lanes && k < st->nlanes; k++) {
		if (st->lanes[k].started)
			pthread_join(st->lanes[k].thread, NULL);
	}
	if (st->syncer_started) {
		/* It syncs and reports what the store thread handed it first. */
		pthread_mutex_lock(&st->smu);
		st->s_stop = 1;
		pthread_cond_signal(&st->scv);
		pthread_mutex_unlock(&st->smu);
		pthread_join(st->syncer, NULL);
	}
	drain_done(st);
	if (st->notify_ev)
		event_free(st->notify_ev);
	if (st->notify_fd[0] >= 0)
		close(st->notify_fd[0]);
	if (st->notify_fd[1] >= 0)
		close(st->notify_fd[1]);
	for (unsigned k = 0; st->lanes && k < st->nlanes; k++) {
		struct lane *ln = &st->lanes[k];

		if (ln->conn)
			st->be->disconnect(ln->conn);
		sql_script_release(&ln->script);
		free(ln->batch);
		free(ln->keys.slot);
	}
	free(st->lanes);
	free(st->blocked.slot);
	free(st->url);
	OPENSSL_cleanse(st->key, sizeof(st->key));
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->scv);
	pthread_cond_destroy(&st->sidle);
	pthread_mutex_destroy(&st->smu);
	free(st);
}

void store_hold(struct store *st, int hold)
{
	pthread_mutex_lock(&st->mu);
	st->held = hold;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static void counters(struct store *st, struct store_counters *out, int take)
{
	pthread_mutex_lock(&st->mu);
	*out = st->count;
	out->queued = st->q_len;
	out->up = st->up;
	if (take) {
		st->count.batch_us_max = 0;
		st->count.sync_us_max = 0;
	}
	pthread_mutex_unlock(&st->mu);
}

void store_counters(struct store *st, struct store_counters *out)
{
	counters(st, out, 0);
}

void store_counters_take(struct store *st, struct store_counters *out)
{
	counters(st, out, 1);
}

int store_available(struct store *st, char *why, size_t size)
{
	int up;

	pthread_mutex_lock(&st->mu);
	up = st->up;
	if (why && size)
		snprintf(why, size, "%s", up ? "" : st->down_reason);
	pthread_mutex_unlock(&st->mu);
	return up;
}

/* ---- submitting -------------------------------------------------------------------------- */

/* Wakes a lane for new work. With several, all: a lane waiting for its
 * connection or for another's rows could take a signal and leave the work
 * to a timeout. st->mu held. */
static void wake_lanes(struct store *st)
{
	if (st->nlanes > 1)
		pthread_cond_broadcast(&st->cv);
	else
		pthread_cond_signal(&st->cv);
}

/* With lanes, notes the rows a parallel unit writes (store_unit_keys);
 * an item without keys runs alone. Submitting thread. */
static void item_keys(struct store *st, struct store_item *it)
{
	int n;

	if (st->nlanes < 2 || !it->unit)
		return;
	n = store_unit_keys(it->unit, it->key_one, 2);
	if (n > 2) {
		uint64_t *keys = malloc((size_t)n * sizeof(*keys));

		if (!keys || store_unit_keys(it->unit, keys, (size_t)n) != n) {
			free(keys);
			return;
		}
		it->keys = keys;
	} else if (n > 0) {
		it->keys = it->key_one;
	}
	if (n > 0)
		it->nkeys = (unsigned)n;
}

/* Queues an item. Returns 0, or -1 with err (the item is not queued). */
static int enqueue(struct store *st, struct store_item *it, struct hub_error *err)
{
	int rc = -1;

	item_keys(st, it);

	pthread_mutex_lock(&st->mu);
	if (st->closing)
		hub_error_set(err, NULL, "store: closing, not accepting work");
	else if (st->q_len >= st->queue_max)
		hub_error_set(err, NULL, "store: %zu items already queued (the database is too "
					 "slow or unreachable); try again later", st->q_len);
	else if (it->fail_fast && !st->up)
		hub_error_set(err, NULL, "store: database unavailable (%s); try again later",
			      st->down_reason);
	else
		rc = 0;
	if (rc == 0) {
		/* The store thread sleeps on an empty queue, or lingers for a
		 * fuller batch (see LINGER_ITEMS): signal on the first item and
		 * when the batch is full, not on every item. */
		it->queued_us = mono_us();
		if (st->q_tail) {
			st->q_tail->next = it;
		} else {
			st->q_head = it;
			wake_lanes(st);
		}
		st->q_tail = it;
		/* A lingering batch is complete. */
		if (++st->q_len == LINGER_ITEMS)
			wake_lanes(st);
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static struct store_item *unit_item(struct store_unit *u)
{
	struct store_item *it = calloc(1, sizeof(*it));

	if (!it)
		return NULL;
	it->unit = u;
	it->deadline_ms = u->deadline_ms;
	it->fail_fast = u->fail_fast;
	return it;
}

int store_submit(struct store *st, struct store_unit *u, store_unit_cb cb, void *arg,
		 struct hub_error *err)
{
	struct store_item *it;

	if (!u)
		return hub_error_set(err, NULL, "store: no unit");
	if (!st->base) {
		store_unit_free(u);
		return hub_error_set(err, NULL, "store: opened without an event loop; use "
						"store_submit_sync");
	}
	it = unit_item(u);
	if (!it) {
		store_unit_free(u);
		return hub_error_set(err, NULL, "store: out of memory");
	}
	it->ucb = cb;
	it->arg = arg;
	if (enqueue(st, it, err) < 0) {
		item_free(it);
		return -1;
	}
	return 0;
}

/* Queues an item and waits for its outcome. Returns 0, or -1 with it->err
 * set when it could not be queued. */
static int run_sync(struct store *st, struct store_item *it)
{
	struct store_waiter w;

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	w.done = 0;
	it->waiter = &w;
	if (enqueue(st, it, store_item_err(it)) < 0) {
		it->status = STORE_UNAVAILABLE;
		pthread_cond_destroy(&w.cv);
		pthread_mutex_destroy(&w.mu);
		return -1;
	}
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return 0;
}

enum store_status store_submit_sync(struct store *st, struct store_unit *u,
				    struct store_unit_result *res)
{
	struct store_item *it;
	enum store_status status;

	memset(res, 0, sizeof(*res));
	it = u ? unit_item(u) : NULL;
	if (!it) {
		store_unit_free(u);
		res->status = STORE_FAILED;
		hub_error_set(&res->err, NULL, "store: out of memory");
		return res->status;
	}
	run_sync(st, it);
	unit_result(it, res);
	status = it->status;
	item_free(it);
	return status;
}

static struct store_item *op_item(enum store_op op, json_t *params)
{
	struct store_item *it = calloc(1, sizeof(*it));

	if (!it) {
		json_decref(params);
		return NULL;
	}
	it->op = op;
	it->params = params ? params : json_object();
	/* An admin request or a scheduler poll is better answered "later" than
	 * left hanging while the database is away. */
	it->fail_fast = 1;
	it->deadline_ms = store_now_ms() + OP_DEADLINE_MS;
	return it;
}

int store_call(struct store *st, enum store_op op, json_t *params, store_op_cb cb, void *arg,
	       struct hub_error *err)
{
	struct store_item *it;

	if (!st->base) {
		json_decref(params);
		return hub_error_set(err, NULL, "store: opened without an event loop; use "
						"store_call_sync");
	}
	it = op_item(op, params);
	if (!it)
		return hub_error_set(err, NULL, "store: out of memory");
	it->ocb = cb;
	it->arg = arg;
	if (enqueue(st, it, err) < 0) {
		item_free(it);
		return -1;
	}
	return 0;
}

enum store_status store_call_sync(struct store *st, enum store_op op, json_t *params,
				  json_t **result, struct hub_error *err)
{
	struct store_item *it = op_item(op, params);
	enum store_status status;

	if (result)
		*result = NULL;
	if (!it) {
		hub_error_set(err, NULL, "store: out of memory");
		return STORE_FAILED;
	}
	run_sync(st, it);
	status = it->status;
	if (status == STORE_OK && result)
		*result = json_incref(it->result);
	if (err) {
		if (it->err)
			*err = *it->err;
		else
			memset(err, 0, sizeof(*err));
	}
	item_free(it);
	return status;
}
