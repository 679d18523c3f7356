/*
 * time.c - RFC 3339 times to UTC milliseconds and back.
 *
 * Sources send times with offsets ("-04:00"), with "Z", with any number of
 * fractional digits, or (WooCommerce *_gmt) without any zone. Everything is
 * stored as the canonical "YYYY-MM-DDTHH:MM:SS.mmmZ", so parsing converts to
 * milliseconds since the epoch with a proleptic Gregorian calendar computed
 * here (no timegm(), no TZ, no global state). Fraction digits beyond the
 * millisecond are truncated. Leap seconds (":60") are refused.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hub/sdk.h>

struct parsed_time {
	int64_t utc_ms;
	int has_offset;
	int offset_min;
};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's method). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p into *out and advances; -1 if not digits. */
static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Parses text into *t; on failure returns -1 with *why set to the reason. */
static int parse(const char *text, int assume_utc, struct parsed_time *t, const char **why)
{
	const char *p = text;
	int year, mon, day, hour, min, sec, ms = 0, oh = 0, om = 0, sign = 0;

	*why = "expected YYYY-MM-DDTHH:MM:SS with an offset or Z";
	if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 ||
	    *p++ != '-' || digits(&p, 2, &day) < 0)
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &hour) < 0 || *p++ != ':' || digits(&p, 2, &min) < 0 ||
	    *p++ != ':' || digits(&p, 2, &sec) < 0)
		return -1;
	if (*p == '.' || *p == ',') {
		int n = 0;

		for (p++; isdigit((unsigned char)*p); p++, n++)
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
		sign = 1;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &oh) < 0)
			return -1;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &om) < 0)
			return -1;
	} else if (*p == '\0' && assume_utc) {
		sign = 0;
	} else if (*p == '\0') {
		*why = "has no UTC offset (add Z or +HH:MM)";
		return -1;
	}
	if (*p != '\0') {
		*why = "has trailing characters";
		return -1;
	}
	*why = NULL;
	if (mon < 1 || mon > 12)
		*why = "month out of range";
	else if (day < 1 || day > days_in_month(year, mon))
		*why = "day out of range for the month";
	else if (hour > 23)
		*why = "hour out of range";
	else if (min > 59)
		*why = "minute out of range";
	else if (sec > 59)
		*why = "second out of range (leap seconds are not supported)";
	else if (oh > 23 || om > 59)
		*why = "UTC offset out of range";
	if (*why != NULL)
		return -1;

	t->has_offset = sign != 0;
	t->offset_min = (sign < 0 ? -1 : 1) * (oh * 60 + om);
	t->utc_ms = ((days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec)
		     - (int64_t)t->offset_min * 60) * 1000 + ms;
	return 0;
}

int hub_time_parse(const char *text, int assume_utc, int64_t *utc_ms, const char *field,
		   struct hub_error *err)
{
	struct parsed_time t;
	const char *why;

	if (text == NULL)
		return hub_error_set(err, field, "time is missing");
	if (parse(text, assume_utc, &t, &why) < 0)
		return hub_error_set(err, field, "\"%.64s\" is not an RFC 3339 time: %s", text, why);
	*utc_ms = t.utc_ms;
	return 0;
}

int hub_time_format(int64_t utc_ms, char *buf, size_t size)
{
	int64_t secs, days, y;
	int ms, m, d, rem;

	/* Floor division so times before 1970 format correctly. */
	secs = utc_ms / 1000;
	ms = (int)(utc_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	days = secs / 86400;
	rem = (int)(secs % 86400);
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999 || buf == NULL)
		return -1;
	/* "YYYY-MM-DDTHH:MM:SS.mmmZ", written digit by digit: two of these
	 * per record, and snprintf costs ten times as much. */
	if (size < 25)
		return -1;
	{
		const int parts[7] = {(int)y, m, d, rem / 3600, rem / 60 % 60, rem % 60, ms};
		static const char widths[7] = {4, 2, 2, 2, 2, 2, 3};
		static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
		char *p = buf;

		for (int i = 0; i < 7; i++) {
			int v = parts[i];

			for (int k = widths[i] - 1; k >= 0; k--) {
				p[k] = (char)('0' + v % 10);
				v /= 10;
			}
			p += widths[i];
			*p++ = seps[i];
		}
		*p = '\0';
	}
	return 0;
}

int hub_time_offset(const char *text, int *minutes)
{
	struct parsed_time t;
	const char *why;

	if (text == NULL || parse(text, 0, &t, &why) < 0 || !t.has_offset)
		return -1;
	*minutes = t.offset_min;
	return 0;
}
