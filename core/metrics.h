/*
 * metrics.h - counters and gauges rendered in the Prometheus text format.
 *
 * A family has a name, a help line and a type; a series is a family plus a
 * label set ("connector=\"acme\",status=\"200\""). Series are created on
 * first use and live until metrics_free. Loop thread only: the store thread
 * reports through completions on the loop, never here directly.
 */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <event2/buffer.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE };

struct metrics;
struct metric;

/* Allocates an empty registry; free with metrics_free. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Finds or creates the series `name{labels}` (labels may be NULL or "").
 * The family's help and type come from its first use. Returns a borrowed
 * pointer valid until metrics_free, or NULL when out of memory (the update
 * functions accept NULL and do nothing). */
struct metric *metrics_get(struct metrics *m, enum metric_type type, const char *name,
			   const char *help, const char *labels);

/* Same, with labels built from printf-style arguments. */
struct metric *metrics_getf(struct metrics *m, enum metric_type type, const char *name,
			    const char *help, const char *labels_fmt, ...)
	__attribute__((format(printf, 5, 6)));

void metric_add(struct metric *s, double v);
void metric_set(struct metric *s, double v);
double metric_value(const struct metric *s);

/* Appends every family in the text exposition format (version 0.0.4). */
void metrics_render(struct metrics *m, struct evbuffer *out);

/* Escapes a label value (backslash, quote, newline) into buf. */
void metrics_escape_label(const char *value, char *buf, size_t size);

#endif
