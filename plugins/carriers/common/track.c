/*
 * track.c - building canonical tracking records, shared by the carrier
 * plugins.
 *
 * A carrier plugin walks its own JSON shape and hands each scan to
 * carrier_event_new() and carrier_record_add_event(); this file turns them
 * into sdk/schema/tracking.json records with the same rules for every
 * carrier: times in UTC with the reported zone kept, strings bounded to the
 * schema's limits, the record status taken from the latest event, and
 * unknown codes logged (never guessed). It also holds the connector config
 * parsing and the tracking-stream cursor reading the plugins share.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "carrier.h"

/* Schema limits (sdk/schema/tracking.json, tracking_event.json). */
#define MAX_DESCRIPTION 1024
#define MAX_CODE 64
#define MAX_CITY 256
#define MAX_STATE 128
#define MAX_POSTAL 32
#define MAX_SERVICE 128
#define MAX_SIGNED_BY 256

/* ---- config ------------------------------------------------------------ */

/*
 * carrier_conf_str - copy config[key] (a string) or `def` into *out
 * (malloc'd, NULL when absent without default). Returns HUB_OK or
 * HUB_INVALID with err naming the key.
 */
int carrier_conf_str(const json_t *config, const char *key, int required, const char *def,
		     char **out, struct hub_error *err)
{
	const json_t *v = config ? json_object_get(config, key) : NULL;
	const char *s = def;

	*out = NULL;
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			hub_error_set(err, key, "must be a string");
			return HUB_INVALID;
		}
		s = json_string_value(v);
	}
	if (!s || !*s) {
		if (required) {
			hub_error_set(err, key, "is required: set it in the connector config");
			return HUB_INVALID;
		}
		return HUB_OK;
	}
	*out = strdup(s);
	if (!*out) {
		hub_error_set(err, key, "out of memory");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/*
 * carrier_conn_init - read the settings every carrier plugin has. See
 * carrier.h. On failure the caller still calls carrier_conn_release().
 */
int carrier_conn_init(struct carrier_conn *cc, const struct hub_host *host, struct hub_conn *conn,
		      const struct carrier_def *def, const json_t *config, struct hub_error *err)
{
	size_t len;
	int rc;

	memset(cc, 0, sizeof(*cc));
	cc->host = host;
	cc->conn = conn;
	cc->def = def;
	cc->carrier = def->carrier;
	cc->label = def->label;

	if (config && !json_is_object(config)) {
		hub_error_set(err, NULL, "the config must be a JSON object");
		return HUB_INVALID;
	}
	rc = carrier_conf_str(config, "api_base", 0, def->default_base, &cc->api_base, err);
	if (rc != HUB_OK)
		return rc;
	if (strncmp(cc->api_base, "https://", 8) != 0 && strncmp(cc->api_base, "http://", 7) != 0) {
		hub_error_set(err, "api_base", "must start with https:// (or http:// for a local stand-in)");
		return HUB_INVALID;
	}
	len = strlen(cc->api_base);
	while (len > 0 && cc->api_base[len - 1] == '/')
		cc->api_base[--len] = '\0';

	if (def->need & CARRIER_NEED_OAUTH) {
		rc = carrier_conf_str(config, "client_id", 1, NULL, &cc->client_id, err);
		if (rc != HUB_OK)
			return rc;
		rc = carrier_conf_str(config, "client_secret", 1, NULL, &cc->client_secret, err);
		if (rc != HUB_OK)
			return rc;
	}
	if (def->need & CARRIER_NEED_API_KEY) {
		rc = carrier_conf_str(config, "api_key", 1, NULL, &cc->api_key, err);
		if (rc != HUB_OK)
			return rc;
	}
	return HUB_OK;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/*
 * carrier_conn_release - free what carrier_conn_init() copied, wiping the
 * secrets. Safe on a zeroed or partly filled struct.
 */
void carrier_conn_release(struct carrier_conn *cc)
{
	free(cc->api_base);
	free(cc->client_id);
	free_secret(cc->client_secret);
	free_secret(cc->api_key);
	cc->api_base = cc->client_id = cc->client_secret = cc->api_key = NULL;
}

/* ---- logging and mapping ---------------------------------------------- */

/*
 * carrier_log - printf-style logging through the host table.
 */
void carrier_log(const struct carrier_conn *cc, enum hub_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!cc->host || !cc->host->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cc->host->log(cc->conn, level, "%s", line);
}

/*
 * carrier_map - map one official code; log unlisted ones. See carrier.h.
 */
enum carrier_status carrier_map(const struct carrier_conn *cc, const struct carrier_table *table,
				const char *what, const char *code, const char *number)
{
	enum carrier_status status;

	if (!code || !*code)
		return CARRIER_UNKNOWN;
	if (carrier_table_find(table, code, &status))
		return status;
	carrier_log(cc, HUB_LOG_WARN,
		    "unknown %s %s '%.64s' (tracking number %.64s): not in the %s table "
		    "(docs/carriers.md), no status taken from it",
		    cc->carrier, what, code, number ? number : "?", table->name);
	return CARRIER_UNKNOWN;
}

/* ---- JSON conveniences ------------------------------------------------ */

/* obj[key] if it is a non-empty string. */
const char *carrier_jstr(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;

	return s && *s ? s : NULL;
}

/* obj[key] if it is an object. */
json_t *carrier_jobj(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_object(v) ? v : NULL;
}

/* obj[key] if it is an array. */
json_t *carrier_jarr(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_array(v) ? v : NULL;
}

/* ---- times ------------------------------------------------------------ */

static int all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/*
 * carrier_time_iso - parse an RFC 3339 date-time, keeping its offset, or a
 * zone-less local time (taken as UTC), or a bare date (midnight). See
 * carrier.h.
 */
int carrier_time_iso(const char *text, struct carrier_time *t)
{
	char buf[40];
	int minutes;

	if (!text || !*text)
		return -1;
	if (strlen(text) == 10 && all_digits(text, 4) && text[4] == '-' && text[7] == '-') {
		/* A date only ("2019-05-07"): midnight, no zone. */
		snprintf(buf, sizeof(buf), "%sT00:00:00", text);
		text = buf;
	}
	memset(t, 0, sizeof(*t));
	if (hub_time_offset(text, &minutes) == 0) {
		if (hub_time_parse(text, 0, &t->utc_ms, NULL, NULL) != 0)
			return -1;
		t->has_offset = 1;
		t->offset_min = minutes;
		return 0;
	}
	return hub_time_parse(text, 1, &t->utc_ms, NULL, NULL) == 0 ? 0 : -1;
}

/*
 * carrier_time_compact - "YYYYMMDD" + "HHMMSS" local wall-clock fields as
 * UTC milliseconds. See carrier.h.
 */
int carrier_time_compact(const char *date8, const char *time6, int64_t *utc_ms)
{
	char hms[7] = "000000";
	char iso[32];
	size_t tl;

	if (!date8 || strlen(date8) != 8 || !all_digits(date8, 8))
		return -1;
	if (time6 && *time6) {
		tl = strlen(time6);
		if (tl > 6 || !all_digits(time6, tl))
			return -1;
		memcpy(hms + 6 - tl, time6, tl);
	}
	snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", date8, date8 + 4, date8 + 6,
		 hms, hms + 2, hms + 4);
	return hub_time_parse(iso, 0, utc_ms, NULL, NULL) == 0 ? 0 : -1;
}

/*
 * carrier_offset_parse - "-05:00", "-7:00", "+0530", "+05", "Z" -> minutes
 * east of UTC. See carrier.h.
 */
int carrier_offset_parse(const char *text, int *minutes)
{
	const char *p, *colon;
	int sign, h = 0, m = 0;
	size_t hl;

	if (!text)
		return -1;
	if ((text[0] == 'Z' || text[0] == 'z') && text[1] == '\0') {
		*minutes = 0;
		return 0;
	}
	if (text[0] != '+' && text[0] != '-')
		return -1;
	sign = text[0] == '-' ? -1 : 1;
	p = text + 1;
	colon = strchr(p, ':');
	if (colon) {
		hl = (size_t)(colon - p);
		if (hl < 1 || hl > 2 || !all_digits(p, hl) || strlen(colon + 1) != 2 ||
		    !all_digits(colon + 1, 2))
			return -1;
		m = (colon[1] - '0') * 10 + (colon[2] - '0');
	} else {
		hl = strlen(p);
		if (hl == 4 && all_digits(p, 4)) {
			m = (p[2] - '0') * 10 + (p[3] - '0');
			hl = 2;
		} else if (hl < 1 || hl > 2 || !all_digits(p, hl)) {
			return -1;
		}
	}
	h = hl == 2 ? (p[0] - '0') * 10 + (p[1] - '0') : p[0] - '0';
	if (m > 59 || h * 60 + m > 18 * 60)
		return -1;
	*minutes = sign * (h * 60 + m);
	return 0;
}

/* ---- bounded strings -------------------------------------------------- */

/* A JSON string of at most max_chars code points of s, or JSON null when s
 * is NULL or empty. Values come from jansson (valid UTF-8) but may have been
 * cut by a fixed-size buffer on the way, so the prefix stops before any
 * incomplete or malformed sequence; what jansson still refuses becomes
 * null rather than failing the record. */
static json_t *bounded(const char *s, size_t max_chars)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, chars = 0, w, k;
	json_t *v;

	if (!s || !*s)
		return json_null();
	while (u[i] && chars < max_chars) {
		unsigned char c = u[i];

		w = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
		    : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (w == 0)
			break;
		for (k = 1; k < w; k++)
			if ((u[i + k] & 0xC0) != 0x80)
				break;
		if (k < w)
			break;
		i += w;
		chars++;
	}
	if (i == 0)
		return json_null();
	v = json_stringn(s, i);
	return v ? v : json_null();
}

static int set_bounded(json_t *obj, const char *key, const char *s, size_t max_chars)
{
	json_t *v = bounded(s, max_chars);

	return v ? json_object_set_new(obj, key, v) : -1;
}

/* ---- events and records ----------------------------------------------- */

/*
 * carrier_event_new - one canonical tracking_event. See carrier.h.
 */
json_t *carrier_event_new(const struct carrier_time *t, enum carrier_status status,
			  const char *carrier_code, const char *carrier_status,
			  const char *description, const struct carrier_loc *loc)
{
	json_t *ev = json_object();
	json_t *where = NULL;
	json_t *desc;
	int rc = 0;

	if (!ev)
		return NULL;
	if (status == CARRIER_DEFER)
		status = CARRIER_UNKNOWN;
	rc |= hub_json_set_time(ev, "occurred_at", t->utc_ms);
	rc |= json_object_set_new(ev, "utc_offset_minutes",
				  t->has_offset ? json_integer(t->offset_min) : json_null());
	rc |= json_object_set_new(ev, "status", json_string(carrier_status_name(status)));
	rc |= set_bounded(ev, "carrier_code", carrier_code, MAX_CODE);
	rc |= set_bounded(ev, "carrier_status", carrier_status, MAX_CODE);
	desc = bounded(description, MAX_DESCRIPTION);
	if (desc && json_is_null(desc))
		desc = json_string("");
	rc |= desc ? json_object_set_new(ev, "description", desc) : -1;

	if (loc && ((loc->city && *loc->city) || (loc->state && *loc->state) ||
		    (loc->postal_code && *loc->postal_code) ||
		    (loc->country_code && *loc->country_code && strlen(loc->country_code) <= 3))) {
		where = json_object();
		if (!where) {
			json_decref(ev);
			return NULL;
		}
		rc |= set_bounded(where, "city", loc->city, MAX_CITY);
		rc |= set_bounded(where, "state", loc->state, MAX_STATE);
		rc |= set_bounded(where, "postal_code", loc->postal_code, MAX_POSTAL);
		rc |= set_bounded(where, "country_code",
				  loc->country_code && strlen(loc->country_code) <= 3
					  ? loc->country_code : NULL,
				  3);
	}
	rc |= json_object_set_new(ev, "location", where ? where : json_null());
	if (rc) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

/* Records a setter's failure for carrier_record_emit(); returns rc. */
static int mark(struct carrier_record *r, int rc)
{
	if (rc != 0)
		r->failed = 1;
	return rc;
}

/*
 * carrier_record_init - an empty record for one tracking number. See
 * carrier.h.
 */
int carrier_record_init(struct carrier_record *r, const char *carrier, const char *number)
{
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->latest_status = CARRIER_UNKNOWN;
	r->obj = json_object();
	r->events = json_array();
	if (!r->obj || !r->events) {
		json_decref(r->obj);
		json_decref(r->events);
		r->obj = r->events = NULL;
		return -1;
	}
	rc |= json_object_set_new(r->obj, "carrier", json_string(carrier));
	rc |= set_bounded(r->obj, "tracking_number", number, 64);
	rc |= json_object_set_new(r->obj, "status", json_string("unknown"));
	rc |= json_object_set_new(r->obj, "not_found", json_false());
	rc |= json_object_set_new(r->obj, "service", json_null());
	rc |= json_object_set_new(r->obj, "estimated_delivery_at", json_null());
	rc |= json_object_set_new(r->obj, "delivered_at", json_null());
	rc |= json_object_set_new(r->obj, "signed_by", json_null());
	rc |= json_object_set(r->obj, "events", r->events);
	json_decref(r->events); /* the record holds it; r->events is borrowed */
	if (rc) {
		carrier_record_release(r);
		return -1;
	}
	return 0;
}

/*
 * carrier_record_start - carrier_record_init with a plugin's error. See
 * carrier.h.
 */
int carrier_record_start(const struct carrier_conn *cc, struct carrier_record *r,
			 const char *number, struct hub_error *err)
{
	if (carrier_record_init(r, cc->carrier, number) != 0) {
		hub_error_set(err, NULL, "out of memory building a %s tracking record", cc->label);
		return HUB_FATAL;
	}
	return HUB_OK;
}

/*
 * carrier_record_add_event - append an event and track the latest one.
 */
int carrier_record_add_event(struct carrier_record *r, json_t *event, int64_t utc_ms,
			     enum carrier_status status)
{
	if (!event || json_array_append_new(r->events, event) != 0)
		return mark(r, -1);
	if (status == CARRIER_DEFER)
		status = CARRIER_UNKNOWN;
	if (!r->have_latest || utc_ms > r->latest_ms) {
		r->have_latest = 1;
		r->latest_ms = utc_ms;
		r->latest_status = status;
	}
	if (status == CARRIER_DELIVERED && (!r->have_delivered || utc_ms > r->delivered_ms)) {
		r->have_delivered = 1;
		r->delivered_ms = utc_ms;
	}
	return 0;
}

/*
 * carrier_record_add_scan - build one event and append it. See carrier.h.
 */
int carrier_record_add_scan(const struct carrier_conn *cc, struct carrier_record *r,
			    const struct carrier_time *t, enum carrier_status status,
			    const char *carrier_code, const char *carrier_status,
			    const char *description, const struct carrier_loc *loc,
			    struct hub_error *err)
{
	json_t *ev = carrier_event_new(t, status, carrier_code, carrier_status, description, loc);

	if (carrier_record_add_event(r, ev, t->utc_ms, status) != 0) {
		hub_error_set(err, NULL, "out of memory building a %s tracking event", cc->label);
		return HUB_FATAL;
	}
	return HUB_OK;
}

/* Sets "service" or "signed_by", bounded to the schema. */
int carrier_record_set_str(struct carrier_record *r, const char *key, const char *value)
{
	size_t max = strcmp(key, "signed_by") == 0 ? MAX_SIGNED_BY : MAX_SERVICE;

	return mark(r, set_bounded(r->obj, key, value, max));
}

/* Sets "estimated_delivery_at" or "delivered_at". */
int carrier_record_set_time(struct carrier_record *r, const char *key, int64_t utc_ms)
{
	return mark(r, hub_json_set_time(r->obj, key, utc_ms));
}

/* Marks a number the carrier does not know. */
int carrier_record_set_not_found(struct carrier_record *r)
{
	return mark(r, json_object_set_new(r->obj, "not_found", json_true()));
}

/* Frees an unemitted record. */
void carrier_record_release(struct carrier_record *r)
{
	json_decref(r->obj);
	r->obj = NULL;
	r->events = NULL;
}

/*
 * carrier_record_emit - settle the status and delivered_at, then emit. See
 * carrier.h.
 */
int carrier_record_emit(const struct carrier_conn *cc, struct hub_call *call,
			struct carrier_record *r, enum carrier_status block_status,
			struct hub_error *err)
{
	enum carrier_status status = r->latest_status;
	json_t *obj = r->obj;
	int rc = r->failed ? -1 : 0;

	if (block_status == CARRIER_DEFER)
		block_status = CARRIER_UNKNOWN;
	if (!r->have_latest || status == CARRIER_UNKNOWN)
		status = block_status;
	rc |= json_object_set_new(obj, "status", json_string(carrier_status_name(status)));
	if (status == CARRIER_DELIVERED && r->have_delivered &&
	    json_is_null(json_object_get(obj, "delivered_at")))
		rc |= hub_json_set_time(obj, "delivered_at", r->delivered_ms);
	r->obj = NULL;
	r->events = NULL;
	if (rc) {
		json_decref(obj);
		hub_error_set(err, NULL, "out of memory building a %s tracking record", cc->label);
		return HUB_FATAL;
	}
	if (cc->host->emit(call, HUB_RECORD_TRACKING, obj) != 0) {
		hub_error_set(err, NULL, "the host refused a tracking record");
		return HUB_FATAL;
	}
	return HUB_OK;
}

/*
 * carrier_emit_not_found - the record of a number the carrier does not
 * know (yet): the host records it and rechecks later.
 */
int carrier_emit_not_found(const struct carrier_conn *cc, struct hub_call *call,
			   const char *number, struct hub_error *err)
{
	struct carrier_record r;
	int rc = carrier_record_start(cc, &r, number, err);

	if (rc != HUB_OK)
		return rc;
	carrier_record_set_not_found(&r);
	return carrier_record_emit(cc, call, &r, CARRIER_UNKNOWN, err);
}

/*
 * carrier_join_text - "first - second", or the one given. See carrier.h.
 */
const char *carrier_join_text(const char *first, const char *second, char *buf, size_t size)
{
	if (first && second && strcmp(first, second) != 0) {
		snprintf(buf, size, "%s - %s", first, second);
		return buf;
	}
	return first ? first : second;
}

/* ---- cursor ------------------------------------------------------------ */

/*
 * carrier_cursor_numbers - the tracking numbers the host asks about. See
 * carrier.h.
 */
int carrier_cursor_numbers(const json_t *cursor, const char **out, size_t max, size_t *n,
			   struct hub_error *err)
{
	const json_t *list = json_is_object(cursor) ? json_object_get(cursor, "tracking_numbers") : NULL;
	size_t i, count;

	*n = 0;
	if (!list || json_is_null(list))
		return HUB_OK;
	if (!json_is_array(list)) {
		hub_error_set(err, "cursor.tracking_numbers", "must be an array of strings");
		return HUB_INVALID;
	}
	count = json_array_size(list);
	if (count > max) {
		hub_error_set(err, "cursor.tracking_numbers",
			      "holds %zu numbers but this plugin takes at most %zu per request "
			      "(tracking_batch_max)", count, max);
		return HUB_INVALID;
	}
	for (i = 0; i < count; i++) {
		const json_t *v = json_array_get(list, i);
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;

		if (!s || !*s || strlen(s) > 64) {
			hub_error_set(err, "cursor.tracking_numbers",
				      "item %zu must be a tracking number (1 to 64 characters)", i);
			return HUB_INVALID;
		}
		out[i] = s;
	}
	*n = count;
	return HUB_OK;
}

/* Whether number is in numbers[0..n). */
int carrier_numbers_has(const char *const *numbers, size_t n, const char *number)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(numbers[i], number) == 0)
			return 1;
	return 0;
}
