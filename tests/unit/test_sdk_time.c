/*
 * test_sdk_time.c - libhubsdk times: RFC 3339 with offsets, fractions, lower
 * case and spaces; assume_utc; calendar and range checks (leap years); the
 * canonical format round trip; offsets kept for tracking events.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static int64_t parse_ok(const char *text, int assume_utc)
{
	struct hub_error err = { 0 };
	int64_t ms = -1;

	if (hub_time_parse(text, assume_utc, &ms, "t", &err) != 0)
		fail_msg("%s refused: %s", text, err.message);
	return ms;
}

static void test_parse_valid(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z", 0), 0);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.001Z", 0), 1);
	/* 2026-07-01T16:30:00Z = 1782923400 s. */
	assert_int_equal(parse_ok("2026-07-01T16:30:00Z", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01T12:30:00-04:00", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01T22:00:00+05:30", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01T22:00:00+0530", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01t16:30:00z", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01 16:30:00Z", 0), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00.5Z", 0), 1782923400500LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00.12Z", 0), 1782923400120LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00.123456789Z", 0), 1782923400123LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00.999999-00:00", 0), 1782923400999LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00", 1), 1782923400000LL);
	assert_int_equal(parse_ok("2026-07-01T16:30:00Z", 1), 1782923400000LL);
	/* Offsets never override assume_utc's purpose: an explicit one is used. */
	assert_int_equal(parse_ok("2026-07-01T17:30:00+01:00", 1), 1782923400000LL);
	/* Leap days and the century rules. */
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z", 0), 1709164800000LL);
	assert_int_equal(parse_ok("2000-02-29T00:00:00Z", 0), 951782400000LL);
	assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z", 0), -1);
	assert_int_equal(parse_ok("1900-01-01T00:00:00Z", 0), -2208988800000LL);
	assert_int_equal(parse_ok("2026-12-31T23:59:59+23:59", 0),
			 parse_ok("2026-12-31T00:00:59Z", 0));
}

static void expect_refused(const char *text, int assume_utc, const char *needle)
{
	struct hub_error err = { 0 };
	int64_t ms = 42;

	assert_int_equal(hub_time_parse(text, assume_utc, &ms, "events[3].occurred_at", &err), -1);
	assert_string_equal(err.field, "events[3].occurred_at");
	if (strstr(err.message, needle) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", text, err.message, needle);
	assert_int_equal(ms, 42);
}

static void test_parse_refused(void **state)
{
	(void)state;
	expect_refused("2026-07-01T16:30:00", 0, "no UTC offset");
	expect_refused("2023-02-29T00:00:00Z", 0, "day out of range");
	expect_refused("1900-02-29T00:00:00Z", 0, "day out of range");
	expect_refused("2026-04-31T00:00:00Z", 0, "day out of range");
	expect_refused("2026-01-00T00:00:00Z", 0, "day out of range");
	expect_refused("2026-13-01T00:00:00Z", 0, "month out of range");
	expect_refused("2026-00-01T00:00:00Z", 0, "month out of range");
	expect_refused("2026-07-01T24:00:00Z", 0, "hour out of range");
	expect_refused("2026-07-01T12:60:00Z", 0, "minute out of range");
	expect_refused("2026-07-01T12:00:60Z", 0, "second out of range");
	expect_refused("2026-07-01T12:00:00+24:00", 0, "offset out of range");
	expect_refused("2026-07-01T12:00:00+01:60", 0, "offset out of range");
	expect_refused("2026-07-01T12:00:00Zjunk", 0, "trailing");
	expect_refused("2026-07-01T12:00:00.Z", 0, "expected");
	expect_refused("2026-07-01", 0, "expected");
	expect_refused("2026-7-1T12:00:00Z", 0, "expected");
	expect_refused("2026-07-01X12:00:00Z", 0, "expected");
	expect_refused("2026-07-01T12:00Z", 0, "expected");
	expect_refused("2026-07-01T12:00:00+1", 0, "expected");
	expect_refused("", 0, "expected");
	expect_refused("not a time", 1, "expected");
	expect_refused(NULL, 0, "missing");
}

static void test_format(void **state)
{
	char buf[32];

	(void)state;
	assert_int_equal(hub_time_format(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	assert_int_equal(hub_time_format(1782923400123LL, buf, 25), 0);
	assert_string_equal(buf, "2026-07-01T16:30:00.123Z");
	assert_int_equal(hub_time_format(-1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	assert_int_equal(hub_time_format(951782400000LL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
	assert_int_equal(hub_time_format(0, buf, 24), -1);
	assert_int_equal(hub_time_format(253402300800000LL, buf, sizeof(buf)), -1); /* year 10000 */

	/* Round trip over a spread of instants, one per ~37 days for 60 years. */
	for (int64_t ms = -315619200000LL; ms < 1893456000000LL; ms += 3196800123LL) {
		assert_int_equal(hub_time_format(ms, buf, sizeof(buf)), 0);
		assert_int_equal(parse_ok(buf, 0), ms);
	}
}

static void test_offset(void **state)
{
	int m = 99;

	(void)state;
	assert_int_equal(hub_time_offset("2026-07-01T12:30:00-04:00", &m), 0);
	assert_int_equal(m, -240);
	assert_int_equal(hub_time_offset("2026-07-01T12:30:00+05:45", &m), 0);
	assert_int_equal(m, 345);
	assert_int_equal(hub_time_offset("2026-07-01T12:30:00.5Z", &m), 0);
	assert_int_equal(m, 0);
	m = 99;
	assert_int_equal(hub_time_offset("2026-07-01T12:30:00", &m), -1);
	assert_int_equal(hub_time_offset("garbage", &m), -1);
	assert_int_equal(hub_time_offset(NULL, &m), -1);
	assert_int_equal(m, 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
