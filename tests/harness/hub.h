/*
 * hub.h - the steps every integration test takes with the hub's own
 * programs: start hubd or hub-sandbox and wait (bounded) until it answers
 * its readiness URL, read hubd's admin token from its state dir, move the
 * sandbox's simulated clock on. Built on proc.h and http.h (libhubtest);
 * single test thread.
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

#endif
