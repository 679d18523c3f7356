/*
 * json_parse.c - hub_json_loadb: a JSON reader that builds the same jansson
 * values as json_loadb, several times faster.
 *
 * jansson's reader pulls its input through a character stream one byte at a
 * time and copies every string through a growing buffer; for the 3 KB order
 * a webhook carries, that was the largest single cost of a delivery in hubd
 * (see docs/benchmarks.md, bench/webhooks). This reader works on the buffer
 * itself: it scans strings for the few bytes that need attention (quote,
 * backslash, control characters, non-ASCII) and gives strings and keys that
 * hold no escape to jansson straight from the input, so building the values
 * is the only allocation left. What it accepts and refuses is what
 * json_loadb does with the same flags: RFC 8259 syntax, valid UTF-8, no NUL
 * in strings without JSON_ALLOW_NUL and never in keys, integers within
 * json_int_t, reals that do not overflow, at most 2048 levels of nesting.
 * Flags it does not handle itself are passed on to json_loadb.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#if JSON_INTEGER_IS_LONG_LONG
#define INTEGER_MAX LLONG_MAX
#else
#define INTEGER_MAX LONG_MAX
#endif
#define OWN_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

struct reader {
	const unsigned char *start, *p, *end;
	size_t flags;
	json_error_t *error;
	char *scratch; /* decoded strings that held escapes */
	size_t scratch_cap;
	int depth;
};

/* Bytes a string scan must stop at: quote, backslash, controls, non-ASCII. */
static const unsigned char stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static json_t *read_value(struct reader *r);

/* Fills the caller's json_error_t for a failure at `at`: line and column
 * (in characters) as jansson counts them, the byte position, and the
 * message followed by what the input holds there. Returns NULL. */
static json_t *fail_at(struct reader *r, const unsigned char *at, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static json_t *fail_at(struct reader *r, const unsigned char *at, int code, const char *fmt, ...)
{
	json_error_t *e = r->error;
	char msg[96], near[24];
	const unsigned char *q;
	size_t n = 0;
	va_list ap;
	int line = 1, column = 0;

	if (e == NULL)
		return NULL;
	for (q = r->start; q < at; q++) {
		if (*q == '\n') {
			line++;
			column = 0;
		} else if ((*q & 0xC0) != 0x80) {
			column++;
		}
	}
	/* What follows, printable ASCII only, so the message stays UTF-8. */
	for (q = at; q < r->end && n < 16 && *q >= 0x20 && *q < 0x7F && *q != '\''; q++)
		near[n++] = (char)*q;
	near[n] = '\0';
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(e, 0, sizeof(*e));
	e->line = line;
	e->column = column;
	e->position = (int)(at - r->start);
	snprintf(e->source, sizeof(e->source), "<buffer>");
	if (at >= r->end)
		snprintf(e->text, sizeof(e->text) - 1, "%s near end of input", msg);
	else if (n > 0)
		snprintf(e->text, sizeof(e->text) - 1, "%s near '%s'", msg, near);
	else
		snprintf(e->text, sizeof(e->text) - 1, "%s", msg);
#if JANSSON_VERSION_HEX >= 0x020b00
	e->text[sizeof(e->text) - 1] = (char)code;
#else
	(void)code;
#endif
	return NULL;
}

#if JANSSON_VERSION_HEX >= 0x020b00
#define ERR_SYNTAX json_error_invalid_syntax
#define ERR_UTF8 json_error_invalid_utf8
#define ERR_EOF json_error_premature_end_of_input
#define ERR_NUMBER json_error_numeric_overflow
#define ERR_DEPTH json_error_stack_overflow
#define ERR_DUPLICATE json_error_duplicate_key
#define ERR_NUL json_error_null_character
#define ERR_MEMORY json_error_out_of_memory
#define ERR_ARGS json_error_invalid_argument
#define ERR_EOF_EXPECTED json_error_end_of_input_expected
#else
#define ERR_SYNTAX 0
#define ERR_UTF8 0
#define ERR_EOF 0
#define ERR_NUMBER 0
#define ERR_DEPTH 0
#define ERR_DUPLICATE 0
#define ERR_NUL 0
#define ERR_MEMORY 0
#define ERR_ARGS 0
#define ERR_EOF_EXPECTED 0
#endif

static void skip_space(struct reader *r)
{
	const unsigned char *p = r->p;

	while (p < r->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	r->p = p;
}

/* Makes room for `more` bytes after `used` in the scratch buffer. */
static int scratch_reserve(struct reader *r, size_t used, size_t more)
{
	size_t cap = r->scratch_cap ? r->scratch_cap : 256;
	char *bigger;

	if (used + more <= r->scratch_cap)
		return 0;
	while (cap < used + more)
		cap *= 2;
	bigger = realloc(r->scratch, cap);
	if (bigger == NULL)
		return -1;
	r->scratch = bigger;
	r->scratch_cap = cap;
	return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned c = p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

static size_t utf8_encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Reads the string whose opening quote is at r->p. On success *out points
 * into the input (no escapes) or into the scratch buffer (escapes decoded;
 * valid until the next string), *len is its length in bytes, and r->p is
 * past the closing quote. Returns 0, or -1 with the error filled.
 */
static int read_string(struct reader *r, const char **out, size_t *len)
{
	const unsigned char *p = r->p + 1, *end = r->end, *begin = p;
	size_t used = 0;
	int escaped = 0;

	for (;;) {
		unsigned c;

		while (p < end && !stop[*p])
			p++;
		if (p >= end) {
			fail_at(r, p, ERR_EOF, "premature end of input");
			return -1;
		}
		c = *p;
		if (c == '"')
			break;
		if (c >= 0x80) {
			size_t n = hub_utf8_sequence(p, end);

			if (n == 0) {
				fail_at(r, p, ERR_UTF8, "unable to decode byte 0x%x", c);
				return -1;
			}
			p += n;
			continue;
		}
		if (c < 0x20) {
			fail_at(r, p, ERR_SYNTAX, c == '\n' ? "unexpected newline"
							    : "control character 0x%x", c);
			return -1;
		}
		/* A backslash: from here on the string is decoded into scratch. */
		if (!escaped) {
			escaped = 1;
			used = 0;
		}
		if (scratch_reserve(r, used, (size_t)(p - begin) + 4) < 0) {
			fail_at(r, p, ERR_MEMORY, "out of memory");
			return -1;
		}
		memcpy(r->scratch + used, begin, (size_t)(p - begin));
		used += (size_t)(p - begin);
		if (end - p < 2) {
			fail_at(r, end, ERR_EOF, "premature end of input");
			return -1;
		}
		switch (p[1]) {
		case '"': r->scratch[used++] = '"'; p += 2; break;
		case '\\': r->scratch[used++] = '\\'; p += 2; break;
		case '/': r->scratch[used++] = '/'; p += 2; break;
		case 'b': r->scratch[used++] = '\b'; p += 2; break;
		case 'f': r->scratch[used++] = '\f'; p += 2; break;
		case 'n': r->scratch[used++] = '\n'; p += 2; break;
		case 'r': r->scratch[used++] = '\r'; p += 2; break;
		case 't': r->scratch[used++] = '\t'; p += 2; break;
		case 'u': {
			unsigned cp, lo;

			if (end - p < 6 || hex4(p + 2, &cp) < 0) {
				fail_at(r, p, ERR_SYNTAX, "invalid escape");
				return -1;
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) < 0 ||
				    lo < 0xDC00 || lo > 0xDFFF) {
					fail_at(r, p, ERR_SYNTAX, "invalid Unicode '\\u%04X'", cp);
					return -1;
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				p += 6;
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				fail_at(r, p, ERR_SYNTAX, "invalid Unicode '\\u%04X'", cp);
				return -1;
			} else if (cp == 0 && !(r->flags & JSON_ALLOW_NUL)) {
				fail_at(r, p, ERR_NUL, "\\u0000 is not allowed without JSON_ALLOW_NUL");
				return -1;
			}
			used += utf8_encode(cp, r->scratch + used);
			p += 6;
			break;
		}
		default:
			fail_at(r, p, ERR_SYNTAX, "invalid escape");
			return -1;
		}
		begin = p;
	}
	if (escaped) {
		if (scratch_reserve(r, used, (size_t)(p - begin) + 1) < 0) {
			fail_at(r, p, ERR_MEMORY, "out of memory");
			return -1;
		}
		memcpy(r->scratch + used, begin, (size_t)(p - begin));
		used += (size_t)(p - begin);
		r->scratch[used] = '\0';
		*out = r->scratch;
		*len = used;
	} else {
		*out = (const char *)begin;
		*len = (size_t)(p - begin);
	}
	r->p = p + 1;
	return 0;
}

static json_t *read_number(struct reader *r)
{
	const unsigned char *s = r->p, *p = s, *end = r->end;
	int neg = 0, real = 0;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return fail_at(r, s, ERR_SYNTAX, "invalid token");
	if (*p == '0') {
		p++;
		if (p < end && *p >= '0' && *p <= '9')
			return fail_at(r, s, ERR_SYNTAX, "invalid token");
	} else {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail_at(r, s, ERR_SYNTAX, "invalid token");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		real = 1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail_at(r, s, ERR_SYNTAX, "invalid token");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		real = 1;
	}
	if (!real) {
		/* json_int_t is long long (or long): check the range digit by digit. */
		unsigned long long limit = neg ? (unsigned long long)INTEGER_MAX + 1
					       : (unsigned long long)INTEGER_MAX;
		unsigned long long v = 0;
		json_t *out;

		for (const unsigned char *q = s + neg; q < p; q++) {
			unsigned d = (unsigned)(*q - '0');

			if (v > (limit - d) / 10)
				return fail_at(r, s, ERR_NUMBER, neg ? "too big negative integer"
								      : "too big integer");
			v = v * 10 + d;
		}
		r->p = p;
		out = json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
		return out != NULL ? out : fail_at(r, s, ERR_MEMORY, "out of memory");
	}
	{
		char small[64], *text = small, *endp;
		size_t n = (size_t)(p - s);
		const char *point = localeconv()->decimal_point;
		double d;
		json_t *out;

		if (n >= sizeof(small)) {
			text = malloc(n + 1);
			if (text == NULL)
				return fail_at(r, s, ERR_MEMORY, "out of memory");
		}
		memcpy(text, s, n);
		text[n] = '\0';
		/* strtod follows the locale; JSON's decimal point is '.'. */
		if (point != NULL && point[0] != '.' && point[0] != '\0' && point[1] == '\0') {
			char *dot = strchr(text, '.');

			if (dot != NULL)
				*dot = point[0];
		}
		errno = 0;
		d = strtod(text, &endp);
		if (text != small)
			free(text);
		if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
			return fail_at(r, s, ERR_NUMBER, "real number overflow");
		r->p = p;
		out = json_real(d);
		return out != NULL ? out : fail_at(r, s, ERR_MEMORY, "out of memory");
	}
}

static json_t *read_literal(struct reader *r, const char *word, json_t *value)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return fail_at(r, r->p, ERR_SYNTAX, "invalid token");
	r->p += n;
	return value;
}

/* Adds key (len bytes, not NUL-terminated) -> value to obj, stealing value. */
static int object_add(json_t *obj, const char *key, size_t len, json_t *value)
{
#if JANSSON_VERSION_HEX >= 0x020e00
	return json_object_setn_new_nocheck(obj, key, len, value);
#else
	char small[128], *copy = small;
	int rc;

	if (len >= sizeof(small)) {
		copy = malloc(len + 1);
		if (copy == NULL) {
			json_decref(value);
			return -1;
		}
	}
	memcpy(copy, key, len);
	copy[len] = '\0';
	rc = json_object_set_new_nocheck(obj, copy, value);
	if (copy != small)
		free(copy);
	return rc;
#endif
}

static json_t *object_get(const json_t *obj, const char *key, size_t len)
{
#if JANSSON_VERSION_HEX >= 0x020e00
	return json_object_getn(obj, key, len);
#else
	char small[128], *copy = small;
	json_t *v;

	if (len >= sizeof(small) && (copy = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(copy, key, len);
	copy[len] = '\0';
	v = json_object_get(obj, copy);
	if (copy != small)
		free(copy);
	return v;
#endif
}

static json_t *read_object(struct reader *r)
{
	json_t *obj = json_object();
	char *key_copy = NULL;

	if (obj == NULL)
		return fail_at(r, r->p, ERR_MEMORY, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return obj;
	}
	for (;;) {
		const unsigned char *at = r->p;
		const char *key;
		size_t len;
		json_t *value;

		if (r->p >= r->end || *r->p != '"') {
			fail_at(r, r->p, r->p >= r->end ? ERR_EOF : ERR_SYNTAX, "string or '}' expected");
			goto fail;
		}
		if (read_string(r, &key, &len) < 0)
			goto fail;
		if (memchr(key, '\0', len) != NULL) {
			fail_at(r, at, ERR_NUL, "NUL byte in object key not supported");
			goto fail;
		}
		/* A decoded key lives in scratch, which the value may reuse. */
		if (key == r->scratch) {
			key_copy = malloc(len + 1);
			if (key_copy == NULL) {
				fail_at(r, at, ERR_MEMORY, "out of memory");
				goto fail;
			}
			memcpy(key_copy, key, len + 1);
			key = key_copy;
		}
		skip_space(r);
		if (r->p >= r->end || *r->p != ':') {
			fail_at(r, r->p, r->p >= r->end ? ERR_EOF : ERR_SYNTAX, "':' expected");
			goto fail;
		}
		r->p++;
		skip_space(r);
		value = read_value(r);
		if (value == NULL)
			goto fail;
		if ((r->flags & JSON_REJECT_DUPLICATES) && object_get(obj, key, len) != NULL) {
			json_decref(value);
			fail_at(r, at, ERR_DUPLICATE, "duplicate object key");
			goto fail;
		}
		if (object_add(obj, key, len, value) < 0) {
			fail_at(r, at, ERR_MEMORY, "out of memory");
			goto fail;
		}
		free(key_copy);
		key_copy = NULL;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_space(r);
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return obj;
		}
		fail_at(r, r->p, r->p >= r->end ? ERR_EOF : ERR_SYNTAX, "'}' expected");
		goto fail;
	}
fail:
	free(key_copy);
	json_decref(obj);
	return NULL;
}

static json_t *read_array(struct reader *r)
{
	json_t *arr = json_array();

	if (arr == NULL)
		return fail_at(r, r->p, ERR_MEMORY, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return arr;
	}
	for (;;) {
		json_t *value = read_value(r);

		if (value == NULL)
			goto fail;
		if (json_array_append_new(arr, value) < 0) {
			fail_at(r, r->p, ERR_MEMORY, "out of memory");
			goto fail;
		}
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_space(r);
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return arr;
		}
		fail_at(r, r->p, r->p >= r->end ? ERR_EOF : ERR_SYNTAX, "']' expected");
		goto fail;
	}
fail:
	json_decref(arr);
	return NULL;
}

/* Reads the value at r->p (no leading white space). */
static json_t *read_value(struct reader *r)
{
	json_t *v;

	if (r->p >= r->end)
		return fail_at(r, r->p, ERR_EOF, "unexpected token");
	switch (*r->p) {
	case '{':
	case '[':
		if (++r->depth > MAX_DEPTH)
			return fail_at(r, r->p, ERR_DEPTH, "maximum parsing depth reached");
		v = *r->p == '{' ? read_object(r) : read_array(r);
		r->depth--;
		return v;
	case '"': {
		const char *s;
		size_t len;

		if (read_string(r, &s, &len) < 0)
			return NULL;
		/* The text was checked above: valid UTF-8, NUL only if allowed. */
		v = json_stringn_nocheck(s, len);
		return v != NULL ? v : fail_at(r, r->p, ERR_MEMORY, "out of memory");
	}
	case 't':
		return read_literal(r, "true", json_true());
	case 'f':
		return read_literal(r, "false", json_false());
	case 'n':
		return read_literal(r, "null", json_null());
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return read_number(r);
	case ']':
	case '}':
	case ',':
	case ':':
		return fail_at(r, r->p, ERR_SYNTAX, "unexpected token");
	default:
		return fail_at(r, r->p, ERR_SYNTAX, "invalid token");
	}
}

json_t *hub_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
	struct reader r;
	json_t *v = NULL;

	if (flags & ~(size_t)OWN_FLAGS)
		return json_loadb(buf, len, flags, error);
	memset(&r, 0, sizeof(r));
	r.start = r.p = (const unsigned char *)(buf != NULL ? buf : "");
	r.end = r.start + (buf != NULL ? len : 0);
	r.flags = flags;
	r.error = error;
	if (buf == NULL) {
		fail_at(&r, r.p, ERR_ARGS, "wrong arguments");
		return NULL;
	}
	skip_space(&r);
	if (!(flags & JSON_DECODE_ANY) && (r.p >= r.end || (*r.p != '{' && *r.p != '['))) {
		fail_at(&r, r.p, r.p >= r.end ? ERR_EOF : ERR_SYNTAX, "'[' or '{' expected");
		goto out;
	}
	v = read_value(&r);
	if (v == NULL)
		goto out;
	skip_space(&r);
	if (r.p < r.end) {
		fail_at(&r, r.p, ERR_EOF_EXPECTED, "end of file expected");
		json_decref(v);
		v = NULL;
		goto out;
	}
	if (error != NULL) {
		memset(error, 0, sizeof(*error));
		error->line = -1;
		error->column = -1;
		snprintf(error->source, sizeof(error->source), "<buffer>");
	}
out:
	free(r.scratch);
	return v;
}
