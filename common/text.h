/* text.h -- small text helpers shared by the parsers (URLs, JSON escapes). Pure; any thread. */
#ifndef AW_COMMON_TEXT_H
#define AW_COMMON_TEXT_H

#include <stddef.h>

/* Value of one hexadecimal digit (0-9, a-f, A-F), or -1. */
int aw_text_hexval(int ch);

/* Percent-decodes s[0..n) into a caller-owned NUL-terminated string. NULL when an escape is
 * malformed (not two hex digits) or encodes a NUL byte. */
char *aw_text_pct_decode(const char *s, size_t n);

#endif
