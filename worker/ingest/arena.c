/* arena.c -- the per-thread parse arena (arena.h). json_loadb allocates every value, string
 * and hash table of the tree on its own (about 1,100 mallocs for a 4.6 KB message of 3
 * profiles) and json_decref frees them one by one: a fifth of the parse. Nothing jansson
 * allocates during decode outlives it: event.c copies every string out and releases the root
 * before aw_parse_arena_end. */
#include "worker/ingest/arena.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#if defined(__SANITIZE_ADDRESS__)
#define AW_PARSE_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define AW_PARSE_ARENA 0
#endif
#endif
#ifndef AW_PARSE_ARENA
#define AW_PARSE_ARENA 1
#endif

#if AW_PARSE_ARENA

#define ARENA_CHUNK (256u * 1024u) /* holds the tree of a typical message (a few KB) */
#define ARENA_KEEP (1024u * 1024u) /* a larger first chunk is not kept between messages */

struct arena_chunk {
    struct arena_chunk *next; /* older chunk */
    size_t size;              /* bytes, this header included */
    size_t used;
};

/* Header size, rounded so that every block is aligned for any jansson struct. */
#define ARENA_HDR ((sizeof(struct arena_chunk) + 15u) & ~(size_t)15u)

struct arena {
    struct arena_chunk *head; /* newest chunk; allocation bumps its `used` */
    bool active;              /* between aw_parse_arena_begin and _end */
};

static _Thread_local struct arena t_arena;
static pthread_key_t arena_key; /* frees a thread's chunks when it exits */

static void arena_free_chunks(struct arena_chunk *c)
{
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void arena_thread_exit(void *chunks)
{
    arena_free_chunks(chunks);
}

static void *arena_alloc(size_t n)
{
    struct arena *a = &t_arena;
    if (!a->active)
        return malloc(n);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + 15u) & ~(size_t)15u;
    struct arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK - ARENA_HDR ? n + ARENA_HDR : ARENA_CHUNK;
        c = malloc(size);
        if (!c)
            return NULL; /* jansson reports it: decode fails with AW_ERR_FATAL */
        c->next = a->head;
        c->size = size;
        c->used = ARENA_HDR;
        a->head = c;
        pthread_setspecific(arena_key, c);
    }
    void *p = (char *)c + c->used;
    c->used += n;
    return p;
}

bool aw_parse_arena_holds(const void *p)
{
    const struct arena *a = &t_arena;
    if (!a->active || !p)
        return false;
    for (const struct arena_chunk *c = a->head; c; c = c->next)
        if ((const char *)p >= (const char *)c && (const char *)p < (const char *)c + c->size)
            return true;
    return false;
}

static void arena_release(void *p)
{
    if (!aw_parse_arena_holds(p))
        free(p);
}

void aw_parse_arena_begin(void)
{
    t_arena.active = true;
}

/* Keeps the oldest chunk when it is small. */
void aw_parse_arena_end(void)
{
    struct arena *a = &t_arena;
    a->active = false;
    struct arena_chunk *oldest = a->head, *prev = NULL;
    while (oldest && oldest->next) {
        prev = oldest;
        oldest = oldest->next;
    }
    if (!oldest)
        return;
    if (prev)
        prev->next = NULL;
    if (oldest != a->head)
        arena_free_chunks(a->head);
    if (oldest->size > ARENA_KEEP) {
        free(oldest);
        oldest = NULL;
    } else {
        oldest->used = ARENA_HDR;
    }
    a->head = oldest;
    pthread_setspecific(arena_key, oldest);
}

static void arena_install(void) __attribute__((constructor));

static void arena_install(void)
{
    if (pthread_key_create(&arena_key, arena_thread_exit) == 0)
        json_set_alloc_funcs(arena_alloc, arena_release);
}

#else

void aw_parse_arena_begin(void) {}

bool aw_parse_arena_holds(const void *p)
{
    (void)p;
    return false;
}

void aw_parse_arena_end(void) {}

#endif
