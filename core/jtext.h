/*
 * jtext.h - compact JSON text of jansson values, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes, written straight
 * into one growing buffer.
 *
 * The store keeps every record as compact JSON text; jansson's writer goes
 * through a callback per fragment and formats every integer with snprintf,
 * which made serialising an order a tenth of a webhook's work on the loop
 * thread. Pure functions: any thread.
 */
#ifndef HUB_JTEXT_H
#define HUB_JTEXT_H

#include <stddef.h>
#include <jansson.h>

/*
 * The compact JSON text of v (object keys in jansson's order, strings
 * escaped as jansson does, reals through jansson itself), NUL-terminated,
 * its length in *len when len is not NULL. Returns malloc'd text the caller
 * frees, or NULL when v is NULL, holds a string that is not valid UTF-8,
 * nests deeper than 2048 levels, or memory runs out (json_dumps returns
 * NULL in the same cases).
 */
char *jtext_dump(const json_t *v, size_t *len);

#endif
