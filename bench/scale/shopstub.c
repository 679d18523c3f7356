/*
 * shopstub.c - the smallest stand-in for Shopify's orders endpoint, for
 * bench/scale: every GET under /admin/api/ answers 200 with an empty order
 * list (no Link header, so a sync ends after one page) and a call-limit
 * header showing an almost empty bucket. It lets 10,000 active connectors
 * finish their first sync quickly so their idle cost can be measured; it
 * is not the sandbox (no data, no limits). GET /stats answers
 * {"requests":N}. Loopback only; exits on SIGTERM or after --max-seconds.
 *
 *   shopstub --port P [--max-seconds 3600]
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static unsigned long long requests;

static void answer(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	(void)arg;
	if (!b) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	if (uri && strncmp(uri, "/stats", 6) == 0) {
		evbuffer_add_printf(b, "{\"requests\":%llu}", requests);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (uri && strncmp(uri, "/admin/api/", 11) == 0) {
		requests++;
		evhttp_add_header(h, "X-Shopify-Shop-Api-Call-Limit", "1/40");
		evbuffer_add_printf(b, "{\"orders\":[]}");
		evhttp_send_reply(req, 200, "OK", b);
	} else {
		evbuffer_add_printf(b, "{\"errors\":\"Not Found\"}");
		evhttp_send_reply(req, 404, "Not Found", b);
	}
	evbuffer_free(b);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct event *sig = NULL;
	long port = 0, max_s = 3600;
	struct timeval limit = {0, 0};
	int rc = 1;

	for (int i = 1; i + 1 < argc; i += 2) {
		char *end;
		long v;
		errno = 0;
		v = strtol(argv[i + 1], &end, 10);
		if (errno || *end || v < 1) {
			fprintf(stderr, "shopstub: bad value %s\n", argv[i + 1]);
			return 2;
		}
		if (strcmp(argv[i], "--port") == 0 && v < 65536)
			port = v;
		else if (strcmp(argv[i], "--max-seconds") == 0)
			max_s = v;
		else {
			fprintf(stderr, "usage: shopstub --port P [--max-seconds 3600]\n");
			return 2;
		}
	}
	if (!port) {
		fprintf(stderr, "usage: shopstub --port P [--max-seconds 3600]\n");
		return 2;
	}
	base = event_base_new();
	if (!base)
		goto out;
	http = evhttp_new(base);
	if (!http || evhttp_bind_socket(http, "127.0.0.1", (unsigned short)port) < 0) {
		fprintf(stderr, "shopstub: cannot listen on 127.0.0.1:%ld\n", port);
		goto out;
	}
	evhttp_set_gencb(http, answer, NULL);
	sig = evsignal_new(base, SIGTERM, on_signal, base);
	if (!sig || evsignal_add(sig, NULL) < 0)
		goto out;
	limit.tv_sec = max_s;
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	fprintf(stderr, "shopstub: %llu requests\n", requests);
	rc = 0;
out:
	if (sig)
		event_free(sig);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	return rc;
}
