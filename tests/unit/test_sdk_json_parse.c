/*
 * test_sdk_json_parse.c - hub_json_loadb against jansson's json_loadb, the
 * reader it stands in for: on hand-picked valid and invalid texts, on every
 * JSON file of the shared fixtures, and on tens of thousands of mutations
 * of real payloads, both must accept the same texts and build equal values
 * with the same key order. Also the flags, the nesting limit and the error
 * positions.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

#include "../harness/jsondiff.h"

/* Parses text with both readers and fails the test when they disagree.
 * Returns 1 when both accepted it, 0 when both refused it. */
static int same_as_jansson(const char *text, size_t len, size_t flags)
{
	json_error_t je, he;
	json_t *want = json_loadb(text, len, flags, &je);
	json_t *got = hub_json_loadb(text, len, flags, &he);
	int accepted = want != NULL;

	if ((want == NULL) != (got == NULL))
		fail_msg("jansson %s but hub_json_loadb %s: %.*s (%s)", want ? "accepts" : "refuses",
			 got ? "accepts" : "refuses", (int)(len > 200 ? 200 : len), text,
			 want ? he.text : je.text);
	if (want != NULL) {
		char *a = json_dumps(want, JSON_ENCODE_ANY), *b = json_dumps(got, JSON_ENCODE_ANY);

		if (!json_equal(want, got) || strcmp(a, b) != 0)
			fail_msg("different values for %.*s:\n%s\n%s", (int)(len > 200 ? 200 : len), text, a,
				 b);
		free(a);
		free(b);
	} else {
		assert_true(he.text[0] != '\0');
		assert_true(he.line >= 1);
		assert_true(he.position >= 0 && (size_t)he.position <= len);
	}
	json_decref(want);
	json_decref(got);
	return accepted;
}

static const char *const valid[] = {
	"{}", "[]", " \t\r\n{ } ", "[1,2,3]", "{\"a\":1,\"b\":[true,false,null]}",
	"{\"z\":1,\"a\":2,\"m\":3}", "{\"a\":1,\"a\":2}", "[\"\"]", "[\"plain ascii\"]",
	"[\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]", "[\"\\u00e9\\u4e2d\\uD83D\\uDE00\"]",
	"[\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"]", "{\"k\\u00e9y\":\"v\",\"k\\ny\":[1]}",
	"[0,-0,1,-1,9223372036854775807,-9223372036854775808]",
	"[0.5,-0.5,1e3,1E-3,1.5e+10,-2.25E-2,0e0,1e308,1e-400]",
	"[[[[[[[[[[[]]]]]]]]]]]", "{\"a\":{\"b\":{\"c\":{}}}}", "[{},[],\"\",0]",
	"{\"long\":\"" "0123456789012345678901234567890123456789012345678901234567890123456789"
	"0123456789012345678901234567890123456789012345678901234567890123456789" "\"}",
	"[123456789012345678901234567890.5]", "[\"\\u0041\\u00DF\\u6771\\uD800\\uDC00\"]",
	"{\"\":1}", "[\"\\\\u0000\"]",
};

static const char *const invalid[] = {
	"", " ", "1", "\"s\"", "null", "{", "[", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]",
	"[1 2]", "{\"a\" 1}", "{a:1}", "['a']", "[01]", "[-]", "[1.]", "[.5]", "[1e]", "[1e+]",
	"[+1]", "[tru]", "[truex]", "[nul]", "[True]", "{} {}", "{}x", "[\"a]", "[\"a\\\"]",
	"[\"\\x\"]", "[\"\\u12\"]", "[\"\\u12G4\"]", "[\"\\uD800\"]", "[\"\\uDC00\"]",
	"[\"\\uD800\\u0041\"]", "[\"\\u0000\"]", "[\"tab\there\"]", "[\"nl\nhere\"]",
	"[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]", "[\"\xed\xa0\x80\"]",
	"[\"\xf4\x90\x80\x80\"]", "[\"\xc3\"]", "[\"\xe4\xb8\"]", "[9223372036854775808]",
	"[-9223372036854775809]", "[1e999]", "[-1e999]", "{\"a\":1]", "[1}", "[,]", "{,}",
	"[1,,2]", "{\"a\":1,,\"b\":2}", "{\"a\"::1}", "]", "}", "\xef\xbb\xbf{}",
};

static void test_valid_texts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_int_equal(same_as_jansson(valid[i], strlen(valid[i]), 0), 1);
}

static void test_invalid_texts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		assert_int_equal(same_as_jansson(invalid[i], strlen(invalid[i]), 0), 0);
	/* A NUL byte inside the buffer, in a string and outside. */
	assert_int_equal(same_as_jansson("[\"a\0b\"]", 7, 0), 0);
	assert_int_equal(same_as_jansson("{}\0", 3, 0), 0);
	/* NULL buffer. */
	assert_null(hub_json_loadb(NULL, 0, 0, NULL));
}

static void test_flags(void **state)
{
	json_error_t err;
	json_t *v;

	(void)state;
	/* Duplicates: the last wins, unless refused. */
	assert_int_equal(same_as_jansson("{\"a\":1,\"a\":2}", 13, 0), 1);
	assert_int_equal(same_as_jansson("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES), 0);
	assert_int_equal(same_as_jansson("{\"a\":1,\"b\":{\"a\":2}}", 19, JSON_REJECT_DUPLICATES), 1);
	/* Bare values with JSON_DECODE_ANY. */
	assert_int_equal(same_as_jansson("  42 ", 5, JSON_DECODE_ANY), 1);
	assert_int_equal(same_as_jansson("\"s\"", 3, JSON_DECODE_ANY), 1);
	assert_int_equal(same_as_jansson("null", 4, JSON_DECODE_ANY), 1);
	assert_int_equal(same_as_jansson("-1.5e2", 6, JSON_DECODE_ANY), 1);
	assert_int_equal(same_as_jansson("", 0, JSON_DECODE_ANY), 0);
	/* \u0000 with JSON_ALLOW_NUL: kept, with its length. */
	v = hub_json_loadb("[\"a\\u0000b\"]", 12, JSON_ALLOW_NUL, &err);
	assert_non_null(v);
	assert_int_equal(json_string_length(json_array_get(v, 0)), 3);
	json_decref(v);
	assert_int_equal(same_as_jansson("[\"a\\u0000b\"]", 12, JSON_ALLOW_NUL), 1);
	/* Never in a key. */
	assert_null(hub_json_loadb("{\"a\\u0000\":1}", 13, JSON_ALLOW_NUL, &err));
	/* Flags it does not handle go to json_loadb. */
	v = hub_json_loadb("[1] trailing", 12, JSON_DISABLE_EOF_CHECK, &err);
	assert_non_null(v);
	json_decref(v);
}

static void test_errors(void **state)
{
	json_error_t err;

	(void)state;
	assert_null(hub_json_loadb("{\n  \"a\": 1,\n  \"b\": tru\n}", 24, 0, &err));
	assert_int_equal(err.line, 3);
	assert_int_equal(err.column, 7);
	assert_int_equal(err.position, 19);
	assert_non_null(strstr(err.text, "invalid token"));
	assert_string_equal(err.source, "<buffer>");
	assert_null(hub_json_loadb("[\"caf\xc3\xa9\", 01]", 13, 0, &err));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.column, 9); /* characters, not bytes */
	assert_int_equal(err.position, 10);
	assert_null(hub_json_loadb("[1,2", 4, 0, &err));
	assert_non_null(strstr(err.text, "']' expected"));
	assert_non_null(strstr(err.text, "end of input"));
#if JANSSON_VERSION_HEX >= 0x020b00
	assert_int_equal(json_error_code(&err), json_error_premature_end_of_input);
	assert_null(hub_json_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &err));
	assert_int_equal(json_error_code(&err), json_error_duplicate_key);
#endif
	/* Success leaves no message. */
	{
		json_t *v = hub_json_loadb("{}", 2, 0, &err);

		assert_non_null(v);
		assert_string_equal(err.text, "");
		json_decref(v);
	}
}

static void test_depth(void **state)
{
	size_t n = 2049;
	char *text = malloc(2 * n + 1);

	(void)state;
	assert_non_null(text);
	/* 2048 levels are read, 2049 refused, like jansson. */
	memset(text, '[', n - 1);
	memset(text + n - 1, ']', n - 1);
	assert_int_equal(same_as_jansson(text, 2 * (n - 1), 0), 1);
	memset(text, '[', n);
	memset(text + n, ']', n);
	assert_int_equal(same_as_jansson(text, 2 * n, 0), 0);
	free(text);
}

/* A fixture file through both readers, duplicates allowed and refused. */
static int compare_file(const char *text, size_t len, void *arg)
{
	(void)arg;
	same_as_jansson(text, len, 0);
	same_as_jansson(text, len, JSON_REJECT_DUPLICATES);
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

static void test_mutations(void **state)
{
	static const char base[] =
		"{\"id\":820982911946154508,\"email\":\"jon@example.com\",\"total_price\":\"199.65\","
		"\"tax\":0.065,\"note\":\"caf\xc3\xa9 \\u00e9 \\\"q\\\" \\n\",\"tags\":[\"a\",\"b\"],"
		"\"line_items\":[{\"id\":466157049,\"qty\":1,\"gift\":false,\"sku\":null,"
		"\"props\":{}}],\"big\":-9223372036854775807,\"exp\":1.5e-3,\"emoji\":\"\\uD83D\\uDE00\"}";
	size_t blen = sizeof(base) - 1;
	char buf[sizeof(base) + 8];
	struct jsondiff_mutator m;
	int accepted = 0, refused = 0;

	(void)state;
	assert_int_equal(same_as_jansson(base, blen, 0), 1);
	jsondiff_mutator_init(&m, 0x9E3779B97F4A7C15u);
	for (int i = 0; i < 40000; i++) {
		size_t len = jsondiff_mutate(&m, base, blen, buf, sizeof(buf));

		if (same_as_jansson(buf, len, (i & 1) ? JSON_REJECT_DUPLICATES : 0))
			accepted++;
		else
			refused++;
	}
	/* Both outcomes were exercised. */
	assert_true(accepted > 1000);
	assert_true(refused > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_texts), cmocka_unit_test(test_invalid_texts),
		cmocka_unit_test(test_flags),       cmocka_unit_test(test_errors),
		cmocka_unit_test(test_depth),       cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
