/*
 * jsonschema.c - checking schemas and validating records and configs against
 * them (the subset described in jsonschema.h).
 *
 * Two walks over a schema tree: check_node() refuses what the validator
 * would not enforce (unknown keywords, malformed values, patterns that do
 * not compile, dangling local references) and, for a registry, compiles each
 * distinct pattern once into a cache keyed by its text; validate() then
 * walks schema and instance together, building the instance path as it
 * descends so the first violation can be reported as "lines[2].unit_price".
 * The registry is only read while validating, so validations may run in
 * parallel (glibc's regexec() is thread-safe).
 */
#include "config.h"

#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "jsonschema.h"

/* Deepest schema nesting plus $ref hops followed; stops reference loops. */
#define MAX_DEPTH 200

struct js_registry {
	json_t *schemas;      /* object: name -> schema */
	json_t *pattern_ids;  /* object: pattern text -> index into patterns */
	regex_t **patterns;
	size_t npatterns, cap;
};

struct js_registry *js_registry_new(void)
{
	struct js_registry *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return NULL;
	reg->schemas = json_object();
	reg->pattern_ids = json_object();
	if (reg->schemas == NULL || reg->pattern_ids == NULL) {
		js_registry_free(reg);
		return NULL;
	}
	return reg;
}

void js_registry_free(struct js_registry *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i < reg->npatterns; i++) {
		regfree(reg->patterns[i]);
		free(reg->patterns[i]);
	}
	free(reg->patterns);
	json_decref(reg->schemas);
	json_decref(reg->pattern_ids);
	free(reg);
}

const json_t *js_registry_get(const struct js_registry *reg, const char *name)
{
	if (reg == NULL || name == NULL)
		return NULL;
	return json_object_get(reg->schemas, name);
}

/* ---- references ------------------------------------------------------ */

/* Follows the JSON pointer `ptr` ("" or "/a/b~1c/0") from doc; NULL if it
 * does not lead anywhere. */
static const json_t *pointer_get(const json_t *doc, const char *ptr)
{
	char seg[256];

	while (*ptr != '\0' && doc != NULL) {
		size_t n = 0;

		if (*ptr != '/')
			return NULL;
		for (ptr++; *ptr != '\0' && *ptr != '/'; ptr++) {
			char c = *ptr;

			if (c == '~') {
				if (ptr[1] == '0')
					c = '~';
				else if (ptr[1] == '1')
					c = '/';
				else
					return NULL;
				ptr++;
			}
			if (n + 1 >= sizeof(seg))
				return NULL;
			seg[n++] = c;
		}
		seg[n] = '\0';
		if (json_is_object(doc)) {
			doc = json_object_get(doc, seg);
		} else if (json_is_array(doc)) {
			char *end;
			unsigned long i = strtoul(seg, &end, 10);

			if (n == 0 || *end != '\0' || (seg[0] == '0' && n > 1))
				return NULL;
			doc = json_array_get(doc, i);
		} else {
			return NULL;
		}
	}
	return doc;
}

/* Resolves `ref` seen in document `root`: sets *doc to the document the
 * target lives in (for its own local references) and returns the target
 * schema, or NULL. External names are looked up in reg (may be NULL). */
static const json_t *resolve_ref(const struct js_registry *reg, const json_t *root,
				 const char *ref, const json_t **doc)
{
	const char *hash = strchr(ref, '#');
	size_t name_len = hash != NULL ? (size_t)(hash - ref) : strlen(ref);
	const json_t *target;

	if (name_len == 0) {
		*doc = root;
	} else {
		char name[256];
		const char *start = ref;

		/* An absolute URI names the file by its last path segment. */
		for (const char *p = ref; p < ref + name_len; p++)
			if (*p == '/')
				start = p + 1;
		name_len -= (size_t)(start - ref);
		if (name_len == 0 || name_len >= sizeof(name))
			return NULL;
		memcpy(name, start, name_len);
		name[name_len] = '\0';
		*doc = js_registry_get(reg, name);
		if (*doc == NULL)
			return NULL;
	}
	target = pointer_get(*doc, hash != NULL ? hash + 1 : "");
	if (target != NULL && !json_is_object(target) && !json_is_boolean(target))
		return NULL;
	return target;
}

/* ---- checking schemas ------------------------------------------------- */

enum kw_shape {
	KW_TYPE,          /* "type" */
	KW_SCHEMA_MAP,    /* object of schemas */
	KW_SCHEMA,        /* one schema (object or boolean) */
	KW_NAMES,         /* array of strings */
	KW_ARRAY,         /* any array */
	KW_ANY,           /* any value */
	KW_PATTERN,       /* regular expression */
	KW_NUMBER,        /* any number */
	KW_COUNT,         /* non-negative integer */
	KW_REF,           /* "$ref" */
	KW_STRING,        /* annotation string */
	KW_BOOLEAN,       /* annotation boolean */
};

static const struct keyword {
	const char *name;
	enum kw_shape shape;
} keywords[] = {
	{ "type", KW_TYPE },
	{ "properties", KW_SCHEMA_MAP },
	{ "$defs", KW_SCHEMA_MAP },
	{ "definitions", KW_SCHEMA_MAP },
	{ "required", KW_NAMES },
	{ "additionalProperties", KW_SCHEMA },
	{ "items", KW_SCHEMA },
	{ "enum", KW_ARRAY },
	{ "const", KW_ANY },
	{ "pattern", KW_PATTERN },
	{ "minimum", KW_NUMBER },
	{ "maximum", KW_NUMBER },
	{ "minLength", KW_COUNT },
	{ "maxLength", KW_COUNT },
	{ "minItems", KW_COUNT },
	{ "maxItems", KW_COUNT },
	{ "$ref", KW_REF },
	{ "default", KW_ANY },
	{ "examples", KW_ARRAY },
	{ "format", KW_STRING },
	{ "title", KW_STRING },
	{ "description", KW_STRING },
	{ "$id", KW_STRING },
	{ "$schema", KW_STRING },
	{ "$comment", KW_STRING },
	{ "deprecated", KW_BOOLEAN },
	{ "readOnly", KW_BOOLEAN },
	{ "writeOnly", KW_BOOLEAN },
};

static const char *const type_names[] = {
	"null", "boolean", "object", "array", "number", "integer", "string", NULL
};

struct walk {
	const json_t *root;            /* the document being walked */
	struct js_registry *cache;     /* compile patterns into it, or NULL */
	const struct js_registry *resolve; /* external $refs must resolve here, or NULL */
	struct hub_error *err;
	char ptr[512];                 /* JSON pointer of the current node */
	size_t len;
	int depth;
};

/* Appends "/seg" (escaped per RFC 6901) to w->ptr; returns the old length. */
static size_t ptr_push(struct walk *w, const char *seg)
{
	size_t old = w->len;

	if (w->len + 1 < sizeof(w->ptr))
		w->ptr[w->len++] = '/';
	for (; *seg != '\0' && w->len + 2 < sizeof(w->ptr); seg++) {
		if (*seg == '~' || *seg == '/') {
			w->ptr[w->len++] = '~';
			w->ptr[w->len++] = *seg == '~' ? '0' : '1';
		} else {
			w->ptr[w->len++] = *seg;
		}
	}
	w->ptr[w->len] = '\0';
	return old;
}

static void ptr_pop(struct walk *w, size_t old)
{
	w->len = old;
	w->ptr[old] = '\0';
}

static int is_type_name(const json_t *v)
{
	if (!json_is_string(v))
		return 0;
	for (const char *const *t = type_names; *t != NULL; t++)
		if (strcmp(*t, json_string_value(v)) == 0)
			return 1;
	return 0;
}

/* Checks one pattern: POSIX ERE that compiles, without "\d"-style classes
 * ERE lacks (glibc would silently read "\d" as "d"). When w->cache is set,
 * keeps the compiled form there. */
static int check_pattern(struct walk *w, const char *pattern)
{
	regex_t *re;
	int rc;

	for (const char *p = pattern; *p != '\0'; p++) {
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'd' || *p == 'D')
			return hub_error_set(w->err, w->ptr,
					     "pattern \"%.100s\" at %s uses \\%c, which POSIX extended "
					     "regular expressions lack: write [0-9] instead",
					     pattern, w->ptr, *p);
		if (*p == '\0')
			break;
	}
	if (w->cache != NULL && json_object_get(w->cache->pattern_ids, pattern) != NULL)
		return 0;
	re = malloc(sizeof(*re));
	if (re == NULL)
		return hub_error_set(w->err, w->ptr, "out of memory compiling a pattern");
	rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[128];

		regerror(rc, re, why, sizeof(why));
		free(re);
		return hub_error_set(w->err, w->ptr,
				     "pattern \"%.100s\" at %s is not a POSIX extended regular "
				     "expression: %s", pattern, w->ptr, why);
	}
	if (w->cache == NULL) {
		regfree(re);
		free(re);
		return 0;
	}
	if (w->cache->npatterns == w->cache->cap) {
		size_t cap = w->cache->cap ? w->cache->cap * 2 : 8;
		regex_t **grown = realloc(w->cache->patterns, cap * sizeof(*grown));

		if (grown == NULL)
			goto nomem;
		w->cache->patterns = grown;
		w->cache->cap = cap;
	}
	if (json_object_set_new(w->cache->pattern_ids, pattern,
				json_integer((json_int_t)w->cache->npatterns)) < 0)
		goto nomem;
	w->cache->patterns[w->cache->npatterns++] = re;
	return 0;

nomem:
	regfree(re);
	free(re);
	return hub_error_set(w->err, w->ptr, "out of memory compiling a pattern");
}

static int check_node(struct walk *w, const json_t *schema);

/* Checks the value of one keyword; w->ptr already points at it. */
static int check_keyword(struct walk *w, const struct keyword *kw, const json_t *v)
{
	const char *key;
	const json_t *sub;
	size_t i;

	switch (kw->shape) {
	case KW_TYPE:
		if (json_is_array(v) && json_array_size(v) > 0) {
			json_array_foreach(v, i, sub) {
				if (!is_type_name(sub))
					goto bad_type;
				for (size_t j = 0; j < i; j++)
					if (json_equal(sub, json_array_get(v, j)))
						return hub_error_set(w->err, w->ptr,
								     "\"type\" at %s lists \"%s\" twice",
								     w->ptr, json_string_value(sub));
			}
			return 0;
		}
		if (is_type_name(v))
			return 0;
bad_type:
		return hub_error_set(w->err, w->ptr,
				     "\"type\" at %s must be one of null, boolean, object, array, "
				     "number, integer, string, or a non-empty array of them", w->ptr);
	case KW_SCHEMA_MAP:
		if (!json_is_object(v))
			return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be an object of schemas",
					     kw->name, w->ptr);
		json_object_foreach((json_t *)v, key, sub) {
			size_t old = ptr_push(w, key);

			if (check_node(w, sub) < 0)
				return -1;
			ptr_pop(w, old);
		}
		return 0;
	case KW_SCHEMA:
		return check_node(w, v);
	case KW_NAMES:
		if (!json_is_array(v))
			goto bad_names;
		json_array_foreach(v, i, sub)
			if (!json_is_string(sub))
				goto bad_names;
		return 0;
bad_names:
		return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be an array of property names",
				     kw->name, w->ptr);
	case KW_ARRAY:
		if (!json_is_array(v))
			return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be an array",
					     kw->name, w->ptr);
		return 0;
	case KW_ANY:
		return 0;
	case KW_PATTERN:
		if (!json_is_string(v))
			return hub_error_set(w->err, w->ptr, "\"pattern\" at %s must be a string",
					     w->ptr);
		return check_pattern(w, json_string_value(v));
	case KW_NUMBER:
		if (!json_is_number(v))
			return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be a number",
					     kw->name, w->ptr);
		return 0;
	case KW_COUNT:
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return hub_error_set(w->err, w->ptr,
					     "\"%s\" at %s must be a non-negative integer",
					     kw->name, w->ptr);
		return 0;
	case KW_REF: {
		const json_t *doc;

		if (!json_is_string(v))
			return hub_error_set(w->err, w->ptr, "\"$ref\" at %s must be a string",
					     w->ptr);
		/* Local references must resolve now; others once all schemas
		 * are known (w->resolve). */
		if ((json_string_value(v)[0] == '#' || w->resolve != NULL) &&
		    resolve_ref(w->resolve, w->root, json_string_value(v), &doc) == NULL)
			return hub_error_set(w->err, w->ptr,
					     "\"$ref\" at %s: \"%.100s\" does not lead to a schema",
					     w->ptr, json_string_value(v));
		return 0;
	}
	case KW_STRING:
		if (!json_is_string(v))
			return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be a string",
					     kw->name, w->ptr);
		return 0;
	case KW_BOOLEAN:
		if (!json_is_boolean(v))
			return hub_error_set(w->err, w->ptr, "\"%s\" at %s must be true or false",
					     kw->name, w->ptr);
		return 0;
	}
	return 0;
}

/* Checks one schema node (object or boolean) and everything below it. */
static int check_node(struct walk *w, const json_t *schema)
{
	const char *key;
	const json_t *v;

	if (json_is_boolean(schema))
		return 0;
	if (!json_is_object(schema))
		return hub_error_set(w->err, w->ptr, "schema at %s must be an object or a boolean",
				     w->len > 0 ? w->ptr : "the root");
	if (++w->depth > MAX_DEPTH)
		return hub_error_set(w->err, w->ptr, "schema nested deeper than %d levels",
				     MAX_DEPTH);
	json_object_foreach((json_t *)schema, key, v) {
		const struct keyword *kw = NULL;
		size_t old;

		if (strncmp(key, "x-", 2) == 0)
			continue;   /* vendor annotation, e.g. x-secret */
		for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
			if (strcmp(keywords[i].name, key) == 0)
				kw = &keywords[i];
		old = ptr_push(w, key);
		if (kw == NULL) {
			char at[sizeof(w->ptr)];

			snprintf(at, sizeof(at), "%.*s", (int)old, w->ptr);
			return hub_error_set(w->err, w->ptr,
					     "unsupported keyword \"%.60s\" at %s: hubd validates only "
					     "type, properties, required, additionalProperties, enum, "
					     "const, pattern, minimum, maximum, min/maxLength, "
					     "min/maxItems, items, $ref and $defs",
					     key, old > 0 ? at : "the root");
		}
		if (check_keyword(w, kw, v) < 0)
			return -1;
		ptr_pop(w, old);
	}
	w->depth--;
	return 0;
}

/* Walks schema as document `root` with the given cache/resolve roles. */
static int walk_schema(const json_t *schema, struct js_registry *cache,
		       const struct js_registry *resolve, struct hub_error *err)
{
	struct walk w;

	memset(&w, 0, sizeof(w));
	w.root = schema;
	w.cache = cache;
	w.resolve = resolve;
	w.err = err;
	if (schema == NULL)
		return hub_error_set(err, "", "no schema given");
	return check_node(&w, schema);
}

int js_check_schema(const json_t *schema, struct hub_error *err)
{
	return walk_schema(schema, NULL, NULL, err);
}

int js_registry_add(struct js_registry *reg, const char *name, json_t *schema,
		    struct hub_error *err)
{
	if (name == NULL || *name == '\0' || strchr(name, '#') != NULL ||
	    strchr(name, '/') != NULL)
		return hub_error_set(err, "", "schema name \"%s\" must be a plain file name",
				     name != NULL ? name : "(null)");
	if (json_object_get(reg->schemas, name) != NULL)
		return hub_error_set(err, "", "a schema named \"%s\" is already registered", name);
	if (walk_schema(schema, reg, NULL, err) < 0) {
		if (err != NULL) {
			char why[sizeof(err->message)];

			snprintf(why, sizeof(why), "%s", err->message);
			hub_error_set(err, err->field, "schema %s: %s", name, why);
		}
		return -1;
	}
	if (json_object_set(reg->schemas, name, schema) < 0)
		return hub_error_set(err, "", "out of memory registering schema %s", name);
	return 0;
}

int js_registry_add_builtin(struct js_registry *reg, struct hub_error *err)
{
	const char *name;
	json_t *schema;

	for (const struct js_builtin *b = js_builtins; b->name != NULL; b++) {
		json_error_t jerr;
		int rc;

		schema = json_loadb((const char *)b->text, b->len, JSON_REJECT_DUPLICATES, &jerr);
		if (schema == NULL)
			return hub_error_set(err, "", "built-in schema %s line %d: %s", b->name,
					     jerr.line, jerr.text);
		rc = js_registry_add(reg, b->name, schema, err);
		json_decref(schema);
		if (rc < 0)
			return -1;
	}
	/* Now that every file is known, every reference must land. */
	json_object_foreach(reg->schemas, name, schema) {
		if (walk_schema(schema, reg, reg, err) < 0) {
			if (err != NULL) {
				char why[sizeof(err->message)];

				snprintf(why, sizeof(why), "%s", err->message);
				hub_error_set(err, err->field, "schema %s: %s", name, why);
			}
			return -1;
		}
	}
	return 0;
}

/* ---- validating instances -------------------------------------------- */

struct vctx {
	const struct js_registry *reg;
	struct hub_error *err;
	char path[512];   /* instance path: "lines[2].unit_price" */
	size_t len;
	int depth;
};

static size_t path_push_key(struct vctx *c, const char *key)
{
	size_t old = c->len;
	int n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "%s%s",
			 c->len > 0 ? "." : "", key);

	if (n > 0)
		c->len += (size_t)n < sizeof(c->path) - c->len ? (size_t)n
							       : sizeof(c->path) - c->len - 1;
	return old;
}

static size_t path_push_index(struct vctx *c, size_t i)
{
	size_t old = c->len;
	int n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "[%zu]", i);

	if (n > 0)
		c->len += (size_t)n < sizeof(c->path) - c->len ? (size_t)n
							       : sizeof(c->path) - c->len - 1;
	return old;
}

static void path_pop(struct vctx *c, size_t old)
{
	c->len = old;
	c->path[old] = '\0';
}

static int fail(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a violation at the current path. Returns -1. */
static int fail(struct vctx *c, const char *fmt, ...)
{
	char msg[sizeof(c->err->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return hub_error_set(c->err, c->path, "%s", msg);
}

static const char *instance_type(const json_t *v)
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

static int type_matches(const char *type, const json_t *v)
{
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	return strcmp(type, instance_type(v)) == 0;
}

/* Compact JSON text of v, cut to fit size (ending in "..." when cut). */
static void dump_value(const json_t *v, char *buf, size_t size)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (text == NULL) {
		snprintf(buf, size, "(value)");
		return;
	}
	if (strlen(text) >= size && size > 4)
		snprintf(buf, size, "%.*s...", (int)(size - 4), text);
	else
		snprintf(buf, size, "%s", text);
	free(text);
}

/* Code points in a UTF-8 string (jansson guarantees valid UTF-8). */
static size_t utf8_length(const char *s, size_t bytes)
{
	size_t n = 0;

	for (size_t i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/* a < b: -1, a == b: 0, a > b: 1, for two JSON numbers. */
static int num_cmp(const json_t *a, const json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);

		return x < y ? -1 : x > y;
	}
	double x = json_number_value(a), y = json_number_value(b);

	return x < y ? -1 : x > y;
}

static int validate(struct vctx *c, const json_t *root, const json_t *schema,
		    const json_t *inst);

static int check_type(struct vctx *c, const json_t *type, const json_t *inst)
{
	char want[128] = "";
	size_t i;
	const json_t *t;

	if (json_is_string(type)) {
		if (type_matches(json_string_value(type), inst))
			return 0;
		return fail(c, "expected %s, got %s", json_string_value(type), instance_type(inst));
	}
	if (!json_is_array(type))
		return 0;
	json_array_foreach(type, i, t) {
		size_t n = strlen(want);

		if (json_is_string(t) && type_matches(json_string_value(t), inst))
			return 0;
		snprintf(want + n, sizeof(want) - n, "%s%s", i > 0 ? " or " : "",
			 json_string_value(t) != NULL ? json_string_value(t) : "?");
	}
	return fail(c, "expected %s, got %s", want, instance_type(inst));
}

/* Values of properties marked "x-secret" are never echoed in messages. */
static int check_enum(struct vctx *c, const json_t *list, const json_t *inst, int secret)
{
	char value[96], all[256];
	size_t i;
	const json_t *e;

	json_array_foreach(list, i, e)
		if (json_equal(e, inst))
			return 0;
	if (secret)
		return fail(c, "the (secret) value is not one of the allowed values");
	dump_value(inst, value, sizeof(value));
	dump_value(list, all, sizeof(all));
	return fail(c, "value %s not in enum %s", value, all);
}

static int check_pattern_match(struct vctx *c, const char *pattern, const char *text, int secret)
{
	const json_t *id = c->reg != NULL ? json_object_get(c->reg->pattern_ids, pattern) : NULL;
	regex_t tmp;
	const regex_t *re;
	int rc;

	if (id != NULL) {
		re = c->reg->patterns[json_integer_value(id)];
	} else {
		/* A schema outside the registry: compile for this call only. */
		if (regcomp(&tmp, pattern, REG_EXTENDED | REG_NOSUB) != 0)
			return fail(c, "pattern \"%.100s\" does not compile", pattern);
		re = &tmp;
	}
	rc = regexec(re, text, 0, NULL, 0);
	if (id == NULL)
		regfree(&tmp);
	if (rc == 0)
		return 0;
	if (secret)
		return fail(c, "the (secret) value does not match the pattern %.150s", pattern);
	return fail(c, "\"%.100s\" does not match the pattern %.150s", text, pattern);
}

static int check_object(struct vctx *c, const json_t *root, const json_t *schema,
			const json_t *inst)
{
	const json_t *required = json_object_get(schema, "required");
	const json_t *props = json_object_get(schema, "properties");
	const json_t *extra = json_object_get(schema, "additionalProperties");
	const char *key;
	const json_t *v;
	size_t i;

	json_array_foreach(required, i, v) {
		if (json_is_string(v) && json_object_get(inst, json_string_value(v)) == NULL) {
			path_push_key(c, json_string_value(v));
			return fail(c, "required property missing");
		}
	}
	json_object_foreach((json_t *)inst, key, v) {
		const json_t *sub = json_is_object(props) ? json_object_get(props, key) : NULL;
		size_t old = path_push_key(c, key);

		if (sub == NULL && json_is_false(extra))
			return fail(c, "unknown property \"%.100s\"", key);
		if (sub == NULL)
			sub = extra;
		if (sub != NULL && validate(c, root, sub, v) < 0)
			return -1;
		path_pop(c, old);
	}
	return 0;
}

static int check_array(struct vctx *c, const json_t *root, const json_t *schema,
		       const json_t *inst)
{
	const json_t *items = json_object_get(schema, "items");
	const json_t *min = json_object_get(schema, "minItems");
	const json_t *max = json_object_get(schema, "maxItems");
	size_t n = json_array_size(inst), i;
	const json_t *v;

	if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
		return fail(c, "array has %zu items, fewer than minItems %" JSON_INTEGER_FORMAT,
			    n, json_integer_value(min));
	if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
		return fail(c, "array has %zu items, more than maxItems %" JSON_INTEGER_FORMAT,
			    n, json_integer_value(max));
	if (items == NULL)
		return 0;
	json_array_foreach(inst, i, v) {
		size_t old = path_push_index(c, i);

		if (validate(c, root, items, v) < 0)
			return -1;
		path_pop(c, old);
	}
	return 0;
}

static int check_string(struct vctx *c, const json_t *schema, const json_t *inst)
{
	const json_t *min = json_object_get(schema, "minLength");
	const json_t *max = json_object_get(schema, "maxLength");
	const json_t *pattern = json_object_get(schema, "pattern");
	size_t n;

	if (json_is_integer(min) || json_is_integer(max)) {
		n = utf8_length(json_string_value(inst), json_string_length(inst));
		if (json_is_integer(min) && (json_int_t)n < json_integer_value(min))
			return fail(c, "string has %zu characters, fewer than minLength %"
				    JSON_INTEGER_FORMAT, n, json_integer_value(min));
		if (json_is_integer(max) && (json_int_t)n > json_integer_value(max))
			return fail(c, "string has %zu characters, more than maxLength %"
				    JSON_INTEGER_FORMAT, n, json_integer_value(max));
	}
	if (json_is_string(pattern))
		return check_pattern_match(c, json_string_value(pattern), json_string_value(inst),
					   json_is_true(json_object_get(schema, "x-secret")));
	return 0;
}

static int check_number(struct vctx *c, const json_t *schema, const json_t *inst)
{
	const json_t *min = json_object_get(schema, "minimum");
	const json_t *max = json_object_get(schema, "maximum");
	char value[64], bound[64];

	if (json_is_number(min) && num_cmp(inst, min) < 0) {
		dump_value(inst, value, sizeof(value));
		dump_value(min, bound, sizeof(bound));
		return fail(c, "%s is less than the minimum %s", value, bound);
	}
	if (json_is_number(max) && num_cmp(inst, max) > 0) {
		dump_value(inst, value, sizeof(value));
		dump_value(max, bound, sizeof(bound));
		return fail(c, "%s is greater than the maximum %s", value, bound);
	}
	return 0;
}

/* Validates inst against schema, a node of document root. */
static int validate(struct vctx *c, const json_t *root, const json_t *schema,
		    const json_t *inst)
{
	const json_t *ref, *v;
	int rc = 0;

	if (json_is_true(schema))
		return 0;
	if (json_is_false(schema))
		return fail(c, "no value is allowed here");
	if (!json_is_object(schema))
		return fail(c, "the schema here is not an object (was it checked?)");
	if (++c->depth > MAX_DEPTH)
		return fail(c, "schema nesting or $ref recursion deeper than %d", MAX_DEPTH);

	ref = json_object_get(schema, "$ref");
	if (json_is_string(ref)) {
		const json_t *doc, *target;

		target = resolve_ref(c->reg, root, json_string_value(ref), &doc);
		if (target == NULL) {
			rc = fail(c, "$ref \"%.100s\" does not resolve to a known schema",
				  json_string_value(ref));
			goto out;
		}
		rc = validate(c, doc, target, inst);
		if (rc < 0)
			goto out;
	}
	v = json_object_get(schema, "type");
	if (v != NULL && (rc = check_type(c, v, inst)) < 0)
		goto out;
	v = json_object_get(schema, "enum");
	if (json_is_array(v) &&
	    (rc = check_enum(c, v, inst, json_is_true(json_object_get(schema, "x-secret")))) < 0)
		goto out;
	v = json_object_get(schema, "const");
	if (v != NULL && !json_equal(v, inst)) {
		char value[96], want[96];

		dump_value(inst, value, sizeof(value));
		dump_value(v, want, sizeof(want));
		rc = fail(c, "value %s is not the required constant %s", value, want);
		goto out;
	}
	if (json_is_object(inst))
		rc = check_object(c, root, schema, inst);
	else if (json_is_array(inst))
		rc = check_array(c, root, schema, inst);
	else if (json_is_string(inst))
		rc = check_string(c, schema, inst);
	else if (json_is_number(inst))
		rc = check_number(c, schema, inst);
out:
	c->depth--;
	return rc;
}

int js_validate(const struct js_registry *reg, const json_t *schema, const json_t *instance,
		struct hub_error *err)
{
	struct vctx c;
	struct hub_error local;

	memset(&c, 0, sizeof(c));
	c.reg = reg;
	/* fail() formats through err's buffers; give it one when the caller
	 * does not want details. */
	c.err = err != NULL ? err : &local;
	if (schema == NULL || instance == NULL)
		return hub_error_set(err, "", "no %s given", schema == NULL ? "schema" : "value");
	return validate(&c, schema, schema, instance);
}
