/*
 * proc.c - process, port and temp-dir helpers for tests (see proc.h).
 */
#include "config.h"
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define MAX_TRACKED 64
#define MAX_DIRS 16
#define MAX_PIDFILES 8

/*
 * What is ended at exit and on a fatal signal. Written from the test's
 * thread, read in the handlers: a slot's pid is set last and cleared first.
 */
struct tracked {
	volatile pid_t pid;
	int sig;      /* sent first */
	int grace_ms; /* then SIGKILL if it is still there after this long */
};

/* A daemon known by the file it writes its PID to. */
struct pidfile {
	char path[512];
	int sig;
	int grace_ms;
};

static struct tracked tracked[MAX_TRACKED];
static struct pidfile pidfiles[MAX_PIDFILES];
static char tracked_dirs[MAX_DIRS][512];
static pid_t owner_pid; /* a forked child that exits must not end the servers */

static const int fatal_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS };
static struct sigaction old_actions[sizeof(fatal_sigs) / sizeof(fatal_sigs[0])];

/* Whether pid is gone: reaped here (a child) or no longer there (not ours). */
static int gone(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == pid || (kill(pid, 0) != 0 && errno == ESRCH);
}

/* Ends one process: its signal, a bounded wait, SIGKILL. Async-signal-safe. */
static void end_process(struct tracked *t)
{
	const struct timespec step = { 0, 20 * 1000 * 1000 };
	pid_t pid = t->pid;

	t->pid = 0;
	if (pid <= 0)
		return;
	kill(pid, t->sig);
	if (t->sig != SIGKILL)
		kill(pid, SIGCONT); /* a stopped process cannot act on it */
	for (int waited = 0; waited < t->grace_ms && !gone(pid); waited += 20)
		nanosleep(&step, NULL);
	if (!gone(pid)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0); /* returns at once for a process that is not our child */
	}
}

/* The PID on the first line of path, or 0. Async-signal-safe. */
static pid_t read_pidfile(const char *path)
{
	char buf[32];
	ssize_t n;
	pid_t pid = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		pid = pid * 10 + (buf[i] - '0');
	return pid;
}

/* rm -rf dir by fork and exec. Async-signal-safe. */
static void remove_tree(const char *dir)
{
	char *argv[] = { "/bin/rm", "-rf", "--", (char *)dir, NULL };
	pid_t child;

	if (dir[0] == '\0' || strcmp(dir, "/") == 0)
		return;
	child = fork();
	if (child == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
}

/* Ends every tracked process and daemon, then removes every tracked
 * directory (which may hold the PID files). */
static void end_all(void)
{
	int saved = errno;

	if (getpid() == owner_pid) {
		for (int i = 0; i < MAX_TRACKED; i++)
			end_process(&tracked[i]);
		for (int i = 0; i < MAX_PIDFILES; i++) {
			struct tracked t = { 0, pidfiles[i].sig, pidfiles[i].grace_ms };
			if (pidfiles[i].path[0] == '\0')
				continue;
			t.pid = read_pidfile(pidfiles[i].path);
			end_process(&t);
			pidfiles[i].path[0] = '\0';
		}
		for (int i = 0; i < MAX_DIRS; i++) {
			remove_tree(tracked_dirs[i]);
			tracked_dirs[i][0] = '\0';
		}
	}
	errno = saved;
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	end_all();
	for (size_t i = 0; i < sizeof(fatal_sigs) / sizeof(fatal_sigs[0]); i++)
		if (fatal_sigs[i] == sig)
			sigaction(sig, &old_actions[i], NULL);
	/* A real fault: returning runs the faulting instruction again, which
	 * meets the previous handler (the default, or a sanitizer's report)
	 * with the true context. Anything else is sent again. */
	if ((sig == SIGSEGV || sig == SIGBUS) && si != NULL && si->si_code > 0)
		return;
	raise(sig);
}

/* Once: the exit handler and the signal handlers (where not ignored). */
static void install_hooks(void)
{
	struct sigaction sa;

	if (owner_pid != 0)
		return;
	owner_pid = getpid();
	atexit(end_all);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal_sigs) / sizeof(fatal_sigs[0]); i++) {
		if (sigaction(fatal_sigs[i], NULL, &old_actions[i]) == 0 && old_actions[i].sa_handler != SIG_IGN)
			sigaction(fatal_sigs[i], &sa, NULL);
	}
}

void proc_track(pid_t pid)
{
	install_hooks();
	for (int i = 0; i < MAX_TRACKED; i++) {
		if (tracked[i].pid == 0) {
			tracked[i].sig = SIGKILL;
			tracked[i].grace_ms = 0;
			tracked[i].pid = pid;
			return;
		}
	}
}

void proc_untrack(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (pid > 0 && tracked[i].pid == pid)
			tracked[i].pid = 0;
}

void proc_track_pidfile(const char *path, int sig, int grace_ms)
{
	install_hooks();
	for (int i = 0; i < MAX_PIDFILES; i++) {
		if (pidfiles[i].path[0] == '\0') {
			pidfiles[i].sig = sig;
			pidfiles[i].grace_ms = grace_ms;
			snprintf(pidfiles[i].path, sizeof(pidfiles[i].path), "%s", path);
			return;
		}
	}
}

void proc_untrack_pidfile(const char *path)
{
	for (int i = 0; i < MAX_PIDFILES; i++)
		if (strcmp(pidfiles[i].path, path) == 0)
			pidfiles[i].path[0] = '\0';
}

void proc_track_dir(const char *dir)
{
	install_hooks();
	for (int i = 0; i < MAX_DIRS; i++) {
		if (tracked_dirs[i][0] == '\0') {
			snprintf(tracked_dirs[i], sizeof(tracked_dirs[i]), "%s", dir);
			return;
		}
	}
}

void proc_untrack_dir(const char *dir)
{
	for (int i = 0; i < MAX_DIRS; i++)
		if (strcmp(tracked_dirs[i], dir) == 0)
			tracked_dirs[i][0] = '\0';
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* proc_start; a server (uid/gid (uid_t)-1: unchanged) also switches user
 * and dies with the test process. */
static int start(struct proc *p, char *const argv[], const char *log_path, int server, uid_t uid, gid_t gid)
{
	pid_t pid;
	int fd;

	memset(p, 0, sizeof(*p));
	snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fd);
		return -1;
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (server && uid != (uid_t)-1 && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
			_exit(126);
#ifdef __linux__
		/* After setuid(), which clears it: die with the test, whatever happens. */
		if (server)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	p->pid = pid;
	proc_track(pid);
	return 0;
}

int proc_start(struct proc *p, char *const argv[], const char *log_path)
{
	return start(p, argv, log_path, 0, (uid_t)-1, (gid_t)-1);
}

int proc_start_server(struct proc *p, char *const argv[], const char *log_path, uid_t uid, gid_t gid)
{
	return start(p, argv, log_path, 1, uid, gid);
}

int proc_wait_ready(struct proc *p, int (*ready)(void *arg), void *arg, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	while (now_ms() < deadline) {
		if (!proc_alive(p))
			return -1;
		if (ready(arg))
			return 0;
		usleep(20000);
	}
	proc_stop(p, SIGKILL, 0, NULL);
	return -1;
}

int proc_alive(struct proc *p)
{
	int st;

	if (p->pid <= 0)
		return 0;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		proc_untrack(p->pid);
		p->pid = -p->pid; /* remember it exited */
		return 0;
	}
	return 1;
}

int proc_stop_pid(pid_t pid, int sig, int timeout_ms, int *status)
{
	long long deadline = now_ms() + timeout_ms;
	int st = 0, rc = 0;

	if (pid <= 0)
		return 0;
	kill(pid, sig);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			rc = -1;
			break;
		}
		usleep(10000);
	}
	proc_untrack(pid);
	if (status)
		*status = st;
	return rc;
}

int proc_stop(struct proc *p, int sig, int timeout_ms, int *status)
{
	int rc = proc_stop_pid(p->pid, sig, timeout_ms, status);

	p->pid = 0;
	return rc;
}

int proc_run(char *const argv[], char **output, int timeout_ms)
{
	char path[] = "/tmp/hubtest-out-XXXXXX";
	struct proc p;
	int fd, st = 0, rc;
	long long deadline = now_ms() + timeout_ms;

	*output = NULL;
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	if (proc_start(&p, argv, path) < 0) {
		unlink(path);
		return -1;
	}
	for (;;) {
		pid_t r = waitpid(p.pid, &st, WNOHANG);
		if (r == p.pid)
			break;
		if (now_ms() >= deadline) {
			kill(p.pid, SIGKILL);
			waitpid(p.pid, &st, 0);
			proc_untrack(p.pid);
			*output = proc_read_file(path);
			unlink(path);
			return -1;
		}
		usleep(5000);
	}
	proc_untrack(p.pid);
	*output = proc_read_file(path);
	unlink(path);
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return rc;
}

int proc_port_open(int port)
{
	struct sockaddr_in sa, self;
	socklen_t sl = sizeof(self);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), open_ = 0;

	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A probe whose own ephemeral port happens to be the target connects
	 * to itself (TCP simultaneous open) while nothing listens: not open. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		open_ = !(getsockname(fd, (struct sockaddr *)&self, &sl) == 0 &&
			  self.sin_port == sa.sin_port);
	close(fd);
	return open_;
}

int proc_wait_port(int port, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	while (now_ms() < deadline) {
		if (proc_port_open(port))
			return 0;
		usleep(20000);
	}
	return -1;
}

const char *proc_find_program(const char *env_name, const char *name, char *buf, size_t size)
{
	const char *env = getenv(env_name);
	const char *path = getenv("PATH");
	char dirs[4096];

	if (env != NULL && *env != '\0')
		return access(env, X_OK) == 0 ? env : NULL;
	snprintf(dirs, sizeof(dirs), "%s:/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin:/bin",
		 path != NULL ? path : "");
	for (const char *p = dirs; *p != '\0';) {
		size_t n = strcspn(p, ":");
		if (n > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)n, p, name) < size &&
		    access(buf, X_OK) == 0)
			return buf;
		p += n;
		if (*p == ':')
			p++;
	}
	return NULL;
}

int proc_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int proc_tmpdir(char *buf, size_t size, const char *prefix)
{
	const char *tmp = getenv("TMPDIR");

	if ((size_t)snprintf(buf, size, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix) >= size)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

void proc_rmtree(const char *path)
{
	char *out = NULL;
	char *argv[] = {"/bin/rm", "-rf", "--", (char *)path, NULL};

	if (!path || !*path || strcmp(path, "/") == 0)
		return;
	proc_run(argv, &out, 30000);
	free(out);
}

int proc_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

int proc_file_count(const char *path, const char *what)
{
	char *text = proc_read_file(path);
	int n = 0;

	if (!text)
		return -1;
	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	free(text);
	return n;
}

char *proc_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

const char *proc_build_path(char *buf, size_t size, const char *rel)
{
	const char *b = getenv("HUB_BUILDDIR");

	snprintf(buf, size, "%s/%s", b && *b ? b : ".", rel);
	return buf;
}
