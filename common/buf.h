/* buf.h -- growable byte buffer with a hard maximum. Plain data, one owner. */
#ifndef AW_COMMON_BUF_H
#define AW_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/err.h"

struct aw_buf {
    char *data;     /* always NUL-terminated when len > 0 or after any append; owned */
    size_t len;     /* bytes used, excluding the terminating NUL */
    size_t cap;     /* bytes allocated */
    size_t max_len; /* hard maximum of len; 0 = unlimited */
};

/* Initialises an empty buffer that never grows beyond max_len bytes (0 = unlimited). */
void aw_buf_init(struct aw_buf *b, size_t max_len);

/* Releases the storage; the buffer is empty and reusable afterwards. */
void aw_buf_free(struct aw_buf *b);

/* Empties the buffer, keeping its storage. */
void aw_buf_reset(struct aw_buf *b);

/* Appends n bytes. AW_ERR_INVALID (nothing appended) when the maximum would be exceeded. */
enum aw_err aw_buf_append(struct aw_buf *b, const void *data, size_t n);

/* Appends a NUL-terminated string. Errors as aw_buf_append. */
enum aw_err aw_buf_append_str(struct aw_buf *b, const char *s);

/* Appends printf-formatted text. Errors as aw_buf_append. */
enum aw_err aw_buf_appendf(struct aw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum aw_err aw_buf_vappendf(struct aw_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Moves the contents out as a caller-owned NUL-terminated string; the buffer is left empty. */
char *aw_buf_take(struct aw_buf *b);

#endif
