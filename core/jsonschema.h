/*
 * jsonschema.h - the subset of JSON Schema (2020-12 spelling) hubd checks
 * records and plugin configs against.
 *
 * Every record a plugin emits is validated against its canonical schema
 * (the files of sdk/schema/, embedded in the binary) before it reaches the store,
 * and every plugin's config schema is checked when the plugin loads, so a
 * plugin with a schema hubd cannot enforce is refused instead of silently
 * accepting anything. The subset is what those schemas need:
 *
 *   type (one name or an array; "integer" means a JSON integer token, so 1.0
 *   is not an integer - stricter than the spec, because the store reads
 *   integers with json_integer_value), properties, required,
 *   additionalProperties (boolean or schema), enum, const, pattern (POSIX
 *   extended regex, unanchored like the spec), minimum, maximum, minLength,
 *   maxLength (in code points), minItems, maxItems, items (one schema), $ref,
 *   $defs (and the older "definitions"), and boolean schemas true/false.
 *   Annotations are accepted and ignored: default, format, title,
 *   description, $id, $schema, $comment, examples, deprecated, readOnly,
 *   writeOnly and any "x-..." keyword (e.g. "x-secret" in config schemas).
 *   Any other keyword makes the schema invalid.
 *
 * $ref is "#<JSON pointer>" within the current document, or "<name>" /
 * "<name>#<pointer>" naming another schema of the registry by file name
 * ("shipment_status.json"); an absolute URI is reduced to its last path
 * segment, so "https://hub.invalid/schema/order.json" finds "order.json".
 *
 * Validation stops at the first violation and reports it in a struct
 * hub_error: `field` is the instance path ("lines[2].unit_price", "" for the
 * value itself) and `message` says what is wrong. A registry is built once
 * (not thread-safe while being built); afterwards js_validate() may be called
 * from any number of threads at once on the same const registry.
 */
#ifndef HUB_JSONSCHEMA_H
#define HUB_JSONSCHEMA_H

#include <stddef.h>
#include <jansson.h>

#include <hub/plugin.h>

/* Schemas by name, with their regular expressions compiled once. */
struct js_registry;

/* Allocates an empty registry. Returns NULL when out of memory. Free it with
 * js_registry_free(). */
struct js_registry *js_registry_new(void);

/* Frees the registry, its references to the schemas and the compiled
 * patterns. Pointers returned by js_registry_get() die with it. NULL is a
 * no-op. */
void js_registry_free(struct js_registry *reg);

/* Checks `schema` (see js_check_schema) and registers it under `name` (the
 * file name other schemas use in $ref, e.g. "order.json"), taking its own
 * reference: the caller keeps (and still releases) its own. Compiles the
 * schema's patterns into the registry's cache. Returns 0, or -1 with err
 * filled when the schema is invalid, the name empty or already taken, or
 * memory runs out. References to other schemas are resolved when
 * validating, so schemas may be added in any order. */
int js_registry_add(struct js_registry *reg, const char *name, json_t *schema,
		    struct hub_error *err);

/* Adds the canonical record schemas of sdk/schema/ (order.json,
 * shipment.json, shipment_status.json, tracking.json, tracking_event.json)
 * embedded at build time, then checks that every $ref among all schemas of
 * the registry resolves. Returns 0, or -1 with err filled. */
int js_registry_add_builtin(struct js_registry *reg, struct hub_error *err);

/* The schema registered as `name`, borrowed from the registry (valid until
 * js_registry_free), or NULL. */
const json_t *js_registry_get(const struct js_registry *reg, const char *name);

/* Checks that `schema` uses only the supported keywords, each with a value
 * of the right shape (patterns compile, lengths are non-negative integers,
 * local "#..." references resolve). Returns 0, or -1 with err->field set to
 * the JSON pointer of the offending keyword within the schema
 * ("/properties/token/oneOf") and err->message naming the keyword and what
 * to do. Patterns must be POSIX extended regular expressions: "\\d" is
 * refused (write [0-9]). Pure; any thread. */
int js_check_schema(const json_t *schema, struct hub_error *err);

/* Validates `instance` against `schema` (normally one obtained from
 * js_registry_get, but any schema that passed js_check_schema works; its
 * patterns are then compiled per call, and its external $refs are
 * looked up in `reg`, which may be NULL when it has none). Returns 0 when
 * valid, or -1 with err->field the instance path of the first violation and
 * err->message the reason, e.g.
 *   field "lines[2].unit_price"  message "expected integer, got string"
 *   field "currency"             message "required property missing"
 *   field "customer.foo"         message "unknown property \"foo\""
 *   field "status"               message "value \"x\" not in enum [...]"
 * A reference that does not resolve or nests too deeply is also reported
 * as -1. Thread-safe on a registry that is no longer being changed. */
int js_validate(const struct js_registry *reg, const json_t *schema, const json_t *instance,
		struct hub_error *err);

/* One embedded schema file; the table is generated at build time by
 * core/schemas_gen.sh into schemas_builtin.c and ends with a NULL name. */
struct js_builtin {
	const char *name;           /* file name, e.g. "order.json" */
	const unsigned char *text;  /* the JSON text, NUL-terminated */
	size_t len;                 /* bytes, without the NUL */
};
extern const struct js_builtin js_builtins[];

#endif /* HUB_JSONSCHEMA_H */
