/*
 * hub.c - starting the hub's programs for tests and talking to them (see
 * hub.h).
 */
#include "config.h"
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int hubt_start_ready(struct proc *p, char *const argv[], const char *log_path, const char *ready_url,
		     int timeout_ms)
{
	char *log;

	if (proc_start(p, argv, log_path) == 0 && th_wait_ok(ready_url, timeout_ms) == 0)
		return 0;
	log = proc_read_file(log_path);
	fprintf(stderr, "%s did not become ready (%s) within %d ms:\n%s\n", argv[0], ready_url, timeout_ms,
		log ? log : "");
	free(log);
	return -1;
}

int hubt_admin_token(const char *state_dir, char *token, size_t size)
{
	char path[600], *t;
	int rc;

	snprintf(path, sizeof(path), "%s/admin.token", state_dir);
	t = proc_read_file(path);
	if (t == NULL)
		return -1;
	t[strcspn(t, "\r\n")] = '\0';
	rc = t[0] != '\0' && (size_t)snprintf(token, size, "%s", t) < size ? 0 : -1;
	free(t);
	return rc;
}

long hubt_tick(int port, int seconds)
{
	char url[128], body[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/tick", port);
	snprintf(body, sizeof(body), "{\"seconds\":%d}", seconds);
	return th_post_json(url, NULL, body);
}
