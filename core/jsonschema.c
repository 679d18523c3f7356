/*
 * jsonschema.c - checking schemas and validating records and configs against
 * them (the subset described in jsonschema.h).
 *
 * check_node() walks a schema tree and refuses what the validator would not
 * enforce (unknown keywords, malformed values, patterns that do not compile,
 * dangling local references) and, for a registry, compiles each distinct
 * pattern once into a cache keyed by its text. compile() turns each schema
 * node into a jc_node (keywords read once, $ref linked, properties hashed);
 * validate() then walks compiled schema and instance together, keeping the
 * instance path as a stack of segments so the first violation can be
 * reported as "lines[2].unit_price". The registry is only read while
 * validating, so validations may run in parallel (glibc's regexec() is
 * thread-safe).
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

struct jc_node;

/* Compiled schema nodes by the JSON node they come from (see below). */
struct jc_set {
	struct jc_node **slots; /* open addressing on the json_t pointer */
	size_t nslots, count;
	struct jc_node **all;   /* in creation order, for freeing */
	size_t nall, capall;
};

struct js_registry {
	json_t *schemas;      /* object: name -> schema */
	json_t *pattern_ids;  /* object: pattern text -> index into patterns */
	regex_t **patterns;
	size_t npatterns, cap;
	struct jc_set nodes;  /* every registered schema, compiled */
};

static void set_release(struct jc_set *set);
static int registry_compile(struct js_registry *reg, const json_t *schema);

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
	set_release(&reg->nodes);
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
	if (json_object_set(reg->schemas, name, schema) < 0 || registry_compile(reg, schema) < 0)
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

/* ---- compiled schemas -------------------------------------------------- */

/*
 * Validating straight from the schema's JSON looked every keyword up in
 * every schema object it passed (a dozen hash lookups per node) and wrote
 * the instance path with snprintf at every step; for the canonical records
 * hubd checks on every webhook that cost more than mapping the order. So
 * each schema node is compiled once into a jc_node: keywords read, $ref
 * resolved to its target node, properties in a hash table. The instance path
 * is kept as a stack of segments and written out only for a violation. The
 * checks, their order and their messages are those of the JSON walk.
 *
 * A registry compiles each schema as it is added, and resolves references to
 * schemas added later as they arrive. js_validate() on a schema that is not
 * in the registry (a plugin's config schema) compiles a throwaway tree for
 * the call.
 */

enum jc_kind { JC_TRUE, JC_FALSE, JC_OBJECT, JC_BAD };

/* Instance type bits; JT_CHECK marks a node that has a "type" to check. */
enum jc_type_bits {
	JT_NULL = 1u << 0,
	JT_BOOLEAN = 1u << 1,
	JT_OBJECT = 1u << 2,
	JT_ARRAY = 1u << 3,
	JT_NUMBER = 1u << 4,
	JT_INTEGER = 1u << 5,
	JT_STRING = 1u << 6,
	JT_CHECK = 1u << 7,
};

struct jc_node;

struct jc_prop {
	const char *key;
	size_t len;
	uint32_t hash;
	const struct jc_node *node;
};

struct jc_node {
	const json_t *schema;
	const json_t *doc; /* the document it belongs to: its local $refs */
	enum jc_kind kind;
	const char *ref;                /* "$ref" text, or NULL */
	const struct jc_node *target;   /* what ref resolved to; NULL: not (yet) */
	const json_t *type;             /* as written, for messages */
	unsigned types;                 /* enum jc_type_bits */
	const json_t *enum_list, *konst;
	int secret;
	/* objects */
	const json_t *required;
	struct jc_prop *props;
	size_t nprops;
	uint32_t *slots; /* index + 1 into props, or 0; size slot_mask + 1 */
	uint32_t slot_mask;
	const struct jc_node *extra;    /* additionalProperties, or NULL */
	int extra_false;
	/* arrays */
	const struct jc_node *items;
	const json_t *min_items, *max_items;
	/* strings */
	const json_t *min_len, *max_len;
	const char *pattern;
	const regex_t *re;
	regex_t *own_re;
	int re_bad;
	/* numbers */
	const json_t *minimum, *maximum;
};

static uint32_t key_hash(const char *key, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return h;
}

static size_t ptr_slot(const void *p, size_t mask)
{
	uintptr_t v = (uintptr_t)p;

	v ^= v >> 17;
	v *= (uintptr_t)0x9E3779B97F4A7C15u;
	return (size_t)(v >> 7) & mask;
}

static struct jc_node *set_find(const struct jc_set *set, const json_t *schema)
{
	size_t mask, i;

	if (set == NULL || set->nslots == 0)
		return NULL;
	mask = set->nslots - 1;
	for (i = ptr_slot(schema, mask); set->slots[i] != NULL; i = (i + 1) & mask)
		if (set->slots[i]->schema == schema)
			return set->slots[i];
	return NULL;
}

static int set_insert(struct jc_set *set, struct jc_node *node)
{
	size_t mask, i;

	if ((set->count + 1) * 2 > set->nslots) {
		size_t n = set->nslots ? set->nslots * 2 : 64;
		struct jc_node **slots = calloc(n, sizeof(*slots));

		if (slots == NULL)
			return -1;
		for (size_t k = 0; k < set->nslots; k++) {
			if (set->slots[k] == NULL)
				continue;
			for (i = ptr_slot(set->slots[k]->schema, n - 1); slots[i] != NULL; i = (i + 1) & (n - 1))
				;
			slots[i] = set->slots[k];
		}
		free(set->slots);
		set->slots = slots;
		set->nslots = n;
	}
	if (set->nall == set->capall) {
		size_t n = set->capall ? set->capall * 2 : 64;
		struct jc_node **all = realloc(set->all, n * sizeof(*all));

		if (all == NULL)
			return -1;
		set->all = all;
		set->capall = n;
	}
	mask = set->nslots - 1;
	for (i = ptr_slot(node->schema, mask); set->slots[i] != NULL; i = (i + 1) & mask)
		;
	set->slots[i] = node;
	set->count++;
	set->all[set->nall++] = node;
	return 0;
}

static void set_release(struct jc_set *set)
{
	for (size_t i = 0; i < set->nall; i++) {
		struct jc_node *n = set->all[i];

		if (n->own_re != NULL) {
			regfree(n->own_re);
			free(n->own_re);
		}
		free(n->props);
		free(n->slots);
		free(n);
	}
	free(set->all);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* What a compilation reads from and writes to. */
struct jc_build {
	struct jc_set *set;              /* new nodes go here */
	const struct jc_set *shared;     /* nodes to reuse (the registry's), or NULL */
	const struct js_registry *reg;   /* external references and patterns, or NULL */
	int depth;
};

static struct jc_node *compile(struct jc_build *b, const json_t *schema, const json_t *doc);

/* Resolves node->ref if it can be now. 0, or -1 when out of memory. */
static int link_ref(struct jc_build *b, struct jc_node *node)
{
	const json_t *doc, *target;

	target = resolve_ref(b->reg, node->doc, node->ref, &doc);
	if (target == NULL)
		return 0; /* reported if a validation reaches it */
	node->target = compile(b, target, doc);
	return node->target != NULL ? 0 : -1;
}

static int compile_props(struct jc_build *b, struct jc_node *node, const json_t *props)
{
	const char *key;
	const json_t *sub;
	size_t n = json_object_size(props), size = 4, i = 0;

	while (size < n * 2)
		size *= 2;
	node->props = calloc(n ? n : 1, sizeof(*node->props));
	node->slots = calloc(size, sizeof(*node->slots));
	if (node->props == NULL || node->slots == NULL)
		return -1;
	node->slot_mask = (uint32_t)(size - 1);
	json_object_foreach((json_t *)props, key, sub) {
		struct jc_prop *p = &node->props[i];
		uint32_t s;

		p->key = key;
		p->len = strlen(key);
		p->hash = key_hash(key, p->len);
		p->node = compile(b, sub, node->doc);
		if (p->node == NULL)
			return -1;
		for (s = p->hash & node->slot_mask; node->slots[s] != 0; s = (s + 1) & node->slot_mask)
			;
		node->slots[s] = (uint32_t)(i + 1);
		i++;
	}
	node->nprops = i;
	return 0;
}

static unsigned type_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} map[] = {
		{"null", JT_NULL},     {"boolean", JT_BOOLEAN}, {"object", JT_OBJECT},
		{"array", JT_ARRAY},   {"number", JT_NUMBER},   {"integer", JT_INTEGER},
		{"string", JT_STRING},
	};

	for (size_t i = 0; name != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, name) == 0)
			return map[i].bit;
	return 0;
}

/* The compiled node of `schema` (a node of document `doc`), compiling it
 * and everything below it on first use. NULL when out of memory. */
static struct jc_node *compile(struct jc_build *b, const json_t *schema, const json_t *doc)
{
	struct jc_node *node = set_find(b->shared, schema);
	const json_t *v, *t;
	size_t i;

	if (node == NULL)
		node = set_find(b->set, schema);
	if (node != NULL)
		return node;
	node = calloc(1, sizeof(*node));
	if (node == NULL)
		return NULL;
	node->schema = schema;
	node->doc = doc;
	if (set_insert(b->set, node) < 0) {
		free(node);
		return NULL;
	}
	if (json_is_true(schema)) {
		node->kind = JC_TRUE;
		return node;
	}
	if (json_is_false(schema)) {
		node->kind = JC_FALSE;
		return node;
	}
	if (!json_is_object(schema)) {
		node->kind = JC_BAD;
		return node;
	}
	node->kind = JC_OBJECT;
	/* Schemas nested absurdly deep are left to fail at validation. */
	if (++b->depth > MAX_DEPTH) {
		b->depth--;
		node->kind = JC_BAD;
		return node;
	}
	v = json_object_get(schema, "$ref");
	if (json_is_string(v)) {
		node->ref = json_string_value(v);
		if (link_ref(b, node) < 0)
			goto nomem;
	}
	node->type = json_object_get(schema, "type");
	if (json_is_string(node->type)) {
		node->types = JT_CHECK | type_bit(json_string_value(node->type));
	} else if (json_is_array(node->type)) {
		node->types = JT_CHECK;
		json_array_foreach(node->type, i, t)
			node->types |= json_is_string(t) ? type_bit(json_string_value(t)) : 0;
	}
	v = json_object_get(schema, "enum");
	node->enum_list = json_is_array(v) ? v : NULL;
	node->konst = json_object_get(schema, "const");
	node->secret = json_is_true(json_object_get(schema, "x-secret"));
	v = json_object_get(schema, "required");
	node->required = json_is_array(v) ? v : NULL;
	v = json_object_get(schema, "properties");
	if (json_is_object(v) && compile_props(b, node, v) < 0)
		goto nomem;
	v = json_object_get(schema, "additionalProperties");
	if (v != NULL) {
		node->extra_false = json_is_false(v);
		if ((node->extra = compile(b, v, doc)) == NULL)
			goto nomem;
	}
	v = json_object_get(schema, "items");
	if (v != NULL && (node->items = compile(b, v, doc)) == NULL)
		goto nomem;
	node->min_items = json_object_get(schema, "minItems");
	node->max_items = json_object_get(schema, "maxItems");
	node->min_len = json_object_get(schema, "minLength");
	node->max_len = json_object_get(schema, "maxLength");
	node->minimum = json_object_get(schema, "minimum");
	node->maximum = json_object_get(schema, "maximum");
	v = json_object_get(schema, "pattern");
	if (json_is_string(v)) {
		const json_t *id = b->reg != NULL ? json_object_get(b->reg->pattern_ids,
								     json_string_value(v)) : NULL;

		node->pattern = json_string_value(v);
		if (id != NULL) {
			node->re = b->reg->patterns[json_integer_value(id)];
		} else {
			node->own_re = malloc(sizeof(*node->own_re));
			if (node->own_re == NULL)
				goto nomem;
			if (regcomp(node->own_re, node->pattern, REG_EXTENDED | REG_NOSUB) != 0) {
				free(node->own_re);
				node->own_re = NULL;
				node->re_bad = 1;
			}
			node->re = node->own_re;
		}
	}
	/* $defs are compiled when a reference reaches them. */
	b->depth--;
	return node;
nomem:
	b->depth--;
	return NULL;
}

/* Compiles a schema just added to the registry, and links the references of
 * earlier schemas that it now satisfies. 0, or -1 when out of memory. */
static int registry_compile(struct js_registry *reg, const json_t *schema)
{
	struct jc_build b = {.set = &reg->nodes, .reg = reg};

	if (compile(&b, schema, schema) == NULL)
		return -1;
	for (size_t i = 0; i < reg->nodes.nall; i++) {
		struct jc_node *n = reg->nodes.all[i];

		if (n->ref != NULL && n->target == NULL && link_ref(&b, n) < 0)
			return -1;
	}
	return 0;
}

/* ---- validating instances -------------------------------------------- */

/* One step of the instance path: a key, or an index when key is NULL. */
struct seg {
	const char *key;
	size_t index;
};

struct vctx {
	const struct js_registry *reg;
	struct hub_error *err;
	struct seg segs[MAX_DEPTH + 8];
	size_t nsegs;
	int depth;
};

static void push_key(struct vctx *c, const char *key)
{
	if (c->nsegs < sizeof(c->segs) / sizeof(c->segs[0]))
		c->segs[c->nsegs].key = key;
	c->nsegs++;
}

static void push_index(struct vctx *c, size_t i)
{
	if (c->nsegs < sizeof(c->segs) / sizeof(c->segs[0])) {
		c->segs[c->nsegs].key = NULL;
		c->segs[c->nsegs].index = i;
	}
	c->nsegs++;
}

/* Writes the instance path, "lines[2].unit_price" ("" for the value
 * itself), cut to fit like the message fields it goes into. */
static void write_path(const struct vctx *c, char *path, size_t size)
{
	size_t len = 0, n = c->nsegs;

	path[0] = '\0';
	if (n > sizeof(c->segs) / sizeof(c->segs[0]))
		n = sizeof(c->segs) / sizeof(c->segs[0]);
	for (size_t i = 0; i < n && len + 1 < size; i++) {
		int w = c->segs[i].key != NULL
				? snprintf(path + len, size - len, "%s%s", len > 0 ? "." : "", c->segs[i].key)
				: snprintf(path + len, size - len, "[%zu]", c->segs[i].index);

		if (w < 0)
			break;
		len += (size_t)w < size - len ? (size_t)w : size - len - 1;
	}
}

static int fail(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a violation at the current path. Returns -1. */
static int fail(struct vctx *c, const char *fmt, ...)
{
	char msg[sizeof(c->err->message)], path[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_path(c, path, sizeof(path));
	return hub_error_set(c->err, path, "%s", msg);
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

static unsigned instance_bits(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return JT_OBJECT;
	case JSON_ARRAY: return JT_ARRAY;
	case JSON_STRING: return JT_STRING;
	case JSON_INTEGER: return JT_INTEGER | JT_NUMBER;
	case JSON_REAL: return JT_NUMBER;
	case JSON_TRUE:
	case JSON_FALSE: return JT_BOOLEAN;
	case JSON_NULL: return JT_NULL;
	}
	return 0;
}

/* Compact JSON text of v, cut to fit size (ending in "..." when cut).
 * Written straight into buf (json_dumpb): validation runs inside webhook
 * calls whose jansson memory is a scratch region (core/jarena.h), where a
 * json_dumps text must not go to free(). */
static void dump_value(const json_t *v, char *buf, size_t size)
{
	size_t n;

	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return;
	}
	n = json_dumpb(v, buf, size - 1, JSON_COMPACT | JSON_ENCODE_ANY);
	if (n == 0) {
		snprintf(buf, size, "(value)");
	} else if (n > size - 1) {
		/* Cut: json_dumpb filled what it could. */
		memcpy(buf + size - 4, "...", 4);
	} else {
		buf[n] = '\0';
	}
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

static int validate(struct vctx *c, const struct jc_node *n, const json_t *inst);

static int check_type(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	char want[128] = "";
	size_t i;
	const json_t *t;

	if (instance_bits(inst) & n->types)
		return 0;
	if (json_is_string(n->type))
		return fail(c, "expected %s, got %s", json_string_value(n->type), instance_type(inst));
	json_array_foreach(n->type, i, t) {
		size_t len = strlen(want);

		snprintf(want + len, sizeof(want) - len, "%s%s", i > 0 ? " or " : "",
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

	/* Most enums are words: compare strings without json_equal. */
	if (json_is_string(inst)) {
		const char *s = json_string_value(inst);
		size_t len = json_string_length(inst);

		json_array_foreach(list, i, e)
			if (json_is_string(e) && json_string_length(e) == len &&
			    memcmp(json_string_value(e), s, len) == 0)
				return 0;
	} else {
		json_array_foreach(list, i, e)
			if (json_equal(e, inst))
				return 0;
	}
	if (secret)
		return fail(c, "the (secret) value is not one of the allowed values");
	dump_value(inst, value, sizeof(value));
	dump_value(list, all, sizeof(all));
	return fail(c, "value %s not in enum %s", value, all);
}

static int check_pattern_match(struct vctx *c, const struct jc_node *n, const char *text)
{
	if (n->re_bad)
		return fail(c, "pattern \"%.100s\" does not compile", n->pattern);
	if (regexec(n->re, text, 0, NULL, 0) == 0)
		return 0;
	if (n->secret)
		return fail(c, "the (secret) value does not match the pattern %.150s", n->pattern);
	return fail(c, "\"%.100s\" does not match the pattern %.150s", text, n->pattern);
}

static const struct jc_node *find_prop(const struct jc_node *n, const char *key)
{
	size_t len;
	uint32_t h, s, i;

	if (n->slots == NULL)
		return NULL;
	len = strlen(key);
	h = key_hash(key, len);
	for (s = h & n->slot_mask; (i = n->slots[s]) != 0; s = (s + 1) & n->slot_mask) {
		const struct jc_prop *p = &n->props[i - 1];

		if (p->hash == h && p->len == len && memcmp(p->key, key, len) == 0)
			return p->node;
	}
	return NULL;
}

static int check_object(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	const char *key;
	const json_t *v;
	size_t i;

	json_array_foreach(n->required, i, v) {
		if (json_is_string(v) && json_object_get(inst, json_string_value(v)) == NULL) {
			push_key(c, json_string_value(v));
			return fail(c, "required property missing");
		}
	}
	json_object_foreach((json_t *)inst, key, v) {
		const struct jc_node *sub = find_prop(n, key);

		push_key(c, key);
		if (sub == NULL && n->extra_false)
			return fail(c, "unknown property \"%.100s\"", key);
		if (sub == NULL)
			sub = n->extra;
		if (sub != NULL && validate(c, sub, v) < 0)
			return -1;
		c->nsegs--;
	}
	return 0;
}

static int check_array(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	size_t len = json_array_size(inst), i;
	const json_t *v;

	if (json_is_integer(n->min_items) && (json_int_t)len < json_integer_value(n->min_items))
		return fail(c, "array has %zu items, fewer than minItems %" JSON_INTEGER_FORMAT,
			    len, json_integer_value(n->min_items));
	if (json_is_integer(n->max_items) && (json_int_t)len > json_integer_value(n->max_items))
		return fail(c, "array has %zu items, more than maxItems %" JSON_INTEGER_FORMAT,
			    len, json_integer_value(n->max_items));
	if (n->items == NULL)
		return 0;
	json_array_foreach(inst, i, v) {
		push_index(c, i);
		if (validate(c, n->items, v) < 0)
			return -1;
		c->nsegs--;
	}
	return 0;
}

static int check_string(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	size_t len;

	if (json_is_integer(n->min_len) || json_is_integer(n->max_len)) {
		len = utf8_length(json_string_value(inst), json_string_length(inst));
		if (json_is_integer(n->min_len) && (json_int_t)len < json_integer_value(n->min_len))
			return fail(c, "string has %zu characters, fewer than minLength %"
				    JSON_INTEGER_FORMAT, len, json_integer_value(n->min_len));
		if (json_is_integer(n->max_len) && (json_int_t)len > json_integer_value(n->max_len))
			return fail(c, "string has %zu characters, more than maxLength %"
				    JSON_INTEGER_FORMAT, len, json_integer_value(n->max_len));
	}
	if (n->pattern != NULL)
		return check_pattern_match(c, n, json_string_value(inst));
	return 0;
}

static int check_number(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	char value[64], bound[64];

	if (json_is_number(n->minimum) && num_cmp(inst, n->minimum) < 0) {
		dump_value(inst, value, sizeof(value));
		dump_value(n->minimum, bound, sizeof(bound));
		return fail(c, "%s is less than the minimum %s", value, bound);
	}
	if (json_is_number(n->maximum) && num_cmp(inst, n->maximum) > 0) {
		dump_value(inst, value, sizeof(value));
		dump_value(n->maximum, bound, sizeof(bound));
		return fail(c, "%s is greater than the maximum %s", value, bound);
	}
	return 0;
}

/* Validates inst against compiled node n. */
static int validate(struct vctx *c, const struct jc_node *n, const json_t *inst)
{
	int rc = 0;

	if (n->kind == JC_TRUE)
		return 0;
	if (n->kind == JC_FALSE)
		return fail(c, "no value is allowed here");
	if (n->kind == JC_BAD && !json_is_object(n->schema))
		return fail(c, "the schema here is not an object (was it checked?)");
	if (++c->depth > MAX_DEPTH || n->kind == JC_BAD) {
		rc = fail(c, "schema nesting or $ref recursion deeper than %d", MAX_DEPTH);
		goto out;
	}
	if (n->ref != NULL) {
		if (n->target == NULL) {
			rc = fail(c, "$ref \"%.100s\" does not resolve to a known schema", n->ref);
			goto out;
		}
		rc = validate(c, n->target, inst);
		if (rc < 0)
			goto out;
	}
	if ((n->types & JT_CHECK) && (rc = check_type(c, n, inst)) < 0)
		goto out;
	if (n->enum_list != NULL && (rc = check_enum(c, n->enum_list, inst, n->secret)) < 0)
		goto out;
	if (n->konst != NULL && !json_equal(n->konst, inst)) {
		char value[96], want[96];

		dump_value(inst, value, sizeof(value));
		dump_value(n->konst, want, sizeof(want));
		rc = fail(c, "value %s is not the required constant %s", value, want);
		goto out;
	}
	switch (json_typeof(inst)) {
	case JSON_OBJECT:
		rc = check_object(c, n, inst);
		break;
	case JSON_ARRAY:
		rc = check_array(c, n, inst);
		break;
	case JSON_STRING:
		rc = check_string(c, n, inst);
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		rc = check_number(c, n, inst);
		break;
	default:
		break;
	}
out:
	c->depth--;
	return rc;
}

int js_validate(const struct js_registry *reg, const json_t *schema, const json_t *instance,
		struct hub_error *err)
{
	struct hub_error local;
	struct jc_set temp = {0};
	const struct jc_node *node;
	struct vctx ctx, *c = &ctx;
	int rc;

	if (schema == NULL || instance == NULL)
		return hub_error_set(err, "", "no %s given", schema == NULL ? "schema" : "value");
	c->reg = reg;
	c->nsegs = 0;
	c->depth = 0;
	/* fail() formats through err's buffers; give it one when the caller
	 * does not want details. */
	c->err = err != NULL ? err : &local;
	node = reg != NULL ? set_find(&reg->nodes, schema) : NULL;
	if (node == NULL) {
		/* Not one of the registry's: compile it for this call. */
		struct jc_build b = {.set = &temp, .shared = reg != NULL ? &reg->nodes : NULL,
				     .reg = reg};

		node = compile(&b, schema, schema);
	}
	rc = node != NULL ? validate(c, node, instance)
			  : hub_error_set(c->err, "", "out of memory validating");
	set_release(&temp);
	return rc;
}
