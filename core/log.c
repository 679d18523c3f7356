/*
 * log.c - implementation of the structured stderr logger (see log.h).
 */
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static enum log_format line_format = LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format)
{
	min_level = level;
	line_format = format;
}

int log_level_parse(const char *text, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_format_parse(const char *text, enum log_format *format)
{
	if (strcmp(text, "text") == 0)
		*format = LOG_TEXT;
	else if (strcmp(text, "json") == 0)
		*format = LOG_JSON;
	else
		return -1;
	return 0;
}

int log_enabled(enum log_level level)
{
	return level >= min_level;
}

/* Appends s to buf as the inside of a JSON string. Returns the new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

void log_vmsg(enum log_level level, const char *component, const char *fmt, va_list ap)
{
	char msg[2048], line[4608], ts[32];
	struct timespec now;
	struct tm tm;
	size_t len;
	int n;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = (int)strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t)n, ".%03ldZ", now.tv_nsec / 1000000);
	vsnprintf(msg, sizeof(msg), fmt, ap);

	if (line_format == LOG_JSON) {
		len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"",
				       ts, level_names[level]);
		len = json_escape(line, len, sizeof(line), component);
		memcpy(line + len, "\",\"msg\":\"", 9);
		len += 9;
		len = json_escape(line, len, sizeof(line), msg);
		memcpy(line + len, "\"}\n", 3);
		len += 3;
	} else {
		n = snprintf(line, sizeof(line), "%s %s %s: %s\n", ts, level_names[level], component, msg);
		len = n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n;
		line[len - 1] = '\n';
	}
	/* One write(2) per line keeps lines whole between threads. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
}
