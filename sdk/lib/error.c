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

size_t hub_utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
		int i;
		if (n == 0 || (n == 2 && *p < 0xC2))
			break;
		for (i = 1; i < n && (p[i] & 0xC0) == 0x80; i++)
			;
		if (i < n)
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
