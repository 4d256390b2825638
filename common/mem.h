/* mem.h -- allocation that never returns NULL: out-of-memory logs and aborts. */
#ifndef AW_COMMON_MEM_H
#define AW_COMMON_MEM_H

#include <stddef.h>

/* All return caller-owned memory, released with free(). Any thread. */
void *aw_malloc(size_t size);
void *aw_calloc(size_t count, size_t size);
void *aw_realloc(void *ptr, size_t size);
char *aw_strdup(const char *s);            /* s must not be NULL */
char *aw_strndup(const char *s, size_t n); /* copies at most n bytes, always NUL-terminates */

/* Grows *items (of item_size bytes each) so that it can hold at least need items; *cap is
 * updated. Aborts on overflow or out-of-memory. */
void aw_grow(void **items, size_t *cap, size_t need, size_t item_size);

/* Always-on invariant check: logs file:line and aborts. Never for external data. */
#define AW_ASSERT(cond) ((cond) ? (void)0 : aw_assert_fail(#cond, __FILE__, __LINE__))
void aw_assert_fail(const char *expr, const char *file, int line);

#endif
