#include "common/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, size_t size)
{
    char line[160];
    int n = snprintf(line, sizeof line,
                     "level=fatal mod=mem msg=\"out of memory\" op=%s size=%zu\n", what, size);
    if (n > 0) {
        ssize_t w =
            write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
    abort();
}

void *aw_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        die("malloc", size);
    return p;
}

void *aw_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        die("calloc", count * size);
    return p;
}

void *aw_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        die("realloc", size);
    return p;
}

char *aw_strdup(const char *s)
{
    size_t n = strlen(s);
    char *p = aw_malloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

char *aw_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = aw_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void aw_grow(void **items, size_t *cap, size_t need, size_t item_size)
{
    if (need <= *cap)
        return;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            die("grow", need);
        ncap *= 2;
    }
    if (item_size && ncap > SIZE_MAX / item_size)
        die("grow", need);
    *items = aw_realloc(*items, ncap * item_size);
    *cap = ncap;
}

void aw_assert_fail(const char *expr, const char *file, int line)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "level=fatal mod=assert msg=\"assertion failed\" expr=\"%s\" at=%s:%d\n", expr,
                     file, line);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    abort();
}
