/*
 * test_store.c - the central store, one suite for both backends.
 *
 * Compiled twice: test_store_sqlite (a fresh SQLite file per test) and
 * test_store_pg (-DSTORE_TEST_PG: a throwaway PostgreSQL 15 server from
 * tests/harness/pgserver, a fresh database per test). Everything runs
 * through the public store.h interface, async on a real libevent loop or
 * through the _sync wrappers; the database is only inspected directly
 * where the point is what is on disk (migrations, sealed secrets).
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <hub/sdk.h>

#include "crypto.h"
#include "store.h"
#include "store_sql.h"
#include "../harness/pgserver.h"
#include "../harness/storedb.h"

#ifdef STORE_TEST_PG
static struct pgserver server;
#define PG_SERVER (&server)
#else
#define PG_SERVER NULL
#endif

struct fixture {
	struct storedb loc; /* the state_dir (secret.key), the SQLite file or the database */
	struct store *st;
	struct event_base *base;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Runs raw SQL against the fixture's database; returns the first column of
 * the first row (malloc'd) or NULL. */
static char *raw_query(struct fixture *f, const char *sql)
{
	char *out = NULL;
#ifdef STORE_TEST_PG
	PGconn *c = PQconnectdb(f->loc.url);
	PGresult *r;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		out = strdup(PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
#else
	sqlite3 *db;
	sqlite3_stmt *ps;

	assert_int_equal(sqlite3_open(f->loc.url + strlen("sqlite:"), &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &ps, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(ps) == SQLITE_ROW && sqlite3_column_type(ps, 0) != SQLITE_NULL)
		out = strdup((const char *)sqlite3_column_text(ps, 0));
	sqlite3_finalize(ps);
	sqlite3_close(db);
#endif
	return out;
}

static long raw_count(struct fixture *f, const char *sql)
{
	char *v = raw_query(f, sql);
	long n = v ? strtol(v, NULL, 10) : -1;

	free(v);
	return n;
}

/* Opens f->st with batch_max items per transaction and `lanes` store
 * connections (0: the defaults). */
static void open_store_lanes(struct fixture *f, unsigned batch_max, unsigned lanes)
{
	struct store_options opt = {0};
	struct hub_error err = {0};

	opt.url = f->loc.url;
	opt.state_dir = f->loc.dir;
	opt.batch_max = batch_max;
	opt.lanes = lanes;
	opt.instance_id = "test";
	if (store_open(&f->st, f->base, &opt, &err) < 0)
		fail_msg("store_open: %s", err.message);
}

static void open_store(struct fixture *f, unsigned batch_max)
{
	open_store_lanes(f, batch_max, 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || storedb_make(&f->loc, PG_SERVER, "store") < 0) {
		free(f);
		return -1;
	}
	f->base = event_base_new();
	open_store(f, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	store_close(f->st);
	event_base_free(f->base);
	rc = storedb_remove(&f->loc);
	free(f);
	return rc;
}

static char *iso(int64_t ms)
{
	static char bufs[8][32];
	static int k;
	char *b = bufs[k++ % 8];

	assert_int_equal(hub_time_format(ms, b, 32), 0);
	return b;
}

#define T0 INT64_C(1780000000000) /* 2026-05-28 */

/* A realistic order: version v changes the total, the status and the lines. */
static json_t *make_order(const char *id, int v, int nlines)
{
	json_t *lines = json_array();

	for (int i = 0; i < nlines; i++) {
		char lid[64], sku[64];

		snprintf(lid, sizeof(lid), "%s-L%d", id, i);
		snprintf(sku, sizeof(sku), "SKU-%d-%d", i, v);
		json_array_append_new(lines, json_pack("{s:s, s:s, s:s, s:i, s:I, s:n}",
						       "external_id", lid, "sku", sku, "title",
						       "Widget", "quantity", 1 + i, "unit_price",
						       (json_int_t)(1000 + v), "total_tax"));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:s,"
			 " s:{s:s, s:s}}",
			 "external_id", id, "number", id, "name", "#1001", "status",
			 v % 3 == 2 ? "closed" : "open", "financial_status", "paid", "currency", "USD",
			 "total", (json_int_t)(10000 + v), "created_at", iso(T0), "updated_at",
			 iso(T0 + v * 1000), "lines", lines, "email", "a@example.com", "customer",
			 "first_name", "Ada", "last_name", "Lovelace");
}

static json_t *make_shipment(const char *id, const char *order_id, const char *carrier,
			     json_t *numbers, const char *status, int v)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "external_id", id,
			 "order_external_id", order_id, "carrier", carrier, "tracking_numbers",
			 numbers, "status", status, "created_at", iso(T0), "updated_at",
			 iso(T0 + v * 1000));
}

static json_t *event(int64_t ms, const char *status, const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "occurred_at", iso(ms), "status", status,
			 "description", desc, "carrier_code", "X");
}

static enum store_status submit(struct fixture *f, struct store_unit *u,
				struct store_unit_result *res)
{
	struct store_unit_result local;

	return store_submit_sync(f->st, u, res ? res : &local);
}

static enum store_status call(struct fixture *f, enum store_op op, json_t *params,
			      json_t **result)
{
	struct hub_error err = {0};
	enum store_status s = store_call_sync(f->st, op, params, result, &err);

	if (s != STORE_OK && s != STORE_NOT_FOUND)
		print_message("op %d: %s: %s\n", (int)op, store_status_name(s), err.message);
	return s;
}

static struct store_unit *unit(const char *connector)
{
	struct store_unit *u = store_unit_new("acme", connector);

	assert_non_null(u);
	return u;
}

static void add(struct store_unit *u, enum hub_record_kind kind, json_t *rec)
{
	struct hub_error err = {0};

	if (store_unit_add_record(u, kind, rec, &err) < 0)
		fail_msg("record refused: %s (%s)", err.message, err.field);
}

static json_t *get_order(struct fixture *f, const char *connector, const char *id)
{
	json_t *res = NULL;

	assert_int_equal(call(f, STORE_OP_ORDER_GET,
			      json_pack("{s:s, s:s}", "connector", connector, "external_id", id),
			      &res),
			 STORE_OK);
	return res;
}

/* ---- async plumbing ----------------------------------------------------------- */

struct slot {
	int done;
	struct store_unit_result res;
	int *pending;
};

static void unit_done(void *arg, const struct store_unit_result *res)
{
	struct slot *s = arg;

	assert_int_equal(s->done, 0); /* exactly once */
	s->done = 1;
	s->res = *res;
	(*s->pending)--;
}

/* Runs the loop until *pending is 0 or timeout_ms passed. */
static void run_loop(struct fixture *f, int *pending, int timeout_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (*pending > 0) {
		struct timeval tv = {0, 20000};

		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			break;
	}
}

/* ---- tests ------------------------------------------------------------------- */

static void test_migrations(void **state)
{
	struct fixture *f = *state;
	struct store_unit *u = unit("shop");
	json_t *stats = NULL;

	assert_int_equal(raw_count(f, "SELECT MAX(version) FROM schema_version"),
			 sql_schema_latest());
	assert_int_equal(call(f, STORE_OP_STATS, NULL, &stats), STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(stats, "schema_version")),
			 sql_schema_latest());
	json_decref(stats);
	add(u, HUB_RECORD_ORDER, make_order("o1", 1, 2));
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	assert_int_equal(call(f, STORE_OP_STATS, NULL, &stats), STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(stats, "orders")), 1);
	json_decref(stats);
	/* The estimate (PostgreSQL's statistics, flushed by the server within
	 * seconds; SQLite counts) reaches the same figure. */
	for (int tries = 0;; tries++) {
		json_int_t n;

		assert_int_equal(call(f, STORE_OP_STATS, json_pack("{s:b}", "estimate", 1), &stats),
				 STORE_OK);
		n = json_integer_value(json_object_get(stats, "orders"));
		json_decref(stats);
		if (n == 1)
			break;
		assert_true(tries < 150); /* 30 s */
		usleep(200000);
	}

	/* Reopening applies nothing twice and keeps the data. */
	store_close(f->st);
	open_store(f, 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM schema_version"), sql_schema_latest());
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), 1);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), 2);
}

static void test_newer_database_refused(void **state)
{
	struct fixture *f = *state;
	struct store_options opt = {0};
	struct hub_error err = {0};
	struct store *st = NULL;
	char *ignored;

	store_close(f->st);
	f->st = NULL;
	ignored = raw_query(f, "INSERT INTO schema_version (version, applied_at_ms) "
			       "VALUES (9999, 0)");
	free(ignored);
	opt.url = f->loc.url;
	opt.state_dir = f->loc.dir;
	assert_int_equal(store_open(&st, f->base, &opt, &err), -1);
	assert_null(st);
	assert_non_null(strstr(err.message, "9999"));
	assert_non_null(strstr(err.message, "newer hubd"));
	/* Nothing was changed by the refused open. */
	assert_int_equal(raw_count(f, "SELECT MAX(version) FROM schema_version"), 9999);
	ignored = raw_query(f, "DELETE FROM schema_version WHERE version = 9999");
	free(ignored);
	open_store(f, 0);
}

/* Shuffled, repeated deliveries of many versions end at the newest. */
static void test_upsert_never_older(void **state)
{
	struct fixture *f = *state;
	enum { ORDERS = 20, VERSIONS = 8 };
	struct { int order, version; } deliveries[ORDERS * VERSIONS * 3];
	size_t n = 0;
	struct slot slots[ORDERS * VERSIONS * 3];
	int pending = 0;
	char id[32];

	srand(42);
	for (int o = 0; o < ORDERS; o++) {
		for (int v = 1; v <= VERSIONS; v++) {
			int copies = 1 + rand() % 3;
			for (int c = 0; c < copies; c++) {
				deliveries[n].order = o;
				deliveries[n].version = v;
				n++;
			}
		}
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		__typeof__(deliveries[0]) tmp = deliveries[i];
		deliveries[i] = deliveries[j];
		deliveries[j] = tmp;
	}
	/* First third synchronously (one unit per transaction), the rest
	 * asynchronously so that many units share a transaction. */
	for (size_t i = 0; i < n;) {
		struct store_unit *u = unit("shop");
		size_t take = 1 + (size_t)rand() % 6;

		for (size_t k = 0; k < take && i < n; k++, i++) {
			snprintf(id, sizeof(id), "order-%d", deliveries[i].order);
			add(u, HUB_RECORD_ORDER,
			    make_order(id, deliveries[i].version, 1 + deliveries[i].version % 5));
		}
		if (i < n / 3) {
			assert_int_equal(submit(f, u, NULL), STORE_OK);
		} else {
			struct slot *s = &slots[pending];
			memset(s, 0, sizeof(*s));
			s->pending = &pending;
			pending++;
			assert_int_equal(store_submit(f->st, u, unit_done, s, NULL), 0);
		}
	}
	run_loop(f, &pending, 30000);
	assert_int_equal(pending, 0);

	/* An equal updated_at with different content changes nothing. */
	{
		struct store_unit *u = unit("shop");
		struct store_unit_result res;
		json_t *o = make_order("order-0", VERSIONS, 1);

		json_object_set_new(o, "total", json_integer(1));
		add(u, HUB_RECORD_ORDER, o);
		assert_int_equal(submit(f, u, &res), STORE_OK);
		assert_int_equal(res.written, 0);
		assert_int_equal(res.unchanged, 1);
	}
	for (int o = 0; o < ORDERS; o++) {
		json_t *got, *want, *lines;

		snprintf(id, sizeof(id), "order-%d", o);
		got = get_order(f, "shop", id);
		want = make_order(id, VERSIONS, 1 + VERSIONS % 5);
		assert_string_equal(json_string_value(json_object_get(json_object_get(got, "order"),
								      "updated_at")),
				    iso(T0 + VERSIONS * 1000));
		assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "order"),
								    "total")),
				 10000 + VERSIONS);
		lines = json_object_get(got, "lines");
		assert_int_equal(json_array_size(lines), 1 + VERSIONS % 5);
		for (size_t i = 0; i < json_array_size(lines); i++)
			assert_string_equal(
				json_string_value(json_object_get(json_array_get(lines, i), "sku")),
				json_string_value(json_object_get(
					json_array_get(json_object_get(want, "lines"), i), "sku")));
		json_decref(got);
		json_decref(want);
	}
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), ORDERS);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"),
			 ORDERS * (1 + VERSIONS % 5));
}

/* Records, cursor and jobs of a unit commit together or not at all, and a
 * failing unit does not take its batch neighbours down. */
static void test_unit_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	struct slot slots[30];
	int pending = 0;
	json_t *cursors = NULL, *jobs = NULL;

	/* The 30 units go in one transaction (the store thread is held while
	 * they are queued). Units 5 and 13 fail in the database, 21 repeats
	 * 20's webhook delivery: the batch runs optimistically, then with a
	 * savepoint per unit after the second failure. */
	struct store_counters cnt;

	store_hold(f->st, 1);
	for (int i = 0; i < 30; i++) {
		int bad = i == 5 || i == 13;
		struct store_unit *u = unit(bad ? "broken" : "shop");
		char id[32];

		snprintf(id, sizeof(id), "o%d", i);
		add(u, HUB_RECORD_ORDER, make_order(id, 1, 5));
		assert_int_equal(store_unit_set_cursor(u, "orders", json_pack("{s:i}", "page", i)), 0);
		assert_int_equal(store_unit_add_job(u, "push_tracking", json_pack("{s:s}", "o", id),
						    0), 0);
		if (bad)
			store_unit_inject_fault(u);
		if (i == 20 || i == 21)
			store_unit_set_receipt(u, "same-delivery", T0 + 86400000);
		memset(&slots[i], 0, sizeof(slots[i]));
		slots[i].pending = &pending;
		pending++;
		assert_int_equal(store_submit(f->st, u, unit_done, &slots[i], NULL), 0);
	}
	run_loop(f, &pending, 300);
	assert_int_equal(pending, 30); /* held: nothing ran */
	store_hold(f->st, 0);
	run_loop(f, &pending, 20000);
	assert_int_equal(pending, 0);
	for (int i = 0; i < 30; i++) {
		if (i == 5 || i == 13) {
			assert_int_equal(slots[i].res.status, STORE_FAILED);
			assert_non_null(strstr(slots[i].res.err.message, "rolled back"));
		} else if (i == 21) {
			assert_int_equal(slots[i].res.status, STORE_DUPLICATE);
		} else {
			assert_int_equal(slots[i].res.status, STORE_OK);
			assert_int_equal(slots[i].res.written, 1);
		}
	}
	store_counters(f->st, &cnt);
	assert_int_equal(cnt.items, 30);
	assert_int_equal(cnt.items_failed, 3);
	assert_int_equal(cnt.batches, 1);
	assert_int_equal(cnt.safe_batches, 1); /* savepoints after the second failure */
	assert_int_equal(cnt.reruns, 2);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), 27);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), 27 * 5);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'o13'"), 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'o21'"), 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM jobs"), 27);
	assert_int_equal(call(f, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", "broken"),
			      &cursors),
			 STORE_OK);
	assert_int_equal(json_object_size(cursors), 0);
	json_decref(cursors);
	assert_int_equal(call(f, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", "shop"),
			      &cursors),
			 STORE_OK);
	/* Units commit in submission order: the last cursor wins. */
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_object_get(cursors, "orders"), "cursor"), "page")),
			 29);
	json_decref(cursors);
	assert_int_equal(call(f, STORE_OP_JOBS_CLAIM, json_pack("{s:s}", "connector", "broken"),
			      &jobs),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(jobs, "items")), 0);
	json_decref(jobs);
}

static void test_duplicate_webhook(void **state)
{
	struct fixture *f = *state;
	struct store_unit_result res;
	struct store_unit *u;
	json_t *cursors = NULL, *pruned = NULL;

	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("x", 1, 1));
	store_unit_set_cursor(u, "orders", json_string("c1"));
	store_unit_set_receipt(u, "delivery-1", T0 + 86400000);
	assert_int_equal(submit(f, u, &res), STORE_OK);

	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("y", 1, 1));
	store_unit_set_cursor(u, "orders", json_string("c2"));
	store_unit_add_job(u, "push", NULL, 0);
	store_unit_set_receipt(u, "delivery-1", T0 + 86400000);
	assert_int_equal(submit(f, u, &res), STORE_DUPLICATE);
	assert_non_null(strstr(res.err.message, "delivery-1"));
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'y'"), 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM jobs"), 0);
	assert_int_equal(call(f, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", "shop"),
			      &cursors),
			 STORE_OK);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cursors, "orders"),
							      "cursor")),
			    "c1");
	json_decref(cursors);

	/* The same id on another connector is another delivery. */
	u = unit("other");
	add(u, HUB_RECORD_ORDER, make_order("y", 1, 1));
	store_unit_set_receipt(u, "delivery-1", T0 + 86400000);
	assert_int_equal(submit(f, u, &res), STORE_OK);

	/* Expired receipts are pruned; the id is then new again. */
	assert_int_equal(call(f, STORE_OP_PRUNE, json_pack("{s:I}", "now_ms",
							   (json_int_t)(T0 + 2 * 86400000)),
			      &pruned),
			 STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(pruned, "receipts")), 2);
	json_decref(pruned);
	u = unit("shop");
	store_unit_set_receipt(u, "delivery-1", T0 + 3 * 86400000);
	assert_int_equal(submit(f, u, &res), STORE_OK);
}

struct op_slot {
	int *pending;
	enum store_status status;
	json_t *result;
};

static void op_done(void *arg, enum store_status status, json_t *result,
		    const struct hub_error *err)
{
	struct op_slot *s = arg;

	(void)err;
	s->status = status;
	s->result = json_incref(result);
	(*s->pending)--;
}

/* Submits units while the store thread is held, so that they commit
 * together once released, and, when op is set, STORE_OP_STATS after unit
 * number op_after (its result in *op); waits for all. */
static void submit_held_op(struct fixture *f, struct store_unit **units, struct slot *slots, int n,
			   int op_after, struct op_slot *op)
{
	int pending = 0;

	store_hold(f->st, 1);
	for (int i = 0; i < n; i++) {
		memset(&slots[i], 0, sizeof(slots[i]));
		slots[i].pending = &pending;
		pending++;
		assert_int_equal(store_submit(f->st, units[i], unit_done, &slots[i], NULL), 0);
		if (op && i == op_after) {
			op->pending = &pending;
			pending++;
			assert_int_equal(store_call(f->st, STORE_OP_STATS, NULL, op_done, op, NULL), 0);
		}
	}
	store_hold(f->st, 0);
	run_loop(f, &pending, 30000);
	assert_int_equal(pending, 0);
}

static void submit_held(struct fixture *f, struct store_unit **units, struct slot *slots, int n)
{
	submit_held_op(f, units, slots, n, -1, NULL);
}

/* Webhook units of orders only: on PostgreSQL their receipts go into the
 * bulk order statement, which writes the orders of new deliveries only. A
 * duplicate must still write nothing, also when it shares a batch with
 * its twin or holds a newer version of an order another unit carries. */
/* Every batch is durable before it is reported: on SQLite ("full", the
 * default) the store syncs the WAL itself after the commit (the
 * connection runs synchronous=NORMAL) and reports the batch after that
 * sync; PostgreSQL's commits sync by themselves. */
static void test_batches_synced_before_reported(void **state)
{
	struct fixture *f = *state;
	int pg = strcmp(store_backend(f->st), "postgresql") == 0;
	struct store_counters c;
	char id[16];

	for (int i = 0; i < 5; i++) {
		struct store_unit *u = unit("shop");

		snprintf(id, sizeof(id), "s%d", i);
		add(u, HUB_RECORD_ORDER, make_order(id, 1, 1));
		assert_int_equal(submit(f, u, NULL), STORE_OK);
		store_counters(f->st, &c);
		if (pg)
			assert_int_equal(c.syncs, 0);
		else
			assert_true(c.syncs >= c.batches && c.batches >= (uint64_t)i + 1);
	}
	if (!pg) {
		/* The store's own connection: NORMAL, the sync being the store's. */
		json_t *stats = NULL;

		assert_int_equal(call(f, STORE_OP_STATS, NULL, &stats), STORE_OK);
		assert_int_equal(json_integer_value(json_object_get(stats, "sqlite_synchronous")), 1);
		json_decref(stats);
	}
}

static void test_duplicates_in_batches(void **state)
{
	struct fixture *f = *state;
	int pg = strcmp(store_backend(f->st), "postgresql") == 0;
	struct store_unit *u, *units[12];
	struct store_unit_result res;
	struct store_counters before, after;
	struct slot slots[12];
	char id[32], *text;

	/* Already received: "seen", and order "d" at version 5. */
	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("seen-order", 1, 1));
	store_unit_set_receipt(u, "seen", T0 + 86400000);
	assert_int_equal(submit(f, u, &res), STORE_OK);

	/* Batch 1: ten new deliveries and one repeat of "seen" carrying an
	 * order the store does not have. */
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		units[i] = unit("shop");
		add(units[i], HUB_RECORD_ORDER, make_order(id, 1, 2));
		store_unit_set_receipt(units[i], id, T0 + 86400000);
	}
	units[10] = unit("shop");
	add(units[10], HUB_RECORD_ORDER, make_order("never", 1, 2));
	store_unit_set_receipt(units[10], "seen", T0 + 86400000);
	store_counters(f->st, &before);
	submit_held(f, units, slots, 11);
	store_counters(f->st, &after);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(slots[i].res.status, STORE_OK);
		assert_int_equal(slots[i].res.written, 1);
	}
	assert_int_equal(slots[10].res.status, STORE_DUPLICATE);
	assert_non_null(strstr(slots[10].res.err.message, "seen"));
	assert_int_equal(slots[10].res.written, 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'never'"), 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines WHERE external_id LIKE "
				      "'never%'"),
			 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id LIKE 'a%'"), 10);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines WHERE external_id LIKE "
				      "'a%'"),
			 20);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM webhook_receipts"), 11);
	assert_int_equal(after.batches - before.batches, 1);
	/* PostgreSQL: the duplicate is found inside the bulk statement, the
	 * batch is not run again; SQLite: its receipt INSERT fails, and the
	 * batch runs again without it. */
	assert_int_equal(after.reruns - before.reruns, pg ? 0 : 1);

	/* Batch 2: the same new delivery twice ("twin"), and order "d" from
	 * a new delivery at version 2 beside a repeat of "seen" carrying "d"
	 * at version 3: the newer version must not win through a duplicate. */
	for (int i = 0; i < 2; i++) {
		units[i] = unit("shop");
		add(units[i], HUB_RECORD_ORDER, make_order("twin-order", 1, 1));
		store_unit_set_receipt(units[i], "twin", T0 + 86400000);
	}
	units[2] = unit("shop");
	add(units[2], HUB_RECORD_ORDER, make_order("d", 2, 1));
	store_unit_set_receipt(units[2], "d-new", T0 + 86400000);
	units[3] = unit("shop");
	add(units[3], HUB_RECORD_ORDER, make_order("d", 3, 1));
	store_unit_set_receipt(units[3], "seen", T0 + 86400000);
	submit_held(f, units, slots, 4);
	assert_int_equal(slots[0].res.status == STORE_OK ? slots[1].res.status : slots[0].res.status,
			 STORE_DUPLICATE);
	assert_true(slots[0].res.status == STORE_OK || slots[1].res.status == STORE_OK);
	assert_int_equal(slots[2].res.status, STORE_OK);
	assert_int_equal(slots[2].res.written, 1);
	assert_int_equal(slots[3].res.status, STORE_DUPLICATE);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'twin-order'"),
			 1);
	text = raw_query(f, "SELECT updated_at_ms FROM orders WHERE external_id = 'd'");
	assert_non_null(text);
	assert_int_equal(strtoll(text, NULL, 10), T0 + 2 * 1000);
	free(text);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM webhook_receipts"), 13);
}

/*
 * Lanes: on PostgreSQL with two store connections, two batches of webhook
 * units run side by side, each on its own connection, when they write
 * different rows. With small
 * batches and units that share orders and delivery ids, the outcome must be
 * what one lane gives: the newest version of each order, one stored copy of
 * each delivery, and an op that sees exactly the units queued before it
 * (none after): each of the first 60 units also carries an order of its
 * own, so that the op's order count tells how many of them it saw. SQLite
 * has one lane and must give the same.
 */
static void test_lanes_keep_order(void **state)
{
	struct fixture *f = *state;
	int pg = strcmp(store_backend(f->st), "postgresql") == 0;
	enum { FIRST = 60, REPEATS = 4, AFTER = 60 };
	struct store_unit *units[FIRST + REPEATS + AFTER];
	struct slot slots[FIRST + REPEATS + AFTER];
	struct store_counters before, after;
	struct op_slot op = {0};
	int n = 0;
	char id[32], del[32];
	char *text;

	store_close(f->st);
	open_store_lanes(f, 4, 2);
	/* 60 deliveries over 10 orders (each order in 6 versions, its newest
	 * from the last delivery that carries it) and one order of their own
	 * each ("own<i>", no lines), with, before the last 4 of them, repeats
	 * of 4 earlier deliveries with a newer version (duplicates: they must
	 * write nothing; not last, so that the units just before the op write
	 * something the op can see), then the op, then 60 deliveries of 60
	 * new orders. */
	for (int i = 0; i < FIRST; i++) {
		if (i == FIRST - REPEATS) {
			for (int r = 0; r < REPEATS; r++) {
				snprintf(id, sizeof(id), "k%d", r);
				snprintf(del, sizeof(del), "L%d", FIRST - 10 + r);
				units[n] = unit("shop");
				add(units[n], HUB_RECORD_ORDER, make_order(id, 1000, 1));
				store_unit_set_receipt(units[n++], del, T0 + 86400000);
			}
		}
		snprintf(id, sizeof(id), "k%d", i % 10);
		snprintf(del, sizeof(del), "L%d", i);
		units[n] = unit("shop");
		add(units[n], HUB_RECORD_ORDER, make_order(id, i + 1, 2));
		snprintf(id, sizeof(id), "own%d", i);
		add(units[n], HUB_RECORD_ORDER, make_order(id, 1, 0));
		store_unit_set_receipt(units[n++], del, T0 + 86400000);
	}
	for (int i = 0; i < AFTER; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		snprintf(del, sizeof(del), "M%d", i);
		units[n] = unit("shop");
		add(units[n], HUB_RECORD_ORDER, make_order(id, 1, 1));
		store_unit_set_receipt(units[n++], del, T0 + 86400000);
	}
	store_counters(f->st, &before);
	submit_held_op(f, units, slots, n, FIRST + REPEATS - 1, &op);
	store_counters(f->st, &after);

	for (int i = 0; i < n; i++) {
		if (i >= FIRST - REPEATS && i < FIRST) {
			assert_int_equal(slots[i].res.status, STORE_DUPLICATE);
			assert_int_equal(slots[i].res.written, 0);
		} else {
			assert_int_equal(slots[i].res.status, STORE_OK);
		}
	}
	/* The op ran after the 64 units queued before it and before the 60
	 * queued after it: it counts the 10 shared orders and the 60 own ones
	 * (each from one of the first 60 units; the 4 repeats write nothing
	 * wherever they run), and none of the 60 later orders. */
	assert_int_equal(op.status, STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(op.result, "orders")), 10 + FIRST);
	json_decref(op.result);
	for (int k = 0; k < 10; k++) {
		char sql[128];

		snprintf(sql, sizeof(sql), "SELECT updated_at_ms FROM orders WHERE external_id = 'k%d'",
			 k);
		text = raw_query(f, sql);
		assert_non_null(text);
		assert_int_equal(strtoll(text, NULL, 10), T0 + (FIRST - 10 + k + 1) * 1000);
		free(text);
	}
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), 10 + FIRST + AFTER);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), 10 * 2 + AFTER);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM webhook_receipts"), FIRST + AFTER);
	/* Batches of at most 4: at least 31 for 124 units and the op. */
	assert_true(after.batches - before.batches >= (FIRST + REPEATS + AFTER) / 4 + 1);
	if (pg)
		assert_true(after.overlapped > before.overlapped);
	else
		assert_int_equal(after.overlapped, 0);
}

/* One transaction writing one order in two chunks (PostgreSQL: two bulk
 * statements, each followed by its lines statement): x at version 5 with 1
 * line, 300 large orders (over 512 KB: the next chunk), then x at version
 * 5 again (equal: loses) with 3 lines and at version 4 with 2. The lines of
 * the later chunk must not replace those of the version that won. */
static void test_same_order_in_two_chunks(void **state)
{
	struct fixture *f = *state;
	enum { FILL = 300, N = FILL + 3 };
	struct store_unit **units = calloc(N, sizeof(*units));
	struct slot *slots = calloc(N, sizeof(*slots));
	struct store_counters before, after;
	char id[16];

	assert_non_null(units);
	assert_non_null(slots);
	store_close(f->st);
	open_store_lanes(f, N, 1);
	units[0] = unit("shop");
	add(units[0], HUB_RECORD_ORDER, make_order("x", 5, 1));
	for (int i = 1; i <= FILL; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		units[i] = unit("shop");
		add(units[i], HUB_RECORD_ORDER, make_order(id, 1, 20));
	}
	units[FILL + 1] = unit("shop");
	add(units[FILL + 1], HUB_RECORD_ORDER, make_order("x", 5, 3));
	units[FILL + 2] = unit("shop");
	add(units[FILL + 2], HUB_RECORD_ORDER, make_order("x", 4, 2));
	store_counters(f->st, &before);
	submit_held(f, units, slots, N);
	store_counters(f->st, &after);
	assert_int_equal(after.batches - before.batches, 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(slots[i].res.status, STORE_OK);
		assert_int_equal(slots[i].res.written, i <= FILL ? 1 : 0);
	}
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines l JOIN orders o ON "
				      "o.id = l.order_id WHERE o.external_id = 'x'"),
			 1);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), 1 + FILL * 20);
	free(units);
	free(slots);
}

#ifdef STORE_TEST_PG
/* Runs sql on c, which must succeed; returns the first column of the first
 * row as a number (0 when none). */
static long pg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long v = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

/* Waits (at most 10 s) until a session of the test database waits for a
 * lock; fails the test if none does. */
static void wait_for_lock_wait(struct fixture *f)
{
	for (int tries = 0;; tries++) {
		if (raw_count(f, "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = "
				 "'Lock' AND datname = current_database()") > 0)
			return;
		assert_true(tries < 500);
		usleep(20000);
	}
}

/* Writes `rec` (kind) through the store while session c holds its row in
 * an open transaction: the store's write must wait for it; then c commits
 * (and is closed) and the write must succeed, counted as written. With
 * safe, two failing units go first, so the batch runs unit by unit. */
static void write_against_session(struct fixture *f, PGconn *c, int safe,
				  enum hub_record_kind kind, json_t *rec)
{
	struct store_unit *u[3];
	struct slot s[3];
	int pending = 0, nu = 0;

	if (safe) {
		for (int i = 0; i < 2; i++) {
			char oid[16];

			snprintf(oid, sizeof(oid), "bad%d", i);
			u[nu] = unit("broken");
			add(u[nu], HUB_RECORD_ORDER, make_order(oid, 1, 1));
			store_unit_inject_fault(u[nu++]);
		}
	}
	u[nu] = unit("shop");
	add(u[nu++], kind, rec);
	store_hold(f->st, 1);
	for (int i = 0; i < nu; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].pending = &pending;
		pending++;
		assert_int_equal(store_submit(f->st, u[i], unit_done, &s[i], NULL), 0);
	}
	store_hold(f->st, 0);
	wait_for_lock_wait(f);
	run_loop(f, &pending, 100);
	assert_int_equal(s[nu - 1].done, 0); /* still waiting for the session */
	pg_exec(c, "COMMIT");
	PQfinish(c);
	run_loop(f, &pending, 10000);
	assert_int_equal(pending, 0);
	assert_int_equal(s[nu - 1].res.status, STORE_OK);
	assert_int_equal(s[nu - 1].res.written, 1);
	if (safe)
		assert_int_equal(s[0].res.status, STORE_FAILED);
}

/* One writer race: another session writes order "x" at version 2 with 3
 * lines (an update of the stored version 1, or, fresh, an insert) and
 * holds its transaction open; the store writes "x" at version 3 with 1
 * line and must wait for it (row lock or unique index); the session
 * commits. The store's version wins and x must have its 1 line only - not
 * also the other session's 3, which the store's statement could not see
 * when it started. safe: the store writes on its per-unit path (two
 * failing units in the batch first). */
static void race_lines(struct fixture *f, int fresh, int safe)
{
	struct store_unit *u[1];
	PGconn *c;
	long id;
	char sql[512];

	if (!fresh) {
		u[0] = unit("shop");
		add(u[0], HUB_RECORD_ORDER, make_order("x", 1, 2));
		assert_int_equal(submit(f, u[0], NULL), STORE_OK);
	}
	c = PQconnectdb(f->loc.url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	pg_exec(c, "SET idle_in_transaction_session_timeout = '20s'"); /* if the test fails */
	pg_exec(c, "BEGIN");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO orders (merchant, connector, external_id, status, currency, total, "
		 "created_at_ms, updated_at_ms, record, stored_at_ms) VALUES ('acme', 'shop', 'x', "
		 "'open', 'USD', 1, %lld, %lld, '{}', 0) ON CONFLICT (connector, external_id, "
		 "merchant) DO UPDATE SET updated_at_ms = excluded.updated_at_ms RETURNING id",
		 (long long)T0, (long long)(T0 + 2000));
	id = pg_exec(c, sql);
	snprintf(sql, sizeof(sql), "DELETE FROM order_lines WHERE order_id = %ld", id);
	pg_exec(c, sql);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO order_lines (order_id, line_no, external_id, sku, quantity, "
		 "unit_price) SELECT %ld, n, 'other-' || n, 'OTHER', 1, 1 "
		 "FROM generate_series(0, 2) AS n",
		 id);
	pg_exec(c, sql);

	write_against_session(f, c, safe, HUB_RECORD_ORDER, make_order("x", 3, 1));
	assert_int_equal(raw_count(f, "SELECT updated_at_ms FROM orders WHERE external_id = 'x'"),
			 T0 + 3000);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines l JOIN orders o ON "
				      "o.id = l.order_id WHERE o.external_id = 'x'"),
			 1);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines l JOIN orders o ON "
				      "o.id = l.order_id WHERE o.external_id = 'x' AND "
				      "l.sku = 'SKU-0-3'"),
			 1);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), 1);
}

/* Two writers of one order at the same time (several hubd on one
 * database): the order ends with the lines of the version that won, on the
 * bulk path and the per-unit path, for an order both update and for one
 * both insert. */
static void test_concurrent_writers_lines(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	open_store_lanes(f, 0, 1);
	for (int k = 0; k < 4; k++) {
		race_lines(f, k & 1, k >> 1);
		free(raw_query(f, "DELETE FROM order_lines"));
		free(raw_query(f, "DELETE FROM orders"));
	}
}

/* The same race for a shipment and its tracking numbers: another session
 * writes shipment "s" at version 2 with the numbers {A, B} ({A, B, C} when
 * keep_c) - an update of the stored version 1, which has {C}, or, fresh,
 * an insert - and holds its transaction open; the store writes "s" at
 * version 3 with {C} and must wait for it; the session commits. The
 * store's version wins and s must have {C} only; when C was held by every
 * version, it keeps its check schedule. safe: the store writes on its
 * per-unit path (two failing units in the batch first). */
static void race_tracking(struct fixture *f, int fresh, int safe, int keep_c)
{
	struct store_unit *u[1];
	PGconn *c;
	long id;
	char sql[512];

	if (!fresh) {
		u[0] = unit("shop");
		add(u[0], HUB_RECORD_SHIPMENT,
		    make_shipment("s", "o", "ups", json_pack("[s]", "C"), "in_transit", 1));
		assert_int_equal(submit(f, u[0], NULL), STORE_OK);
		free(raw_query(f, "UPDATE shipment_tracking SET not_found_count = 2, "
				  "next_check_ms = 777 WHERE tracking_number = 'C'"));
	}
	c = PQconnectdb(f->loc.url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	pg_exec(c, "BEGIN");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO shipments (merchant, connector, external_id, order_external_id, "
		 "carrier, status, created_at_ms, updated_at_ms, record, stored_at_ms) VALUES "
		 "('acme', 'shop', 's', 'o', 'ups', 'in_transit', %lld, %lld, '{}', 0) "
		 "ON CONFLICT (connector, external_id, merchant) DO UPDATE SET "
		 "updated_at_ms = excluded.updated_at_ms RETURNING id",
		 (long long)T0, (long long)(T0 + 2000));
	id = pg_exec(c, sql);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM shipment_tracking WHERE shipment_id = %ld AND tracking_number "
		 "NOT IN ('A', 'B'%s)",
		 id, keep_c ? ", 'C'" : "");
	pg_exec(c, sql);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO shipment_tracking (shipment_id, carrier, tracking_number) "
		 "SELECT %ld, 'ups', n FROM unnest(CAST(%s AS text[])) AS n "
		 "ON CONFLICT (shipment_id, carrier, tracking_number) DO NOTHING",
		 id, keep_c ? "'{A,B,C}'" : "'{A,B}'");
	pg_exec(c, sql);

	write_against_session(f, c, safe, HUB_RECORD_SHIPMENT,
			      make_shipment("s", "o", "ups", json_pack("[s]", "C"), "in_transit", 3));
	assert_int_equal(raw_count(f, "SELECT updated_at_ms FROM shipments WHERE external_id = 's'"),
			 T0 + 3000);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM shipment_tracking"), 1);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM shipment_tracking t JOIN shipments h "
				      "ON h.id = t.shipment_id WHERE h.external_id = 's' AND "
				      "t.carrier = 'ups' AND t.tracking_number = 'C'"),
			 1);
	if (!fresh && keep_c) {
		/* C, held by every version, kept its schedule. */
		assert_int_equal(raw_count(f, "SELECT next_check_ms FROM shipment_tracking"), 777);
		assert_int_equal(raw_count(f, "SELECT not_found_count FROM shipment_tracking"), 2);
	}
}

/* Two writers of one shipment at the same time (several hubd on one
 * database): the shipment ends with the tracking numbers of the version
 * that won, on the batch's optimistic and per-unit paths, for a shipment
 * both update and for one both insert. */
static void test_concurrent_writers_tracking(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	open_store_lanes(f, 0, 1);
	for (int k = 0; k < 8; k++) {
		race_tracking(f, k & 1, (k >> 1) & 1, k >> 2);
		free(raw_query(f, "DELETE FROM shipment_tracking"));
		free(raw_query(f, "DELETE FROM shipments"));
	}
}

/*
 * Lanes keep conflicting units in order, and only those. Another session
 * locks order e9; with 2 lanes and batches of 2: U1 (e9 v2) and U2 (e0 v5,
 * 1 line) go to one lane, whose batch waits for the lock; U3 (e0 v5 again,
 * 3 lines) shares e0 with that batch and must wait for it; U4 (e5) shares
 * nothing and must commit meanwhile on the other lane. After the session
 * lets go, e0 has U2's 1 line: of equal versions the first queued wins,
 * which it does only if U3 really ran after U2 (run beside it, U3 would
 * commit first and win). The version guard cannot hide the order here.
 */
static void test_lanes_wait_for_rows(void **state)
{
	struct fixture *f = *state;
	struct slot s[4];
	struct store_unit *u[4];
	int pending = 3, p4 = 1;
	PGconn *c;

	store_close(f->st);
	open_store_lanes(f, 2, 2);
	u[0] = unit("shop");
	add(u[0], HUB_RECORD_ORDER, make_order("e9", 1, 1));
	assert_int_equal(submit(f, u[0], NULL), STORE_OK);
	c = PQconnectdb(f->loc.url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	pg_exec(c, "SET idle_in_transaction_session_timeout = '20s'"); /* if the test fails */
	pg_exec(c, "BEGIN");
	pg_exec(c, "SELECT 1 FROM orders WHERE external_id = 'e9' FOR UPDATE");

	u[0] = unit("shop");
	add(u[0], HUB_RECORD_ORDER, make_order("e9", 2, 1)); /* waits for the lock */
	u[1] = unit("shop");
	add(u[1], HUB_RECORD_ORDER, make_order("e0", 5, 1));
	u[2] = unit("shop");
	add(u[2], HUB_RECORD_ORDER, make_order("e0", 5, 3)); /* equal version: loses */
	u[3] = unit("shop");
	add(u[3], HUB_RECORD_ORDER, make_order("e5", 1, 1)); /* unrelated */
	memset(s, 0, sizeof(s));
	store_hold(f->st, 1);
	for (int i = 0; i < 4; i++) {
		s[i].pending = i == 3 ? &p4 : &pending;
		assert_int_equal(store_submit(f->st, u[i], unit_done, &s[i], NULL), 0);
	}
	store_hold(f->st, 0);
	wait_for_lock_wait(f);
	run_loop(f, &p4, 5000);
	assert_int_equal(p4, 0); /* the unrelated unit ran beside */
	assert_int_equal(s[3].res.status, STORE_OK);
	assert_int_equal(s[3].res.written, 1);
	run_loop(f, &pending, 200);
	assert_int_equal(pending, 3); /* nothing else finished */
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'e0'"), 0);
	pg_exec(c, "ROLLBACK");
	PQfinish(c);
	run_loop(f, &pending, 10000);
	assert_int_equal(pending, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s[i].res.status, STORE_OK);
	assert_int_equal(s[1].res.written, 1);
	assert_int_equal(s[2].res.written, 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines l JOIN orders o ON "
				      "o.id = l.order_id WHERE o.external_id = 'e0'"),
			 1);
	assert_int_equal(raw_count(f, "SELECT updated_at_ms FROM orders WHERE external_id = 'e9'"),
			 T0 + 2000);
}
#endif

static void test_dead_letters(void **state)
{
	struct fixture *f = *state;
	struct store_unit_result res;
	struct hub_error err = {0};
	struct store_unit *u = unit("shop");
	json_t *bad = make_order("bad", 1, 2), *list = NULL, *entry = NULL, *item;

	json_object_del(bad, "currency");
	assert_int_equal(store_unit_add_record(u, HUB_RECORD_ORDER, bad, &err), -1);
	assert_string_equal(err.field, "order.currency");
	bad = make_order("bad2", 1, 2);
	json_object_set_new(json_array_get(json_object_get(bad, "lines"), 1), "quantity",
			    json_string("two"));
	assert_int_equal(store_unit_add_record(u, HUB_RECORD_ORDER, bad, &err), -1);
	assert_string_equal(err.field, "order.lines[1].quantity");
	add(u, HUB_RECORD_ORDER, make_order("good", 1, 2));
	store_unit_set_cursor(u, "orders", json_string("after-bad"));
	assert_int_equal(store_unit_add_dead_letter(u, "webhook", json_pack("{s:s}", "raw", "x"),
						    "topic not handled", NULL, 422), 0);
	assert_int_equal(submit(f, u, &res), STORE_OK);
	assert_int_equal(res.written, 1);
	assert_int_equal(res.dead_letters, 3);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), 1);

	assert_int_equal(call(f, STORE_OP_DEAD_LETTERS_LIST,
			      json_pack("{s:s, s:i}", "connector", "shop", "limit", 2), &list),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
	assert_true(json_is_string(json_object_get(list, "next_cursor")));
	item = json_array_get(json_object_get(list, "items"), 0); /* newest first */
	assert_string_equal(json_string_value(json_object_get(item, "kind")), "webhook");
	assert_int_equal(json_integer_value(json_object_get(item, "upstream_status")), 422);
	item = json_array_get(json_object_get(list, "items"), 1);
	assert_string_equal(json_string_value(json_object_get(item, "field")),
			    "order.lines[1].quantity");
	assert_string_equal(json_string_value(json_object_get(json_object_get(item, "payload"),
							      "external_id")),
			    "bad2");
	assert_int_equal(call(f, STORE_OP_DEAD_LETTER_REPLAYED,
			      json_pack("{s:O}", "id", json_object_get(item, "id")), &entry),
			 STORE_OK);
	assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "payload"),
							      "external_id")),
			    "bad2");
	assert_true(json_is_integer(json_object_get(entry, "replayed_at_ms")));
	assert_int_equal(call(f, STORE_OP_DEAD_LETTER_REPLAYED,
			      json_pack("{s:O}", "id", json_object_get(item, "id")), NULL),
			 STORE_NOT_FOUND);
	json_decref(entry);
	json_decref(list);
	assert_int_equal(call(f, STORE_OP_DEAD_LETTERS_LIST, json_pack("{s:s}", "merchant", "acme"),
			      &list),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
	json_decref(list);
	assert_int_equal(call(f, STORE_OP_DEAD_LETTERS_LIST, json_pack("{s:b}", "include_replayed", 1),
			      &list),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 3);
	json_decref(list);
}

/* Keyset pagination: every row exactly once, newest first, stable while
 * rows are added. */
static void test_pagination(void **state)
{
	struct fixture *f = *state;
	enum { N = 250 };
	char *seen = calloc(N + 100, 1);
	long long prev_ms = INT64_MAX, prev_id = INT64_MAX;
	const char *cursor = NULL;
	json_t *page = NULL;
	int total = 0, pages = 0;

	for (int i = 0; i < N;) {
		struct store_unit *u = store_unit_new((i / 25) % 2 ? "acme" : "globex", "shop");
		for (int k = 0; k < 25; k++, i++) {
			char id[32];

			/* Many equal updated_at values: ties break on id. */
			snprintf(id, sizeof(id), "p%03d", i);
			add(u, HUB_RECORD_ORDER, make_order(id, i / 7, 1));
		}
		assert_int_equal(submit(f, u, NULL), STORE_OK);
	}
	for (;;) {
		json_t *params = json_pack("{s:i}", "limit", 40), *items, *it;
		size_t i;

		if (cursor)
			json_object_set_new(params, "cursor", json_string(cursor));
		json_decref(page);
		page = NULL;
		assert_int_equal(call(f, STORE_OP_ORDERS_LIST, params, &page), STORE_OK);
		items = json_object_get(page, "items");
		json_array_foreach(items, i, it) {
			int64_t id = json_integer_value(json_object_get(it, "id"));
			int64_t ms;
			assert_int_equal(hub_time_parse(json_string_value(json_object_get(it,
									     "updated_at")),
							0, &ms, NULL, NULL), 0);
			assert_true(ms < prev_ms || (ms == prev_ms && id < prev_id));
			prev_ms = ms;
			prev_id = id;
			assert_true(id > 0 && id < N + 100);
			assert_int_equal(seen[id], 0);
			seen[id] = 1;
			total++;
		}
		pages++;
		if (pages == 2) {
			/* New, newer rows do not shift the pages still to come. */
			struct store_unit *u = unit("shop");
			add(u, HUB_RECORD_ORDER, make_order("late", 1000, 1));
			assert_int_equal(submit(f, u, NULL), STORE_OK);
		}
		cursor = json_string_value(json_object_get(page, "next_cursor"));
		if (!cursor)
			break;
		assert_true(pages < 20);
	}
	assert_int_equal(total, N);
	assert_int_equal(pages, 7);
	json_decref(page);
	free(seen);

	/* Filters. */
	assert_int_equal(call(f, STORE_OP_ORDERS_LIST,
			      json_pack("{s:s, s:i}", "merchant", "globex", "limit", 1000), &page),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(page, "items")), N / 2);
	json_decref(page);
	assert_int_equal(call(f, STORE_OP_ORDERS_LIST,
			      json_pack("{s:s, s:i}", "sku", "SKU-0-1000", "limit", 1000), &page),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
	json_decref(page);
	assert_int_equal(call(f, STORE_OP_ORDERS_LIST,
			      json_pack("{s:s, s:i}", "updated_since", iso(T0 + 30 * 1000), "limit",
					1000),
			      &page),
			 STORE_OK);
	/* versions i/7 >= 30: i >= 210 -> 40 orders, plus "late" */
	assert_int_equal(json_array_size(json_object_get(page, "items")), 41);
	json_decref(page);
	assert_int_equal(call(f, STORE_OP_ORDERS_LIST,
			      json_pack("{s:s, s:i}", "status", "closed", "limit", 1000), &page),
			 STORE_OK);
	{
		json_t *it;
		size_t i;
		json_array_foreach(json_object_get(page, "items"), i, it)
			assert_string_equal(json_string_value(json_object_get(it, "status")),
					    "closed");
		assert_true(json_array_size(json_object_get(page, "items")) > 0);
	}
	json_decref(page);
	assert_int_equal(call(f, STORE_OP_ORDERS_LIST, json_pack("{s:s}", "cursor", "garbage"),
			      NULL),
			 STORE_INVALID);
}

/* Reads a whole file (or NULL). */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, fp);
	fclose(fp);
	return buf;
}

static int file_contains(const char *path, const char *needle)
{
	size_t len = 0, nlen = strlen(needle);
	char *buf = slurp(path, &len);
	int found = 0;

	for (size_t i = 0; buf && len >= nlen && i <= len - nlen && !found; i++)
		found = memcmp(buf + i, needle, nlen) == 0;
	free(buf);
	return found;
}

/* Whether any file under dir contains needle. */
static int tree_contains(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	while (d && !found && (e = readdir(d))) {
		char path[1024];
		struct stat sb;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &sb) < 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			found = tree_contains(path, needle);
		else if (S_ISREG(sb.st_mode))
			found = file_contains(path, needle);
	}
	if (d)
		closedir(d);
	return found;
}

static void test_secrets_sealed(void **state)
{
	struct fixture *f = *state;
	const char *secret = "shpat_SUPERSECRET_4d9f1c";
	json_t *conn = NULL, *config;
	struct store_unit *u;
	struct stat sb;
	char path[512], *raw;

	assert_int_equal(call(f, STORE_OP_CONNECTOR_PUT,
			      json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:{s:i}}, s:[s, s]}", "name",
					"acme-shop", "plugin", "shopify", "merchant", "acme", "config",
					"shop", "acme.myshopify.example", "access_token", secret,
					"webhook", "n", 1, "secret_keys", "access_token", "webhook"),
			      &conn),
			 STORE_OK);
	assert_true(json_is_true(json_object_get(conn, "created")));
	json_decref(conn);

	assert_int_equal(call(f, STORE_OP_CONNECTOR_GET, json_pack("{s:s}", "name", "acme-shop"),
			      &conn),
			 STORE_OK);
	config = json_object_get(conn, "config");
	assert_string_equal(json_string_value(json_object_get(config, "access_token")), "********");
	assert_string_equal(json_string_value(json_object_get(config, "shop")),
			    "acme.myshopify.example");
	json_decref(conn);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_GET,
			      json_pack("{s:s, s:b}", "name", "acme-shop", "reveal", 1), &conn),
			 STORE_OK);
	config = json_object_get(conn, "config");
	assert_string_equal(json_string_value(json_object_get(config, "access_token")), secret);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(config, "webhook"), "n")),
			 1);
	json_decref(conn);

	/* A null secret keeps the stored one; the rest is replaced. */
	assert_int_equal(call(f, STORE_OP_CONNECTOR_PUT,
			      json_pack("{s:s, s:s, s:s, s:{s:s, s:n}, s:[s], s:b}", "name",
					"acme-shop", "plugin", "shopify", "merchant", "acme", "config",
					"shop", "acme2.myshopify.example", "access_token", "secret_keys",
					"access_token", "paused", 1),
			      NULL),
			 STORE_OK);
	u = unit("acme-shop");
	assert_int_equal(store_unit_set_access_token(u, "fresh-TOKEN-771", T0), 0);
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_GET,
			      json_pack("{s:s, s:b}", "name", "acme-shop", "reveal", 1), &conn),
			 STORE_OK);
	config = json_object_get(conn, "config");
	assert_string_equal(json_string_value(json_object_get(config, "access_token")), secret);
	assert_string_equal(json_string_value(json_object_get(config, "shop")),
			    "acme2.myshopify.example");
	assert_string_equal(json_string_value(json_object_get(conn, "access_token")),
			    "fresh-TOKEN-771");
	assert_true(json_is_true(json_object_get(conn, "paused")));
	json_decref(conn);

	/* On disk: sealed, never the plaintext. */
	raw = raw_query(f, "SELECT config FROM connectors");
	assert_non_null(strstr(raw, "\"access_token\":\"v1:"));
	assert_null(strstr(raw, "SUPERSECRET"));
	free(raw);
	raw = raw_query(f, "SELECT access_token FROM connectors");
	assert_non_null(raw);
	assert_int_equal(strncmp(raw, "v1:", 3), 0);
	free(raw);
#ifdef STORE_TEST_PG
	free(raw_query(f, "CHECKPOINT"));
	snprintf(path, sizeof(path), "%s/data", server.dir);
	assert_true(tree_contains(path, "acme2.myshopify.example")); /* the scan works */
	assert_false(tree_contains(path, "SUPERSECRET"));
	assert_false(tree_contains(path, "fresh-TOKEN-771"));
#else
	store_close(f->st); /* checkpoints the WAL into the file */
	f->st = NULL;
	snprintf(path, sizeof(path), "%s/hub.db", f->loc.dir);
	assert_true(file_contains(path, "acme2.myshopify.example"));
	assert_false(tree_contains(f->loc.dir, "SUPERSECRET"));
	assert_false(tree_contains(f->loc.dir, "fresh-TOKEN-771"));
	open_store(f, 0);
#endif
	/* The key file: 0600, refused when others can read it. */
	snprintf(path, sizeof(path), "%s/secret.key", f->loc.dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	store_close(f->st);
	f->st = NULL;
	chmod(path, 0644);
	{
		struct store_options opt = {0};
		struct hub_error err = {0};
		struct store *st = NULL;

		opt.url = f->loc.url;
		opt.state_dir = f->loc.dir;
		assert_int_equal(store_open(&st, f->base, &opt, &err), -1);
		assert_non_null(strstr(err.message, "chmod 600"));
	}
	chmod(path, 0600);
	open_store(f, 0);
}

static void test_connectors_crud(void **state)
{
	struct fixture *f = *state;
	json_t *list = NULL;

	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(call(f, STORE_OP_CONNECTOR_PUT,
				      json_pack("{s:s, s:s, s:s, s:{}}", "name", name, "plugin", "ups",
						"merchant", i ? "acme" : "globex", "config"),
				      NULL),
				 STORE_OK);
	}
	assert_int_equal(call(f, STORE_OP_CONNECTORS_LIST, json_pack("{s:s}", "merchant", "acme"),
			      &list),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
	json_decref(list);
	assert_int_equal(call(f, STORE_OP_MERCHANTS_LIST, NULL, &list), STORE_OK);
	assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
	json_decref(list);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_PAUSE,
			      json_pack("{s:s, s:b}", "name", "c1", "paused", 1), NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", "c1"), NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", "c1"), NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_GET, json_pack("{s:s}", "name", "c1"), NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_CONNECTOR_PUT,
			      json_pack("{s:s, s:s, s:s, s:{}}", "name", "bad name!", "plugin", "ups",
					"merchant", "acme", "config"),
			      NULL),
			 STORE_INVALID);
	assert_int_equal(call(f, STORE_OP_CURSOR_PUT,
			      json_pack("{s:s, s:s, s:{s:s}}", "connector", "c0", "stream", "orders",
					"cursor", "since", "x"),
			      NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", "c0"), &list),
			 STORE_OK);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(list, "orders"), "cursor"), "since")),
			    "x");
	json_decref(list);
	assert_int_equal(call(f, STORE_OP_CURSOR_PUT,
			      json_pack("{s:s, s:s, s:n}", "connector", "c0", "stream", "orders",
					"cursor"),
			      NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", "c0"), &list),
			 STORE_OK);
	assert_int_equal(json_object_size(list), 0);
	json_decref(list);
}

static json_t *get_shipment(struct fixture *f, const char *connector, const char *id)
{
	json_t *res = NULL;

	assert_int_equal(call(f, STORE_OP_SHIPMENT_GET,
			      json_pack("{s:s, s:s}", "connector", connector, "external_id", id),
			      &res),
			 STORE_OK);
	return res;
}

static const char *ship_status(json_t *res)
{
	return json_string_value(json_object_get(json_object_get(res, "shipment"), "status"));
}

static void test_tracking(void **state)
{
	struct fixture *f = *state;
	struct store_unit_result res;
	struct store_unit *u;
	json_t *got, *due = NULL, *tr;

	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("o1", 1, 5));
	add(u, HUB_RECORD_SHIPMENT,
	    make_shipment("s1", "o1", "ups", json_pack("[s, s]", "1Z999", "1Z777"), "in_transit", 1));
	add(u, HUB_RECORD_SHIPMENT,
	    make_shipment("s3", "o1", "ups", json_pack("[s]", "1ZDONE"), "delivered", 1));
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	u = unit("amazon"); /* another marketplace holding the same parcel */
	add(u, HUB_RECORD_SHIPMENT,
	    make_shipment("s2", "a1", "ups", json_pack("[s]", "1Z999"), "pre_transit", 1));
	assert_int_equal(submit(f, u, NULL), STORE_OK);

	/* Numbers due for a check, leased once; a shipment already delivered
	 * when first seen is checked once too (for its events and dates). */
	assert_int_equal(call(f, STORE_OP_TRACKING_DUE,
			      json_pack("{s:s, s:s, s:i}", "carrier", "ups", "merchant", "acme", "limit",
					10),
			      &due),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(due, "items")), 3);
	json_decref(due);
	assert_int_equal(call(f, STORE_OP_TRACKING_DUE, json_pack("{s:s}", "carrier", "ups"), &due),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(due, "items")), 0);
	json_decref(due);

	/* A failed check gives its lease back: due again at once, only the
	 * numbers given back (1Z999: two shipments); a release never pushes a
	 * due number later. */
	assert_int_equal(call(f, STORE_OP_TRACKING_RELEASE,
			      json_pack("{s:s, s:[s, s]}", "carrier", "ups", "numbers", "1Z999", "1ZNONE"),
			      &got),
			 STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(got, "released")), 2);
	json_decref(got);
	assert_int_equal(call(f, STORE_OP_TRACKING_RELEASE,
			      json_pack("{s:s, s:[s], s:I}", "carrier", "ups", "numbers", "1Z999",
					"next_check_ms", (json_int_t)(now_ms() + 3600000)),
			      &got),
			 STORE_OK);
	assert_int_equal(json_integer_value(json_object_get(got, "released")), 0);
	json_decref(got);
	assert_int_equal(call(f, STORE_OP_TRACKING_DUE, json_pack("{s:s}", "carrier", "ups"), &due),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(due, "items")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(due, "items"), 0),
							      "tracking_number")),
			    "1Z999");
	json_decref(due);
	/* Bad input is refused, naming the field. */
	assert_int_equal(call(f, STORE_OP_TRACKING_RELEASE, json_pack("{s:s}", "carrier", "ups"), NULL),
			 STORE_INVALID);
	assert_int_equal(call(f, STORE_OP_TRACKING_RELEASE,
			      json_pack("{s:s, s:[i]}", "carrier", "ups", "numbers", 7), NULL),
			 STORE_INVALID);
	assert_int_equal(call(f, STORE_OP_TRACKING_RELEASE, json_pack("{s:[s]}", "numbers", "1Z999"), NULL),
			 STORE_INVALID);

	/* Events in any order; the latest decides; applied to both shipments. */
	for (int round = 0; round < 2; round++) {
		u = store_unit_new("acme", "ups-acct");
		tr = json_pack("{s:s, s:s, s:s, s:s, s:[o, o, o]}", "carrier", "ups",
			       "tracking_number", "1Z999", "status", "out_for_delivery",
			       "estimated_delivery_at", iso(T0 + 86400000), "events",
			       event(T0 + 2000, "in_transit", "Departed"),
			       event(T0 + 9000, "out_for_delivery", "Out for delivery"),
			       event(T0 + 1000, "pre_transit", "Label created"));
		add(u, HUB_RECORD_TRACKING, tr);
		store_unit_set_next_check(u, T0);
		assert_int_equal(submit(f, u, &res), STORE_OK);
		assert_int_equal(res.shipments_tracked, 2);
	}
	got = get_shipment(f, "shop", "s1");
	assert_string_equal(ship_status(got), "out_for_delivery");
	assert_int_equal(json_array_size(json_object_get(got, "events")), 3); /* deduplicated */
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(got,
										  "events"),
								       0),
							"description")),
			    "Out for delivery");
	assert_string_equal(json_string_value(json_object_get(json_object_get(got, "shipment"),
							      "estimated_delivery_at")),
			    iso(T0 + 86400000));
	json_decref(got);
	got = get_shipment(f, "amazon", "s2");
	assert_string_equal(ship_status(got), "out_for_delivery");
	json_decref(got);

	/* An older scan arriving late does not move the status back. */
	u = store_unit_new("acme", "ups-acct");
	add(u, HUB_RECORD_TRACKING,
	    json_pack("{s:s, s:s, s:s, s:[o]}", "carrier", "ups", "tracking_number", "1Z999",
		      "status", "in_transit", "events", event(T0 + 5000, "in_transit", "Arrived")));
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	got = get_shipment(f, "shop", "s1");
	assert_string_equal(ship_status(got), "out_for_delivery");
	assert_int_equal(json_array_size(json_object_get(got, "events")), 4);
	json_decref(got);

	/* A newer marketplace version keeps what tracking learnt. */
	u = unit("shop");
	add(u, HUB_RECORD_SHIPMENT,
	    make_shipment("s1", "o1", "ups", json_pack("[s, s]", "1Z999", "1Z777"), "in_transit", 2));
	assert_int_equal(submit(f, u, &res), STORE_OK);
	assert_int_equal(res.written, 1);
	got = get_shipment(f, "shop", "s1");
	assert_string_equal(ship_status(got), "out_for_delivery");
	json_decref(got);

	/* Not found: status kept, counted. No events: the record's status. */
	u = store_unit_new("acme", "ups-acct");
	add(u, HUB_RECORD_TRACKING,
	    json_pack("{s:s, s:s, s:s, s:b, s:[]}", "carrier", "ups", "tracking_number", "1Z777",
		      "status", "unknown", "not_found", 1, "events"));
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	assert_int_equal(raw_count(f, "SELECT not_found_count FROM shipment_tracking "
				      "WHERE tracking_number = '1Z777'"), 1);
	got = get_shipment(f, "shop", "s1");
	assert_string_equal(ship_status(got), "out_for_delivery");
	json_decref(got);
	u = store_unit_new("acme", "ups-acct");
	add(u, HUB_RECORD_TRACKING,
	    json_pack("{s:s, s:s, s:s, s:s, s:[]}", "carrier", "ups", "tracking_number", "1ZDONE",
		      "status", "delivered", "delivered_at", iso(T0 + 5000), "events"));
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	got = get_shipment(f, "shop", "s3");
	assert_string_equal(ship_status(got), "delivered");
	assert_string_equal(json_string_value(json_object_get(json_object_get(got, "shipment"),
							      "delivered_at")),
			    iso(T0 + 5000));
	json_decref(got);

	/* Delivered? not yet: due again once the next check time came. */
	assert_int_equal(call(f, STORE_OP_TRACKING_DUE,
			      json_pack("{s:s, s:I}", "carrier", "ups", "now_ms",
					(json_int_t)(now_ms() + 7200000)),
			      &due),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(due, "items")), 2);
	json_decref(due);

	/* The order with its lines and shipments; scope by merchant. */
	got = get_order(f, "shop", "o1");
	assert_int_equal(json_array_size(json_object_get(got, "lines")), 5);
	assert_int_equal(json_array_size(json_object_get(got, "shipments")), 2);
	json_decref(got);
	assert_int_equal(call(f, STORE_OP_ORDER_GET,
			      json_pack("{s:s, s:s, s:s}", "connector", "shop", "external_id", "o1",
					"merchant", "globex"),
			      NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_SHIPMENTS_LIST,
			      json_pack("{s:s}", "status", "out_for_delivery"), &got),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(got, "items")), 2);
	json_decref(got);
}

static void test_jobs(void **state)
{
	struct fixture *f = *state;
	struct store_unit *u = unit("shop");
	json_t *jobs = NULL, *res = NULL, *dl = NULL;
	int64_t now = now_ms(), id1, id2;

	store_unit_add_job(u, "push_tracking", json_pack("{s:s}", "n", "1Z1"), 0);
	store_unit_add_job(u, "push_tracking", json_pack("{s:s}", "n", "1Z2"), 0);
	store_unit_add_job(u, "later", NULL, now + 3600000);
	assert_int_equal(submit(f, u, NULL), STORE_OK);
	assert_int_equal(call(f, STORE_OP_JOBS_CLAIM, json_pack("{s:i}", "limit", 10), &jobs),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(jobs, "items")), 2);
	id1 = json_integer_value(json_object_get(json_array_get(json_object_get(jobs, "items"), 0),
						 "id"));
	id2 = json_integer_value(json_object_get(json_array_get(json_object_get(jobs, "items"), 1),
						 "id"));
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(jobs, "items"), 0), "attempts")),
			 1);
	json_decref(jobs);
	assert_int_equal(call(f, STORE_OP_JOBS_CLAIM, NULL, &jobs), STORE_OK);
	assert_int_equal(json_array_size(json_object_get(jobs, "items")), 0);
	json_decref(jobs);

	/* Retry later; a lapsed lease is claimable again. */
	assert_int_equal(call(f, STORE_OP_JOB_FAIL,
			      json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id1, "error", "503",
					"next_run_ms", (json_int_t)(now + 1000)),
			      &res),
			 STORE_OK);
	assert_false(json_is_true(json_object_get(res, "dead")));
	json_decref(res);
	assert_int_equal(call(f, STORE_OP_JOBS_CLAIM,
			      json_pack("{s:I}", "now_ms", (json_int_t)(now + 120000)), &jobs),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(jobs, "items")), 2);
	json_decref(jobs);
	assert_int_equal(call(f, STORE_OP_JOB_COMPLETE, json_pack("{s:I}", "id", (json_int_t)id1),
			      NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_JOB_COMPLETE, json_pack("{s:I}", "id", (json_int_t)id1),
			      NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_JOB_FAIL,
			      json_pack("{s:I, s:s, s:b, s:i}", "id", (json_int_t)id2, "error",
					"422 invalid tracking number", "dead", 1, "upstream_status",
					422),
			      NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_DEAD_LETTERS_LIST, NULL, &dl), STORE_OK);
	assert_int_equal(json_array_size(json_object_get(dl, "items")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(dl, "items"), 0), "kind")),
			    "job:push_tracking");
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(dl, "items"), 0), "upstream_status")),
			 422);
	json_decref(dl);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM jobs"), 1);
}

static void test_tokens_and_audit(void **state)
{
	struct fixture *f = *state;
	char token[64], hash[65], other[65];
	json_t *res = NULL;
	const char *cursor;

	assert_int_equal(crypto_token_new(token, sizeof(token), hash), 0);
	assert_int_equal(strncmp(token, "hub_", 4), 0);
	assert_int_equal(call(f, STORE_OP_TOKEN_CREATE,
			      json_pack("{s:s, s:s, s:s, s:s}", "name", "ci", "hash", hash, "role",
					"viewer", "merchant", "acme"),
			      NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_TOKEN_CREATE,
			      json_pack("{s:s, s:s, s:s}", "name", "ci", "hash", hash, "role", "admin"),
			      NULL),
			 STORE_INVALID);
	crypto_token_new(token, sizeof(token), other);
	assert_int_equal(call(f, STORE_OP_TOKEN_CREATE,
			      json_pack("{s:s, s:s, s:s}", "name", "x", "hash", other, "role", "root"),
			      NULL),
			 STORE_INVALID);
	assert_int_equal(call(f, STORE_OP_TOKEN_LOOKUP, json_pack("{s:s}", "hash", hash), &res),
			 STORE_OK);
	assert_string_equal(json_string_value(json_object_get(res, "role")), "viewer");
	assert_string_equal(json_string_value(json_object_get(res, "merchant")), "acme");
	assert_true(json_is_integer(json_object_get(res, "last_used_ms")));
	json_decref(res);
	assert_int_equal(call(f, STORE_OP_TOKEN_LOOKUP, json_pack("{s:s}", "hash", other), NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_TOKEN_REVOKE, json_pack("{s:s}", "name", "ci"), NULL),
			 STORE_OK);
	assert_int_equal(call(f, STORE_OP_TOKEN_LOOKUP, json_pack("{s:s}", "hash", hash), NULL),
			 STORE_NOT_FOUND);
	assert_int_equal(call(f, STORE_OP_TOKENS_LIST, NULL, &res), STORE_OK);
	assert_int_equal(json_array_size(json_object_get(res, "items")), 1);
	assert_null(json_object_get(json_array_get(json_object_get(res, "items"), 0), "hash"));
	json_decref(res);
	/* The raw token is stored nowhere. */
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM api_tokens WHERE token_hash LIKE 'hub_%'"),
			 0);

	for (int i = 0; i < 3; i++)
		assert_int_equal(call(f, STORE_OP_AUDIT_APPEND,
				      json_pack("{s:s, s:s, s:s, s:{s:i}}", "token", "ci", "action",
						"connector.pause", "target", "acme-shop", "detail", "i",
						i),
				      NULL),
				 STORE_OK);
	assert_int_equal(call(f, STORE_OP_AUDIT_LIST, json_pack("{s:i}", "limit", 2), &res),
			 STORE_OK);
	assert_int_equal(json_array_size(json_object_get(res, "items")), 2);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_array_get(json_object_get(res, "items"), 0),
						 "detail"),
				 "i")),
			 2);
	cursor = json_string_value(json_object_get(res, "next_cursor"));
	assert_non_null(cursor);
	{
		json_t *page = NULL;
		assert_int_equal(call(f, STORE_OP_AUDIT_LIST,
				      json_pack("{s:i, s:s}", "limit", 2, "cursor", cursor), &page),
				 STORE_OK);
		assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
		assert_true(json_is_null(json_object_get(page, "next_cursor")));
		json_decref(page);
	}
	json_decref(res);
}

#ifdef STORE_TEST_PG
/* The database goes away mid-run: callers hear it at once, queued work
 * waits and commits after the restart, nothing is reported done early. */
static void test_store_down(void **state)
{
	struct fixture *f = *state;
	struct slot s1 = {0}, s2 = {0}, s3 = {0};
	struct hub_error err = {0};
	struct store_unit *u;
	struct timespec t0, t1;
	int pending = 0, waited = 0;
	char why[256], msg[256];

	s1.pending = s2.pending = s3.pending = &pending;
	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("before", 1, 1));
	pending = 1;
	assert_int_equal(store_submit(f->st, u, unit_done, &s1, NULL), 0);
	run_loop(f, &pending, 10000);
	assert_int_equal(s1.res.status, STORE_OK);

	assert_int_equal(pgserver_pause(&server), 0);
	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("during", 1, 1));
	store_unit_set_cursor(u, "orders", json_string("during"));
	pending = 1;
	assert_int_equal(store_submit(f->st, u, unit_done, &s2, NULL), 0);
	/* The store notices within moments; the loop keeps running. */
	while (store_available(f->st, why, sizeof(why)) && waited < 5000) {
		run_loop(f, &pending, 50);
		waited += 50;
	}
	assert_false(store_available(f->st, why, sizeof(why)));
	assert_true(strlen(why) > 0);
	/* Fail-fast work is refused immediately with a clear reason. */
	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("webhook", 1, 1));
	store_unit_set_deadline(u, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_submit(f->st, u, unit_done, &s3, &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 100);
	assert_non_null(strstr(err.message, "unavailable"));
	/* So are ops (admin reads, job claims): no waiting for the database. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_call_sync(f->st, STORE_OP_STATS, NULL, NULL, &err),
			 STORE_UNAVAILABLE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 100);
	assert_non_null(strstr(err.message, "unavailable"));
	/* Queued work is not reported while the database is away. */
	run_loop(f, &pending, 1500);
	assert_int_equal(s2.done, 0);
	assert_int_equal(s3.done, 0);

	assert_int_equal(pgserver_resume(&server, msg, sizeof(msg)), 0);
	run_loop(f, &pending, 15000);
	assert_int_equal(s2.done, 1);
	assert_int_equal(s2.res.status, STORE_OK);
	assert_int_equal(s2.res.written, 1);
	assert_true(store_available(f->st, NULL, 0));
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), 2);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM cursors WHERE cursor = '\"during\"'"), 1);

	/* A queued deadline-bound unit expires while the store is down. */
	assert_int_equal(pgserver_pause(&server), 0);
	u = unit("shop");
	add(u, HUB_RECORD_ORDER, make_order("lost", 1, 1));
	memset(&s1, 0, sizeof(s1));
	s1.pending = &pending;
	pending = 1;
	store_unit_set_deadline(u, now_ms() + 700);
	/* Accepted: the store has not noticed the outage yet. */
	assert_int_equal(store_submit(f->st, u, unit_done, &s1, NULL), 0);
	run_loop(f, &pending, 5000);
	assert_int_equal(s1.done, 1);
	assert_int_equal(s1.res.status, STORE_UNAVAILABLE);
	assert_non_null(strstr(s1.res.err.message, "deadline"));
	assert_int_equal(pgserver_resume(&server, msg, sizeof(msg)), 0);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders WHERE external_id = 'lost'"), 0);
}
#else
/* SQLite full: a clear error, earlier commits intact, no corruption, and
 * the store works again once there is room. */
static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	struct store_unit_result res;
	int ok = 0, full = 0;
	char *check;

	store_close(f->st);
	strncat(f->loc.url, "?max_page_count=120", sizeof(f->loc.url) - strlen(f->loc.url) - 1);
	open_store(f, 0);
	for (int i = 0; i < 400 && !full; i++) {
		struct store_unit *u = unit("shop");
		char id[32];

		for (int k = 0; k < 5; k++) {
			snprintf(id, sizeof(id), "f%d-%d", i, k);
			add(u, HUB_RECORD_ORDER, make_order(id, 1, 5));
		}
		if (submit(f, u, &res) == STORE_OK) {
			ok++;
			continue;
		}
		assert_int_equal(res.status, STORE_FAILED);
		assert_non_null(strstr(res.err.message, "full"));
		assert_non_null(strstr(res.err.message, "nothing of this unit was written"));
		full = 1;
	}
	assert_true(full);
	assert_true(ok > 0);
	store_close(f->st);
	f->loc.url[strlen(f->loc.url) - strlen("?max_page_count=120")] = '\0';
	check = raw_query(f, "PRAGMA integrity_check");
	assert_string_equal(check, "ok");
	free(check);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), ok * 5);
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM order_lines"), ok * 25);
	open_store(f, 0);
	{
		struct store_unit *u = unit("shop");
		add(u, HUB_RECORD_ORDER, make_order("after", 1, 5));
		assert_int_equal(submit(f, u, NULL), STORE_OK);
	}
}
#endif

#ifndef STORE_TEST_PG
/* SQLite's WAL under steady writing: it goes back to its start (so its file
 * stays near the restart size, CKPT_RESTART pages = 64 MB) and is never cut
 * back (cutting it and growing it again cost 150-220 ms stalls), while far
 * more than that passes through it. Commits of ~1,000 pages (bigger than
 * CKPT_TAIL) must restart it too. */
static void test_wal_restarts(void **state)
{
	struct fixture *f = *state;
	char wal[600], note[2049];
	struct stat st;
	off_t size = 0, peak = 0;
	int64_t orders = 0;

	store_close(f->st);
	strncat(f->loc.url, "?synchronous=normal", sizeof(f->loc.url) - strlen(f->loc.url) - 1);
	open_store(f, 0);
	snprintf(wal, sizeof(wal), "%s/hub.db-wal", f->loc.dir);
	memset(note, 'n', sizeof(note) - 1);
	note[sizeof(note) - 1] = '\0';
	/* ~3 KB per order: 60,000 orders are ~180 MB of records, more with
	 * the indexes, through a WAL that must stay under 160 MB: it restarts
	 * about every 64 MB once the checkpointer caught up; how far past that
	 * it runs depends on how busy the machine is (116 MB seen on a loaded
	 * one), and a WAL that never restarted would hold everything. */
	for (int round = 0; round < 30; round++) {
		struct slot slots[40];
		int pending = 0;

		memset(slots, 0, sizeof(slots));
		for (int k = 0; k < 40; k++) {
			struct store_unit *u = unit("shop");
			struct hub_error err = {0};

			for (int i = 0; i < 50; i++) {
				char id[48];
				json_t *o;

				snprintf(id, sizeof(id), "w%d-%d-%d", round, k, i);
				o = make_order(id, 1, 3);
				json_object_set_new(o, "note", json_string(note));
				add(u, HUB_RECORD_ORDER, o);
				orders++;
			}
			slots[k].pending = &pending;
			pending++;
			assert_int_equal(store_submit(f->st, u, unit_done, &slots[k], &err), 0);
		}
		run_loop(f, &pending, 60000);
		assert_int_equal(pending, 0);
		for (int k = 0; k < 40; k++)
			assert_int_equal(slots[k].res.status, STORE_OK);
		assert_int_equal(stat(wal, &st), 0);
		/* Never cut back... */
		assert_true(st.st_size >= size);
		size = st.st_size;
		peak = size > peak ? size : peak;
	}
	/* ...and yet bounded. */
	assert_true(orders * 3000 > 150LL * 1024 * 1024);
	if (peak >= 160LL * 1024 * 1024)
		fail_msg("the WAL reached %lld bytes", (long long)peak);
	f->loc.url[strlen(f->loc.url) - strlen("?synchronous=normal")] = '\0';
	assert_int_equal(raw_count(f, "SELECT COUNT(*) FROM orders"), orders);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upsert_never_older, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_webhook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_in_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lanes_keep_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_order_in_two_chunks, setup, teardown),
#ifdef STORE_TEST_PG
		cmocka_unit_test_setup_teardown(test_concurrent_writers_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers_tracking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lanes_wait_for_rows, setup, teardown),
#endif
		cmocka_unit_test_setup_teardown(test_batches_synced_before_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connectors_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tracking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_and_audit, setup, teardown),
#ifdef STORE_TEST_PG
		cmocka_unit_test_setup_teardown(test_store_down, setup, teardown),
#else
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_restarts, setup, teardown),
#endif
	};
	int rc;

#ifdef STORE_TEST_PG
	if (!pgserver_available()) {
		fprintf(stderr, "PostgreSQL server binaries not installed: skipping\n");
		return 77;
	}
	if (storedb_server_start(PG_SERVER) < 0)
		return 1;
	cmocka_set_message_output(CM_OUTPUT_STDOUT);
	rc = cmocka_run_group_tests_name("store (postgresql)", tests, NULL, NULL);
	storedb_server_stop(PG_SERVER);
#else
	rc = cmocka_run_group_tests_name("store (sqlite)", tests, NULL, NULL);
#endif
	return rc;
}
