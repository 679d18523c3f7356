/*
 * pgserver.h - a throwaway PostgreSQL server for one test (or benchmark).
 *
 * pgserver_start() makes a fresh cluster in a temporary directory and
 * starts it listening only on a unix socket in that directory; the caller
 * gets a libpq URL. The cluster comes from a cached initdb template
 * (tests/.pg-template.tar under the current directory, which is the build
 * directory under "make check"; HUB_PG_TEMPLATE overrides the path), so a
 * start costs an untar and a server start, not an initdb. initdb refuses to
 * run as root: as root the tools run as the "postgres" user (runuser) on a
 * directory chowned to it.
 *
 * Every server started is torn down (pg_ctl stop -m immediate, then rm -rf)
 * by pgserver_stop(), and otherwise at exit and on SIGINT, SIGTERM, SIGHUP,
 * SIGABRT, SIGSEGV and SIGBUS by the process harness (tests/harness/proc.h,
 * which must be linked too). Every wait is bounded. Binaries come from
 * /usr/lib/postgresql/15/bin unless HUB_PG_BINDIR says otherwise.
 *
 * Not thread-safe: call from the test's main thread.
 */
#ifndef HUB_TESTS_PGSERVER_H
#define HUB_TESTS_PGSERVER_H

#include <stddef.h>
#include <sys/types.h>

struct pgserver {
	/* set before pgserver_start (pgserver_init zeroes them) */
	int durable;        /* 1: fsync on (benchmarks); 0: off - commits survive a server
	                       stop (pgserver_pause) but not a machine crash */
	/* filled by pgserver_start */
	char dir[128];      /* temporary directory: socket, data/, log */
	char url[256];      /* "postgresql:///postgres?host=<dir>&port=<port>&user=postgres" */
	int port;
	pid_t pid;          /* postmaster */
	int running;
};

/* Zeroes pg. */
void pgserver_init(struct pgserver *pg);

/* 1 when the PostgreSQL server binaries are installed, else 0. */
int pgserver_available(void);

/* Creates and starts a server. Returns 0 with pg->url set, or -1 with a
 * message in err (everything created is removed). */
int pgserver_start(struct pgserver *pg, char *err, size_t size);

/* Stops the server immediately, keeping its files: the database becomes
 * unreachable (for outage tests). Returns 0 or -1. */
int pgserver_pause(struct pgserver *pg);

/* Starts a paused server again on the same socket. Returns 0 or -1. */
int pgserver_resume(struct pgserver *pg, char *err, size_t size);

/* Stops the server (if running) and removes its directory. Safe to call
 * twice. Returns 0, or -1 when something could not be removed. */
int pgserver_stop(struct pgserver *pg);

#endif
