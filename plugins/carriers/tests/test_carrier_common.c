/*
 * test_carrier_common.c - unit tests of plugins/carriers/common/: the
 * mapping tables (well formed, and identical to docs/carriers.md), time and
 * offset parsing, Retry-After, record building (latest event wins, status
 * fallback, delivered_at, schema bounds, a failed record refused),
 * unknown-code logging, refused credentials, the tracking cursor and the
 * shared descriptor callbacks (create, the start
 * of build_request, action dispatch). The plugins' request/response
 * behaviour is covered by their kit cases.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hub/sdk.h>

#include "../common/carrier.h"

/* ---- a minimal host: logs counted, records captured ---------------------- */

static int warnings;
static char last_log[512];
static json_t *emitted;

static void fake_log(struct hub_conn *conn, enum hub_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	if (level == HUB_LOG_WARN)
		warnings++;
}

static int fake_emit(struct hub_call *call, enum hub_record_kind kind, json_t *record)
{
	if (kind != HUB_RECORD_TRACKING) {
		json_decref(record);
		return -1;
	}
	json_array_append_new(emitted, record);
	return 0;
}

/* A response: the fake host reads these for any message handle. */
static int resp_status;
static const char *resp_body;

static int fake_msg_status(const struct hub_msg *msg)
{
	return resp_status;
}

static const char *fake_msg_body(const struct hub_msg *msg, size_t *len)
{
	*len = strlen(resp_body);
	return resp_body;
}

static struct hub_host fake_host;
static struct carrier_conn cc;

static const struct carrier_def ups_def = {
	.carrier = "ups",
	.label = "UPS",
	.default_base = "https://onlinetools.ups.com",
	.need = CARRIER_NEED_OAUTH,
	.token_path = "/security/v1/oauth/token",
	.token_style = CARRIER_OAUTH_BASIC,
};

static const struct carrier_def dhl_def = {
	.carrier = "dhl",
	.label = "DHL",
	.default_base = "https://api-eu.dhl.com",
	.need = CARRIER_NEED_API_KEY,
};

static int setup(void **state)
{
	memset(&fake_host, 0, sizeof(fake_host));
	fake_host.abi_version = HUB_ABI_VERSION;
	fake_host.struct_size = sizeof(fake_host);
	fake_host.log = fake_log;
	fake_host.emit = fake_emit;
	fake_host.msg_status = fake_msg_status;
	fake_host.msg_body = fake_msg_body;
	memset(&cc, 0, sizeof(cc));
	cc.host = &fake_host;
	cc.def = &ups_def;
	cc.carrier = "ups";
	cc.label = "UPS";
	warnings = 0;
	last_log[0] = '\0';
	emitted = json_array();
	return 0;
}

static int teardown(void **state)
{
	json_decref(emitted);
	return 0;
}

/* ---- tables ---------------------------------------------------------------- */

static void test_tables_well_formed(void **state)
{
	const struct carrier_table *const *t;

	for (t = carrier_tables; *t; t++) {
		const struct carrier_code_map *a, *b;

		assert_non_null((*t)->name);
		assert_non_null((*t)->source);
		assert_non_null((*t)->rows[0].code);
		for (a = (*t)->rows; a->code; a++) {
			assert_true(a->status <= CARRIER_DEFER);
			assert_non_null(a->text);
			assert_true(strlen(a->code) > 0 && strlen(a->code) <= 64);
			/* no code listed twice (the first would hide the second) */
			for (b = a + 1; b->code; b++)
				if (strcmp(a->code, b->code) == 0)
					fail_msg("%s lists %s twice", (*t)->name, a->code);
		}
	}
}

static void test_table_lookups(void **state)
{
	enum carrier_status s = CARRIER_UNKNOWN;

	assert_int_equal(carrier_table_find(&carrier_ups_status_codes, "11", &s), 1);
	assert_int_equal(s, CARRIER_DELIVERED);
	assert_int_equal(carrier_table_find(&carrier_ups_status_codes, "011", &s), 0);
	assert_int_equal(carrier_table_find(&carrier_ups_activity_types, "MV", &s), 1);
	assert_int_equal(s, CARRIER_CANCELLED);
	/* FedEx compares case-insensitively: the vendor table writes "Ow". */
	assert_int_equal(carrier_table_find(&carrier_fedex_event_codes, "Ow", &s), 1);
	assert_int_equal(s, CARRIER_IN_TRANSIT);
	assert_int_equal(carrier_table_find(&carrier_fedex_event_codes, "RR", &s), 1);
	assert_int_equal(s, CARRIER_DEFER);
	assert_int_equal(carrier_table_find(&carrier_usps_event_codes, "01", &s), 1);
	assert_int_equal(s, CARRIER_DELIVERED);
	assert_int_equal(carrier_table_find(&carrier_usps_categories, "out for delivery", &s), 1);
	assert_int_equal(s, CARRIER_OUT_FOR_DELIVERY);
	assert_int_equal(carrier_table_find(&carrier_dhl_status_codes, "failure", &s), 1);
	assert_int_equal(s, CARRIER_DELIVERY_FAILED);
	assert_int_equal(carrier_table_find(&carrier_dhl_status_codes, NULL, &s), 0);
	assert_int_equal(carrier_table_find(&carrier_dhl_status_codes, "", &s), 0);
	assert_string_equal(carrier_status_name(CARRIER_AVAILABLE_FOR_PICKUP), "available_for_pickup");
	assert_string_equal(carrier_status_name((enum carrier_status)99), "unknown");
}

/* Every row of every table appears in docs/carriers.md as
 * "| `code` | status | text |", so the documented mapping is the code's. */
static void test_tables_match_docs(void **state)
{
	const char *srcdir = getenv("HUB_SRCDIR");
	char path[4096], row[512];
	const struct carrier_table *const *t;
	char *doc;
	long size;
	FILE *f;

	if (!srcdir)
		srcdir = getenv("srcdir"); /* automake's, relative to the build dir */
	snprintf(path, sizeof(path), "%s/docs/carriers.md", srcdir ? srcdir : ".");
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (set srcdir)", path);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	doc = malloc((size_t)size + 1);
	assert_non_null(doc);
	assert_int_equal(fread(doc, 1, (size_t)size, f), (size_t)size);
	doc[size] = '\0';
	fclose(f);
	for (t = carrier_tables; *t; t++) {
		const struct carrier_code_map *r;

		for (r = (*t)->rows; r->code; r++) {
			snprintf(row, sizeof(row), "\n| `%s` | %s | %s |\n", r->code,
				 r->status == CARRIER_DEFER ? "*defer*" : carrier_status_name(r->status),
				 r->text);
			if (!strstr(doc, row))
				fail_msg("docs/carriers.md lacks the %s row%s", (*t)->name, row);
		}
	}
	free(doc);
}

static void test_map_logs_unlisted(void **state)
{
	assert_int_equal(carrier_map(&cc, &carrier_dhl_status_codes, "statusCode", "transit", "N1"),
			 CARRIER_IN_TRANSIT);
	assert_int_equal(warnings, 0);
	/* documented "unknown" is not an unlisted code */
	assert_int_equal(carrier_map(&cc, &carrier_dhl_status_codes, "statusCode", "unknown", "N1"),
			 CARRIER_UNKNOWN);
	assert_int_equal(warnings, 0);
	assert_int_equal(carrier_map(&cc, &carrier_dhl_status_codes, "statusCode", "lost", "N1"),
			 CARRIER_UNKNOWN);
	assert_int_equal(warnings, 1);
	assert_non_null(strstr(last_log, "'lost'"));
	assert_non_null(strstr(last_log, "N1"));
	assert_non_null(strstr(last_log, "dhl_status_codes"));
	assert_int_equal(carrier_map(&cc, &carrier_dhl_status_codes, "statusCode", NULL, "N1"),
			 CARRIER_UNKNOWN);
	assert_int_equal(warnings, 1);
}

/* ---- times ------------------------------------------------------------------ */

static void test_offsets(void **state)
{
	int m = 1;

	assert_int_equal(carrier_offset_parse("-05:00", &m), 0);
	assert_int_equal(m, -300);
	assert_int_equal(carrier_offset_parse("-7:00", &m), 0);
	assert_int_equal(m, -420);
	assert_int_equal(carrier_offset_parse("+0530", &m), 0);
	assert_int_equal(m, 330);
	assert_int_equal(carrier_offset_parse("+05", &m), 0);
	assert_int_equal(m, 300);
	assert_int_equal(carrier_offset_parse("Z", &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(carrier_offset_parse("+18:00", &m), 0);
	assert_int_equal(m, 1080);
	assert_int_equal(carrier_offset_parse("+18:30", &m), -1);
	assert_int_equal(carrier_offset_parse("05:00", &m), -1);
	assert_int_equal(carrier_offset_parse("-05:0", &m), -1);
	assert_int_equal(carrier_offset_parse("-05:60", &m), -1);
	assert_int_equal(carrier_offset_parse("", &m), -1);
	assert_int_equal(carrier_offset_parse(NULL, &m), -1);
}

static void test_compact_times(void **state)
{
	int64_t ms = 0;
	char buf[32];

	assert_int_equal(carrier_time_compact("20210210", "071356", &ms), 0);
	hub_time_format(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2021-02-10T07:13:56.000Z");
	/* UPS's gmtTime example "74700" is 07:47:00 */
	assert_int_equal(carrier_time_compact("20210210", "74700", &ms), 0);
	hub_time_format(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2021-02-10T07:47:00.000Z");
	assert_int_equal(carrier_time_compact("20210210", NULL, &ms), 0);
	hub_time_format(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2021-02-10T00:00:00.000Z");
	assert_int_equal(carrier_time_compact("string", "071356", &ms), -1);
	assert_int_equal(carrier_time_compact("20210230", "071356", &ms), -1);
	assert_int_equal(carrier_time_compact("20210210", "0713567", &ms), -1);
	assert_int_equal(carrier_time_compact("20210210", "07:13", &ms), -1);
	assert_int_equal(carrier_time_compact(NULL, "071356", &ms), -1);
}

static void test_iso_times(void **state)
{
	struct carrier_time t;
	char buf[32];

	assert_int_equal(carrier_time_iso("2018-02-02T12:01:00-07:00", &t), 0);
	hub_time_format(t.utc_ms, buf, sizeof(buf));
	assert_string_equal(buf, "2018-02-02T19:01:00.000Z");
	assert_int_equal(t.has_offset, 1);
	assert_int_equal(t.offset_min, -420);
	assert_int_equal(carrier_time_iso("2024-11-22T18:58:40Z", &t), 0);
	assert_int_equal(t.has_offset, 1);
	assert_int_equal(t.offset_min, 0);
	/* zone-less local time: kept as UTC wall clock, no offset */
	assert_int_equal(carrier_time_iso("2007-09-27T00:00:00", &t), 0);
	hub_time_format(t.utc_ms, buf, sizeof(buf));
	assert_string_equal(buf, "2007-09-27T00:00:00.000Z");
	assert_int_equal(t.has_offset, 0);
	/* a bare date is midnight */
	assert_int_equal(carrier_time_iso("2019-05-07", &t), 0);
	hub_time_format(t.utc_ms, buf, sizeof(buf));
	assert_string_equal(buf, "2019-05-07T00:00:00.000Z");
	assert_int_equal(carrier_time_iso("string", &t), -1);
	assert_int_equal(carrier_time_iso("", &t), -1);
	assert_int_equal(carrier_time_iso(NULL, &t), -1);
}

static void test_retry_after(void **state)
{
	int64_t now = 0, ms = -1;

	assert_int_equal(carrier_retry_after_ms("30", now, &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(carrier_retry_after_ms(" 2.5 ", now, &ms), 0);
	assert_int_equal(ms, 2500);
	assert_int_equal(hub_time_parse("2026-07-01T12:00:00Z", 0, &now, NULL, NULL), 0);
	assert_int_equal(carrier_retry_after_ms("Wed, 01 Jul 2026 12:01:30 GMT", now, &ms), 0);
	assert_int_equal(ms, 90000);
	/* a date in the past: no wait */
	assert_int_equal(carrier_retry_after_ms("Wed, 01 Jul 2026 11:00:00 GMT", now, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(carrier_retry_after_ms("soon", now, &ms), -1);
	assert_int_equal(carrier_retry_after_ms("30s", now, &ms), -1);
	assert_int_equal(carrier_retry_after_ms("Wed, 01 Jul 2026 12:01:30 CET", now, &ms), -1);
	assert_int_equal(carrier_retry_after_ms(NULL, now, &ms), -1);
}

/* ---- events and records ------------------------------------------------------ */

/* An event at `iso`; fills *t (call it before reading t: argument
 * evaluation order is unspecified). */
static json_t *make_event(const char *iso, enum carrier_status s, struct carrier_time *t)
{
	struct carrier_loc loc = {"Wayne", "NJ", "07470", "US"};

	assert_int_equal(carrier_time_iso(iso, t), 0);
	return carrier_event_new(t, s, "CODE", NULL, "scan", &loc);
}

static void test_latest_event_wins(void **state)
{
	struct carrier_record r;
	struct carrier_time t1, t2, t3;
	struct hub_error err;
	const json_t *rec;
	json_t *ev;

	assert_int_equal(carrier_record_init(&r, "ups", "1Z1"), 0);
	/* listed out of time order: the latest by time decides (10:00Z) */
	ev = make_event("2026-06-30T09:00:00Z", CARRIER_IN_TRANSIT, &t1);
	assert_int_equal(carrier_record_add_event(&r, ev, t1.utc_ms, CARRIER_IN_TRANSIT), 0);
	ev = make_event("2026-06-30T12:00:00+02:00", CARRIER_DELIVERED, &t2);
	assert_int_equal(carrier_record_add_event(&r, ev, t2.utc_ms, CARRIER_DELIVERED), 0);
	/* same instant as t2 but listed after it: t2 (listed first) keeps it */
	ev = make_event("2026-06-30T10:00:00Z", CARRIER_EXCEPTION, &t3);
	assert_int_equal(carrier_record_add_event(&r, ev, t3.utc_ms, CARRIER_EXCEPTION), 0);
	assert_int_equal(carrier_record_emit(&cc, NULL, &r, CARRIER_PRE_TRANSIT, &err), HUB_OK);
	assert_null(r.obj);
	rec = json_array_get(emitted, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "status")), "delivered");
	assert_string_equal(json_string_value(json_object_get(rec, "delivered_at")),
			    "2026-06-30T10:00:00.000Z");
	assert_int_equal(json_array_size(json_object_get(rec, "events")), 3);
	assert_true(json_is_false(json_object_get(rec, "not_found")));
	assert_true(json_is_null(json_object_get(rec, "service")));
}

static void test_delivered_at_and_fallback(void **state)
{
	struct carrier_record r;
	struct carrier_time t;
	struct hub_error err;
	const json_t *rec;
	json_t *ev;

	/* delivered event: delivered_at derived from it */
	assert_int_equal(carrier_record_init(&r, "usps", "94001"), 0);
	ev = make_event("2026-06-30T14:21:00-04:00", CARRIER_DELIVERED, &t);
	assert_int_equal(carrier_record_add_event(&r, ev, t.utc_ms, CARRIER_DELIVERED), 0);
	assert_int_equal(carrier_record_emit(&cc, NULL, &r, CARRIER_UNKNOWN, &err), HUB_OK);
	rec = json_array_get(emitted, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "delivered_at")),
			    "2026-06-30T18:21:00.000Z");

	/* latest event unknown (or defer): the status block decides */
	assert_int_equal(carrier_record_init(&r, "usps", "94002"), 0);
	ev = make_event("2026-06-30T10:00:00Z", CARRIER_DEFER, &t);
	assert_int_equal(carrier_record_add_event(&r, ev, t.utc_ms, CARRIER_DEFER), 0);
	assert_int_equal(carrier_record_emit(&cc, NULL, &r, CARRIER_OUT_FOR_DELIVERY, &err), HUB_OK);
	rec = json_array_get(emitted, 1);
	assert_string_equal(json_string_value(json_object_get(rec, "status")), "out_for_delivery");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(rec, "events"), 0), "status")),
			    "unknown");

	/* no event at all: the block, "defer" never leaks out */
	assert_int_equal(carrier_emit_not_found(&cc, NULL, "94003", &err), HUB_OK);
	rec = json_array_get(emitted, 2);
	assert_true(json_is_true(json_object_get(rec, "not_found")));
	assert_string_equal(json_string_value(json_object_get(rec, "status")), "unknown");
	assert_int_equal(json_array_size(json_object_get(rec, "events")), 0);
}

static void test_event_bounds(void **state)
{
	struct carrier_time t = {0, 1, -300};
	struct carrier_loc far = {NULL, NULL, NULL, "UNITED STATES"};
	struct carrier_loc none = {"", NULL, "", NULL};
	char desc[1100 * 2 + 1];
	json_t *ev;
	size_t i;

	/* 1100 two-byte characters: cut at 1024 characters, on a boundary */
	for (i = 0; i < 1100; i++) {
		desc[2 * i] = (char)0xC3;
		desc[2 * i + 1] = (char)0xA9; /* e-acute */
	}
	desc[2 * 1100] = '\0';
	ev = carrier_event_new(&t, CARRIER_IN_TRANSIT, NULL, NULL, desc, &far);
	assert_non_null(ev);
	assert_int_equal(strlen(json_string_value(json_object_get(ev, "description"))), 2048);
	/* a country name is not a code: dropped, and nothing else -> null */
	assert_true(json_is_null(json_object_get(ev, "location")));
	assert_int_equal(json_integer_value(json_object_get(ev, "utc_offset_minutes")), -300);
	assert_true(json_is_null(json_object_get(ev, "carrier_code")));
	json_decref(ev);

	/* a sequence cut by a fixed-size buffer: the prefix before it is kept */
	desc[0] = 'a';
	desc[1] = (char)0xC3; /* lead byte without its continuation */
	desc[2] = '\0';
	ev = carrier_event_new(&t, CARRIER_IN_TRANSIT, "\xE2\x82", NULL, desc, &none);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "description")), "a");
	assert_true(json_is_null(json_object_get(ev, "carrier_code")));
	json_decref(ev);

	ev = carrier_event_new(&t, CARRIER_DEFER, "X", "Y", NULL, &none);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "description")), "");
	assert_string_equal(json_string_value(json_object_get(ev, "status")), "unknown");
	assert_true(json_is_null(json_object_get(ev, "location")));
	json_decref(ev);
}

static void test_join_text(void **state)
{
	char buf[16];

	assert_string_equal(carrier_join_text("Delivered", "Left at door", buf, sizeof(buf)),
			    "Delivered - Lef"); /* cut to the buffer */
	assert_string_equal(carrier_join_text("Delivered", "Delivered", buf, sizeof(buf)),
			    "Delivered");
	assert_string_equal(carrier_join_text("Delivered", NULL, buf, sizeof(buf)), "Delivered");
	assert_string_equal(carrier_join_text(NULL, "Left", buf, sizeof(buf)), "Left");
	assert_null(carrier_join_text(NULL, NULL, buf, sizeof(buf)));
}

/* A record whose setter failed is refused by emit, with the plugin's
 * message, and consumed; scans go in through carrier_record_add_scan. */
static void test_failed_record_refused(void **state)
{
	struct carrier_record r;
	struct carrier_time t;
	struct carrier_loc loc = {"Wayne", "NJ", "07470", "US"};
	struct hub_error err;

	assert_int_equal(carrier_record_start(&cc, &r, "1Z9", &err), HUB_OK);
	assert_int_equal(carrier_time_iso("2026-06-30T09:00:00Z", &t), 0);
	assert_int_equal(carrier_record_add_scan(&cc, &r, &t, CARRIER_IN_TRANSIT, "I", "X", "scan",
						 &loc, &err),
			 HUB_OK);
	assert_int_equal(json_array_size(r.events), 1);
	assert_int_equal(r.failed, 0);
	/* a failing add: the event could not be built */
	assert_int_equal(carrier_record_add_event(&r, NULL, t.utc_ms, CARRIER_IN_TRANSIT), -1);
	assert_int_equal(r.failed, 1);
	memset(&err, 0, sizeof(err));
	assert_int_equal(carrier_record_emit(&cc, NULL, &r, CARRIER_UNKNOWN, &err), HUB_FATAL);
	assert_null(r.obj);
	assert_string_equal(err.message, "out of memory building a UPS tracking record");
	assert_int_equal(json_array_size(emitted), 0);
}

/* ---- HTTP ---------------------------------------------------------------------- */

static void test_refused_and_peek(void **state)
{
	struct hub_error err;
	json_t *doc;

	resp_status = 403;
	resp_body = "{\"title\": \"Forbidden\"}";
	memset(&err, 0, sizeof(err));
	carrier_http_refused(&cc, NULL, "tracking request", "api_key", "the API key: check it", &err);
	assert_string_equal(err.field, "api_key");
	assert_int_equal(err.upstream_status, 403);
	assert_non_null(strstr(err.message, "UPS refused the API key: check it (UPS tracking "
					    "request failed with HTTP 403: {"));
	doc = carrier_body_peek(&cc, NULL);
	assert_non_null(doc);
	assert_string_equal(carrier_jstr(doc, "title"), "Forbidden");
	json_decref(doc);
	resp_body = "<html>";
	assert_null(carrier_body_peek(&cc, NULL));
}

/* ---- cursor and config ---------------------------------------------------------- */

static void test_cursor_numbers(void **state)
{
	const char *out[2];
	struct hub_error err;
	size_t n = 9;
	json_t *c;

	assert_int_equal(carrier_cursor_numbers(NULL, out, 2, &n, &err), HUB_OK);
	assert_int_equal(n, 0);
	c = json_pack("{s:[s,s]}", "tracking_numbers", "A", "B");
	assert_int_equal(carrier_cursor_numbers(c, out, 2, &n, &err), HUB_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[1], "B");
	assert_int_equal(carrier_numbers_has(out, n, "A"), 1);
	assert_int_equal(carrier_numbers_has(out, n, "C"), 0);
	assert_int_equal(carrier_cursor_numbers(c, out, 1, &n, &err), HUB_INVALID);
	assert_string_equal(err.field, "cursor.tracking_numbers");
	json_decref(c);
	c = json_pack("{s:[s,i]}", "tracking_numbers", "A", 7);
	assert_int_equal(carrier_cursor_numbers(c, out, 2, &n, &err), HUB_INVALID);
	json_decref(c);
	c = json_pack("{s:s}", "tracking_numbers", "A");
	assert_int_equal(carrier_cursor_numbers(c, out, 2, &n, &err), HUB_INVALID);
	json_decref(c);
}

static void test_conn_init(void **state)
{
	struct carrier_conn c;
	struct hub_error err;
	json_t *cfg;

	cfg = json_pack("{s:s,s:s,s:s}", "client_id", "id", "client_secret", "s",
			"api_base", "http://127.0.0.1:8080///");
	assert_int_equal(carrier_conn_init(&c, &fake_host, NULL, &ups_def, cfg, &err),
			 HUB_OK);
	assert_string_equal(c.api_base, "http://127.0.0.1:8080");
	carrier_conn_release(&c);
	json_decref(cfg);

	cfg = json_pack("{s:s}", "client_id", "id");
	assert_int_equal(carrier_conn_init(&c, &fake_host, NULL, &ups_def, cfg, &err),
			 HUB_INVALID);
	assert_string_equal(err.field, "client_secret");
	carrier_conn_release(&c);
	json_decref(cfg);

	cfg = json_pack("{s:s,s:s}", "api_key", "k", "api_base", "ftp://x");
	assert_int_equal(carrier_conn_init(&c, &fake_host, NULL, &dhl_def, cfg, &err),
			 HUB_INVALID);
	assert_string_equal(err.field, "api_base");
	carrier_conn_release(&c);
	json_decref(cfg);

	cfg = json_pack("{s:i}", "api_key", 5);
	assert_int_equal(carrier_conn_init(&c, &fake_host, NULL, &dhl_def, cfg, &err),
			 HUB_INVALID);
	assert_string_equal(err.field, "api_key");
	carrier_conn_release(&c);
	json_decref(cfg);
}

/* ---- shared descriptor callbacks ------------------------------------------------ */

struct plugin_state {
	struct carrier_conn cc; /* first, as carrier_create() requires */
	char *extra;
};

static void test_create_and_request_numbers(void **state)
{
	struct plugin_state *ps;
	struct hub_error err;
	const char *numbers[2];
	void *st = (void *)1;
	size_t n = 9;
	json_t *cfg, *cursor;

	/* a config error leaves no state */
	cfg = json_pack("{s:s}", "client_id", "id");
	assert_int_equal(carrier_create(&ups_def, sizeof(*ps), &fake_host, NULL, cfg, &st, &err),
			 HUB_INVALID);
	assert_null(st);
	assert_string_equal(err.field, "client_secret");
	json_decref(cfg);

	cfg = json_pack("{s:s}", "api_key", "k");
	assert_int_equal(carrier_create(&dhl_def, sizeof(*ps), &fake_host, NULL, cfg, &st, &err),
			 HUB_OK);
	ps = st;
	assert_ptr_equal(ps->cc.def, &dhl_def);
	assert_string_equal(ps->cc.label, "DHL");
	assert_string_equal(ps->cc.api_base, "https://api-eu.dhl.com");
	assert_null(ps->extra); /* the plugin's own members start zeroed */

	/* build_request's start: the stream, then the cursor */
	cursor = json_pack("{s:[s]}", "tracking_numbers", "JD1");
	assert_int_equal(carrier_request_numbers(&ps->cc, "orders", cursor, numbers, 2, &n, &err),
			 HUB_INVALID);
	assert_string_equal(err.field, "stream");
	assert_non_null(strstr(err.message, "DHL serves only the tracking stream"));
	assert_int_equal(carrier_request_numbers(&ps->cc, "tracking", cursor, numbers, 2, &n, &err),
			 HUB_OK);
	assert_int_equal(n, 1);
	assert_string_equal(numbers[0], "JD1");
	assert_int_equal(carrier_request_numbers(&ps->cc, "tracking", NULL, numbers, 2, &n, &err),
			 HUB_DONE);
	assert_int_equal(n, 0);
	json_decref(cursor);

	/* no token request for an API-key carrier, nor other actions */
	assert_int_equal(carrier_build_action(ps, "refresh_token", NULL, NULL, &err), HUB_IGNORED);
	assert_int_equal(carrier_read_action(ps, "refresh_token", NULL, NULL, NULL, &err),
			 HUB_IGNORED);
	assert_int_equal(carrier_build_action(&cc, "push_tracking", NULL, NULL, &err), HUB_IGNORED);
	carrier_destroy(ps);
	carrier_destroy(NULL);
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tables_well_formed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_lookups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_match_docs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_logs_unlisted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iso_times, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latest_event_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivered_at_and_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_join_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_record_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_and_peek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_and_request_numbers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
