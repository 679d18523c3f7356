/*
 * storedb.h - where one store test keeps its data, on either backend: a
 * fresh temporary directory (the store's state_dir, and the SQLite file
 * itself) and, on PostgreSQL, a fresh database on the suite's throwaway
 * server (pgserver.h), with the store URL that points there. The store
 * suites (test_store, test_store_lease) are each compiled once per backend
 * and make one per test in their cmocka setup, removing it in teardown.
 * Needs pgserver.c and proc.c linked too, and libpq. Single test thread.
 */
#ifndef HUB_TESTS_STOREDB_H
#define HUB_TESTS_STOREDB_H

#include <stddef.h>

struct pgserver;

struct storedb {
	char dir[256];        /* temporary directory: state_dir, secret.key, hub.db */
	char url[512];        /* "sqlite:<dir>/hub.db" or "postgresql:///<db>?host=...&port=...&user=postgres" */
	char db[64];          /* the PostgreSQL database ("" on SQLite) */
	struct pgserver *pg;  /* borrowed; NULL on SQLite */
};

/*
 * Starts the suite's PostgreSQL server (pgserver_init + pgserver_start);
 * with pg NULL (an SQLite suite) does nothing. Returns 0, or -1 after
 * saying why on stderr. Stop it with storedb_server_stop().
 */
int storedb_server_start(struct pgserver *pg);

/* Stops the suite's server and removes its files (NULL: nothing). */
void storedb_server_stop(struct pgserver *pg);

/*
 * Makes a fresh place for one test: the directory /tmp/hub-<tag>-test.XXXXXX
 * and, with pg (a running server), the database <tag><n>_<pid> (n counts the
 * calls; tag is lower-case letters, it names an SQL identifier); d->url
 * points at the SQLite file in the directory, or at that database. Returns
 * 0, or -1 after saying why on stderr (nothing is left behind then).
 */
int storedb_make(struct storedb *d, struct pgserver *pg, const char *tag);

/* Drops the database (when the server runs: a test may leave it paused)
 * and removes the directory. Close the stores on it first. Returns 0, or
 * -1 after saying on stderr why the database could not be dropped (a
 * store left a connection open, say). */
int storedb_remove(struct storedb *d);

/*
 * Runs one SQL command as postgres on the server's "postgres" database
 * (CREATE/DROP DATABASE). Returns 0, or -1 with libpq's message in err.
 */
int storedb_pg_admin(const struct pgserver *pg, const char *sql, char *err, size_t size);

#endif
