/*
 * test_store_lease.c - STORE_OP_LEASES_RENEW, the polling leases of
 * several hubd on one database, on both backends (compiled twice like
 * test_store: -DSTORE_TEST_PG runs it on a throwaway PostgreSQL server).
 *
 * Two owners share six connectors: the first takes everything while alone,
 * hands its excess back once the second shows up, and the second takes
 * exactly what was handed back; an owner that stops renewing loses its
 * leases at expiry (and not before) to the other; "leave" frees everything
 * at once; deleting a connector drops its lease row with it. Then two
 * stores - two connections, as two processes would have - renew
 * concurrently round after round with leases expiring in between: what the two are told they hold never overlaps, no round fails
 * (no deadlock), and every connector ends up held.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <hub/sdk.h>

#include "store.h"
#include "../harness/pgserver.h"
#include "../harness/storedb.h"

#ifdef STORE_TEST_PG
static struct pgserver server;
#define PG_SERVER (&server)
#else
#define PG_SERVER NULL
#endif

#define T0 INT64_C(1780000000000)
#define TTL 10000

struct fixture {
	struct storedb loc;
	struct store *a, *b;
	struct event_base *base;
};

static struct store *open_one(struct fixture *f)
{
	struct store_options opt = {0};
	struct hub_error err = {0};
	struct store *st = NULL;

	opt.url = f->loc.url;
	opt.state_dir = f->loc.dir;
	if (store_open(&st, f->base, &opt, &err) < 0)
		fail_msg("store_open: %s", err.message);
	return st;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || storedb_make(&f->loc, PG_SERVER, "lease") < 0) {
		free(f);
		return -1;
	}
	f->base = event_base_new();
	f->a = open_one(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	store_close(f->a);
	if (f->b)
		store_close(f->b);
	event_base_free(f->base);
	rc = storedb_remove(&f->loc);
	free(f);
	return rc;
}

static json_t *names(int from, int to)
{
	json_t *a = json_array();
	char n[16];

	for (int i = from; i <= to; i++) {
		snprintf(n, sizeof(n), "c%d", i);
		json_array_append_new(a, json_string(n));
	}
	return a;
}

/* One renewal; returns the result (new reference), failing on an error. */
static json_t *renew(struct store *st, const char *owner, int64_t now, json_t *wanted, json_t *release)
{
	struct hub_error err = {0};
	json_t *res = NULL;
	json_t *p = json_pack("{s:s, s:I, s:I, s:o}", "owner", owner, "now_ms", (json_int_t)now, "ttl_ms",
			      (json_int_t)TTL, "connectors", wanted);

	if (release != NULL)
		json_object_set_new(p, "release", release);
	if (store_call_sync(st, STORE_OP_LEASES_RENEW, p, &res, &err) != STORE_OK)
		fail_msg("leases renew (%s): %s", owner, err.message);
	return res;
}

static size_t nheld(const json_t *res)
{
	return json_array_size(json_object_get(res, "held"));
}

/* The held list as one string: "c1,c2,c3". */
static const char *held_str(const json_t *res, char *buf, size_t size)
{
	size_t i, len = 0;
	json_t *e;

	buf[0] = '\0';
	json_array_foreach(json_object_get(res, "held"), i, e)
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", i ? "," : "",
					json_string_value(e));
	return buf;
}

static void test_share_and_handover(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	json_t *r;

	/* Alone: A takes everything. */
	r = renew(f->a, "A", T0, names(1, 6), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c2,c3,c4,c5,c6");
	assert_int_equal(json_integer_value(json_object_get(r, "instances")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "excess")), 0);
	json_decref(r);

	/* B arrives: its share is 3, but nothing is free. */
	r = renew(f->a, "B", T0 + 100, names(1, 6), NULL);
	assert_int_equal(nheld(r), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "instances")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "share")), 3);
	json_decref(r);

	/* A learns of B: still holds 6, 3 above its share. */
	r = renew(f->a, "A", T0 + 200, names(1, 6), NULL);
	assert_int_equal(nheld(r), 6);
	assert_int_equal(json_integer_value(json_object_get(r, "excess")), 3);
	json_decref(r);

	/* A hands back three; it does not take them again in the same call. */
	r = renew(f->a, "A", T0 + 300, names(1, 6), names(2, 4));
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c5,c6");
	assert_int_equal(json_integer_value(json_object_get(r, "excess")), 0);
	json_decref(r);

	/* B takes exactly those. */
	r = renew(f->a, "B", T0 + 400, names(1, 6), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c2,c3,c4");
	json_decref(r);

	/* Renewals keep the split. */
	r = renew(f->a, "A", T0 + 500, names(1, 6), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c5,c6");
	json_decref(r);

	/* B stops renewing. Just before its leases (and its instance row)
	 * expire A still cannot take them... */
	r = renew(f->a, "A", T0 + 400 + TTL - 1, names(1, 6), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c5,c6");
	json_decref(r);
	/* ...at expiry it takes them all: it is alone again. */
	r = renew(f->a, "A", T0 + 400 + TTL, names(1, 6), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c2,c3,c4,c5,c6");
	assert_int_equal(json_integer_value(json_object_get(r, "instances")), 1);
	json_decref(r);

	/* B comes back late: nothing of its old leases is left to it. */
	r = renew(f->a, "B", T0 + 400 + TTL + 1, names(1, 6), NULL);
	assert_int_equal(nheld(r), 0);
	json_decref(r);
}

static void test_leave(void **state)
{
	struct fixture *f = *state;
	struct hub_error err = {0};
	json_t *r = NULL;

	json_decref(renew(f->a, "A", T0, names(1, 4), NULL));
	json_decref(renew(f->a, "B", T0 + 1, names(1, 4), NULL));
	/* A leaves (a clean stop): B may take everything at once. */
	assert_int_equal(store_call_sync(f->a, STORE_OP_LEASES_RENEW,
					 json_pack("{s:s, s:b, s:I}", "owner", "A", "leave", 1, "now_ms",
						   (json_int_t)T0 + 2),
					 &r, &err),
			 STORE_OK);
	assert_int_equal(nheld(r), 0);
	json_decref(r);
	r = renew(f->a, "B", T0 + 3, names(1, 4), NULL);
	assert_int_equal(nheld(r), 4);
	assert_int_equal(json_integer_value(json_object_get(r, "instances")), 1);
	json_decref(r);
}

static void test_bad_params(void **state)
{
	struct fixture *f = *state;
	struct hub_error err = {0};

	assert_int_equal(store_call_sync(f->a, STORE_OP_LEASES_RENEW, json_pack("{s:i}", "ttl_ms", 1000), NULL, &err),
			 STORE_INVALID);
	assert_string_equal(err.field, "owner");
	assert_int_equal(store_call_sync(f->a, STORE_OP_LEASES_RENEW,
					 json_pack("{s:s, s:i}", "owner", "A", "ttl_ms", 5), NULL, &err),
			 STORE_INVALID);
	assert_string_equal(err.field, "ttl_ms");
	assert_int_equal(store_call_sync(f->a, STORE_OP_LEASES_RENEW,
					 json_pack("{s:s, s:i, s:[i]}", "owner", "A", "ttl_ms", 1000, "connectors", 7),
					 NULL, &err),
			 STORE_INVALID);
}

/* Rows of connector_leases for `connector`, read with a connection of our
 * own (the test's, not the store's). */
static long lease_rows(struct fixture *f, const char *connector)
{
	long n = -1;
#ifdef STORE_TEST_PG
	const char *values[1] = {connector};
	PGconn *c = PQconnectdb(f->loc.url);
	PGresult *r;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexecParams(c, "SELECT COUNT(*) FROM connector_leases WHERE connector = $1", 1, NULL, values, NULL,
			 NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
#else
	char path[300];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	snprintf(path, sizeof(path), "%s/hub.db", f->loc.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM connector_leases WHERE connector = ?1", -1, &st,
					    NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, connector, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
#endif
	return n;
}

static void put_connector(struct store *st, const char *name)
{
	struct hub_error err = {0};

	if (store_call_sync(st, STORE_OP_CONNECTOR_PUT,
			    json_pack("{s:s, s:s, s:s, s:{}}", "name", name, "plugin", "ups", "merchant", "m", "config"),
			    NULL, &err) != STORE_OK)
		fail_msg("connector put %s: %s", name, err.message);
}

/* Deleting a connector drops its lease row with it: no other process has
 * to wait for a lease of a connector that no longer exists to expire. */
static void test_delete_drops_lease(void **state)
{
	struct fixture *f = *state;
	struct hub_error err = {0};
	char buf[64];
	json_t *r;

	put_connector(f->a, "c1");
	put_connector(f->a, "c2");
	r = renew(f->a, "A", T0, names(1, 2), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1,c2");
	json_decref(r);
	assert_int_equal(lease_rows(f, "c1"), 1);

	assert_int_equal(store_call_sync(f->a, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", "c1"), NULL, &err),
			 STORE_OK);
	assert_int_equal(lease_rows(f, "c1"), 0);
	assert_int_equal(lease_rows(f, "c2"), 1);
	/* A deleted connector's lease is free at once, well before A's expires
	 * (a connector of that name created again elsewhere starts polling). */
	r = renew(f->a, "B", T0 + 1, names(1, 1), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c1");
	json_decref(r);
	/* A's other lease is untouched, and still its own. */
	r = renew(f->a, "A", T0 + 2, names(2, 2), NULL);
	assert_string_equal(held_str(r, buf, sizeof(buf)), "c2");
	json_decref(r);

	/* A connector that is not there: not found, nothing else deleted. */
	assert_int_equal(store_call_sync(f->a, STORE_OP_CONNECTOR_DELETE, json_pack("{s:s}", "name", "c9"), NULL, &err),
			 STORE_NOT_FOUND);
	assert_int_equal(lease_rows(f, "c1"), 1);
	assert_int_equal(lease_rows(f, "c2"), 1);
}

/* ---- two stores at once ------------------------------------------------------ */

struct round {
	int pending;
	int failed;
	char why[512];
	json_t *held[2];
};

struct call_ctx {
	struct round *rd;
	int who;
	struct event_base *base;
};

static void round_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct call_ctx *cc = arg;

	if (status != STORE_OK) {
		cc->rd->failed++;
		snprintf(cc->rd->why, sizeof(cc->rd->why), "%s: %s", store_status_name(status),
			 err ? err->message : "");
	} else {
		cc->rd->held[cc->who] = json_incref(json_object_get(result, "held"));
	}
	if (--cc->rd->pending == 0)
		event_base_loopbreak(cc->base);
}

static void test_concurrent_owners(void **state)
{
	struct fixture *f = *state;
	struct store *st[2];
	const char *owner[2] = {"hub-a", "hub-b"};
	int held_ever[20] = {0};

	f->b = open_one(f);
	st[0] = f->a;
	st[1] = f->b;
	for (int round = 0; round < 60; round++) {
		struct round rd = {0};
		struct call_ctx cc[2];
		/* Every tenth round jumps past the expiry: everything is up for grabs. */
		int64_t now = T0 + (int64_t)(round / 10) * (TTL + 1) + round;
		json_t *seen = json_object();
		size_t i;
		json_t *e;

		rd.pending = 2;
		for (int w = 0; w < 2; w++) {
			struct hub_error err = {0};
			cc[w] = (struct call_ctx){&rd, w, f->base};
			/* Overlapping but different wants, in opposite orders. */
			json_t *wanted = w == 0 ? names(1, 20) : names(5, 20);
			if (w == 1) {
				json_t *rev = json_array();
				for (size_t k = json_array_size(wanted); k-- > 0;)
					json_array_append(rev, json_array_get(wanted, k));
				json_decref(wanted);
				wanted = rev;
			}
			assert_int_equal(store_call(st[w], STORE_OP_LEASES_RENEW,
						    json_pack("{s:s, s:I, s:I, s:o}", "owner", owner[w], "now_ms",
							      (json_int_t)now, "ttl_ms", (json_int_t)TTL, "connectors",
							      wanted),
						    round_done, &cc[w], &err),
					 0);
		}
		event_base_dispatch(f->base);
		if (rd.failed)
			fail_msg("round %d: a renewal failed: %s", round, rd.why);
		for (int w = 0; w < 2; w++) {
			json_array_foreach(rd.held[w], i, e) {
				const char *n = json_string_value(e);
				if (json_object_get(seen, n))
					fail_msg("round %d: %s held by both owners", round, n);
				json_object_set_new(seen, n, json_true());
				held_ever[strtol(n + 1, NULL, 10) - 1] = 1;
			}
			json_decref(rd.held[w]);
		}
		json_decref(seen);
	}
	for (int k = 0; k < 20; k++)
		assert_true(held_ever[k]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_share_and_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_drops_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_owners, setup, teardown),
	};
	int rc;

	if (storedb_server_start(PG_SERVER) < 0)
		return 1;
#ifdef STORE_TEST_PG
	cmocka_set_message_output(CM_OUTPUT_STDOUT);
	rc = cmocka_run_group_tests_name("leases (postgresql)", tests, NULL, NULL);
#else
	rc = cmocka_run_group_tests_name("leases (sqlite)", tests, NULL, NULL);
#endif
	storedb_server_stop(PG_SERVER);
	return rc;
}
