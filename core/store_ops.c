/*
 * store_ops.c - the store's ops: admin reads with keyset pagination,
 * connector configs with sealed secrets, cursors, tokens, audit, the job
 * outbox and tracking-check leases (see enum store_op in store.h).
 *
 * Each op appends statements to the batch script like a unit does; the
 * ones that must see a row before deciding (one order, then its lines and
 * shipments; the stored connector, then the merged config) take a second
 * phase. Row callbacks build the JSON result directly. Optional filters are
 * assembled from fixed SQL fragments with their values as parameters.
 */
#include "config.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "crypto.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define SECRET_MASK "********"

/* ---- parameters ----------------------------------------------------------- */

static const char *p_str(const json_t *params, const char *key)
{
	const char *s = json_string_value(json_object_get(params, key));

	return s && *s ? s : NULL;
}

static int64_t p_int(const json_t *params, const char *key, int64_t dflt)
{
	const json_t *v = json_object_get(params, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return dflt;
}

static int p_has(const json_t *params, const char *key)
{
	const json_t *v = json_object_get(params, key);

	return v && !json_is_null(v);
}

static int p_bool(const json_t *params, const char *key)
{
	return json_is_true(json_object_get(params, key));
}

static int64_t p_limit(const json_t *params)
{
	int64_t n = p_int(params, "limit", LIMIT_DEFAULT);

	return n < 1 ? 1 : n > LIMIT_MAX ? LIMIT_MAX : n;
}

/* A time given as milliseconds or as an RFC 3339 string. */
static int p_time(const json_t *params, const char *key, int64_t *ms, struct hub_error *err)
{
	const json_t *v = json_object_get(params, key);

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*ms = json_integer_value(v);
		return 1;
	}
	if (json_is_string(v) && hub_time_parse(json_string_value(v), 0, ms, key, err) == 0)
		return 1;
	if (!json_is_string(v))
		hub_error_set(err, key, "%s must be milliseconds or an RFC 3339 time", key);
	return -1;
}

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

/* ---- dynamic statements ------------------------------------------------------- */

#define QB_PARAMS 16

struct qb {
	char sql[2048];
	size_t len;
	struct sql_val p[QB_PARAMS];
	unsigned n;
	int overflow;
};

static void qb_add(struct qb *q, const char *frag)
{
	size_t n = strlen(frag);

	if (q->len + n + 1 > sizeof(q->sql)) {
		q->overflow = 1;
		return;
	}
	memcpy(q->sql + q->len, frag, n + 1);
	q->len += n;
}

/* Appends a fragment in which every "%u" stands for the number of the next
 * parameter, bound to v. */
static void qb_param(struct qb *q, const char *frag, struct sql_val v)
{
	char num[16];
	size_t numlen;

	if (q->n >= QB_PARAMS) {
		q->overflow = 1;
		return;
	}
	q->p[q->n++] = v;
	numlen = (size_t)snprintf(num, sizeof(num), "%u", q->n);
	for (const char *f = frag; *f; f++) {
		const char *piece = f;
		size_t len = 1;

		if (f[0] == '%' && f[1] == 'u') {
			piece = num;
			len = numlen;
			f++;
		}
		if (q->len + len + 1 > sizeof(q->sql)) {
			q->overflow = 1;
			return;
		}
		memcpy(q->sql + q->len, piece, len);
		q->len += len;
	}
	q->sql[q->len] = '\0';
}

static void qb_text(struct qb *q, const char *frag, const char *v)
{
	qb_param(q, frag, (struct sql_val){SQL_TEXT, -1, v});
}

static void qb_int(struct qb *q, const char *frag, int64_t v)
{
	qb_param(q, frag, (struct sql_val){SQL_INT, v, NULL});
}

static struct sql_stmt *qb_emit(struct qb *q, struct sql_script *s, unsigned index)
{
	struct sql_stmt *st;

	if (q->overflow)
		return NULL;
	st = sql_script_add_text(s, q->sql, q->n, index);
	if (st && q->n)
		memcpy(st->params, q->p, q->n * sizeof(q->p[0]));
	return st;
}

/* ---- JSON helpers ---------------------------------------------------------------- */

/* Parses stored JSON text; text that is not JSON comes back as a string. */
static json_t *parse_stored(const char *text)
{
	json_t *v;

	if (!text)
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(text);
}

static void set_text(json_t *obj, const char *key, const char *v)
{
	json_object_set_new(obj, key, v ? json_string(v) : json_null());
}

static void set_int_or_null(json_t *obj, const char *key, const struct sql_row *row, unsigned i)
{
	json_object_set_new(obj, key, sql_col_is_null(row, i) ? json_null()
							       : json_integer(sql_col_int(row, i)));
}

static void set_time_or_null(json_t *obj, const char *key, const struct sql_row *row, unsigned i)
{
	char buf[32];

	if (sql_col_is_null(row, i) || hub_time_format(sql_col_int(row, i), buf, sizeof(buf)) < 0)
		json_object_set_new(obj, key, json_null());
	else
		json_object_set_new(obj, key, json_string(buf));
}

static json_t *items_of(struct store_item *it)
{
	json_t *items;

	if (!it->result)
		it->result = json_object();
	items = json_object_get(it->result, "items");
	if (!items) {
		items = json_array();
		json_object_set_new(it->result, "items", items);
	}
	return items;
}

/* Remembers the keyset position of the row just appended. */
static void note_position(struct store_item *it, int64_t ms, int64_t id)
{
	if (!it->scratch)
		it->scratch = json_array();
	json_array_append_new(it->scratch, json_pack("[I,I]", (json_int_t)ms, (json_int_t)id));
}

/* Trims the extra row fetched to know whether a page follows, and sets
 * next_cursor ("<ms>:<id>", or "<id>" when ms_based is 0). */
static void finish_page(struct store_item *it, int64_t limit, int ms_based)
{
	json_t *items = items_of(it), *pos;
	char cursor[64];

	json_object_set_new(it->result, "next_cursor", json_null());
	if ((int64_t)json_array_size(items) <= limit)
		return;
	json_array_remove(items, (size_t)limit);
	pos = json_array_get(it->scratch, (size_t)limit - 1);
	if (ms_based)
		snprintf(cursor, sizeof(cursor), "%lld:%lld",
			 (long long)json_integer_value(json_array_get(pos, 0)),
			 (long long)json_integer_value(json_array_get(pos, 1)));
	else
		snprintf(cursor, sizeof(cursor), "%lld",
			 (long long)json_integer_value(json_array_get(pos, 1)));
	json_object_set_new(it->result, "next_cursor", json_string(cursor));
}

/* Parses a cursor made by finish_page. Returns 0 (absent), 1, or -1. */
static int parse_cursor(const char *text, int ms_based, int64_t *ms, int64_t *id)
{
	char *end;

	if (!text)
		return 0;
	if (ms_based) {
		*ms = strtoll(text, &end, 10);
		if (end == text || *end != ':')
			return -1;
		text = end + 1;
	}
	*id = strtoll(text, &end, 10);
	if (end == text || *end)
		return -1;
	return 1;
}

/* ---- orders and shipments ------------------------------------------------------- */

/* id, merchant, connector, record, updated_at_ms */
static int order_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	json_t *rec = parse_stored(sql_col_text(row, 3));

	if (!json_is_object(rec)) {
		json_decref(rec);
		rec = json_object();
	}
	json_object_set_new(rec, "id", json_integer(sql_col_int(row, 0)));
	set_text(rec, "merchant", sql_col_text(row, 1));
	set_text(rec, "connector", sql_col_text(row, 2));
	json_array_append_new(items_of(it), rec);
	note_position(it, sql_col_int(row, 4), sql_col_int(row, 0));
	return 0;
}

/* id, merchant, connector, record, status, estimated_delivery_ms, delivered_ms,
 * tracking_status [, updated_at_ms] */
static json_t *shipment_json(const struct sql_row *row)
{
	json_t *rec = parse_stored(sql_col_text(row, 3));

	if (!json_is_object(rec)) {
		json_decref(rec);
		rec = json_object();
	}
	json_object_set_new(rec, "id", json_integer(sql_col_int(row, 0)));
	set_text(rec, "merchant", sql_col_text(row, 1));
	set_text(rec, "connector", sql_col_text(row, 2));
	/* What tracking learnt overrides what the marketplace said. */
	set_text(rec, "status", sql_col_text(row, 4));
	set_time_or_null(rec, "estimated_delivery_at", row, 5);
	set_time_or_null(rec, "delivered_at", row, 6);
	set_text(rec, "tracking_status", sql_col_text(row, 7));
	return rec;
}

static int shipment_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_array_append_new(items_of(it), shipment_json(row));
	note_position(it, sql_col_int(row, 8), sql_col_int(row, 0));
	return 0;
}

static int build_list(struct store_exec *x, struct store_item *it, unsigned index,
		      struct sql_script *s, int shipments)
{
	const json_t *p = it->params;
	int64_t since = 0, cms = 0, cid = 0;
	struct sql_stmt *st;
	struct qb q = {0};
	int rc;

	(void)x;
	rc = p_time(p, "updated_since", &since, store_item_err(it));
	if (rc < 0)
		return refuse(it, "updated_since", store_item_err(it)->message);
	if (parse_cursor(p_str(p, "cursor"), 1, &cms, &cid) < 0)
		return refuse(it, "cursor", "cursor is not one this store returned");
	if (shipments)
		qb_add(&q, "SELECT id, merchant, connector, record, status, estimated_delivery_ms, "
			   "delivered_ms, tracking_status, updated_at_ms FROM shipments WHERE 1 = 1");
	else
		qb_add(&q, "SELECT id, merchant, connector, record, updated_at_ms FROM orders "
			   "WHERE 1 = 1");
	if (p_str(p, "merchant"))
		qb_text(&q, " AND merchant = $%u", p_str(p, "merchant"));
	if (p_str(p, "connector"))
		qb_text(&q, " AND connector = $%u", p_str(p, "connector"));
	if (p_str(p, "status"))
		qb_text(&q, " AND status = $%u", p_str(p, "status"));
	if (rc > 0)
		qb_int(&q, " AND updated_at_ms >= $%u", since);
	if (!shipments && p_str(p, "sku"))
		qb_text(&q, " AND id IN (SELECT order_id FROM order_lines WHERE sku = $%u)",
			p_str(p, "sku"));
	if (shipments && p_str(p, "order_external_id"))
		qb_text(&q, " AND order_external_id = $%u", p_str(p, "order_external_id"));
	if (p_str(p, "cursor")) {
		qb_int(&q, " AND (updated_at_ms < $%u", cms);
		qb_int(&q, " OR (updated_at_ms = $%u", cms);
		qb_int(&q, " AND id < $%u))", cid);
	}
	qb_int(&q, " ORDER BY updated_at_ms DESC, id DESC LIMIT $%u", p_limit(p) + 1);
	st = qb_emit(&q, s, index);
	if (!st)
		return oom(it);
	st->on_row = shipments ? shipment_row : order_row;
	st->ctx = it;
	items_of(it);
	return 0;
}

/* id, merchant, connector, external_id, record, stored_at_ms */
static int order_found(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	json_t *rec = parse_stored(sql_col_text(row, 4));

	if (!json_is_object(rec)) {
		json_decref(rec);
		rec = json_object();
	}
	json_object_set_new(rec, "id", json_integer(sql_col_int(row, 0)));
	set_text(rec, "merchant", sql_col_text(row, 1));
	set_text(rec, "connector", sql_col_text(row, 2));
	json_object_set_new(rec, "stored_at_ms", json_integer(sql_col_int(row, 5)));
	json_decref(it->result);
	it->result = json_pack("{s:o, s:[], s:[]}", "order", rec, "lines", "shipments");
	json_decref(it->scratch);
	it->scratch = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)sql_col_int(row, 0),
				"merchant", sql_col_text(row, 1), "connector", sql_col_text(row, 2),
				"external_id", sql_col_text(row, 3));
	return it->result && it->scratch ? 0 : -1;
}

/* line_no, external_id, sku, title, quantity, unit_price */
static int line_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	json_t *line = json_object();

	json_object_set_new(line, "line_no", json_integer(sql_col_int(row, 0)));
	set_text(line, "external_id", sql_col_text(row, 1));
	set_text(line, "sku", sql_col_text(row, 2));
	set_text(line, "title", sql_col_text(row, 3));
	json_object_set_new(line, "quantity", json_integer(sql_col_int(row, 4)));
	json_object_set_new(line, "unit_price", json_integer(sql_col_int(row, 5)));
	json_array_append_new(json_object_get(it->result, "lines"), line);
	return 0;
}

static int order_shipment_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_array_append_new(json_object_get(it->result, "shipments"), shipment_json(row));
	return 0;
}

/* Whether the found row is outside the caller's merchant scope. */
static int out_of_scope(const struct store_item *it)
{
	const char *want = p_str(it->params, "merchant");
	const char *have = json_string_value(json_object_get(it->scratch, "merchant"));

	return want && (!have || strcmp(want, have) != 0);
}

static int build_get_first(struct store_item *it, unsigned index, struct sql_script *s,
			   int slot_by_id, int slot_by_key, sql_row_fn fn)
{
	const json_t *p = it->params;
	struct sql_stmt *st;

	if (p_has(p, "id")) {
		st = sql_script_add(s, SQL_DEF(slot_by_id), 1, index);
		if (!st)
			return oom(it);
		sql_bind_int(s, st, 1, p_int(p, "id", 0));
	} else if (p_str(p, "connector") && p_str(p, "external_id")) {
		st = sql_script_add(s, SQL_DEF(slot_by_key), 2, index);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 1, p_str(p, "connector"));
		sql_bind_text(s, st, 2, p_str(p, "external_id"));
	} else {
		return refuse(it, "id", "give id, or connector and external_id");
	}
	st->on_row = fn;
	st->ctx = it;
	return 1;
}

static int build_order_get(struct store_exec *x, struct store_item *it, unsigned index,
			   struct sql_script *s)
{
	struct sql_stmt *st;

	(void)x;
	if (it->phase == 0)
		return build_get_first(it, index, s, SQL_ORDER_BY_ID, SQL_ORDER_BY_KEY, order_found);
	if (!it->scratch || out_of_scope(it))
		return 0;
	st = sql_script_add(s, SQL_DEF(SQL_ORDER_LINES_GET), 1, index);
	if (!st)
		return oom(it);
	sql_bind_int(s, st, 1, json_integer_value(json_object_get(it->scratch, "id")));
	st->on_row = line_row;
	st->ctx = it;
	st = sql_script_add(s, SQL_DEF(SQL_ORDER_SHIPMENTS_GET), 3, index);
	if (!st)
		return oom(it);
	sql_bind_text(s, st, 1, json_string_value(json_object_get(it->scratch, "merchant")));
	sql_bind_text(s, st, 2, json_string_value(json_object_get(it->scratch, "connector")));
	sql_bind_text(s, st, 3, json_string_value(json_object_get(it->scratch, "external_id")));
	st->on_row = order_shipment_row;
	st->ctx = it;
	return 0;
}

static int shipment_found(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->result);
	it->result = json_pack("{s:o, s:[]}", "shipment", shipment_json(row), "events");
	json_decref(it->scratch);
	it->scratch = json_pack("{s:I, s:s}", "id", (json_int_t)sql_col_int(row, 0), "merchant",
				sql_col_text(row, 1));
	return it->result && it->scratch ? 0 : -1;
}

static int event_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_array_append_new(json_object_get(it->result, "events"),
			      parse_stored(sql_col_text(row, 0)));
	return 0;
}

static int build_shipment_get(struct store_exec *x, struct store_item *it, unsigned index,
			      struct sql_script *s)
{
	struct sql_stmt *st;

	(void)x;
	if (it->phase == 0)
		return build_get_first(it, index, s, SQL_SHIPMENT_BY_ID, SQL_SHIPMENT_BY_KEY,
				       shipment_found);
	if (!it->scratch || out_of_scope(it))
		return 0;
	st = sql_script_add(s, SQL_DEF(SQL_SHIPMENT_EVENTS_GET), 1, index);
	if (!st)
		return oom(it);
	sql_bind_int(s, st, 1, json_integer_value(json_object_get(it->scratch, "id")));
	st->on_row = event_row;
	st->ctx = it;
	return 0;
}

/* ---- dead letters ----------------------------------------------------------------- */

/* id, merchant, connector, kind, payload, reason, field, upstream_status,
 * created_at_ms, replayed_at_ms */
static json_t *dead_json(const struct sql_row *row)
{
	json_t *d = json_object();

	json_object_set_new(d, "id", json_integer(sql_col_int(row, 0)));
	set_text(d, "merchant", sql_col_text(row, 1));
	set_text(d, "connector", sql_col_text(row, 2));
	set_text(d, "kind", sql_col_text(row, 3));
	json_object_set_new(d, "payload", parse_stored(sql_col_text(row, 4)));
	set_text(d, "reason", sql_col_text(row, 5));
	set_text(d, "field", sql_col_text(row, 6));
	json_object_set_new(d, "upstream_status", json_integer(sql_col_int(row, 7)));
	json_object_set_new(d, "created_at_ms", json_integer(sql_col_int(row, 8)));
	set_int_or_null(d, "replayed_at_ms", row, 9);
	return d;
}

static int dead_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_array_append_new(items_of(it), dead_json(row));
	note_position(it, 0, sql_col_int(row, 0));
	return 0;
}

static int dead_replayed_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->result);
	it->result = dead_json(row);
	it->rows++;
	return 0;
}

static const char dead_cols[] = "SELECT id, merchant, connector, kind, payload, reason, field, "
				"upstream_status, created_at_ms, replayed_at_ms FROM dead_letters";

static int build_dead_list(struct store_item *it, unsigned index, struct sql_script *s)
{
	const json_t *p = it->params;
	int64_t cid = 0, ms;
	struct sql_stmt *st;
	struct qb q = {0};

	if (parse_cursor(p_str(p, "cursor"), 0, &ms, &cid) < 0)
		return refuse(it, "cursor", "cursor is not one this store returned");
	qb_add(&q, dead_cols);
	qb_add(&q, " WHERE 1 = 1");
	if (p_str(p, "connector"))
		qb_text(&q, " AND connector = $%u", p_str(p, "connector"));
	if (p_str(p, "merchant"))
		qb_text(&q, " AND merchant = $%u", p_str(p, "merchant"));
	if (!p_bool(p, "include_replayed"))
		qb_add(&q, " AND replayed_at_ms IS NULL");
	if (p_str(p, "cursor"))
		qb_int(&q, " AND id < $%u", cid);
	qb_int(&q, " ORDER BY id DESC LIMIT $%u", p_limit(p) + 1);
	st = qb_emit(&q, s, index);
	if (!st)
		return oom(it);
	st->on_row = dead_row;
	st->ctx = it;
	items_of(it);
	return 0;
}

static int build_dead_replayed(struct store_exec *x, struct store_item *it, unsigned index,
			       struct sql_script *s)
{
	const json_t *p = it->params;
	struct sql_stmt *st;
	struct qb q = {0};

	if (!p_has(p, "id"))
		return refuse(it, "id", "id is required");
	qb_add(&q, "UPDATE dead_letters SET replayed_at_ms = $1 WHERE id = $2 "
		   "AND replayed_at_ms IS NULL");
	q.p[0] = (struct sql_val){SQL_INT, p_int(p, "now_ms", x->now_ms), NULL};
	q.p[1] = (struct sql_val){SQL_INT, p_int(p, "id", 0), NULL};
	q.n = 2;
	if (p_str(p, "merchant"))
		qb_text(&q, " AND merchant = $%u", p_str(p, "merchant"));
	qb_add(&q, " RETURNING id, merchant, connector, kind, payload, reason, field, "
		   "upstream_status, created_at_ms, replayed_at_ms");
	st = qb_emit(&q, s, index);
	if (!st)
		return oom(it);
	st->on_row = dead_replayed_row;
	st->ctx = it;
	return 0;
}

/* ---- connectors --------------------------------------------------------------------- */

static int name_ok(const char *s, int allow_upper)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++) {
		int c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.' || (allow_upper && c >= 'A' && c <= 'Z')))
			return 0;
	}
	return 1;
}

static int in_list(const json_t *list, const char *key)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), key) == 0)
			return 1;
	}
	return 0;
}

/* name, plugin, merchant, config, secret_keys, paused, access_token,
 * access_token_expires_ms, created_at_ms, updated_at_ms */
struct conn_ctx {
	struct store_item *it;
	const unsigned char *key;
	int reveal;
	int single; /* result is the connector itself, not a list */
};

static json_t *connector_json(const struct sql_row *row, const unsigned char *key, int reveal,
			      struct hub_error *err)
{
	const char *name = sql_col_text(row, 0), *token = sql_col_text(row, 6);
	json_t *c = json_object(), *config = parse_stored(sql_col_text(row, 3));
	json_t *secrets = parse_stored(sql_col_text(row, 4)), *v;
	const char *k;
	char aad[200];
	void *tmp;

	json_object_set_new(c, "name", json_string(name));
	set_text(c, "plugin", sql_col_text(row, 1));
	set_text(c, "merchant", sql_col_text(row, 2));
	json_object_foreach_safe(config, tmp, k, v) {
		char *plain;

		if (!in_list(secrets, k) || !json_is_string(v))
			continue;
		if (!reveal) {
			json_object_set_new(config, k, json_string(SECRET_MASK));
			continue;
		}
		snprintf(aad, sizeof(aad), "%s/%s", name, k);
		plain = crypto_open(key, json_string_value(v), aad, NULL, err);
		if (!plain) {
			json_object_set_new(config, k, json_null());
			continue;
		}
		json_object_set_new(config, k, parse_stored(plain));
		free(plain);
	}
	json_object_set_new(c, "config", config);
	json_object_set_new(c, "secret_keys", secrets);
	json_object_set_new(c, "paused", json_boolean(sql_col_int(row, 5)));
	json_object_set_new(c, "has_access_token", json_boolean(token != NULL));
	if (reveal && token) {
		char *plain;

		snprintf(aad, sizeof(aad), "%s/access_token", name);
		plain = crypto_open(key, token, aad, NULL, err);
		set_text(c, "access_token", plain);
		free(plain);
	}
	set_int_or_null(c, "access_token_expires_ms", row, 7);
	json_object_set_new(c, "created_at_ms", json_integer(sql_col_int(row, 8)));
	json_object_set_new(c, "updated_at_ms", json_integer(sql_col_int(row, 9)));
	return c;
}

static int connector_row(void *ctx, const struct sql_row *row)
{
	struct conn_ctx *cc = ctx;
	struct store_item *it = cc->it;
	struct hub_error err = {0};
	json_t *c = connector_json(row, cc->key, cc->reveal, &err);

	if (err.message[0]) {
		/* A secret that no longer decrypts: report, do not hand out nulls. */
		*store_item_err(it) = err;
		it->rows = -1;
	}
	if (cc->single) {
		json_decref(it->result);
		it->result = c;
	} else {
		json_array_append_new(items_of(it), c);
	}
	if (it->rows >= 0)
		it->rows++;
	return 0;
}

static struct conn_ctx *conn_ctx_new(struct store_exec *x, struct store_item *it,
				     struct sql_script *s, int single)
{
	struct conn_ctx *cc = sql_arena_alloc(&s->arena, sizeof(*cc));

	if (cc) {
		cc->it = it;
		cc->key = x->key;
		cc->reveal = p_bool(it->params, "reveal");
		cc->single = single;
	}
	return cc;
}

/* Phase 0 of CONNECTOR_PUT: the stored row, raw (secrets stay sealed). */
static int connector_existing(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->scratch);
	it->scratch = json_pack("{s:o, s:o}", "config", parse_stored(sql_col_text(row, 3)),
				"secret_keys", parse_stored(sql_col_text(row, 4)));
	return it->scratch ? 0 : -1;
}

static int build_connector_put(struct store_exec *x, struct store_item *it, unsigned index,
			       struct sql_script *s)
{
	const json_t *p = it->params, *config = json_object_get(p, "config");
	const json_t *secret_keys = json_object_get(p, "secret_keys"), *old_config, *old_keys;
	const char *name = p_str(p, "name"), *k;
	json_t *stored = NULL, *v;
	struct sql_stmt *st;
	char *text = NULL, *keys_text = NULL, aad[200];
	size_t i;

	if (it->phase == 0) {
		if (!name_ok(name, 1))
			return refuse(it, "name", "name must be 1-64 characters of A-Z a-z 0-9 _ - .");
		if (!name_ok(p_str(p, "plugin"), 0))
			return refuse(it, "plugin", "plugin must be a plugin name ([a-z0-9_])");
		if (!name_ok(p_str(p, "merchant"), 1))
			return refuse(it, "merchant", "merchant must be 1-64 characters of "
						      "A-Z a-z 0-9 _ - .");
		if (!json_is_object(config))
			return refuse(it, "config", "config must be a JSON object");
		if (secret_keys && !json_is_array(secret_keys))
			return refuse(it, "secret_keys", "secret_keys must be an array of key names");
		json_array_foreach(secret_keys, i, v) {
			if (!json_is_string(v))
				return refuse(it, "secret_keys", "secret_keys must hold strings");
		}
		st = sql_script_add(s, SQL_DEF(SQL_CONNECTOR_GET), 1, index);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 1, name);
		st->on_row = connector_existing;
		st->ctx = it;
		return 1;
	}
	old_config = json_object_get(it->scratch, "config");
	old_keys = json_object_get(it->scratch, "secret_keys");
	stored = json_object();
	if (!stored)
		return oom(it);
	json_object_foreach((json_t *)config, k, v) {
		if (!in_list(secret_keys, k)) {
			json_object_set(stored, k, v);
			continue;
		}
		if (json_is_null(v)) {
			/* null: keep the secret already stored under this key */
			json_t *old = json_object_get(old_config, k);
			if (old && in_list(old_keys, k))
				json_object_set(stored, k, old);
			continue;
		}
		{
			char *plain = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), *sealed;

			snprintf(aad, sizeof(aad), "%s/%s", name, k);
			sealed = plain ? crypto_seal(x->key, plain, strlen(plain), aad) : NULL;
			if (plain) {
				memset(plain, 0, strlen(plain));
				free(plain);
			}
			if (!sealed || json_object_set_new(stored, k, json_string(sealed)) < 0) {
				free(sealed);
				json_decref(stored);
				return oom(it);
			}
			free(sealed);
		}
	}
	text = json_dumps(stored, JSON_COMPACT);
	json_decref(stored);
	keys_text = secret_keys ? json_dumps(secret_keys, JSON_COMPACT) : strdup("[]");
	if (!text || !keys_text)
		goto fail;
	st = sql_script_add(s, SQL_DEF(SQL_MERCHANT_ENSURE), 2, index);
	if (!st)
		goto fail;
	sql_bind_text(s, st, 1, p_str(p, "merchant"));
	sql_bind_int(s, st, 2, x->now_ms);
	st = sql_script_add(s, SQL_DEF(SQL_CONNECTOR_UPSERT), 7, index);
	if (!st)
		goto fail;
	sql_bind_text(s, st, 1, name);
	sql_bind_text(s, st, 2, p_str(p, "plugin"));
	sql_bind_text(s, st, 3, p_str(p, "merchant"));
	sql_bind_text(s, st, 4, sql_arena_strdup(&s->arena, text));
	sql_bind_text(s, st, 5, sql_arena_strdup(&s->arena, keys_text));
	sql_bind_int(s, st, 6, p_bool(p, "paused"));
	sql_bind_int(s, st, 7, x->now_ms);
	if (!st->params[3].s || !st->params[4].s)
		goto fail;
	free(text);
	free(keys_text);
	json_decref(it->result);
	it->result = json_pack("{s:s, s:b}", "name", name, "created", it->scratch == NULL);
	return 0;
fail:
	free(text);
	free(keys_text);
	return oom(it);
}

static int build_connector_get(struct store_exec *x, struct store_item *it, unsigned index,
			       struct sql_script *s)
{
	struct conn_ctx *cc = conn_ctx_new(x, it, s, 1);
	struct sql_stmt *st;

	if (!p_str(it->params, "name"))
		return refuse(it, "name", "name is required");
	st = sql_script_add(s, SQL_DEF(SQL_CONNECTOR_GET), 1, index);
	if (!st || !cc)
		return oom(it);
	sql_bind_text(s, st, 1, p_str(it->params, "name"));
	st->on_row = connector_row;
	st->ctx = cc;
	return 0;
}

static int build_connectors_list(struct store_exec *x, struct store_item *it, unsigned index,
				 struct sql_script *s)
{
	struct conn_ctx *cc = conn_ctx_new(x, it, s, 0);
	struct sql_stmt *st;
	struct qb q = {0};

	qb_add(&q, "SELECT name, plugin, merchant, config, secret_keys, paused, access_token, "
		   "access_token_expires_ms, created_at_ms, updated_at_ms FROM connectors");
	if (p_str(it->params, "merchant"))
		qb_text(&q, " WHERE merchant = $%u", p_str(it->params, "merchant"));
	qb_add(&q, " ORDER BY name");
	st = qb_emit(&q, s, index);
	if (!st || !cc)
		return oom(it);
	st->on_row = connector_row;
	st->ctx = cc;
	items_of(it);
	return 0;
}

static int count_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	(void)row;
	it->rows++;
	return 0;
}

/* Adds a fixed statement whose first parameter is the op's `key` text. */
static struct sql_stmt *add_keyed(struct store_item *it, unsigned index, struct sql_script *s,
				  int slot, unsigned nparams, const char *value, sql_row_fn fn)
{
	struct sql_stmt *st = sql_script_add(s, SQL_DEF(slot), nparams, index);

	if (!st)
		return NULL;
	sql_bind_text(s, st, 1, value);
	st->on_row = fn;
	st->ctx = it;
	return st;
}

static int build_connector_delete(struct store_exec *x, struct store_item *it, unsigned index,
				  struct sql_script *s)
{
	const char *name = p_str(it->params, "name");

	(void)x;
	if (!name)
		return refuse(it, "name", "name is required");
	if (!add_keyed(it, index, s, SQL_CONNECTOR_DELETE, 1, name, count_row) ||
	    !add_keyed(it, index, s, SQL_CONNECTOR_CURSORS_DELETE, 1, name, NULL) ||
	    !add_keyed(it, index, s, SQL_CONNECTOR_RECEIPTS_DELETE, 1, name, NULL) ||
	    !add_keyed(it, index, s, SQL_CONNECTOR_LEASE_DELETE, 1, name, NULL))
		return oom(it);
	return 0;
}

static int build_connector_pause(struct store_exec *x, struct store_item *it, unsigned index,
				 struct sql_script *s)
{
	const char *name = p_str(it->params, "name");
	struct sql_stmt *st;

	if (!name)
		return refuse(it, "name", "name is required");
	st = add_keyed(it, index, s, SQL_CONNECTOR_PAUSE, 3, name, count_row);
	if (!st)
		return oom(it);
	sql_bind_int(s, st, 2, p_bool(it->params, "paused"));
	sql_bind_int(s, st, 3, x->now_ms);
	return 0;
}

/* ---- cursors ------------------------------------------------------------------------- */

static int cursor_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_object_set_new(it->result, sql_col_text(row, 0),
			    json_pack("{s:o, s:I}", "cursor", parse_stored(sql_col_text(row, 1)),
				      "updated_at_ms", (json_int_t)sql_col_int(row, 2)));
	return 0;
}

static int build_cursors(struct store_exec *x, struct store_item *it, unsigned index,
			 struct sql_script *s)
{
	const json_t *p = it->params;
	const char *connector = p_str(p, "connector");
	struct sql_stmt *st;
	char *text;

	if (!connector)
		return refuse(it, "connector", "connector is required");
	if (it->op == STORE_OP_CURSORS_GET) {
		it->result = json_object();
		if (!add_keyed(it, index, s, SQL_CURSORS_GET, 1, connector, cursor_row))
			return oom(it);
		return 0;
	}
	if (!p_str(p, "stream"))
		return refuse(it, "stream", "stream is required");
	if (!p_has(p, "cursor")) {
		st = add_keyed(it, index, s, SQL_CURSOR_DELETE, 2, connector, NULL);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 2, p_str(p, "stream"));
		return 0;
	}
	text = json_dumps(json_object_get(p, "cursor"), JSON_COMPACT | JSON_ENCODE_ANY);
	st = add_keyed(it, index, s, SQL_CURSOR_UPSERT, 4, connector, NULL);
	if (!st || !text) {
		free(text);
		return oom(it);
	}
	sql_bind_text(s, st, 2, p_str(p, "stream"));
	sql_bind_text(s, st, 3, sql_arena_strdup(&s->arena, text));
	sql_bind_int(s, st, 4, x->now_ms);
	free(text);
	return st->params[2].s ? 0 : oom(it);
}

/* ---- tokens and audit --------------------------------------------------------------- */

static int id_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->result);
	it->result = json_pack("{s:I}", "id", (json_int_t)sql_col_int(row, 0));
	it->rows++;
	return 0;
}

/* id, name, role, merchant, created_at_ms, last_used_ms [, revoked_at_ms] */
static json_t *token_json(const struct sql_row *row)
{
	json_t *t = json_object();

	json_object_set_new(t, "id", json_integer(sql_col_int(row, 0)));
	set_text(t, "name", sql_col_text(row, 1));
	set_text(t, "role", sql_col_text(row, 2));
	set_text(t, "merchant", sql_col_text(row, 3));
	json_object_set_new(t, "created_at_ms", json_integer(sql_col_int(row, 4)));
	set_int_or_null(t, "last_used_ms", row, 5);
	if (row->ncols > 6)
		set_int_or_null(t, "revoked_at_ms", row, 6);
	return t;
}

static int token_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->result);
	it->result = token_json(row);
	it->rows++;
	return 0;
}

static int token_list_row(void *ctx, const struct sql_row *row)
{
	json_array_append_new(items_of(ctx), token_json(row));
	return 0;
}

static int hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (; *s; s++) {
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	}
	return 1;
}

static int build_tokens(struct store_exec *x, struct store_item *it, unsigned index,
			struct sql_script *s)
{
	const json_t *p = it->params;
	int64_t now = p_int(p, "now_ms", x->now_ms);
	struct sql_stmt *st;

	switch (it->op) {
	case STORE_OP_TOKEN_CREATE:
		if (!p_str(p, "name"))
			return refuse(it, "name", "name is required");
		if (!hex64(p_str(p, "hash")))
			return refuse(it, "hash", "hash must be the lower-case hex SHA-256 of the token");
		st = add_keyed(it, index, s, SQL_TOKEN_INSERT, 5, p_str(p, "name"), id_row);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 2, p_str(p, "hash"));
		sql_bind_text(s, st, 3, p_str(p, "role"));
		sql_bind_text(s, st, 4, p_str(p, "merchant"));
		sql_bind_int(s, st, 5, now);
		return 0;
	case STORE_OP_TOKEN_LOOKUP:
		if (!hex64(p_str(p, "hash")))
			return refuse(it, "hash", "hash must be the lower-case hex SHA-256 of the token");
		st = add_keyed(it, index, s, SQL_TOKEN_TOUCH, 3, p_str(p, "hash"), NULL);
		if (!st)
			return oom(it);
		sql_bind_int(s, st, 2, now);
		sql_bind_int(s, st, 3, now - 60000);
		if (!add_keyed(it, index, s, SQL_TOKEN_GET, 1, p_str(p, "hash"), token_row))
			return oom(it);
		return 0;
	case STORE_OP_TOKEN_REVOKE:
		if (!p_str(p, "name"))
			return refuse(it, "name", "name is required");
		st = add_keyed(it, index, s, SQL_TOKEN_REVOKE, 2, p_str(p, "name"), count_row);
		if (!st)
			return oom(it);
		sql_bind_int(s, st, 2, now);
		return 0;
	default:
		st = sql_script_add(s, SQL_DEF(SQL_TOKENS_LIST), 0, index);
		if (!st)
			return oom(it);
		st->on_row = token_list_row;
		st->ctx = it;
		items_of(it);
		return 0;
	}
}

/* id, at_ms, token_name, action, target, detail */
static int audit_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	json_t *a = json_object();

	json_object_set_new(a, "id", json_integer(sql_col_int(row, 0)));
	json_object_set_new(a, "at_ms", json_integer(sql_col_int(row, 1)));
	set_text(a, "token", sql_col_text(row, 2));
	set_text(a, "action", sql_col_text(row, 3));
	set_text(a, "target", sql_col_text(row, 4));
	json_object_set_new(a, "detail", parse_stored(sql_col_text(row, 5)));
	json_array_append_new(items_of(it), a);
	note_position(it, 0, sql_col_int(row, 0));
	return 0;
}

static int build_audit(struct store_exec *x, struct store_item *it, unsigned index,
		       struct sql_script *s)
{
	const json_t *p = it->params;
	struct sql_stmt *st;
	struct qb q = {0};
	int64_t cid = 0, ms;
	char *detail;

	if (it->op == STORE_OP_AUDIT_APPEND) {
		if (!p_str(p, "action"))
			return refuse(it, "action", "action is required");
		detail = p_has(p, "detail") ? json_dumps(json_object_get(p, "detail"),
							 JSON_COMPACT | JSON_ENCODE_ANY)
					    : NULL;
		st = sql_script_add(s, SQL_DEF(SQL_AUDIT_INSERT), 5, index);
		if (!st) {
			free(detail);
			return oom(it);
		}
		sql_bind_int(s, st, 1, p_int(p, "now_ms", x->now_ms));
		sql_bind_text(s, st, 2, p_str(p, "token"));
		sql_bind_text(s, st, 3, p_str(p, "action"));
		sql_bind_text(s, st, 4, p_str(p, "target"));
		sql_bind_text(s, st, 5, detail ? sql_arena_strdup(&s->arena, detail) : NULL);
		free(detail);
		st->on_row = id_row;
		st->ctx = it;
		return 0;
	}
	if (parse_cursor(p_str(p, "cursor"), 0, &ms, &cid) < 0)
		return refuse(it, "cursor", "cursor is not one this store returned");
	qb_add(&q, "SELECT id, at_ms, token_name, action, target, detail FROM audit_log");
	if (p_str(p, "cursor"))
		qb_int(&q, " WHERE id < $%u", cid);
	qb_int(&q, " ORDER BY id DESC LIMIT $%u", p_limit(p) + 1);
	st = qb_emit(&q, s, index);
	if (!st)
		return oom(it);
	st->on_row = audit_row;
	st->ctx = it;
	items_of(it);
	return 0;
}

/* ---- jobs ------------------------------------------------------------------------------ */

/* id, connector, action, payload, attempts, last_error, created_at_ms */
static int job_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	json_t *j = json_object();

	json_object_set_new(j, "id", json_integer(sql_col_int(row, 0)));
	set_text(j, "connector", sql_col_text(row, 1));
	set_text(j, "action", sql_col_text(row, 2));
	json_object_set_new(j, "payload", parse_stored(sql_col_text(row, 3)));
	json_object_set_new(j, "attempts", json_integer(sql_col_int(row, 4)));
	set_text(j, "last_error", sql_col_text(row, 5));
	json_object_set_new(j, "created_at_ms", json_integer(sql_col_int(row, 6)));
	json_array_append_new(items_of(it), j);
	return 0;
}

static int build_jobs(struct store_exec *x, struct store_item *it, unsigned index,
		      struct sql_script *s)
{
	const json_t *p = it->params;
	int64_t now = p_int(p, "now_ms", x->now_ms);
	struct sql_stmt *st;
	struct qb q = {0};
	int dead;

	switch (it->op) {
	case STORE_OP_JOBS_CLAIM:
		qb_text(&q, "UPDATE jobs SET state = 'running', attempts = attempts + 1, "
			    "claimed_by = $%u, ", x->instance_id);
		qb_int(&q, "claim_expires_ms = $%u WHERE id IN (SELECT id FROM jobs WHERE ",
		       now + p_int(p, "lease_ms", 60000));
		qb_int(&q, "((state = 'queued' AND next_run_ms <= $%u) "
			   "OR (state = 'running' AND claim_expires_ms <= $%u))", now);
		if (p_str(p, "connector"))
			qb_text(&q, " AND connector = $%u", p_str(p, "connector"));
		qb_int(&q, " ORDER BY next_run_ms, id LIMIT $%u", p_limit(p));
		if (x->dialect == SQL_PG)
			qb_add(&q, " FOR UPDATE SKIP LOCKED");
		qb_add(&q, ") RETURNING id, connector, action, payload, attempts, last_error, "
			   "created_at_ms");
		st = qb_emit(&q, s, index);
		if (!st)
			return oom(it);
		st->on_row = job_row;
		st->ctx = it;
		items_of(it);
		return 0;
	case STORE_OP_JOB_COMPLETE:
		if (!p_has(p, "id"))
			return refuse(it, "id", "id is required");
		st = sql_script_add(s, SQL_DEF(SQL_JOB_DELETE), 1, index);
		if (!st)
			return oom(it);
		sql_bind_int(s, st, 1, p_int(p, "id", 0));
		st->on_row = count_row;
		st->ctx = it;
		return 0;
	default:
		if (!p_has(p, "id"))
			return refuse(it, "id", "id is required");
		dead = p_bool(p, "dead") || !p_has(p, "next_run_ms");
		if (dead) {
			st = sql_script_add(s, SQL_DEF(SQL_JOB_DEAD_INSERT), 4, index);
			if (!st)
				return oom(it);
			sql_bind_int(s, st, 1, p_int(p, "id", 0));
			sql_bind_text(s, st, 2, p_str(p, "error") ? p_str(p, "error") : "failed");
			sql_bind_int(s, st, 3, p_int(p, "upstream_status", 0));
			sql_bind_int(s, st, 4, now);
			st = sql_script_add(s, SQL_DEF(SQL_JOB_DELETE), 1, index);
			if (!st)
				return oom(it);
			sql_bind_int(s, st, 1, p_int(p, "id", 0));
		} else {
			st = sql_script_add(s, SQL_DEF(SQL_JOB_RETRY), 3, index);
			if (!st)
				return oom(it);
			sql_bind_int(s, st, 1, p_int(p, "id", 0));
			sql_bind_int(s, st, 2, p_int(p, "next_run_ms", now));
			sql_bind_text(s, st, 3, p_str(p, "error"));
		}
		st->on_row = count_row;
		st->ctx = it;
		it->result = json_pack("{s:b}", "dead", dead);
		return 0;
	}
}

/* ---- tracking due ----------------------------------------------------------------------- */

/* tracking_number, shipment_id, not_found_count */
static int due_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;
	const char *number = sql_col_text(row, 0);
	json_t *entry;

	if (!number)
		return 0;
	if (!it->scratch)
		it->scratch = json_object();
	entry = json_object_get(it->scratch, number);
	if (!entry) {
		entry = json_pack("{s:s, s:i, s:I}", "tracking_number", number, "shipments", 0,
				  "not_found_count", (json_int_t)0);
		json_object_set_new(it->scratch, number, entry);
	}
	json_object_set_new(entry, "shipments",
			    json_integer(json_integer_value(json_object_get(entry, "shipments")) + 1));
	if (sql_col_int(row, 2) > json_integer_value(json_object_get(entry, "not_found_count")))
		json_object_set_new(entry, "not_found_count", json_integer(sql_col_int(row, 2)));
	return 0;
}

static int build_tracking_due(struct store_exec *x, struct store_item *it, unsigned index,
			      struct sql_script *s)
{
	const json_t *p = it->params;
	int64_t now = p_int(p, "now_ms", x->now_ms);
	const char *merchant = p_str(p, "merchant");
	struct sql_stmt *st;
	char sql[1024];

	if (!p_str(p, "carrier"))
		return refuse(it, "carrier", "carrier is required");
	/* The outer "next_check_ms <= $3" is re-checked on rows another process
	 * just leased (PostgreSQL re-reads updated rows), so a number is leased
	 * by one process at a time. Shipments already delivered when the hub
	 * first saw them are checked once, for their events and dates.
	 * "checked_before_ms" (an on-demand recheck)
	 * also takes every number not checked since then, due or not. */
	int64_t checked_before = p_int(p, "checked_before_ms", 0);
	char due[160], due_st[160];
	unsigned np = 4;
	if (merchant)
		np++;
	if (checked_before > 0) {
		np++;
		snprintf(due, sizeof(due), "(next_check_ms <= $3 OR COALESCE(last_checked_ms, 0) < $%u)", np);
		snprintf(due_st, sizeof(due_st), "(st.next_check_ms <= $3 OR COALESCE(st.last_checked_ms, 0) < $%u)",
			 np);
	} else {
		snprintf(due, sizeof(due), "next_check_ms <= $3");
		snprintf(due_st, sizeof(due_st), "st.next_check_ms <= $3");
	}
	snprintf(sql, sizeof(sql),
		 "UPDATE shipment_tracking SET next_check_ms = $1 "
		 "WHERE carrier = $2 AND %s AND (carrier, tracking_number) IN ("
		 "SELECT st.carrier, st.tracking_number FROM shipment_tracking st "
		 "JOIN shipments s ON s.id = st.shipment_id "
		 "WHERE st.carrier = $2 AND %s "
		 "AND (s.status NOT IN ('delivered', 'cancelled') OR st.last_checked_ms IS NULL)%s "
		 "GROUP BY st.carrier, st.tracking_number ORDER BY MIN(st.next_check_ms) LIMIT $4) "
		 "AND (last_checked_ms IS NULL OR shipment_id IN (SELECT id FROM shipments "
		 "WHERE status NOT IN ('delivered', 'cancelled')%s)) "
		 "RETURNING tracking_number, shipment_id, not_found_count",
		 due, due_st, merchant ? " AND s.merchant = $5" : "", merchant ? " AND merchant = $5" : "");
	st = sql_script_add_text(s, sql, np, index);
	if (!st)
		return oom(it);
	sql_bind_int(s, st, 1, now + p_int(p, "lease_ms", 600000));
	sql_bind_text(s, st, 2, p_str(p, "carrier"));
	sql_bind_int(s, st, 3, now);
	sql_bind_int(s, st, 4, p_limit(p));
	if (merchant)
		sql_bind_text(s, st, 5, merchant);
	if (checked_before > 0)
		sql_bind_int(s, st, np, checked_before);
	st->on_row = due_row;
	st->ctx = it;
	items_of(it);
	return 0;
}

static int build_tracking_release(struct store_exec *x, struct store_item *it, unsigned index,
				  struct sql_script *s)
{
	const json_t *p = it->params, *numbers = json_object_get(p, "numbers"), *n;
	int64_t at = p_int(p, "next_check_ms", x->now_ms);
	size_t i;

	if (!p_str(p, "carrier"))
		return refuse(it, "carrier", "carrier is required");
	if (!json_is_array(numbers))
		return refuse(it, "numbers", "numbers must be an array of tracking numbers");
	json_array_foreach(numbers, i, n) {
		struct sql_stmt *st;
		if (!json_is_string(n))
			return refuse(it, "numbers", "numbers must be an array of tracking numbers");
		st = sql_script_add(s, SQL_DEF(SQL_TRACKING_RELEASE), 3, index);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 1, p_str(p, "carrier"));
		sql_bind_text(s, st, 2, json_string_value(n));
		sql_bind_int(s, st, 3, at);
		st->on_row = count_row;
		st->ctx = it;
	}
	return 0;
}

/* ---- merchants, maintenance, stats ------------------------------------------------------ */

static int merchant_row(void *ctx, const struct sql_row *row)
{
	json_array_append_new(items_of(ctx),
			      json_pack("{s:s?, s:s?, s:I}", "id", sql_col_text(row, 0), "name",
					sql_col_text(row, 1), "created_at_ms",
					(json_int_t)sql_col_int(row, 2)));
	return 0;
}

static int stats_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	json_decref(it->result);
	it->result = json_pack("{s:I, s:I, s:I, s:I, s:I}", "orders",
			       (json_int_t)sql_col_int(row, 0), "shipments",
			       (json_int_t)sql_col_int(row, 1), "jobs", (json_int_t)sql_col_int(row, 2),
			       "dead_letters", (json_int_t)sql_col_int(row, 3), "schema_version",
			       (json_int_t)sql_col_int(row, 4));
	return 0;
}

/* SQLite: the page cache of the store's own connection (PRAGMA cache_size,
 * per connection, so only the store can tell), in KiB. */
static int sqlite_cache_row(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	if (it->result) {
		json_object_set_new(it->result, "sqlite_cache_kib", json_integer((json_int_t)sql_col_int(row, 0)));
		json_object_set_new(it->result, "sqlite_synchronous",
				    json_integer((json_int_t)sql_col_int(row, 1)));
	}
	return 0;
}

static int build_misc(struct store_exec *x, struct store_item *it, unsigned index,
		      struct sql_script *s)
{
	const json_t *p = it->params;
	struct sql_stmt *st;

	switch (it->op) {
	case STORE_OP_MERCHANT_PUT:
		if (!name_ok(p_str(p, "id"), 1))
			return refuse(it, "id", "id must be 1-64 characters of A-Z a-z 0-9 _ - .");
		st = add_keyed(it, index, s, SQL_MERCHANT_PUT, 3, p_str(p, "id"), NULL);
		if (!st)
			return oom(it);
		sql_bind_text(s, st, 2, p_str(p, "name"));
		sql_bind_int(s, st, 3, x->now_ms);
		it->result = json_object();
		return 0;
	case STORE_OP_MERCHANTS_LIST:
		st = sql_script_add(s, SQL_DEF(SQL_MERCHANTS_LIST), 0, index);
		if (!st)
			return oom(it);
		st->on_row = merchant_row;
		st->ctx = it;
		items_of(it);
		return 0;
	case STORE_OP_PRUNE:
		st = sql_script_add(s, SQL_DEF(SQL_RECEIPTS_PRUNE), 1, index);
		if (!st)
			return oom(it);
		sql_bind_int(s, st, 1, p_int(p, "now_ms", x->now_ms));
		st->on_row = count_row;
		st->ctx = it;
		return 0;
	default:
		/* {"estimate": true} on PostgreSQL: orders and shipments from
		 * the server's statistics (maintained at every commit, exact
		 * for inserts and deletes until ANALYZE replaces them with its
		 * estimate) instead of COUNT(*), which reads the whole table. */
#define STATS_REST                                                            \
	"(SELECT COUNT(*) FROM jobs), "                                       \
	"(SELECT COUNT(*) FROM dead_letters WHERE replayed_at_ms IS NULL), "  \
	"(SELECT MAX(version) FROM schema_version)"
		st = sql_script_add_text(
			s,
			x->dialect == SQL_PG && json_is_true(json_object_get(p, "estimate"))
				? "SELECT COALESCE((SELECT n_live_tup FROM pg_stat_user_tables WHERE "
				  "relid = CAST('orders' AS regclass)), 0), "
				  "COALESCE((SELECT n_live_tup FROM pg_stat_user_tables WHERE "
				  "relid = CAST('shipments' AS regclass)), 0), " STATS_REST
				: "SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM shipments), "
				  STATS_REST,
			0, index);
#undef STATS_REST
		if (!st)
			return oom(it);
		st->on_row = stats_row;
		st->ctx = it;
		if (x->dialect == SQL_SQLITE) {
			/* A negative cache_size is in KiB, a positive one in pages. */
			st = sql_script_add_text(s,
						 "SELECT CASE WHEN c.cache_size < 0 THEN -c.cache_size "
						 "ELSE c.cache_size * p.page_size / 1024 END, y.synchronous "
						 "FROM pragma_cache_size() c, pragma_page_size() p, "
						 "pragma_synchronous() y",
						 0, index);
			if (!st)
				return oom(it);
			st->on_row = sqlite_cache_row;
			st->ctx = it;
		}
		return 0;
	}
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int store_op_build(struct store_exec *x, struct store_item *it, unsigned index,
		   struct sql_script *s)
{
	if (!json_is_object(it->params))
		return refuse(it, NULL, "parameters must be a JSON object");
	switch (it->op) {
	case STORE_OP_ORDERS_LIST:
		return build_list(x, it, index, s, 0);
	case STORE_OP_SHIPMENTS_LIST:
		return build_list(x, it, index, s, 1);
	case STORE_OP_ORDER_GET:
		return build_order_get(x, it, index, s);
	case STORE_OP_SHIPMENT_GET:
		return build_shipment_get(x, it, index, s);
	case STORE_OP_DEAD_LETTERS_LIST:
		return build_dead_list(it, index, s);
	case STORE_OP_DEAD_LETTER_REPLAYED:
		return build_dead_replayed(x, it, index, s);
	case STORE_OP_CONNECTOR_PUT:
		return build_connector_put(x, it, index, s);
	case STORE_OP_CONNECTOR_GET:
		return build_connector_get(x, it, index, s);
	case STORE_OP_CONNECTORS_LIST:
		return build_connectors_list(x, it, index, s);
	case STORE_OP_CONNECTOR_DELETE:
		return build_connector_delete(x, it, index, s);
	case STORE_OP_CONNECTOR_PAUSE:
		return build_connector_pause(x, it, index, s);
	case STORE_OP_CURSORS_GET:
	case STORE_OP_CURSOR_PUT:
		return build_cursors(x, it, index, s);
	case STORE_OP_TOKEN_CREATE:
	case STORE_OP_TOKEN_LOOKUP:
	case STORE_OP_TOKEN_REVOKE:
	case STORE_OP_TOKENS_LIST:
		return build_tokens(x, it, index, s);
	case STORE_OP_AUDIT_APPEND:
	case STORE_OP_AUDIT_LIST:
		return build_audit(x, it, index, s);
	case STORE_OP_JOBS_CLAIM:
	case STORE_OP_JOB_COMPLETE:
	case STORE_OP_JOB_FAIL:
		return build_jobs(x, it, index, s);
	case STORE_OP_TRACKING_DUE:
		return build_tracking_due(x, it, index, s);
	case STORE_OP_TRACKING_RELEASE:
		return build_tracking_release(x, it, index, s);
	case STORE_OP_MERCHANT_PUT:
	case STORE_OP_MERCHANTS_LIST:
	case STORE_OP_PRUNE:
	case STORE_OP_STATS:
		return build_misc(x, it, index, s);
	case STORE_OP_LEASES_RENEW:
		return store_lease_build(x, it, index, s);
	}
	return refuse(it, NULL, "unknown store op");
}

void store_op_done(struct store_exec *x, struct store_item *it)
{
	const json_t *p = it->params;
	json_t *items, *v;
	const char *k;

	(void)x;
	it->status = STORE_OK;
	switch (it->op) {
	case STORE_OP_ORDERS_LIST:
	case STORE_OP_SHIPMENTS_LIST:
		finish_page(it, p_limit(p), 1);
		break;
	case STORE_OP_DEAD_LETTERS_LIST:
	case STORE_OP_AUDIT_LIST:
		finish_page(it, p_limit(p), 0);
		break;
	case STORE_OP_ORDER_GET:
	case STORE_OP_SHIPMENT_GET:
		if (!it->scratch || out_of_scope(it)) {
			it->status = STORE_NOT_FOUND;
			hub_error_set(store_item_err(it), NULL, "no such %s",
				      it->op == STORE_OP_ORDER_GET ? "order" : "shipment");
		}
		break;
	case STORE_OP_CONNECTOR_GET:
	case STORE_OP_CONNECTORS_LIST:
		if (it->rows < 0) {
			it->status = STORE_FAILED;
		} else if (it->op == STORE_OP_CONNECTOR_GET && it->rows == 0) {
			it->status = STORE_NOT_FOUND;
			hub_error_set(store_item_err(it), "name", "no connector named %s", p_str(p, "name"));
		}
		break;
	case STORE_OP_DEAD_LETTER_REPLAYED:
	case STORE_OP_CONNECTOR_DELETE:
	case STORE_OP_CONNECTOR_PAUSE:
	case STORE_OP_TOKEN_LOOKUP:
	case STORE_OP_TOKEN_REVOKE:
	case STORE_OP_JOB_COMPLETE:
	case STORE_OP_JOB_FAIL:
		if (it->rows == 0) {
			it->status = STORE_NOT_FOUND;
			hub_error_set(store_item_err(it), NULL, "not found%s",
				      it->op == STORE_OP_DEAD_LETTER_REPLAYED
					      ? " (or already replayed)" : "");
		}
		break;
	case STORE_OP_TRACKING_DUE:
		items = items_of(it);
		json_object_foreach(it->scratch, k, v)
			json_array_append(items, v);
		break;
	case STORE_OP_PRUNE:
		json_decref(it->result);
		it->result = json_pack("{s:I}", "receipts", (json_int_t)it->rows);
		break;
	case STORE_OP_TRACKING_RELEASE:
		json_decref(it->result);
		it->result = json_pack("{s:I}", "released", (json_int_t)(it->rows > 0 ? it->rows : 0));
		break;
	case STORE_OP_LEASES_RENEW:
		store_lease_done(x, it);
		break;
	default:
		break;
	}
	if (it->status == STORE_OK && !it->result)
		it->result = json_object();
	if (it->status != STORE_OK) {
		json_decref(it->result);
		it->result = NULL;
	}
}
