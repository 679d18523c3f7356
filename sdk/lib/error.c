/*
 * error.c - filling struct hub_error, the error out-parameter shared by the
 * plugin ABI and libhubsdk. Every other file of the library reports through
 * hub_error_set(), so messages are always NUL-terminated and truncated
 * safely however long the field path or the reason.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <hub/sdk.h>

/* Copies src into dst (size bytes), truncating; dst is always terminated. */
static void copy_trunc(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

size_t hub_utf8_sequence(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], cp;
	size_t n, i;

	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

size_t hub_utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s, *end = p + strlen(s);

	while (*p) {
		size_t n = *p < 0x80 ? 1 : hub_utf8_sequence(p, end);
		if (n == 0)
			break;
		p += n;
	}
	*p = '\0';
	return (size_t)(p - (unsigned char *)s);
}

int hub_error_set(struct hub_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	copy_trunc(err->field, sizeof(err->field), field != NULL ? field : "");
	if (fmt == NULL) {
		err->message[0] = '\0';
		return -1;
	}
	va_start(ap, fmt);
	/* vsnprintf always terminates and never writes past the buffer. */
	if (vsnprintf(err->message, sizeof(err->message), fmt, ap) < 0)
		err->message[0] = '\0';
	va_end(ap);
	/* A cut may fall inside a character: keep the text valid UTF-8 so it
	 * can go into JSON replies and dead letters. */
	hub_utf8_trim(err->field);
	hub_utf8_trim(err->message);
	return -1;
}
