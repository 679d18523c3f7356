/*
 * redisserver.c - start, fault and stop a real redis-server for tests (see
 * redisserver.h). Every started PID and the temp dir are tracked by the
 * process harness (proc_track, proc_track_dir), whose exit and signal
 * handlers kill what is still running, so no server outlives a test run
 * however the run ends.
 */
#include "config.h"
#include "redisserver.h"
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* $HUB_REDIS_SERVER, else redis-server from PATH; NULL when missing. */
static const char *server_binary(void)
{
	static char found[512];

	return proc_find_program("HUB_REDIS_SERVER", "redis-server", found, sizeof(found));
}

/* Sends PING and waits for +PONG. 0 when it answered within the time. */
static int ping(int port, int timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				   .sin_port = htons((uint16_t)port) };
	struct pollfd pfd;
	char buf[16] = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;
	ssize_t n;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || write(fd, "PING\r\n", 6) != 6)
		goto out;
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, timeout_ms) != 1)
		goto out;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n >= 5 && strncmp(buf, "+PONG", 5) == 0)
		rc = 0;
out:
	close(fd);
	return rc;
}

static void dump_log(const struct redisserver *rs)
{
	char path[300], line[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/redis.log", rs->dir);
	fp = fopen(path, "r");
	if (fp == NULL)
		return;
	fprintf(stderr, "--- %s\n", path);
	while (fgets(line, sizeof(line), fp) != NULL)
		fputs(line, stderr);
	fclose(fp);
}

/* Whether the server on rs->port answers PING (proc_wait_ready's probe). */
static int answers(void *arg)
{
	const struct redisserver *rs = arg;

	return ping(rs->port, 200) == 0;
}

/* Starts the server on rs->port; waits until it answers. */
static int spawn(struct redisserver *rs, const char *bin, int timeout_ms)
{
	char port[16], log_path[300];
	char *argv[] = { (char *)bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			 "--dir", rs->dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
			 NULL };
	struct proc p;

	snprintf(port, sizeof(port), "%d", rs->port);
	snprintf(log_path, sizeof(log_path), "%s/redis.log", rs->dir);
	if (proc_start_server(&p, argv, log_path, (uid_t)-1, (gid_t)-1) != 0)
		return -1;
	rs->pid = p.pid;
	if (proc_wait_ready(&p, answers, rs, timeout_ms) == 0)
		return 0;
	rs->pid = 0; /* exited (port taken, bad binary...) or killed */
	return -1;
}

int redisserver_start(struct redisserver *rs, int port, int timeout_ms)
{
	const char *bin = server_binary();

	memset(rs, 0, sizeof(*rs));
	if (bin == NULL)
		return 1;
	if (proc_tmpdir(rs->dir, sizeof(rs->dir), "hub-redis") != 0) {
		fprintf(stderr, "redisserver: mkdtemp %s: %s\n", rs->dir, strerror(errno));
		rs->dir[0] = '\0';
		return -1;
	}
	proc_track_dir(rs->dir);
	/* A free port can be taken between our probe and the server's bind: retry. */
	for (int attempt = 0; attempt < 3; attempt++) {
		rs->port = port > 0 ? port : proc_free_port();
		if (rs->port > 0 && spawn(rs, bin, timeout_ms) == 0)
			return 0;
		if (port > 0)
			break;
	}
	fprintf(stderr, "redisserver: %s did not come up on 127.0.0.1:%d within %d ms\n", bin, rs->port,
		timeout_ms);
	dump_log(rs);
	redisserver_stop(rs);
	return -1;
}

void redisserver_kill(struct redisserver *rs)
{
	if (rs->pid <= 0)
		return;
	proc_stop_pid(rs->pid, SIGKILL, 0, NULL);
	rs->pid = 0;
}

void redisserver_pause(struct redisserver *rs)
{
	if (rs->pid > 0)
		kill(rs->pid, SIGSTOP);
}

void redisserver_resume(struct redisserver *rs)
{
	if (rs->pid > 0)
		kill(rs->pid, SIGCONT);
}

int redisserver_restart(struct redisserver *rs, int timeout_ms)
{
	const char *bin = server_binary();

	if (bin == NULL || rs->dir[0] == '\0')
		return -1;
	redisserver_kill(rs);
	/* The old listening socket may linger briefly: retry within the time. */
	for (int64_t deadline = now_ms() + timeout_ms; now_ms() < deadline;) {
		if (spawn(rs, bin, (int)(deadline - now_ms())) == 0)
			return 0;
		usleep(50000);
	}
	dump_log(rs);
	return -1;
}

void redisserver_stop(struct redisserver *rs)
{
	if (rs->pid > 0) {
		kill(rs->pid, SIGCONT); /* a paused server cannot handle SIGTERM */
		proc_stop_pid(rs->pid, SIGTERM, 3000, NULL);
		rs->pid = 0;
	}
	if (rs->dir[0] != '\0') {
		proc_rmtree(rs->dir);
		proc_untrack_dir(rs->dir);
	}
	rs->dir[0] = '\0';
}
