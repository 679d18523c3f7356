/*
 * jarena.c - the scratch region for a webhook call's jansson values (see
 * jarena.h).
 *
 * A region is a list of 64 KB blocks owned by one thread. Allocations in an
 * open scope are bumped from the current block (16-byte aligned); one too
 * large for a block goes to malloc. A free looks whether the address lies
 * in one of the thread's blocks (a handful of compares): if so it costs
 * nothing, else it is free(). Closing the scope rewinds to the first block
 * and gives back all but KEEP_BLOCKS.
 *
 * Under AddressSanitizer the unused part of each block is poisoned and
 * every allocation unpoisoned, so that a use after the scope closed, or
 * past the end of a value, is still reported.
 */
#include "config.h"
#include "jarena.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#if defined(__SANITIZE_ADDRESS__)
#define JARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JARENA_ASAN 1
#endif
#endif
#ifdef JARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define BLOCK_BYTES (64u * 1024u)   /* what one block holds */
#define BIG_BYTES (8u * 1024u)      /* larger values go to malloc */
#define KEEP_BLOCKS 4               /* kept between scopes */
#define ALIGN 16u

struct block {
	struct block *next;
	size_t pad; /* keeps data 16-byte aligned */
	_Alignas(16) unsigned char data[BLOCK_BYTES];
};

struct region {
	struct block *first;   /* every block of the thread, in order */
	struct block *cur;     /* the one being carved */
	unsigned char *at;     /* next free byte of cur */
	size_t used;           /* bytes handed out in this scope */
	int active;
	int registered;        /* the thread-exit destructor knows it */
};

/* initial-exec: hubd links this file in, so the region is one offset from
 * the thread pointer (the general model would call __tls_get_addr on every
 * allocation). */
static _Thread_local struct region tls __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static int in_region(const struct region *r, const void *p)
{
	const unsigned char *q = p;

	for (const struct block *b = r->first; b; b = b->next) {
		if (q >= b->data && q < b->data + BLOCK_BYTES)
			return 1;
	}
	return 0;
}

static void release(struct region *r, unsigned keep)
{
	struct block *b = r->first, *next;
	unsigned n = 0;

	if (keep == 0)
		r->first = NULL;
	for (; b; b = next) {
		next = b->next;
		if (++n == keep)
			b->next = NULL;
		if (n > keep)
			free(b);
		else
			POISON(b->data, BLOCK_BYTES);
	}
	r->cur = r->first;
	r->at = r->first ? r->first->data : NULL;
	r->used = 0;
}

static void on_thread_exit(void *arg)
{
	release(arg, 0);
}

static void make_key(void)
{
	(void)pthread_key_create(&exit_key, on_thread_exit);
}

/* Moves to the next block, making it when there is none. 0 or -1. */
static int next_block(struct region *r)
{
	struct block *b = r->cur ? r->cur->next : r->first;

	if (!b) {
		b = malloc(sizeof(*b));
		if (!b)
			return -1;
		b->next = NULL;
		POISON(b->data, BLOCK_BYTES);
		if (r->cur)
			r->cur->next = b;
		else
			r->first = b;
	}
	r->cur = b;
	r->at = b->data;
	return 0;
}

static void *ja_malloc(size_t size)
{
	struct region *r = &tls;
	size_t n = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	void *p;

	if (!r->active || size > BIG_BYTES || n == 0)
		return malloc(size);
	if (!r->cur || (size_t)(r->cur->data + BLOCK_BYTES - r->at) < n) {
		if (next_block(r) < 0)
			return malloc(size);
	}
	p = r->at;
	r->at += n;
	r->used += n;
	UNPOISON(p, size);
	return p;
}

static void ja_free(void *p)
{
	if (p && !in_region(&tls, p))
		free(p);
}

void jarena_install(void)
{
	json_set_alloc_funcs(ja_malloc, ja_free);
}

void jarena_begin(void)
{
	struct region *r = &tls;

	if (!r->registered) {
		/* Without the key the region is still freed by
		 * jarena_thread_release; only a thread exit would leak it. */
		if (pthread_once(&key_once, make_key) == 0 &&
		    pthread_setspecific(exit_key, r) == 0)
			r->registered = 1;
	}
	r->active = 1;
}

void jarena_end(void)
{
	struct region *r = &tls;

	r->active = 0;
	release(r, KEEP_BLOCKS);
}

void jarena_thread_release(void)
{
	struct region *r = &tls;

	r->active = 0;
	release(r, 0);
}

size_t jarena_used(void)
{
	return tls.active ? tls.used : 0;
}
