/*
 * log.h - structured logging to stderr for hubd and its tools.
 *
 * One line per event, either human text ("2026-11-21T10:00:00.000Z info
 * store: committed batch n=12") or JSON ({"ts":...,"level":...,"component":
 * ...,"msg":...}). Secrets must never be passed to these functions. Safe to
 * call from any thread (each line is written with one write(2)).
 */
#ifndef HUB_LOG_H
#define HUB_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Sets the minimum level written and the line format. Call before starting
 * threads, or from the loop thread on SIGHUP (reads are racy but benign). */
void log_setup(enum log_level level, enum log_format format);

/* Parses "debug", "info", "warn", "error" / "text", "json". 0 or -1. */
int log_level_parse(const char *text, enum log_level *level);
int log_format_parse(const char *text, enum log_format *format);

/* Writes one line for `component` if `level` is enabled. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *component, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Whether a level would be written (to skip building costly messages). */
int log_enabled(enum log_level level);

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
