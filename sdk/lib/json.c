/*
 * json.c - typed getters over jansson objects whose errors name the field.
 *
 * Upstream payloads are read field by field; when one is missing or has the
 * wrong type, the dead letter must say exactly which ("order.line_items[2].sku:
 * expected string, got integer") so a partner can fix the mapping without a
 * debugger. `ctx` is the path of `obj` itself, built by the caller as it
 * descends. Also the two setters used when building canonical records.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

/* The JSON type of v as a word for messages. */
static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

/* Writes "ctx.key" (or "key") into path. */
static void make_path(char *path, size_t size, const char *ctx, const char *key)
{
	if (ctx != NULL && *ctx != '\0')
		snprintf(path, size, "%s.%s", ctx, key);
	else
		snprintf(path, size, "%s", key);
}

/* Looks up key in obj. Returns 1 with *v set when present and not null,
 * 0 when missing or null (fails unless optional), -1 on error. */
static int lookup(const json_t *obj, const char *key, int optional, const json_t **v,
		  const char *ctx, struct hub_error *err)
{
	char path[256];

	if (!json_is_object(obj))
		return hub_error_set(err, ctx, "%s: expected object, got %s",
				     ctx != NULL ? ctx : "(value)",
				     obj != NULL ? type_name(obj) : "nothing");
	if (key == NULL)
		return hub_error_set(err, ctx, "no key given");
	*v = json_object_get(obj, key);
	if (*v == NULL || json_is_null(*v)) {
		if (optional)
			return 0;
		/* The path is only written out for a message: this runs for
		 * every field of every payload. */
		make_path(path, sizeof(path), ctx, key);
		return hub_error_set(err, path, "%s: required field is %s", path,
				     *v == NULL ? "missing" : "null");
	}
	return 1;
}

/* Fails naming the path, the expected and the found type. */
static int wrong_type(const char *ctx, const char *key, const char *expected,
		      const json_t *found, struct hub_error *err)
{
	char path[256];

	make_path(path, sizeof(path), ctx, key);
	return hub_error_set(err, path, "%s: expected %s, got %s", path, expected,
			     type_name(found));
}

static int get_str(const json_t *obj, const char *key, const char **out, int optional,
		   const char *ctx, struct hub_error *err)
{
	const json_t *v;
	int rc = lookup(obj, key, optional, &v, ctx, err);

	if (rc <= 0)
		return rc;
	if (!json_is_string(v))
		return wrong_type(ctx, key, "string", v, err);
	*out = json_string_value(v);
	return 0;
}

int hub_json_str(const json_t *obj, const char *key, const char **out, const char *ctx,
		 struct hub_error *err)
{
	return get_str(obj, key, out, 0, ctx, err);
}

int hub_json_str_opt(const json_t *obj, const char *key, const char **out, const char *ctx,
		     struct hub_error *err)
{
	return get_str(obj, key, out, 1, ctx, err);
}

static int get_int(const json_t *obj, const char *key, int64_t *out, int optional,
		   const char *ctx, struct hub_error *err)
{
	const json_t *v;
	int rc = lookup(obj, key, optional, &v, ctx, err);

	if (rc <= 0)
		return rc;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v), *p = s;
		char path[256], *end;
		long long n;

		if (*p == '-')
			p++;
		if (*p < '0' || *p > '9' || strspn(p, "0123456789") != strlen(p))
			goto bad_string;
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno == ERANGE || *end != '\0')
			goto bad_string;
		*out = (int64_t)n;
		return 0;
bad_string:
		make_path(path, sizeof(path), ctx, key);
		return hub_error_set(err, path, "%s: expected integer, got string \"%.40s\"",
				     path, s);
	}
	return wrong_type(ctx, key, "integer", v, err);
}

int hub_json_int(const json_t *obj, const char *key, int64_t *out, const char *ctx,
		 struct hub_error *err)
{
	return get_int(obj, key, out, 0, ctx, err);
}

int hub_json_int_opt(const json_t *obj, const char *key, int64_t *out, const char *ctx,
		     struct hub_error *err)
{
	return get_int(obj, key, out, 1, ctx, err);
}

int hub_json_bool_opt(const json_t *obj, const char *key, int *out, const char *ctx,
		      struct hub_error *err)
{
	const json_t *v;
	int rc = lookup(obj, key, 1, &v, ctx, err);

	if (rc <= 0)
		return rc;
	if (!json_is_boolean(v))
		return wrong_type(ctx, key, "boolean", v, err);
	*out = json_is_true(v);
	return 0;
}

/* Object or array getter: `is` tells whether a value has the wanted type. */
static int get_container(const json_t *obj, const char *key, json_t **out, int optional,
			 int want_array, const char *ctx, struct hub_error *err)
{
	const json_t *v;
	int rc = lookup(obj, key, optional, &v, ctx, err);

	if (rc <= 0)
		return rc;
	if (want_array ? !json_is_array(v) : !json_is_object(v))
		return wrong_type(ctx, key, want_array ? "array" : "object", v, err);
	/* Borrowed from obj; jansson's API is not const-correct here. */
	*out = (json_t *)v;
	return 0;
}

int hub_json_object(const json_t *obj, const char *key, json_t **out, const char *ctx,
		    struct hub_error *err)
{
	return get_container(obj, key, out, 0, 0, ctx, err);
}

int hub_json_object_opt(const json_t *obj, const char *key, json_t **out, const char *ctx,
			struct hub_error *err)
{
	return get_container(obj, key, out, 1, 0, ctx, err);
}

int hub_json_array(const json_t *obj, const char *key, json_t **out, const char *ctx,
		   struct hub_error *err)
{
	return get_container(obj, key, out, 0, 1, ctx, err);
}

int hub_json_array_opt(const json_t *obj, const char *key, json_t **out, const char *ctx,
		       struct hub_error *err)
{
	return get_container(obj, key, out, 1, 1, ctx, err);
}

/* v in decimal into buf, like snprintf "%" PRId64 (ids are read for every
 * record and line): the length it needs, which may be >= size (then buf
 * holds nothing usable). */
static int format_int(char *buf, size_t size, int64_t v)
{
	char tmp[24];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	int n = 0, len;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[n++] = '-';
	len = n;
	if ((size_t)len < size) {
		for (int k = 0; k < len; k++)
			buf[k] = tmp[len - 1 - k];
		buf[len] = '\0';
	}
	return len;
}

int hub_json_id(const json_t *obj, const char *key, char *buf, size_t size, const char *ctx,
		struct hub_error *err)
{
	const json_t *v;
	char path[256];
	int rc = lookup(obj, key, 0, &v, ctx, err), n;

	if (rc < 0)
		return rc;
	if (json_is_integer(v)) {
		n = format_int(buf, size, (int64_t)json_integer_value(v));
	} else if (json_is_string(v) && json_string_length(v) > 0) {
		n = (int)json_string_length(v);
		if ((size_t)n < size)
			memcpy(buf, json_string_value(v), (size_t)n + 1);
	} else if (json_is_string(v)) {
		make_path(path, sizeof(path), ctx, key);
		return hub_error_set(err, path, "%s: id is an empty string", path);
	} else {
		return wrong_type(ctx, key, "integer or string id", v, err);
	}
	if (n < 0 || (size_t)n >= size) {
		make_path(path, sizeof(path), ctx, key);
		return hub_error_set(err, path, "%s: id is longer than %zu characters", path,
				     size > 0 ? size - 1 : 0);
	}
	return 0;
}

int hub_json_time_opt(const json_t *obj, const char *key, int assume_utc, int64_t *out,
		      const char *ctx, struct hub_error *err)
{
	const json_t *v;
	char path[256];
	int rc = lookup(obj, key, 1, &v, ctx, err);

	if (rc <= 0)
		return rc;
	if (!json_is_string(v))
		return wrong_type(ctx, key, "time string", v, err);
	/* WooCommerce writes "" for dates that never happened. */
	if (json_string_length(v) == 0)
		return 0;
	if (hub_time_parse(json_string_value(v), assume_utc, out, NULL, err) < 0) {
		make_path(path, sizeof(path), ctx, key);
		if (err != NULL) {
			char why[sizeof(err->message)];

			snprintf(why, sizeof(why), "%s", err->message);
			hub_error_set(err, path, "%s: %s", path, why);
		}
		return -1;
	}
	return 0;
}

int hub_json_set_time(json_t *obj, const char *key, int64_t utc_ms)
{
	char buf[32];

	if (hub_time_format(utc_ms, buf, sizeof(buf)) < 0)
		return -1;
	return json_object_set_new(obj, key, json_string(buf));
}

int hub_json_set_str(json_t *obj, const char *key, const char *str)
{
	json_t *v;

	if (str == NULL || *str == '\0')
		return json_object_set_new(obj, key, json_null());
	v = json_string(str);
	if (v == NULL)
		return -1;   /* not valid UTF-8 */
	return json_object_set_new(obj, key, v);
}

/* A string field, NULL when missing, null or empty. See sdk.h. */
int hub_json_str_or_null(const json_t *obj, const char *key, const char **out,
			 const char *ctx, struct hub_error *err)
{
	*out = NULL;
	if (hub_json_str_opt(obj, key, out, ctx, err) < 0)
		return -1;
	if (*out != NULL && **out == '\0')
		*out = NULL;
	return 0;
}
