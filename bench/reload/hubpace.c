/*
 * hubpace.c - a paced (open-loop) webhook client for the benchmarks, with
 * optional plugin reloads on the side. Debian's wrk has no -R, so this sends
 * signed Shopify order webhooks at a fixed rate over a pool of keep-alive
 * connections and measures each one from the moment it was due (a request
 * that waits for a free connection counts its wait: no coordinated
 * omission). With --reloads N it also POSTs /v1/plugins/<plugin>/reload N
 * times, one after the other with --reload-gap-ms between them, and reports
 * the latency of the webhooks that fell due around a reload (from 10 ms before
 * it to 10 ms after its answer) apart from the others.
 *
 *   hubpace --url http://127.0.0.1:PORT --fixtures DIR --secret S
 *           [--connector bench] [--rate 2000] [--seconds 30] [--connections 64]
 *           [--first 0] [--run TAG] [--bytes 3072]
 *           [--reloads N --token T [--plugin shopify] [--reload-gap-ms 150]
 *            [--warmup-s 3]] [--trace FILE]
 *
 * --trace writes "due_ms latency_ms status" per webhook (and "# reload
 * start_ms end_ms status" lines) for a closer look.
 *
 * Bounded: nothing is sent after --seconds; outstanding requests get 10 s.
 * Prints "RESULT key=value ..." on stdout; exit 0 when it ran (failures are
 * figures, not errors), 2 on bad usage, 1 when it could not run.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "hookbody.h"

#define MAX_CONNS 1024
#define DRAIN_S 10

struct delivery {
	char *body;
	size_t len;
	char sig[64];
	char wid[64];
	int64_t due_us;   /* when it should have been sent (from the start) */
	int64_t sent_us;  /* when it was handed to a connection, -1 not yet */
	int64_t done_us;  /* when the answer arrived, -1 none */
	int status;       /* HTTP status, 0 = connection error */
};

struct reload {
	int64_t start_us, end_us;
	int status;
};

struct conn {
	struct pace *pc;
	struct evhttp_connection *evcon;
	long cur; /* delivery in flight, -1 idle */
};

struct pace {
	struct event_base *base;
	struct event *tick;
	struct conn conns[MAX_CONNS];
	int nconns;
	char host[64];
	int port;
	char hook_path[128];
	double rate;
	int seconds;
	struct delivery *d;
	long n;       /* deliveries planned */
	long issued;  /* due so far (sent or queued) */
	long next_q;  /* first queued not yet sent */
	long done;
	int64_t t0;
	/* reloads */
	struct evhttp_connection *admin;
	char token[256], reload_path[160];
	int reloads_wanted, reloads_started, reload_gap_ms, warmup_s;
	struct reload *r;
	struct event *reload_timer;
	int stopping;
	const char *trace; /* file for one line per webhook, or NULL */
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void send_on(struct conn *c, long i);

static void finish_check(struct pace *pc)
{
	if (pc->done == pc->issued && pc->issued == pc->n &&
	    (pc->reloads_wanted == 0 || pc->reloads_started >= pc->reloads_wanted ||
	     pc->stopping) &&
	    (pc->reloads_started == 0 || pc->r[pc->reloads_started - 1].end_us >= 0))
		event_base_loopexit(pc->base, NULL);
}

static void answered(struct evhttp_request *req, void *arg)
{
	struct conn *c = arg;
	struct pace *pc = c->pc;
	struct delivery *d = &pc->d[c->cur];

	d->done_us = now_us() - pc->t0;
	d->status = req ? evhttp_request_get_response_code(req) : 0;
	c->cur = -1;
	pc->done++;
	if (pc->next_q < pc->issued)
		send_on(c, pc->next_q++);
	finish_check(pc);
}

static void send_on(struct conn *c, long i)
{
	struct pace *pc = c->pc;
	struct delivery *d = &pc->d[i];
	struct evhttp_request *req = evhttp_request_new(answered, c);
	struct evkeyvalq *h;

	c->cur = i;
	d->sent_us = now_us() - pc->t0;
	if (!req) {
		answered(NULL, c);
		return;
	}
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", pc->host);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "X-Shopify-Topic", "orders/create");
	evhttp_add_header(h, "X-Shopify-Hmac-Sha256", d->sig);
	evhttp_add_header(h, "X-Shopify-Shop-Domain", "bench.myshopify.com");
	evhttp_add_header(h, "X-Shopify-API-Version", "2026-07");
	evhttp_add_header(h, "X-Shopify-Webhook-Id", d->wid);
	evbuffer_add_reference(evhttp_request_get_output_buffer(req), d->body, d->len, NULL, NULL);
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, pc->hook_path) < 0)
		answered(NULL, c); /* libevent freed req */
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pace *pc = arg;
	int64_t t = now_us() - pc->t0;

	(void)fd;
	(void)what;
	while (pc->issued < pc->n && pc->d[pc->issued].due_us <= t) {
		pc->issued++;
		for (int k = 0; k < pc->nconns && pc->next_q < pc->issued; k++)
			if (pc->conns[k].cur < 0)
				send_on(&pc->conns[k], pc->next_q++);
	}
	if (pc->issued == pc->n) {
		event_del(pc->tick);
		finish_check(pc);
	}
}

static void reload_next(evutil_socket_t fd, short what, void *arg);

static void reload_answered(struct evhttp_request *req, void *arg)
{
	struct pace *pc = arg;
	struct reload *r = &pc->r[pc->reloads_started - 1];
	struct timeval gap = {pc->reload_gap_ms / 1000, (pc->reload_gap_ms % 1000) * 1000};

	r->end_us = now_us() - pc->t0;
	r->status = req ? evhttp_request_get_response_code(req) : 0;
	if (pc->reloads_started < pc->reloads_wanted && !pc->stopping)
		evtimer_add(pc->reload_timer, &gap);
	finish_check(pc);
}

static void reload_next(evutil_socket_t fd, short what, void *arg)
{
	struct pace *pc = arg;
	struct reload *r;
	struct evhttp_request *req;
	char auth[300];

	(void)fd;
	(void)what;
	if (now_us() - pc->t0 >= (int64_t)pc->seconds * 1000000) {
		pc->stopping = 1; /* no time left: report the reloads done */
		finish_check(pc);
		return;
	}
	r = &pc->r[pc->reloads_started++];
	r->start_us = now_us() - pc->t0;
	r->end_us = -1;
	req = evhttp_request_new(reload_answered, pc);
	if (!req) {
		reload_answered(NULL, pc);
		return;
	}
	snprintf(auth, sizeof(auth), "Bearer %s", pc->token);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", pc->host);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", auth);
	if (evhttp_make_request(pc->admin, req, EVHTTP_REQ_POST, pc->reload_path) < 0)
		reload_answered(NULL, pc);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentile p (0..100) of n sorted values, in ms; 0 when n == 0. */
static double pct_ms(const int64_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)ceil(p / 100.0 * (double)n);
	if (k < 1)
		k = 1;
	return (double)v[k - 1] / 1000.0;
}

/*
 * 1 when delivery d fell due around a reload: from RELOAD_MARGIN_US before
 * the reload request was sent to RELOAD_MARGIN_US after its answer. The
 * choice depends on when a webhook was due, never on how long it took, so
 * slow webhooks are not over-represented (selecting "in flight during a
 * reload" would favour them: the longer a request lasts, the likelier it
 * overlaps a reload).
 */
#define RELOAD_MARGIN_US 10000
static int during_reload(const struct pace *pc, const struct delivery *d)
{
	for (int i = 0; i < pc->reloads_started; i++) {
		const struct reload *r = &pc->r[i];
		int64_t end = r->end_us >= 0 ? r->end_us : INT64_MAX - RELOAD_MARGIN_US;
		if (d->due_us >= r->start_us - RELOAD_MARGIN_US && d->due_us <= end + RELOAD_MARGIN_US)
			return 1;
	}
	return 0;
}

static void report(struct pace *pc)
{
	int64_t *all = calloc((size_t)pc->n + 1, sizeof(int64_t));
	int64_t *in = calloc((size_t)pc->n + 1, sizeof(int64_t));
	int64_t *out = calloc((size_t)pc->n + 1, sizeof(int64_t));
	int64_t *rl = calloc((size_t)pc->reloads_started + 1, sizeof(int64_t));
	size_t na = 0, ni = 0, no = 0, ok = 0, failed = 0, unanswered = 0, nr = 0, rfail = 0;
	int64_t last = 0;

	if (!all || !in || !out || !rl) {
		fprintf(stderr, "hubpace: out of memory for the report\n");
		goto out;
	}
	for (long i = 0; i < pc->n; i++) {
		struct delivery *d = &pc->d[i];
		int64_t lat;
		if (d->done_us < 0) {
			unanswered++;
			continue;
		}
		if (d->status == 200)
			ok++;
		else
			failed++;
		lat = d->done_us - d->due_us;
		all[na++] = lat;
		if (pc->reloads_started && during_reload(pc, d))
			in[ni++] = lat;
		else
			out[no++] = lat;
		if (d->done_us > last)
			last = d->done_us;
	}
	for (int i = 0; i < pc->reloads_started; i++) {
		if (pc->r[i].end_us < 0 || pc->r[i].status != 200) {
			rfail++;
			continue;
		}
		rl[nr++] = pc->r[i].end_us - pc->r[i].start_us;
	}
	qsort(all, na, sizeof(int64_t), cmp_i64);
	qsort(in, ni, sizeof(int64_t), cmp_i64);
	qsort(out, no, sizeof(int64_t), cmp_i64);
	qsort(rl, nr, sizeof(int64_t), cmp_i64);
	printf("RESULT planned=%ld sent=%ld ok=%zu failed=%zu unanswered=%zu rate_achieved=%.0f "
	       "p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
	       "reloads=%d reload_failed=%zu reload_p50_ms=%.2f reload_max_ms=%.2f "
	       "in_reload_n=%zu in_reload_p50_ms=%.2f in_reload_p99_ms=%.2f in_reload_max_ms=%.2f "
	       "outside_n=%zu outside_p99_ms=%.2f\n",
	       pc->n, pc->next_q, ok, failed, unanswered,
	       last > 0 ? (double)na / ((double)last / 1e6) : 0.0, pct_ms(all, na, 50),
	       pct_ms(all, na, 99), pct_ms(all, na, 99.9), na ? (double)all[na - 1] / 1000.0 : 0.0,
	       pc->reloads_started, rfail, pct_ms(rl, nr, 50), nr ? (double)rl[nr - 1] / 1000.0 : 0.0,
	       ni, pct_ms(in, ni, 50), pct_ms(in, ni, 99), ni ? (double)in[ni - 1] / 1000.0 : 0.0, no,
	       pct_ms(out, no, 99));
	if (pc->trace) {
		FILE *f = fopen(pc->trace, "w");
		if (!f) {
			fprintf(stderr, "hubpace: cannot write %s\n", pc->trace);
			goto out;
		}
		fprintf(f, "due_ms latency_ms status\n");
		for (long i = 0; i < pc->n; i++)
			if (pc->d[i].done_us >= 0)
				fprintf(f, "%.3f %.3f %d\n", (double)pc->d[i].due_us / 1000.0,
					(double)(pc->d[i].done_us - pc->d[i].due_us) / 1000.0, pc->d[i].status);
		for (int i = 0; i < pc->reloads_started; i++)
			fprintf(f, "# reload %.3f %.3f %d\n", (double)pc->r[i].start_us / 1000.0,
				(double)pc->r[i].end_us / 1000.0, pc->r[i].status);
		fclose(f);
	}
out:
	free(all);
	free(in);
	free(out);
	free(rl);
}

static void usage(void)
{
	fprintf(stderr, "usage: hubpace --url http://127.0.0.1:PORT --fixtures DIR --secret S "
			"[--connector bench] [--rate 2000] [--seconds 30] [--connections 64] [--first 0] "
			"[--run TAG] [--bytes 3072] [--reloads N --token T [--plugin shopify] "
			"[--reload-gap-ms 150] [--warmup-s 3]] [--trace FILE]\n");
}

static int num(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static struct pace pc;
	const char *url = NULL, *fixtures = NULL, *secret = NULL, *connector = "bench", *run = "p",
		   *plugin = "shopify", *token = NULL;
	double rate = 2000, seconds = 30, conns = 64, first = 0, bytes = 3072, reloads = 0, gap = 150,
	       warmup = 3;
	struct hookbody hb;
	char err[1200];
	struct timeval tick = {0, 1000}, drain = {0, 0};
	int rc = 1;

	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!v)
			bad = 1;
		else if (strcmp(a, "--url") == 0)
			url = v;
		else if (strcmp(a, "--fixtures") == 0)
			fixtures = v;
		else if (strcmp(a, "--secret") == 0)
			secret = v;
		else if (strcmp(a, "--connector") == 0)
			connector = v;
		else if (strcmp(a, "--run") == 0)
			run = v;
		else if (strcmp(a, "--plugin") == 0)
			plugin = v;
		else if (strcmp(a, "--token") == 0)
			token = v;
		else if (strcmp(a, "--trace") == 0)
			pc.trace = v;
		else if (strcmp(a, "--rate") == 0)
			bad = num(v, 1, 1e6, &rate);
		else if (strcmp(a, "--seconds") == 0)
			bad = num(v, 1, 3600, &seconds);
		else if (strcmp(a, "--connections") == 0)
			bad = num(v, 1, MAX_CONNS, &conns);
		else if (strcmp(a, "--first") == 0)
			bad = num(v, 0, 1e12, &first);
		else if (strcmp(a, "--bytes") == 0)
			bad = num(v, 64, 1 << 20, &bytes);
		else if (strcmp(a, "--reloads") == 0)
			bad = num(v, 0, 100000, &reloads);
		else if (strcmp(a, "--reload-gap-ms") == 0)
			bad = num(v, 0, 60000, &gap);
		else if (strcmp(a, "--warmup-s") == 0)
			bad = num(v, 0, 3600, &warmup);
		else
			bad = 1;
		if (bad) {
			usage();
			return 2;
		}
	}
	if (!url || !fixtures || !secret || (reloads > 0 && !token) ||
	    sscanf(url, "http://%63[^:]:%d", pc.host, &pc.port) != 2) {
		usage();
		return 2;
	}
	pc.rate = rate;
	pc.seconds = (int)seconds;
	pc.nconns = (int)conns;
	pc.reloads_wanted = (int)reloads;
	pc.reload_gap_ms = (int)gap;
	pc.warmup_s = (int)warmup;
	snprintf(pc.hook_path, sizeof(pc.hook_path), "/hooks/%s", connector);
	snprintf(pc.reload_path, sizeof(pc.reload_path), "/v1/plugins/%s/reload", plugin);
	if (token)
		snprintf(pc.token, sizeof(pc.token), "%s", token);
	/* Everything is signed before the clock starts. */
	if (hookbody_init(&hb, fixtures, (size_t)bytes, run, err, sizeof(err)) < 0) {
		fprintf(stderr, "hubpace: %s\n", err);
		return 1;
	}
	pc.n = (long)(rate * seconds);
	pc.d = calloc((size_t)pc.n, sizeof(*pc.d));
	pc.r = calloc((size_t)pc.reloads_wanted + 1, sizeof(*pc.r));
	if (!pc.d || !pc.r)
		goto out;
	for (long i = 0; i < pc.n; i++) {
		struct delivery *d = &pc.d[i];
		d->body = hookbody_make(&hb, (long long)first + i, &d->len);
		if (!d->body || hookbody_sign(secret, d->body, d->len, d->sig, sizeof(d->sig)) < 0) {
			fprintf(stderr, "hubpace: out of memory preparing delivery %ld\n", i);
			goto out;
		}
		hookbody_webhook_id(&hb, (long long)first + i, d->wid, sizeof(d->wid));
		d->due_us = (int64_t)((double)i * 1e6 / rate);
		d->sent_us = d->done_us = -1;
	}
	pc.base = event_base_new();
	if (!pc.base)
		goto out;
	for (int k = 0; k < pc.nconns; k++) {
		pc.conns[k].pc = &pc;
		pc.conns[k].cur = -1;
		pc.conns[k].evcon = evhttp_connection_base_new(pc.base, NULL, pc.host, (unsigned short)pc.port);
		if (!pc.conns[k].evcon)
			goto out;
		evhttp_connection_set_timeout(pc.conns[k].evcon, DRAIN_S);
	}
	pc.tick = event_new(pc.base, -1, EV_PERSIST, on_tick, &pc);
	if (!pc.tick)
		goto out;
	if (pc.reloads_wanted) {
		struct timeval w = {pc.warmup_s, 0};
		pc.admin = evhttp_connection_base_new(pc.base, NULL, pc.host, (unsigned short)pc.port);
		pc.reload_timer = evtimer_new(pc.base, reload_next, &pc);
		if (!pc.admin || !pc.reload_timer)
			goto out;
		evhttp_connection_set_timeout(pc.admin, 60);
		evtimer_add(pc.reload_timer, &w);
	}
	pc.t0 = now_us();
	event_add(pc.tick, &tick);
	/* Hard bound: the run plus the drain time. */
	drain.tv_sec = pc.seconds + DRAIN_S;
	event_base_loopexit(pc.base, &drain);
	event_base_dispatch(pc.base);
	report(&pc);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "hubpace: could not set up the run (out of memory?)\n");
	for (int k = 0; k < pc.nconns; k++)
		if (pc.conns[k].evcon)
			evhttp_connection_free(pc.conns[k].evcon);
	if (pc.admin)
		evhttp_connection_free(pc.admin);
	if (pc.tick)
		event_free(pc.tick);
	if (pc.reload_timer)
		event_free(pc.reload_timer);
	if (pc.base)
		event_base_free(pc.base);
	for (long i = 0; pc.d && i < pc.n; i++)
		free(pc.d[i].body);
	free(pc.d);
	free(pc.r);
	hookbody_release(&hb);
	return rc;
}
