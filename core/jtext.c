/*
 * jtext.c - compact JSON text of jansson values (see jtext.h).
 *
 * One buffer grows geometrically; strings are copied in runs between the
 * bytes that need an escape; integers are written with a digit loop.
 * Reals, rare in records, are written by jansson itself so their text
 * (precision, ".0" suffix, exponent form) stays exactly jansson's.
 */
#include "config.h"
#include "jtext.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#define MAX_DEPTH 2048

struct out {
	char *buf;
	size_t len, cap;
};

static int reserve(struct out *o, size_t more)
{
	size_t cap;
	char *bigger;

	if (o->len + more < o->cap)
		return 0;
	cap = o->cap ? o->cap : 4096;
	while (cap <= o->len + more)
		cap *= 2;
	bigger = realloc(o->buf, cap);
	if (bigger == NULL)
		return -1;
	o->buf = bigger;
	o->cap = cap;
	return 0;
}

static int put(struct out *o, const char *s, size_t n)
{
	if (reserve(o, n) < 0)
		return -1;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	return 0;
}

static int put_char(struct out *o, char c)
{
	if (reserve(o, 1) < 0)
		return -1;
	o->buf[o->len++] = c;
	return 0;
}

/* 1 for the bytes a string run stops at: quote, backslash, controls and
 * the lead bytes of multi-byte UTF-8 (checked, then copied). */
static const unsigned char special[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
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

static int put_string(struct out *o, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)str, *end = p + len, *run;

	/* Worst case 6 bytes per input byte plus the quotes. */
	if (reserve(o, len + 2) < 0)
		return -1;
	o->buf[o->len++] = '"';
	for (;;) {
		run = p;
		while (p < end && !special[*p])
			p++;
		if (put(o, (const char *)run, (size_t)(p - run)) < 0)
			return -1;
		if (p >= end)
			break;
		if (*p >= 0x80) {
			size_t n = hub_utf8_sequence(p, end);

			if (n == 0 || put(o, (const char *)p, n) < 0)
				return -1;
			p += n;
			continue;
		}
		{
			char esc[6] = {'\\', 0, 0, 0, 0, 0};
			size_t n = 2;

			switch (*p) {
			case '"': esc[1] = '"'; break;
			case '\\': esc[1] = '\\'; break;
			case '\b': esc[1] = 'b'; break;
			case '\f': esc[1] = 'f'; break;
			case '\n': esc[1] = 'n'; break;
			case '\r': esc[1] = 'r'; break;
			case '\t': esc[1] = 't'; break;
			default:
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 0xF];
				n = 6;
				break;
			}
			if (put(o, esc, n) < 0)
				return -1;
			p++;
		}
	}
	return put_char(o, '"');
}

static int put_integer(struct out *o, json_int_t value)
{
	char digits[24];
	size_t n = sizeof(digits);
	uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;

	do {
		digits[--n] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (value < 0)
		digits[--n] = '-';
	return put(o, digits + n, sizeof(digits) - n);
}

static int put_value(struct out *o, const json_t *v, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *item;
		int first = 1;

		if (put_char(o, '{') < 0)
			return -1;
		json_object_foreach((json_t *)v, key, item) {
			if (!first && put_char(o, ',') < 0)
				return -1;
			first = 0;
#if JANSSON_VERSION_HEX >= 0x020e00
			if (put_string(o, key, json_object_iter_key_len(
						       json_object_key_to_iter(key))) < 0)
#else
			if (put_string(o, key, strlen(key)) < 0)
#endif
				return -1;
			if (put_char(o, ':') < 0 || put_value(o, item, depth + 1) < 0)
				return -1;
		}
		return put_char(o, '}');
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(v);

		if (put_char(o, '[') < 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if ((i > 0 && put_char(o, ',') < 0) ||
			    put_value(o, json_array_get(v, i), depth + 1) < 0)
				return -1;
		}
		return put_char(o, ']');
	}
	case JSON_STRING:
		return put_string(o, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return put_integer(o, json_integer_value(v));
	case JSON_REAL: {
		/* jansson's own text for the number, written into a buffer of
		 * ours: inside a scoped webhook call a json_dumps text would
		 * come from the scratch region (jarena.h), not from malloc. */
		char text[64];
		size_t n = json_dumpb(v, text, sizeof(text), JSON_COMPACT | JSON_ENCODE_ANY);

		return n > 0 && n <= sizeof(text) ? put(o, text, n) : -1;
	}
	case JSON_TRUE:
		return put(o, "true", 4);
	case JSON_FALSE:
		return put(o, "false", 5);
	case JSON_NULL:
		return put(o, "null", 4);
	}
	return -1;
}

char *jtext_dump(const json_t *v, size_t *len)
{
	struct out o = {NULL, 0, 0};

	if (v == NULL || put_value(&o, v, 0) < 0 || put_char(&o, '\0') < 0) {
		free(o.buf);
		return NULL;
	}
	if (len != NULL)
		*len = o.len - 1;
	return o.buf;
}

/* ---- pooled blocks ----------------------------------------------------- */

/* Blocks of 4, 8 and 16 KB (header included); larger texts use malloc. At
 * most POOL_KEEP idle blocks per size are kept. */
#define NCLASS 3
#define CLASS_BYTES(c) ((size_t)4096 << (c))
#define POOL_KEEP 1024
#define UNPOOLED NCLASS

/* Sits before the text; 16 bytes keep the text aligned. */
union header {
	struct {
		union header *next; /* while idle in the pool */
		unsigned cls;
	} h;
	max_align_t align;
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static union header *pool[NCLASS];
static size_t pool_idle[NCLASS];

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct out *o = p;

	free(o->buf);
	free(o);
}

static void scratch_init(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

/* The calling thread's scratch buffer (kept between calls, freed when the
 * thread exits), or NULL when out of memory. */
static struct out *scratch(void)
{
	struct out *o;

	pthread_once(&scratch_once, scratch_init);
	o = pthread_getspecific(scratch_key);
	if (o == NULL) {
		o = calloc(1, sizeof(*o));
		if (o == NULL || pthread_setspecific(scratch_key, o) != 0) {
			free(o);
			return NULL;
		}
	}
	return o;
}

char *jtext_dump_block(const json_t *v, size_t *len)
{
	struct out *o = scratch();
	union header *b = NULL;
	unsigned cls;
	size_t need;

	if (o == NULL || v == NULL)
		return NULL;
	o->len = 0;
	if (put_value(o, v, 0) < 0 || put_char(o, '\0') < 0)
		return NULL;
	need = sizeof(union header) + o->len;
	for (cls = 0; cls < NCLASS && CLASS_BYTES(cls) < need; cls++)
		;
	if (cls < NCLASS) {
		pthread_mutex_lock(&pool_mu);
		b = pool[cls];
		if (b != NULL) {
			pool[cls] = b->h.next;
			pool_idle[cls]--;
		}
		pthread_mutex_unlock(&pool_mu);
		if (b == NULL)
			b = malloc(CLASS_BYTES(cls));
	} else {
		b = malloc(need);
	}
	if (b == NULL)
		return NULL;
	b->h.cls = cls < NCLASS ? cls : UNPOOLED;
	memcpy(b + 1, o->buf, o->len);
	if (len != NULL)
		*len = o->len - 1;
	return (char *)(b + 1);
}

void jtext_block_free(char *text)
{
	union header *b;
	unsigned cls;

	if (text == NULL)
		return;
	b = (union header *)text - 1;
	cls = b->h.cls;
	if (cls < NCLASS) {
		pthread_mutex_lock(&pool_mu);
		if (pool_idle[cls] < POOL_KEEP) {
			b->h.next = pool[cls];
			pool[cls] = b;
			pool_idle[cls]++;
			b = NULL;
		}
		pthread_mutex_unlock(&pool_mu);
	}
	free(b);
}
