/*
 * metrics.c - a small Prometheus registry: families in first-use order,
 * series in a hash table keyed by "name{labels}". See metrics.h.
 */
#include "config.h"
#include "metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct family {
	char *name, *help;
	enum metric_type type;
	struct metric *first, *last; /* series of this family, in creation order */
	struct family *next;
};

/* One allocation per series (10,000 connectors make tens of thousands):
 * the key "name{labels}" is also what is rendered. */
struct metric {
	struct family *fam;
	double value;               /* a histogram: the sum of its observations */
	unsigned long long *hist;   /* a histogram: per bucket (not cumulative), then the count */
	struct metric *next_in_family;
	struct metric *hash_next;
	int has_labels;
	char key[];
};

struct metrics {
	struct family *families, *last_family;
	struct metric **buckets;
	size_t nbuckets, count;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->nbuckets = 256;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	struct family *f, *fn;
	struct metric *s, *sn;

	if (!m)
		return;
	for (f = m->families; f; f = fn) {
		fn = f->next;
		for (s = f->first; s; s = sn) {
			sn = s->next_in_family;
			free(s->hist);
			free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	free(m->buckets);
	free(m);
}

static void rehash(struct metrics *m)
{
	size_t n = m->nbuckets * 2;
	struct metric **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct metric *s = m->buckets[i], *next;
		for (; s; s = next) {
			next = s->hash_next;
			size_t k = hash_str(s->key) & (n - 1);
			s->hash_next = b[k];
			b[k] = s;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

static struct family *family_get(struct metrics *m, enum metric_type type, const char *name,
				 const char *help)
{
	struct family *f;

	for (f = m->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(name);
	f->help = strdup(help ? help : name);
	f->type = type;
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		free(f);
		return NULL;
	}
	if (m->last_family)
		m->last_family->next = f;
	else
		m->families = f;
	m->last_family = f;
	return f;
}

struct metric *metrics_get(struct metrics *m, enum metric_type type, const char *name,
			   const char *help, const char *labels)
{
	char key[1024];
	size_t k, len;
	struct metric *s;
	struct family *f;

	if (!m)
		return NULL;
	labels = labels ? labels : "";
	if (snprintf(key, sizeof(key), "%s{%s}", name, labels) >= (int)sizeof(key))
		return NULL;
	len = strlen(key);
	k = hash_str(key) & (m->nbuckets - 1);
	for (s = m->buckets[k]; s; s = s->hash_next)
		if (strcmp(s->key, key) == 0)
			return s;
	f = family_get(m, type, name, help);
	if (!f)
		return NULL;
	s = calloc(1, sizeof(*s) + len + 1);
	if (!s)
		return NULL;
	if (f->type == METRIC_HISTOGRAM) {
		s->hist = calloc(METRIC_HISTOGRAM_NBOUNDS + 2, sizeof(*s->hist));
		if (!s->hist) {
			free(s);
			return NULL;
		}
	}
	s->fam = f;
	s->has_labels = *labels != '\0';
	memcpy(s->key, key, len + 1);
	s->hash_next = m->buckets[k];
	m->buckets[k] = s;
	if (f->last)
		f->last->next_in_family = s;
	else
		f->first = s;
	f->last = s;
	if (++m->count > m->nbuckets * 2)
		rehash(m);
	return s;
}

struct metric *metrics_getf(struct metrics *m, enum metric_type type, const char *name,
			    const char *help, const char *labels_fmt, ...)
{
	char labels[768];
	va_list ap;

	va_start(ap, labels_fmt);
	vsnprintf(labels, sizeof(labels), labels_fmt, ap);
	va_end(ap);
	return metrics_get(m, type, name, help, labels);
}

static const double bounds[METRIC_HISTOGRAM_NBOUNDS] = METRIC_HISTOGRAM_BOUNDS;

void metric_add(struct metric *s, double v)
{
	if (s && !s->hist)
		s->value += v;
}

void metric_set(struct metric *s, double v)
{
	if (s && !s->hist)
		s->value = v;
}

void metric_observe(struct metric *s, double v)
{
	size_t b = 0;

	if (!s || !s->hist)
		return;
	while (b < METRIC_HISTOGRAM_NBOUNDS && v > bounds[b])
		b++;
	s->hist[b]++;
	s->hist[METRIC_HISTOGRAM_NBOUNDS + 1]++;
	s->value += v;
}

double metric_value(const struct metric *s)
{
	return s ? s->value : 0;
}

unsigned long long metric_count(const struct metric *s)
{
	return s && s->hist ? s->hist[METRIC_HISTOGRAM_NBOUNDS + 1] : 0;
}

void metrics_escape_label(const char *value, char *buf, size_t size)
{
	size_t n = 0;

	for (; value && *value && n + 3 < size; value++) {
		if (*value == '\\' || *value == '"') {
			buf[n++] = '\\';
			buf[n++] = *value;
		} else if (*value == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *value;
		}
	}
	if (size)
		buf[n] = '\0';
}

/* A histogram series: cumulative buckets, then _sum and _count, each with
 * the series' labels (taken from its key "name{labels}"). */
static void render_histogram(const struct family *f, const struct metric *s, struct evbuffer *out)
{
	const char *labels = s->key + strlen(f->name) + 1;
	int llen = (int)strlen(labels) - 1; /* without the closing brace */
	const char *sep = llen > 0 ? "," : "";
	unsigned long long cum = 0;

	for (size_t b = 0; b < METRIC_HISTOGRAM_NBOUNDS; b++) {
		cum += s->hist[b];
		evbuffer_add_printf(out, "%s_bucket{%.*s%sle=\"%g\"} %llu\n", f->name, llen, labels, sep,
				    bounds[b], cum);
	}
	evbuffer_add_printf(out, "%s_bucket{%.*s%sle=\"+Inf\"} %llu\n", f->name, llen, labels, sep,
			    s->hist[METRIC_HISTOGRAM_NBOUNDS + 1]);
	evbuffer_add_printf(out, "%s_sum%s%.*s%s %.15g\n", f->name, llen > 0 ? "{" : "", llen, labels,
			    llen > 0 ? "}" : "", s->value);
	evbuffer_add_printf(out, "%s_count%s%.*s%s %llu\n", f->name, llen > 0 ? "{" : "", llen, labels,
			    llen > 0 ? "}" : "", s->hist[METRIC_HISTOGRAM_NBOUNDS + 1]);
}

void metrics_render(struct metrics *m, struct evbuffer *out)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};

	for (struct family *f = m->families; f; f = f->next) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
				    types[f->type]);
		for (struct metric *s = f->first; s; s = s->next_in_family) {
			if (s->hist)
				render_histogram(f, s, out);
			else if (s->has_labels)
				evbuffer_add_printf(out, "%s %.15g\n", s->key, s->value);
			else
				evbuffer_add_printf(out, "%s %.15g\n", f->name, s->value);
		}
	}
}
