#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

void aw_buf_init(struct aw_buf *b, size_t max_len)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_len = max_len;
}

void aw_buf_free(struct aw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void aw_buf_reset(struct aw_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static enum aw_err reserve(struct aw_buf *b, size_t extra)
{
    if (extra > (size_t)-1 - b->len - 1)
        return AW_ERR_INVALID;
    size_t need = b->len + extra;
    if (b->max_len && need > b->max_len)
        return AW_ERR_INVALID;
    aw_grow((void **)&b->data, &b->cap, need + 1, 1);
    return AW_OK;
}

enum aw_err aw_buf_append(struct aw_buf *b, const void *data, size_t n)
{
    enum aw_err err = reserve(b, n);
    if (err != AW_OK)
        return err;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AW_OK;
}

enum aw_err aw_buf_append_str(struct aw_buf *b, const char *s)
{
    return aw_buf_append(b, s, strlen(s));
}

enum aw_err aw_buf_vappendf(struct aw_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return AW_ERR_INTERNAL;
    enum aw_err err = reserve(b, (size_t)n);
    if (err != AW_OK)
        return err;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return AW_OK;
}

enum aw_err aw_buf_appendf(struct aw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum aw_err err = aw_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return err;
}

char *aw_buf_take(struct aw_buf *b)
{
    char *s = b->data ? b->data : aw_strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return s;
}
