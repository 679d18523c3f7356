/*
 * url.c - building request URLs with correct escaping, finding the next page
 * in an RFC 8288 `Link` header, and reading one query parameter back.
 *
 * Connectors build every upstream URL through struct hub_url so that ids and
 * cursors containing '/', '&', '+' or spaces cannot change the request's
 * meaning. Shopify paginates through `Link: <...>; rel="next"`; the parser
 * here follows the RFC grammar (quoted or bare rel, several relation types,
 * commas and semicolons inside the URL or a quoted string) rather than
 * searching for substrings.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hub/sdk.h>

static const char hexdigits[] = "0123456789ABCDEF";

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

char *hub_url_escape(const char *text)
{
	size_t n = 0, o = 0;
	char *out;

	if (text == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
		n += is_unreserved(*p) ? 1 : 3;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (is_unreserved(*p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hexdigits[*p >> 4];
			out[o++] = hexdigits[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

/* Appends n bytes of s to url, growing it; marks it failed on ENOMEM. */
static void url_append(struct hub_url *url, const char *s, size_t n)
{
	if (url->failed || s == NULL)
		return;
	if (url->len + n + 1 > url->cap) {
		size_t cap = url->cap ? url->cap : 64;
		char *buf;

		while (cap < url->len + n + 1)
			cap *= 2;
		buf = realloc(url->buf, cap);
		if (buf == NULL) {
			url->failed = 1;
			return;
		}
		url->buf = buf;
		url->cap = cap;
	}
	memcpy(url->buf + url->len, s, n);
	url->len += n;
	url->buf[url->len] = '\0';
}

void hub_url_init(struct hub_url *url, const char *base)
{
	memset(url, 0, sizeof(*url));
	if (base == NULL)
		base = "";
	url_append(url, "", 0);
	url_append(url, base, strlen(base));
	url->has_query = strchr(base, '?') != NULL;
}

void hub_url_path(struct hub_url *url, const char *path)
{
	if (path != NULL)
		url_append(url, path, strlen(path));
}

void hub_url_segment(struct hub_url *url, const char *segment)
{
	char *esc;

	if (segment == NULL)
		return;
	esc = hub_url_escape(segment);
	if (esc == NULL) {
		url->failed = 1;
		return;
	}
	/* A base written with a trailing slash does not get a second one. */
	if (url->len == 0 || url->buf == NULL || url->buf[url->len - 1] != '/')
		url_append(url, "/", 1);
	url_append(url, esc, strlen(esc));
	free(esc);
}

void hub_url_query(struct hub_url *url, const char *key, const char *value)
{
	char *k, *v;

	if (key == NULL || value == NULL)
		return;
	k = hub_url_escape(key);
	v = hub_url_escape(value);
	if (k == NULL || v == NULL) {
		url->failed = 1;
	} else {
		url_append(url, url->has_query ? "&" : "?", 1);
		url_append(url, k, strlen(k));
		url_append(url, "=", 1);
		url_append(url, v, strlen(v));
		url->has_query = 1;
	}
	free(k);
	free(v);
}

void hub_url_query_int(struct hub_url *url, const char *key, long long value)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", value);
	hub_url_query(url, key, num);
}

const char *hub_url_str(const struct hub_url *url)
{
	return url->failed ? NULL : url->buf;
}

char *hub_url_detach(struct hub_url *url)
{
	char *buf = url->failed ? NULL : url->buf;

	if (url->failed)
		free(url->buf);
	memset(url, 0, sizeof(*url));
	return buf;
}

void hub_url_release(struct hub_url *url)
{
	free(url->buf);
	memset(url, 0, sizeof(*url));
}

/* ---- Link header (RFC 8288) ---------------------------------------- */

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Does the space-separated relation list val[0..n) contain rel? */
static int rel_matches(const char *val, size_t n, const char *rel)
{
	size_t rl = strlen(rel), i = 0;

	while (i < n) {
		size_t start;

		while (i < n && (val[i] == ' ' || val[i] == '\t'))
			i++;
		start = i;
		while (i < n && val[i] != ' ' && val[i] != '\t')
			i++;
		if (i > start && i - start == rl && strncasecmp(val + start, rel, rl) == 0)
			return 1;
	}
	return 0;
}

/* Reads a quoted-string at p (on the opening quote) into out (unescaped,
 * capacity cap); returns the position after the closing quote or NULL. */
static const char *read_quoted(const char *p, char *out, size_t cap, size_t *out_len)
{
	size_t o = 0;

	for (p++; *p != '"'; p++) {
		if (*p == '\0')
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == '\0')
				return NULL;
		}
		if (o + 1 < cap)
			out[o++] = *p;
	}
	*out_len = o;
	return p + 1;
}

char *hub_link_find(const char *link_header, const char *rel)
{
	const char *p;
	char *val = NULL, *found = NULL;

	if (link_header == NULL || rel == NULL)
		return NULL;
	/* A parameter value never exceeds the header itself. */
	val = malloc(strlen(link_header) + 1);
	if (val == NULL)
		return NULL;
	p = link_header;
	for (;;) {
		const char *uri, *uri_end;
		int matched = 0;

		/* Empty list elements (", ,") are allowed by the list syntax. */
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (*p != '<')
			goto malformed;
		uri = ++p;
		uri_end = strchr(uri, '>');
		if (uri_end == NULL)
			goto malformed;
		p = skip_ows(uri_end + 1);
		while (*p == ';') {
			const char *name;
			size_t name_len, val_len = 0;

			p = skip_ows(p + 1);
			name = p;
			while (is_tchar((unsigned char)*p))
				p++;
			name_len = (size_t)(p - name);
			if (name_len == 0)
				goto malformed;
			p = skip_ows(p);
			if (*p == '=') {
				p = skip_ows(p + 1);
				if (*p == '"') {
					p = read_quoted(p, val, strlen(link_header) + 1, &val_len);
					if (p == NULL)
						goto malformed;
				} else {
					const char *v = p;

					/* Bare values should be tokens; accept what
					 * servers write in practice (type=text/html). */
					while (*p != '\0' && strchr(";, \t\"", *p) == NULL)
						p++;
					val_len = (size_t)(p - v);
					memcpy(val, v, val_len);
				}
				p = skip_ows(p);
			}
			if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 &&
			    rel_matches(val, val_len, rel))
				matched = 1;
		}
		if (*p != ',' && *p != '\0')
			goto malformed;
		if (matched && found == NULL) {
			found = strndup(uri, (size_t)(uri_end - uri));
			if (found == NULL)
				goto malformed;
		}
	}
	free(val);
	return found;

malformed:
	free(val);
	free(found);
	return NULL;
}

/* ---- query parameters ---------------------------------------------- */

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) (percent escapes, '+' as space) into a malloc'd string.
 * A '%' not followed by two hex digits is kept as it is. */
static char *unescape(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 &&
		    hex_value(s[i + 2]) >= 0) {
			out[o++] = (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	out[o] = '\0';
	return out;
}

char *hub_url_query_get(const char *url, const char *key)
{
	const char *p, *end;
	char *result = NULL;

	if (url == NULL || key == NULL)
		return NULL;
	p = strchr(url, '?');
	if (p != NULL)
		p++;
	else if (strstr(url, "://") == NULL)
		p = url;   /* a bare query string or form body: "a=1&b=2" */
	else
		return NULL;
	end = p + strcspn(p, "#");
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *name_end = eq != NULL ? eq : stop;
		char *name = unescape(p, (size_t)(name_end - p));

		if (name == NULL)
			goto fail;
		if (strcmp(name, key) == 0) {
			char *v = eq != NULL ? unescape(eq + 1, (size_t)(stop - eq - 1))
					     : strdup("");

			free(name);
			if (v == NULL)
				goto fail;
			free(result);   /* repeated: the last value wins */
			result = v;
		} else {
			free(name);
		}
		p = stop + (amp != NULL);
	}
	return result;

fail:
	free(result);
	return NULL;
}
