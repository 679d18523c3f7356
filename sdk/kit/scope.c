/*
 * scope.c - the kit's jansson allocator, which tells what a webhook call
 * left behind (the HUB_CAP_WEBHOOKS_SCOPED check).
 *
 * The kit hands jansson a malloc/free pair (json_set_alloc_funcs) before it
 * makes any JSON value. Allocations pass straight to malloc, but while a
 * thread is inside a scope (kit_scope_enter .. kit_scope_leave, around one
 * verify_webhook or read_webhook) each block it gets is also recorded in a
 * table, with its size and its scope; jansson's free removes it again.
 * Once the call has returned and the kit has released what the plugin
 * handed over (the call's records), kit_scope_settle counts the blocks of
 * the scope still recorded: values the plugin kept. Blocks are never
 * wrapped (no header), so memory jansson allocated outside any scope, or
 * before the kit took over, is freed as usual.
 *
 * Threads: the table is under one mutex; a thread's current scope is
 * thread-local. While no block is recorded, free() skips the lock, so the
 * allocator costs nothing to the other checks.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "kit.h"

/* Buckets of the pointer table (a power of two); chained. */
#define NBUCKETS 4096u

struct block {
	void *ptr;
	size_t size;
	struct kit_scope *scope;
	struct block *next;
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block *buckets[NBUCKETS];
/* Blocks recorded; read without the lock by free() (see track_free). */
static atomic_size_t recorded;
/* The scope the calling thread is in, or NULL. */
static _Thread_local struct kit_scope *current;

static size_t bucket_of(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p >> 4;

	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 52) & (NBUCKETS - 1);
}

static void *track_malloc(size_t size)
{
	struct kit_scope *s = current;
	void *p = malloc(size);
	struct block *b;
	size_t i;

	if (!p || !s)
		return p;
	b = malloc(sizeof(*b));
	pthread_mutex_lock(&table_mu);
	s->blocks++;
	s->bytes += size;
	if (!b) {
		/* cannot record it: the check would be wrong, say so */
		s->untracked++;
	} else {
		i = bucket_of(p);
		b->ptr = p;
		b->size = size;
		b->scope = s;
		b->next = buckets[i];
		buckets[i] = b;
		s->live_blocks++;
		s->live_bytes += size;
		atomic_fetch_add(&recorded, 1);
	}
	pthread_mutex_unlock(&table_mu);
	return p;
}

/* Removes p's record (if any) before the memory can be handed out again. A
 * block is recorded before its pointer leaves track_malloc, so a thread
 * that was given p by the recording thread sees recorded > 0. */
static void track_free(void *p)
{
	struct block **link, *b = NULL;

	if (!p)
		return;
	if (atomic_load(&recorded) > 0) {
		pthread_mutex_lock(&table_mu);
		for (link = &buckets[bucket_of(p)]; *link; link = &(*link)->next)
			if ((*link)->ptr == p) {
				b = *link;
				*link = b->next;
				b->scope->live_blocks--;
				b->scope->live_bytes -= b->size;
				atomic_fetch_sub(&recorded, 1);
				break;
			}
		pthread_mutex_unlock(&table_mu);
		free(b);
	}
	free(p);
}

void kit_scope_install(void)
{
	json_set_alloc_funcs(track_malloc, track_free);
}

void kit_scope_enter(struct kit_scope *s)
{
	current = s;
}

void kit_scope_leave(void)
{
	current = NULL;
}

size_t kit_scope_settle(struct kit_scope *s, size_t *bytes)
{
	struct block **link, *b;
	size_t i, live;

	pthread_mutex_lock(&table_mu);
	live = s->live_blocks;
	if (bytes)
		*bytes = s->live_bytes;
	for (i = 0; s->live_blocks && i < NBUCKETS; i++) {
		link = &buckets[i];
		while ((b = *link)) {
			if (b->scope != s) {
				link = &b->next;
				continue;
			}
			*link = b->next;
			s->live_blocks--;
			s->live_bytes -= b->size;
			atomic_fetch_sub(&recorded, 1);
			free(b);
		}
	}
	pthread_mutex_unlock(&table_mu);
	return live;
}
