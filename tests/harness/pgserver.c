/*
 * pgserver.c - throwaway PostgreSQL servers for tests (see pgserver.h).
 *
 * Programs run through fork/execv with an argument vector (no shell) and a
 * watchdog: a child still running after its time limit is killed. The
 * postmaster (by its postmaster.pid, so also while pg_ctl is still starting
 * it) and the directory are tracked by the process harness
 * (proc_track_pidfile, proc_track_dir) from the moment the directory
 * exists: at exit or on a fatal signal the postmaster gets SIGQUIT
 * (PostgreSQL's immediate shutdown), SIGKILL after a bounded wait, then
 * the directory is removed.
 */
#include "config.h"
#include "pgserver.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_S 60
#define TOOL_TIMEOUT_S 120
/* How long a postmaster left at exit gets for its immediate shutdown. */
#define POSTMASTER_GRACE_MS 5000

static const char *bindir(void)
{
	const char *d = getenv("HUB_PG_BINDIR");

	return d && *d ? d : "/usr/lib/postgresql/15/bin";
}

static void say(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

void pgserver_init(struct pgserver *pg)
{
	memset(pg, 0, sizeof(*pg));
}

int pgserver_available(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/pg_ctl", bindir());
	return access(path, X_OK) == 0;
}

static int running_as_root(void)
{
	return getuid() == 0;
}

/*
 * Runs argv (argv[0] is a full path), as the postgres user when root and
 * as_pg is set, with stdout/stderr to /dev/null or to log_path (appended).
 * Waits at most timeout_s. Returns the exit status, or -1.
 */
static int run(char *const argv[], int as_pg, const char *log_path, int timeout_s)
{
	char *full[32];
	size_t n = 0;
	pid_t pid;
	int status = 0;
	time_t deadline = time(NULL) + timeout_s;

	if (as_pg && running_as_root()) {
		full[n++] = "/usr/sbin/runuser";
		full[n++] = "-u";
		full[n++] = "postgres";
		full[n++] = "--";
	}
	for (size_t i = 0; argv[i] && n < 31; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)
				  : open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* A new process group so the watchdog can kill what it started. */
		setpgid(0, 0);
		execv(full[0], full);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (time(NULL) > deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(20000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int rm_rf(const char *path)
{
	char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};

	if (!path[0] || strcmp(path, "/") == 0)
		return -1;
	return run(argv, 0, NULL, 60) == 0 ? 0 : -1;
}

static int chown_pg(const char *path)
{
	struct passwd *pw;

	if (!running_as_root())
		return 0;
	pw = getpwnam("postgres");
	if (!pw)
		return -1;
	return chown(path, pw->pw_uid, pw->pw_gid);
}

static const char *template_path(void)
{
	const char *t = getenv("HUB_PG_TEMPLATE");

	return t && *t ? t : "tests/.pg-template.tar";
}

/* initdb into dir (which exists, empty, owned by the server user). */
static int initdb(const char *dir, const char *log)
{
	char prog[512];
	char *argv[] = {prog, "-D", (char *)dir, "-A", "trust", "-U", "postgres", "--no-sync",
			"-E", "UTF8", "--locale=C", NULL};

	snprintf(prog, sizeof(prog), "%s/initdb", bindir());
	return run(argv, 1, log, TOOL_TIMEOUT_S) == 0 ? 0 : -1;
}

/*
 * Fills datadir (existing, empty) with a fresh cluster: from the cached
 * template when there is one, else by initdb (and the template is made
 * for next time, under a lock so parallel tests make it once).
 */
static int make_cluster(const char *datadir, const char *log, char *err, size_t size)
{
	const char *tpl = template_path();
	char lock[512], tmp[512], tmpdir[512];
	char *untar[] = {"/bin/tar", "-xf", (char *)tpl, "-C", (char *)datadir, NULL};
	int fd, rc = -1;

	snprintf(lock, sizeof(lock), "%s.lock", tpl);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		/* No place for a template (read-only dir): plain initdb. */
		if (fd >= 0)
			close(fd);
		if (initdb(datadir, log) < 0) {
			say(err, size, "initdb failed (see %s)", log);
			return -1;
		}
		return 0;
	}
	if (access(tpl, R_OK) != 0) {
		char *tar[] = {"/bin/tar", "-cf", tmp, "-C", tmpdir, ".", NULL};

		/* initdb runs as the server user, which may not reach the build
		 * tree (a checkout under /root is 0700): scratch space in /tmp. */
		const char *t = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/hub-pg-template-XXXXXX", t && *t ? t : "/tmp");
		snprintf(tmp, sizeof(tmp), "%s.%ld", tpl, (long)getpid());
		if (!mkdtemp(tmpdir) || chown_pg(tmpdir) < 0 || initdb(tmpdir, log) < 0) {
			say(err, size, "initdb failed (see %s)", log);
			rm_rf(tmpdir);
			goto out;
		}
		if (run(tar, 0, log, TOOL_TIMEOUT_S) != 0 || rename(tmp, tpl) < 0) {
			say(err, size, "cannot write the template %s", tpl);
			unlink(tmp);
			rm_rf(tmpdir);
			goto out;
		}
		rm_rf(tmpdir);
	}
	if (run(untar, 0, log, TOOL_TIMEOUT_S) != 0) {
		say(err, size, "cannot unpack the template %s (see %s)", tpl, log);
		goto out;
	}
	rc = 0;
out:
	flock(fd, LOCK_UN);
	close(fd);
	return rc;
}

static int write_conf(const struct pgserver *pg, const char *datadir)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/postgresql.conf", datadir);
	f = fopen(path, "a");
	if (!f)
		return -1;
	fprintf(f,
		"\n# pgserver (tests/harness)\n"
		"listen_addresses = ''\n"
		"port = %d\n"
		"unix_socket_directories = '%s'\n"
		"max_connections = 30\n"
		"shared_buffers = 128MB\n"
		"fsync = %s\n"
		"full_page_writes = %s\n"
		"logging_collector = off\n"
		"log_min_messages = warning\n",
		pg->port, pg->dir, pg->durable ? "on" : "off", pg->durable ? "on" : "off");
	return fclose(f) == 0 ? 0 : -1;
}

static int read_pid(struct pgserver *pg)
{
	char path[512], line[32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg->dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	pg->pid = (pid_t)strtol(line, NULL, 10);
	return pg->pid > 0 ? 0 : -1;
}

static int pg_ctl(struct pgserver *pg, const char *action)
{
	char prog[512], datadir[256], log[256];
	char *start[] = {prog, "-D", datadir, "-l", log, "-w", "-t", "60", "-s", "start", NULL};
	char *stop[] = {prog, "-D", datadir, "-m", "immediate", "-w", "-t", "30", "-s", "stop",
			NULL};

	snprintf(prog, sizeof(prog), "%s/pg_ctl", bindir());
	snprintf(datadir, sizeof(datadir), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/log", pg->dir);
	if (strcmp(action, "start") == 0)
		return run(start, 1, NULL, START_TIMEOUT_S + 10) == 0 ? 0 : -1;
	return run(stop, 1, NULL, 40) == 0 ? 0 : -1;
}

/* ---- public ------------------------------------------------------------------ */

int pgserver_start(struct pgserver *pg, char *err, size_t size)
{
	char datadir[256], log[256], pidfile[300];

	if (!pgserver_available()) {
		say(err, size, "PostgreSQL server binaries not found in %s", bindir());
		return -1;
	}
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/hub-pg.XXXXXX");
	if (!mkdtemp(pg->dir)) {
		say(err, size, "mkdtemp: %s", strerror(errno));
		pg->dir[0] = '\0';
		return -1;
	}
	proc_track_dir(pg->dir);
	snprintf(datadir, sizeof(datadir), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/log", pg->dir);
	snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", datadir);
	proc_track_pidfile(pidfile, SIGQUIT, POSTMASTER_GRACE_MS);
	pg->port = proc_free_port();
	if (pg->port <= 0)
		pg->port = 50000 + (int)(getpid() % 10000);
	if (chown_pg(pg->dir) < 0 || mkdir(datadir, 0700) < 0 || chown_pg(datadir) < 0) {
		say(err, size, "cannot prepare %s for the postgres user", pg->dir);
		goto fail;
	}
	/* The log file must be writable by the server user. */
	close(open(log, O_WRONLY | O_CREAT, 0644));
	if (chown_pg(log) < 0 || make_cluster(datadir, log, err, size) < 0)
		goto fail;
	if (chmod(datadir, 0700) < 0 || write_conf(pg, datadir) < 0) {
		say(err, size, "cannot configure %s", datadir);
		goto fail;
	}
	if (pg_ctl(pg, "start") < 0 || read_pid(pg) < 0) {
		say(err, size, "PostgreSQL did not start within %d s (see %s)", START_TIMEOUT_S, log);
		goto fail;
	}
	pg->running = 1;
	snprintf(pg->url, sizeof(pg->url), "postgresql:///postgres?host=%s&port=%d&user=postgres",
		 pg->dir, pg->port);
	return 0;
fail:
	pgserver_stop(pg);
	return -1;
}

int pgserver_pause(struct pgserver *pg)
{
	if (!pg->running)
		return 0;
	if (pg_ctl(pg, "stop") < 0) {
		kill(pg->pid, SIGQUIT);
		for (int i = 0; i < 250 && kill(pg->pid, 0) == 0; i++)
			usleep(20000);
		if (kill(pg->pid, 0) == 0)
			return -1;
	}
	pg->running = 0;
	return 0;
}

int pgserver_resume(struct pgserver *pg, char *err, size_t size)
{
	if (pg->running)
		return 0;
	if (pg_ctl(pg, "start") < 0 || read_pid(pg) < 0) {
		say(err, size, "PostgreSQL did not restart (see %s/log)", pg->dir);
		return -1;
	}
	pg->running = 1;
	return 0;
}

int pgserver_stop(struct pgserver *pg)
{
	int rc = 0;

	if (pg->running)
		pgserver_pause(pg);
	if (pg->running && pg->pid > 0)
		kill(pg->pid, SIGKILL);
	pg->running = 0;
	if (pg->dir[0]) {
		char pidfile[300];
		snprintf(pidfile, sizeof(pidfile), "%s/data/postmaster.pid", pg->dir);
		proc_untrack_pidfile(pidfile);
		rc = rm_rf(pg->dir);
		proc_untrack_dir(pg->dir);
		pg->dir[0] = '\0';
	}
	return rc;
}
