/*
 * jarena.h - a scratch region for the jansson values of one webhook call.
 *
 * Parsing a 3 KB order and mapping it make some 600 jansson values, each a
 * malloc and later a free: a fifth of a webhook's CPU went to glibc's
 * allocator. For a plugin that declares HUB_CAP_WEBHOOKS_SCOPED (nothing the
 * call creates outlives it), the host opens a scope around the call: while
 * it is open, jansson's allocations on that thread are carved from the
 * thread's region and their frees cost nothing; closing the scope drops the
 * whole region at once and keeps its first blocks for the next call.
 *
 * jarena_install() replaces jansson's allocator for the whole process
 * (hubd's and the plugins' jansson values alike, it is one library). Outside
 * a scope, and for blocks too large for the region, it is plain malloc and
 * free; a free of a value from the open scope is recognised by address.
 *
 * Threads: each thread has its own region; a scope belongs to the thread
 * that opened it. A value made inside a scope must not be used after it
 * closes, on any thread: what the call produces for later (records, dead
 * letters, receipts) leaves as text, never as JSON.
 */
#ifndef HUB_JARENA_H
#define HUB_JARENA_H

#include <stddef.h>

/* Makes jansson allocate through the scratch regions. Call once, before any
 * other thread starts and before a JSON value that would be freed inside a
 * scope is made (early in main). Idempotent. */
void jarena_install(void);

/* Opens the calling thread's scope: jansson values made on this thread
 * until jarena_end() come from its region. Scopes do not nest. */
void jarena_begin(void);

/* Closes the calling thread's scope and drops every value made in it.
 * Keeps the region's first blocks for the next scope. */
void jarena_end(void);

/* Frees the calling thread's region (at thread exit; jarena_end keeps
 * some of it). Safe when the thread never had one. */
void jarena_thread_release(void);

/* Bytes handed out in the calling thread's open scope (0 when none), for
 * tests and profiles. */
size_t jarena_used(void);

#endif
