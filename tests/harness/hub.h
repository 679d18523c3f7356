/*
 * hub.h - the steps every integration test takes with the hub's own
 * programs: start hubd or hub-sandbox and wait (bounded) until it answers
 * its readiness URL, read hubd's admin token from its state dir, move the
 * sandbox's simulated clock on; and the whole world of an end-to-end test
 * (struct hubt_env: a sandbox, a hubd and their temporary directory). Built
 * on proc.h and http.h (libhubtest); single test thread.
 */
#ifndef HUB_TEST_HUB_H
#define HUB_TEST_HUB_H

#include <stddef.h>

#include "proc.h"

/*
 * Starts argv[0] (proc_start: output appended to log_path, killed at exit)
 * and waits up to timeout_ms until GET ready_url answers 200 (hubd's
 * /readyz, the sandbox's /_sandbox/health). Returns 0; -1 when it could not
 * start or did not become ready, after writing the log to stderr (a
 * started process is left to the caller's teardown).
 */
int hubt_start_ready(struct proc *p, char *const argv[], const char *log_path, const char *ready_url,
		     int timeout_ms);

/* Reads hubd's admin token (the first line of <state_dir>/admin.token)
 * into token. Returns 0, or -1 when the file is missing or empty. */
int hubt_admin_token(const char *state_dir, char *token, size_t size);

/* Moves hub-sandbox's simulated clock on (POST /_sandbox/tick on
 * 127.0.0.1:port). Returns the HTTP status (200), 0 when no answer came. */
long hubt_tick(int port, int seconds);

/* Writes "http://127.0.0.1:<port><path>" into buf; returns buf. */
char *hubt_url(char *buf, size_t size, int port, const char *path);

/*
 * One end-to-end test's world: hub-sandbox and hubd on loopback ports, with
 * their files in one temporary directory. Tests keep one (static), fill it
 * with hubt_env_start_sandbox(), write their hubd config to cfg_path, start
 * hubd with hubt_env_start_hubd() and end with hubt_env_stop().
 */
struct hubt_env {
	char dir[256];        /* temporary directory: sandbox.json, *.log, hubd.json, state/ */
	char hubd_bin[512];   /* the build's programs and plugins (proc_build_path) */
	char sandbox_bin[512];
	char plugins[512];    /* plugin_dir for hubd's config */
	char cfg_path[600];   /* <dir>/hubd.json, written by the test */
	char hub_log[600];    /* <dir>/hubd.log */
	char token[128];      /* hubd's admin token, once hubd runs */
	int hub_port, sb_port;
	struct proc hub, sandbox;
};

/*
 * Sets e up (paths, a temporary directory named after `prefix`, two free
 * ports) and starts hub-sandbox with seed `seed`, `orders` orders per shop
 * at start, speed 0 and a config of `shops` Shopify shops only (no
 * WooCommerce store or Amazon seller, so every parcel belongs to a shop the
 * test's hubd can sync; an order an hour), and waits up to 30 s until it
 * answers /_sandbox/health. Returns 0, or -1 (after writing the sandbox's
 * log to stderr; hubt_env_stop() still cleans up).
 */
int hubt_env_start_sandbox(struct hubt_env *e, const char *prefix, int seed, int orders, int shops);

/*
 * Starts hubd on e->cfg_path (the test wrote it; its state_dir must be
 * <dir>/state), waits up to 30 s until /readyz answers and reads the admin
 * token into e->token. Returns 0, or -1 (after writing hubd's log to stderr).
 */
int hubt_env_start_hubd(struct hubt_env *e);

/*
 * Stops hubd (SIGTERM, 15 s) and the sandbox (5 s), then removes the
 * directory, or keeps it and names it on stderr when HUB_TEST_KEEP is set.
 */
void hubt_env_stop(struct hubt_env *e);

/* A cmocka group teardown for a test whose group setup set *state to its
 * struct hubt_env (first thing, so that a failed setup is cleaned up too):
 * hubt_env_stop() on it. Returns 0. */
int hubt_env_teardown(void **state);

/*
 * Starts an on-demand sync of hubd's connector `connector` (all streams;
 * POST /v1/connectors/<name>/sync must answer 202) and polls its status
 * every 50 ms until the sync is no longer "running", up to timeout_ms.
 * Writes the state it ended in ("done", "failed") into state. Returns 0,
 * or -1 with what went wrong in state.
 */
int hubt_env_sync(const struct hubt_env *e, const char *connector, int timeout_ms, char *state, size_t size);

/* Requests hub-sandbox's API `api` ("shopify", "dhl"...) received since its
 * stats were last reset (GET /_sandbox/stats), or -1 when it did not say. */
long long hubt_sandbox_requests(const struct hubt_env *e, const char *api);

/* Resets hub-sandbox's stats (POST /_sandbox/stats/reset). Returns the HTTP
 * status (200), 0 when no answer came. */
long hubt_sandbox_stats_reset(const struct hubt_env *e);

/* The log level tests give hubd: "debug" when HUB_TEST_KEEP is set (the
 * kept log is for reading), else "warn". Static string. */
const char *hubt_log_level(void);

#endif
