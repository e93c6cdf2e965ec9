/* arena.c - bump allocation: many small objects, freed together. */
#include "support/support.h"

#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
	ArenaBlock *next; /* the block allocated before this one */
	size_t size;      /* usable bytes in data */
	_Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 64 * 1024 };

/* Out of memory in the compiler is not a user error; report and stop. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fputs("slapoc: fatal: out of memory\n", stderr);
		_Exit(2);
	}
	return p;
}

void *arena_alloc(Arena *a, size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (!a->head || a->used + size > a->head->size) {
		size_t bs = size > ARENA_BLOCK / 4 ? size : ARENA_BLOCK;
		ArenaBlock *b = xmalloc(sizeof(ArenaBlock) + bs);
		b->size = bs;
		if (a->head && size > ARENA_BLOCK / 4) {
			/* a big object: keep the current block for small ones */
			b->next = a->head->next;
			a->head->next = b;
			a->total += size;
			memset(b->data, 0, size);
			return b->data;
		}
		b->next = a->head;
		a->head = b;
		a->used = 0;
	}
	void *p = a->head->data + a->used;
	a->used += size;
	a->total += size;
	memset(p, 0, size);
	return p;
}

void *arena_dup(Arena *a, const void *p, size_t size)
{
	void *q = arena_alloc(a, size);
	if (size)
		memcpy(q, p, size);
	return q;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
	char *q = arena_alloc(a, n + 1);
	memcpy(q, s, n);
	q[n] = 0;
	return q;
}

char *arena_strdup(Arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *q = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(q, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return q;
}

void arena_free(Arena *a)
{
	ArenaBlock *b = a->head;
	while (b) {
		ArenaBlock *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->used = a->total = 0;
}

void ptrvec_push(Arena *a, PtrVec *v, void *p)
{
	if (v->len == v->cap) {
		int cap = v->cap ? v->cap * 2 : 8;
		void **items = ARENA_ARRAY(a, void *, cap);
		if (v->len)
			memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
		v->items = items;
		v->cap = cap;
	}
	v->items[v->len++] = p;
}
