#include "common/text.h"

#include <stdlib.h>

#include "common/mem.h"

int aw_text_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

bool aw_text_is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

bool aw_text_is_blank(const char *s)
{
    for (; *s; s++) {
        if (!aw_text_is_space((unsigned char)*s))
            return false;
    }
    return true;
}

char *aw_text_trim_dup(const char *s, size_t len)
{
    size_t start = 0;
    while (start < len && aw_text_is_space((unsigned char)s[start]))
        start++;
    while (len > start && aw_text_is_space((unsigned char)s[len - 1]))
        len--;
    return aw_strndup(s + start, len - start);
}

char *aw_text_pct_decode(const char *s, size_t n)
{
    char *d = aw_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = n - i >= 3 ? aw_text_hexval((unsigned char)s[i + 1]) : -1;
        int lo = n - i >= 3 ? aw_text_hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return NULL;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    return d;
}

uint64_t aw_text_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}
