/*
 * jsondiff.h - the skeleton of the differential tests that hold one of the
 * hub's JSON readers or writers to jansson, the library it stands in for:
 * real texts (every *.json file of the shared fixtures, the plugins and the
 * SDK) and a deterministic stream of mutations of a payload (bytes
 * replaced, deleted or inserted, the text cut), each to be fed to both. The
 * comparison is the test's own: it gets each text through a callback or
 * from jsondiff_mutate, and fails the test itself on a disagreement.
 *
 * No test framework inside; single thread.
 */
#ifndef HUB_TEST_JSONDIFF_H
#define HUB_TEST_JSONDIFF_H

#include <stddef.h>
#include <stdint.h>

/* Compares one text (len bytes, NUL-terminated after them; borrowed for
 * the call). Returns 1 when it counts as compared, 0 when not. */
typedef int (*jsondiff_fn)(const char *text, size_t len, void *arg);

/* Every *.json file under dir, recursively (names starting with "." are
 * passed over), read whole and given to fn. Returns the sum of fn's
 * answers; 0 when dir cannot be read. */
int jsondiff_tree(const char *dir, jsondiff_fn fn, void *arg);

/* jsondiff_tree over $HUB_FIXTURES, $HUB_SRCDIR/plugins and $HUB_SRCDIR/sdk
 * (the test environment sets both). Returns the sum, or -1 when neither
 * variable is set (the test should skip). */
int jsondiff_fixtures(jsondiff_fn fn, void *arg);

/* A mutation stream: the same seed gives the same mutations on every run. */
struct jsondiff_mutator {
	uint64_t state; /* xorshift64, never 0 */
};

/* Starts a stream; a seed of 0 is replaced by a fixed one. */
void jsondiff_mutator_init(struct jsondiff_mutator *m, uint64_t seed);

/*
 * Writes base (blen bytes, blen > 0) into buf with one to three edits:
 * a byte replaced or inserted (from an alphabet of JSON punctuation,
 * escapes, digits, letters of the literals, control bytes and broken
 * UTF-8), a byte deleted, or the text cut after a random byte; insertions
 * only while the text is shorter than cap. Returns the new length (at most
 * cap, may be 0). buf is not NUL-terminated. cap must be >= blen.
 */
size_t jsondiff_mutate(struct jsondiff_mutator *m, const char *base, size_t blen, char *buf, size_t cap);

#endif
