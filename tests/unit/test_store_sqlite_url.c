/*
 * test_store_sqlite_url.c - the options of a sqlite: store URL, on real
 * database files. cache_mb sets the page cache of the store's connection:
 * read back through the store (STORE_OP_STATS runs PRAGMA cache_size on
 * that connection; another connection would see its own default). The
 * existing URL forms and options keep working, and every bad option value
 * or unknown option makes store_open fail with a message naming it, before
 * any file is created.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include <hub/sdk.h>

#include "store.h"
#include "../harness/proc.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	return proc_tmpdir(dir, sizeof(dir), "hubsqliteurl");
}

static int teardown(void **state)
{
	(void)state;
	proc_rmtree(dir);
	return 0;
}

/* Opens the store at dir + `rest` ("/a.db?cache_mb=8") behind `scheme`. */
static int open_url(const char *scheme, const char *rest, struct store **st, struct hub_error *err)
{
	char url[600];
	struct store_options opt = {0};

	snprintf(url, sizeof(url), "%s%s%s", scheme, dir, rest);
	opt.url = url;
	opt.state_dir = dir;
	memset(err, 0, sizeof(*err));
	*st = NULL;
	return store_open(st, NULL, &opt, err);
}

/* The page cache of the store's connection, in KiB, through the store. */
static long long cache_kib(struct store *st)
{
	json_t *res = NULL;
	struct hub_error err = {0};
	long long kib;

	if (store_call_sync(st, STORE_OP_STATS, NULL, &res, &err) != STORE_OK)
		fail_msg("stats: %s", err.message);
	assert_true(json_is_integer(json_object_get(res, "sqlite_cache_kib")));
	assert_int_equal(json_integer_value(json_object_get(res, "schema_version")) > 0, 1);
	kib = (long long)json_integer_value(json_object_get(res, "sqlite_cache_kib"));
	json_decref(res);
	return kib;
}

static int file_exists(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void cache_mb_read_back(void **state)
{
	static const struct {
		const char *scheme, *rest;
		long long kib;
	} cases[] = {
		{"sqlite:", "/default.db", 64 * 1024},
		{"sqlite:", "/big.db?cache_mb=256", 256 * 1024},
		{"sqlite:", "/small.db?cache_mb=1", 1024},
		/* The other options and the sqlite:// form, before and after it. */
		{"sqlite://", "/mixed.db?busy_timeout_ms=1000&cache_mb=8&synchronous=full", 8 * 1024},
		{"sqlite:", "/normal.db?synchronous=normal&max_page_count=100000", 64 * 1024},
		{"sqlite:", "/last.db?cache_mb=32&", 32 * 1024},
	};
	struct hub_error err;
	struct store *st;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (open_url(cases[i].scheme, cases[i].rest, &st, &err) < 0)
			fail_msg("%s%s: %s", cases[i].scheme, cases[i].rest, err.message);
		assert_int_equal(cache_kib(st), cases[i].kib);
		store_close(st);
	}
	/* Reopening an existing file with another size takes the new one. */
	assert_int_equal(open_url("sqlite:", "/big.db?cache_mb=2", &st, &err), 0);
	assert_int_equal(cache_kib(st), 2 * 1024);
	store_close(st);
}

static void bad_options_refused(void **state)
{
	static const struct {
		const char *query, *want;
	} cases[] = {
		{"cache_mb=0", "URL option cache_mb=\"0\" must be an integer from 1 to 65536"},
		{"cache_mb=-64", "URL option cache_mb=\"-64\" must be an integer from 1 to 65536"},
		{"cache_mb=65537", "URL option cache_mb=\"65537\" must be an integer from 1 to 65536"},
		{"cache_mb=256MB", "URL option cache_mb=\"256MB\" must be an integer"},
		{"cache_mb=lots", "URL option cache_mb=\"lots\" must be an integer"},
		{"cache_mb=", "URL option cache_mb=\"\" must be an integer"},
		{"cache_mb=99999999999999999999", "URL option cache_mb=\"99999999999999999999\" must be"},
		{"busy_timeout_ms=1000&cache_mb=1.5", "URL option cache_mb=\"1.5\" must be an integer"},
		{"cache_mb", "URL option \"cache_mb\" is not name=value"},
		{"=8", "URL option \"=8\" is not name=value"},
		{"cache_MB=256", "unknown URL option \"cache_MB\" (known: busy_timeout_ms, cache_mb, max_page_count, "
				 "synchronous)"},
		{"busy_timeout_ms=soon", "URL option busy_timeout_ms=\"soon\" must be an integer from 0 to 3600000"},
		{"max_page_count=0", "URL option max_page_count=\"0\" must be an integer from 1 to 2147483647"},
		{"synchronous=off", "URL option synchronous=\"off\" must be full or normal"},
	};
	struct hub_error err;
	struct store *st;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char rest[256];

		snprintf(rest, sizeof(rest), "/bad%zu.db?%s", i, cases[i].query);
		assert_int_equal(open_url("sqlite:", rest, &st, &err), -1);
		assert_null(st);
		if (!strstr(err.message, cases[i].want))
			fail_msg("?%s: expected [%s] in [%s]", cases[i].query, cases[i].want, err.message);
		assert_non_null(strstr(err.message, "store: sqlite: "));
		/* Refused before the database was opened: no file left behind. */
		snprintf(rest, sizeof(rest), "bad%zu.db", i);
		assert_false(file_exists(rest));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cache_mb_read_back),
		cmocka_unit_test(bad_options_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
