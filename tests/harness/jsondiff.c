/*
 * jsondiff.c - texts for the differential JSON tests (see jsondiff.h):
 * the fixture walk and the mutation stream.
 */
#include "config.h"
#include "jsondiff.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reads a whole file, NUL-terminated after *len bytes (malloc'd), or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf != NULL) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

int jsondiff_tree(const char *dir, jsondiff_fn fn, void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		size_t len = strlen(e->d_name), size = 0;
		char *text;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			n += jsondiff_tree(path, fn, arg);
			continue;
		}
		if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		text = slurp(path, &size);
		if (text == NULL)
			continue;
		n += fn(text, size, arg);
		free(text);
	}
	closedir(d);
	return n;
}

int jsondiff_fixtures(jsondiff_fn fn, void *arg)
{
	const char *fixtures = getenv("HUB_FIXTURES"), *src = getenv("HUB_SRCDIR");
	char path[4096];
	int n = 0;

	if (fixtures == NULL && src == NULL)
		return -1;
	if (fixtures != NULL)
		n += jsondiff_tree(fixtures, fn, arg);
	if (src != NULL) {
		snprintf(path, sizeof(path), "%s/plugins", src);
		n += jsondiff_tree(path, fn, arg);
		snprintf(path, sizeof(path), "%s/sdk", src);
		n += jsondiff_tree(path, fn, arg);
	}
	return n;
}

void jsondiff_mutator_init(struct jsondiff_mutator *m, uint64_t seed)
{
	m->state = seed != 0 ? seed : 0x9E3779B97F4A7C15u;
}

static uint64_t next_random(struct jsondiff_mutator *m)
{
	m->state ^= m->state << 13;
	m->state ^= m->state >> 7;
	m->state ^= m->state << 17;
	return m->state;
}

size_t jsondiff_mutate(struct jsondiff_mutator *m, const char *base, size_t blen, char *buf, size_t cap)
{
	static const char alphabet[] = "{}[]\":,\\ \t\n0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9\xff\xed\xa0"
				       "uDd";
	size_t len = blen;
	int edits = 1 + (int)(next_random(m) % 3);

	memcpy(buf, base, blen);
	for (int k = 0; k < edits && len > 0; k++) {
		uint64_t r = next_random(m);
		size_t at = (size_t)(r >> 8) % len;

		switch (r % 4) {
		case 0: /* replace */
			buf[at] = alphabet[(r >> 40) % (sizeof(alphabet) - 1)];
			break;
		case 1: /* delete */
			memmove(buf + at, buf + at + 1, len - at - 1);
			len--;
			break;
		case 2: /* insert */
			if (len < cap) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = alphabet[(r >> 40) % (sizeof(alphabet) - 1)];
				len++;
			}
			break;
		default: /* cut */
			len = at + 1;
			break;
		}
	}
	return len;
}
