/*
 * nginxserver.h - a real nginx for tests: a TLS reverse proxy speaking
 * HTTP/2 (and HTTP/1.1 to clients that do not offer h2 in ALPN) on a free
 * loopback port, in front of one plain-HTTP upstream such as hub-sandbox.
 *
 * nginxserver_start() makes a temp dir (prefix), a throwaway self-signed
 * certificate for 127.0.0.1 with the openssl command (the certificate is
 * its own CA: hand `ca_path` to the client so verification stays on), a
 * configuration, and starts nginx in the foreground as one process (no
 * master/worker split), so the PID it keeps is the only process to kill.
 * As root, nginx runs as "nobody" on a directory chowned to it. Every
 * request is written to `access_log`, one line each:
 *
 *   <server_protocol> <connection serial> <connection_requests> <status>
 *   <msec at the end> <request_time> "<request line>"
 *
 * e.g. HTTP/2.0 1 3 200 1718000000.123 0.301 "GET /shops/x/orders.json HTTP/2.0";
 * nginxserver_log_read() parses it.
 *
 * The process is stopped by PID by nginxserver_stop(), and otherwise at
 * exit and on SIGINT/SIGTERM/SIGHUP (and on Linux it dies with the test
 * process). Binaries: $HUB_NGINX, else "nginx" from PATH, /usr/sbin or
 * /usr/local/sbin; $HUB_OPENSSL, else "openssl" likewise. Single test thread
 * only.
 */
#ifndef HUB_TEST_NGINXSERVER_H
#define HUB_TEST_NGINXSERVER_H

#include <stddef.h>
#include <sys/types.h>

struct nginxserver {
	pid_t pid;              /* 0 when not running */
	int port;               /* TLS listener on 127.0.0.1 */
	char dir[256];          /* temp prefix; removed by nginxserver_stop() */
	char ca_path[320];      /* the self-signed certificate, PEM: the CA to trust */
	char access_log[320];
	char error_log[320];
};

/* One parsed access log line. */
struct nginx_log_entry {
	char protocol[16];      /* "HTTP/2.0", "HTTP/1.1" */
	long connection;        /* nginx's connection serial number */
	long connection_requests; /* requests made so far on that connection, this one included */
	int status;
	double end_s;           /* when the response was sent, Unix seconds (ms precision) */
	double duration_s;      /* from the first byte read from the client to the end */
	char request[512];      /* the request line, cut if longer */
};

/*
 * Starts nginx proxying every path to http://`upstream` ("127.0.0.1:PORT")
 * and waits up to `timeout_ms` until it accepts connections. Returns 0 when
 * it is up; 1 when nginx or openssl is not installed, with `err` saying
 * which and how to install it (tests must fail then, not skip); -1 on any
 * other failure with the reason (and nginx's error log) in `err`.
 */
int nginxserver_start(struct nginxserver *ns, const char *upstream, int timeout_ms, char *err, size_t errsize);

/*
 * Reads the access log: *entries gets a malloc'd array (free() it) of
 * *count lines. Lines that do not parse are skipped. Returns 0, or -1 when
 * the log cannot be read.
 */
int nginxserver_log_read(const struct nginxserver *ns, struct nginx_log_entry **entries, size_t *count);

/* Stops nginx (SIGTERM - fast shutdown - then SIGKILL after 3 s) and
 * removes its dir. Safe to call twice or on a server that never started. */
void nginxserver_stop(struct nginxserver *ns);

#endif
