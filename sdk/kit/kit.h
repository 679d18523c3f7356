/*
 * kit.h - internals of hub-plugin-kit, the partner's conformance run.
 *
 * The kit loads a plugin with hubd's own loader (core/plugin.c), so what it
 * accepts hubd accepts, then checks what the loader cannot: that the .so
 * exports nothing but its descriptor (parsed from the ELF dynamic symbol
 * table, no binutils needed), that data-driven cases replay to the expected
 * requests, records and cursors - twice, identically - that webhooks with a
 * wrong signature or a tampered body are refused, that a plugin declaring
 * HUB_CAP_WEBHOOKS_REENTRANT answers the same from several threads at once
 * and one declaring HUB_CAP_WEBHOOKS_SCOPED keeps nothing a webhook call
 * allocated, and that loading and unloading 1,000 times leaves nothing
 * behind. One report line per check.
 *
 * Threads: everything runs on the main thread except the webhook calls of
 * the concurrent check (reentrant.c), which report back through memory the
 * main thread reads after joining them.
 */
#ifndef HUB_KIT_H
#define HUB_KIT_H

#include <stddef.h>
#include <jansson.h>

struct plugin_registry;
struct hub_call;
struct hub_error;
struct hub_msg;

/* Command-line knobs of the checks. */
struct kit_opts {
	unsigned threads; /* concurrent webhook check: threads (0: skip it) */
	unsigned rounds;  /* ... times each thread runs every webhook case */
	double seconds;   /* ... time limit, after which the threads stop */
};

/* ---- report ----------------------------------------------------------- */

/* Prints "PASS what: detail" and counts it. */
void kit_pass(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "FAIL what: detail" and counts it. */
void kit_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues an indented detail line, printed under the next check line. */
void kit_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "INFO what: detail": a fact, not a check (not counted). */
void kit_info(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
 * `name` loaded in `reg`, then, for a plugin declaring the flags, reports
 * the HUB_CAP_WEBHOOKS_SCOPED check made on every webhook call and runs the
 * concurrent HUB_CAP_WEBHOOKS_REENTRANT check (kit_check_reentrant) on the
 * webhook cases. Returns the number of case folders found.
 */
int kit_run_cases(struct plugin_registry *reg, const char *name, const char *dir,
		  const struct kit_opts *opts);

/* The first case's config found under `dir` (new reference), or NULL. */
json_t *kit_first_config(const char *dir);

/*
 * What one plugin call produced, as the cases compare it: {"status",
 * "verify" (webhooks: verify_webhook's status, else omitted), "request"
 * (`request`, stolen; NULL: null), "outputs" (call_to_json of `call` plus
 * "misuses"), "error": {"field", "message"}}. `verify` and `status` are
 * enum hub_status values (verify < 0: none). The outputs share the call's
 * records; json_deep_copy the result to keep it past call_release. New
 * reference, NULL when memory runs out. Any thread.
 */
json_t *kit_run_json(int verify, int status, json_t *request, const struct hub_call *call,
		     const struct hub_error *err);

/* ---- the HUB_CAP_WEBHOOKS_SCOPED check (scope.c) ---------------------------- */

/*
 * The jansson allocations of one call. Caller-owned, zeroed before
 * kit_scope_enter; counters are updated under the allocator's lock.
 */
struct kit_scope {
	size_t blocks, bytes;           /* allocated inside the scope */
	size_t live_blocks, live_bytes; /* ... and not freed yet */
	size_t untracked;               /* could not be recorded (out of memory) */
};

/*
 * Makes the kit's allocator jansson's (json_set_alloc_funcs). Call it
 * first in main(), before any JSON value exists and before any thread
 * starts. Blocks pass through to malloc/free; recording only happens
 * inside a scope.
 */
void kit_scope_install(void);

/*
 * Records every jansson block the calling thread allocates from now on in
 * `s`, until kit_scope_leave. `s` must stay valid until kit_scope_settle(s)
 * has been called. Only around a plugin callback; thread-local.
 */
void kit_scope_enter(struct kit_scope *s);
/* Stops recording on the calling thread. */
void kit_scope_leave(void);

/*
 * The blocks of `s` still allocated (returned; their bytes in *bytes when
 * not NULL), after which they are forgotten: `s` may then go away while
 * the plugin still holds them. Any thread.
 */
size_t kit_scope_settle(struct kit_scope *s, size_t *bytes);

/* ---- the HUB_CAP_WEBHOOKS_REENTRANT check (reentrant.c) --------------------- */

/* One webhook delivery of a case, replayed by the concurrent check. */
struct kit_wcase {
	char *label;             /* "case NAME" or "case NAME (variant)"; owned */
	json_t *config;          /* the case's connector config; a reference */
	int64_t now_ms;          /* the case's clock */
	struct hub_msg *webhook; /* the delivery as signed for the run; owned */
	char *outcome;           /* kit_webhook_outcome of its sequential run; owned */
};

/* Frees what `w` holds (not `w`). */
void kit_wcase_release(struct kit_wcase *w);

/*
 * The part of a webhook run (kit_run_json) the concurrent check compares:
 * verify and read status, topic, delivery id, records and refused records,
 * misuses and the error field and message, as compact JSON with sorted
 * keys. malloc'd string (free()), NULL when memory runs out. Any thread.
 */
char *kit_webhook_outcome(const json_t *run);

/*
 * The HUB_CAP_WEBHOOKS_REENTRANT check of plugin `plugin` (loaded in
 * `reg`): runs the `n` deliveries of `w` once each the way hubd's webhook
 * workers do (connector left alone, cursor and access_token NULL), which
 * must give their sequential outcomes, then from opts->threads threads at
 * once, each running all of them opts->rounds times in its own order,
 * within opts->seconds; every outcome must equal the sequential one. One
 * FAIL line per case that differed, errored or crashed (a crash is named
 * before the kit dies of it), then a summary line. Main thread.
 */
void kit_check_reentrant(struct plugin_registry *reg, const char *plugin,
			 const struct kit_wcase *w, size_t n, const struct kit_opts *opts);

#endif /* HUB_KIT_H */
