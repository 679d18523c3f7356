/*
 * reentrant.c - the kit's check of HUB_CAP_WEBHOOKS_REENTRANT: the webhook
 * cases replayed from several threads at once must answer exactly as they
 * did one at a time.
 *
 * hubd runs a reentrant plugin's verify_webhook and read_webhook on worker
 * threads, through instance_verify_webhook_worker and
 * instance_read_webhook_worker (core/connector.h): the connector is left to
 * the loop thread, so cursor() and access_token() answer NULL. The check
 * calls them the same way. First each delivery once on the main thread,
 * which must give the outcome of its sequential run; then T threads, released
 * together, each running every delivery R times, in an order of its own
 * each round, on one instance per case shared by all threads, and each with
 * its own copy of the message and its own call. Outcomes (kit_webhook_outcome)
 * are compared as strings on the worker; the first difference or error of a
 * case is kept for the main thread to report after joining. Any of them
 * stops every thread. A crash on a worker is named (case and thread) on
 * stdout before the signal takes its course. Cases with different clocks run
 * side by side: each thread fixes its own (host_clock_fix_thread).
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connector.h"
#include "host.h"
#include "kit.h"
#include "msg.h"
#include "plugin.h"

/* What went wrong with one delivery, first occurrence kept. */
struct finding {
	unsigned differed;   /* outcomes unlike the sequential one */
	unsigned errors;     /* runs the kit could not complete */
	unsigned thread, round;
	char *got;           /* first different outcome, owned */
	char why[160];       /* first error */
};

/* What the main thread shares with the workers. */
struct shared {
	const struct kit_wcase *w;
	size_t n;
	struct conn_instance **inst;
	char **expect;                     /* outcome of the worker-way sequential run */
	const struct js_registry *schemas;
	unsigned rounds;
	struct timespec deadline;          /* CLOCK_MONOTONIC */
	pthread_mutex_t mu;                /* go, findings */
	pthread_cond_t cv;
	int go;
	atomic_int stop;                   /* a finding or the time limit */
	atomic_int timed_out;
	struct finding *found;
};

struct worker {
	struct shared *sh;
	unsigned index;
	pthread_t tid;
	unsigned long calls;
	unsigned rounds_done;
};

/* ---- naming a crash ------------------------------------------------------ */

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NCRASH (sizeof(crash_signals) / sizeof(crash_signals[0]))
static struct sigaction saved_actions[NCRASH];
/* The delivery a worker runs, for the crash message. */
static _Thread_local const char *running_label;
static _Thread_local unsigned running_thread;

/* Appends s to buf (async-signal-safe). Returns the new length. */
static size_t append(char *buf, size_t len, size_t cap, const char *s)
{
	while (*s && len + 1 < cap)
		buf[len++] = *s++;
	return len;
}

static size_t append_uint(char *buf, size_t len, size_t cap, unsigned v)
{
	char digits[16];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(digits));
	while (n && len + 1 < cap)
		buf[len++] = digits[--n];
	return len;
}

/* Writes one FAIL line naming the delivery, restores the previous action
 * and lets the signal take its course (a fault re-raises itself on return;
 * a sent signal is raised again). */
static void on_crash(int sig, siginfo_t *info, void *uctx)
{
	char line[1024];
	size_t len = 0, i;

	(void)uctx;
	if (running_label) {
		len = append(line, len, sizeof(line), "FAIL ");
		len = append(line, len, sizeof(line), running_label);
		len = append(line, len, sizeof(line), ": webhooks reentrant: the kit died of signal ");
		len = append_uint(line, len, sizeof(line), (unsigned)sig);
		len = append(line, len, sizeof(line), " on thread ");
		len = append_uint(line, len, sizeof(line), running_thread);
		len = append(line, len, sizeof(line), " while this delivery ran on several threads at "
			     "once: run the kit under valgrind, or in an AddressSanitizer "
			     "build, to see where\n");
	} else {
		len = append(line, len, sizeof(line), "FAIL webhooks reentrant: the kit died of signal ");
		len = append_uint(line, len, sizeof(line), (unsigned)sig);
		len = append(line, len, sizeof(line), " during the concurrent run\n");
	}
	if (write(STDOUT_FILENO, line, len) < 0)
		len = 0;
	for (i = 0; i < NCRASH; i++)
		if (crash_signals[i] == sig)
			sigaction(sig, &saved_actions[i], NULL);
	if (sig == SIGABRT || info->si_code <= 0)
		raise(sig);
}

static void crash_handlers_install(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < NCRASH; i++)
		sigaction(crash_signals[i], &sa, &saved_actions[i]);
}

static void crash_handlers_restore(void)
{
	size_t i;

	for (i = 0; i < NCRASH; i++)
		sigaction(crash_signals[i], &saved_actions[i], NULL);
}

/* ---- one delivery ----------------------------------------------------------- */

void kit_wcase_release(struct kit_wcase *w)
{
	free(w->label);
	json_decref(w->config);
	msg_free(w->webhook);
	free(w->outcome);
	memset(w, 0, sizeof(*w));
}

char *kit_webhook_outcome(const json_t *run)
{
	const json_t *out = json_object_get(run, "outputs"), *e = json_object_get(run, "error");
	json_t *o;
	char *text;

	o = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}",
		      "verify", json_object_get(run, "verify"),
		      "status", json_object_get(run, "status"),
		      "topic", json_object_get(out, "topic"),
		      "delivery_id", json_object_get(out, "delivery_id"),
		      "records", json_object_get(out, "records"),
		      "rejects", json_object_get(out, "rejects"),
		      "misuses", json_object_get(out, "misuses"),
		      "error_field", json_object_get(e, "field"),
		      "error_message", json_object_get(e, "message"));
	text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return text;
}

/* A copy of the delivery `src` into the empty `dst`. 0 or -1. */
static int msg_copy(struct hub_msg *dst, const struct hub_msg *src)
{
	size_t i;

	if (msg_set_webhook(dst, src->method, src->url) < 0)
		return -1;
	for (i = 0; i < src->nheaders; i++)
		if (msg_add_header(dst, src->headers[i].name, src->headers[i].value) < 0)
			return -1;
	return src->body_len ? msg_set_body(dst, src->body, src->body_len) : 0;
}

/*
 * Delivers w once on `inst` the way hubd's webhook workers do, on the
 * calling thread with the case's clock. Returns its outcome (malloc'd), or
 * NULL with why filled.
 */
static char *deliver(const struct kit_wcase *w, const struct conn_instance *inst,
		     const struct js_registry *schemas, char *why, size_t wsize)
{
	struct hub_msg m;
	struct hub_call call;
	struct hub_error err;
	char *outcome = NULL;
	json_t *run = NULL;
	int verify, st;

	msg_init(&m);
	call_init(&call, plugin_gen_kinds(inst->gen), schemas);
	memset(&err, 0, sizeof(err));
	if (msg_copy(&m, w->webhook) < 0) {
		snprintf(why, wsize, "out of memory copying the delivery");
		goto out;
	}
	host_clock_fix_thread(w->now_ms);
	st = verify = instance_verify_webhook_worker(inst, &m, &call, &err);
	if (verify == HUB_OK)
		st = instance_read_webhook_worker(inst, &m, &call, &err);
	host_clock_fix_thread(0);
	run = kit_run_json(verify, st, NULL, &call, &err);
	outcome = run ? kit_webhook_outcome(run) : NULL;
	if (!outcome)
		snprintf(why, wsize, "out of memory describing the outcome");
out:
	json_decref(run);
	call_release(&call);
	msg_release(&m);
	return outcome;
}

/* ---- the workers ------------------------------------------------------------ */

static int past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Keeps the first finding of delivery i (takes `got`) and stops everyone. */
static void report_finding(struct shared *sh, size_t i, unsigned thread, unsigned round,
			   char *got, const char *why)
{
	struct finding *f = &sh->found[i];

	pthread_mutex_lock(&sh->mu);
	if (!f->differed && !f->errors) {
		f->thread = thread;
		f->round = round;
	}
	if (got) {
		if (!f->got && !f->errors) {
			f->got = got;
			got = NULL;
		}
		f->differed++;
	} else {
		if (!f->errors && !f->got)
			snprintf(f->why, sizeof(f->why), "%s", why);
		f->errors++;
	}
	pthread_mutex_unlock(&sh->mu);
	free(got);
	atomic_store(&sh->stop, 1);
}

/* xorshift32: each thread's own, reproducible, order of the deliveries. */
static uint32_t next_random(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct shared *sh = wk->sh;
	uint32_t seed = 0x9E3779B9u * (wk->index + 1);
	size_t *order = malloc(sh->n * sizeof(*order)), i, j, k;
	char why[160], *got;
	unsigned r;

	pthread_mutex_lock(&sh->mu);
	while (!sh->go)
		pthread_cond_wait(&sh->cv, &sh->mu);
	pthread_mutex_unlock(&sh->mu);
	if (!order) {
		report_finding(sh, 0, wk->index, 0, NULL, "out of memory starting the thread");
		return NULL;
	}
	for (i = 0; i < sh->n; i++)
		order[i] = i;
	running_thread = wk->index;
	for (r = 0; r < sh->rounds && !atomic_load(&sh->stop); r++) {
		for (i = sh->n; i > 1; i--) {
			j = next_random(&seed) % i;
			k = order[i - 1];
			order[i - 1] = order[j];
			order[j] = k;
		}
		for (i = 0; i < sh->n && !atomic_load(&sh->stop); i++) {
			size_t c = order[i];

			if (past(&sh->deadline)) {
				atomic_store(&sh->timed_out, 1);
				atomic_store(&sh->stop, 1);
				break;
			}
			running_label = sh->w[c].label;
			got = deliver(&sh->w[c], sh->inst[c], sh->schemas, why, sizeof(why));
			running_label = NULL;
			wk->calls++;
			if (!got)
				report_finding(sh, c, wk->index, r + 1, NULL, why);
			else if (strcmp(got, sh->expect[c]) != 0)
				report_finding(sh, c, wk->index, r + 1, got, NULL);
			else
				free(got);
		}
		if (i == sh->n)
			wk->rounds_done = r + 1;
	}
	free(order);
	return NULL;
}

/* ---- the check -------------------------------------------------------------- */

/* Detail lines: where outcome `got` differs from `want` (both JSON text). */
static void diff_outcomes(const char *want, const char *got)
{
	json_t *a = json_loads(want, 0, NULL), *b = json_loads(got, 0, NULL);

	if (a && b)
		kit_diff("outcome", a, b, 0, 10);
	else
		kit_detail("expected %s, got %s", want, got);
	json_decref(a);
	json_decref(b);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

void kit_check_reentrant(struct plugin_registry *reg, const char *plugin,
			 const struct kit_wcase *w, size_t n, const struct kit_opts *opts)
{
	struct connector **conns = calloc(n ? n : 1, sizeof(*conns));
	struct worker *workers = calloc(opts->threads ? opts->threads : 1, sizeof(*workers));
	unsigned t, nthreads = 0, bad = 0, rounds_min = 0;
	struct shared sh;
	struct timespec t0;
	unsigned long calls = 0;
	struct hub_error err;
	char why[160], name[32];
	double ms;
	size_t i;

	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cv, NULL);
	sh.w = w;
	sh.n = n;
	sh.inst = calloc(n ? n : 1, sizeof(*sh.inst));
	sh.expect = calloc(n ? n : 1, sizeof(*sh.expect));
	sh.found = calloc(n ? n : 1, sizeof(*sh.found));
	sh.schemas = plugin_registry_schemas(reg);
	sh.rounds = opts->rounds;
	if (!conns || !workers || !sh.inst || !sh.expect || !sh.found) {
		kit_fail("webhooks reentrant", "out of memory");
		goto out;
	}
	if (n == 0) {
		kit_skip("webhooks reentrant", "HUB_CAP_WEBHOOKS_REENTRANT declared, but no webhook "
			 "case to run on several threads: add webhook cases");
		goto out;
	}
	if (opts->threads == 0 || opts->rounds == 0) {
		kit_skip("webhooks reentrant", "HUB_CAP_WEBHOOKS_REENTRANT declared; concurrent run "
			 "turned off (--threads 0 or --rounds 0)");
		goto out;
	}

	/* one connector per delivery, from its case's config */
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "kit_rt%zu", i);
		if (connector_create(reg, name, "kit", plugin, w[i].config, &conns[i], &err) < 0) {
			conns[i] = NULL;
			kit_fail(w[i].label, "webhooks reentrant: the connector could not be created: %s",
				 err.message);
			goto out;
		}
		sh.inst[i] = connector_acquire(conns[i]);
	}

	/* the worker way, one at a time: the reference outcomes */
	for (i = 0; i < n; i++) {
		sh.expect[i] = deliver(&w[i], sh.inst[i], sh.schemas, why, sizeof(why));
		if (!sh.expect[i]) {
			kit_fail(w[i].label, "webhooks reentrant: %s", why);
			goto out;
		}
		if (strcmp(sh.expect[i], w[i].outcome) != 0) {
			diff_outcomes(w[i].outcome, sh.expect[i]);
			kit_fail(w[i].label, "webhooks reentrant: called the way hubd's webhook workers "
				 "call it (off the event loop, where cursor() and access_token() "
				 "answer NULL), the outcome differs from the event-loop run:");
			bad++;
		}
	}

	/* all threads at once */
	clock_gettime(CLOCK_MONOTONIC, &sh.deadline);
	sh.deadline.tv_sec += (time_t)opts->seconds;
	sh.deadline.tv_nsec += (long)((opts->seconds - (double)(time_t)opts->seconds) * 1e9);
	if (sh.deadline.tv_nsec >= 1000000000L) {
		sh.deadline.tv_sec++;
		sh.deadline.tv_nsec -= 1000000000L;
	}
	crash_handlers_install();
	for (t = 0; t < opts->threads; t++) {
		workers[t].sh = &sh;
		workers[t].index = t + 1;
		if (pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]) != 0) {
			atomic_store(&sh.stop, 1);
			break;
		}
		nthreads++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&sh.mu);
	sh.go = 1;
	pthread_cond_broadcast(&sh.cv);
	pthread_mutex_unlock(&sh.mu);
	for (t = 0; t < nthreads; t++)
		pthread_join(workers[t].tid, NULL);
	ms = ms_since(&t0);
	crash_handlers_restore();
	if (nthreads < opts->threads) {
		kit_fail("webhooks reentrant", "could only start %u of %u threads", nthreads,
			 opts->threads);
		goto out;
	}
	for (t = 0; t < nthreads; t++) {
		calls += workers[t].calls;
		if (t == 0 || workers[t].rounds_done < rounds_min)
			rounds_min = workers[t].rounds_done;
	}

	for (i = 0; i < n; i++) {
		struct finding *f = &sh.found[i];

		if (f->got) {
			diff_outcomes(sh.expect[i], f->got);
			kit_fail(w[i].label, "webhooks reentrant: on thread %u, round %u, with %u "
				 "threads running the webhook cases at once, the outcome differs "
				 "from the sequential run:", f->thread, f->round, nthreads);
			bad++;
		} else if (f->errors) {
			kit_fail(w[i].label, "webhooks reentrant: thread %u, round %u: %s", f->thread,
				 f->round, f->why);
			bad++;
		}
	}
	if (bad) {
		kit_fail("webhooks reentrant", "%u of %zu deliveries did not answer the same from "
			 "%u threads at once as one at a time (above): with "
			 "HUB_CAP_WEBHOOKS_REENTRANT, verify_webhook and read_webhook may only read "
			 "what create() set up - no static buffers or caches, no writes to the "
			 "instance - and use only the host functions the flag lists; otherwise do "
			 "not declare it", bad, n, nthreads);
		goto out;
	}
	kit_pass("webhooks reentrant", "%u threads x %u round(s) x %zu deliveries: %lu calls at "
		 "once in %.0f ms (%.0f calls/s), every outcome identical to the sequential "
		 "run%s", nthreads, atomic_load(&sh.timed_out) ? rounds_min : opts->rounds, n, calls,
		 ms, ms > 0 ? (double)calls * 1000.0 / ms : 0.0,
		 atomic_load(&sh.timed_out) ? " (stopped at the time limit)" : "");
out:
	for (i = 0; sh.found && i < n; i++)
		free(sh.found[i].got);
	for (i = 0; sh.expect && i < n; i++)
		free(sh.expect[i]);
	for (i = 0; sh.inst && i < n; i++)
		instance_release(sh.inst[i]);
	for (i = 0; conns && i < n; i++) {
		if (conns[i]) {
			snprintf(name, sizeof(name), "kit_rt%zu", i);
			connector_destroy(reg, name, &err);
		}
	}
	free(sh.found);
	free(sh.expect);
	free(sh.inst);
	free(workers);
	free(conns);
	pthread_cond_destroy(&sh.cv);
	pthread_mutex_destroy(&sh.mu);
}
