/*
 * proc.h - test helpers to run the hub's programs as real processes:
 * start in the background with output to a log, wait for a TCP port, stop
 * by PID with a bounded wait, run to completion capturing output, make and
 * remove temp dirs, find free loopback ports. Every process started here is
 * killed at exit (also when a test fails or the run is interrupted), and so
 * is every server the other harnesses (nginx, Redis, PostgreSQL) start.
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

/* proc_start for a server a harness runs (Redis, nginx): as the user
 * uid/gid when uid is not (uid_t)-1 (the test runs as root), and on Linux
 * killed by the kernel when the test process dies, however it dies. */
int proc_start_server(struct proc *p, char *const argv[], const char *log_path, uid_t uid, gid_t gid);

/* Waits up to timeout_ms until ready(arg) is true while p runs. Returns 0;
 * -1 when it exited (reaped) or the time ran out (then it is killed). */
int proc_wait_ready(struct proc *p, int (*ready)(void *arg), void *arg, int timeout_ms);

/* Sends sig and waits up to timeout_ms for the exit; then SIGKILL. Stores
 * the wait status in *status (may be NULL). Returns 0 when it exited within
 * the time, -1 when it had to be killed. */
int proc_stop(struct proc *p, int sig, int timeout_ms, int *status);

/* The same for a child known by its PID (pid <= 0: nothing to do, 0); it
 * is untracked. For harnesses that fork their servers themselves. */
int proc_stop_pid(pid_t pid, int sig, int timeout_ms, int *status);

/*
 * The one table of started processes: whatever is tracked is ended if the
 * test exits (atexit) or dies on SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV
 * or SIGBUS, then the tracked directories are removed (rm -rf). A handler
 * that was there before (a sanitizer's, cmocka's) still runs afterwards; an
 * ignored signal stays ignored. Only the process that tracked them ends
 * them, not a forked child. Single test thread.
 *
 * proc_track records a child started some other way; it gets SIGKILL.
 * proc_start does this itself. proc_untrack forgets it once it was
 * stopped. At most 64.
 */
void proc_track(pid_t pid);
void proc_untrack(pid_t pid);

/* A daemon that is not our child (a PostgreSQL postmaster), known by the
 * file it writes its PID to (first line), read when the time comes, so it
 * can be tracked before it runs and across restarts. It gets sig first
 * (and SIGCONT, in case it is stopped), SIGKILL after grace_ms if it is
 * still there; no file, nothing to end. At most 8. */
void proc_track_pidfile(const char *path, int sig, int grace_ms);
void proc_untrack_pidfile(const char *path);

/* A directory (a server's temp dir) removed at exit or on a fatal signal
 * after the processes are ended; proc_untrack_dir forgets it once the
 * caller removed it. At most 16. */
void proc_track_dir(const char *dir);
void proc_untrack_dir(const char *dir);

/* Whether the process is still running. */
int proc_alive(struct proc *p);

/* Runs argv to completion (bounded by timeout_ms, then killed) with
 * stdout+stderr captured into *output (malloc'd, NUL-terminated). Returns
 * the exit code, or -1 if it could not run or was killed. */
int proc_run(char *const argv[], char **output, int timeout_ms);

/* Whether something listens on 127.0.0.1:port (one probe; a probe that
 * connected to itself does not count). */
int proc_port_open(int port);

/* Waits until 127.0.0.1:port accepts connections. 0 or -1 on timeout. */
int proc_wait_port(int port, int timeout_ms);

/* A server program for a harness: $env_name when set (NULL unless it is
 * executable), else `name` in $PATH, then in /usr/local/sbin, /usr/sbin,
 * /usr/local/bin, /usr/bin and /bin (a non-root PATH often lacks the sbin
 * dirs, where Debian puts nginx). Returns buf or the variable's value, or
 * NULL when not found. */
const char *proc_find_program(const char *env_name, const char *name, char *buf, size_t size);

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

/* Occurrences of `what` in the file at path (a process's log), or -1 when
 * it cannot be read. */
int proc_file_count(const char *path, const char *what);

/* Path of a built program or file: $HUB_BUILDDIR/<rel> (the test
 * environment sets it), into buf. */
const char *proc_build_path(char *buf, size_t size, const char *rel);

#endif
