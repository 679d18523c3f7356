/*
 * test_metrics.c - the Prometheus registry: counters and gauges by label
 * set, label escaping, and histograms rendered as cumulative buckets with
 * their sum and count, in the text exposition format.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "metrics.h"

/* The registry rendered, as a NUL-terminated string (caller frees). */
static char *render(struct metrics *m)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *text;

	assert_non_null(b);
	metrics_render(m, b);
	n = evbuffer_get_length(b);
	text = malloc(n + 1);
	assert_non_null(text);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	evbuffer_free(b);
	return text;
}

/* Whether `line` is a whole line of text. */
static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return;
	}
	fail_msg("line \"%s\" not in:\n%s", line, text);
}

static void counters_and_gauges(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *a, *b, *g;
	char esc[64], *text;

	(void)state;
	a = metrics_get(m, METRIC_COUNTER, "hub_x_total", "X things", "k=\"a\"");
	b = metrics_getf(m, METRIC_COUNTER, "hub_x_total", NULL, "k=\"%s\"", "b");
	assert_ptr_equal(metrics_get(m, METRIC_COUNTER, "hub_x_total", NULL, "k=\"a\""), a);
	assert_ptr_not_equal(a, b);
	metric_add(a, 2);
	metric_add(a, 3);
	metric_add(b, 1);
	g = metrics_get(m, METRIC_GAUGE, "hub_g", "A gauge", NULL);
	metric_set(g, 7.5);
	metric_observe(g, 100); /* not a histogram: ignored */
	assert_true(metric_value(a) == 5);
	assert_true(metric_value(g) == 7.5);
	assert_int_equal(metric_count(g), 0);
	metric_add(NULL, 1);
	metric_observe(NULL, 1);
	metrics_escape_label("a\"b\\c\nd", esc, sizeof(esc));
	assert_string_equal(esc, "a\\\"b\\\\c\\nd");

	text = render(m);
	assert_line(text, "# HELP hub_x_total X things");
	assert_line(text, "# TYPE hub_x_total counter");
	assert_line(text, "hub_x_total{k=\"a\"} 5");
	assert_line(text, "hub_x_total{k=\"b\"} 1");
	assert_line(text, "# TYPE hub_g gauge");
	assert_line(text, "hub_g 7.5");
	free(text);
	metrics_free(m);
}

static void histograms(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *h, *plain;
	char *text;

	(void)state;
	h = metrics_get(m, METRIC_HISTOGRAM, "hub_lat_seconds", "Latency", "c=\"s1\"");
	plain = metrics_get(m, METRIC_HISTOGRAM, "hub_plain_seconds", "No labels", NULL);
	metric_observe(h, 0.0002);  /* le 0.0005 */
	metric_observe(h, 0.001);   /* le 0.001: a bound is inclusive */
	metric_observe(h, 0.003);   /* le 0.005 */
	metric_observe(h, 0.003);
	metric_observe(h, 42);      /* above 10: +Inf only */
	metric_add(h, 5);           /* not for histograms: ignored */
	metric_observe(plain, 0.02);
	assert_int_equal(metric_count(h), 5);
	assert_true(metric_value(h) > 42.0072 - 1e-9 && metric_value(h) < 42.0072 + 1e-9);

	text = render(m);
	assert_line(text, "# TYPE hub_lat_seconds histogram");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"0.0005\"} 1");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"0.001\"} 2");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"0.0025\"} 2");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"0.005\"} 4");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"10\"} 4");
	assert_line(text, "hub_lat_seconds_bucket{c=\"s1\",le=\"+Inf\"} 5");
	assert_line(text, "hub_lat_seconds_sum{c=\"s1\"} 42.0072");
	assert_line(text, "hub_lat_seconds_count{c=\"s1\"} 5");
	assert_line(text, "hub_plain_seconds_bucket{le=\"0.025\"} 1");
	assert_line(text, "hub_plain_seconds_bucket{le=\"0.01\"} 0");
	assert_line(text, "hub_plain_seconds_sum 0.02");
	assert_line(text, "hub_plain_seconds_count 1");
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_and_gauges),
		cmocka_unit_test(histograms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
