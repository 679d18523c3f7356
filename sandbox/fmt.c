/*
 * fmt.c - time and money text as the providers write them: RFC 3339 with
 * the shop's offset (Shopify, FedEx), UTC with Z (Amazon), local time without
 * offset (WooCommerce, USPS, DHL events), UPS's compact date and time, and
 * decimal amounts with the currency's number of minor digits. Calendar math
 * is done here (days from civil date) so no time zone database is involved.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const int64_t yy = (int64_t)yoe + era * 400;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	const unsigned dd = doy - (153 * mp + 2) / 5 + 1;
	const unsigned mm = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yy + (mm <= 2));
	*m = (int)mm;
	*d = (int)dd;
}

struct tmparts {
	int y, mo, d, h, mi, s;
};

static void split(int64_t ms, int tz_min, struct tmparts *t)
{
	int64_t sec = ms / 1000;
	if (ms < 0 && ms % 1000)
		sec--;
	sec += (int64_t)tz_min * 60;
	int64_t days = sec / 86400;
	int64_t rem = sec % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &t->y, &t->mo, &t->d);
	t->h = (int)(rem / 3600);
	t->mi = (int)(rem % 3600 / 60);
	t->s = (int)(rem % 60);
}

void sb_fmt_time_offset(int64_t ms, int tz_min, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, tz_min, &t);
	int a = tz_min < 0 ? -tz_min : tz_min;
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", t.y, t.mo, t.d, t.h, t.mi,
		 t.s, tz_min < 0 ? '-' : '+', a / 60, a % 60);
}

void sb_fmt_time_z(int64_t ms, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, 0, &t);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", t.y, t.mo, t.d, t.h, t.mi, t.s);
}

void sb_fmt_time_local(int64_t ms, int tz_min, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, tz_min, &t);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d", t.y, t.mo, t.d, t.h, t.mi, t.s);
}

void sb_fmt_date_compact(int64_t ms, int tz_min, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, tz_min, &t);
	snprintf(buf, size, "%04d%02d%02d", t.y, t.mo, t.d);
}

void sb_fmt_hms_compact(int64_t ms, int tz_min, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, tz_min, &t);
	snprintf(buf, size, "%02d%02d%02d", t.h, t.mi, t.s);
}

void sb_fmt_date(int64_t ms, int tz_min, char *buf, size_t size)
{
	struct tmparts t;
	split(ms, tz_min, &t);
	snprintf(buf, size, "%04d-%02d-%02d", t.y, t.mo, t.d);
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

int sb_time_has_offset(const char *text)
{
	size_t n = strlen(text);
	if (n < 11)
		return 0;
	const char *t = strpbrk(text, "Tt ");
	if (!t)
		return 0;
	return strpbrk(t, "Zz+") != NULL || strchr(t + 1, '-') != NULL;
}

int sb_parse_time(const char *text, int default_tz_min, int64_t *ms)
{
	const char *p = text;
	int y, mo, d, h = 0, mi = 0, s = 0, frac_ms = 0;
	while (*p == ' ')
		p++;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	int tz = default_tz_min;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &s))
				return -1;
		}
		if (*p == '.' || *p == ',') {
			p++;
			int nd = 0;
			while (isdigit((unsigned char)*p)) {
				if (nd < 3)
					frac_ms = frac_ms * 10 + (*p - '0');
				nd++;
				p++;
			}
			if (nd == 0)
				return -1;
			for (; nd < 3; nd++)
				frac_ms *= 10;
		}
		if (h > 23 || mi > 59 || s > 60)
			return -1;
		if (*p == 'Z' || *p == 'z') {
			tz = 0;
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1, oh, om = 0;
			p++;
			if (digits(&p, 2, &oh))
				return -1;
			if (*p == ':')
				p++;
			if (isdigit((unsigned char)*p) && digits(&p, 2, &om))
				return -1;
			if (oh > 23 || om > 59)
				return -1;
			tz = sign * (oh * 60 + om);
		}
	}
	while (*p == ' ')
		p++;
	if (*p)
		return -1;
	int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	int64_t sec = days * 86400 + h * 3600 + mi * 60 + s - (int64_t)tz * 60;
	*ms = sec * 1000 + frac_ms;
	return 0;
}

void sb_fmt_money(int64_t minor, int exponent, char *buf, size_t size)
{
	int neg = minor < 0;
	uint64_t a = neg ? (uint64_t)(-minor) : (uint64_t)minor;
	if (exponent <= 0) {
		snprintf(buf, size, "%s%llu", neg ? "-" : "", (unsigned long long)a);
		return;
	}
	uint64_t div = 1;
	for (int i = 0; i < exponent; i++)
		div *= 10;
	snprintf(buf, size, "%s%llu.%0*llu", neg ? "-" : "", (unsigned long long)(a / div),
		 exponent, (unsigned long long)(a % div));
}

double sb_money_double(int64_t minor, int exponent)
{
	double d = (double)minor;
	for (int i = 0; i < exponent; i++)
		d /= 10.0;
	return d;
}

json_t *sb_jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	return j ? j : json_string("");
}

json_t *sb_jstr0(const char *s)
{
	return s && *s ? sb_jstr(s) : json_null();
}

json_t *sb_jmoney(int64_t minor, int exponent)
{
	char buf[40];
	sb_fmt_money(minor, exponent, buf, sizeof(buf));
	return json_string(buf);
}

json_t *sb_jtime(int64_t ms, int tz_min)
{
	char buf[40];
	if (!ms)
		return json_null();
	sb_fmt_time_offset(ms, tz_min, buf, sizeof(buf));
	return json_string(buf);
}

json_t *sb_jtime_z(int64_t ms)
{
	char buf[40];
	if (!ms)
		return json_null();
	sb_fmt_time_z(ms, buf, sizeof(buf));
	return json_string(buf);
}

json_t *sb_jtime_local(int64_t ms, int tz_min)
{
	char buf[40];
	if (!ms)
		return json_null();
	sb_fmt_time_local(ms, tz_min, buf, sizeof(buf));
	return json_string(buf);
}
