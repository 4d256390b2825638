/* arena.h -- a bump allocator for data that is built piece by piece and released all at once
 * (a decoded event, a mapping result): one malloc per chunk instead of one per string, and
 * one free per chunk. Allocation never returns NULL: out-of-memory logs and aborts, as
 * common/mem.h. Sanitizer builds allocate every block on its own (still released together),
 * so they see overflows of each. One owner; not thread-safe. */
#ifndef AW_COMMON_ARENA_H
#define AW_COMMON_ARENA_H

#include <stddef.h>

struct aw_arena;

/* A new empty arena (no chunk until the first allocation); caller-owned, aw_arena_free. */
struct aw_arena *aw_arena_new(void);

/* Releases every block of a and a itself. NULL is a no-op. */
void aw_arena_free(struct aw_arena *a);

/* n bytes (uninitialised; n may be 0), aligned for any type, valid until aw_arena_free. */
void *aw_arena_alloc(struct aw_arena *a, size_t n);

/* count * size bytes, zeroed; aborts when the product overflows. */
void *aw_arena_calloc(struct aw_arena *a, size_t count, size_t size);

/* Copies of s (not NULL) and of at most n bytes of s (always NUL-terminated). */
char *aw_arena_strdup(struct aw_arena *a, const char *s);
char *aw_arena_strndup(struct aw_arena *a, const char *s, size_t n);

#endif
