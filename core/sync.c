/*
 * sync.c - the sync engine (see sync.h). Each stream of each attached
 * connector is a small state machine driven by one evtimer:
 *
 *   IDLE --timer--> [TRACKING: lease due numbers] --> BUILD --> WAIT_LIMIT
 *        --> IN_FLIGHT (curl) --> plugin reads --> COMMITTING (store)
 *        --> IDLE (next page at once, or next interval)
 *
 * A step holds a reference on the connector instance that built its
 * request, so a hot reload never pulls a generation from under a request in
 * flight: the response is read by the generation that made the request, and
 * the next step acquires the new one. The cursor in memory moves only after
 * the store committed the records it covers.
 */
#include "config.h"
#include "sync.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hub/sdk.h>

#include "connector.h"
#include "host.h"
#include "http_client.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "plugin.h"
#include "ratelimit.h"
#include "retry.h"
#include "store.h"

#define HINT_DELAY_MS 2000
#define MAX_JOBS_IN_FLIGHT 32
#define BODY_EXCERPT 512
/* How long a tracking step holds its numbers (see sync.h). */
#define TRACKING_LEASE_MS SYNC_TRACKING_LEASE_MS

enum sr_state {
	SR_IDLE,
	SR_LEASING,     /* tracking: asking the store for due numbers */
	SR_WAIT_TOKEN,  /* waiting for an access token refresh */
	SR_WAIT_LIMIT,  /* waiting for a rate-limit token */
	SR_IN_FLIGHT,   /* request sent */
	SR_COMMITTING,  /* records handed to the store */
	SR_BACKOFF,     /* waiting to retry a failed attempt */
};

static const char *const sr_state_names[] = {
	"idle", "leasing", "waiting_token", "waiting_rate_limit", "in_flight", "committing", "backoff",
};

struct csched;

struct stream_run {
	struct csched *cs;
	char *name;
	char *operation;
	uint32_t kinds;
	int interval_s;
	int tracking;
	struct event *timer;
	enum sr_state state;
	unsigned attempt;
	int64_t first_failure_ms;
	int auth_retried;
	int64_t last_success_ms, last_attempt_ms, next_run_ms;
	int64_t start_offset_ms; /* >= 0: first run not scheduled yet, this long after sync_start() */
	int spread_pending;      /* its spread first run has not begun yet */
	char *last_error; /* no_error, or malloc'd (set_error) */
	uint64_t records, pages, rl_waits, retries;
	int64_t rl_wait_ms_total;
	int64_t backfill_since_ms; /* pending backfill start for the next step */
	/* on-demand sync */
	int sync_active;
	int64_t sync_since_ms, sync_started_ms;
	uint64_t sync_records;
	const char *sync_state; /* "idle", "running", "done", "failed" */
	double sync_progress;
	int trigger_pending;
	int64_t step_started_ms; /* when the current step began (its cursor or lease was chosen) */
	/* the step in flight */
	struct conn_instance *inst;
	struct hub_msg req;
	json_t *cursor;
	json_t *leased;
	char carrier[64]; /* the carrier the numbers were leased for */
	int64_t wait_started_ms;
};

struct csched {
	struct sync *sy;
	struct connector *c;
	struct sync_settings set;
	struct retry_circuit circuit;
	struct stream_run *streams;
	size_t n;
	int detached;
	unsigned refs;
	struct event *hint_timer;
	int refreshing;
	char *token_error; /* no_error, or malloc'd (token_failed) */
	int64_t token_failed_ms;
	unsigned token_failures;
	struct lease_entry *lease; /* NULL: polled without a lease (one hubd) */
	struct csched *next, *prev;
};

struct job {
	struct sync *sy;
	int64_t id;
	char *connector;
	char *action;
	json_t *payload;
	int attempts;
	int64_t created_ms;
	struct conn_instance *inst;
	struct hub_msg req;
	char *operation;
	struct event *timer;
};

struct sync {
	struct sync_opts o;
	struct retry_policy policy;
	struct csched *all;
	int stopping;
	int busy;
	int jobs_in_flight;
	int claiming;
	struct event *job_timer;
	uint64_t spread_seq; /* streams given a spread first run so far */
	int started;         /* sync_start() was called */
	struct lease_mgr *leases; /* several hubd on one store; NULL: one hubd */
};

/* ---- small helpers ------------------------------------------------------ */

/* What error fields point to while there is none: 10,000 connectors that
 * work carry no buffer for an error they do not have. */
static char no_error[1] = "";

#define ERROR_MAX 320

/* Replaces *slot with a copy of the formatted text (cut to ERROR_MAX bytes,
 * valid UTF-8), or with no_error when memory is short. */
static void error_vset(char **slot, const char *fmt, va_list ap)
{
	char buf[ERROR_MAX], *copy;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	hub_utf8_trim(buf);
	copy = strdup(buf);
	if (*slot != no_error)
		free(*slot);
	*slot = copy ? copy : no_error;
}

static void error_clear(char **slot)
{
	if (*slot != no_error)
		free(*slot);
	*slot = no_error;
}

static int64_t now_ms(void)
{
	return host_now_ms();
}

static void cs_ref(struct csched *cs)
{
	cs->refs++;
}

static void cs_unref(struct csched *cs)
{
	if (--cs->refs > 0)
		return;
	for (size_t i = 0; i < cs->n; i++) {
		struct stream_run *sr = &cs->streams[i];
		if (sr->timer)
			event_free(sr->timer);
		json_decref(sr->cursor);
		json_decref(sr->leased);
		msg_release(&sr->req);
		free(sr->name);
		free(sr->operation);
		error_clear(&sr->last_error);
	}
	error_clear(&cs->token_error);
	if (cs->hint_timer)
		event_free(cs->hint_timer);
	json_decref(cs->set.rate_limits);
	free(cs->streams);
	free(cs);
}

static struct metric *counter(struct sync *sy, const char *name, const char *help, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static struct metric *counter(struct sync *sy, const char *name, const char *help, const char *fmt, ...)
{
	char labels[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(labels, sizeof(labels), fmt, ap);
	va_end(ap);
	return metrics_get(sy->o.metrics, METRIC_COUNTER, name, help, labels);
}

/* The URL without its query string, for logs and dead letters: a plugin
 * that authenticates with a query parameter must not see it logged. */
static const char *url_for_log(const char *url, char *buf, size_t size)
{
	size_t n = url ? strcspn(url, "?#") : 0;

	snprintf(buf, size, "%.*s%s", (int)(n < size ? n : size - 1), url ? url : "", url && url[n] ? "?..." : "");
	return buf;
}

static void circuit_gauge(struct csched *cs);

/* A step ended without failing (a page committed, nothing to fetch, a
 * token obtained): a half-open circuit's probe succeeded. */
static void circuit_ok(struct csched *cs)
{
	int was_closed = retry_circuit_state(&cs->circuit) == RETRY_CIRCUIT_CLOSED;

	/* Always: a success also resets the count of consecutive failures. */
	retry_circuit_success(&cs->circuit);
	if (was_closed)
		return;
	log_info("sync", "%s: circuit closed again", connector_name(cs->c));
	circuit_gauge(cs);
}

/* Publishes the connector's circuit state: 0 closed, 1 open, 2 half-open. */
static void circuit_gauge(struct csched *cs)
{
	char name[160];

	metrics_escape_label(connector_name(cs->c), name, sizeof(name));
	metric_set(metrics_getf(cs->sy->o.metrics, METRIC_GAUGE, "hub_circuit_state",
				"Circuit breaker per connector: 0 closed, 1 open, 2 half-open", "connector=\"%s\"", name),
		   (double)retry_circuit_state(&cs->circuit));
}

static void set_error(struct stream_run *sr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct stream_run *sr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(&sr->last_error, fmt, ap);
	va_end(ap);
	log_warn("sync", "%s/%s: %s", connector_name(sr->cs->c), sr->name, sr->last_error);
}

static void schedule(struct stream_run *sr, int64_t delay_ms)
{
	struct timeval tv;

	if (delay_ms < 0)
		delay_ms = 0;
	sr->next_run_ms = now_ms() + delay_ms;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)((delay_ms % 1000) * 1000);
	evtimer_add(sr->timer, &tv);
}

static int64_t interval_ms(const struct stream_run *sr)
{
	/* Declared setting, then the plugin config's "poll_interval", then the
	 * stream's default. */
	const json_t *pi = json_object_get(sr->cs->c->config, "poll_interval");
	int s = sr->cs->set.poll_interval_s > 0 ? sr->cs->set.poll_interval_s
		: json_is_integer(pi) && json_integer_value(pi) > 0 ? (int)json_integer_value(pi)
		: sr->interval_s;

	if (s <= 0)
		s = sr->cs->sy->o.default_interval_s;
	return (int64_t)s * 1000;
}

/* Applies one override object: {burst, rate} for all buckets or
 * {"<bucket>": {burst, rate}}. */
static int bucket_override(const json_t *ov, const char *operation, struct rl_params *p)
{
	const json_t *o;

	if (!json_is_object(ov))
		return 0;
	o = json_object_get(ov, operation);
	if (!json_is_object(o))
		o = ov;
	if (json_is_number(json_object_get(o, "burst")) && json_is_number(json_object_get(o, "rate"))) {
		p->burst = json_number_value(json_object_get(o, "burst"));
		p->rate = json_number_value(json_object_get(o, "rate"));
		return 1;
	}
	return 0;
}

/* Rate-limit parameters of `operation` for a connector: the plugin's
 * bucket, overridden by the plugin config's "rate_limits" (where the plugin
 * offers one), then by the connector's declared "rate_limits". Returns 0
 * when a bucket applies. */
static int bucket_params(struct conn_instance *inst, const char *operation, struct rl_params *p)
{
	const struct hub_bucket_def *b = inst->gen->desc.buckets;
	const struct csched *cs = inst->conn->user;
	int found = 0;

	for (; b && b->name; b++) {
		if (strcmp(b->name, operation) == 0) {
			p->burst = b->burst;
			p->rate = b->rate;
			found = 1;
			break;
		}
	}
	found |= bucket_override(json_object_get(inst->conn->config, "rate_limits"), operation, p);
	if (cs)
		found |= bucket_override(cs->set.rate_limits, operation, p);
	return found && p->rate > 0 ? 0 : -1;
}

static void rl_key(char *buf, size_t size, const struct connector *c, const char *operation)
{
	snprintf(buf, size, "%s/%s", connector_name(c), operation);
}

/* Copies an http_resp into a response message. */
static void resp_to_msg(const struct http_resp *resp, struct hub_msg *m)
{
	const char *names[32], *values[32];
	size_t n = 0;

	msg_init(m);
	msg_set_status(m, resp->status);
	for (size_t i = 0; i < resp->nheaders; i++) {
		if (n == sizeof(names) / sizeof(names[0])) {
			msg_add_headers(m, names, values, n);
			n = 0;
		}
		names[n] = resp->headers[i].name;
		values[n++] = resp->headers[i].value;
	}
	msg_add_headers(m, names, values, n);
	if (resp->body_len)
		msg_set_body(m, resp->body, resp->body_len);
}

/* Sends a built request; headers are borrowed from the message. */
static int send_msg(struct sync *sy, const struct hub_msg *m, http_done_fn cb, void *arg)
{
	struct http_header hdrs[64];
	struct http_req req;
	size_t n = m->nheaders < 64 ? m->nheaders : 64;

	for (size_t i = 0; i < n; i++) {
		hdrs[i].name = m->headers[i].name;
		hdrs[i].value = m->headers[i].value;
	}
	memset(&req, 0, sizeof(req));
	req.method = m->method;
	req.url = m->url;
	req.headers = hdrs;
	req.nheaders = n;
	req.body = m->body;
	req.body_len = m->body_len;
	req.timeout_ms = sy->o.request_timeout_ms;
	return http_request(sy->o.http, &req, cb, arg);
}

/* Applies what the plugin read from rate-limit headers (and Retry-After). */
static void observe_limits(struct sync *sy, struct conn_instance *inst, const char *operation,
			   const struct hub_msg *resp)
{
	struct hub_call call;
	char key[256];

	call_init(&call, 0, NULL);
	instance_read_limits(inst, operation, resp, &call);
	for (size_t i = 0; i < call.nlimits; i++) {
		struct rl_params p = {0, 0};
		const char *bucket = call.limits[i].bucket ? call.limits[i].bucket : operation;
		if (bucket_params(inst, bucket, &p) < 0)
			continue;
		rl_key(key, sizeof(key), inst->conn, bucket);
		rl_observe(sy->o.rl, key, &p, call.limits[i].used, call.limits[i].capacity,
			   call.limits[i].rate, call.limits[i].retry_after_ms);
	}
	call_release(&call);
}

/* Retry-After of a response in ms (0: none). */
static int64_t retry_after_of(const struct hub_msg *resp)
{
	const char *v = msg_header(resp, "Retry-After");
	int64_t d = 0;

	if (v && retry_after_parse(v, now_ms(), &d) == 0)
		return d;
	return 0;
}

void sync_call_to_unit(struct hub_call *call, struct store_unit *u, const char *connector)
{
	struct hub_error err;

	for (size_t i = 0; i < call->nrecords; i++) {
		store_unit_add_record(u, call->records[i].kind, call->records[i].record, &err);
		call->records[i].record = NULL;
	}
	for (size_t i = 0; i < call->nrejects; i++) {
		char kind[32];
		snprintf(kind, sizeof(kind), "record:%s", call_kind_name(call->rejects[i].kind));
		log_warn("sync", "%s: refused %s: %s: %s", connector, kind, call->rejects[i].err.field,
			 call->rejects[i].err.message);
		store_unit_add_dead_letter(u, kind, call->rejects[i].record, call->rejects[i].err.message,
					   call->rejects[i].err.field, 0);
		call->rejects[i].record = NULL;
	}
	for (size_t i = 0; i < call->nactions; i++) {
		store_unit_add_job(u, call->actions[i].action, call->actions[i].payload, 0);
		call->actions[i].payload = NULL;
	}
	if (call->access_token)
		store_unit_set_access_token(u, call->access_token, call->access_token_expires_ms);
}

/* ---- access tokens -------------------------------------------------------- */

static void wake_token_waiters(struct csched *cs, int64_t delay_ms)
{
	for (size_t i = 0; i < cs->n; i++) {
		if (cs->streams[i].state == SR_WAIT_TOKEN) {
			/* A step interrupted by a 401 resumes with its own cursor (a
			 * backfill's start, for one), like a retry. */
			cs->streams[i].state = cs->streams[i].cursor || cs->streams[i].tracking ? SR_BACKOFF : SR_IDLE;
			schedule(&cs->streams[i], delay_ms);
		}
	}
}

static int token_needed(struct csched *cs)
{
	struct conn_instance *inst = cs->c->inst;

	if (!inst || !(inst->gen->desc.capabilities & HUB_CAP_TOKEN_REFRESH))
		return 0;
	if (!connector_access_token(cs->c))
		return 1;
	return cs->c->access_token_expires_ms > 0 &&
	       cs->c->access_token_expires_ms - now_ms() < (int64_t)cs->sy->o.token_margin_s * 1000;
}

struct token_req {
	struct csched *cs;
	struct conn_instance *inst;
	struct hub_msg req;
};

static void token_failed(struct csched *cs, enum retry_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void token_failed(struct csched *cs, enum retry_verdict v, const char *fmt, ...)
{
	va_list ap;
	int64_t delay;

	va_start(ap, fmt);
	error_vset(&cs->token_error, fmt, ap);
	va_end(ap);
	log_warn("sync", "%s: access token refresh failed: %s", connector_name(cs->c), cs->token_error);
	cs->token_failed_ms = now_ms();
	cs->token_failures++;
	retry_circuit_failure(&cs->circuit, v, cs->token_error, now_ms());
	circuit_gauge(cs);
	delay = retry_backoff_ms(&cs->sy->policy, cs->token_failures, 0);
	metric_add(counter(cs->sy, "hub_token_refresh_total", "Access token refreshes by result",
			   "connector=\"%s\",result=\"%s\"", connector_name(cs->c), "failed"), 1);
	wake_token_waiters(cs, delay);
}

static void token_done(void *arg, const struct http_resp *resp)
{
	struct token_req *tr = arg;
	struct csched *cs = tr->cs;
	struct hub_msg m;
	struct hub_call call;
	struct hub_error err;
	int rc;

	cs->refreshing = 0;
	cs->sy->busy--;
	if (cs->detached)
		goto out;
	if (resp->err != HTTP_ERR_NONE) {
		token_failed(cs, RETRY_TRANSIENT, "token endpoint: %s", resp->errmsg);
		goto out;
	}
	resp_to_msg(resp, &m);
	call_init(&call, 0, NULL);
	memset(&err, 0, sizeof(err));
	rc = instance_read_action(tr->inst, "refresh_token", NULL, &m, &call, &err);
	if (rc == HUB_OK && call.access_token) {
		struct store_unit *u = store_unit_new(cs->c->merchant, connector_name(cs->c));
		struct hub_error serr;
		connector_set_access_token(cs->c, call.access_token, call.access_token_expires_ms);
		/* Sealed in the store, so a restart reuses it. */
		if (u) {
			store_unit_set_access_token(u, call.access_token, call.access_token_expires_ms);
			memset(&serr, 0, sizeof(serr));
			store_submit(cs->sy->o.store, u, NULL, NULL, &serr);
		}
		circuit_ok(cs);
		error_clear(&cs->token_error);
		cs->token_failures = 0;
		metric_add(counter(cs->sy, "hub_token_refresh_total", "Access token refreshes by result",
				   "connector=\"%s\",result=\"%s\"", connector_name(cs->c), "ok"), 1);
		log_info("sync", "%s: access token refreshed (valid %lld s)", connector_name(cs->c),
			 (long long)((call.access_token_expires_ms - now_ms()) / 1000));
		wake_token_waiters(cs, 0);
	} else {
		token_failed(cs, rc == HUB_RETRY ? RETRY_TRANSIENT : RETRY_AUTH, "HTTP %d: %s%s%s",
			     resp->status, err.field[0] ? err.field : "", err.field[0] ? ": " : "",
			     err.message[0] ? err.message : "no access token in the response");
	}
	call_release(&call);
	msg_release(&m);
out:
	instance_release(tr->inst);
	msg_release(&tr->req);
	cs_unref(cs);
	free(tr);
}

/* Starts a refresh unless one is running; streams in SR_WAIT_TOKEN are woken
 * when it ends. */
static void token_refresh(struct csched *cs)
{
	struct token_req *tr;
	struct hub_error err;
	int rc;

	if (cs->refreshing || cs->sy->stopping)
		return;
	tr = calloc(1, sizeof(*tr));
	if (!tr)
		return;
	tr->cs = cs;
	tr->inst = connector_acquire(cs->c);
	if (!tr->inst) {
		free(tr);
		return;
	}
	msg_init(&tr->req);
	memset(&err, 0, sizeof(err));
	rc = instance_build_action(tr->inst, "refresh_token", NULL, &tr->req, &err);
	if (rc != HUB_OK) {
		instance_release(tr->inst);
		msg_release(&tr->req);
		free(tr);
		token_failed(cs, RETRY_PERMANENT, "cannot build the token request: %s", err.message);
		return;
	}
	cs_ref(cs);
	cs->refreshing = 1;
	cs->sy->busy++;
	if (send_msg(cs->sy, &tr->req, token_done, tr) < 0) {
		struct http_resp fake = {.err = HTTP_ERR_INVALID, .errmsg = "request refused by the HTTP client"};
		token_done(tr, &fake);
	}
}

/* ---- stream steps ---------------------------------------------------------- */

static void step_begin(struct stream_run *sr);
static void step_acquire(struct stream_run *sr);

/* Ends an on-demand sync - only when the step that just finished began
 * after the sync was asked for (a step already under way when the trigger
 * came does not cover it). */
static void sync_complete(struct stream_run *sr)
{
	if (!sr->sync_active || sr->step_started_ms < sr->sync_started_ms)
		return;
	sr->sync_active = 0;
	sr->sync_state = "done";
	sr->sync_progress = 1.0;
}

/* Ends the current step: releases what it holds and schedules the next. */
static void step_end(struct stream_run *sr, int64_t next_delay_ms)
{
	struct csched *cs = sr->cs;

	if (sr->inst) {
		instance_release(sr->inst);
		sr->inst = NULL;
	}
	msg_release(&sr->req);
	msg_init(&sr->req);
	json_decref(sr->cursor);
	sr->cursor = NULL;
	json_decref(sr->leased);
	sr->leased = NULL;
	sr->state = SR_IDLE;
	if (cs->detached || cs->sy->stopping)
		return;
	if (sr->trigger_pending) {
		sr->trigger_pending = 0;
		next_delay_ms = 0;
	}
	if (cs->set.paused && !sr->sync_active)
		return;
	schedule(sr, next_delay_ms);
}

/* Gives back the lease of a failed tracking step's numbers so that they are
 * due again now instead of when their lease (TRACKING_LEASE_MS) runs out.
 * Fire and forget: if it is lost, the lease still ends. */
static void release_leased(struct stream_run *sr)
{
	json_t *numbers = json_array(), *it, *params;
	struct hub_error err;
	size_t i;

	json_array_foreach(sr->leased, i, it)
		json_array_append(numbers, json_object_get(it, "tracking_number"));
	params = json_pack("{s:s,s:o,s:I}", "carrier", sr->carrier, "numbers", numbers, "next_check_ms",
			   (json_int_t)now_ms());
	memset(&err, 0, sizeof(err));
	if (!params || store_call(sr->cs->sy->o.store, STORE_OP_TRACKING_RELEASE, params, NULL, NULL, &err) < 0)
		log_warn("sync", "%s/%s: cannot give back %zu leased number(s): %s", connector_name(sr->cs->c),
			 sr->name, json_array_size(sr->leased), params ? err.message : "out of memory");
}

/* A failed attempt: retry the same step with backoff, or give up this round. */
static void step_failed(struct stream_run *sr, enum retry_verdict v, int64_t retry_after_ms)
{
	struct csched *cs = sr->cs;
	int64_t now = now_ms(), delay;

	if (retry_circuit_failure(&cs->circuit, v, sr->last_error, now))
		log_warn("sync", "%s: circuit opened: %s", connector_name(cs->c), retry_circuit_reason(&cs->circuit));
	circuit_gauge(cs);
	if (sr->attempt == 0)
		sr->first_failure_ms = now;
	sr->attempt++;
	if (v == RETRY_TRANSIENT) {
		delay = retry_backoff_ms(&cs->sy->policy, sr->attempt, retry_after_ms);
		if (!retry_exhausted(&cs->sy->policy, sr->attempt, sr->first_failure_ms, now + delay)) {
			sr->retries++;
			metric_add(counter(cs->sy, "hub_retries_total", "Retried stream steps",
					   "connector=\"%s\",stream=\"%s\"", connector_name(cs->c), sr->name), 1);
			/* The retry resends the same cursor, or the same leased
			 * tracking numbers (they stay leased to this step). */
			if (sr->inst) {
				instance_release(sr->inst);
				sr->inst = NULL;
			}
			msg_release(&sr->req);
			msg_init(&sr->req);
			sr->state = SR_BACKOFF;
			if (!cs->detached && !cs->sy->stopping)
				schedule(sr, delay);
			return;
		}
	}
	/* Permanent, or retries exhausted: this round is over. After transient
	 * failures (the circuit guards against an outage) its numbers are due
	 * again next round; after a permanent one (a dead letter) they wait out
	 * their lease. */
	sr->attempt = 0;
	if (sr->tracking && v != RETRY_PERMANENT && json_array_size(sr->leased) > 0)
		release_leased(sr);
	if (sr->sync_active) {
		sr->sync_active = 0;
		sr->sync_state = "failed";
	}
	step_end(sr, interval_ms(sr));
}

struct commit_ctx {
	struct stream_run *sr;
	json_t *cursor; /* the new cursor, committed with the unit */
	int more;
	unsigned records;
};

static double cursor_progress(const struct stream_run *sr, const json_t *cursor)
{
	static const char *const keys[] = {"max_seen", "updated_at_min", "modified_after",
					   "last_updated_after", "lastUpdatedAfter", "since", NULL};
	int64_t t = 0, now = now_ms();

	for (int i = 0; keys[i] && !t; i++) {
		const char *s = json_string_value(json_object_get(cursor, keys[i]));
		if (s)
			hub_time_parse(s, 1, &t, keys[i], NULL);
	}
	if (!t || now <= sr->sync_since_ms)
		return 0.5;
	double p = (double)(t - sr->sync_since_ms) / (double)(now - sr->sync_since_ms);
	return p < 0 ? 0 : p > 0.99 ? 0.99 : p;
}

static void commit_done(void *arg, const struct store_unit_result *res)
{
	struct commit_ctx *cc = arg;
	struct stream_run *sr = cc->sr;
	struct csched *cs = sr->cs;
	struct sync *sy = cs->sy;

	sy->busy--;
	if (res->status == STORE_OK) {
		if (!cs->detached && cc->cursor)
			connector_set_cursor(cs->c, sr->name, cc->cursor);
		sr->records += res->written + res->shipments_tracked;
		sr->pages++;
		sr->last_success_ms = now_ms();
		error_clear(&sr->last_error);
		sr->attempt = 0;
		sr->auth_retried = 0;
		circuit_ok(cs);
		metric_add(counter(sy, "hub_records_written_total", "Records inserted or updated",
				   "connector=\"%s\",stream=\"%s\"", connector_name(cs->c), sr->name),
			   res->written);
		if (res->dead_letters)
			metric_add(counter(sy, "hub_dead_letters_total", "Dead letters written",
					   "connector=\"%s\"", connector_name(cs->c)),
				   res->dead_letters);
		if (sr->sync_active) {
			sr->sync_records += res->written + res->shipments_tracked;
			if (cc->more)
				sr->sync_progress = cursor_progress(sr, cc->cursor);
			else
				sync_complete(sr);
		}
		sync_kick_jobs(sy);
		step_end(sr, cc->more ? 0 : interval_ms(sr));
	} else {
		set_error(sr, "store: %s: %s", store_status_name(res->status), res->err.message);
		step_failed(sr, res->status == STORE_UNAVAILABLE || res->status == STORE_FAILED
					? RETRY_TRANSIENT : RETRY_PERMANENT, 0);
	}
	json_decref(cc->cursor);
	cs_unref(cs);
	free(cc);
}

/* Hands a unit to the store; the step ends in commit_done. */
static void commit_unit(struct stream_run *sr, struct store_unit *u, json_t *cursor, int more)
{
	struct csched *cs = sr->cs;
	struct commit_ctx *cc = calloc(1, sizeof(*cc));
	struct hub_error err;

	if (cursor)
		store_unit_set_cursor(u, sr->name, json_incref(cursor));
	if (!cc) {
		store_unit_free(u);
		json_decref(cursor);
		set_error(sr, "out of memory");
		step_failed(sr, RETRY_TRANSIENT, 0);
		return;
	}
	cc->sr = sr;
	cc->cursor = cursor;
	cc->more = more;
	sr->state = SR_COMMITTING;
	cs_ref(cs);
	cs->sy->busy++;
	memset(&err, 0, sizeof(err));
	if (store_submit(cs->sy->o.store, u, commit_done, cc, &err) < 0) {
		cs->sy->busy--;
		cs_unref(cs);
		json_decref(cursor);
		free(cc);
		set_error(sr, "store refused the commit: %s", err.message);
		step_failed(sr, RETRY_TRANSIENT, 0);
	}
}

/* Next-check delay of tracked numbers by the most urgent status seen. */
static int64_t tracking_next_check(const struct hub_call *call)
{
	int64_t best = 4 * 3600 * 1000LL;

	for (size_t i = 0; i < call->nrecords; i++) {
		const json_t *r = call->records[i].record;
		const char *st = json_string_value(json_object_get(r, "status"));
		int64_t d = 2 * 3600 * 1000LL;
		if (json_is_true(json_object_get(r, "not_found")))
			d = 3600 * 1000LL;
		else if (!st)
			;
		else if (strcmp(st, "out_for_delivery") == 0)
			d = 15 * 60 * 1000LL;
		else if (strcmp(st, "delivery_failed") == 0 || strcmp(st, "exception") == 0)
			d = 3600 * 1000LL;
		else if (strcmp(st, "pre_transit") == 0)
			d = 4 * 3600 * 1000LL;
		if (d < best)
			best = d;
	}
	return best;
}

/* A dead letter for a step that failed permanently: what was asked, why. */
static void dead_letter_step(struct stream_run *sr, const struct hub_msg *resp, const char *reason,
			     const char *field)
{
	struct csched *cs = sr->cs;
	struct store_unit *u = store_unit_new(cs->c->merchant, connector_name(cs->c));
	char kind[96];
	size_t len = 0;
	const char *body = resp ? msg_body(resp, &len) : "";
	json_t *payload;
	struct hub_error err;

	if (!u)
		return;
	char excerpt[BODY_EXCERPT + 1], ubuf[256];

	snprintf(kind, sizeof(kind), "stream:%s", sr->name);
	snprintf(excerpt, sizeof(excerpt), "%.*s", (int)(len > BODY_EXCERPT ? BODY_EXCERPT : len), body);
	hub_utf8_trim(excerpt);
	payload = json_pack("{s:s,s:O?,s:s?,s:s,s:s}", "stream", sr->name, "cursor", sr->cursor, "method",
			    sr->req.method, "url", url_for_log(sr->req.url, ubuf, sizeof(ubuf)), "body_excerpt", excerpt);
	store_unit_add_dead_letter(u, kind, payload, reason, field, resp ? resp->status : 0);
	memset(&err, 0, sizeof(err));
	/* Fire and forget: the step's outcome does not depend on it. */
	store_submit(cs->sy->o.store, u, NULL, NULL, &err);
	metric_add(counter(cs->sy, "hub_dead_letters_total", "Dead letters written",
			   "connector=\"%s\"", connector_name(cs->c)), 1);
}

static void step_response(void *arg, const struct http_resp *resp)
{
	struct stream_run *sr = arg;
	struct csched *cs = sr->cs;
	struct sync *sy = cs->sy;
	struct hub_msg m;
	struct hub_call call;
	struct hub_error err;
	const char *op = sr->req.operation ? sr->req.operation : sr->operation;
	char status[16];
	int rc;

	sy->busy--;
	snprintf(status, sizeof(status), "%d", resp->status);
	metric_add(counter(sy, "hub_upstream_requests_total", "Upstream requests by result",
			   "connector=\"%s\",operation=\"%s\",status=\"%s\"", connector_name(cs->c), op,
			   resp->err == HTTP_ERR_NONE ? status : http_err_name(resp->err)), 1);
	if (cs->detached) {
		step_end(sr, 0);
		cs_unref(cs);
		return;
	}
	if (resp->err != HTTP_ERR_NONE) {
		char u[256];
		set_error(sr, "%s %s: %s", sr->req.method, url_for_log(sr->req.url, u, sizeof(u)), resp->errmsg);
		step_failed(sr, http_err_transient(resp->err) ? RETRY_TRANSIENT : RETRY_PERMANENT, 0);
		cs_unref(cs);
		return;
	}
	resp_to_msg(resp, &m);
	observe_limits(sy, sr->inst, op, &m);
	call_init(&call, sr->kinds, plugin_registry_schemas(sy->o.reg));
	memset(&err, 0, sizeof(err));
	rc = instance_read_response(sr->inst, sr->name, sr->cursor, &m, &call, &err);
	switch (rc) {
	case HUB_OK: {
		struct store_unit *u = store_unit_new(cs->c->merchant, connector_name(cs->c));
		json_t *cursor = call.cursor_set ? json_incref(call.cursor) : NULL;
		if (!u) {
			json_decref(cursor);
			set_error(sr, "out of memory");
			step_failed(sr, RETRY_TRANSIENT, 0);
			break;
		}
		if (sr->tracking)
			store_unit_set_next_check(u, now_ms() + tracking_next_check(&call));
		sync_call_to_unit(&call, u, connector_name(cs->c));
		/* Tracking keeps no cursor; a stream without a new cursor keeps its own. */
		commit_unit(sr, u, cursor, sr->tracking ? json_array_size(sr->leased) > 0 : call.more);
		break;
	}
	case HUB_AUTH_EXPIRED:
		if (!sr->auth_retried && (sr->inst->gen->desc.capabilities & HUB_CAP_TOKEN_REFRESH)) {
			sr->auth_retried = 1;
			connector_set_access_token(cs->c, NULL, 0);
			if (sr->inst) {
				instance_release(sr->inst);
				sr->inst = NULL;
			}
			msg_release(&sr->req);
			msg_init(&sr->req);
			sr->state = SR_WAIT_TOKEN;
			token_refresh(cs);
			break;
		}
		set_error(sr, "HTTP %d: credentials refused: %s", resp->status,
			  err.message[0] ? err.message : "check the connector's credentials");
		step_failed(sr, RETRY_AUTH, 0);
		break;
	case HUB_RETRY:
		set_error(sr, "HTTP %d: %s%s%s", resp->status, err.field, err.field[0] ? ": " : "",
			  err.message[0] ? err.message : "transient failure");
		step_failed(sr, RETRY_TRANSIENT, retry_after_of(&m));
		break;
	default:
		set_error(sr, "HTTP %d: %s: %s%s%s", resp->status, host_status_name(rc) ? host_status_name(rc) : "?",
			  err.field, err.field[0] ? ": " : "", err.message);
		dead_letter_step(sr, &m, sr->last_error, err.field[0] ? err.field : NULL);
		step_failed(sr, RETRY_PERMANENT, 0);
		break;
	}
	call_release(&call);
	msg_release(&m);
	cs_unref(cs);
}

static void rl_done(void *arg, const struct rl_result *res);

static void step_send(struct stream_run *sr)
{
	struct csched *cs = sr->cs;

	sr->state = SR_IN_FLIGHT;
	sr->last_attempt_ms = now_ms();
	cs_ref(cs);
	cs->sy->busy++;
	if (send_msg(cs->sy, &sr->req, step_response, sr) < 0) {
		struct http_resp fake = {.err = HTTP_ERR_INVALID, .errmsg = "request refused by the HTTP client"};
		step_response(sr, &fake);
	}
}

/* Asks the limiter for a token for the step's request. */
static void step_acquire(struct stream_run *sr)
{
	struct rl_params p = {0, 0};
	char key[256];
	const char *op = sr->req.operation ? sr->req.operation : sr->operation;

	if (!op || bucket_params(sr->inst, op, &p) < 0) {
		step_send(sr);
		return;
	}
	rl_key(key, sizeof(key), sr->cs->c, op);
	sr->state = SR_WAIT_LIMIT;
	if (!sr->wait_started_ms)
		sr->wait_started_ms = now_ms();
	cs_ref(sr->cs);
	if (rl_acquire(sr->cs->sy->o.rl, key, &p, rl_done, sr) < 0) {
		cs_unref(sr->cs);
		step_send(sr);
	}
}

static void rl_done(void *arg, const struct rl_result *res)
{
	struct stream_run *sr = arg;
	struct csched *cs = sr->cs;

	if (cs->detached || res->status == RL_CANCELLED || cs->sy->stopping) {
		step_end(sr, 0);
	} else if (res->status == RL_WAIT) {
		sr->rl_waits++;
		metric_add(counter(cs->sy, "hub_ratelimit_waits_total", "Rate-limit waits",
				   "connector=\"%s\",operation=\"%s\"", connector_name(cs->c),
				   sr->req.operation ? sr->req.operation : sr->operation), 1);
		schedule(sr, res->wait_ms);
	} else {
		int64_t waited = now_ms() - sr->wait_started_ms;
		sr->rl_wait_ms_total += waited;
		metric_add(counter(cs->sy, "hub_ratelimit_wait_seconds_total", "Time spent waiting for rate limits",
				   "connector=\"%s\",operation=\"%s\"", connector_name(cs->c),
				   sr->req.operation ? sr->req.operation : sr->operation),
			   (double)waited / 1000.0);
		sr->wait_started_ms = 0;
		step_send(sr);
	}
	cs_unref(cs);
}

/* Builds the request from the cursor (or the leased tracking numbers). */
static void step_build(struct stream_run *sr)
{
	struct csched *cs = sr->cs;
	struct hub_error err;
	int rc;

	if (!sr->inst)
		sr->inst = connector_acquire(cs->c);
	if (!sr->inst) {
		set_error(sr, "connector has no plugin instance");
		step_end(sr, interval_ms(sr));
		return;
	}
	msg_release(&sr->req);
	msg_init(&sr->req);
	memset(&err, 0, sizeof(err));
	rc = instance_build_request(sr->inst, sr->name, sr->cursor, &sr->req, &err);
	switch (rc) {
	case HUB_OK:
		step_acquire(sr);
		break;
	case HUB_DONE:
		circuit_ok(cs);
		sr->last_success_ms = now_ms();
		sync_complete(sr);
		step_end(sr, interval_ms(sr));
		break;
	case HUB_AUTH_EXPIRED:
		/* No token yet (or the last refresh failed): wait for one; the
		 * refresh backs off and feeds the circuit itself. A token the
		 * plugin refuses is dropped and refreshed once. */
		if ((sr->inst->gen->desc.capabilities & HUB_CAP_TOKEN_REFRESH) &&
		    (!connector_access_token(cs->c) || !sr->auth_retried)) {
			if (connector_access_token(cs->c)) {
				sr->auth_retried = 1;
				connector_set_access_token(cs->c, NULL, 0);
			}
			instance_release(sr->inst);
			sr->inst = NULL;
			sr->state = SR_WAIT_TOKEN;
			token_refresh(cs);
			break;
		}
		set_error(sr, "credentials refused: %s", cs->token_error[0] ? cs->token_error : err.message);
		step_failed(sr, RETRY_AUTH, 0);
		break;
	default:
		set_error(sr, "cannot build the request: %s%s%s", err.field, err.field[0] ? ": " : "",
			  err.message);
		step_failed(sr, RETRY_PERMANENT, 0);
		break;
	}
}

static void leased_done(void *arg, enum store_status status, json_t *result,
			const struct hub_error *err)
{
	struct stream_run *sr = arg;
	struct csched *cs = sr->cs;
	json_t *items = json_object_get(result, "items"), *numbers, *it;
	size_t i;

	cs->sy->busy--;
	log_debug("sync", "%s/%s: leased %zu number(s)%s", connector_name(cs->c), sr->name, json_array_size(items),
		  sr->sync_active ? " (on-demand recheck)" : "");
	if (cs->detached || cs->sy->stopping) {
		step_end(sr, 0);
		cs_unref(cs);
		return;
	}
	if (status != STORE_OK) {
		set_error(sr, "store: %s", err ? err->message : store_status_name(status));
		step_failed(sr, RETRY_TRANSIENT, 0);
		cs_unref(cs);
		return;
	}
	if (json_array_size(items) == 0) {
		circuit_ok(cs);
		sr->last_success_ms = now_ms();
		sync_complete(sr);
		step_end(sr, interval_ms(sr));
		cs_unref(cs);
		return;
	}
	json_decref(sr->leased);
	sr->leased = json_incref(items);
	numbers = json_array();
	json_array_foreach(items, i, it)
		json_array_append(numbers, json_object_get(it, "tracking_number"));
	json_decref(sr->cursor);
	sr->cursor = json_pack("{s:o}", "tracking_numbers", numbers);
	step_build(sr);
	cs_unref(cs);
}

/* The tracking stream asks the store for this carrier's due numbers. */
static void step_lease(struct stream_run *sr)
{
	struct csched *cs = sr->cs;
	struct hub_error err;
	uint32_t batch = 1;
	json_t *params;

	if (!sr->inst)
		sr->inst = connector_acquire(cs->c);
	if (sr->inst && sr->inst->gen->desc.tracking_batch_max > 1)
		batch = sr->inst->gen->desc.tracking_batch_max;
	snprintf(sr->carrier, sizeof(sr->carrier), "%s", sr->inst ? sr->inst->gen->desc.name : "");
	sr->step_started_ms = now_ms();
	/* The carrier account belongs to a merchant: it follows that merchant's
	 * shipments, whatever marketplace they came from. */
	params = json_pack("{s:s,s:s,s:i,s:i}", "carrier", sr->carrier,
			   "merchant", cs->c->merchant, "limit", (int)batch, "lease_ms", TRACKING_LEASE_MS);
	/* An on-demand sync rechecks every active number once, due or not. */
	if (sr->sync_active)
		json_object_set_new(params, "checked_before_ms", json_integer(sr->sync_started_ms));
	sr->state = SR_LEASING;
	cs_ref(cs);
	cs->sy->busy++;
	memset(&err, 0, sizeof(err));
	if (store_call(cs->sy->o.store, STORE_OP_TRACKING_DUE, params, leased_done, sr, &err) < 0) {
		cs->sy->busy--;
		cs_unref(cs);
		set_error(sr, "store: %s", err.message);
		step_failed(sr, RETRY_TRANSIENT, 0);
	}
}

static int lease_parked(struct stream_run *sr);

static void step_begin(struct stream_run *sr)
{
	struct csched *cs = sr->cs;
	int64_t now = now_ms();

	sr->spread_pending = 0;
	if (cs->detached || cs->sy->stopping || lease_parked(sr))
		return;
	if (sr->state == SR_BACKOFF) {
		/* Retry of the same step: same cursor, same leased numbers; not
		 * while the circuit is open. */
		if (!retry_circuit_allow(&cs->circuit, now)) {
			int64_t wait = retry_circuit_wait_ms(&cs->circuit, now);
			schedule(sr, wait >= 0 ? wait : 1000);
			return;
		}
		sr->state = SR_IDLE;
		if (sr->tracking && !(sr->leased && sr->cursor)) {
			step_lease(sr);
			return;
		}
		step_build(sr);
		return;
	}
	if (sr->state == SR_WAIT_LIMIT) {
		step_acquire(sr);
		return;
	}
	if (sr->state != SR_IDLE)
		return;
	if (cs->set.paused && !sr->sync_active)
		return;
	if (!retry_circuit_allow(&cs->circuit, now)) {
		/* Open: wait out the cool-down; half-open (-1): a probe is out, look again in a second. */
		int64_t wait = retry_circuit_wait_ms(&cs->circuit, now);
		schedule(sr, wait >= 0 ? wait : 1000);
		return;
	}
	if (token_needed(cs)) {
		sr->state = SR_WAIT_TOKEN;
		token_refresh(cs);
		return;
	}
	json_decref(sr->cursor);
	sr->cursor = NULL;
	if (sr->tracking) {
		step_lease(sr);
		return;
	}
	sr->step_started_ms = now_ms();
	if (sr->backfill_since_ms > 0) {
		char t[32];
		hub_time_format(sr->backfill_since_ms, t, sizeof(t));
		sr->cursor = json_pack("{s:s}", "since", t);
		sr->backfill_since_ms = 0;
	} else {
		const json_t *c = connector_cursor(cs->c, sr->name);
		if (c)
			sr->cursor = json_deep_copy(c);
		else if (cs->set.backfill_since_ms > 0) {
			char t[32];
			hub_time_format(cs->set.backfill_since_ms, t, sizeof(t));
			sr->cursor = json_pack("{s:s}", "since", t);
		}
	}
	step_build(sr);
}

static void stream_timer(evutil_socket_t fd, short what, void *arg)
{
	step_begin(arg);
}

/* ---- polling leases (several hubd on one store, see lease.h) ------------------- */

/* Whether the stream must wait for its connector's lease: another hubd
 * polls it. The stream stays as it is (no timer) until lease_changed()
 * wakes it; an on-demand sync asked of this process ends as "elsewhere". */
static int lease_parked(struct stream_run *sr)
{
	struct csched *cs = sr->cs;

	if (!cs->lease || lease_entry_held(cs->lease))
		return 0;
	if (sr->sync_active) {
		sr->sync_active = 0;
		sr->sync_state = "elsewhere";
	}
	return 1;
}

/* The lease was gained (with the cursors the last holder committed) or lost. */
static void lease_changed(void *arg, void *user, int held, const json_t *cursors)
{
	struct csched *cs = user;
	const char *stream;
	json_t *v;
	(void)arg;

	if (!held || cs->detached)
		return;
	json_object_foreach((json_t *)cursors, stream, v) {
		if (json_is_object(v) && !json_is_null(json_object_get(v, "cursor")))
			connector_set_cursor(cs->c, stream, json_object_get(v, "cursor"));
	}
	for (size_t i = 0; i < cs->n; i++) {
		enum sr_state st = cs->streams[i].state;
		/* A first run spread over start-up keeps its place: hubd's leases
		 * all arrive in its first seconds. */
		if (cs->streams[i].spread_pending)
			continue;
		if (st == SR_IDLE || st == SR_BACKOFF || st == SR_WAIT_LIMIT)
			schedule(&cs->streams[i], (int64_t)(rand() % 500));
	}
}

/* Nothing of the connector in flight: its lease may be handed back. */
static int lease_idle(void *arg, void *user)
{
	struct csched *cs = user;
	(void)arg;

	if (cs->refreshing)
		return 0;
	for (size_t i = 0; i < cs->n; i++) {
		enum sr_state st = cs->streams[i].state;
		if (st == SR_IN_FLIGHT || st == SR_COMMITTING || st == SR_LEASING)
			return 0;
	}
	return 1;
}

/* ---- attach / detach / control ---------------------------------------------- */

/* Delay of a stream's first run. Spread: the n-th stream attached so gets
 * frac(n * golden ratio) of its window, a sequence that fills any window
 * evenly however many streams there are (no clumps, unlike random draws),
 * and deterministic for a given order. */
static int64_t first_run_delay(struct sync *sy, const struct stream_run *sr, const struct sync_settings *set)
{
	int64_t window;
	double pos;

	if (!set->spread_start || sy->o.start_spread_s <= 0)
		return (int64_t)(rand() % 1000);
	window = interval_ms(sr);
	if (window > (int64_t)sy->o.start_spread_s * 1000)
		window = (int64_t)sy->o.start_spread_s * 1000;
	pos = fmod((double)sy->spread_seq++ * 0.6180339887498949, 1.0);
	return (int64_t)(pos * (double)window);
}

int sync_attach(struct sync *sy, struct connector *c, const struct sync_settings *set)
{
	struct csched *cs = calloc(1, sizeof(*cs));
	struct conn_instance *inst = connector_acquire(c);
	const struct hub_stream_def *sd;
	size_t n = 0;

	if (!cs || !inst) {
		free(cs);
		if (inst)
			instance_release(inst);
		return -1;
	}
	for (sd = inst->gen->desc.streams; sd && sd->name; sd++)
		n++;
	cs->streams = calloc(n ? n : 1, sizeof(*cs->streams));
	if (!cs->streams) {
		free(cs);
		instance_release(inst);
		return -1;
	}
	cs->sy = sy;
	cs->c = c;
	cs->set = *set;
	json_incref(cs->set.rate_limits);
	cs->refs = 1;
	cs->n = n;
	retry_circuit_init(&cs->circuit, NULL);
	cs->token_error = no_error;
	for (size_t i = 0; i < n; i++) {
		struct stream_run *sr = &cs->streams[i];
		sd = &inst->gen->desc.streams[i];
		sr->cs = cs;
		sr->name = strdup(sd->name);
		sr->operation = sd->operation ? strdup(sd->operation) : NULL;
		sr->kinds = 0;
		for (int k = HUB_RECORD_ORDER; k <= HUB_RECORD_TRACKING; k++)
			if (sd->record_kinds & (1u << k))
				sr->kinds |= CALL_KIND_BIT(k);
		if (!sr->kinds)
			sr->kinds = instance_stream_kinds(inst, sd->name);
		sr->interval_s = (int)sd->default_interval_s;
		sr->tracking = strcmp(sd->name, "tracking") == 0;
		sr->sync_state = "idle";
		sr->last_error = no_error;
		sr->timer = evtimer_new(sy->o.base, stream_timer, sr);
		msg_init(&sr->req);
		sr->start_offset_ms = -1;
		if (set->paused)
			continue;
		if (set->spread_start && sy->o.start_spread_s > 0 && !sy->started) {
			sr->start_offset_ms = first_run_delay(sy, sr, set);
			sr->spread_pending = 1;
		} else
			schedule(sr, first_run_delay(sy, sr, set));
	}
	c->user = cs;
	circuit_gauge(cs);
	instance_release(inst);
	if (sy->leases && !(cs->lease = lease_want(sy->leases, connector_name(c), cs))) {
		c->user = NULL;
		cs_unref(cs);
		return -1;
	}
	c->user = cs;
	cs->next = sy->all;
	if (sy->all)
		sy->all->prev = cs;
	sy->all = cs;
	return 0;
}

void sync_start(struct sync *sy)
{
	sy->started = 1;
	for (struct csched *cs = sy->all; cs; cs = cs->next) {
		for (size_t i = 0; i < cs->n; i++) {
			struct stream_run *sr = &cs->streams[i];
			if (sr->start_offset_ms < 0)
				continue;
			if (sr->state == SR_IDLE && !evtimer_pending(sr->timer, NULL) && !cs->set.paused)
				schedule(sr, sr->start_offset_ms);
			sr->start_offset_ms = -1;
		}
	}
}

void sync_detach(struct sync *sy, struct connector *c)
{
	struct csched *cs = c->user;

	if (!cs)
		return;
	cs->detached = 1;
	if (cs->lease) {
		lease_unwant(sy->leases, cs->lease);
		cs->lease = NULL;
	}
	for (size_t i = 0; i < cs->n; i++)
		if (cs->streams[i].timer)
			evtimer_del(cs->streams[i].timer);
	if (cs->hint_timer)
		evtimer_del(cs->hint_timer);
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		sy->all = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	c->user = NULL;
	cs_unref(cs);
}

void sync_pause(struct sync *sy, struct connector *c, int paused)
{
	struct csched *cs = c->user;

	if (!cs)
		return;
	cs->set.paused = paused;
	for (size_t i = 0; i < cs->n; i++) {
		struct stream_run *sr = &cs->streams[i];
		if (paused && sr->state == SR_IDLE && !sr->sync_active)
			evtimer_del(sr->timer);
		else if (!paused && sr->state == SR_IDLE)
			schedule(sr, 0);
	}
}

int sync_paused(struct sync *sy, struct connector *c)
{
	struct csched *cs = c->user;

	return cs ? cs->set.paused : 0;
}

int sync_trigger(struct sync *sy, struct connector *c, const char *stream, int64_t since_ms)
{
	struct csched *cs = c->user;
	int found = 0;

	if (!cs)
		return -1;
	for (size_t i = 0; i < cs->n; i++) {
		struct stream_run *sr = &cs->streams[i];
		if (stream && strcmp(stream, sr->name) != 0)
			continue;
		found = 1;
		sr->sync_active = 1;
		sr->sync_state = "running";
		sr->sync_since_ms = since_ms;
		sr->sync_started_ms = now_ms();
		sr->sync_records = 0;
		sr->sync_progress = 0;
		if (since_ms > 0 && !sr->tracking)
			sr->backfill_since_ms = since_ms;
		if (sr->state == SR_IDLE)
			schedule(sr, 0);
		else
			sr->trigger_pending = 1;
	}
	return found ? 0 : -1;
}

static void hint_fire(evutil_socket_t fd, short what, void *arg)
{
	struct csched *cs = arg;

	for (size_t i = 0; i < cs->n; i++) {
		struct stream_run *sr = &cs->streams[i];
		if (!sr->tracking && sr->state == SR_IDLE && !cs->set.paused)
			schedule(sr, 0);
	}
}

void sync_hint(struct sync *sy, struct connector *c)
{
	struct csched *cs = c->user;
	struct timeval tv = {HINT_DELAY_MS / 1000, (HINT_DELAY_MS % 1000) * 1000};

	if (!cs || cs->detached)
		return;
	/* Made on the first hint: most connectors never get one. */
	if (!cs->hint_timer && !(cs->hint_timer = evtimer_new(sy->o.base, hint_fire, cs)))
		return;
	if (evtimer_pending(cs->hint_timer, NULL))
		return;
	evtimer_add(cs->hint_timer, &tv);
}

json_t *sync_status(struct sync *sy, struct connector *c)
{
	struct csched *cs = c->user;
	json_t *streams = json_array(), *res, *sync = NULL;
	int64_t now = now_ms();
	char t[32];

	if (!cs)
		return json_pack("{s:s,s:b,s:o}", "name", connector_name(c), "attached", 0, "streams", streams);
	for (size_t i = 0; i < cs->n; i++) {
		struct stream_run *sr = &cs->streams[i];
		const json_t *cur = connector_cursor(c, sr->name);
		json_t *s = json_pack("{s:s,s:s,s:O?,s:I,s:I,s:I,s:I}", "name", sr->name, "state",
				      sr_state_names[sr->state], "cursor", cur, "records", (json_int_t)sr->records,
				      "pages", (json_int_t)sr->pages, "retries", (json_int_t)sr->retries,
				      "interval_s", (json_int_t)(interval_ms(sr) / 1000));
		if (sr->last_success_ms) {
			hub_time_format(sr->last_success_ms, t, sizeof(t));
			json_object_set_new(s, "last_success", json_string(t));
			json_object_set_new(s, "lag_s", json_integer((now - sr->last_success_ms) / 1000));
		} else {
			json_object_set_new(s, "last_success", json_null());
			json_object_set_new(s, "lag_s", json_null());
		}
		if (sr->last_attempt_ms) {
			hub_time_format(sr->last_attempt_ms, t, sizeof(t));
			json_object_set_new(s, "last_attempt", json_string(t));
		}
		json_object_set_new(s, "last_error", sr->last_error[0] ? json_string(sr->last_error) : json_null());
		if (sr->next_run_ms > now) {
			hub_time_format(sr->next_run_ms, t, sizeof(t));
			json_object_set_new(s, "next_run", json_string(t));
		}
		json_object_set_new(s, "rate_limit",
				    json_pack("{s:s?,s:I,s:I}", "bucket", sr->operation, "waits",
					      (json_int_t)sr->rl_waits, "wait_ms_total",
					      (json_int_t)sr->rl_wait_ms_total));
		json_array_append_new(streams, s);
		if (sr->sync_started_ms && (!sync || sr->sync_active)) {
			json_decref(sync);
			sync = json_pack("{s:s,s:s,s:I,s:f,s:s?}", "stream", sr->name, "state", sr->sync_state,
					 "records", (json_int_t)sr->sync_records, "progress", sr->sync_progress,
					 "last_error", sr->last_error[0] ? sr->last_error : NULL);
		}
	}
	res = json_pack("{s:s,s:s,s:s,s:b,s:o,s:{s:s,s:s,s:i}}", "name", connector_name(c), "merchant",
			c->merchant, "plugin", c->plugin ? c->plugin->name : "", "paused", cs->set.paused,
			"streams", streams, "circuit", "state",
			retry_circuit_state_name(retry_circuit_state(&cs->circuit)), "reason",
			retry_circuit_reason(&cs->circuit), "failures", (int)cs->circuit.failures);
	if (cs->c->inst && (cs->c->inst->gen->desc.capabilities & HUB_CAP_TOKEN_REFRESH)) {
		json_t *tok = json_pack("{s:b}", "present", connector_access_token(c) != NULL);
		if (c->access_token_expires_ms) {
			hub_time_format(c->access_token_expires_ms, t, sizeof(t));
			json_object_set_new(tok, "expires_at", json_string(t));
		}
		if (cs->token_error[0])
			json_object_set_new(tok, "last_error", json_string(cs->token_error));
		json_object_set_new(res, "access_token", tok);
	}
	json_object_set_new(res, "sync", sync ? sync : json_pack("{s:s}", "state", "idle"));
	if (cs->lease)
		json_object_set_new(res, "lease", json_pack("{s:s,s:s}", "state", lease_entry_state(cs->lease),
							     "instance", lease_owner(sy->leases)));
	return res;
}

/* ---- jobs (outbox) ------------------------------------------------------------ */

static void job_free(struct job *j)
{
	if (j->inst)
		instance_release(j->inst);
	msg_release(&j->req);
	json_decref(j->payload);
	if (j->timer)
		event_free(j->timer);
	free(j->connector);
	free(j->action);
	free(j->operation);
	free(j);
}

static void job_store_done(void *arg, enum store_status status, json_t *result,
			   const struct hub_error *err)
{
	struct job *j = arg;

	if (status != STORE_OK)
		log_warn("jobs", "job %lld (%s): store: %s", (long long)j->id, j->action,
			 err ? err->message : store_status_name(status));
	j->sy->jobs_in_flight--;
	j->sy->busy--;
	job_free(j);
}

/* Records the job's outcome: done, retry later, or dead. */
static void job_finish(struct job *j, enum retry_verdict v, int64_t retry_after_ms, int upstream_status,
		       const char *error)
{
	struct sync *sy = j->sy;
	struct hub_error err;
	json_t *params;
	enum store_op op;
	int64_t now = now_ms();

	if (v == RETRY_OK) {
		op = STORE_OP_JOB_COMPLETE;
		params = json_pack("{s:I}", "id", (json_int_t)j->id);
	} else {
		/* The claim counted this attempt already. */
		unsigned attempts = j->attempts > 0 ? (unsigned)j->attempts : 1;
		char clean[1024];
		snprintf(clean, sizeof(clean), "%s", error ? error : "failed");
		hub_utf8_trim(clean);
		error = clean;
		int64_t delay = retry_backoff_ms(&sy->policy, attempts, retry_after_ms);
		int dead = v == RETRY_PERMANENT ||
			   retry_exhausted(&sy->policy, attempts, j->created_ms ? j->created_ms : now, now + delay);
		op = STORE_OP_JOB_FAIL;
		params = json_pack("{s:I,s:s,s:b,s:i}", "id", (json_int_t)j->id, "error", error, "dead", dead,
				   "upstream_status", upstream_status);
		if (!dead)
			json_object_set_new(params, "next_run_ms", json_integer(now + delay));
		log_warn("jobs", "job %lld %s of %s failed (attempt %u): %s%s", (long long)j->id, j->action,
			 j->connector, attempts, error, dead ? "; moved to the dead letters" : "");
		if (dead)
			metric_add(counter(sy, "hub_dead_letters_total", "Dead letters written",
					   "connector=\"%s\"", j->connector), 1);
	}
	metric_add(counter(sy, "hub_jobs_total", "Jobs run by result", "action=\"%s\",result=\"%s\"",
			   j->action, retry_verdict_name(v)), 1);
	memset(&err, 0, sizeof(err));
	if (store_call(sy->o.store, op, params, job_store_done, j, &err) < 0)
		job_store_done(j, STORE_UNAVAILABLE, NULL, &err);
}

static void job_unit_done(void *arg, const struct store_unit_result *res)
{
	struct job *j = arg;

	j->sy->busy--;
	if (res->status == STORE_OK)
		job_finish(j, RETRY_OK, 0, 0, NULL);
	else
		job_finish(j, RETRY_TRANSIENT, 0, 0, res->err.message);
}

static void job_response(void *arg, const struct http_resp *resp)
{
	struct job *j = arg;
	struct sync *sy = j->sy;
	struct hub_msg m;
	struct hub_call call;
	struct hub_error err;
	char status[16], msgbuf[1024];
	int rc;

	sy->busy--;
	snprintf(status, sizeof(status), "%d", resp->status);
	metric_add(counter(sy, "hub_upstream_requests_total", "Upstream requests by result",
			   "connector=\"%s\",operation=\"%s\",status=\"%s\"", j->connector,
			   j->operation ? j->operation : j->action,
			   resp->err == HTTP_ERR_NONE ? status : http_err_name(resp->err)), 1);
	if (resp->err != HTTP_ERR_NONE) {
		job_finish(j, http_err_transient(resp->err) ? RETRY_TRANSIENT : RETRY_PERMANENT, 0, 0,
			   resp->errmsg);
		return;
	}
	resp_to_msg(resp, &m);
	observe_limits(sy, j->inst, j->operation ? j->operation : j->action, &m);
	call_init(&call, plugin_gen_kinds(j->inst->gen), plugin_registry_schemas(sy->o.reg));
	memset(&err, 0, sizeof(err));
	rc = instance_read_action(j->inst, j->action, j->payload, &m, &call, &err);
	snprintf(msgbuf, sizeof(msgbuf), "HTTP %d: %s%s%s", resp->status, err.field, err.field[0] ? ": " : "",
		 err.message[0] ? err.message : host_status_name(rc) ? host_status_name(rc) : "?");
	if (rc == HUB_OK || rc == HUB_IGNORED) {
		struct store_unit *u = store_unit_new(j->inst->conn->merchant, j->connector);
		if (u && (call.nrecords || call.nrejects || call.nactions || call.access_token)) {
			sync_call_to_unit(&call, u, j->connector);
			memset(&err, 0, sizeof(err));
			sy->busy++;
			if (store_submit(sy->o.store, u, job_unit_done, j, &err) < 0) {
				sy->busy--;
				job_finish(j, RETRY_TRANSIENT, 0, 0, err.message);
			}
		} else {
			store_unit_free(u);
			job_finish(j, RETRY_OK, 0, 0, NULL);
		}
	} else if (rc == HUB_AUTH_EXPIRED) {
		struct csched *cs = j->inst->conn->user;
		connector_set_access_token(j->inst->conn, NULL, 0);
		if (cs)
			token_refresh(cs);
		job_finish(j, RETRY_TRANSIENT, 1000, resp->status, msgbuf);
	} else if (rc == HUB_RETRY) {
		job_finish(j, RETRY_TRANSIENT, retry_after_of(&m), resp->status, msgbuf);
	} else {
		job_finish(j, RETRY_PERMANENT, 0, resp->status, msgbuf);
	}
	call_release(&call);
	msg_release(&m);
}

static void job_rl_done(void *arg, const struct rl_result *res);

static void job_acquire(struct job *j)
{
	struct rl_params p = {0, 0};
	char key[256];
	const char *op = j->operation ? j->operation : j->action;

	if (bucket_params(j->inst, op, &p) == 0) {
		rl_key(key, sizeof(key), j->inst->conn, op);
		if (rl_acquire(j->sy->o.rl, key, &p, job_rl_done, j) == 0)
			return;
	}
	j->sy->busy++;
	if (send_msg(j->sy, &j->req, job_response, j) < 0) {
		struct http_resp fake = {.err = HTTP_ERR_INVALID, .errmsg = "request refused by the HTTP client"};
		job_response(j, &fake);
	}
}

static void job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	job_acquire(arg);
}

static void job_rl_done(void *arg, const struct rl_result *res)
{
	struct job *j = arg;

	if (res->status == RL_CANCELLED) {
		job_finish(j, RETRY_TRANSIENT, 0, 0, "hubd stopping");
	} else if (res->status == RL_WAIT) {
		struct timeval tv = {(time_t)(res->wait_ms / 1000), (suseconds_t)((res->wait_ms % 1000) * 1000)};
		if (!j->timer)
			j->timer = evtimer_new(j->sy->o.base, job_timer_cb, j);
		evtimer_add(j->timer, &tv);
	} else {
		j->sy->busy++;
		if (send_msg(j->sy, &j->req, job_response, j) < 0) {
			struct http_resp fake = {.err = HTTP_ERR_INVALID,
						 .errmsg = "request refused by the HTTP client"};
			job_response(j, &fake);
		}
	}
}

static void job_start(struct sync *sy, json_t *item)
{
	struct job *j = calloc(1, sizeof(*j));
	struct connector *c;
	struct hub_error err;
	int rc;

	if (!j)
		return;
	j->sy = sy;
	j->id = json_integer_value(json_object_get(item, "id"));
	j->connector = strdup(json_string_value(json_object_get(item, "connector")) ?: "");
	j->action = strdup(json_string_value(json_object_get(item, "action")) ?: "");
	j->payload = json_incref(json_object_get(item, "payload"));
	j->attempts = (int)json_integer_value(json_object_get(item, "attempts"));
	j->created_ms = json_integer_value(json_object_get(item, "created_at_ms"));
	msg_init(&j->req);
	sy->jobs_in_flight++;
	sy->busy++;
	c = connector_find(sy->o.reg, j->connector);
	if (!c || !(j->inst = connector_acquire(c))) {
		job_finish(j, RETRY_PERMANENT, 0, 0, "the connector no longer exists");
		return;
	}
	memset(&err, 0, sizeof(err));
	rc = instance_build_action(j->inst, j->action, j->payload, &j->req, &err);
	if (rc == HUB_AUTH_EXPIRED) {
		if (c->user)
			token_refresh(c->user);
		job_finish(j, RETRY_TRANSIENT, 1000, 0, "waiting for an access token");
		return;
	}
	if (rc == HUB_IGNORED) {
		/* The plugin does not offer this action (e.g. status push-back to a
		 * marketplace without it): nothing to do. */
		log_debug("jobs", "job %lld: %s does not handle %s; done", (long long)j->id, j->connector, j->action);
		job_finish(j, RETRY_OK, 0, 0, NULL);
		return;
	}
	if (rc != HUB_OK) {
		char m[1024];
		snprintf(m, sizeof(m), "cannot build %s: %s%s%s", j->action, err.field, err.field[0] ? ": " : "",
			 err.message[0] ? err.message : host_status_name(rc) ? host_status_name(rc) : "?");
		job_finish(j, RETRY_PERMANENT, 0, 0, m);
		return;
	}
	if (j->req.operation)
		j->operation = strdup(j->req.operation);
	sy->busy--; /* job_acquire counts the request itself */
	sy->busy++;
	job_acquire(j);
}

static void jobs_claimed(void *arg, enum store_status status, json_t *result,
			 const struct hub_error *err)
{
	struct sync *sy = arg;
	json_t *items = json_object_get(result, "items"), *it;
	size_t i;

	sy->claiming = 0;
	sy->busy--;
	if (status != STORE_OK)
		return;
	if (sy->stopping) {
		/* Hand them back, runnable now, instead of waiting out the lease. */
		json_array_foreach(items, i, it) {
			struct hub_error ferr;
			memset(&ferr, 0, sizeof(ferr));
			store_call(sy->o.store, STORE_OP_JOB_FAIL,
				   json_pack("{s:O,s:s,s:I}", "id", json_object_get(it, "id"), "error", "hubd stopped",
					     "next_run_ms", (json_int_t)now_ms()),
				   NULL, NULL, &ferr);
		}
		return;
	}
	json_array_foreach(items, i, it)
		job_start(sy, it);
	if (json_array_size(items) > 0)
		sync_kick_jobs(sy);
}

static void job_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sync *sy = arg;
	struct hub_error err;
	struct timeval tv = {sy->o.job_interval_ms / 1000, (sy->o.job_interval_ms % 1000) * 1000};

	if (sy->stopping)
		return;
	evtimer_add(sy->job_timer, &tv);
	if (sy->claiming || sy->jobs_in_flight >= MAX_JOBS_IN_FLIGHT)
		return;
	sy->claiming = 1;
	sy->busy++;
	memset(&err, 0, sizeof(err));
	if (store_call(sy->o.store, STORE_OP_JOBS_CLAIM,
		       json_pack("{s:i,s:i}", "limit", MAX_JOBS_IN_FLIGHT - sy->jobs_in_flight, "lease_ms", 120000),
		       jobs_claimed, sy, &err) < 0) {
		sy->claiming = 0;
		sy->busy--;
	}
}

void sync_kick_jobs(struct sync *sy)
{
	struct timeval now = {0, 0};

	if (!sy->stopping && !sy->claiming) {
		evtimer_del(sy->job_timer);
		evtimer_add(sy->job_timer, &now);
	}
}

/* ---- engine --------------------------------------------------------------- */

void sync_set_retry(struct sync *sy, int base_ms, int cap_ms, int max_attempts)
{
	/* Read at each failure and each backoff computed, never cached by a
	 * stream or a job: replacing it here is all a reload needs. */
	memset(&sy->policy, 0, sizeof(sy->policy));
	sy->policy.base_ms = base_ms > 0 ? base_ms : 500;
	sy->policy.cap_ms = cap_ms > 0 ? cap_ms : 60000;
	sy->policy.max_attempts = max_attempts > 0 ? (unsigned)max_attempts : 8;
	sy->policy.max_age_ms = 24LL * 3600 * 1000;
	sy->o.retry_base_ms = base_ms;
	sy->o.retry_cap_ms = cap_ms;
	sy->o.retry_max_attempts = max_attempts;
}

struct sync *sync_new(const struct sync_opts *opts)
{
	struct sync *sy = calloc(1, sizeof(*sy));
	struct timeval tv = {1, 0};

	if (!sy)
		return NULL;
	sy->o = *opts;
	if (sy->o.default_interval_s <= 0)
		sy->o.default_interval_s = 300;
	if (sy->o.job_interval_ms <= 0)
		sy->o.job_interval_ms = 1000;
	if (sy->o.token_margin_s <= 0)
		sy->o.token_margin_s = 120;
	if (sy->o.request_timeout_ms <= 0)
		sy->o.request_timeout_ms = 30000;
	sync_set_retry(sy, sy->o.retry_base_ms, sy->o.retry_cap_ms, sy->o.retry_max_attempts);
	sy->job_timer = evtimer_new(sy->o.base, job_tick, sy);
	if (!sy->job_timer) {
		free(sy);
		return NULL;
	}
	evtimer_add(sy->job_timer, &tv);
	srand((unsigned)time(NULL));
	if (sy->o.lease_ttl_ms > 0) {
		struct lease_opts lo = {sy->o.base, sy->o.store, sy->o.lease_ttl_ms, sy->o.lease_owner, lease_changed,
					lease_idle, sy};
		sy->leases = lease_new(&lo);
		if (!sy->leases) {
			event_free(sy->job_timer);
			free(sy);
			return NULL;
		}
	}
	return sy;
}

void sync_stop(struct sync *sy)
{
	sy->stopping = 1;
	evtimer_del(sy->job_timer);
	lease_stop(sy->leases);
	for (struct csched *cs = sy->all; cs; cs = cs->next) {
		for (size_t i = 0; i < cs->n; i++)
			if (cs->streams[i].state == SR_IDLE || cs->streams[i].state == SR_BACKOFF ||
			    cs->streams[i].state == SR_WAIT_LIMIT || cs->streams[i].state == SR_WAIT_TOKEN)
				evtimer_del(cs->streams[i].timer);
		if (cs->hint_timer)
			evtimer_del(cs->hint_timer);
	}
}

int sync_busy(const struct sync *sy)
{
	return sy ? sy->busy : 0;
}

void sync_free(struct sync *sy)
{
	if (!sy)
		return;
	while (sy->all) {
		struct csched *cs = sy->all;
		sync_detach(sy, cs->c);
	}
	lease_free(sy->leases);
	event_free(sy->job_timer);
	free(sy);
}
