/*
 * store_lease.c - STORE_OP_LEASES_RENEW (see store.h): the polling leases
 * that let several hubd share one database, each connector polled by one
 * process at a time. core/lease.c drives it from the loop.
 *
 * Two phases in the batch's transaction. Phase 0 marks the owner alive,
 * drops the leases it hands back, counts the live instances and reads the
 * leases of the wanted connectors. Phase 1 picks, in C, what to claim - the
 * owner's own leases plus free or expired ones up to its fair share - and
 * claims them in ONE upsert whose WHERE re-checks, on the newest row
 * version, that the lease is the owner's or has expired: if another process
 * took a lease between the phases, the upsert skips it (PostgreSQL re-reads
 * a row another transaction changed). The upsert takes its rows in name
 * order, so two processes claiming overlapping sets lock them in the same
 * order and cannot deadlock each other. Lists travel as one JSON text
 * parameter, expanded by the database (json_each, json_array_elements_text).
 */
#include "config.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

/* A stale instance row (a process that died) is deleted after this long. */
#define INSTANCE_FORGET_MS (3600 * 1000LL)

static int refuse(struct store_item *it, const char *field, const char *msg)
{
	it->status = STORE_INVALID;
	hub_error_set(store_item_err(it), field, "%s", msg);
	return -1;
}

static int oom(struct store_item *it)
{
	it->status = STORE_FAILED;
	hub_error_set(store_item_err(it), NULL, "store: out of memory");
	return -1;
}

/* Whether v is an array of strings (NULL counts as empty). */
static int string_array(const json_t *v)
{
	size_t i;
	json_t *e;

	if (v == NULL)
		return 1;
	if (!json_is_array(v))
		return 0;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return 0;
	}
	return 1;
}

/* The list as JSON text in the script's arena (NULL: "[]"). */
static const char *list_text(struct sql_script *s, const json_t *v)
{
	char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
	const char *copy = sql_arena_strdup(&s->arena, text != NULL ? text : "[]");

	free(text);
	return copy;
}

/* Adds a statement whose text has one "%u" (the list parameter's number). */
static struct sql_stmt *add_with_list(struct store_exec *x, struct sql_script *s, unsigned index,
				      const char *before, unsigned list_param, const char *after,
				      unsigned nparams)
{
	char src[96], sql[640];

	/* The rows of a JSON list given in parameter $list_param, as one column. */
	if (x->dialect == SQL_PG)
		snprintf(src, sizeof(src), "SELECT json_array_elements_text(CAST($%u AS json))", list_param);
	else
		snprintf(src, sizeof(src), "SELECT value FROM json_each($%u)", list_param);
	snprintf(sql, sizeof(sql), "%s%s%s", before, src, after);
	return sql_script_add_text(s, sql, nparams, index);
}

/* Phase 0, live instances: COUNT(*). */
static int instances_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_object_set_new(it->scratch, "instances", json_integer(sql_col_int(row, 0)));
	return 0;
}

/* Phase 0, current leases: connector, owner, expires_at_ms. */
static int lease_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	const char *name = sql_col_text(row, 0), *owner = sql_col_text(row, 1);

	if (name == NULL || owner == NULL)
		return 0;
	json_object_set_new(json_object_get(it->scratch, "leases"), name,
			    json_pack("{s:s, s:I}", "owner", owner, "expires", (json_int_t)sql_col_int(row, 2)));
	return 0;
}

/* Phase 1, the upsert's RETURNING: a lease now held. */
static int held_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	const char *name = sql_col_text(row, 0);

	if (name != NULL)
		json_array_append_new(json_object_get(it->result, "held"), json_string(name));
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int in_array(const json_t *arr, const char *name)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) {
		if (strcmp(json_string_value(e), name) == 0)
			return 1;
	}
	return 0;
}

static int build_phase0(struct store_exec *x, struct store_item *it, unsigned index, struct sql_script *s,
			const char *owner, int64_t now, int64_t ttl)
{
	const json_t *p = it->params;
	int leave = json_is_true(json_object_get(p, "leave"));
	struct sql_stmt *st;

	it->scratch = json_pack("{s:i, s:{}}", "instances", 0, "leases");
	if (it->scratch == NULL)
		return oom(it);
	if (leave) {
		st = sql_script_add_text(s, "DELETE FROM hub_instances WHERE id = $1", 1, index);
		if (st == NULL)
			return oom(it);
		sql_bind_text(s, st, 1, owner);
		st = sql_script_add_text(s, "DELETE FROM connector_leases WHERE owner = $1", 1, index);
		if (st == NULL)
			return oom(it);
		sql_bind_text(s, st, 1, owner);
		return 0;
	}
	st = sql_script_add_text(s,
				 "INSERT INTO hub_instances (id, expires_at_ms, started_at_ms) VALUES ($1, $2, $3) "
				 "ON CONFLICT (id) DO UPDATE SET expires_at_ms = excluded.expires_at_ms",
				 3, index);
	if (st == NULL)
		return oom(it);
	sql_bind_text(s, st, 1, owner);
	sql_bind_int(s, st, 2, now + ttl);
	sql_bind_int(s, st, 3, now);
	st = sql_script_add_text(s, "DELETE FROM hub_instances WHERE expires_at_ms < $1", 1, index);
	if (st == NULL)
		return oom(it);
	sql_bind_int(s, st, 1, now - INSTANCE_FORGET_MS);
	if (json_array_size(json_object_get(p, "release")) > 0) {
		st = add_with_list(x, s, index, "DELETE FROM connector_leases WHERE owner = $1 AND connector IN (", 2,
				   ")", 2);
		if (st == NULL)
			return oom(it);
		sql_bind_text(s, st, 1, owner);
		sql_bind_text(s, st, 2, list_text(s, json_object_get(p, "release")));
	}
	st = sql_script_add_text(s, "SELECT COUNT(*) FROM hub_instances WHERE expires_at_ms > $1", 1, index);
	if (st == NULL)
		return oom(it);
	sql_bind_int(s, st, 1, now);
	st->on_row = instances_row;
	st->ctx = it;
	st = add_with_list(x, s, index,
			   "SELECT connector, owner, expires_at_ms FROM connector_leases WHERE connector IN (", 1,
			   ")", 1);
	if (st == NULL)
		return oom(it);
	sql_bind_text(s, st, 1, list_text(s, json_object_get(p, "connectors")));
	st->on_row = lease_row;
	st->ctx = it;
	return 1;
}

/* Phase 1: what to claim, and the claim. */
static int build_phase1(struct store_exec *x, struct store_item *it, unsigned index, struct sql_script *s,
			const char *owner, int64_t now, int64_t ttl)
{
	const json_t *p = it->params, *wanted = json_object_get(p, "connectors");
	const json_t *release = json_object_get(p, "release"), *leases = json_object_get(it->scratch, "leases");
	size_t nwanted = json_array_size(wanted), nclaim = 0, mine = 0, i;
	int64_t instances = json_integer_value(json_object_get(it->scratch, "instances"));
	int64_t share, room;
	const char **claim;
	json_t *list, *e;
	struct sql_stmt *st;
	char sql[768];

	if (instances < 1)
		instances = 1;
	share = (int64_t)((nwanted + (size_t)instances - 1) / (size_t)instances);
	it->result = json_pack("{s:[], s:I, s:I, s:i}", "held", "instances", (json_int_t)instances, "share",
			       (json_int_t)share, "excess", 0);
	claim = calloc(nwanted ? nwanted : 1, sizeof(*claim));
	if (it->result == NULL || claim == NULL) {
		free(claim);
		return oom(it);
	}
	/* Renew every lease still ours, whatever the share (excess goes back
	 * through `release`, idle connectors first, chosen by the caller)... */
	json_array_foreach(wanted, i, e) {
		const json_t *l = json_object_get(leases, json_string_value(e));
		if (l != NULL && strcmp(json_string_value(json_object_get(l, "owner")), owner) == 0) {
			claim[nclaim++] = json_string_value(e);
			mine++;
		}
	}
	/* ...then take free or expired ones up to the share. Names just
	 * released are not taken back. */
	room = share - (int64_t)mine;
	json_array_foreach(wanted, i, e) {
		const char *name = json_string_value(e);
		const json_t *l = json_object_get(leases, name);
		if (room <= 0)
			break;
		if (in_array(release, name))
			continue;
		if (l == NULL || (strcmp(json_string_value(json_object_get(l, "owner")), owner) != 0 &&
				  json_integer_value(json_object_get(l, "expires")) <= now)) {
			claim[nclaim++] = name;
			room--;
		}
	}
	if (nclaim == 0) {
		free(claim);
		return 0;
	}
	qsort(claim, nclaim, sizeof(*claim), by_name);
	list = json_array();
	for (i = 0; i < nclaim && list != NULL; i++)
		json_array_append_new(list, json_string(claim[i]));
	free(claim);
	if (list == NULL)
		return oom(it);
	/* SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT (its
	 * parser would read ON as a join constraint). */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO connector_leases (connector, owner, expires_at_ms, acquired_at_ms) "
		 "SELECT c, $2, $3, $4 FROM (%s) AS wanted WHERE c IS NOT NULL ORDER BY c "
		 "ON CONFLICT (connector) DO UPDATE SET owner = excluded.owner, "
		 "expires_at_ms = excluded.expires_at_ms, acquired_at_ms = CASE "
		 "WHEN connector_leases.owner = excluded.owner THEN connector_leases.acquired_at_ms "
		 "ELSE excluded.acquired_at_ms END "
		 "WHERE connector_leases.owner = excluded.owner OR connector_leases.expires_at_ms <= $4 "
		 "RETURNING connector",
		 x->dialect == SQL_PG ? "SELECT json_array_elements_text(CAST($1 AS json)) AS c"
				      : "SELECT value AS c FROM json_each($1)");
	st = sql_script_add_text(s, sql, 4, index);
	if (st == NULL) {
		json_decref(list);
		return oom(it);
	}
	sql_bind_text(s, st, 1, list_text(s, list));
	json_decref(list);
	sql_bind_text(s, st, 2, owner);
	sql_bind_int(s, st, 3, now + ttl);
	sql_bind_int(s, st, 4, now);
	st->on_row = held_row;
	st->ctx = it;
	return 0;
}

int store_lease_build(struct store_exec *x, struct store_item *it, unsigned index, struct sql_script *s)
{
	const json_t *p = it->params;
	const char *owner = json_string_value(json_object_get(p, "owner"));
	const json_t *ttl_v = json_object_get(p, "ttl_ms"), *now_v = json_object_get(p, "now_ms");
	int64_t ttl = json_is_integer(ttl_v) ? json_integer_value(ttl_v) : 0;
	int64_t now = json_is_integer(now_v) ? json_integer_value(now_v) : x->now_ms;

	if (owner == NULL || owner[0] == '\0' || strlen(owner) > 200)
		return refuse(it, "owner", "owner must be a non-empty string of at most 200 bytes");
	if (!json_is_true(json_object_get(p, "leave")) && (ttl < 100 || ttl > 86400000))
		return refuse(it, "ttl_ms", "ttl_ms must be an integer from 100 to 86400000");
	if (!string_array(json_object_get(p, "connectors")) || !string_array(json_object_get(p, "release")))
		return refuse(it, "connectors", "connectors and release must be arrays of connector names");
	if (it->phase == 0)
		return build_phase0(x, it, index, s, owner, now, ttl);
	return build_phase1(x, it, index, s, owner, now, ttl);
}

void store_lease_done(struct store_exec *x, struct store_item *it)
{
	json_t *held;
	int64_t share;

	(void)x;
	if (it->result == NULL) {
		/* leave, or nothing to claim */
		it->result = json_pack("{s:[], s:I, s:I, s:i}", "held", "instances",
				       json_integer_value(json_object_get(it->scratch, "instances")), "share",
				       (json_int_t)0, "excess", 0);
		return;
	}
	held = json_object_get(it->result, "held");
	share = json_integer_value(json_object_get(it->result, "share"));
	if ((int64_t)json_array_size(held) > share)
		json_object_set_new(it->result, "excess", json_integer((json_int_t)json_array_size(held) - share));
}
