/*
 * metrics.h - counters, gauges and histograms rendered in the Prometheus
 * text format.
 *
 * A family has a name, a help line and a type; a series is a family plus a
 * label set ("connector=\"acme\",status=\"200\""). Series are created on
 * first use and live until metrics_free. Loop thread only: the store thread
 * reports through completions on the loop, never here directly.
 */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <event2/buffer.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* A histogram's bucket bounds, in seconds (latencies from 0.5 ms to 10 s);
 * +Inf is implied. */
#define METRIC_HISTOGRAM_BOUNDS                                                                \
	{0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
#define METRIC_HISTOGRAM_NBOUNDS 15

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

/* Counter: adds v. Gauge: adds v, or sets it. A histogram's series take
 * observations only. NULL is ignored. */
void metric_add(struct metric *s, double v);
void metric_set(struct metric *s, double v);

/* Histogram: counts one observation of v (seconds) in its bucket, its sum
 * and its count. NULL, and a series of another type, are ignored. */
void metric_observe(struct metric *s, double v);

/* A counter's or gauge's value; a histogram's sum. 0 for NULL. */
double metric_value(const struct metric *s);

/* A histogram's count of observations (0 for other types and NULL). */
unsigned long long metric_count(const struct metric *s);

/* Appends every family in the text exposition format (version 0.0.4). */
void metrics_render(struct metrics *m, struct evbuffer *out);

/* Escapes a label value (backslash, quote, newline) into buf. */
void metrics_escape_label(const char *value, char *buf, size_t size);

#endif
