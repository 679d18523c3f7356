/*
 * redisserver.h - a real redis-server for tests: started on a free loopback
 * port in a fresh temp dir with persistence off, waited for (bounded) until
 * it answers PING, and always stopped by PID, also when a test fails, calls
 * exit() or is interrupted (the process harness, tests/harness/proc.h, ends
 * it and removes its dir at exit and on fatal signals; on Linux the server
 * also dies with the test process). Tests can kill, pause and restart it to
 * inject faults.
 *
 * The binary is $HUB_REDIS_SERVER, else "redis-server" from PATH or the
 * usual bin dirs (proc_find_program). Single
 * test thread only.
 */
#ifndef HUB_TEST_REDISSERVER_H
#define HUB_TEST_REDISSERVER_H

#include <sys/types.h>

struct redisserver {
	pid_t pid;      /* 0 when not running */
	int port;       /* kept across kill/restart */
	char dir[256];  /* temp dir with redis.log; removed by redisserver_stop() */
};

/*
 * Starts a server on 127.0.0.1:`port` (0: a free port) and waits up to
 * `timeout_ms` for it to answer. Returns 0 when it is up, 1 when no
 * redis-server binary is installed (skip the test), -1 on failure (the
 * reason and the server's log on stderr).
 */
int redisserver_start(struct redisserver *rs, int port, int timeout_ms);

/* Kills the server at once (SIGKILL, like a crash) and reaps it. The port
 * and dir stay for redisserver_restart(). */
void redisserver_kill(struct redisserver *rs);

/* Freezes (SIGSTOP) or thaws (SIGCONT) the server: it keeps its sockets but
 * answers nothing, like a hung host. */
void redisserver_pause(struct redisserver *rs);
void redisserver_resume(struct redisserver *rs);

/* Starts it again on the same port after redisserver_kill(). 0, or -1. */
int redisserver_restart(struct redisserver *rs, int timeout_ms);

/* Stops the server (SIGTERM, then SIGKILL after 3 s) and removes its dir.
 * Safe to call twice or on a server that never started. */
void redisserver_stop(struct redisserver *rs);

#endif
