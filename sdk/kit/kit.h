/*
 * kit.h - internals of hub-plugin-kit, the partner's conformance run.
 *
 * The kit loads a plugin with hubd's own loader (core/plugin.c), so what it
 * accepts hubd accepts, then checks what the loader cannot: that the .so
 * exports nothing but its descriptor (parsed from the ELF dynamic symbol
 * table, no binutils needed), that data-driven cases replay to the expected
 * requests, records and cursors - twice, identically - that webhooks with a
 * wrong signature or a tampered body are refused, and that loading and
 * unloading 1,000 times leaves nothing behind. One report line per check.
 */
#ifndef HUB_KIT_H
#define HUB_KIT_H

#include <stddef.h>
#include <jansson.h>

struct plugin_registry;

/* ---- report ----------------------------------------------------------- */

/* Prints "PASS what: detail" and counts it. */
void kit_pass(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "FAIL what: detail" and counts it. */
void kit_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues an indented detail line, printed under the next check line. */
void kit_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "SKIP what: why" (not a failure). */
void kit_skip(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Number of failures so far. */
int kit_failures(void);
/* Prints the summary line; returns the exit code (0 all passed, 1 not). */
int kit_summary(void);

/*
 * Prints, as detail lines, where `actual` differs from `expected`, one
 * JSON path per difference ("records[0].record.total: expected 1990, got
 * \"19.90\""), at most `max` lines. `numeric` compares integers and reals
 * by value. Returns the number of differences found (capped at max + 1).
 */
int kit_diff(const char *path, const json_t *expected, const json_t *actual, int numeric,
	     int max);

/* Whether a and b are equal, comparing numbers by value when `numeric`. */
int kit_json_equal(const json_t *a, const json_t *b, int numeric);

/* ---- checks ------------------------------------------------------------- */

/*
 * Lists the defined dynamic symbols of the ELF shared object at `path`
 * other than `allowed` and the linker's own (_init, _fini, _edata, _end,
 * __bss_start). Returns a JSON array of their names (new reference), or
 * NULL with *why set to a static message when the file is not an ELF
 * shared object the kit can read.
 */
json_t *kit_extra_exports(const char *path, const char *allowed, const char **why);

/*
 * Runs every case folder under `dir` (sorted by name) against plugin
 * `name` loaded in `reg`. Returns the number of case folders found.
 */
int kit_run_cases(struct plugin_registry *reg, const char *name, const char *dir);

/* The first case's config found under `dir` (new reference), or NULL. */
json_t *kit_first_config(const char *dir);

#endif /* HUB_KIT_H */
