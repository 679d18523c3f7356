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

/*
 * Like jtext_dump, for texts that are large and short-lived (a record
 * between its mapping and its commit): the text is written in a scratch
 * buffer of the calling thread and copied into a block taken from a pool
 * shared by all threads, so that neither side calls malloc or free for it
 * in the steady state. (glibc serves requests of 1 KB and more from its
 * large bins, and first consolidates every small free chunk of the arena:
 * with a webhook's hundreds of small JSON values freed each time, that was
 * a tenth of the worker's time.) Free the result with jtext_block_free,
 * from any thread; never with free().
 */
char *jtext_dump_block(const json_t *v, size_t *len);
void jtext_block_free(char *text);

#endif
