/*
 * test_openapi.c - docs/openapi.yaml and hubd agree: every route hubd
 * serves (hubd --print-routes) is in the spec, and every path and method in
 * the spec is served.
 */
#include "config.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../harness/proc.h"

/* "METHOD /path" lines of the spec: paths at two spaces of indent, methods at four. */
static char *spec_routes(const char *yaml)
{
	size_t cap = 65536, len = 0;
	char *out = calloc(1, cap), path[256] = "";
	const char *line = yaml;

	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		if (n > 3 && line[0] == ' ' && line[1] == ' ' && line[2] == '/') {
			const char *colon = memchr(line, ':', n);
			size_t pl = (colon != NULL ? (size_t)(colon - line) : n) - 2;
			snprintf(path, sizeof(path), "%.*s", (int)pl, line + 2);
		} else if (n > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ') {
			path[0] = '\0'; /* left the paths block */
		} else if (path[0] && n > 5 && strncmp(line, "    ", 4) == 0 && line[4] != ' ') {
			static const char *const methods[] = {"get", "post", "put", "delete", "patch", NULL};
			for (int i = 0; methods[i]; i++) {
				size_t ml = strlen(methods[i]);
				if (strncmp(line + 4, methods[i], ml) == 0 && line[4 + ml] == ':') {
					char m[8];
					for (size_t k = 0; k <= ml; k++)
						m[k] = (char)toupper((unsigned char)methods[i][k]);
					len += (size_t)snprintf(out + len, cap - len, "%s %s\n", m, path);
				}
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	return out;
}

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void spec_matches_server(void **state)
{
	char hubd[512], path[512], *served, *yaml, *spec;
	char *argv[] = {hubd, "--print-routes", NULL};
	int missing = 0;

	proc_build_path(hubd, sizeof(hubd), "hubd");
	assert_int_equal(proc_run(argv, &served, 5000), 0);
	snprintf(path, sizeof(path), "%s/docs/openapi.yaml", getenv("HUB_SRCDIR") ? getenv("HUB_SRCDIR") : "..");
	yaml = proc_read_file(path);
	assert_non_null(yaml);
	spec = spec_routes(yaml);
	assert_true(strlen(spec) > 100);

	for (const char *l = served; *l;) {
		const char *eol = strchr(l, '\n');
		char one[300];
		snprintf(one, sizeof(one), "%.*s", (int)(eol - l), l);
		if (!has_line(spec, one)) {
			fprintf(stderr, "served but not in docs/openapi.yaml: %s\n", one);
			missing++;
		}
		l = eol + 1;
	}
	for (const char *l = spec; *l;) {
		const char *eol = strchr(l, '\n');
		char one[300];
		snprintf(one, sizeof(one), "%.*s", (int)(eol - l), l);
		if (!has_line(served, one)) {
			fprintf(stderr, "in docs/openapi.yaml but not served: %s\n", one);
			missing++;
		}
		l = eol + 1;
	}
	assert_int_equal(missing, 0);
	free(served);
	free(yaml);
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_matches_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
