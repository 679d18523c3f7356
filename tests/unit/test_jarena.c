/*
 * test_jarena.c - the scratch region for webhook calls' jansson values
 * (core/jarena.c): values made in a scope come from the region and cost
 * nothing to free, values from outside and large ones still go through
 * malloc and free, a closed scope starts over from the same memory, and
 * threads keep their own regions.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "jarena.h"
#include "jtext.h"

static const char order[] =
	"{\"id\":820982911946154508,\"email\":\"jon@example.com\",\"total_price\":\"199.65\","
	"\"line_items\":[{\"id\":466157049,\"sku\":\"IPOD2008GREEN\",\"quantity\":1,"
	"\"price\":\"199.00\",\"title\":\"IPod Nano - 8gb\"},{\"id\":518995019,"
	"\"sku\":\"IPOD2008RED\",\"quantity\":2,\"price\":\"0.65\",\"title\":\"IPod\"}],"
	"\"shipping_address\":{\"city\":\"Ottawa\",\"zip\":\"K2P 1L4\",\"country_code\":\"CA\"}}";

static int setup(void **state)
{
	(void)state;
	jarena_install();
	return 0;
}

static void test_scope(void **state)
{
	json_t *outside, *inside, *again, *again_outside, *first;
	char *first_text, *text, text_buf[2048];
	size_t used;

	(void)state;
	outside = json_pack("{s:s}", "kept", "made before the scope");
	assert_int_equal(jarena_used(), 0);
	jarena_begin();
	inside = json_loads(order, 0, NULL);
	assert_non_null(inside);
	used = jarena_used();
	assert_true(used > 0);
	/* A value from outside the scope is freed for real (no crash, and
	 * valgrind/ASan would see a leak otherwise); one from inside is
	 * dropped with the scope. */
	json_decref(outside);
	json_decref(inside);
	assert_int_equal(jarena_used(), used);
	jarena_end();
	first = json_loads(order, 0, NULL);
	first_text = json_dumps(first, JSON_SORT_KEYS);
	json_decref(first);
	assert_non_null(first_text);
	assert_int_equal(jarena_used(), 0);

	/* The next scope carves the same memory again and gives equal values. */
	jarena_begin();
	again = json_loads(order, 0, NULL);
	assert_true(json_dumpb(again, text_buf, sizeof(text_buf), JSON_SORT_KEYS) < sizeof(text_buf));
	assert_true(jarena_used() > 0);
	json_decref(again);
	jarena_end();
	/* Outside a scope json_dumps is plain malloc. */
	text = json_dumps(again_outside = json_loads(order, 0, NULL), JSON_SORT_KEYS);
	assert_string_equal(text, first_text);
	text_buf[strlen(first_text)] = '\0';
	assert_string_equal(text_buf, first_text);
	json_decref(again_outside);
	free(first_text);
	free(text);
}

static void test_large_values(void **state)
{
	char *big = malloc(64 * 1024 + 1);
	json_t *s;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', 64 * 1024);
	big[64 * 1024] = '\0';
	jarena_begin();
	/* Larger than the region's limit: malloc'd, and freed inside. */
	s = json_string(big);
	assert_non_null(s);
	assert_int_equal(json_string_length(s), 64 * 1024);
	json_decref(s);
	/* Enough small values to need several blocks. */
	for (int i = 0; i < 20000; i++) {
		json_t *v = json_pack("{s:i,s:s}", "n", i, "t", "some text");
		assert_non_null(v);
		json_decref(v);
	}
	assert_true(jarena_used() > 4 * 64 * 1024);
	jarena_end();
	/* Past KEEP_BLOCKS, the blocks went back; the region still works. */
	jarena_begin();
	s = json_string("after");
	assert_string_equal(json_string_value(s), "after");
	json_decref(s);
	jarena_end();
	jarena_thread_release();
	free(big);
}

struct worker {
	char *text;
	int rounds;
};

static void *run_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->rounds; i++) {
		json_t *v;
		char *t, buf[2048];
		size_t n;

		jarena_begin();
		v = json_loads(order, 0, NULL);
		n = v ? json_dumpb(v, buf, sizeof(buf) - 1, JSON_SORT_KEYS) : 0;
		json_decref(v);
		jarena_end();
		buf[n < sizeof(buf) ? n : 0] = '\0';
		t = n && n < sizeof(buf) ? strdup(buf) : NULL;
		if (!t)
			return NULL;
		if (w->text == NULL) {
			w->text = t;
		} else {
			int same = strcmp(t, w->text) == 0;

			free(t);
			if (!same)
				return NULL;
		}
	}
	return w;
}

static void test_threads(void **state)
{
	struct worker w[4];
	pthread_t th[4];
	json_t *ref = json_loads(order, 0, NULL);
	char *want = json_dumps(ref, JSON_SORT_KEYS);

	(void)state;
	json_decref(ref);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){NULL, 2000};
		assert_int_equal(pthread_create(&th[i], NULL, run_worker, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret = NULL;

		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_ptr_equal(ret, &w[i]);
		assert_string_equal(w[i].text, want);
		free(w[i].text);
	}
	free(want);
}

/* What a scoped webhook call serialises for the store (jtext) is plain
 * malloc'd text, reals included (their text is jansson's, written into a
 * buffer of jtext's rather than a json_dumps string from the region). */
static void test_serialise_inside(void **state)
{
	json_t *rec;
	char *inside, *outside;

	(void)state;
	rec = json_pack("{s:f, s:f, s:s, s:[f, i]}", "weight", 1.25, "tiny", 1.5e-7, "t", "x",
			"list", -2.5, 3);
	outside = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(rec);
	jarena_begin();
	rec = json_pack("{s:f, s:f, s:s, s:[f, i]}", "weight", 1.25, "tiny", 1.5e-7, "t", "x",
			"list", -2.5, 3);
	inside = jtext_dump(rec, NULL);
	json_decref(rec);
	jarena_end();
	assert_non_null(inside);
	assert_string_equal(inside, outside);
	free(inside);
	free(outside);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scope),
		cmocka_unit_test(test_large_values),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_serialise_inside),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
