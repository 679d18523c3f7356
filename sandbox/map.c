/*
 * map.c - a small open-addressing hash map from strings to pointers, for
 * the sandbox's lookups: stores by name, shipments by tracking number,
 * access tokens, WooCommerce nonces. Keys are copied; values are borrowed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

struct sb_map_slot {
	char *key;     /* NULL: empty; TOMB: deleted */
	uint64_t hash;
	void *value;
};

static char tomb_mark;
#define TOMB (&tomb_mark)

void sb_map_init(struct sb_map *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

void sb_map_release(struct sb_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMB)
			free(m->slots[i].key);
	free(m->slots);
	sb_map_init(m);
}

static long find(const struct sb_map *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return -1;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
		struct sb_map_slot *s = &m->slots[i];
		if (!s->key)
			return -1;
		if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return (long)i;
	}
	return -1;
}

void *sb_map_get(const struct sb_map *m, const char *key)
{
	long i = find(m, key, sb_hash_str(key));
	return i < 0 ? NULL : m->slots[i].value;
}

/* Rehashes into a table sized for the live entries (dropping tombstones),
 * so churn (nonces, tokens) does not grow the table without bound. */
static int grow(struct sb_map *m)
{
	size_t live = 0;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMB)
			live++;
	size_t ncap = 64;
	while (ncap < (live + 1) * 2)
		ncap *= 2;
	struct sb_map_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct sb_map_slot *s = &m->slots[i];
		if (!s->key || s->key == TOMB)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->count = live;
	return 0;
}

int sb_map_put(struct sb_map *m, const char *key, void *value)
{
	uint64_t h = sb_hash_str(key);
	long i = find(m, key, h);
	if (i >= 0) {
		m->slots[i].value = value;
		return 0;
	}
	/* count tombstones as used so probing always ends on an empty slot */
	if ((m->count + 1) * 4 >= m->cap * 3) {
		if (grow(m))
			return -1;
	}
	size_t mask = m->cap - 1;
	size_t j = h & mask;
	while (m->slots[j].key && m->slots[j].key != TOMB)
		j = (j + 1) & mask;
	char *k = strdup(key);
	if (!k)
		return -1;
	if (m->slots[j].key != TOMB)
		m->count++;
	m->slots[j].key = k;
	m->slots[j].hash = h;
	m->slots[j].value = value;
	return 0;
}

void *sb_map_del(struct sb_map *m, const char *key)
{
	long i = find(m, key, sb_hash_str(key));
	if (i < 0)
		return NULL;
	void *v = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = TOMB;
	m->slots[i].value = NULL;
	return v;
}

long sb_map_next(const struct sb_map *m, size_t *pos, const char **key, void **value)
{
	for (size_t i = *pos; i < m->cap; i++) {
		if (m->slots[i].key && m->slots[i].key != TOMB) {
			*key = m->slots[i].key;
			*value = m->slots[i].value;
			*pos = i + 1;
			return (long)i;
		}
	}
	*pos = m->cap;
	return -1;
}
