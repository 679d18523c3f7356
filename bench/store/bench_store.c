/*
 * bench_store.c - durable upserts per second of the central store.
 *
 * For each backend (SQLite on a file in --dir, PostgreSQL on a throwaway
 * server with fsync on), for group-commit batch sizes 1, 10, 100 and 1000:
 * a fresh database, then N realistic orders (5 lines each, ~2 KB of JSON)
 * submitted as N units of one order each through the public async API, on
 * a libevent loop, exactly as hubd's loop thread would. The store thread
 * takes up to `batch` queued units per transaction. Time runs from the
 * first submit to the last completion callback; units are built (checked
 * and serialised) beforehand, as plugin calls would have done on the loop.
 *
 * The ceiling, measured in the same run on a fresh database with the same
 * schema: the same orders and lines loaded the fastest way each engine
 * offers, without upsert logic - COPY in one transaction (PostgreSQL), or
 * prepared INSERTs in one transaction (SQLite).
 *
 *   bench-store [--orders N] [--dir DIR] [--only sqlite|postgresql] [--batch B]
 *
 * --batch measures that one batch size (plus the ceiling) instead of all.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <hub/sdk.h>

#include "log.h"
#include "store.h"
#include "../../tests/harness/pgserver.h"

#define T0 INT64_C(1780000000000)

static const unsigned batches[] = {1, 10, 100, 1000};

struct run {
	const char *backend;
	char batch[16];
	long orders;
	double seconds;
	double rate;
	double cpu;    /* CPU seconds of this process (for SQLite: all the work) */
	double loop;   /* ... of which the submitting (event loop) thread */
	double server; /* CPU seconds of the PostgreSQL backend, or 0 */
};

static struct run runs[16];
static int nruns;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time (user + system) of this process (or of the calling thread) so
 * far, in seconds. */
static double cpu_of(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU time of another process (a PostgreSQL backend), or 0. */
static double proc_cpu_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime = 0, stime = 0;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is 3rd,
	 * utime the 14th, stime the 15th. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
			 &stime) != 2)
		return 0;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* PID of the store's PostgreSQL backend for database db, or 0. */
static long store_backend_pid(const char *admin_url, const char *db)
{
	const char *params[1] = {db};
	PGconn *c;
	PGresult *r;
	long pid = 0;

	if (!admin_url)
		return 0;
	c = PQconnectdb(admin_url);
	r = PQexecParams(c, "SELECT pid FROM pg_stat_activity WHERE application_name = 'hubd' "
			    "AND datname = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		pid = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return pid;
}

static double cpu_s(void)
{
	return cpu_of(RUSAGE_SELF);
}

static const char *iso(int64_t ms, char *buf)
{
	hub_time_format(ms, buf, 32);
	return buf;
}

/* A Shopify-like canonical order with 5 lines. */
static json_t *make_order(long i)
{
	json_t *lines = json_array();
	char id[32], lid[48], sku[32], t1[32], t2[32];

	snprintf(id, sizeof(id), "%ld", 5000000000L + i);
	for (int k = 0; k < 5; k++) {
		snprintf(lid, sizeof(lid), "%ld%d", 9000000000L + i, k);
		snprintf(sku, sizeof(sku), "SKU-%04ld-%d", i % 1000, k);
		json_array_append_new(
			lines, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:i, s:b}",
					 "external_id", lid, "sku", sku, "title",
					 "Organic cotton crew-neck T-shirt", "variant_title", "Blue / M",
					 "product_id", "7843120011", "variant_id", "43120011223",
					 "quantity", 1 + k % 3, "unit_price", (json_int_t)(1999 + k * 100),
					 "total_discount", (json_int_t)0, "total_tax", (json_int_t)160,
					 "fulfillable_quantity", 1 + k % 3, "requires_shipping", 1));
	}
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s,"
		" s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s},"
		" s:[{s:s, s:s, s:I}], s:[s, s], s:o, s:s, s:s}",
		"external_id", id, "number", id + 6, "name", "#1001", "status", "open",
		"financial_status", "paid", "fulfillment_status", "unfulfilled", "source_status",
		"open", "currency", "USD", "subtotal", (json_int_t)11495, "total_tax",
		(json_int_t)920, "total_shipping", (json_int_t)599, "total_discounts", (json_int_t)0,
		"total", (json_int_t)13014, "email", "ada@example.com", "phone", "+15555550100",
		"customer", "external_id", "6120001", "email", "ada@example.com", "first_name", "Ada",
		"last_name", "Lovelace", "shipping_address", "name", "Ada Lovelace", "address1",
		"12 Analytical Row", "address2", "Suite 3", "city", "London", "province", "England",
		"province_code", "ENG", "zip", "NW1 6XE", "country", "United Kingdom", "country_code",
		"GB", "shipping_lines", "title", "Standard", "code", "STD", "price", (json_int_t)599,
		"tags", "vip", "repeat", "lines", lines, "created_at", iso(T0 + i, t1), "updated_at",
		iso(T0 + i + 1000, t2));
}

struct progress {
	long pending;
	long failed;
	char err[400];
};

static void unit_done(void *arg, const struct store_unit_result *res)
{
	struct progress *p = arg;

	p->pending--;
	if (res->status != STORE_OK) {
		if (!p->failed)
			snprintf(p->err, sizeof(p->err), "%s", res->err.message);
		p->failed++;
	}
}

/* Store path: N units of one order, group commit up to `batch`. */
static int bench_store(const char *backend, const char *url, const char *state_dir,
		       unsigned batch, long n, const char *admin_url, const char *db)
{
	struct event_base *base = event_base_new();
	struct store_options opt = {0};
	struct progress prog = {0};
	struct store_unit **units;
	struct hub_error err = {0};
	struct store *st = NULL;
	double t0, t1, c0, c1, s0, s1, l0, l1;
	struct run *r;
	long backend_pid;

	opt.url = url;
	opt.state_dir = state_dir;
	opt.batch_max = batch;
	opt.queue_max = (unsigned)n + 10;
	if (store_open(&st, base, &opt, &err) < 0) {
		fprintf(stderr, "bench-store: %s\n", err.message);
		return -1;
	}
	units = calloc((size_t)n, sizeof(*units));
	if (getenv("BENCH_STORE_TRACE"))
		fprintf(stderr, "bench-store: building units at %.3f\n", now_s());
	for (long i = 0; i < n; i++) {
		units[i] = store_unit_new("acme", "shop");
		if (store_unit_add_record(units[i], HUB_RECORD_ORDER, make_order(i), &err) < 0) {
			fprintf(stderr, "bench-store: %s\n", err.message);
			return -1;
		}
	}
	if (getenv("BENCH_STORE_TRACE"))
		fprintf(stderr, "bench-store: submitting at %.3f\n", now_s());
	prog.pending = n;
	backend_pid = store_backend_pid(admin_url, db);
	s0 = proc_cpu_s(backend_pid);
	l0 = cpu_of(RUSAGE_THREAD);
	c0 = cpu_s();
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (store_submit(st, units[i], unit_done, &prog, &err) < 0) {
			fprintf(stderr, "bench-store: submit: %s\n", err.message);
			return -1;
		}
	}
	while (prog.pending > 0)
		event_base_loop(base, EVLOOP_ONCE);
	t1 = now_s();
	c1 = cpu_s();
	l1 = cpu_of(RUSAGE_THREAD);
	if (getenv("BENCH_STORE_TRACE"))
		fprintf(stderr, "bench-store: done at %.3f\n", t1);
	s1 = proc_cpu_s(backend_pid);
	store_close(st);
	event_base_free(base);
	free(units);
	if (prog.failed) {
		fprintf(stderr, "bench-store: %ld units failed: %s\n", prog.failed, prog.err);
		return -1;
	}
	r = &runs[nruns++];
	r->backend = backend;
	snprintf(r->batch, sizeof(r->batch), "%u", batch);
	r->orders = n;
	r->seconds = t1 - t0;
	r->rate = (double)n / (t1 - t0);
	r->cpu = c1 - c0;
	r->loop = l1 - l0;
	r->server = s1 - s0;
	printf("%-11s batch %-7s %7ld orders %8.3f s %10.0f orders/s  (cpu: loop %.2f s, store "
	       "thread %.2f s, server %.2f s)\n",
	       backend, r->batch, n, r->seconds, r->rate, r->loop, r->cpu - r->loop, r->server);
	fflush(stdout);
	return 0;
}

static void record_ceiling(const char *backend, long n, double seconds, double cpu,
			   double server)
{
	struct run *r = &runs[nruns++];

	r->backend = backend;
	snprintf(r->batch, sizeof(r->batch), "ceiling");
	r->orders = n;
	r->seconds = seconds;
	r->rate = (double)n / seconds;
	r->cpu = cpu;
	r->loop = cpu; /* one thread does it all */
	r->server = server;
	printf("%-11s %-13s %7ld orders %8.3f s %10.0f orders/s  (cpu %.2f s, server %.2f s)\n",
	       backend, "ceiling", n, seconds, r->rate, cpu, server);
	fflush(stdout);
}

/* Opens a store once so the schema exists, then closes it. */
static int migrate(const char *url, const char *state_dir)
{
	struct store_options opt = {0};
	struct hub_error err = {0};
	struct store *st = NULL;

	opt.url = url;
	opt.state_dir = state_dir;
	if (store_open(&st, NULL, &opt, &err) < 0) {
		fprintf(stderr, "bench-store: %s\n", err.message);
		return -1;
	}
	store_close(st);
	return 0;
}

/* Fields of an order row as the store extracts them. */
struct flat {
	char *record;
	const char *external_id, *number, *name, *status, *financial, *fulfillment, *currency;
	json_int_t total;
	int64_t created, updated;
	json_t *json;
};

static void flatten(long i, struct flat *f)
{
	f->json = make_order(i);
	f->record = json_dumps(f->json, JSON_COMPACT);
	f->external_id = json_string_value(json_object_get(f->json, "external_id"));
	f->number = json_string_value(json_object_get(f->json, "number"));
	f->name = json_string_value(json_object_get(f->json, "name"));
	f->status = json_string_value(json_object_get(f->json, "status"));
	f->financial = json_string_value(json_object_get(f->json, "financial_status"));
	f->fulfillment = json_string_value(json_object_get(f->json, "fulfillment_status"));
	f->currency = json_string_value(json_object_get(f->json, "currency"));
	f->total = json_integer_value(json_object_get(f->json, "total"));
	hub_time_parse(json_string_value(json_object_get(f->json, "created_at")), 0, &f->created,
		       NULL, NULL);
	hub_time_parse(json_string_value(json_object_get(f->json, "updated_at")), 0, &f->updated,
		       NULL, NULL);
}

static void flat_release(struct flat *f)
{
	free(f->record);
	json_decref(f->json);
}

static int ceiling_sqlite(const char *path, const char *state_dir, long n)
{
	char url[700];
	sqlite3 *db;
	sqlite3_stmt *po, *pl;
	struct flat *rows = calloc((size_t)n, sizeof(*rows));
	double t0, t1, c0;

	snprintf(url, sizeof(url), "sqlite:%s", path);
	if (migrate(url, state_dir) < 0)
		return -1;
	for (long i = 0; i < n; i++)
		flatten(i, &rows[i]);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
			 "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	sqlite3_prepare_v2(db,
			   "INSERT INTO orders (id, merchant, connector, external_id, number, name, "
			   "status, financial_status, fulfillment_status, currency, total, "
			   "created_at_ms, updated_at_ms, record, stored_at_ms) VALUES "
			   "(?, 'acme', 'shop', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			   -1, &po, NULL);
	sqlite3_prepare_v2(db,
			   "INSERT INTO order_lines (order_id, line_no, external_id, sku, title, "
			   "quantity, unit_price) VALUES (?, ?, ?, ?, ?, ?, ?)",
			   -1, &pl, NULL);
	c0 = cpu_s();
	t0 = now_s();
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (long i = 0; i < n; i++) {
		struct flat *f = &rows[i];
		json_t *lines = json_object_get(f->json, "lines"), *l;
		size_t k;

		sqlite3_bind_int64(po, 1, i + 1);
		sqlite3_bind_text(po, 2, f->external_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 3, f->number, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 4, f->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 5, f->status, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 6, f->financial, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 7, f->fulfillment, -1, SQLITE_STATIC);
		sqlite3_bind_text(po, 8, f->currency, -1, SQLITE_STATIC);
		sqlite3_bind_int64(po, 9, f->total);
		sqlite3_bind_int64(po, 10, f->created);
		sqlite3_bind_int64(po, 11, f->updated);
		sqlite3_bind_text(po, 12, f->record, -1, SQLITE_STATIC);
		sqlite3_bind_int64(po, 13, f->updated);
		if (sqlite3_step(po) != SQLITE_DONE) {
			fprintf(stderr, "bench-store: sqlite ceiling: %s\n", sqlite3_errmsg(db));
			return -1;
		}
		sqlite3_reset(po);
		json_array_foreach(lines, k, l) {
			sqlite3_bind_int64(pl, 1, i + 1);
			sqlite3_bind_int64(pl, 2, (sqlite3_int64)k);
			sqlite3_bind_text(pl, 3, json_string_value(json_object_get(l, "external_id")),
					  -1, SQLITE_STATIC);
			sqlite3_bind_text(pl, 4, json_string_value(json_object_get(l, "sku")), -1,
					  SQLITE_STATIC);
			sqlite3_bind_text(pl, 5, json_string_value(json_object_get(l, "title")), -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(pl, 6, json_integer_value(json_object_get(l, "quantity")));
			sqlite3_bind_int64(pl, 7, json_integer_value(json_object_get(l, "unit_price")));
			sqlite3_step(pl);
			sqlite3_reset(pl);
		}
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench-store: sqlite ceiling: %s\n", sqlite3_errmsg(db));
		return -1;
	}
	t1 = now_s();
	c0 = cpu_s() - c0;
	sqlite3_finalize(po);
	sqlite3_finalize(pl);
	sqlite3_close(db);
	for (long i = 0; i < n; i++)
		flat_release(&rows[i]);
	free(rows);
	record_ceiling("sqlite", n, t1 - t0, c0, 0);
	return 0;
}

/* Appends s to the COPY buffer, escaped for COPY text format. */
static void copy_text(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t need = 2 * (s ? strlen(s) : 2) + 2;

	if (*len + need > *cap) {
		*cap = (*len + need) * 2;
		*buf = realloc(*buf, *cap);
	}
	if (!s) {
		memcpy(*buf + *len, "\\N", 2);
		*len += 2;
		return;
	}
	for (; *s; s++) {
		if (*s == '\\' || *s == '\t' || *s == '\n' || *s == '\r') {
			(*buf)[(*len)++] = '\\';
			(*buf)[(*len)++] = *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : '\\';
		} else {
			(*buf)[(*len)++] = *s;
		}
	}
}

static void copy_sep(char **buf, size_t *len, size_t *cap, char c)
{
	if (*len + 1 > *cap) {
		*cap = (*len + 1) * 2;
		*buf = realloc(*buf, *cap);
	}
	(*buf)[(*len)++] = c;
}

static void copy_int(char **buf, size_t *len, size_t *cap, int64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRId64, v);
	copy_text(buf, len, cap, num);
}

static int pg_copy(PGconn *c, const char *sql, const char *data, size_t len)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COPY_IN;

	PQclear(r);
	if (!ok)
		return -1;
	for (size_t off = 0; off < len; off += 1 << 20) {
		size_t chunk = len - off < (1 << 20) ? len - off : (1 << 20);
		if (PQputCopyData(c, data + off, (int)chunk) != 1)
			return -1;
	}
	if (PQputCopyEnd(c, NULL) != 1)
		return -1;
	r = PQgetResult(c);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "bench-store: COPY: %s", PQerrorMessage(c));
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	return ok ? 0 : -1;
}

static int ceiling_pg(const char *url, const char *state_dir, long n)
{
	char *ob = NULL, *lb = NULL;
	size_t olen = 0, ocap = 0, llen = 0, lcap = 0;
	PGconn *c;
	PGresult *r;
	double t0, t1, c0, s0, s1;

	if (migrate(url, state_dir) < 0)
		return -1;
	for (long i = 0; i < n; i++) {
		struct flat f;
		json_t *l;
		size_t k;

		flatten(i, &f);
		copy_int(&ob, &olen, &ocap, i + 1);
		copy_sep(&ob, &olen, &ocap, '\t');
		copy_text(&ob, &olen, &ocap, "acme");
		copy_sep(&ob, &olen, &ocap, '\t');
		copy_text(&ob, &olen, &ocap, "shop");
		const char *texts[] = {f.external_id, f.number, f.name, f.status, f.financial,
				       f.fulfillment, f.currency};
		for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
			copy_sep(&ob, &olen, &ocap, '\t');
			copy_text(&ob, &olen, &ocap, texts[t]);
		}
		const int64_t ints[] = {f.total, f.created, f.updated};
		for (size_t t = 0; t < 3; t++) {
			copy_sep(&ob, &olen, &ocap, '\t');
			copy_int(&ob, &olen, &ocap, ints[t]);
		}
		copy_sep(&ob, &olen, &ocap, '\t');
		copy_text(&ob, &olen, &ocap, f.record);
		copy_sep(&ob, &olen, &ocap, '\t');
		copy_int(&ob, &olen, &ocap, f.updated);
		copy_sep(&ob, &olen, &ocap, '\n');
		json_array_foreach(json_object_get(f.json, "lines"), k, l) {
			copy_int(&lb, &llen, &lcap, i + 1);
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_int(&lb, &llen, &lcap, (int64_t)k);
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_text(&lb, &llen, &lcap, json_string_value(json_object_get(l, "external_id")));
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_text(&lb, &llen, &lcap, json_string_value(json_object_get(l, "sku")));
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_text(&lb, &llen, &lcap, json_string_value(json_object_get(l, "title")));
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_int(&lb, &llen, &lcap, json_integer_value(json_object_get(l, "quantity")));
			copy_sep(&lb, &llen, &lcap, '\t');
			copy_int(&lb, &llen, &lcap,
				 json_integer_value(json_object_get(l, "unit_price")));
			copy_sep(&lb, &llen, &lcap, '\n');
		}
		flat_release(&f);
	}
	/* The store's URL is a libpq URL. */
	c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench-store: %s", PQerrorMessage(c));
		return -1;
	}
	s0 = proc_cpu_s(PQbackendPID(c));
	c0 = cpu_s();
	t0 = now_s();
	PQclear(PQexec(c, "BEGIN"));
	if (pg_copy(c, "COPY orders (id, merchant, connector, external_id, number, name, status, "
		       "financial_status, fulfillment_status, currency, total, created_at_ms, "
		       "updated_at_ms, record, stored_at_ms) FROM STDIN", ob, olen) < 0 ||
	    pg_copy(c, "COPY order_lines (order_id, line_no, external_id, sku, title, quantity, "
		       "unit_price) FROM STDIN", lb, llen) < 0)
		return -1;
	r = PQexec(c, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "bench-store: %s", PQerrorMessage(c));
		return -1;
	}
	PQclear(r);
	t1 = now_s();
	c0 = cpu_s() - c0;
	s1 = proc_cpu_s(PQbackendPID(c));
	PQfinish(c);
	free(ob);
	free(lb);
	record_ceiling("postgresql", n, t1 - t0, c0, s1 - s0);
	return 0;
}

static long orders_for(unsigned batch, long n)
{
	/* Batch 1 is one fsync per order: fewer orders keep the run short. */
	if (batch == 1)
		return n < 2000 ? n : 2000;
	if (batch == 10)
		return n < 10000 ? n : 10000;
	return n;
}

static void summary(void)
{
	printf("\nbackend     batch     orders/s   vs ceiling   CPU ms per 1000 orders: "
	       "loop  store  server\n");
	for (int i = 0; i < nruns; i++) {
		double ceiling = 0;

		for (int k = 0; k < nruns; k++) {
			if (strcmp(runs[k].backend, runs[i].backend) == 0 &&
			    strcmp(runs[k].batch, "ceiling") == 0)
				ceiling = runs[k].rate;
		}
		printf("%-11s %-8s %9.0f   %5.0f%%                        %6.1f %6.1f %6.1f\n",
		       runs[i].backend, runs[i].batch, runs[i].rate,
		       ceiling > 0 ? 100.0 * runs[i].rate / ceiling : 0.0,
		       1e6 * runs[i].loop / (double)runs[i].orders,
		       1e6 * (runs[i].cpu - runs[i].loop) / (double)runs[i].orders,
		       1e6 * runs[i].server / (double)runs[i].orders);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"orders", required_argument, NULL, 'n'},
		{"dir", required_argument, NULL, 'd'},
		{"only", required_argument, NULL, 'o'},
		{"batch", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *only = NULL, *dir = ".";
	char work[512], path[600], url[700], err[256];
	long n = 20000;
	unsigned only_batch = 0;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "n:d:o:b:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			only_batch = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		default:
			printf("usage: bench-store [--orders N] [--dir DIR] [--only sqlite|postgresql] "
			       "[--batch B]\n"
			       "  DIR holds the SQLite files (on the disk to measure; default .)\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (n < 1000)
		n = 1000;
	log_setup(LOG_WARN, LOG_TEXT);
	snprintf(work, sizeof(work), "%s/bench-store.XXXXXX", dir);
	if (!mkdtemp(work)) {
		perror("bench-store: mkdtemp");
		return 1;
	}
	printf("bench-store: %ld orders of 5 lines, one order per unit, durable commits\n", n);
	if (!only || strcmp(only, "sqlite") == 0) {
		printf("sqlite: %s (WAL, synchronous=FULL)\n", work);
		for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]) && rc == 0; b++) {
			if (only_batch && batches[b] != only_batch)
				continue;
			snprintf(path, sizeof(path), "%s/b%u.db", work, batches[b]);
			snprintf(url, sizeof(url), "sqlite:%s", path);
			rc = bench_store("sqlite", url, work, batches[b], orders_for(batches[b], n), NULL,
					 NULL);
		}
		snprintf(path, sizeof(path), "%s/ceiling.db", work);
		if (rc == 0)
			rc = ceiling_sqlite(path, work, n);
	}
	if (rc == 0 && (!only || strcmp(only, "postgresql") == 0)) {
		struct pgserver pg;

		pgserver_init(&pg);
		pg.durable = 1;
		if (pgserver_start(&pg, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench-store: %s\n", err);
			rc = -1;
		} else {
			PGconn *admin = PQconnectdb(pg.url);

			printf("postgresql: throwaway server in %s (fsync=on, synchronous_commit=on)\n",
			       pg.dir);
			for (size_t b = 0; b <= sizeof(batches) / sizeof(batches[0]) && rc == 0; b++) {
				char sql[64], db[16];

				if (only_batch && b < sizeof(batches) / sizeof(batches[0]) &&
				    batches[b] != only_batch)
					continue;
				snprintf(sql, sizeof(sql), "CREATE DATABASE b%zu", b);
				PQclear(PQexec(admin, sql));
				snprintf(url, sizeof(url),
					 "postgresql:///b%zu?host=%s&port=%d&user=postgres", b, pg.dir,
					 pg.port);
				snprintf(db, sizeof(db), "b%zu", b);
				if (b < sizeof(batches) / sizeof(batches[0]))
					rc = bench_store("postgresql", url, work, batches[b],
							 orders_for(batches[b], n), pg.url, db);
				else
					rc = ceiling_pg(url, work, n);
			}
			PQfinish(admin);
			pgserver_stop(&pg);
		}
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", work);
	if (system(path) != 0)
		fprintf(stderr, "bench-store: could not remove %s\n", work);
	if (rc == 0)
		summary();
	return rc == 0 ? 0 : 1;
}
