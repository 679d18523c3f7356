/*
 * money.c - decimal amounts to integer minor units without floating point.
 *
 * Marketplaces send prices as decimal strings ("12.34") or, for WooCommerce,
 * as JSON numbers. The canonical records hold an int64 in the minor units of
 * the ISO 4217 currency, so the conversion is done on the decimal digits
 * themselves: the fraction is scaled to the currency's exponent and extra
 * digits are rounded half away from zero. A JSON real is first turned back
 * into the shortest decimal text that reads back as the same double (what
 * the sender most likely wrote), then parsed like a string.
 */
#include "config.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

/* Currencies whose minor unit is not the cent (ISO 4217, 2024 list). */
static const char *const exponent0[] = {
	"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
	"UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF", NULL
};
static const char *const exponent3[] = {
	"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND", NULL
};

static int in_list(const char *const *list, const char *code)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, code) == 0)
			return 1;
	return 0;
}

int hub_currency_exponent(const char *currency)
{
	if (currency == NULL)
		return -1;
	for (int i = 0; i < 3; i++)
		if (currency[i] < 'A' || currency[i] > 'Z')
			return -1;
	if (currency[3] != '\0')
		return -1;
	if (in_list(exponent0, currency))
		return 0;
	if (in_list(exponent3, currency))
		return 3;
	return 2;
}

/* Adds one decimal digit to *acc (a magnitude); 0, or -1 past limit. */
static int push_digit(uint64_t *acc, int digit, uint64_t limit)
{
	if (*acc > (limit - (uint64_t)digit) / 10)
		return -1;
	*acc = *acc * 10 + (uint64_t)digit;
	return 0;
}

/* Stores magnitude with sign in *minor; -1 if it does not fit int64. */
static int apply_sign(uint64_t mag, int negative, int64_t *minor)
{
	if (negative) {
		if (mag > (uint64_t)INT64_MAX + 1)
			return -1;
		*minor = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		if (mag > (uint64_t)INT64_MAX)
			return -1;
		*minor = (int64_t)mag;
	}
	return 0;
}

int hub_money_parse(const char *decimal, const char *currency, int64_t *minor,
		    const char *field, struct hub_error *err)
{
	const uint64_t limit = (uint64_t)INT64_MAX + 1;
	const char *p = decimal, *end;
	int exp = hub_currency_exponent(currency);
	int negative = 0, ndigits = 0, nfrac = 0, round_up = 0;
	uint64_t mag = 0;

	if (exp < 0)
		return hub_error_set(err, field,
				     "currency \"%s\" is not an ISO 4217 code (three upper-case letters)",
				     currency != NULL ? currency : "(null)");
	if (decimal == NULL)
		return hub_error_set(err, field, "amount is missing");
	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	if (p == end)
		return hub_error_set(err, field, "amount is empty");
	if (*p == '-' || *p == '+')
		negative = *p++ == '-';

	for (; p < end && *p != '.'; p++) {
		if (!isdigit((unsigned char)*p))
			goto bad;
		if (push_digit(&mag, *p - '0', limit) < 0)
			goto overflow;
		ndigits++;
	}
	if (p < end) {
		for (p++; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				goto bad;
			ndigits++;
			if (nfrac < exp) {
				if (push_digit(&mag, *p - '0', limit) < 0)
					goto overflow;
				nfrac++;
			} else if (nfrac == exp) {
				/* The first dropped digit decides: half away from zero. */
				round_up = *p >= '5';
				nfrac++;
			}
		}
	}
	if (ndigits == 0)
		goto bad;
	for (; nfrac < exp; nfrac++)
		if (push_digit(&mag, 0, limit) < 0)
			goto overflow;
	if (round_up) {
		if (mag >= limit)
			goto overflow;
		mag++;
	}
	if (apply_sign(mag, negative, minor) < 0)
		goto overflow;
	return 0;

bad:
	return hub_error_set(err, field,
			     "\"%.64s\" is not a decimal amount (digits with at most one '.', no exponent or separators)",
			     decimal);
overflow:
	return hub_error_set(err, field, "amount \"%.64s\" %s is too large", decimal, currency);
}

/* Rewrites the %g text `in` (possibly "1.5e-07") as plain decimal in out. */
static int expand_exponent(const char *in, char *out, size_t size)
{
	char digits[64];
	size_t nd = 0, o = 0;
	long point = -1, e = 0;
	const char *p = in;
	int negative = 0;

	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	for (; *p != '\0' && *p != 'e' && *p != 'E'; p++) {
		if (isdigit((unsigned char)*p)) {
			if (nd >= sizeof(digits))
				return -1;
			digits[nd++] = *p;
		} else if (point < 0) {
			point = (long)nd;   /* '.' or the locale's ',' */
		} else {
			return -1;
		}
	}
	if (point < 0)
		point = (long)nd;
	if (*p != '\0') {
		char *q;

		e = strtol(p + 1, &q, 10);
		if (*q != '\0' || e > 400 || e < -400)
			return -1;
	}
	point += e;   /* digits[0..point) is the integer part */

#define PUT(c) do { if (o + 1 >= size) return -1; out[o++] = (c); } while (0)
	if (negative)
		PUT('-');
	if (point <= 0) {
		PUT('0');
		PUT('.');
		for (long i = point; i < 0; i++)
			PUT('0');
		for (size_t i = 0; i < nd; i++)
			PUT(digits[i]);
	} else {
		for (long i = 0; i < point; i++)
			PUT((size_t)i < nd ? digits[i] : '0');
		if ((size_t)point < nd) {
			PUT('.');
			for (size_t i = (size_t)point; i < nd; i++)
				PUT(digits[i]);
		}
	}
#undef PUT
	out[o] = '\0';
	return 0;
}

int hub_money_from_json(const json_t *value, const char *currency, int64_t *minor,
			const char *field, struct hub_error *err)
{
	char text[64], plain[512];
	int exp;

	if (value == NULL)
		return hub_error_set(err, field, "amount is missing");
	if (json_is_string(value))
		return hub_money_parse(json_string_value(value), currency, minor, field, err);
	if (json_is_integer(value)) {
		json_int_t v = json_integer_value(value);
		int64_t scale = 1;

		exp = hub_currency_exponent(currency);
		if (exp < 0)
			return hub_money_parse("0", currency, minor, field, err);
		for (int i = 0; i < exp; i++)
			scale *= 10;
		if (v > INT64_MAX / scale || v < INT64_MIN / scale)
			return hub_error_set(err, field, "amount %lld %s is too large",
					     (long long)v, currency);
		*minor = (int64_t)v * scale;
		return 0;
	}
	if (json_is_real(value)) {
		double d = json_real_value(value);

		if (!isfinite(d))
			return hub_error_set(err, field, "amount is not a finite number");
		/* The shortest of %.15g..%.17g that reads back as the same double:
		 * 19.99 -> "19.99", 1.005 -> "1.005" (not 1.00499999999999989...),
		 * so half-away rounding applies to the decimal the sender wrote. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(text, sizeof(text), "%.*g", prec, d);
			if (strtod(text, NULL) == d)
				break;
		}
		if (expand_exponent(text, plain, sizeof(plain)) < 0)
			return hub_error_set(err, field, "amount %s cannot be converted", text);
		return hub_money_parse(plain, currency, minor, field, err);
	}
	return hub_error_set(err, field, "expected a decimal string or a number, got %s",
			     json_is_object(value) ? "object" : json_is_array(value) ? "array" :
			     json_is_boolean(value) ? "boolean" : "null");
}
