/* arena.c -- bump allocation in chunks (arena.h). */
#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define AW_ARENA_BUMP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define AW_ARENA_BUMP 0
#endif
#endif
#ifndef AW_ARENA_BUMP
#define AW_ARENA_BUMP 1
#endif

/* The first chunk holds a typical event or mapping result (a few KB); each further one is
 * twice the previous, up to CHUNK_MAX, so a large message costs few chunks. */
#define CHUNK_FIRST 8192u
#define CHUNK_MAX (1024u * 1024u)
#define ALIGN 16u

struct chunk {
    struct chunk *next; /* older chunk */
    size_t size;        /* bytes after the header */
    size_t used;
};

/* Header size, rounded so that every block is aligned for any type. */
#define HDR ((sizeof(struct chunk) + (ALIGN - 1)) & ~(size_t)(ALIGN - 1))

struct aw_arena {
    struct chunk *head; /* newest chunk; allocation bumps its `used` */
    size_t next_size;   /* size of the next chunk */
};

struct aw_arena *aw_arena_new(void)
{
    struct aw_arena *a = aw_calloc(1, sizeof *a);
    a->next_size = CHUNK_FIRST;
    return a;
}

void aw_arena_free(struct aw_arena *a)
{
    if (!a)
        return;
    for (struct chunk *c = a->head; c;) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *aw_arena_alloc(struct aw_arena *a, size_t n)
{
    AW_ASSERT(n <= SIZE_MAX / 2);
#if AW_ARENA_BUMP
    n = (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
    struct chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = a->next_size;
        if (a->next_size < CHUNK_MAX)
            a->next_size *= 2;
        if (size < n)
            size = n;
        c = aw_malloc(HDR + size);
        c->next = a->head;
        c->size = size;
        c->used = 0;
        a->head = c;
    }
    void *p = (char *)c + HDR + c->used;
    c->used += n;
    return p;
#else
    /* one chunk per block, of exactly its size: the sanitizer sees each block's bounds */
    struct chunk *c = aw_malloc(HDR + (n ? n : 1));
    c->next = a->head;
    c->size = n;
    c->used = n;
    a->head = c;
    return (char *)c + HDR;
#endif
}

void *aw_arena_calloc(struct aw_arena *a, size_t count, size_t size)
{
    AW_ASSERT(size == 0 || count <= SIZE_MAX / 2 / size);
    void *p = aw_arena_alloc(a, count * size);
    memset(p, 0, count * size);
    return p;
}

char *aw_arena_strndup(struct aw_arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = aw_arena_alloc(a, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *aw_arena_strdup(struct aw_arena *a, const char *s)
{
    size_t len = strlen(s);
    char *d = aw_arena_alloc(a, len + 1);
    memcpy(d, s, len + 1);
    return d;
}
