/*
 * nginxserver.c - start, read and stop a real nginx TLS+HTTP/2 reverse
 * proxy for tests (see nginxserver.h). The certificate is made by the
 * openssl command at start; nginx runs in the foreground without a master
 * process so that one PID is all there is to stop. Every started PID and
 * the prefix dir are tracked by the process harness (proc_track,
 * proc_track_dir), whose exit and signal handlers kill what is still
 * running and remove the dir, so no nginx outlives a test run.
 */
#include "config.h"
#include "nginxserver.h"
#include "proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

/* Appends the file's text to err after what is there (bounded). */
static void append_file(char *err, size_t size, const char *path)
{
	size_t len = strlen(err);
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL || len + 2 >= size) {
		if (fp != NULL)
			fclose(fp);
		return;
	}
	snprintf(err + len, size - len, "\n--- %s\n", path);
	len = strlen(err);
	n = fread(err + len, 1, size - len - 1, fp);
	err[len + n] = '\0';
	fclose(fp);
}

/* Makes the key and the self-signed certificate for 127.0.0.1. */
static int make_cert(struct nginxserver *ns, const char *openssl, char *err, size_t size)
{
	char key[320], *out = NULL;
	char *argv[] = { (char *)openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
			 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", ns->ca_path,
			 "-days", "2", "-subj", "/CN=hub test 127.0.0.1", "-addext",
			 "subjectAltName=IP:127.0.0.1", NULL };

	snprintf(key, sizeof(key), "%s/key.pem", ns->dir);
	if (proc_run(argv, &out, 20000) != 0) {
		say(err, size, "nginxserver: %s could not make a certificate: %.400s", openssl, out ? out : "");
		free(out);
		return -1;
	}
	free(out);
	return 0;
}

static int write_conf(const struct nginxserver *ns, const char *upstream, char *err, size_t size)
{
	char conf[4096], path[320];
	const char *d = ns->dir;

	/* One process in the foreground; every path absolute so nothing is read
	 * or written outside the prefix. */
	snprintf(conf, sizeof(conf),
		 "daemon off;\n"
		 "master_process off;\n"
		 "pid %s/nginx.pid;\n"
		 "error_log %s warn;\n"
		 "events { worker_connections 512; }\n"
		 "http {\n"
		 "  log_format hubtest '$server_protocol $connection $connection_requests $status $msec $request_time \"$request\"';\n"
		 "  access_log %s hubtest;\n"
		 "  client_body_temp_path %s/tmp/body;\n"
		 "  proxy_temp_path %s/tmp/proxy;\n"
		 "  fastcgi_temp_path %s/tmp/fastcgi;\n"
		 "  uwsgi_temp_path %s/tmp/uwsgi;\n"
		 "  scgi_temp_path %s/tmp/scgi;\n"
		 "  upstream backend { server %s; keepalive 16; }\n"
		 "  server {\n"
		 "    listen 127.0.0.1:%d ssl http2;\n"
		 "    ssl_certificate %s;\n"
		 "    ssl_certificate_key %s/key.pem;\n"
		 "    keepalive_timeout 60s;\n"
		 "    location / {\n"
		 "      proxy_pass http://backend;\n"
		 "      proxy_http_version 1.1;\n"
		 "      proxy_set_header Connection \"\";\n"
		 "      proxy_set_header Host $http_host;\n"
		 "      proxy_buffering off;\n"
		 "    }\n"
		 "  }\n"
		 "}\n",
		 d, ns->error_log, ns->access_log, d, d, d, d, d, upstream, ns->port, ns->ca_path, d);
	snprintf(path, sizeof(path), "%s/nginx.conf", d);
	if (proc_write_file(path, conf) != 0) {
		say(err, size, "nginxserver: cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* As root: hands the prefix to "nobody" so nginx can run unprivileged. */
static int give_dir(const char *dir, uid_t uid, gid_t gid)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[600];
	int rc = chown(dir, uid, gid);

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (chown(path, uid, gid) != 0)
			rc = -1;
	}
	closedir(d);
	return rc;
}

/* Whether nginx accepts connections (proc_wait_ready's probe). */
static int listening(void *arg)
{
	const struct nginxserver *ns = arg;

	return proc_port_open(ns->port);
}

/* Starts nginx (as pw when not NULL); waits until the port accepts
 * connections. */
static int spawn(struct nginxserver *ns, const char *bin, const struct passwd *pw, int timeout_ms)
{
	char conf[320], stderr_path[320];
	char *argv[] = { (char *)bin, "-p", ns->dir, "-c", conf, "-e", ns->error_log, NULL };
	struct proc p;

	snprintf(conf, sizeof(conf), "%s/nginx.conf", ns->dir);
	snprintf(stderr_path, sizeof(stderr_path), "%s/stderr.log", ns->dir);
	if (proc_start_server(&p, argv, stderr_path, pw != NULL ? pw->pw_uid : (uid_t)-1,
			      pw != NULL ? pw->pw_gid : (gid_t)-1) != 0)
		return -1;
	ns->pid = p.pid;
	if (proc_wait_ready(&p, listening, ns, timeout_ms) == 0)
		return 0;
	ns->pid = 0; /* exited (port taken, bad configuration...) or killed */
	return -1;
}

int nginxserver_start(struct nginxserver *ns, const char *upstream, int timeout_ms, char *err, size_t size)
{
	static char nginx_found[512], openssl_found[512];
	const char *nginx = proc_find_program("HUB_NGINX", "nginx", nginx_found, sizeof(nginx_found));
	const char *openssl = proc_find_program("HUB_OPENSSL", "openssl", openssl_found, sizeof(openssl_found));
	const struct passwd *pw = NULL;
	char sub[320];

	memset(ns, 0, sizeof(*ns));
	if (nginx == NULL || openssl == NULL) {
		say(err, size,
		    "nginxserver: %s is not installed: this test needs it (Debian: apt-get install %s; "
		    "scripts/deps.sh installs everything)",
		    nginx == NULL ? "nginx" : "openssl", nginx == NULL ? "nginx" : "openssl");
		return 1;
	}
	if (proc_tmpdir(ns->dir, sizeof(ns->dir), "hub-nginx") != 0) {
		say(err, size, "nginxserver: mkdtemp %s: %s", ns->dir, strerror(errno));
		ns->dir[0] = '\0';
		return -1;
	}
	proc_track_dir(ns->dir);
	snprintf(ns->ca_path, sizeof(ns->ca_path), "%s/cert.pem", ns->dir);
	snprintf(ns->access_log, sizeof(ns->access_log), "%s/access.log", ns->dir);
	snprintf(ns->error_log, sizeof(ns->error_log), "%s/error.log", ns->dir);
	snprintf(sub, sizeof(sub), "%s/tmp", ns->dir);
	if (mkdir(sub, 0700) != 0 || make_cert(ns, openssl, err, size) != 0)
		goto fail;
	if (geteuid() == 0) {
		pw = getpwnam("nobody");
		if (pw == NULL || give_dir(ns->dir, pw->pw_uid, pw->pw_gid) != 0) {
			say(err, size, "nginxserver: cannot hand %s to the user nobody", ns->dir);
			goto fail;
		}
	}
	/* A free port can be taken between our probe and nginx's bind: retry. */
	for (int attempt = 0; attempt < 3; attempt++) {
		ns->port = proc_free_port();
		if (ns->port <= 0 || write_conf(ns, upstream, err, size) != 0)
			goto fail;
		if (pw != NULL)
			give_dir(ns->dir, pw->pw_uid, pw->pw_gid);
		if (spawn(ns, nginx, pw, timeout_ms) == 0)
			return 0;
	}
	say(err, size, "nginxserver: %s did not come up on 127.0.0.1:%d within %d ms", nginx, ns->port,
	    timeout_ms);
	append_file(err, size, ns->error_log);
	snprintf(sub, sizeof(sub), "%s/stderr.log", ns->dir);
	append_file(err, size, sub);
fail:
	nginxserver_stop(ns);
	return -1;
}

int nginxserver_log_read(const struct nginxserver *ns, struct nginx_log_entry **entries, size_t *count)
{
	FILE *fp = fopen(ns->access_log, "r");
	struct nginx_log_entry *all = NULL, e;
	size_t n = 0, cap = 0;
	char line[1024];

	*entries = NULL;
	*count = 0;
	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		const char *q;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (sscanf(line, "%15s %ld %ld %d %lf %lf", e.protocol, &e.connection, &e.connection_requests,
			   &e.status, &e.end_s, &e.duration_s) != 6)
			continue;
		q = strchr(line, '"');
		if (q != NULL) {
			len = strcspn(q + 1, "\"");
			snprintf(e.request, sizeof(e.request), "%.*s", (int)len, q + 1);
		}
		if (n == cap) {
			struct nginx_log_entry *p = realloc(all, (cap ? cap * 2 : 64) * sizeof(*p));
			if (p == NULL) {
				free(all);
				fclose(fp);
				return -1;
			}
			all = p;
			cap = cap ? cap * 2 : 64;
		}
		all[n++] = e;
	}
	fclose(fp);
	*entries = all;
	*count = n;
	return 0;
}

void nginxserver_stop(struct nginxserver *ns)
{
	if (ns->pid > 0) {
		proc_stop_pid(ns->pid, SIGTERM, 3000, NULL);
		ns->pid = 0;
	}
	if (ns->dir[0] != '\0') {
		proc_rmtree(ns->dir);
		proc_untrack_dir(ns->dir);
	}
	ns->dir[0] = '\0';
}
