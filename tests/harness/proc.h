/*
 * proc.h - test helpers to run the hub's programs as real processes:
 * start in the background with output to a log, wait for a TCP port, stop
 * by PID with a bounded wait, run to completion capturing output, make and
 * remove temp dirs, find free loopback ports. Every process started here is
 * killed at exit (also when a test fails or the run is interrupted).
 */
#ifndef HUB_TEST_PROC_H
#define HUB_TEST_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct proc {
	pid_t pid;
	char log_path[512];
};

/* Starts argv[0] (a path) with stdout and stderr appended to log_path.
 * Returns 0 or -1. */
int proc_start(struct proc *p, char *const argv[], const char *log_path);

/* Sends sig and waits up to timeout_ms for the exit; then SIGKILL. Stores
 * the wait status in *status (may be NULL). Returns 0 when it exited within
 * the time, -1 when it had to be killed. */
int proc_stop(struct proc *p, int sig, int timeout_ms, int *status);

/* Records a child started some other way so that it is killed (SIGKILL)
 * if the test exits or dies on SIGINT, SIGTERM or SIGABRT; proc_untrack
 * forgets it once it was stopped. proc_start does this itself. */
void proc_track(pid_t pid);
void proc_untrack(pid_t pid);

/* Whether the process is still running. */
int proc_alive(struct proc *p);

/* Runs argv to completion (bounded by timeout_ms, then killed) with
 * stdout+stderr captured into *output (malloc'd, NUL-terminated). Returns
 * the exit code, or -1 if it could not run or was killed. */
int proc_run(char *const argv[], char **output, int timeout_ms);

/* Waits until 127.0.0.1:port accepts connections. 0 or -1 on timeout. */
int proc_wait_port(int port, int timeout_ms);

/* A currently free TCP port on 127.0.0.1. */
int proc_free_port(void);

/* Creates a fresh temp dir (mkdtemp under $TMPDIR or /tmp) into buf.
 * Removed by proc_rmtree. Returns 0 or -1. */
int proc_tmpdir(char *buf, size_t size, const char *prefix);
/* rm -rf path (refuses "/" and empty). */
void proc_rmtree(const char *path);

/* Writes text to path. 0 or -1. */
int proc_write_file(const char *path, const char *text);
/* Reads a whole file (malloc'd, NUL-terminated) or NULL. */
char *proc_read_file(const char *path);

/* Path of a built program or file: $HUB_BUILDDIR/<rel> (the test
 * environment sets it), into buf. */
const char *proc_build_path(char *buf, size_t size, const char *rel);

#endif
