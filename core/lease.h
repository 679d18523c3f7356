/*
 * lease.h - polling leases: with several hubd on one PostgreSQL, each
 * connector is polled by the one process that holds its lease.
 *
 * A lease is a row (connector, owner, expires_at) in the store, taken and
 * renewed by STORE_OP_LEASES_RENEW (see store.h) every third of the lease
 * time. Each live process also keeps an instance row, so each knows how
 * many share the connectors and takes at most its fair share: a process
 * that joins gets connectors handed back by the others, idle ones first
 * (nothing in flight), and a process that dies loses its leases when they
 * expire, to whoever renews next. Webhooks do not need a lease: any
 * process accepts any webhook.
 *
 * A process trusts a lease only until the time it asked for it plus the
 * lease time less a fifth, so it stops starting new steps before another
 * process can take the lease over, as long as the hosts' clocks differ by
 * less than that fifth. On gaining a lease the connector's cursors are
 * read back from the store (the previous holder moved them on) before the
 * lease counts as held.
 *
 * Threads: loop thread only.
 */
#ifndef HUB_LEASE_H
#define HUB_LEASE_H

#include <jansson.h>

struct event_base;
struct store;
struct lease_mgr;
struct lease_entry;

struct lease_opts {
	struct event_base *base;
	struct store *store;
	int ttl_ms;        /* lease time (at least 300); renewed every third of it */
	const char *owner; /* this process's name in the lease rows; NULL: "<host>:<pid>:<random>" */
	/*
	 * A lease was gained (held 1; `cursors` the connector's stored cursors
	 * as STORE_OP_CURSORS_GET returns them, borrowed) or lost (held 0,
	 * cursors NULL). `user` is what lease_want() was given.
	 */
	void (*changed)(void *arg, void *user, int held, const json_t *cursors);
	/* Whether the connector has nothing in flight: only such connectors
	 * are handed back to balance the load. NULL: always. */
	int (*idle)(void *arg, void *user);
	void *arg;
};

/* Creates the manager; the first renewal runs at once. NULL when out of
 * memory. Owner name and options are copied. */
struct lease_mgr *lease_new(const struct lease_opts *opts);

/*
 * Asks for the lease of `connector` (copied) from the next renewal on.
 * Returns the entry, owned by the manager (valid until lease_unwant), or
 * NULL when out of memory.
 */
struct lease_entry *lease_want(struct lease_mgr *m, const char *connector, void *user);

/* Gives the connector up: its lease is handed back at the next renewal.
 * The entry must not be used afterwards; `changed` is not called for it. */
void lease_unwant(struct lease_mgr *m, struct lease_entry *e);

/* Whether this process holds the lease now (and has its cursors). */
int lease_entry_held(const struct lease_entry *e);

/* "held", "acquiring" (cursors loading), "releasing" (being handed back)
 * or "elsewhere" (another process, or nobody yet). Static string. */
const char *lease_entry_state(const struct lease_entry *e);

/* This process's owner name (borrowed). */
const char *lease_owner(const struct lease_mgr *m);

/* Stops renewing and hands back every lease whose connector is idle, and
 * this process's instance row when all are; the others expire. Call before
 * the store closes. */
void lease_stop(struct lease_mgr *m);

/* Frees the manager and its entries. Call once no store callback of it can
 * run any more (after store_close). NULL is ignored. */
void lease_free(struct lease_mgr *m);

#endif
