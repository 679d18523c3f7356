/*
 * synckick.c - keeps connectors asking for work, for bench/poll. A polling
 * stream asks upstream once per poll interval (at least 1 s), which is
 * less than a Shopify bucket allows (2/s), so by itself it would never test
 * the rate limiter. This client POSTs /v1/connectors/<name>/sync for every
 * connector every --every-ms (staggered), over a few keep-alive
 * connections: a trigger that arrives while a stream is busy is remembered
 * and runs right after, so each stream always has a next request waiting
 * for its rate-limit token, and hubd's limiter alone decides the pace.
 *
 *   synckick --url http://127.0.0.1:PORT --token T --names FILE
 *            [--every-ms 300] [--seconds 150] [--connections 8]
 *
 * FILE holds one connector name per line. Bounded: stops after --seconds
 * (plus 10 s for answers). Prints "RESULT sent=N accepted=N other=N
 * errors=N skipped=N" (skipped: a connection was still busy).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define MAX_CONNS 64
#define QUEUE_MAX 1000000

struct kconn {
	struct kick *k;
	struct evhttp_connection *evcon;
	int busy;
};

struct kick {
	struct event_base *base;
	struct kconn conns[MAX_CONNS];
	int nconns;
	char host[64], auth[300];
	char **names;
	size_t nnames;
	long every_ms;
	int seconds;
	int64_t t0;
	size_t next;            /* next name to kick, round robin */
	size_t *queue;          /* names due but not yet sent */
	size_t qhead, qlen;
	uint64_t due, sent, accepted, other, errors, skipped;
	int stopping;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump(struct kick *k);

/* After --seconds: leave once every answer is in. */
static void maybe_exit(struct kick *k)
{
	if (!k->stopping)
		return;
	for (int i = 0; i < k->nconns; i++)
		if (k->conns[i].busy)
			return;
	event_base_loopexit(k->base, NULL);
}

static void answered(struct evhttp_request *req, void *arg)
{
	struct kconn *c = arg;
	struct kick *k = c->k;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	c->busy = 0;
	if (code == 202)
		k->accepted++;
	else if (code == 0)
		k->errors++;
	else
		k->other++;
	pump(k);
	maybe_exit(k);
}

static void send_one(struct kconn *c, size_t idx)
{
	struct kick *k = c->k;
	struct evhttp_request *req = evhttp_request_new(answered, c);
	char path[200];

	if (!req) {
		k->errors++;
		return;
	}
	snprintf(path, sizeof(path), "/v1/connectors/%s/sync", k->names[idx]);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", k->host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", k->auth);
	c->busy = 1;
	k->sent++;
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, path) < 0) {
		c->busy = 0;
		k->errors++;
	}
}

static void pump(struct kick *k)
{
	for (int i = 0; i < k->nconns && k->qlen > 0 && !k->stopping; i++) {
		if (k->conns[i].busy)
			continue;
		send_one(&k->conns[i], k->queue[k->qhead]);
		k->qhead = (k->qhead + 1) % QUEUE_MAX;
		k->qlen--;
	}
}

/* Every 10 ms: queue the names whose turn has come. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct kick *k = arg;
	int64_t t = now_ms() - k->t0;
	uint64_t want;

	(void)fd;
	(void)what;
	if (t >= (int64_t)k->seconds * 1000) {
		k->stopping = 1;
		maybe_exit(k);
		return;
	}
	want = (uint64_t)((double)t / (double)k->every_ms * (double)k->nnames);
	while (k->due < want) {
		if (k->qlen < QUEUE_MAX) {
			k->queue[(k->qhead + k->qlen) % QUEUE_MAX] = k->next;
			k->qlen++;
		} else {
			k->skipped++;
		}
		k->next = (k->next + 1) % k->nnames;
		k->due++;
	}
	pump(k);
}

static int read_names(struct kick *k, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[128];
	size_t cap = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!*line)
			continue;
		if (k->nnames == cap) {
			char **n;
			cap = cap ? cap * 2 : 64;
			n = realloc(k->names, cap * sizeof(*n));
			if (!n) {
				fclose(f);
				return -1;
			}
			k->names = n;
		}
		k->names[k->nnames] = strdup(line);
		if (!k->names[k->nnames]) {
			fclose(f);
			return -1;
		}
		k->nnames++;
	}
	fclose(f);
	return k->nnames ? 0 : -1;
}

static long arg_long(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	static struct kick k;
	const char *url = NULL, *token = NULL, *names = NULL;
	struct event *tick = NULL;
	struct timeval tv = {0, 10000}, bound = {0, 0};
	long every = 300, secs = 150, conns = 8;
	int port = 0, rc = 1;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--url") == 0)
			url = argv[i + 1];
		else if (strcmp(argv[i], "--token") == 0)
			token = argv[i + 1];
		else if (strcmp(argv[i], "--names") == 0)
			names = argv[i + 1];
		else if (strcmp(argv[i], "--every-ms") == 0)
			every = arg_long(argv[i + 1], 1, 3600000);
		else if (strcmp(argv[i], "--seconds") == 0)
			secs = arg_long(argv[i + 1], 1, 36000);
		else if (strcmp(argv[i], "--connections") == 0)
			conns = arg_long(argv[i + 1], 1, MAX_CONNS);
		else
			every = -1;
	}
	if (!url || !token || !names || every < 0 || secs < 0 || conns < 0 ||
	    sscanf(url, "http://%63[^:]:%d", k.host, &port) != 2) {
		fprintf(stderr, "usage: synckick --url http://127.0.0.1:PORT --token T --names FILE "
				"[--every-ms 300] [--seconds 150] [--connections 8]\n");
		return 2;
	}
	if (read_names(&k, names) < 0) {
		fprintf(stderr, "synckick: cannot read connector names from %s\n", names);
		goto out;
	}
	k.every_ms = every;
	k.seconds = (int)secs;
	k.nconns = (int)conns;
	snprintf(k.auth, sizeof(k.auth), "Bearer %s", token);
	k.queue = calloc(QUEUE_MAX, sizeof(*k.queue));
	k.base = event_base_new();
	if (!k.queue || !k.base)
		goto out;
	for (int i = 0; i < k.nconns; i++) {
		k.conns[i].k = &k;
		k.conns[i].evcon = evhttp_connection_base_new(k.base, NULL, k.host, (unsigned short)port);
		if (!k.conns[i].evcon)
			goto out;
		evhttp_connection_set_timeout(k.conns[i].evcon, 10);
	}
	tick = event_new(k.base, -1, EV_PERSIST, on_tick, &k);
	if (!tick)
		goto out;
	k.t0 = now_ms();
	event_add(tick, &tv);
	bound.tv_sec = secs + 10;
	event_base_loopexit(k.base, &bound);
	event_base_dispatch(k.base);
	printf("RESULT sent=%llu accepted=%llu other=%llu errors=%llu skipped=%llu\n",
	       (unsigned long long)k.sent, (unsigned long long)k.accepted, (unsigned long long)k.other,
	       (unsigned long long)k.errors, (unsigned long long)(k.skipped + k.qlen));
	rc = 0;
out:
	if (tick)
		event_free(tick);
	for (int i = 0; i < k.nconns; i++)
		if (k.conns[i].evcon)
			evhttp_connection_free(k.conns[i].evcon);
	if (k.base)
		event_base_free(k.base);
	for (size_t i = 0; i < k.nnames; i++)
		free(k.names[i]);
	free(k.names);
	free(k.queue);
	return rc;
}
