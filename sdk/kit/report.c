/*
 * report.c - the kit's report: one line per check, detail lines under
 * failures, a summary line, and JSON-path diffs of expected against actual
 * values so a partner sees exactly which field is wrong.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kit.h"

static int passed, failed, skipped;

/* Detail lines wait here until the check they explain is printed. */
static char *details;
static size_t details_len;

static void line(const char *tag, const char *what, const char *fmt, va_list ap)
{
	printf("%s %s: ", tag, what);
	vprintf(fmt, ap);
	putchar('\n');
	if (details_len)
		fputs(details, stdout);
	free(details);
	details = NULL;
	details_len = 0;
	fflush(stdout);
}

void kit_pass(const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("PASS", what, fmt, ap);
	va_end(ap);
	passed++;
}

void kit_fail(const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("FAIL", what, fmt, ap);
	va_end(ap);
	failed++;
}

void kit_skip(const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("SKIP", what, fmt, ap);
	va_end(ap);
	skipped++;
}

void kit_info(const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("INFO", what, fmt, ap);
	va_end(ap);
}

void kit_detail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t n;
	char *grown;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	grown = realloc(details, details_len + n + 7);
	if (!grown)
		return;
	details = grown;
	memcpy(details + details_len, "     ", 5);
	memcpy(details + details_len + 5, buf, n);
	details_len += n + 6;
	details[details_len - 1] = '\n';
	details[details_len] = '\0';
}

int kit_failures(void)
{
	return failed;
}

int kit_summary(void)
{
	printf("hub-plugin-kit: %d checks, %d passed, %d failed, %d skipped: %s\n",
	       passed + failed, passed, failed, skipped, failed ? "FAIL" : "PASS");
	fflush(stdout);
	return failed ? 1 : 0;
}

int kit_json_equal(const json_t *a, const json_t *b, int numeric)
{
	size_t i;
	const char *key;
	json_t *v;

	if (numeric && json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (!numeric || json_typeof(a) != json_typeof(b) ||
	    !(json_is_object(a) || json_is_array(a)))
		return json_equal(a, b);
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (i = 0; i < json_array_size(a); i++)
			if (!kit_json_equal(json_array_get(a, i), json_array_get(b, i), numeric))
				return 0;
		return 1;
	}
	if (json_object_size(a) != json_object_size(b))
		return 0;
	json_object_foreach((json_t *)a, key, v)
		if (!kit_json_equal(v, json_object_get(b, key), numeric))
			return 0;
	return 1;
}

/* A short rendering of a value for a diff line (malloc'd). */
static char *show(const json_t *v)
{
	char *text, *out;
	size_t len;

	if (!v)
		return strdup("(absent)");
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return strdup("?");
	len = strlen(text);
	if (len <= 100)
		return text;
	out = malloc(108);
	if (out)
		snprintf(out, 108, "%.100s...", text);
	free(text);
	return out;
}

static void differ(const char *path, const json_t *expected, const json_t *actual, int *n,
		   int max)
{
	char *e, *a;

	if (++*n > max)
		return;
	e = show(expected);
	a = show(actual);
	kit_detail("%s: expected %s, got %s", path, e ? e : "?", a ? a : "?");
	free(e);
	free(a);
}

static void diff_rec(const char *path, const json_t *expected, const json_t *actual,
		     int numeric, int *n, int max)
{
	char sub[512];
	const char *key;
	json_t *v;
	size_t i;

	if (*n > max)
		return;
	if (!expected || !actual || json_typeof(expected) != json_typeof(actual) ||
	    !(json_is_object(expected) || json_is_array(expected))) {
		if (!expected || !actual || !kit_json_equal(expected, actual, numeric))
			differ(path, expected, actual, n, max);
		return;
	}
	if (json_is_array(expected)) {
		size_t ne = json_array_size(expected), na = json_array_size(actual);

		for (i = 0; i < ne || i < na; i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			diff_rec(sub, json_array_get(expected, i), json_array_get(actual, i),
				 numeric, n, max);
		}
		return;
	}
	json_object_foreach((json_t *)expected, key, v) {
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
		diff_rec(sub, v, json_object_get(actual, key), numeric, n, max);
	}
	json_object_foreach((json_t *)actual, key, v) {
		if (json_object_get(expected, key))
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
		diff_rec(sub, NULL, v, numeric, n, max);
	}
}

int kit_diff(const char *path, const json_t *expected, const json_t *actual, int numeric,
	     int max)
{
	int n = 0;

	diff_rec(path, expected, actual, numeric, &n, max);
	if (n > max)
		kit_detail("... and more differences");
	return n;
}
