/*
 * test_jtext.c - jtext_dump writes what json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) writes, byte for byte: every JSON file of the fixtures,
 * plugins and SDK, mutations of a payload that jansson still reads, strings
 * that need every kind of escape, integers at their limits, reals, scalars,
 * nesting, and the refusals (invalid UTF-8, NULL).
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jtext.h"
#include "../harness/jsondiff.h"

/* Fails the test unless jtext_dump and json_dumps agree on v. */
static void same_as_jansson(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t len = 0;
	char *got = jtext_dump(v, &len);

	if ((want == NULL) != (got == NULL))
		fail_msg("json_dumps %s, jtext_dump %s", want ? want : "(NULL)", got ? got : "(NULL)");
	if (want != NULL) {
		if (strcmp(want, got) != 0)
			fail_msg("json_dumps:\n%s\njtext_dump:\n%s", want, got);
		assert_int_equal(len, strlen(want));
	}
	free(want);
	free(got);
}

static void test_scalars(void **state)
{
	static const json_int_t ints[] = {0, 1, -1, 9, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN};
	static const double reals[] = {0.0, -0.0, 0.5, 1.0, -2.25, 1e300, 1.5e-7, 3.14159265358979,
				       123456789.0, 1e22};
	json_t *v;

	(void)state;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		v = json_integer(ints[i]);
		same_as_jansson(v);
		json_decref(v);
	}
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		v = json_real(reals[i]);
		same_as_jansson(v);
		json_decref(v);
	}
	same_as_jansson(json_true());
	same_as_jansson(json_false());
	same_as_jansson(json_null());
	assert_null(jtext_dump(NULL, NULL));
}

static void test_strings(void **state)
{
	static const char *const texts[] = {
		"", "plain", "quote \" backslash \\ slash /", "\b\f\n\r\t", "\x01\x02\x1f\x7f",
		"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", "</script>", "tab\tin\tthe\tmiddle",
	};
	json_t *v, *obj;

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		v = json_string(texts[i]);
		assert_non_null(v);
		same_as_jansson(v);
		/* The same text as a key. */
		obj = json_object();
		json_object_set_new(obj, texts[i], json_integer((json_int_t)i));
		same_as_jansson(obj);
		json_decref(obj);
		json_decref(v);
	}
	/* An embedded NUL (JSON_ALLOW_NUL readers make these). */
	v = json_stringn("a\0b", 3);
	same_as_jansson(v);
	json_decref(v);
	/* Invalid UTF-8 that slipped in through a _nocheck setter: both refuse. */
	v = json_string_nocheck("bad \xff byte");
	same_as_jansson(v);
	assert_null(jtext_dump(v, NULL));
	json_decref(v);
	v = json_string_nocheck("cut \xe4\xb8");
	same_as_jansson(v);
	json_decref(v);
}

static void test_nesting(void **state)
{
	json_t *root = json_array(), *cur = root;

	(void)state;
	for (int i = 0; i < 100; i++) {
		json_t *next = i % 2 ? json_array() : json_object();

		if (json_is_array(cur))
			json_array_append_new(cur, next);
		else
			json_object_set_new(cur, "k", next);
		json_array_append_new(root, json_integer(i));
		cur = next;
	}
	same_as_jansson(root);
	json_decref(root);
	root = json_pack("{s:[],s:{},s:[{},[]],s:n}", "a", "b", "c", "z");
	same_as_jansson(root);
	json_decref(root);
}

/* A fixture file, when jansson reads it, dumped by both. */
static int compare_file(const char *text, size_t len, void *arg)
{
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);

	(void)arg;
	if (v == NULL)
		return 0;
	same_as_jansson(v);
	json_decref(v);
	return 1;
}

static void test_fixtures(void **state)
{
	int n = jsondiff_fixtures(compare_file, NULL);

	(void)state;
	if (n < 0)
		skip();
	assert_true(n > 10);
}

/* Mutations of a payload (tests/harness/jsondiff) that jansson still
 * reads: numbers, strings, escapes and nesting it would not have met in
 * the fixtures, dumped by both. */
static void test_mutations(void **state)
{
	static const char base[] =
		"{\"id\":820982911946154508,\"email\":\"jon@example.com\",\"total_price\":\"199.65\","
		"\"tax\":0.065,\"note\":\"caf\xc3\xa9 \\u00e9 \\\"q\\\" \\n\\u001f\",\"tags\":[\"a\",\"b\"],"
		"\"line_items\":[{\"id\":466157049,\"qty\":1,\"gift\":false,\"sku\":null,"
		"\"props\":{}}],\"big\":-9223372036854775807,\"exp\":1.5e-3,\"emoji\":\"\\uD83D\\uDE00\"}";
	char buf[sizeof(base) + 8];
	struct jsondiff_mutator m;
	int read = 0;

	(void)state;
	jsondiff_mutator_init(&m, 0x2545F4914F6CDD1Du);
	for (int i = 0; i < 20000; i++) {
		size_t len = jsondiff_mutate(&m, base, sizeof(base) - 1, buf, sizeof(buf));
		json_t *v = json_loadb(buf, len, JSON_DECODE_ANY, NULL);

		if (v == NULL)
			continue;
		same_as_jansson(v);
		json_decref(v);
		read++;
	}
	/* Enough of them were values. */
	assert_true(read > 1000);
}

/* Pooled blocks: same text as json_dumps at every size (small, each pool
 * class, past the largest), blocks reused, freed from another thread. */
struct handoff {
	char *texts[64];
	int n;
};

static void *free_all(void *arg)
{
	struct handoff *h = arg;

	for (int i = 0; i < h->n; i++)
		jtext_block_free(h->texts[i]);
	return NULL;
}

static void test_blocks(void **state)
{
	static const size_t sizes[] = {0, 10, 900, 3000, 4100, 7000, 9000, 15000, 17000, 60000};
	struct handoff h = {{NULL}, 0};
	pthread_t th;

	(void)state;
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			char *filler = malloc(sizes[i] + 1), *want, *got;
			json_t *v;
			size_t len = 0;

			assert_non_null(filler);
			memset(filler, 'x', sizes[i]);
			filler[sizes[i]] = '\0';
			v = json_pack("{s:s,s:i,s:[s]}", "text", filler, "n", (int)i, "esc", "a\"b\n");
			want = json_dumps(v, JSON_COMPACT);
			got = jtext_dump_block(v, &len);
			assert_non_null(got);
			assert_string_equal(got, want);
			assert_int_equal(len, strlen(want));
			if (round < 2) {
				jtext_block_free(got); /* back to the pool, reused next round */
			} else {
				h.texts[h.n++] = got;
			}
			free(want);
			free(filler);
			json_decref(v);
		}
	}
	assert_int_equal(pthread_create(&th, NULL, free_all, &h), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	jtext_block_free(NULL);
	assert_null(jtext_dump_block(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
