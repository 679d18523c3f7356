/*
 * lease.c - polling leases on the loop (see lease.h). One timer drives the
 * renewals: every third of the lease time one STORE_OP_LEASES_RENEW names
 * every connector this process wants and the leases it hands back; its
 * answer says which it holds. A lease newly held (or held again after this
 * process's own view of it lapsed) first reloads the connector's cursors
 * from the store, then counts as held and is reported through `changed`.
 * Entries are a plain list: a renewal walks all of them anyway.
 */
#include "config.h"
#include "lease.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "crypto.h"
#include "log.h"
#include "store.h"

#define LEASE_LOG "lease"

enum lease_state {
	L_NONE,      /* not ours (another process's, or nobody's yet) */
	L_LOADING,   /* ours in the store; cursors being read back */
	L_HELD,      /* ours: poll it */
	L_RELEASING, /* ours, being handed back: do not start anything */
};

struct lease_entry {
	struct lease_entry *prev, *next;
	struct lease_mgr *m;
	char *name;
	void *user;
	enum lease_state state;
	int64_t valid_until; /* monotonic ms: trusted until then */
	unsigned load_gen;   /* a load whose generation is stale is ignored */
	int loading;         /* a cursor load is in flight */
	int release_sent;    /* handed back by the renewal in flight */
	int gone;            /* unwanted: freed once handed back */
	int refs;            /* callbacks in flight */
};

struct lease_mgr {
	struct lease_opts o;
	char *owner;
	struct event *timer;
	struct lease_entry *head;
	size_t ngone;
	int in_flight;
	int stopped;
	int failing;
	int64_t round_started;
	long long logged_held, logged_instances;
};

struct load_ctx {
	struct lease_entry *e;
	unsigned gen;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void entry_unlink_free(struct lease_mgr *m, struct lease_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		m->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	if (e->gone)
		m->ngone--;
	free(e->name);
	free(e);
}

/* A gone entry goes once nothing of it is left in the store or in flight. */
static void maybe_free(struct lease_mgr *m, struct lease_entry *e)
{
	if (e->gone && e->state == L_NONE && e->refs == 0)
		entry_unlink_free(m, e);
}

static void schedule_round(struct lease_mgr *m, int64_t delay_ms)
{
	struct timeval tv;

	if (m->stopped)
		return;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)((delay_ms % 1000) * 1000);
	evtimer_add(m->timer, &tv);
}

static void load_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct load_ctx *lc = arg;
	struct lease_entry *e = lc->e;
	struct lease_mgr *m = e->m;
	unsigned gen = lc->gen;

	free(lc);
	e->refs--;
	if (gen == e->load_gen)
		e->loading = 0;
	if (e->gone || m->stopped || gen != e->load_gen || e->state != L_LOADING) {
		maybe_free(m, e);
		return;
	}
	if (status != STORE_OK) {
		/* Stays "acquiring": the next renewal tries again. */
		log_warn(LEASE_LOG, "%s: cannot read its cursors back: %s", e->name,
			 err != NULL ? err->message : store_status_name(status));
		return;
	}
	e->state = L_HELD;
	log_debug(LEASE_LOG, "%s: lease held", e->name);
	if (m->o.changed != NULL)
		m->o.changed(m->o.arg, e->user, 1, result);
}

/* The lease is ours in the store: read the cursors back, then hold it. */
static void load(struct lease_mgr *m, struct lease_entry *e)
{
	struct load_ctx *lc = malloc(sizeof(*lc));
	struct hub_error err;

	e->state = L_LOADING;
	if (lc == NULL)
		return; /* retried at the next renewal */
	lc->e = e;
	lc->gen = ++e->load_gen;
	e->loading = 1;
	e->refs++;
	memset(&err, 0, sizeof(err));
	if (store_call(m->o.store, STORE_OP_CURSORS_GET, json_pack("{s:s}", "connector", e->name), load_done, lc,
		       &err) < 0) {
		e->loading = 0;
		e->refs--;
		free(lc);
	}
}

static void round_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	struct lease_mgr *m = arg;
	json_t *held_set, *v;
	struct lease_entry *e, *next;
	int64_t now = mono_ms(), valid, excess;
	long long held = 0, instances;
	size_t i;

	m->in_flight = 0;
	if (m->stopped)
		return;
	if (status != STORE_OK) {
		/* Leases lapse on their own (lease_entry_held looks at the time). */
		if (!m->failing)
			log_warn(LEASE_LOG, "cannot renew the polling leases: %s",
				 err != NULL ? err->message : store_status_name(status));
		m->failing = 1;
		schedule_round(m, m->o.ttl_ms / 3);
		return;
	}
	if (m->failing)
		log_info(LEASE_LOG, "polling leases renewed again");
	m->failing = 0;
	held_set = json_object();
	json_array_foreach(json_object_get(result, "held"), i, v)
		json_object_set(held_set, json_string_value(v), json_true());
	valid = m->round_started + m->o.ttl_ms - m->o.ttl_ms / 5;
	for (e = m->head; e != NULL; e = next) {
		int in = json_object_get(held_set, e->name) != NULL;

		next = e->next;
		if (e->gone || e->state == L_RELEASING) {
			if (e->release_sent)
				e->state = L_NONE;
			else if (in)
				e->valid_until = valid;
			maybe_free(m, e);
			continue;
		}
		if (in) {
			/* Held again after our view of it lapsed: another process may
			 * have polled it meanwhile, so its cursors are read back. */
			int lapsed = e->state != L_NONE && now >= e->valid_until;
			e->valid_until = valid;
			if (e->state == L_NONE || lapsed || (e->state == L_LOADING && !e->loading))
				load(m, e);
			held++;
		} else if (e->state != L_NONE) {
			e->state = L_NONE;
			e->load_gen++;
			log_debug(LEASE_LOG, "%s: lease lost", e->name);
			if (m->o.changed != NULL)
				m->o.changed(m->o.arg, e->user, 0, NULL);
		}
	}
	json_decref(held_set);
	/* Above our share: hand idle connectors back at the next renewal. */
	excess = json_integer_value(json_object_get(result, "excess"));
	for (e = m->head; e != NULL && excess > 0; e = e->next) {
		if (e->state == L_HELD && !e->gone && (m->o.idle == NULL || m->o.idle(m->o.arg, e->user))) {
			e->state = L_RELEASING;
			excess--;
			held--;
		}
	}
	instances = (long long)json_integer_value(json_object_get(result, "instances"));
	if (held != m->logged_held || instances != m->logged_instances)
		log_info(LEASE_LOG, "polling %lld connector(s) here; %lld hubd share this store", held, instances);
	m->logged_held = held;
	m->logged_instances = instances;
	schedule_round(m, m->o.ttl_ms / 3);
}

static void round_start(evutil_socket_t fd, short what, void *arg)
{
	struct lease_mgr *m = arg;
	json_t *wanted = json_array(), *release = json_array(), *params;
	struct hub_error err;
	struct lease_entry *e;
	(void)fd;
	(void)what;

	if (m->in_flight || m->stopped || wanted == NULL || release == NULL) {
		json_decref(wanted);
		json_decref(release);
		schedule_round(m, m->o.ttl_ms / 3);
		return;
	}
	for (e = m->head; e != NULL; e = e->next) {
		e->release_sent = 0;
		if (e->gone || e->state == L_RELEASING) {
			if (e->state != L_NONE) {
				json_array_append_new(release, json_string(e->name));
				e->release_sent = 1;
			}
			if (e->gone)
				continue;
		}
		json_array_append_new(wanted, json_string(e->name));
	}
	params = json_pack("{s:s, s:i, s:o, s:o}", "owner", m->owner, "ttl_ms", m->o.ttl_ms, "connectors", wanted,
			   "release", release);
	m->round_started = mono_ms();
	m->in_flight = 1;
	memset(&err, 0, sizeof(err));
	if (store_call(m->o.store, STORE_OP_LEASES_RENEW, params, round_done, m, &err) < 0) {
		m->in_flight = 0;
		for (e = m->head; e != NULL; e = e->next)
			e->release_sent = 0;
		if (!m->failing)
			log_warn(LEASE_LOG, "cannot renew the polling leases: %s", err.message);
		m->failing = 1;
		schedule_round(m, m->o.ttl_ms / 3);
	}
}

struct lease_mgr *lease_new(const struct lease_opts *o)
{
	struct lease_mgr *m = calloc(1, sizeof(*m));
	char host[128] = "hubd", owner[220];
	unsigned char rnd[4] = {0};

	if (m == NULL)
		return NULL;
	m->o = *o;
	if (m->o.ttl_ms < 300)
		m->o.ttl_ms = 300;
	if (o->owner != NULL) {
		snprintf(owner, sizeof(owner), "%s", o->owner);
	} else {
		/* The random part tells a restarted process (same host, maybe the
		 * same PID in a container) from the one that held the leases. */
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		if (crypto_random(rnd, sizeof(rnd)) < 0) {
			int64_t t = mono_ms();
			memcpy(rnd, &t, sizeof(rnd));
		}
		snprintf(owner, sizeof(owner), "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1], rnd[2],
			 rnd[3]);
	}
	m->owner = strdup(owner);
	m->o.owner = m->owner;
	m->timer = evtimer_new(o->base, round_start, m);
	m->logged_held = -1;
	if (m->owner == NULL || m->timer == NULL) {
		lease_free(m);
		return NULL;
	}
	log_info(LEASE_LOG, "polling leases on: %d ms, owner %s", m->o.ttl_ms, m->owner);
	schedule_round(m, 0);
	return m;
}

struct lease_entry *lease_want(struct lease_mgr *m, const char *connector, void *user)
{
	struct lease_entry *e;

	/* A connector given up and wanted again before its lease went back
	 * (a reconfiguration) keeps it. */
	for (e = m->ngone > 0 ? m->head : NULL; e != NULL; e = e->next) {
		if (e->gone && strcmp(e->name, connector) == 0) {
			e->gone = 0;
			m->ngone--;
			e->user = user;
			if (e->state == L_RELEASING)
				e->state = L_NONE;
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->name = strdup(connector)) == NULL) {
		free(e);
		return NULL;
	}
	e->m = m;
	e->user = user;
	e->next = m->head;
	if (m->head != NULL)
		m->head->prev = e;
	m->head = e;
	return e;
}

void lease_unwant(struct lease_mgr *m, struct lease_entry *e)
{
	if (e == NULL)
		return;
	e->gone = 1;
	e->user = NULL;
	m->ngone++;
	e->load_gen++;
	maybe_free(m, e);
}

int lease_entry_held(const struct lease_entry *e)
{
	return e->state == L_HELD && mono_ms() < e->valid_until;
}

const char *lease_entry_state(const struct lease_entry *e)
{
	switch (e->state) {
	case L_HELD:
		return mono_ms() < e->valid_until ? "held" : "acquiring";
	case L_LOADING:
		return "acquiring";
	case L_RELEASING:
		return "releasing";
	default:
		return "elsewhere";
	}
}

const char *lease_owner(const struct lease_mgr *m)
{
	return m->owner;
}

static void stop_done(void *arg, enum store_status status, json_t *result, const struct hub_error *err)
{
	(void)arg;
	(void)result;
	if (status != STORE_OK)
		log_warn(LEASE_LOG, "could not hand the polling leases back (they expire on their own): %s",
			 err != NULL ? err->message : store_status_name(status));
}

void lease_stop(struct lease_mgr *m)
{
	json_t *release, *params;
	struct lease_entry *e;
	struct hub_error err;
	int all_idle = 1;

	if (m == NULL || m->stopped)
		return;
	m->stopped = 1;
	evtimer_del(m->timer);
	release = json_array();
	for (e = m->head; e != NULL; e = e->next) {
		if (e->state == L_NONE)
			continue;
		if (!e->gone && m->o.idle != NULL && !m->o.idle(m->o.arg, e->user))
			all_idle = 0; /* still polling: let it expire */
		else
			json_array_append_new(release, json_string(e->name));
	}
	if (all_idle) {
		json_decref(release);
		params = json_pack("{s:s, s:b}", "owner", m->owner, "leave", 1);
	} else {
		params = json_pack("{s:s, s:i, s:[], s:o}", "owner", m->owner, "ttl_ms", m->o.ttl_ms, "connectors",
				   "release", release);
	}
	memset(&err, 0, sizeof(err));
	if (store_call(m->o.store, STORE_OP_LEASES_RENEW, params, stop_done, m, &err) < 0)
		log_warn(LEASE_LOG, "could not hand the polling leases back (they expire on their own): %s",
			 err.message);
}

void lease_free(struct lease_mgr *m)
{
	if (m == NULL)
		return;
	while (m->head != NULL)
		entry_unlink_free(m, m->head);
	if (m->timer != NULL)
		event_free(m->timer);
	free(m->owner);
	free(m);
}
