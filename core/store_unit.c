/*
 * store_unit.c - units: what one plugin call hands to the store (records,
 * cursor, jobs, dead letters, webhook receipt), checked and serialised on
 * the caller's thread, then turned into statements on the store thread.
 *
 * The caller's thread does the per-record work that needs no database:
 * checking the fields the store relies on and serialising the record once,
 * so the store thread only binds parameters. A record that fails the checks
 * becomes a dead letter of the same unit: the page still commits with its
 * cursor, so one poisoned record cannot stall a stream, and the bad record
 * is kept, with the field and the reason, for replay.
 */
#include "config.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "crypto.h"
#include "jtext.h"

static const char *const order_statuses[] = {"open", "closed", "cancelled", NULL};
static const char *const financial_statuses[] = {
	"pending", "authorized", "partially_paid", "paid", "partially_refunded", "refunded",
	"voided", "unknown", NULL};
static const char *const fulfillment_statuses[] = {
	"unfulfilled", "partial", "fulfilled", "restocked", "unknown", NULL};
static const char *const shipment_statuses[] = {
	"pre_transit", "in_transit", "out_for_delivery", "delivered", "available_for_pickup",
	"delivery_failed", "exception", "return_to_sender", "cancelled", "unknown", NULL};

struct store_unit *store_unit_new(const char *merchant, const char *connector)
{
	struct store_unit *u;

	if (!merchant || !connector)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->merchant = strdup(merchant);
	u->connector = strdup(connector);
	if (!u->merchant || !u->connector) {
		store_unit_free(u);
		return NULL;
	}
	return u;
}

/* Gives the unit its random id, which only the dedupe keys of its jobs and
 * dead letters use: drawn when the first of those is added, not for every
 * unit (a webhook rarely has either). 0 or -1. */
static int unit_id(struct store_unit *u)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];

	if (u->id[0])
		return 0;
	if (crypto_random(raw, sizeof(raw)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++) {
		u->id[2 * i] = hex[raw[i] >> 4];
		u->id[2 * i + 1] = hex[raw[i] & 0xF];
	}
	u->id[2 * sizeof(raw)] = '\0';
	return 0;
}

void store_unit_free(struct store_unit *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nrecords; i++) {
		jtext_block_free(u->records[i].text);
		free(u->records[i].extra);
		free(u->records[i].own);
	}
	free(u->records);
	for (size_t i = 0; i < u->njobs; i++) {
		free(u->jobs[i].action);
		free(u->jobs[i].payload);
	}
	free(u->jobs);
	for (size_t i = 0; i < u->ndead; i++) {
		free(u->dead[i].kind);
		free(u->dead[i].payload);
		free(u->dead[i].reason);
		free(u->dead[i].field);
	}
	free(u->dead);
	free(u->merchant);
	free(u->connector);
	free(u->stream);
	free(u->cursor);
	free(u->delivery_id);
	if (u->access_token) {
		memset(u->access_token, 0, strlen(u->access_token));
		free(u->access_token);
	}
	free(u);
}

size_t store_unit_size(const struct store_unit *u)
{
	return u->nrecords + u->ndead;
}

/* Grows an array of elem-sized entries. Returns 0 or -1. Starts small: a
 * webhook's unit holds one record, and an array of eight records would be
 * a "large" allocation for glibc, which first consolidates every small free
 * chunk of the arena (a tenth of a webhook's parse-and-map time). */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	void *bigger;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 2;
	bigger = realloc(*arr, ncap * elem);
	if (!bigger)
		return -1;
	*arr = bigger;
	*cap = ncap;
	return 0;
}

/* ---- record checks ------------------------------------------------------------ */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" exactly: stored event times compare as text. */
static int canonical_time(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return 0;
	}
	return s[sizeof(shape) - 1] == '\0';
}

struct check {
	const char *ctx; /* "order", "order.lines[3]" */
	struct hub_error *err;
};

static int bad(struct check *c, const char *key, const char *why)
{
	char field[120];

	snprintf(field, sizeof(field), "%s.%s", c->ctx, key);
	return hub_error_set(c->err, field, "%s: %s", field, why);
}

/* A string of 1..max bytes (opt: null or missing allowed -> *out NULL). */
static int get_str(struct check *c, const json_t *obj, const char *key, int opt, size_t max,
		   const char **out)
{
	const json_t *v = json_object_get(obj, key);
	size_t len;

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (opt)
			return 0;
		return bad(c, key, "is required");
	}
	if (!json_is_string(v))
		return bad(c, key, "must be a string");
	len = json_string_length(v);
	if (len == 0 && !opt)
		return bad(c, key, "must not be empty");
	if (len > max)
		return bad(c, key, "is too long");
	if (strlen(json_string_value(v)) != len)
		return bad(c, key, "must not contain NUL characters");
	*out = json_string_value(v);
	return 0;
}

static int get_enum(struct check *c, const json_t *obj, const char *key, int opt,
		    const char *const *words, const char **out)
{
	if (get_str(c, obj, key, opt, 64, out) < 0)
		return -1;
	if (!*out)
		return 0;
	for (const char *const *w = words; *w; w++) {
		if (strcmp(*w, *out) == 0)
			return 0;
	}
	return bad(c, key, "is not one of the canonical values");
}

static int get_time(struct check *c, const json_t *obj, const char *key, int opt, int64_t *ms)
{
	const char *s;

	*ms = STORE_NO_TIME;
	if (get_str(c, obj, key, opt, 32, &s) < 0)
		return -1;
	if (!s)
		return 0;
	if (!canonical_time(s) || hub_time_parse(s, 0, ms, NULL, NULL) < 0)
		return bad(c, key, "must be a UTC time \"YYYY-MM-DDTHH:MM:SS.mmmZ\"");
	return 0;
}

static int get_int(struct check *c, const json_t *obj, const char *key, int opt, int64_t min,
		   int64_t *out)
{
	const json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (opt)
			return 0;
		return bad(c, key, "is required");
	}
	if (!json_is_integer(v))
		return bad(c, key, "must be an integer (money in minor units)");
	if (json_integer_value(v) < min)
		return bad(c, key, "is out of range");
	*out = json_integer_value(v);
	return 0;
}

static int carrier_code_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	}
	return 1;
}

static int check_order(struct unit_record *r, const json_t *rec, struct hub_error *err)
{
	struct check c = {"order", err}, lc;
	const json_t *lines, *line;
	char ctx[64];
	size_t i;

	if (get_str(&c, rec, "external_id", 0, 128, &r->external_id) < 0 ||
	    get_str(&c, rec, "number", 1, 64, &r->number) < 0 ||
	    get_str(&c, rec, "name", 1, 128, &r->name) < 0 ||
	    get_enum(&c, rec, "status", 0, order_statuses, &r->status) < 0 ||
	    get_enum(&c, rec, "financial_status", 1, financial_statuses,
		     &r->financial_status) < 0 ||
	    get_enum(&c, rec, "fulfillment_status", 1, fulfillment_statuses,
		     &r->fulfillment_status) < 0 ||
	    get_str(&c, rec, "currency", 0, 3, &r->currency) < 0 ||
	    get_int(&c, rec, "total", 0, INT64_MIN, &r->total) < 0 ||
	    get_time(&c, rec, "created_at", 0, &r->created_ms) < 0 ||
	    get_time(&c, rec, "updated_at", 0, &r->updated_ms) < 0)
		return -1;
	if (strlen(r->currency) != 3 || hub_currency_exponent(r->currency) < 0)
		return bad(&c, "currency", "must be an ISO 4217 code (three capital letters)");
	lines = json_object_get(rec, "lines");
	if (!json_is_array(lines))
		return bad(&c, "lines", "must be an array");
	/* The line columns are kept as they are checked: the store thread binds
	 * them without looking anything up again. */
	r->lines = calloc(json_array_size(lines) + 1, sizeof(*r->lines));
	if (!r->lines)
		return hub_error_set(err, NULL, "out of memory");
	json_array_foreach(lines, i, line) {
		struct unit_line *l = &r->lines[i];

		snprintf(ctx, sizeof(ctx), "order.lines[%zu]", i);
		lc = (struct check){ctx, err};
		if (!json_is_object(line))
			return hub_error_set(err, ctx, "%s: must be an object", ctx);
		if (get_str(&lc, line, "external_id", 0, 128, &l->external_id) < 0 ||
		    get_str(&lc, line, "sku", 1, 128, &l->sku) < 0 ||
		    get_str(&lc, line, "title", 1, 512, &l->title) < 0 ||
		    get_int(&lc, line, "quantity", 0, 0, &l->quantity) < 0 ||
		    get_int(&lc, line, "unit_price", 0, INT64_MIN, &l->unit_price) < 0)
			return -1;
		r->nlines++;
	}
	return 0;
}

static int check_shipment(struct unit_record *r, const json_t *rec, struct hub_error *err)
{
	struct check c = {"shipment", err};
	const json_t *numbers, *num;
	size_t i;

	if (get_str(&c, rec, "external_id", 0, 128, &r->external_id) < 0 ||
	    get_str(&c, rec, "order_external_id", 0, 128, &r->order_external_id) < 0 ||
	    get_str(&c, rec, "carrier", 1, 64, &r->carrier) < 0 ||
	    get_enum(&c, rec, "status", 0, shipment_statuses, &r->status) < 0 ||
	    get_time(&c, rec, "shipped_at", 1, &r->shipped_ms) < 0 ||
	    get_time(&c, rec, "estimated_delivery_at", 1, &r->estimated_ms) < 0 ||
	    get_time(&c, rec, "delivered_at", 1, &r->delivered_ms) < 0 ||
	    get_time(&c, rec, "created_at", 0, &r->created_ms) < 0 ||
	    get_time(&c, rec, "updated_at", 0, &r->updated_ms) < 0)
		return -1;
	if (r->carrier && !carrier_code_ok(r->carrier))
		return bad(&c, "carrier", "must be a carrier code ([a-z0-9_]{1,64})");
	if (!r->carrier)
		r->carrier = "";
	numbers = json_object_get(rec, "tracking_numbers");
	if (!json_is_array(numbers))
		return bad(&c, "tracking_numbers", "must be an array");
	json_array_foreach(numbers, i, num) {
		size_t len = json_is_string(num) ? json_string_length(num) : 0;
		if (len == 0 || len > 64 || strlen(json_string_value(num)) != len)
			return bad(&c, "tracking_numbers",
				   "must hold non-empty strings of at most 64 characters");
	}
	r->nnumbers = json_array_size(numbers);
	r->extra = jtext_dump(numbers, NULL);
	return r->extra ? 0 : hub_error_set(err, NULL, "out of memory");
}

static int check_tracking(struct unit_record *r, const json_t *rec, struct hub_error *err)
{
	struct check c = {"tracking", err}, ec;
	const json_t *events, *ev, *nf;
	char ctx[64];
	const char *s;
	int64_t ms;
	size_t i;

	if (get_str(&c, rec, "carrier", 0, 64, &r->carrier) < 0 ||
	    get_str(&c, rec, "tracking_number", 0, 64, &r->tracking_number) < 0 ||
	    get_enum(&c, rec, "status", 0, shipment_statuses, &r->status) < 0 ||
	    get_time(&c, rec, "estimated_delivery_at", 1, &r->estimated_ms) < 0 ||
	    get_time(&c, rec, "delivered_at", 1, &r->delivered_ms) < 0)
		return -1;
	if (!carrier_code_ok(r->carrier))
		return bad(&c, "carrier", "must be a carrier code ([a-z0-9_]{1,64})");
	nf = json_object_get(rec, "not_found");
	if (nf && !json_is_boolean(nf) && !json_is_null(nf))
		return bad(&c, "not_found", "must be a boolean");
	r->not_found = json_is_true(nf);
	events = json_object_get(rec, "events");
	if (!json_is_array(events))
		return bad(&c, "events", "must be an array");
	json_array_foreach(events, i, ev) {
		snprintf(ctx, sizeof(ctx), "tracking.events[%zu]", i);
		ec = (struct check){ctx, err};
		if (!json_is_object(ev))
			return hub_error_set(err, ctx, "%s: must be an object", ctx);
		if (get_time(&ec, ev, "occurred_at", 0, &ms) < 0 ||
		    get_enum(&ec, ev, "status", 0, shipment_statuses, &s) < 0 ||
		    get_str(&ec, ev, "carrier_code", 1, 64, &s) < 0)
			return -1;
		/* An empty description is a valid scan line. */
		s = json_string_value(json_object_get(ev, "description"));
		if (!s || strlen(s) > 1024)
			return bad(&ec, "description", "must be a string of at most 1024 characters");
	}
	r->extra = jtext_dump(events, NULL);
	return r->extra ? 0 : hub_error_set(err, NULL, "out of memory");
}

/* Bytes to keep s (NUL included), 0 for NULL. */
static size_t keep_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies s to *at and returns the copy (NULL for NULL). */
static const char *keep(char **at, const char *s)
{
	size_t n;
	char *copy;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	copy = memcpy(*at, s, n);
	*at += n;
	return copy;
}

/* Moves the columns the store binds out of the record into r->own, one
 * block: the lines first, then the strings (the record's own strings
 * until now). 0 or -1 (out of memory; r unchanged). */
static int own_columns(struct unit_record *r, const json_t *rec)
{
	const char **cols[] = {&r->external_id, &r->number, &r->name, &r->status,
			       &r->financial_status, &r->fulfillment_status, &r->currency,
			       &r->order_external_id, &r->carrier, &r->tracking_number};
	const size_t ncols = sizeof(cols) / sizeof(cols[0]);
	const json_t *numbers = json_object_get(rec, "tracking_numbers");
	size_t lines_bytes = r->nlines * sizeof(struct unit_line), n = lines_bytes;
	struct unit_line *lines;
	char *block, *at;

	for (size_t i = 0; i < ncols; i++)
		n += keep_len(*cols[i]);
	for (size_t i = 0; i < r->nlines; i++)
		n += keep_len(r->lines[i].external_id) + keep_len(r->lines[i].sku) +
		     keep_len(r->lines[i].title);
	for (size_t i = 0; i < r->nnumbers; i++)
		n += keep_len(json_string_value(json_array_get(numbers, i)));
	block = malloc(n ? n : 1);
	if (!block)
		return -1;
	lines = (struct unit_line *)(void *)block;
	at = block + lines_bytes;
	for (size_t i = 0; i < r->nlines; i++) {
		lines[i] = r->lines[i];
		lines[i].external_id = keep(&at, r->lines[i].external_id);
		lines[i].sku = keep(&at, r->lines[i].sku);
		lines[i].title = keep(&at, r->lines[i].title);
	}
	for (size_t i = 0; i < ncols; i++)
		*cols[i] = keep(&at, *cols[i]);
	r->numbers = at;
	for (size_t i = 0; i < r->nnumbers; i++)
		keep(&at, json_string_value(json_array_get(numbers, i)));
	free(r->lines);
	r->lines = r->nlines ? lines : NULL;
	r->own = block;
	return 0;
}

static const char *kind_name(enum hub_record_kind kind)
{
	switch (kind) {
	case HUB_RECORD_ORDER:
		return "order";
	case HUB_RECORD_SHIPMENT:
		return "shipment";
	case HUB_RECORD_TRACKING:
		return "tracking";
	}
	return "record";
}

int store_unit_add_record(struct store_unit *u, enum hub_record_kind kind, json_t *record,
			  struct hub_error *err)
{
	struct unit_record *r;
	struct hub_error local;
	int rc = -1;

	if (!err)
		err = &local;
	memset(err, 0, sizeof(*err));
	if (grow((void **)&u->records, &u->records_cap, u->nrecords, sizeof(*u->records)) < 0) {
		json_decref(record);
		return hub_error_set(err, NULL, "out of memory");
	}
	r = &u->records[u->nrecords];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->shipped_ms = r->estimated_ms = r->delivered_ms = STORE_NO_TIME;
	if (!json_is_object(record))
		hub_error_set(err, kind_name(kind), "%s: a record must be a JSON object",
			      kind_name(kind));
	else if (kind == HUB_RECORD_ORDER)
		rc = check_order(r, record, err);
	else if (kind == HUB_RECORD_SHIPMENT)
		rc = check_shipment(r, record, err);
	else if (kind == HUB_RECORD_TRACKING)
		rc = check_tracking(r, record, err);
	else
		hub_error_set(err, NULL, "unknown record kind %d", (int)kind);
	if (rc == 0) {
		r->text = jtext_dump_block(record, &r->text_len);
		if (!r->text || own_columns(r, record) < 0) {
			jtext_block_free(r->text);
			rc = hub_error_set(err, NULL, "out of memory");
		}
	}
	if (rc == 0) {
		/* Released here, on the thread that made it: the unit is
		 * freed on another one, after its commit. */
		json_decref(record);
		u->nrecords++;
		return 0;
	}
	free(r->extra);
	free(r->lines);
	/* Refused: keep it as a dead letter of this unit (takes the reference). */
	{
		char dkind[32];

		snprintf(dkind, sizeof(dkind), "record:%s", kind_name(kind));
		store_unit_add_dead_letter(u, dkind, record, err->message,
					   err->field[0] ? err->field : NULL, 0);
	}
	return -1;
}

/* ---- the rest of a unit ------------------------------------------------------ */

static char *dump_or_null(json_t *v)
{
	char *text;

	if (!v)
		return NULL;
	text = jtext_dump(v, NULL);
	json_decref(v);
	return text;
}

int store_unit_set_cursor(struct store_unit *u, const char *stream, json_t *cursor)
{
	char *text = dump_or_null(cursor), *name = stream ? strdup(stream) : NULL;

	if (!text || !name) {
		free(text);
		free(name);
		return -1;
	}
	free(u->stream);
	free(u->cursor);
	u->stream = name;
	u->cursor = text;
	return 0;
}

int store_unit_add_job(struct store_unit *u, const char *action, json_t *payload,
		       int64_t run_at_ms)
{
	struct unit_job *j;
	char *text = payload ? dump_or_null(payload) : strdup("{}");

	if (!text || !action || unit_id(u) < 0 ||
	    grow((void **)&u->jobs, &u->jobs_cap, u->njobs, sizeof(*u->jobs)) < 0) {
		free(text);
		return -1;
	}
	j = &u->jobs[u->njobs];
	j->action = strdup(action);
	if (!j->action) {
		free(text);
		return -1;
	}
	j->payload = text;
	j->run_at_ms = run_at_ms;
	u->njobs++;
	return 0;
}

int store_unit_set_receipt(struct store_unit *u, const char *delivery_id, int64_t expires_at_ms)
{
	char *id = delivery_id ? strdup(delivery_id) : NULL;

	if (!id)
		return -1;
	free(u->delivery_id);
	u->delivery_id = id;
	u->receipt_expires_ms = expires_at_ms;
	return 0;
}

int store_unit_add_dead_letter(struct store_unit *u, const char *kind, json_t *payload,
			       const char *reason, const char *field, int upstream_status)
{
	struct unit_dead *d;
	char *text = dump_or_null(payload);

	if ((payload && !text) || !kind || !reason || unit_id(u) < 0 ||
	    grow((void **)&u->dead, &u->dead_cap, u->ndead, sizeof(*u->dead)) < 0) {
		free(text);
		return -1;
	}
	d = &u->dead[u->ndead];
	d->kind = strdup(kind);
	d->reason = strdup(reason);
	d->field = field ? strdup(field) : NULL;
	if (!d->kind || !d->reason || (field && !d->field)) {
		free(d->kind);
		free(d->reason);
		free(d->field);
		free(text);
		return -1;
	}
	d->payload = text;
	d->upstream_status = upstream_status;
	u->ndead++;
	return 0;
}

int store_unit_set_access_token(struct store_unit *u, const char *token, int64_t expires_at_ms)
{
	char *copy = token ? strdup(token) : NULL;

	if (!copy)
		return -1;
	free(u->access_token);
	u->access_token = copy;
	u->token_expires_ms = expires_at_ms;
	u->has_token = 1;
	return 0;
}

void store_unit_set_next_check(struct store_unit *u, int64_t next_check_ms)
{
	u->next_check_ms = next_check_ms;
}

void store_unit_set_deadline(struct store_unit *u, int64_t deadline_ms)
{
	u->fail_fast = 1;
	u->deadline_ms = deadline_ms;
}

void store_unit_inject_fault(struct store_unit *u)
{
	u->fault = 1;
}

/* ---- statements ---------------------------------------------------------------- */

static int count_written(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	(void)row;
	it->n.written++;
	return 0;
}

static int count_tracked(void *ctx, const struct sql_row *row)
{
	struct store_item *it = ctx;

	(void)row;
	it->n.shipments_tracked++;
	return 0;
}

static void bind_time(struct sql_script *s, struct sql_stmt *st, unsigned i, int64_t ms)
{
	if (ms == STORE_NO_TIME)
		sql_bind_null(st, i);
	else
		sql_bind_int(s, st, i, ms);
}

#define ADD(def, n)                                                 \
	do {                                                        \
		st = sql_script_add(s, SQL_DEF(def), (n), index);   \
		if (!st)                                            \
			return -1;                                  \
	} while (0)

/*
 * PostgreSQL: stamps the upsert `st` (its parameter `stamp_param`: the
 * sequence number this write draws) and adds, right after it, the
 * statement `slot` that replaces the record's child rows on a fresh
 * snapshot, with its first four parameters bound (merchant, connector,
 * external id, sequence number); the caller binds the rest, from 5 to
 * nparams. Returns that statement, or NULL when out of memory.
 */
static struct sql_stmt *add_child_rows(struct store_exec *x, struct sql_script *s, unsigned index,
				       const struct store_unit *u, const struct unit_record *r,
				       struct sql_stmt *st, int stamp_param, int slot, unsigned nparams)
{
	int64_t seq = ++x->written_seq;

	sql_bind_int(s, st, stamp_param, seq);
	st = sql_script_add(s, SQL_DEF(slot), nparams, index);
	if (!st)
		return NULL;
	sql_bind_text(s, st, 1, u->merchant);
	sql_bind_text(s, st, 2, u->connector);
	sql_bind_text(s, st, 3, r->external_id);
	sql_bind_int(s, st, 4, seq);
	return st;
}

/* The columns of an order's lines as a JSON array, in the arena (the
 * PostgreSQL statement expands it). NULL when out of memory. */
static const char *lines_json(struct sql_script *s, const struct unit_record *r)
{
	json_t *cols = json_array();
	const char *out = NULL;
	char *text;

	for (size_t i = 0; i < r->nlines; i++) {
		const struct unit_line *l = &r->lines[i];

		json_array_append_new(cols, json_pack("{s:s, s:s?, s:s?, s:I, s:I}", "external_id",
						      l->external_id, "sku", l->sku, "title",
						      l->title, "quantity", (json_int_t)l->quantity,
						      "unit_price", (json_int_t)l->unit_price));
	}
	text = jtext_dump(cols, NULL);
	json_decref(cols);
	if (text)
		out = sql_arena_strdup(&s->arena, text);
	free(text);
	return out;
}

static int build_order(struct store_exec *x, struct store_item *it, unsigned index,
		       struct sql_script *s, const struct unit_record *r)
{
	const struct store_unit *u = it->unit;
	int pg = x->dialect == SQL_PG;
	struct sql_stmt *st;

	ADD(pg ? SQL_ORDER_WRITE_PG : SQL_ORDER_UPSERT, pg ? 15 : 14);
	sql_bind_text(s, st, 1, u->merchant);
	sql_bind_text(s, st, 2, u->connector);
	sql_bind_text(s, st, 3, r->external_id);
	sql_bind_text(s, st, 4, r->number);
	sql_bind_text(s, st, 5, r->name);
	sql_bind_text(s, st, 6, r->status);
	sql_bind_text(s, st, 7, r->financial_status);
	sql_bind_text(s, st, 8, r->fulfillment_status);
	sql_bind_text(s, st, 9, r->currency);
	sql_bind_int(s, st, 10, r->total);
	sql_bind_int(s, st, 11, r->created_ms);
	sql_bind_int(s, st, 12, r->updated_ms);
	sql_bind_text_len(s, st, 13, r->text, r->text_len);
	sql_bind_int(s, st, 14, x->now_ms);
	st->on_row = count_written;
	st->ctx = it;
	if (pg) {
		const char *lines = lines_json(s, r);

		if (!lines || !(st = add_child_rows(x, s, index, u, r, st, 15, SQL_ORDER_LINES_PG, 5)))
			return -1;
		sql_bind_text(s, st, 5, lines);
		return 0;
	}
	ADD(SQL_ORDER_LINES_DELETE, 1);
	st->flags |= SQL_STMT_DEPENDENT;
	for (size_t i = 0; i < r->nlines; i++) {
		const struct unit_line *l = &r->lines[i];

		ADD(SQL_ORDER_LINE_INSERT, 7);
		st->flags |= SQL_STMT_DEPENDENT;
		sql_bind_int(s, st, 2, (int64_t)i);
		sql_bind_text(s, st, 3, l->external_id);
		sql_bind_text(s, st, 4, l->sku);
		sql_bind_text(s, st, 5, l->title);
		sql_bind_int(s, st, 6, l->quantity);
		sql_bind_int(s, st, 7, l->unit_price);
	}
	return 0;
}

static int build_shipment(struct store_exec *x, struct store_item *it, unsigned index,
			  struct sql_script *s, const struct unit_record *r)
{
	const struct store_unit *u = it->unit;
	int pg = x->dialect == SQL_PG;
	struct sql_stmt *st;
	const char *num;
	size_t i;

	ADD(pg ? SQL_SHIPMENT_WRITE_PG : SQL_SHIPMENT_UPSERT, pg ? 14 : 13);
	sql_bind_text(s, st, 1, u->merchant);
	sql_bind_text(s, st, 2, u->connector);
	sql_bind_text(s, st, 3, r->external_id);
	sql_bind_text(s, st, 4, r->order_external_id);
	sql_bind_text(s, st, 5, r->carrier);
	sql_bind_text(s, st, 6, r->status);
	bind_time(s, st, 7, r->shipped_ms);
	bind_time(s, st, 8, r->estimated_ms);
	bind_time(s, st, 9, r->delivered_ms);
	sql_bind_int(s, st, 10, r->created_ms);
	sql_bind_int(s, st, 11, r->updated_ms);
	sql_bind_text_len(s, st, 12, r->text, r->text_len);
	sql_bind_int(s, st, 13, x->now_ms);
	st->on_row = count_written;
	st->ctx = it;
	if (pg) {
		if (!(st = add_child_rows(x, s, index, u, r, st, 14, SQL_SHIPMENT_TRACKING_PG, 6)))
			return -1;
		sql_bind_text(s, st, 5, r->carrier);
		sql_bind_text(s, st, 6, r->extra);
		return 0;
	}
	ADD(SQL_SHIPMENT_TRACKING_DELETE, 3);
	st->flags |= SQL_STMT_DEPENDENT;
	sql_bind_text(s, st, 2, r->carrier);
	sql_bind_text(s, st, 3, r->extra);
	num = r->numbers;
	for (i = 0; i < r->nnumbers; i++, num += strlen(num) + 1) {
		ADD(SQL_SHIPMENT_TRACKING_INSERT, 3);
		st->flags |= SQL_STMT_DEPENDENT;
		sql_bind_text(s, st, 2, r->carrier);
		sql_bind_text(s, st, 3, num);
	}
	return 0;
}

static int build_tracking(struct store_exec *x, struct store_item *it, unsigned index,
			  struct sql_script *s, const struct unit_record *r)
{
	const struct store_unit *u = it->unit;
	int64_t next = u->next_check_ms ? u->next_check_ms : x->now_ms + 3600 * 1000;
	struct sql_stmt *st;

	if (!r->not_found) {
		ADD(SQL_TRACKING_EVENTS_INSERT, 4);
		sql_bind_text(s, st, 1, r->carrier);
		sql_bind_text(s, st, 2, r->tracking_number);
		sql_bind_text(s, st, 3, r->extra);
		sql_bind_text(s, st, 4, u->merchant);
		ADD(SQL_TRACKING_PUSH_JOBS, 5);
		sql_bind_text(s, st, 1, r->carrier);
		sql_bind_text(s, st, 2, r->tracking_number);
		sql_bind_text(s, st, 3, r->status);
		sql_bind_int(s, st, 4, x->now_ms);
		sql_bind_text(s, st, 5, u->merchant);
		ADD(SQL_TRACKING_SHIPMENTS_UPDATE, 7);
		sql_bind_text(s, st, 1, r->carrier);
		sql_bind_text(s, st, 2, r->tracking_number);
		sql_bind_text(s, st, 3, r->status);
		bind_time(s, st, 4, r->estimated_ms);
		bind_time(s, st, 5, r->delivered_ms);
		sql_bind_int(s, st, 6, x->now_ms);
		sql_bind_text(s, st, 7, u->merchant);
		st->on_row = count_tracked;
		st->ctx = it;
	}
	/* The carrier does not know the number (yet): keep the status, count it. */
	ADD(r->not_found ? SQL_TRACKING_NOT_FOUND_UPDATE : SQL_TRACKING_STATE_UPDATE, 5);
	sql_bind_text(s, st, 1, r->carrier);
	sql_bind_text(s, st, 2, r->tracking_number);
	sql_bind_int(s, st, 3, x->now_ms);
	sql_bind_int(s, st, 4, next);
	sql_bind_text(s, st, 5, u->merchant);
	return 0;
}

int store_unit_receipt_foldable(const struct store_unit *u)
{
	if (!u->delivery_id || u->nrecords == 0 || u->ndead || u->njobs || u->cursor ||
	    u->has_token || u->fault)
		return 0;
	for (size_t i = 0; i < u->nrecords; i++) {
		if (u->records[i].kind != HUB_RECORD_ORDER)
			return 0;
	}
	return 1;
}

/* The unit's own receipt INSERT: a unique violation there makes it a
 * duplicate. 0 or -1. */
static int add_receipt(struct store_exec *x, struct sql_script *s, const struct store_unit *u,
		       unsigned index)
{
	struct sql_stmt *st;

	ADD(SQL_RECEIPT_INSERT, 4);
	sql_bind_text(s, st, 1, u->connector);
	sql_bind_text(s, st, 2, u->delivery_id);
	sql_bind_int(s, st, 3, x->now_ms);
	sql_bind_int(s, st, 4, u->receipt_expires_ms);
	st->flags |= SQL_STMT_DUPLICATE;
	return 0;
}

int store_unit_build(struct store_exec *x, struct store_item *it, unsigned index,
		     struct sql_script *s, int skip_orders)
{
	const struct store_unit *u = it->unit;
	struct sql_stmt *st;
	char *text;

	/* On the bulk path the bulk builder decides where a foldable
	 * unit's receipt goes. */
	if (u->delivery_id && !(skip_orders && store_unit_receipt_foldable(u)) &&
	    add_receipt(x, s, u, index) < 0)
		return -1;
	for (size_t i = 0; i < u->nrecords; i++) {
		const struct unit_record *r = &u->records[i];
		int rc = 0;

		if (r->kind == HUB_RECORD_ORDER) {
			if (!skip_orders)
				rc = build_order(x, it, index, s, r);
		} else if (r->kind == HUB_RECORD_SHIPMENT) {
			rc = build_shipment(x, it, index, s, r);
		} else {
			rc = build_tracking(x, it, index, s, r);
		}
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < u->ndead; i++) {
		const struct unit_dead *d = &u->dead[i];
		ADD(SQL_DEAD_LETTER_INSERT, 9);
		sql_bind_text(s, st, 1, u->merchant);
		sql_bind_text(s, st, 2, u->connector);
		sql_bind_text(s, st, 3, d->kind);
		sql_bind_text(s, st, 4, d->payload);
		sql_bind_text(s, st, 5, d->reason);
		sql_bind_text(s, st, 6, d->field);
		sql_bind_int(s, st, 7, d->upstream_status);
		sql_bind_int(s, st, 8, x->now_ms);
		text = sql_arena_printf(&s->arena, "%s:d%zu", u->id, i);
		if (!text)
			return -1;
		sql_bind_text(s, st, 9, text);
	}
	if (u->cursor) {
		ADD(SQL_CURSOR_UPSERT, 4);
		sql_bind_text(s, st, 1, u->connector);
		sql_bind_text(s, st, 2, u->stream);
		sql_bind_text(s, st, 3, u->cursor);
		sql_bind_int(s, st, 4, x->now_ms);
	}
	for (size_t i = 0; i < u->njobs; i++) {
		const struct unit_job *j = &u->jobs[i];
		ADD(SQL_JOB_INSERT, 6);
		sql_bind_text(s, st, 1, u->connector);
		sql_bind_text(s, st, 2, j->action);
		sql_bind_text(s, st, 3, j->payload);
		sql_bind_int(s, st, 4, j->run_at_ms ? j->run_at_ms : x->now_ms);
		sql_bind_int(s, st, 5, x->now_ms);
		text = sql_arena_printf(&s->arena, "%s:j%zu", u->id, i);
		if (!text)
			return -1;
		sql_bind_text(s, st, 6, text);
	}
	if (u->has_token) {
		char aad[300], *sealed;

		snprintf(aad, sizeof(aad), "%s/access_token", u->connector);
		sealed = crypto_seal(x->key, u->access_token, strlen(u->access_token), aad);
		text = sealed ? sql_arena_strdup(&s->arena, sealed) : NULL;
		free(sealed);
		if (!text)
			return -1;
		ADD(SQL_CONNECTOR_TOKEN_UPDATE, 4);
		sql_bind_text(s, st, 1, u->connector);
		sql_bind_text(s, st, 2, text);
		sql_bind_int(s, st, 3, u->token_expires_ms);
		sql_bind_int(s, st, 4, x->now_ms);
	}
	if (u->fault) {
		ADD(SQL_FAULT, 0);
		st->flags |= SQL_STMT_FAULT;
	}
	return 0;
}

size_t store_unit_order_bytes(const struct store_unit *u)
{
	size_t n = 0;

	for (size_t i = 0; i < u->nrecords; i++) {
		if (u->records[i].kind == HUB_RECORD_ORDER)
			n += u->records[i].text_len + 256;
	}
	return n;
}

/* ---- the bulk order statement (PostgreSQL) --------------------------------------- */

struct bulk {
	struct store_item **owners; /* by position in the statement */
	size_t n;
	struct store_item **folded; /* by receipt position */
	size_t nfolded;
};

static int count_bulk_written(void *ctx, const struct sql_row *row)
{
	struct bulk *b = ctx;
	int64_t pos = sql_col_int(row, 1);

	if (sql_col_int(row, 0) == 0) {
		if (pos >= 1 && (size_t)pos <= b->n)
			b->owners[pos - 1]->n.written++;
	} else if (pos >= 1 && (size_t)pos <= b->nfolded) {
		b->folded[pos - 1]->receipt_folded = 2;
	}
	return 0;
}

static uint64_t hash_texts(const char *const *parts, int n)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (int k = 0; k < n; k++) {
		for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++)
			h = (h ^ *p) * UINT64_C(1099511628211);
		h = (h ^ 0xff) * UINT64_C(1099511628211);
	}
	return h;
}

static uint64_t key_hash(const struct store_unit *u, const struct unit_record *r)
{
	const char *parts[3] = {u->merchant, u->connector, r->external_id};

	return hash_texts(parts, 3);
}

static int same_key(const struct store_unit *a, const struct unit_record *ra,
		    const struct store_unit *b, const struct unit_record *rb)
{
	return strcmp(ra->external_id, rb->external_id) == 0 &&
	       strcmp(a->connector, b->connector) == 0 && strcmp(a->merchant, b->merchant) == 0;
}

int store_unit_keys(const struct store_unit *u, uint64_t *keys, size_t max)
{
	size_t n = 0;

	if (u->nrecords == 0 || u->ndead || u->njobs || u->cursor || u->stream || u->has_token ||
	    u->fault)
		return -1;
	for (size_t i = 0; i < u->nrecords; i++) {
		if (u->records[i].kind != HUB_RECORD_ORDER)
			return -1;
	}
	if (u->delivery_id) {
		const char *parts[2] = {u->connector, u->delivery_id};

		if (n < max)
			keys[n] = hash_texts(parts, 2);
		n++;
	}
	for (size_t i = 0; i < u->nrecords; i++) {
		if (n < max)
			keys[n] = key_hash(u, &u->records[i]);
		n++;
	}
	return (int)n;
}

/* Decides where the receipts of the foldable units among items[from..to)
 * go: into the bulk statement (b->folded, rpos[i - from] = its 1-based
 * position), or, for a unit that shares an order (shared[i - from]) or its
 * delivery id with another unit of the chunk, its own INSERT. 0 or -1. */
static int fold_receipts(struct store_exec *x, struct store_item **items, size_t from, size_t to,
			 struct sql_script *s, unsigned char *shared, size_t *rpos, struct bulk *b)
{
	size_t cap, *slots;

	for (cap = 16; cap < 2 * (to - from); cap *= 2)
		;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = from; i < to; i++) {
		const struct store_unit *u = items[i]->unit;
		const char *parts[2];
		size_t h;

		if (!u || items[i]->final || !store_unit_receipt_foldable(u))
			continue;
		parts[0] = u->connector;
		parts[1] = u->delivery_id;
		for (h = hash_texts(parts, 2) & (cap - 1); slots[h]; h = (h + 1) & (cap - 1)) {
			const struct store_unit *o = items[slots[h] - 1]->unit;

			if (strcmp(o->delivery_id, u->delivery_id) == 0 &&
			    strcmp(o->connector, u->connector) == 0) {
				shared[slots[h] - 1 - from] = shared[i - from] = 1;
				break;
			}
		}
		if (!slots[h])
			slots[h] = i + 1;
	}
	free(slots);
	for (size_t i = from; i < to; i++) {
		const struct store_unit *u = items[i]->unit;

		if (!u || items[i]->final || !store_unit_receipt_foldable(u))
			continue;
		if (shared[i - from]) {
			if (add_receipt(x, s, u, (unsigned)i) < 0)
				return -1;
			continue;
		}
		b->folded[b->nfolded++] = items[i];
		rpos[i - from] = b->nfolded;
		items[i]->receipt_folded = 1;
	}
	return 0;
}

int store_unit_build_orders_bulk(struct store_exec *x, struct store_item **items, size_t from,
				 size_t to, struct sql_script *s)
{
	const struct unit_record **recs = NULL;
	const char **text = NULL;
	int64_t *ints = NULL;
	size_t n = 0, kept = 0, nlines = 0, cap, *slots = NULL, *owner_ix = NULL, *rpos = NULL;
	size_t span = to - from, nf = 0, most;
	unsigned char *shared = NULL;
	struct bulk *b;
	struct sql_stmt *st, *lst;
	int64_t seq;
	int rc = -1;

	for (size_t i = from; i < to; i++) {
		const struct store_unit *u = items[i]->unit;

		if (!u || items[i]->final)
			continue;
		for (size_t k = 0; k < u->nrecords; k++)
			n += u->records[k].kind == HUB_RECORD_ORDER;
	}
	if (n == 0)
		return 0;
	for (cap = 16; cap < 2 * n; cap *= 2)
		;
	b = sql_arena_alloc(&s->arena, sizeof(*b));
	recs = malloc(n * sizeof(*recs));
	owner_ix = malloc(n * sizeof(*owner_ix));
	slots = calloc(cap, sizeof(*slots));
	shared = calloc(span, 1);
	rpos = calloc(span, sizeof(*rpos));
	if (!b || !recs || !owner_ix || !slots || !shared || !rpos)
		goto out;
	b->owners = sql_arena_alloc(&s->arena, n * sizeof(*b->owners));
	b->folded = sql_arena_alloc(&s->arena, span * sizeof(*b->folded));
	b->nfolded = 0;
	if (!b->owners || !b->folded)
		goto out;
	/* Keep one record per key: the newest (the first of equals). */
	for (size_t i = from; i < to; i++) {
		struct store_unit *u = items[i]->unit;

		if (!u || items[i]->final)
			continue;
		for (size_t k = 0; k < u->nrecords; k++) {
			const struct unit_record *r = &u->records[k];
			size_t h;

			if (r->kind != HUB_RECORD_ORDER)
				continue;
			for (h = key_hash(u, r) & (cap - 1); slots[h]; h = (h + 1) & (cap - 1)) {
				size_t j = slots[h] - 1;
				if (same_key(b->owners[j]->unit, recs[j], u, r))
					break;
			}
			if (!slots[h]) {
				slots[h] = kept + 1;
				recs[kept] = r;
				owner_ix[kept] = i;
				b->owners[kept++] = items[i];
				continue;
			}
			/* The same order in two units: neither folds its receipt. */
			if (owner_ix[slots[h] - 1] != i)
				shared[owner_ix[slots[h] - 1] - from] = shared[i - from] = 1;
			if (r->updated_ms > recs[slots[h] - 1]->updated_ms) {
				recs[slots[h] - 1] = r;
				owner_ix[slots[h] - 1] = i;
				b->owners[slots[h] - 1] = items[i];
			}
		}
	}
	b->n = kept;
	if (fold_receipts(x, items, from, to, s, shared, rpos, b) < 0)
		goto out;
	nf = b->nfolded;
	for (size_t j = 0; j < kept; j++)
		nlines += recs[j]->nlines;
	most = kept > nlines ? kept : nlines;
	most = most > nf ? most : nf;
	text = malloc(most * sizeof(*text) + 1);
	ints = malloc(most * sizeof(*ints) + 1);
	if (!text || !ints)
		goto out;
	seq = ++x->written_seq;
	st = sql_script_add(s, SQL_DEF(SQL_ORDERS_BULK_PG), 19, SQL_ITEM_MANY);
	lst = sql_script_add(s, SQL_DEF(SQL_ORDERS_BULK_LINES_PG), 11, SQL_ITEM_MANY);
	if (!st || !lst)
		goto out;
	st = &s->stmts[s->n - 2]; /* the second add may have moved the array */
	st->on_row = count_bulk_written;
	st->ctx = b;
	sql_bind_int(s, st, 14, x->now_ms);
	sql_bind_int(s, st, 19, seq);
	sql_bind_int(s, lst, 4, seq);

#define TEXT_COL(param, expr)                                                 \
	do {                                                                  \
		for (size_t j = 0; j < kept; j++)                             \
			text[j] = (expr);                                     \
		if (sql_bind_array_text(s, st, (param), text, kept) < 0)      \
			goto out;                                             \
	} while (0)
#define INT_COL(param, expr)                                                  \
	do {                                                                  \
		for (size_t j = 0; j < kept; j++)                             \
			ints[j] = (expr);                                     \
		if (sql_bind_array_int8(s, st, (param), ints, kept) < 0)      \
			goto out;                                             \
	} while (0)

	TEXT_COL(1, b->owners[j]->unit->merchant);
	TEXT_COL(2, b->owners[j]->unit->connector);
	TEXT_COL(3, recs[j]->external_id);
	/* The same keys, by position, for the lines statement. */
	for (unsigned k = 0; k < 3; k++)
		lst->params[k] = st->params[k]; /* in the arena, shared */
	TEXT_COL(4, recs[j]->number);
	TEXT_COL(5, recs[j]->name);
	TEXT_COL(6, recs[j]->status);
	TEXT_COL(7, recs[j]->financial_status);
	TEXT_COL(8, recs[j]->fulfillment_status);
	TEXT_COL(9, recs[j]->currency);
	INT_COL(10, recs[j]->total);
	INT_COL(11, recs[j]->created_ms);
	INT_COL(12, recs[j]->updated_ms);
	TEXT_COL(13, recs[j]->text);
	INT_COL(18, (int64_t)rpos[owner_ix[j] - from]);
#undef TEXT_COL
#undef INT_COL

	/* The folded receipts, by position. */
	for (size_t k = 0; k < nf; k++)
		text[k] = b->folded[k]->unit->connector;
	if (sql_bind_array_text(s, st, 15, text, nf) < 0)
		goto out;
	for (size_t k = 0; k < nf; k++)
		text[k] = b->folded[k]->unit->delivery_id;
	if (sql_bind_array_text(s, st, 16, text, nf) < 0)
		goto out;
	for (size_t k = 0; k < nf; k++)
		ints[k] = b->folded[k]->unit->receipt_expires_ms;
	if (sql_bind_array_int8(s, st, 17, ints, nf) < 0)
		goto out;

	/* The lines, flattened; each names its order by position (1-based). */
	for (int col = 0; col < 7; col++) {
		size_t m = 0;

		for (size_t j = 0; j < kept; j++) {
			for (size_t li = 0; li < recs[j]->nlines; li++, m++) {
				const struct unit_line *l = &recs[j]->lines[li];

				switch (col) {
				case 0: ints[m] = (int64_t)j + 1; break;
				case 1: ints[m] = (int64_t)li; break;
				case 2: text[m] = l->external_id; break;
				case 3: text[m] = l->sku; break;
				case 4: text[m] = l->title; break;
				case 5: ints[m] = l->quantity; break;
				default: ints[m] = l->unit_price;
				}
			}
		}
		if ((col >= 2 && col <= 4 ? sql_bind_array_text(s, lst, 5 + (unsigned)col, text, m)
					  : sql_bind_array_int8(s, lst, 5 + (unsigned)col, ints, m)) < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		s->oom = 1;
	free(recs);
	free(owner_ix);
	free(slots);
	free(shared);
	free(rpos);
	free(text);
	free(ints);
	return rc;
}

void store_unit_done(struct store_exec *x, struct store_item *it)
{
	const struct store_unit *u = it->unit;
	unsigned upserts = 0;

	(void)x;
	if (it->receipt_folded == 1) {
		/* The bulk statement found the receipt already stored and
		 * wrote none of the unit's orders. */
		store_item_duplicate(it);
		return;
	}
	for (size_t i = 0; i < u->nrecords; i++) {
		if (u->records[i].kind != HUB_RECORD_TRACKING)
			upserts++;
	}
	it->n.records = (unsigned)u->nrecords;
	it->n.unchanged = upserts >= it->n.written ? upserts - it->n.written : 0;
	it->n.dead_letters = (unsigned)u->ndead;
	it->status = STORE_OK;
}
